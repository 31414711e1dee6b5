/* qemu: process plumbing for QEMU. Spawning uses a double fork so that the VM is a child of init,
 * not of savefs: killing or unmounting savefs must never take a VM along. */
#include "qemu.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qemu_int.h"
#include "qemuopts.h"

extern char **environ;

#define SO_ACCEPTCON_FLAG 0x10000 /* __SO_ACCEPTCON in /proc/net/unix: a listening socket */

int qemu_listeners(int (*fn)(const char *name, void *arg), void *arg)
{
    FILE *f = fopen("/proc/net/unix", "re");
    char line[PATH_MAX + 128];
    int rc = 0;

    if (!f)
        return -errno;
    /* The file lists every unix socket of the host (thousands): ask for it in big reads. */
    setvbuf(f, NULL, _IOFBF, 1 << 16);
    while (!rc && fgets(line, sizeof(line), f)) {
        unsigned long flags;
        int off = 0;

        line[strcspn(line, "\n")] = '\0';
        if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %n", &flags, &off) != 1 || off == 0)
            continue;
        if (flags & SO_ACCEPTCON_FLAG)
            rc = fn(line + off, arg);
    }
    fclose(f);
    return rc;
}

static int is_path(const char *name, void *path)
{
    return strcmp(name, path) == 0;
}

int qemu_listening(const char *path)
{
    return qemu_listeners(is_path, (void *)path) > 0;
}

void qemu_argv_free(char **argv)
{
    for (char **a = argv; a && *a; a++)
        free(*a);
    free(argv);
}

static int read_file(const char *path, char *buf, size_t len, size_t *got)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t n = 0;

    if (fd < 0)
        return -errno;
    while (n < len) {
        ssize_t r = read(fd, buf + n, len - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *got = n;
    return n == len ? -E2BIG : 0;
}

static int split_nul(const char *buf, size_t n, char ***argv, int *argc)
{
    int count = 0, i = 0;
    size_t pos;

    for (pos = 0; pos < n; pos++)
        count += buf[pos] == '\0';
    *argv = calloc((size_t)count + 1, sizeof(char *));
    if (!*argv)
        return -ENOMEM;
    for (pos = 0; pos < n && i < count; pos += strlen(buf + pos) + 1)
        if (!((*argv)[i++] = strdup(buf + pos)))
            return -ENOMEM;
    *argc = count;
    return 0;
}

int qemu_read_cmdline(pid_t pid, char ***argv, int *argc, char *binary, size_t binlen, char *err,
                      size_t errlen)
{
    static const size_t max = 1 << 20;
    char path[64], *buf = malloc(max);
    size_t n = 0;
    ssize_t len;
    int rc;

    *argv = NULL;
    if (!buf)
        return -ENOMEM;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    rc = read_file(path, buf, max, &n);
    if (!rc && (n == 0 || buf[n - 1] != '\0'))
        rc = -EINVAL;
    if (!rc)
        rc = split_nul(buf, n, argv, argc);
    if (rc) {
        snprintf(err, errlen, "read %s: %s", path, strerror(-rc));
        goto out;
    }
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
    len = readlink(path, binary, binlen - 1);
    if (len < 0) {
        rc = -errno;
        snprintf(err, errlen, "readlink %s: %s", path, strerror(errno));
        goto out;
    }
    binary[len] = '\0';
    /* An upgraded package leaves the running binary unlinked; the new one is at the old path. */
    if (len > 10 && strcmp(binary + len - 10, " (deleted)") == 0)
        binary[len - 10] = '\0';
out:
    if (rc) {
        qemu_argv_free(*argv);
        *argv = NULL;
    }
    free(buf);
    return rc;
}

int qemu_read_cwd(pid_t pid, char *cwd, size_t len)
{
    char path[64];
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/%d/cwd", (int)pid);
    n = readlink(path, cwd, len - 1);
    if (n < 0)
        return -errno;
    cwd[n] = '\0';
    return 0;
}

/* 1 if process PID has a descriptor open on a file under DIR (absolute, no symlinks), that file
 * in PATH; else 0 (also when its descriptors cannot be read). */
static int holds_under(const char *pid, const char *dir, char *path, size_t len)
{
    char fds[64], link[96];
    size_t n = strlen(dir);
    struct dirent *e;
    DIR *d;
    int found = 0;

    snprintf(fds, sizeof(fds), "/proc/%s/fd", pid);
    if (!(d = opendir(fds)))
        return 0;
    while (!found && (e = readdir(d))) {
        ssize_t k;

        if (e->d_name[0] == '.' || snprintf(link, sizeof(link), "%s/%s", fds, e->d_name) < 0)
            continue;
        k = readlink(link, path, len - 1);
        if (k <= 0)
            continue;
        path[k] = '\0';
        found = strncmp(path, dir, n) == 0 && path[n] == '/';
    }
    closedir(d);
    return found;
}

pid_t qemu_proc_holding(const char *dir, pid_t self, char *path, size_t len)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t pid = 0;

    while (d && !pid && (e = readdir(d))) {
        char *end;
        long v = strtol(e->d_name, &end, 10);

        if (*end || v <= 0 || v == self)
            continue;
        if (holds_under(e->d_name, dir, path, len))
            pid = (pid_t)v;
    }
    if (d)
        closedir(d);
    return pid;
}

int qemu_proc_holds(pid_t pid, const char *dir, char *path, size_t len)
{
    char name[24];

    snprintf(name, sizeof(name), "%d", (int)pid);
    return holds_under(name, dir, path, len);
}

/* The -qmp of NAME.qmp is savefs's to set; other monitors belong to the user and stay. */
static int is_own_qmp(const char *value, const char *qmp_name)
{
    const char *end = strchr(value, ',');
    size_t len = end ? (size_t)(end - value) : strlen(value);
    size_t nlen = strlen(qmp_name);

    if (strncmp(value, "unix:", 5) != 0 || len < nlen + 1)
        return 0;
    return value[len - nlen - 1] == '/'
               ? strncmp(value + len - nlen, qmp_name, nlen) == 0
               : len - 5 == nlen && strncmp(value + 5, qmp_name, nlen) == 0;
}

int qemu_argv_portable(char *const *argv, int argc, const char *qmp_name, char ***out, int *outc)
{
    char **v = calloc((size_t)argc + 1, sizeof(char *));
    int i, n = 0;

    if (!v)
        return -ENOMEM;
    for (i = 0; i < argc; i++) {
        int has_value, refused;

        if (qemuopts_reserved(argv[i], &has_value, &refused) && (!has_value || i + 1 < argc)) {
            i += has_value;
            continue;
        }
        if (i + 1 < argc && qemuopts_is_opt(argv[i], "qmp") && is_own_qmp(argv[i + 1], qmp_name)) {
            i++;
            continue;
        }
        v[n++] = argv[i];
    }
    *out = v;
    *outc = n;
    return 0;
}

/* ---- the restore's command line ---- */

#define CONSOLE_ID "savefs-console"

const char *qemu_opt_value(char *const *argv, int argc, int i, const char *name)
{
    return i + 1 < argc && qemuopts_is_opt(argv[i], name) ? argv[i + 1] : NULL;
}

/* A growing argv of new strings. */
struct argv_out {
    char **v;
    int n, cap;
    int rc;
};

static void out_add(struct argv_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_add(struct argv_out *o, const char *fmt, ...)
{
    va_list ap;

    if (o->rc)
        return;
    if (o->n + 2 > o->cap) {
        int cap = o->cap ? 2 * o->cap : 64;
        char **v = realloc(o->v, (size_t)cap * sizeof(char *));

        if (!v) {
            o->rc = -ENOMEM;
            return;
        }
        o->v = v;
        o->cap = cap;
    }
    va_start(ap, fmt);
    if (vasprintf(&o->v[o->n], fmt, ap) < 0)
        o->rc = -ENOMEM;
    else
        o->v[++o->n] = NULL;
    va_end(ap);
}

char *qemu_opt_escape(const char *value)
{
    char *out = malloc(2 * strlen(value) + 1), *p = out;

    for (; out && *value; value++) {
        *p++ = *value;
        if (*value == ',')
            *p++ = ',';
    }
    if (out)
        *p = '\0';
    return out;
}

/* -machine TYPE[,OPTS] with the unversioned TYPE ("pc", "q35", or none at all) replaced by the
 * versioned MACHINE the snapshot was saved with: a newer QEMU resolves "pc" to a newer type,
 * whose migration stream differs (libvirt pins it the same way). 1 if VALUE named a type. */
static int pin_machine(struct argv_out *o, const char *value, const char *machine)
{
    size_t type_len = strcspn(value, ",");
    const char *rest = value + type_len;

    if (strncmp(value, "type=", 5) == 0) {
        out_add(o, "type=%s%s", machine, rest);
        return 1;
    }
    if (memchr(value, '=', type_len)) { /* only options: the type comes from elsewhere */
        out_add(o, "%s", value);
        return 0;
    }
    out_add(o, "%s%s", machine, rest);
    return 1;
}

/* -serial file:PATH truncates PATH when QEMU opens it: the log before the save would be lost.
 * The file chardev can append instead. */
static void serial_file(struct argv_out *o, const char *path, int *nserial)
{
    char *esc = qemu_opt_escape(path);

    if (!esc) {
        o->rc = -ENOMEM;
        return;
    }
    out_add(o, "-chardev");
    out_add(o, "file,id=savefs-serial%d,path=%s,append=on", *nserial, esc);
    out_add(o, "-serial");
    out_add(o, "chardev:savefs-serial%d", (*nserial)++);
    free(esc);
}

/* A console that was on the original's stdio (gone: a restored QEMU's stdin is /dev/null) comes
 * back on a unix socket one can attach to. MON: the monitor was multiplexed on it, too. */
static void console_socket(struct argv_out *o, const char *path, int mon)
{
    char *esc = qemu_opt_escape(path);

    if (!esc) {
        o->rc = -ENOMEM;
        return;
    }
    out_add(o, "-chardev");
    out_add(o, "socket,id=" CONSOLE_ID ",path=%s,server=on,wait=off%s", esc, mon ? ",mux=on" : "");
    out_add(o, "-serial");
    out_add(o, "chardev:" CONSOLE_ID);
    if (mon) {
        out_add(o, "-mon");
        out_add(o, "chardev=" CONSOLE_ID ",mode=readline");
    }
    free(esc);
}

/* -chardev file,...: appends, unless it says otherwise. */
static void chardev(struct argv_out *o, const char *value)
{
    char append[8];

    if (strncmp(value, "file,", 5) == 0 && !qemuopts_get(value, "append", append, sizeof(append)))
        out_add(o, "%s,append=on", value);
    else
        out_add(o, "%s", value);
}

/* With -nographic and no -serial, QEMU puts the first serial port on stdio (-nodefaults: none). */
static int stdio_by_default(char *const *argv, int argc)
{
    int nographic = 0;

    for (int i = 0; i < argc; i++) {
        if (qemuopts_is_opt(argv[i], "serial") || qemuopts_is_opt(argv[i], "nodefaults"))
            return 0;
        nographic |= qemuopts_is_opt(argv[i], "nographic");
    }
    return nographic;
}

/* Copies option I of ARGV (and its value) into O, rewritten for a restore; the next index. */
static int rewrite_opt(struct argv_out *o, char *const *argv, int argc, int i,
                       const struct qemu_restore_opts *ro, int *pinned, int *nserial)
{
    const char *v;

    if (ro->machine && ro->machine[0] &&
        ((v = qemu_opt_value(argv, argc, i, "machine")) ||
         (v = qemu_opt_value(argv, argc, i, "M")))) {
        out_add(o, "%s", argv[i]);
        *pinned |= pin_machine(o, v, ro->machine);
        return i + 2;
    }
    if ((v = qemu_opt_value(argv, argc, i, "serial")) && strncmp(v, "file:", 5) == 0) {
        serial_file(o, v + 5, nserial);
        return i + 2;
    }
    if ((v = qemu_opt_value(argv, argc, i, "serial")) && ro->console && !*ro->console_made &&
        (strcmp(v, "stdio") == 0 || strcmp(v, "mon:stdio") == 0)) {
        console_socket(o, ro->console, v[0] == 'm');
        *ro->console_made = 1;
        return i + 2;
    }
    if ((v = qemu_opt_value(argv, argc, i, "chardev"))) {
        out_add(o, "%s", argv[i]);
        chardev(o, v);
        return i + 2;
    }
    out_add(o, "%s", argv[i]);
    return i + 1;
}

int qemu_argv_restore(char *const *portable, int argc, const struct qemu_restore_opts *ro,
                      char ***out)
{
    struct argv_out o = {0};
    int pinned = 0, nserial = 0, i = 0;

    *ro->console_made = 0;
    while (i < argc && !o.rc)
        i = rewrite_opt(&o, portable, argc, i, ro, &pinned, &nserial);
    if (ro->machine && ro->machine[0] && !pinned) {
        out_add(&o, "-machine");
        out_add(&o, "%s", ro->machine);
    }
    if (ro->console && !*ro->console_made && stdio_by_default(portable, argc)) {
        console_socket(&o, ro->console, 0);
        *ro->console_made = 1;
    }
    out_add(&o, "-qmp");
    out_add(&o, "unix:%s,server=on,wait=off", ro->qmp_path);
    out_add(&o, "-S");
    out_add(&o, "-incoming");
    out_add(&o, "defer");
    if (o.rc) {
        qemu_argv_free(o.v);
        return o.rc;
    }
    *out = o.v;
    return 0;
}

/* ---- the binary's version ---- */

/* Binaries' versions, remembered while their files stay the same: asking costs a QEMU start,
 * 0.1-0.2 s of a restore's time to running (its binary read from disk). A few binaries per host. */
#define VERSION_SLOTS 8
static struct {
    pthread_mutex_t lock;
    unsigned next; /* the slot a new binary takes */
    struct {
        char path[PATH_MAX];
        struct stat st;
        char version[32];
    } slot[VERSION_SLOTS];
} version_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int qemu_run(const char *binary, char *const *argv, char *out, size_t len, int *status)
{
    posix_spawn_file_actions_t fa;
    int pipefd[2], rc;
    size_t n = 0;
    ssize_t got;
    pid_t pid;

    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -errno;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDERR_FILENO);
    rc = -posix_spawn(&pid, binary, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    /* All of it is read, so that a child with more to say never blocks on a full pipe. */
    while (!rc) {
        char scratch[256];
        int room = n + 1 < len;

        got = read(pipefd[0], room ? out + n : scratch, room ? len - 1 - n : sizeof(scratch));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += room ? (size_t)got : 0;
    }
    close(pipefd[0]);
    if (!rc)
        while (waitpid(pid, status, 0) < 0 && errno == EINTR)
            ;
    if (len)
        out[n] = '\0';
    return rc;
}

/* Runs "BINARY -version" and reads "QEMU emulator version X.Y.Z" from its output. */
static int ask_version(const char *binary, char *version, size_t len)
{
    char *const argv[] = {(char *)binary, "-version", NULL};
    char out[512];
    int status, rc = qemu_run(binary, argv, out, sizeof(out), &status), a, b, c;

    if (rc)
        return rc;
    if (sscanf(out, "QEMU emulator version %d.%d.%d", &a, &b, &c) != 3)
        return -EPROTO;
    snprintf(version, len, "%d.%d.%d", a, b, c);
    return 0;
}

/* The slot of BINARY, or -1. Under the lock. */
static int version_slot(const char *binary)
{
    for (int i = 0; i < VERSION_SLOTS; i++)
        if (strcmp(version_cache.slot[i].path, binary) == 0)
            return i;
    return -1;
}

int qemu_binary_version(const char *binary, char *version, size_t len)
{
    struct stat st;
    int rc = 1, i;

    if (stat(binary, &st) < 0)
        return -errno;
    pthread_mutex_lock(&version_cache.lock);
    if ((i = version_slot(binary)) >= 0 && same_file(&version_cache.slot[i].st, &st)) {
        snprintf(version, len, "%s", version_cache.slot[i].version);
        rc = 0;
    }
    pthread_mutex_unlock(&version_cache.lock);
    if (rc <= 0)
        return rc;
    rc = ask_version(binary, version, len);
    pthread_mutex_lock(&version_cache.lock);
    if (!rc && strlen(binary) < sizeof(version_cache.slot[0].path)) {
        if ((i = version_slot(binary)) < 0)
            i = (int)(version_cache.next++ % VERSION_SLOTS);
        strcpy(version_cache.slot[i].path, binary);
        version_cache.slot[i].st = st;
        snprintf(version_cache.slot[i].version, sizeof(version_cache.slot[i].version), "%s",
                 version);
    }
    pthread_mutex_unlock(&version_cache.lock);
    return rc;
}

struct warm {
    int n;
    char *paths[];
};

static void *warm_main(void *arg)
{
    struct warm *w = arg;
    char version[32];

    for (int i = 0; i < w->n; i++) {
        qemu_binary_version(w->paths[i], version, sizeof(version)); /* a failure: asked again */
        free(w->paths[i]);
    }
    free(w);
    return NULL;
}

void qemu_versions_warm(const char *const *binaries, int n)
{
    struct warm *w;
    pthread_t t;
    pthread_attr_t a;
    int made = 0;

    n = n > VERSION_SLOTS ? VERSION_SLOTS : n;
    if (n <= 0 || !(w = calloc(1, sizeof(*w) + (size_t)n * sizeof(char *))))
        return;
    for (; w->n < n && (w->paths[w->n] = strdup(binaries[w->n])); w->n++)
        ;
    if (pthread_attr_init(&a) == 0) {
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        made = pthread_create(&t, &a, warm_main, w) == 0;
        pthread_attr_destroy(&a);
    }
    if (!made) {
        for (int i = 0; i < w->n; i++)
            free(w->paths[i]);
        free(w);
    }
}

int qemu_version_cmp(const char *a, const char *b)
{
    int va[3] = {0}, vb[3] = {0};

    sscanf(a, "%d.%d.%d", &va[0], &va[1], &va[2]);
    sscanf(b, "%d.%d.%d", &vb[0], &vb[1], &vb[2]);
    for (int i = 0; i < 3; i++)
        if (va[i] != vb[i])
            return va[i] < vb[i] ? -1 : 1;
    return 0;
}

/* In the forked children: only async-signal-safe calls until exec. */
static void child_exec(const char *binary, char *const *argv, const char *cwd, const char *log,
                       int keep_fd, int fd3, int report_fd)
{
    pid_t self = getpid();
    sigset_t none;
    int err, fd;

    /* Only this process writes to REPORT_FD: first its pid, then an errno if exec fails. */
    if (write(report_fd, &self, sizeof(self)) < 0)
        _exit(127);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    /* Before any open: descriptor 3 must be free for it. dup2 leaves the copy open at exec. */
    if (fd3 == QEMU_SPAWN_FD)
        fcntl(fd3, F_SETFD, 0);
    else if (fd3 >= 0 && dup2(fd3, QEMU_SPAWN_FD) < 0)
        _exit(127);
    fd = open("/dev/null", O_RDONLY);
    if (fd >= 0 && fd != STDIN_FILENO)
        dup2(fd, STDIN_FILENO);
    fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
    }
    /* Every descriptor of savefs is close-on-exec; this one QEMU keeps (a lease, lease.h). */
    if (keep_fd >= 0)
        fcntl(keep_fd, F_SETFD, 0);
    if (chdir(cwd) == 0)
        execv(binary, argv);
    err = errno;
    if (write(report_fd, &err, sizeof(err)) < 0)
        _exit(127);
    _exit(127);
}

static void middle_fork(const char *binary, char *const *argv, const char *cwd, const char *log,
                        int keep_fd, int fd3, int report_fd)
{
    setsid();
    if (fork() == 0)
        child_exec(binary, argv, cwd, log, keep_fd, fd3, report_fd);
    _exit(0);
}

static int read_full(int fd, void *buf, size_t len)
{
    ssize_t n;

    do
        n = read(fd, buf, len);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)len ? 0 : n == 0 ? -ENODATA : -EIO;
}

/* KEEP_FD stays open in the child as it is, FD3 is open there as descriptor 3 (each if >= 0). */
static int spawn(const char *binary, char *const *argv, const char *cwd, const char *log,
                 int keep_fd, int fd3, pid_t *pid, int *pidfd, char *err, size_t errlen);

int qemu_spawn(const char *binary, char *const *argv, const char *cwd, const char *log, int keep_fd,
               pid_t *pid, int *pidfd, char *err, size_t errlen)
{
    return spawn(binary, argv, cwd, log, keep_fd, -1, pid, pidfd, err, errlen);
}

int qemu_spawn_fd(const char *binary, char *const *argv, const char *cwd, const char *log,
                  int keep_fd, pid_t *pid, int *pidfd, char *err, size_t errlen)
{
    return spawn(binary, argv, cwd, log, -1, keep_fd, pid, pidfd, err, errlen);
}

static int spawn(const char *binary, char *const *argv, const char *cwd, const char *log,
                 int keep_fd, int fd3, pid_t *pid, int *pidfd, char *err, size_t errlen)
{
    int pipefd[2], exec_errno = 0, rc, status;
    pid_t middle;

    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -errno;
    middle = fork();
    if (middle == 0) {
        close(pipefd[0]);
        middle_fork(binary, argv, cwd, log, keep_fd, fd3, pipefd[1]);
    }
    close(pipefd[1]);
    if (middle < 0) {
        rc = -errno;
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(pipefd[0]);
        return rc;
    }
    waitpid(middle, &status, 0);
    rc = read_full(pipefd[0], pid, sizeof(*pid));
    if (!rc && *pid < 0)
        rc = -EAGAIN;
    /* The pipe closes on a successful exec; an errno arrives if exec failed. */
    if (!rc && read_full(pipefd[0], &exec_errno, sizeof(exec_errno)) == 0)
        rc = -exec_errno;
    close(pipefd[0]);
    if (rc) {
        snprintf(err, errlen, "start %s in %s: %s", binary, cwd, strerror(-rc));
        return rc;
    }
    *pidfd = (int)syscall(SYS_pidfd_open, *pid, 0);
    if (*pidfd < 0) {
        rc = -errno;
        snprintf(err, errlen, "pidfd_open %d: %s", (int)*pid, strerror(errno));
        kill(*pid, SIGKILL);
    }
    return rc;
}

int qemu_pid_is_incoming(pid_t pid)
{
    char binary[PATH_MAX], err[128], **argv = NULL;
    int argc = 0, found = 0;

    if (qemu_read_cmdline(pid, &argv, &argc, binary, sizeof(binary), err, sizeof(err)))
        return 0;
    for (int i = 0; i < argc; i++)
        found |= qemuopts_is_opt(argv[i], "incoming");
    qemu_argv_free(argv);
    return found && strstr(binary, "qemu") != NULL;
}

int qemu_wait_exit(int pidfd, int timeout_ms)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    int n;

    while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
        ;
    return n == 1;
}

int qemu_exited(int pidfd)
{
    return qemu_wait_exit(pidfd, 0);
}

void qemu_kill(int pidfd, int timeout_ms)
{
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    qemu_wait_exit(pidfd, timeout_ms);
}

void qemu_log_tail(const char *log, char *out, size_t len)
{
    int fd = open(log, O_RDONLY | O_CLOEXEC);
    off_t size;
    ssize_t n;
    char *p;

    out[0] = '\0';
    if (fd < 0)
        return;
    size = lseek(fd, 0, SEEK_END);
    if (size > (off_t)(len - 1))
        lseek(fd, size - (off_t)(len - 1), SEEK_SET);
    else
        lseek(fd, 0, SEEK_SET);
    n = read(fd, out, len - 1);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
    /* Whole lines only: a line cut at the front would read as QEMU's words but is not. */
    p = strchr(out, '\n');
    if (size > (off_t)(len - 1) && p)
        memmove(out, p + 1, strlen(p + 1) + 1);
    for (p = out; *p; p++)
        if (*p == '\n')
            *p = ';';
}

int qemu_pid_quit(pid_t pid)
{
    char path[64], line[512], *p;
    FILE *f;
    int quit;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (!(f = fopen(path, "re")))
        return errno == ENOENT || errno == ESRCH;
    /* The state follows the command name's closing parenthesis; the name may hold any byte. */
    quit = fgets(line, sizeof(line), f) && (p = strrchr(line, ')')) && (p[1] == ' ') &&
           (p[2] == 'Z' || p[2] == 'X');
    fclose(f);
    return quit;
}

int qemu_owner(pid_t pid, uid_t *uid, gid_t *gid)
{
    char path[64], line[256];
    unsigned long u = 0, g = 0;
    int have = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (!(f = fopen(path, "re")))
        return -errno;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Uid: %lu", &u) == 1)
            have |= 1;
        else if (sscanf(line, "Gid: %lu", &g) == 1)
            have |= 2;
    fclose(f);
    if (have != 3)
        return -EPROTO;
    *uid = (uid_t)u;
    *gid = (gid_t)g;
    return 0;
}
