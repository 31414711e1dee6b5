/* test_orch: the orchestration without QEMU. Saves, restores, imports and recovery run through
 * job.h and import.h against fake QEMUs (fake_qemu.h: this binary, started with a QEMU command
 * line): the happy paths, and the failures a real QEMU will not produce on demand: QEMU gone in
 * the middle of a command, a migration that fails, a cancel, a checksum that does not match, a
 * partial save left by a killed savefs, a copied snapshot with a bad manifest. Each checks the
 * errno, the words in status, what the store holds, and what the fake saw (the VM resumed when
 * the save had stopped it, never quit before its snapshot was published).
 * No root, no QEMU, no network; every fake is killed or quit by its pid before the test ends. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fake_qemu.h"
#include "fake_qmp.h"
#include "import.h"
#include "job.h"
#include "qmp.h"
#include "store.h"
#include "trust.h"

#define WAIT_MS 10000 /* for a fake to listen, an import to decide, a restored fake to quit */

static char tmp[64], store[96], qmp_dir[96], self[PATH_MAX], messages[8192];
static struct trust *trust;
static struct job_ctx *ctx;

#define CHECK_HAS(text, sub)                                                                       \
    CHECK(strstr((text), (sub)) != NULL, "\"%s\" lacks \"%s\"", (text), (sub))
#define CHECK_LACKS(text, sub)                                                                     \
    CHECK(strstr((text), (sub)) == NULL, "\"%s\" has \"%s\"", (text), (sub))

static void sleep_ms(int ms)
{
    (void)poll(NULL, 0, ms);
}

static void die(const char *what)
{
    fprintf(stderr, "test_orch: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* mkdir -p, or the test ends. */
static void mkdirs(const char *dir)
{
    char err[256];

    if (store_mkdirs(dir, err, sizeof(err))) {
        fprintf(stderr, "test_orch: %s\n", err);
        exit(2);
    }
}

/* savefs's log: what recovery says. */
static void log_message(const char *msg)
{
    size_t n = strlen(messages);

    snprintf(messages + n, sizeof(messages) - n, "%s\n", msg);
}

/* ---- files ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) < 0 ? -1 : 0;
}

/* The text of PATH (static, truncated at 64 KiB); "" if it cannot be read. */
static const char *slurp(const char *path)
{
    static char text[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : 0;

    text[n > 0 ? n : 0] = '\0';
    if (fd >= 0)
        close(fd);
    return text;
}

static void spit(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || close(fd) < 0)
        die(path);
}

/* The LEN bytes of PATH, malloc'd and NUL-terminated; exits the test if it cannot. */
static char *read_whole(const char *path, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *text = fd >= 0 && fstat(fd, &st) == 0 ? malloc((size_t)st.st_size + 1) : NULL;

    if (!text || read(fd, text, (size_t)st.st_size) != st.st_size)
        die(path);
    close(fd);
    text[st.st_size] = '\0';
    *len = (size_t)st.st_size;
    return text;
}

/* Entries of STORE/VM/SUB not starting with a dot; -1 if it is not a directory. */
static int entries(const char *vm, const char *sub)
{
    char path[PATH_MAX];
    int n = 0;
    DIR *d;
    struct dirent *e;

    snprintf(path, sizeof(path), "%s/%s/%s", store, vm, sub);
    if (!(d = opendir(path)))
        return -1;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static const char *fake_log_path(const char *vm)
{
    static char path[128];

    snprintf(path, sizeof(path), "%s/%s.fake.log", tmp, vm);
    return path;
}

/* What the fake QEMU of VM received, a command a line. */
static const char *fake_log(const char *vm)
{
    return slurp(fake_log_path(vm));
}

/* The status of VM as its user reads it, with the imports of IMP if not NULL. */
static const char *status_with(struct import *imp, const char *vm)
{
    static char text[16384];
    struct job_status *st = job_status_new(ctx, vm);
    char *s = st && (!imp || !import_status_add(imp, st)) ? job_status_json(st) : NULL;

    snprintf(text, sizeof(text), "%s", s ? s : "");
    free(s);
    job_status_free(st);
    return text;
}

static const char *status(const char *vm)
{
    return status_with(NULL, vm);
}

/* ---- fake QEMUs ---- */

/* What the next fake does, wherever it is started from (this process or savefs's spawn). */
static void fake_env(const char *vm, const char *mode)
{
    char snaps[PATH_MAX];

    snprintf(snaps, sizeof(snaps), "%s/%s/snapshots", store, vm);
    unlink(fake_log_path(vm));
    if (setenv("FAKE_QEMU_MODE", mode, 1) || setenv("FAKE_QEMU_LOG", fake_log_path(vm), 1) ||
        setenv("FAKE_QEMU_SNAPS", snaps, 1))
        die("setenv");
}

static int qmp_path(const char *vm, char *path, size_t len)
{
    return snprintf(path, len, "%s/%s.qmp", qmp_dir, vm) >= (int)len ? -1 : 0;
}

static int can_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    int fd, rc;

    /* A path longer than a socket's cannot be connected to (and gcc -O2 warns of truncation). */
    if (n >= sizeof(sa.sun_path))
        return 0;
    memcpy(sa.sun_path, path, n + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    rc = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    return rc;
}

/* A copy of this binary whose path says "qemu": savefs kills at start only a process that is
 * a QEMU waiting for a stream. */
static const char *qemu_named_copy(void)
{
    static char path[128];
    char *text;
    size_t len;
    int fd;

    if (path[0])
        return path;
    snprintf(path, sizeof(path), "%s/qemu-system-x86_64", tmp);
    text = read_whole(self, &len);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || close(fd) < 0)
        die(path);
    free(text);
    return path;
}

enum fake_as { FAKE_RUNNING, FAKE_PAUSED, FAKE_INCOMING };

/* A fake QEMU for VM, a child of this test (it dies with it), started as a user starts QEMU
 * (running, or paused with -S) or as a restore does (-S -incoming defer). Returns its pid once
 * its monitor listens. */
static pid_t fake_start(const char *vm, const char *mode, enum fake_as as)
{
    char qmp[256], arg[300];
    char *argv[] = {"qemu-system-x86_64", "-name", (char *)vm, "-m", "64", "-qmp", arg, "-S",
                    "-incoming",          "defer", NULL};
    const char *binary = as == FAKE_INCOMING ? qemu_named_copy() : self;
    pid_t pid, parent = getpid();

    fake_env(vm, mode);
    if (qmp_path(vm, qmp, sizeof(qmp)))
        die("QMP path");
    snprintf(arg, sizeof(arg), "unix:%s,server=on,wait=off", qmp);
    argv[as == FAKE_RUNNING ? 7 : as == FAKE_PAUSED ? 8 : 10] = NULL;
    pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(127);
        execv(binary, argv);
        _exit(127);
    }
    for (int i = 0; i < WAIT_MS / 10 && !can_connect(qmp); i++)
        sleep_ms(10);
    CHECK(can_connect(qmp), "the fake QEMU of %s does not listen on %s", vm, qmp);
    return pid;
}

/* Kills a fake of ours, by its pid. */
static void fake_kill(pid_t pid)
{
    if (kill(pid, SIGKILL) < 0 || waitpid(pid, NULL, 0) != pid)
        fprintf(stderr, "test_orch: kill %d: %s\n", (int)pid, strerror(errno));
}

/* 1 if our child PID ends within WAIT_MS, its wait status in *ST; else it is killed and 0. */
static int fake_ends(pid_t pid, int *st)
{
    for (int i = 0; i < WAIT_MS / 10; i++, sleep_ms(10))
        if (waitpid(pid, st, WNOHANG) == pid)
            return 1;
    fake_kill(pid);
    return 0;
}

/* The exit status of a fake of ours that is to end on its own; -1 if it does not. */
static int fake_exit_status(pid_t pid)
{
    int st = 0;

    return fake_ends(pid, &st) && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* 1 if a fake of ours is killed (SIGKILL) by someone else. */
static int fake_was_killed(pid_t pid)
{
    int st = 0;

    return fake_ends(pid, &st) && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

/* Quits the fake that a restore started for VM (not our child: savefs double-forks it) and
 * waits until it is gone. */
static void fake_quit_restored(const char *vm)
{
    char path[256], err[256];
    struct qmp *q = NULL;
    int pidfd = -1;

    if (qmp_path(vm, path, sizeof(path)) || qmp_connect(&q, path, 2000, err, sizeof(err))) {
        CHECK(0, "the restored fake of %s: %s", vm, err);
        return;
    }
    pidfd = (int)syscall(SYS_pidfd_open, qmp_peer_pid(q), 0);
    CHECK(qmp_cmd(q, "quit", NULL, NULL, 2000, err, sizeof(err)) == 0, "quit: %s", err);
    qmp_close(q);
    if (pidfd >= 0) {
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        if (poll(&p, 1, WAIT_MS) != 1)
            syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        close(pidfd);
    }
}

/* ---- saves ---- */

static int save(const char *vm, const char *words, job_interrupted_fn interrupted)
{
    return job_save(ctx, vm, words, strlen(words), interrupted);
}

/* A failed save publishes nothing and leaves no partial file behind. */
static void check_nothing_saved(const char *vm)
{
    CHECK(entries(vm, "snapshots") == 0, "%s: %d snapshots", vm, entries(vm, "snapshots"));
    CHECK(entries(vm, ".tmp") <= 0, "%s: %d leftovers in .tmp", vm, entries(vm, ".tmp"));
}

/* After a failed save the VM is as it was: what the save stopped was resumed, a VM that was
 * paused stays paused, and it never quit. */
static void check_left_as_it_was(const char *vm, enum fake_as as)
{
    const char *log = fake_log(vm);

    CHECK_LACKS(log, "quit");
    if (as == FAKE_PAUSED) {
        CHECK_LACKS(log, "stop\n");
        CHECK_LACKS(log, "cont\n");
        return;
    }
    CHECK_HAS(log, "stop\n");
    CHECK_HAS(log, "cont\n");
    CHECK(strstr(log, "cont\n") > strstr(log, "stop\n"), "cont before stop:\n%s", log);
}

static void test_save_ok(void)
{
    pid_t pid = fake_start("good", "ok", FAKE_RUNNING);
    char *last;
    int rc;

    /* keep-running: the VM is resumed, not quit; rate=: QEMU's bandwidth cap for the save */
    rc = save("good", "name=first parallel=2 keep-running rate=5\n", NULL);
    CHECK(rc == 0, "save: %s; %s", strerror(-rc), status("good"));
    CHECK_HAS(fake_log("good"), "max-bandwidth 5000000\n");
    CHECK_HAS(fake_log("good"), "migrate\n");
    CHECK_HAS(fake_log("good"), "cont\n");
    /* the VM runs on: its last cont was taken, not refused while QEMU still finished the
     * migration (mig_cont sends it again then) */
    {
        const char *log = fake_log("good"), *c = log + strlen(log);
        while (c > log && strncmp(c, "cont\n", 5) != 0)
            c--;
        CHECK(strncmp(c, "cont\n", 5) == 0 && strncmp(c, "cont\ncont refused", 17) != 0,
              "the last cont was refused:\n%s", log);
    }
    CHECK_LACKS(fake_log("good"), "quit");
    CHECK(entries("good", "snapshots") == 1, "%d snapshots", entries("good", "snapshots"));

    /* then QEMU quits, and only once the snapshot is published */
    fake_env("good", "ok");
    rc = save("good", "name=second parallel=3\n", NULL);
    CHECK(rc == 0, "save: %s; %s", strerror(-rc), status("good"));
    CHECK_HAS(fake_log("good"), "max-bandwidth 9223372036854775807\n"); /* no rate=: no cap */
    CHECK_HAS(fake_log("good"), "quit snapshots=2\n");
    CHECK_LACKS(fake_log("good"), "cont\n");
    CHECK(fake_exit_status(pid) == 0, "the fake did not quit on its own");
    CHECK(entries("good", ".tmp") <= 0, "%d leftovers", entries("good", ".tmp"));
    last = job_last_save_text(ctx, "good");
    CHECK_HAS(last ? last : "", "3 channels");
    free(last);
    CHECK_HAS(status("good"), "\"result\": \"ok\"");
}

/* Two hosts of a fleet saving one VM in the same second with default names: the other host
 * publishes the name while this save runs (the fake makes it at "migrate"). This save moves on
 * to the next name of the second, -2, under which its manifest names it, instead of EEXIST. */
static void test_save_default_name_taken(void)
{
    char path[PATH_MAX], want[sizeof("\"snapshot\": \"\"") + NAME_MAX], *last;
    struct dirent *e;
    DIR *d;
    int rc, published = 0;
    pid_t pid;

    setenv("FAKE_QEMU_TAKE_NAMES", "1", 1); /* the fake inherits it */
    pid = fake_start("twin", "ok", FAKE_RUNNING);
    unsetenv("FAKE_QEMU_TAKE_NAMES");
    rc = save("twin", "2\n", NULL);
    CHECK(rc == 0, "save: %s; %s", strerror(-rc), status("twin"));
    CHECK_HAS(fake_log("twin"), "took the default names\n");
    snprintf(path, sizeof(path), "%s/twin/snapshots", store);
    if (!(d = opendir(path)))
        die(path);
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' ||
            snprintf(path, sizeof(path), "%s/twin/snapshots/%s/manifest.json", store, e->d_name) >=
                (int)sizeof(path) ||
            access(path, F_OK) != 0)
            continue;
        published++;
        CHECK(strlen(e->d_name) == STORE_STAMP_LEN + 2 &&
                  strcmp(e->d_name + STORE_STAMP_LEN, "-2") == 0,
              "published as %s, not STAMP-2", e->d_name);
        snprintf(want, sizeof(want), "\"snapshot\": \"%s\"", e->d_name);
        CHECK_HAS(slurp(path), want);
        last = job_last_save_text(ctx, "twin");
        snprintf(want, sizeof(want), "ok %s ", e->d_name);
        CHECK_HAS(last ? last : "", want);
        free(last);
    }
    closedir(d);
    CHECK(published == 1, "%d snapshots published", published);
    CHECK(entries("twin", ".tmp") <= 0, "%d leftovers", entries("twin", ".tmp"));
    CHECK_HAS(fake_log("twin"), "quit snapshots=");
    CHECK(fake_exit_status(pid) == 0, "the fake did not quit on its own");
}

/* A FUSE interrupt once the fake QEMU of interrupt_vm received interrupt_at (a line). */
static const char *interrupt_vm, *interrupt_at;

static int interrupted_once_at(void)
{
    return strstr(fake_log(interrupt_vm), interrupt_at) != NULL;
}

static const struct save_failure {
    const char *vm, *mode;
    enum fake_as as;
    job_interrupted_fn interrupted;
    int rc;
    const char *why; /* in status */
    int vanishes;    /* the fake exits (status 3) instead of running on */
} save_failures[] = {
    /* the second query-migrate comes while the streams move */
    {"gone", "vanish:query-migrate:2", FAKE_RUNNING, NULL, -EIO, "QEMU exited during the save", 1},
    {"fails", "fail", FAKE_RUNNING, NULL, -EIO, "QEMU: migration failed: " FAKE_QEMU_ERROR_DESC, 0},
    {"idle", "fail", FAKE_PAUSED, NULL, -EIO, "QEMU: migration failed: " FAKE_QEMU_ERROR_DESC, 0},
    {"slow", "stall", FAKE_RUNNING, interrupted_once_at, -EINTR, "save cancelled", 0},
};

static void test_save_failure(const struct save_failure *f)
{
    pid_t pid = fake_start(f->vm, f->mode, f->as);
    int rc;

    interrupt_vm = f->vm;
    interrupt_at = "\nmigrate\n";
    rc = save(f->vm, "name=s parallel=2\n", f->interrupted);

    CHECK(rc == f->rc, "%s: save: %d %s", f->vm, rc, strerror(-rc));
    CHECK_HAS(status(f->vm), f->why);
    check_nothing_saved(f->vm);
    if (f->vanishes) {
        CHECK_HAS(fake_log(f->vm), "vanished at");
        CHECK(fake_exit_status(pid) == 3, "the fake did not vanish");
        return;
    }
    CHECK_HAS(fake_log(f->vm), "migrate_cancel\n");
    check_left_as_it_was(f->vm, f->as);
    fake_kill(pid);
}

/* ---- restores ---- */

static void test_restore_ok(void)
{
    int rc;

    fake_env("good", "ok");
    rc = job_restore(ctx, "good", "second", NULL);
    CHECK(rc == 0, "restore: %s; %s", strerror(-rc), status("good"));
    CHECK_HAS(fake_log("good"), "migrate-incoming\n");
    CHECK_HAS(fake_log("good"), "cont\n"); /* it was saved running */
    CHECK_HAS(status("good"), "restored second");
    if (rc == 0)
        fake_quit_restored("good");
}

static const struct restore_failure {
    const char *mode;
    job_interrupted_fn interrupted;
    int rc;
    const char *why; /* in status */
} restore_failures[] = {
    /* QEMU's last words from its log */
    {"vanish:migrate-incoming:1", NULL, -EIO,
     "QEMU exited while loading the snapshot: fake QEMU: vanished at migrate-incoming"},
    {"fail", NULL, -EIO, "QEMU: incoming migration failed: " FAKE_QEMU_ERROR_DESC},
    {"stall", interrupted_once_at, -EINTR, "restore cancelled"},
};

/* A failed restore kills its QEMU before the guest ran, and leaves the snapshot as it was. */
static void test_restore_failure(const struct restore_failure *f)
{
    char path[PATH_MAX];
    int rc;

    fake_env("good", f->mode);
    interrupt_vm = "good";
    interrupt_at = "\nmigrate-incoming\n";
    rc = job_restore(ctx, "good", "second", f->interrupted);
    CHECK(rc == f->rc, "%s: restore: %d %s", f->mode, rc, strerror(-rc));
    CHECK_HAS(status("good"), f->why);
    CHECK_HAS(fake_log("good"), "migrate-incoming");
    CHECK_LACKS(fake_log("good"), "cont\n");
    CHECK(qmp_path("good", path, sizeof(path)) == 0 && !can_connect(path), "a QEMU listens");
    snprintf(path, sizeof(path), "%s/good/%s", store, STORE_RESTORE_MARK);
    CHECK(access(path, F_OK) < 0, "%s left", path);
}

/* Flips a bit of byte OFF (from the end if negative) of FILE in snapshot SNAP of VM. */
static void damage(const char *vm, const char *snap, const char *file, off_t off)
{
    char path[PATH_MAX], c;
    struct stat st;
    int fd;

    snprintf(path, sizeof(path), "%s/%s/snapshots/%s/%s", store, vm, snap, file);
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0)
        die(path);
    off = off < 0 ? st.st_size + off : off;
    if (pread(fd, &c, 1, off) != 1)
        die(path);
    c ^= 0x20;
    if (pwrite(fd, &c, 1, off) != 1 || close(fd) < 0)
        die(path);
}

/* A byte changed on disk, the file's size the same: the restore fails and the VM never runs. */
static void test_restore_checksum(void)
{
    char qmp[256];
    int rc;

    /* A channel read whole at once is checked before QEMU starts. */
    damage("good", "first", "channel-0", 5000);
    fake_env("good", "ok");
    rc = job_restore(ctx, "good", "first", NULL);
    CHECK(rc == -EBADMSG, "restore: %d %s", rc, strerror(-rc));
    CHECK_HAS(status("good"), "checksum mismatch");
    CHECK(access(fake_log_path("good"), F_OK) < 0, "a QEMU was started:\n%s", fake_log("good"));

    /* The end of a long main stream is checked as QEMU reads it: QEMU is killed. */
    damage("good", "second", "main", -100);
    fake_env("good", "ok");
    rc = job_restore(ctx, "good", "second", NULL);
    CHECK(rc == -EBADMSG, "restore: %d %s", rc, strerror(-rc));
    CHECK_HAS(status("good"), "checksum mismatch");
    CHECK_HAS(fake_log("good"), "migrate-incoming\n");
    CHECK_LACKS(fake_log("good"), "cont\n");
    CHECK(qmp_path("good", qmp, sizeof(qmp)) == 0 && !can_connect(qmp), "a QEMU still listens");
}

/* ---- recovery at start ---- */

/* A savefs killed mid-save left a partial save and the VM it had stopped; one killed mid-restore
 * left a QEMU waiting for its stream. At the next start the VM runs again, the partial save is
 * gone, and the half-restored QEMU is killed. */
static void test_recover(void)
{
    pid_t saved = fake_start("crashed", "ok", FAKE_PAUSED);
    pid_t restored = fake_start("halfway", "ok", FAKE_INCOMING);
    char dir[PATH_MAX], path[PATH_MAX + 16], mark[32], claim[PATH_MAX], other[PATH_MAX];

    snprintf(dir, sizeof(dir), "%s/crashed/.tmp/s.XXXXXX", store);
    snprintf(path, sizeof(path), "%s/crashed/.tmp", store);
    mkdirs(path);
    if (!mkdtemp(dir))
        die(dir);
    snprintf(path, sizeof(path), "%s/%s", dir, STORE_SAVE_MARK);
    snprintf(mark, sizeof(mark), "%d 1\n", (int)saved);
    spit(path, mark);
    snprintf(path, sizeof(path), "%s/channel-0", dir);
    spit(path, "half a channel");
    snprintf(path, sizeof(path), "%s/halfway", store);
    mkdirs(path);
    /* It had claimed its name on a store without RENAME_NOREPLACE: the claim goes with it. */
    snprintf(claim, sizeof(claim), "%s/crashed/snapshots/s", store);
    mkdirs(claim);
    chmod(claim, 0700 | S_ISVTX);
    snprintf(path, sizeof(path), "%s/%s", dir, STORE_CLAIM_MARK);
    spit(path, claim);
    /* Another host's save in progress in a shared store is not this host's leftover. */
    snprintf(other, sizeof(other), "%s/crashed/.tmp/s@elsewhere.XXXXXX", store);
    if (!mkdtemp(other))
        die(other);
    if (store_vm_host_path(path, store, "halfway", STORE_RESTORE_MARK))
        die("halfway");
    snprintf(mark, sizeof(mark), "%d\n", (int)restored);
    spit(path, mark);

    messages[0] = '\0';
    job_recover(ctx, log_message);
    CHECK(entries("crashed", ".tmp") == 1, "%d leftovers", entries("crashed", ".tmp"));
    CHECK(access(other, F_OK) == 0, "another host's save %s was removed", other);
    CHECK(access(claim, F_OK) < 0, "the claim %s is left", claim);
    rmdir(other);
    CHECK_HAS(messages, "removing the partial save");
    CHECK_HAS(messages, "resumed the VM");
    CHECK_HAS(fake_log("crashed"), "cont\n");
    /* Whoever wrote the save words saw the write fail with the mount: status says what became
     * of the VM. */
    CHECK_HAS(status("crashed"), "the save was interrupted");
    CHECK_HAS(status("crashed"), "savefs resumed the VM that the save had paused");
    CHECK_HAS(messages, "killed the QEMU of an interrupted restore");
    CHECK(fake_was_killed(restored), "the half-restored QEMU lives");
    CHECK(access(path, F_OK) < 0, "%s left", path);
    fake_kill(saved);
}

/* ---- imports ---- */

/* Copies snapshot SNAP of VM to TO_VM/snapshots/TO, as a user's cp into the mount would; in the
 * manifest OLD becomes NEW (as long) if given. */
static void copy_snapshot(const char *vm, const char *snap, const char *to_vm, const char *to,
                          const char *old, const char *new)
{
    char from[PATH_MAX / 2], dest[PATH_MAX / 2], path[PATH_MAX], *text, *at;
    struct dirent *e;
    size_t len;
    DIR *d;

    snprintf(from, sizeof(from), "%s/%s/snapshots/%s", store, vm, snap);
    snprintf(dest, sizeof(dest), "%s/%s/snapshots/%s", store, to_vm, to);
    mkdirs(dest);
    if (!(d = opendir(from)))
        die(from);
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", from, e->d_name);
        text = read_whole(path, &len);
        at = old && strcmp(e->d_name, "manifest.json") == 0 ? strstr(text, old) : NULL;
        if (at)
            memcpy(at, new, strlen(new));
        snprintf(path, sizeof(path), "%s/%s", dest, e->d_name);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, text, len) != (ssize_t)len || close(fd) < 0)
            die(path);
        free(text);
    }
    closedir(d);
}

static void test_import_bad_manifest(void)
{
    struct import *imp = NULL;
    char manifest[PATH_MAX];
    int rc;

    CHECK(import_new(&imp, ctx, trust) == 0, "import_new");
    if (!imp)
        return;

    /* a manifest that names another VM is refused at once, and removed */
    copy_snapshot("good", "second", "other", "theirs", NULL, NULL);
    CHECK(import_begin(imp, "other", "theirs") == 0, "import_begin");
    rc = import_manifest_written(imp, "other", "theirs", "other/snapshots/theirs/manifest.json");
    CHECK(rc == -EXDEV, "import_manifest_written: %d", rc);
    CHECK(import_refused(imp, "other", "theirs") == 1, "not refused");
    snprintf(manifest, sizeof(manifest), "%s/other/snapshots/theirs/manifest.json", store);
    CHECK(access(manifest, F_OK) < 0, "%s kept", manifest);
    CHECK_HAS(status_with(imp, "other"), "names VM good, not other");

    /* a manifest changed since it was signed: refused before a QEMU starts */
    fake_env("good", "ok");
    copy_snapshot("good", "second", "good", "changed", "\"ram_size\": 6", "\"ram_size\": 7");
    CHECK(import_begin(imp, "good", "changed") == 0, "import_begin");
    import_changed(imp, "good", "changed");
    for (int i = 0; i < WAIT_MS / 10 && !strstr(status_with(imp, "good"), "\"failed\""); i++)
        sleep_ms(10);
    CHECK_HAS(status_with(imp, "good"), "\"phase\": \"failed\"");
    CHECK_HAS(status_with(imp, "good"), "fails its HMAC");
    CHECK(access(fake_log_path("good"), F_OK) < 0, "a QEMU was started:\n%s", fake_log("good"));
    import_free(imp);
}

/* ---- setup ---- */

static void setup(void)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *qemu[1] = {self}, err[JOB_ERR_MAX];
    struct trust_config tc = {.qemu = qemu, .nqemu = 1};
    struct job_config jc = {.watchdog_ms = 5000};
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

    if (n < 0)
        die("readlink /proc/self/exe");
    self[n] = '\0';
    snprintf(tmp, sizeof(tmp), "%s/test_orch.XXXXXX", base);
    if (strlen(base) > 30 || !mkdtemp(tmp))
        die("mkdtemp");
    snprintf(store, sizeof(store), "%s/store", tmp);
    snprintf(qmp_dir, sizeof(qmp_dir), "%s/qmp", tmp);
    mkdirs(store);
    tc.store = store;
    tc.qmp_dir = qmp_dir;
    if (trust_new(&trust, &tc, err, sizeof(err)))
        die(err);
    jc.store = store;
    jc.qmp_dir = qmp_dir;
    jc.trust = trust;
    if (job_ctx_new(&ctx, &jc, log_message, err, sizeof(err)))
        die(err);
}

/* savefs follows its QEMUs by pidfd; valgrind 3.19 does not know the call (ENOSYS). */
static int pidfd_works(void)
{
    int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);

    if (fd < 0) {
        fprintf(stderr, "test_orch: skipped: pidfd_open: %s\n", strerror(errno));
        return 0;
    }
    close(fd);
    return 1;
}

int main(int argc, char **argv)
{
    if (fake_qemu_wanted(argc, argv))
        return fake_qemu_main(argc, argv);
    alarm(100); /* a hang fails the test; our fakes die with us, savefs's end themselves */
    if (!pidfd_works())
        return 77;
    setup();

    test_save_ok();
    test_save_default_name_taken();
    for (size_t i = 0; i < sizeof(save_failures) / sizeof(save_failures[0]); i++)
        test_save_failure(&save_failures[i]);
    test_restore_ok();
    for (size_t i = 0; i < sizeof(restore_failures) / sizeof(restore_failures[0]); i++)
        test_restore_failure(&restore_failures[i]);
    test_import_bad_manifest();
    test_restore_checksum();
    test_recover();

    job_ctx_free(ctx);
    trust_free(trust);
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    check_failures += atomic_load(&fake_qmp_failures);
    return check_result("test_orch");
}
