/* fake_qemu: the test binary taken for QEMU (fake_qemu.h). The main thread serves QMP, one
 * client at a time; a second thread moves the migration's streams. */
#include "fake_qemu.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fake_qmp.h"
#include "fake_stream.h"

#define MAX_STREAMS          17 /* main and 16 channels */
#define STREAM_PACKETS       6
#define MAIN_STREAM_SIZE     (12u << 20) /* more than a restore reads ahead (3 x 2 MiB) */
#define FAKE_QEMU_LIFETIME_S 120
#define VANISH_EXIT_MS       300
#define MAIN_HEADER_LEN      8  /* "QEVM" and the format's version */
#define HANDSHAKE_LEN        64 /* a channel's MultiFDInit_t */
#define FAKE_TAKE_NAMES_S    5 /* seconds between a save's choice of its name and migrate, at most */
/* As QEMU 7.2: a migration is "completed" before its thread leaves the "finish-migrate" run state,
 * in which `cont` is refused (migration_iteration_finish, qmp_cont). */
#define FINISH_MIGRATE_MS 30

enum mig_status { MIG_NONE, MIG_ACTIVE, MIG_COMPLETED, MIG_FAILED, MIG_CANCELLED };

static const char *const status_names[] = {"none", "active", "completed", "failed", "cancelled"};

/* Set by the QMP thread before the stream thread starts, then only read there. */
static struct {
    const char *mode;
    char vanish_cmd[64];
    int vanish_at, vanish_seen;
    int running;
    int channels;
    char sock[108];
    int lfd; /* migrate-incoming's listener */
    pthread_t mover;
    int moving;
    atomic_int status;         /* enum mig_status; the stream thread moves it on */
    atomic_int cancel;         /* migrate_cancel came: the stream thread lets go */
    atomic_llong finish_until; /* CLOCK_MONOTONIC ms: "finish-migrate" until then */
    int fds[MAX_STREAMS];
} vm = {.mode = "ok", .channels = 2, .lfd = -1};

int fake_qemu_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-qmp") == 0 || strcmp(argv[i], "-version") == 0)
            return 1;
    return 0;
}

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line to FAKE_QEMU_LOG, in one write: it is whole even if the process is killed next. */
static void log_line(const char *fmt, ...)
{
    const char *path = getenv("FAKE_QEMU_LOG");
    char line[256];
    va_list ap;
    int fd, len;

    if (path == NULL)
        return;
    va_start(ap, fmt);
    len = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0 && write(fd, line, (size_t)len) != len)
        perror("fake QEMU: log");
    if (fd >= 0)
        close(fd);
}

static int count_entries(const char *dir)
{
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    int n = 0;

    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 while the last migration has completed but its thread has not left "finish-migrate". */
static int finishing(void)
{
    return now_ms() < atomic_load(&vm.finish_until);
}

static void sleep_ms(int ms)
{
    (void)poll(NULL, 0, ms);
}

/* ---- the streams ---- */

static void send_all(int fd, const struct buf *b, size_t len)
{
    size_t off = 0;
    ssize_t n;

    while (off < len && (n = send(fd, b->p + off, len - off, MSG_NOSIGNAL)) > 0)
        off += (size_t)n;
}

static int connect_sock(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Until the peer shuts the stream down (savefs's copier, cancelled) or a cancel came. */
static void hold(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char b[4096];

    while (!atomic_load(&vm.cancel))
        if (poll(&p, 1, 50) == 1 && read(fd, b, sizeof(b)) <= 0)
            return;
}

/* The source's side: main, then each channel, as QEMU 7.2 connects them. "ok" sends them whole
 * and completes; "fail" and "stall" send only the handshakes and keep the streams open. */
static void *send_streams(void *arg)
{
    int whole = strcmp(vm.mode, "ok") == 0 || strncmp(vm.mode, "vanish", 6) == 0;
    struct chan ch[MAX_STREAMS] = {0};
    uint64_t rng = 42;
    int n = 1 + vm.channels, i;

    (void)arg;
    gen_main(&ch[0].b, MAIN_STREAM_SIZE, &rng);
    for (i = 1; i < n; i++)
        gen_channel(&ch[i], i - 1, STREAM_PACKETS, &rng, GEN_PLAIN);
    for (i = 0; i < n; i++) {
        vm.fds[i] = connect_sock(vm.sock);
        send_all(vm.fds[i], &ch[i].b, whole ? ch[i].b.len : i ? HANDSHAKE_LEN : MAIN_HEADER_LEN);
    }
    if (!whole)
        atomic_store(&vm.status, strcmp(vm.mode, "fail") == 0 ? MIG_FAILED : MIG_ACTIVE);
    for (i = 0; i < n; i++) {
        if (!whole)
            hold(vm.fds[i]);
        close(vm.fds[i]);
        chan_free(&ch[i]);
    }
    if (whole) {
        atomic_store(&vm.finish_until, now_ms() + FINISH_MIGRATE_MS);
        atomic_store(&vm.status, MIG_COMPLETED);
    }
    return NULL;
}

/* The destination's side: the copier connects main and each channel. "ok" reads every byte and
 * completes, "fail" fails once it read them, "stall" never reads (savefs kills it). */
static void *read_streams(void *arg)
{
    char b[65536];
    int n = 1 + vm.channels, i;

    (void)arg;
    for (i = 0; i < n; i++)
        vm.fds[i] = accept4(vm.lfd, NULL, NULL, SOCK_CLOEXEC);
    while (strcmp(vm.mode, "stall") == 0)
        sleep_ms(1000);
    for (i = 0; i < n; i++) {
        while (vm.fds[i] >= 0 && read(vm.fds[i], b, sizeof(b)) > 0)
            ;
        if (vm.fds[i] >= 0)
            close(vm.fds[i]);
    }
    atomic_store(&vm.status, strcmp(vm.mode, "fail") == 0 ? MIG_FAILED : MIG_COMPLETED);
    return NULL;
}

/* URI "unix:PATH" into vm.sock; then the streams move in a thread of their own. */
static int start_streams(json_t *args, int incoming)
{
    const char *uri = json_string_value(json_object_get(args, "uri"));

    if (uri == NULL || strncmp(uri, "unix:", 5) != 0)
        return -1;
    /* A save after a save (keep-running): the last migration's streams are over. */
    if (vm.moving && pthread_join(vm.mover, NULL) != 0)
        return -1;
    vm.moving = 0;
    atomic_store(&vm.cancel, 0);
    snprintf(vm.sock, sizeof(vm.sock), "%s", uri + 5);
    if (incoming && (vm.lfd = fake_qmp_listen(vm.sock)) < 0)
        return -1;
    atomic_store(&vm.status, MIG_ACTIVE);
    vm.moving = pthread_create(&vm.mover, NULL, incoming ? read_streams : send_streams, NULL) == 0;
    return vm.moving ? 0 : -1;
}

/* With FAKE_QEMU_TAKE_NAMES set, another host's saves publish, while this save runs, a
 * snapshot under each default name of the last seconds, the one this save chose among them. */
static void take_names(void)
{
    const char *snaps = getenv("FAKE_QEMU_SNAPS");
    char path[PATH_MAX], stamp[32];
    time_t now = time(NULL);
    struct tm tm;

    if (!getenv("FAKE_QEMU_TAKE_NAMES") || !snaps)
        return;
    for (time_t t = now - FAKE_TAKE_NAMES_S; t <= now; t++)
        if (gmtime_r(&t, &tm) && strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm) &&
            snprintf(path, sizeof(path), "%s/%s", snaps, stamp) < (int)sizeof(path))
            (void)mkdir(path, 0700);
    log_line("took the default names\n");
}

/* ---- QMP ---- */

static void answer(int fd, json_int_t id, json_t *ret)
{
    json_t *msg = json_pack("{s:o, s:I}", "return", ret ? ret : json_object(), "id", id);
    char *text = json_dumps(msg, JSON_COMPACT);

    fake_qmp_send(fd, text);
    fake_qmp_send(fd, "\n");
    free(text);
    json_decref(msg);
}

static json_t *migrate_info(void)
{
    int st = atomic_load(&vm.status);
    json_t *ret = json_object();

    if (st != MIG_NONE)
        json_object_set_new(ret, "status", json_string(status_names[st]));
    if (st == MIG_FAILED)
        json_object_set_new(ret, "error-desc", json_string(FAKE_QEMU_ERROR_DESC));
    return ret;
}

static json_t *capabilities(void)
{
    return json_pack("[{s:s, s:b}, {s:s, s:b}]", "capability", "multifd", "state", 0, "capability",
                     "xbzrle", "state", 0);
}

/* The answer to NAME, or NULL for a command this fake does not know. */
static json_t *run(const char *name, json_t *args)
{
    if (strcmp(name, "query-version") == 0)
        return json_pack("{s:{s:i, s:i, s:i}, s:s}", "qemu", "major", 7, "minor", 2, "micro", 0,
                         "package", "");
    if (strcmp(name, "query-status") == 0)
        return json_pack("{s:s, s:b}", "status",
                         finishing()  ? "finish-migrate"
                         : vm.running ? "running"
                                      : "paused",
                         "running", vm.running);
    if (strcmp(name, "qom-get") == 0)
        return json_string("pc-i440fx-7.2-machine");
    if (strcmp(name, "query-memory-size-summary") == 0)
        return json_pack("{s:I}", "base-memory", (json_int_t)64 << 20);
    if (strcmp(name, "query-uuid") == 0)
        return json_pack("{s:s}", "UUID", "00000000-0000-0000-0000-000000000000");
    if (strcmp(name, "query-migrate") == 0)
        return migrate_info();
    if (strcmp(name, "query-migrate-capabilities") == 0)
        return capabilities();
    if (strcmp(name, "query-migrate-parameters") == 0)
        return json_pack("{s:i, s:s}", "multifd-channels", 2, "multifd-compression", "none");
    if (strcmp(name, "migrate-set-parameters") == 0) {
        json_t *c = json_object_get(args, "multifd-channels");
        json_t *bw = json_object_get(args, "max-bandwidth");
        if (bw) /* the cap a save asks for (rate=), or none */
            log_line("max-bandwidth %lld\n", (long long)json_integer_value(bw));
        if (c && json_integer_value(c) > 0 && json_integer_value(c) < MAX_STREAMS)
            vm.channels = (int)json_integer_value(c);
        return json_object();
    }
    if (strcmp(name, "query-yank") == 0 || strcmp(name, "query-block") == 0)
        return json_array();
    if (strcmp(name, "stop") == 0 || strcmp(name, "cont") == 0) {
        vm.running = name[0] == 'c';
        return json_object();
    }
    if (strcmp(name, "migrate_cancel") == 0) {
        int active = MIG_ACTIVE;
        atomic_store(&vm.cancel, 1);
        atomic_compare_exchange_strong(&vm.status, &active, MIG_CANCELLED);
        return json_object();
    }
    if (strcmp(name, "migrate") == 0)
        take_names();
    if (strcmp(name, "migrate") == 0 || strcmp(name, "migrate-incoming") == 0)
        return start_streams(args, name[7] == '-') == 0 ? json_object() : NULL;
    if (strcmp(name, "migrate-set-capabilities") == 0)
        return json_object();
    return NULL;
}

/* Serves one client until it hangs up; 1 once "quit" came. */
static int serve(int fd)
{
    char name[128];
    json_int_t id;
    json_t *args, *ret;

    fake_qmp_send(fd, FAKE_QMP_GREETING);
    while (fake_qmp_read(fd, name, sizeof(name), &id, &args) == 0) {
        if (strcmp(name, vm.vanish_cmd) == 0 && ++vm.vanish_seen == vm.vanish_at) {
            /* As QEMU dies: its monitor closes first, the process ends a moment later. */
            log_line("vanished at %s %d\n", name, vm.vanish_seen);
            fprintf(stderr, "fake QEMU: vanished at %s\n", name); /* its log's last words */
            shutdown(fd, SHUT_RDWR);
            sleep_ms(VANISH_EXIT_MS);
            _exit(3);
        }
        if (strcmp(name, "quit") == 0) {
            log_line("%s snapshots=%d\n", name, count_entries(getenv("FAKE_QEMU_SNAPS")));
            answer(fd, id, NULL);
            json_decref(args);
            return 1;
        }
        log_line("%s\n", name);
        if (strcmp(name, "cont") == 0 && finishing()) {
            log_line("cont refused: finish-migrate\n");
            fake_qmp_answer(fd,
                            "{\"id\": %lld, \"error\": {\"class\": \"GenericError\", "
                            "\"desc\": \"Migration is not finalized yet\"}}\n",
                            id);
            json_decref(args);
            continue;
        }
        ret = strcmp(name, "qmp_capabilities") == 0 ? json_object() : run(name, args);
        if (ret)
            answer(fd, id, ret);
        else
            fake_qmp_answer(fd,
                            "{\"id\": %lld, \"error\": {\"class\": \"CommandNotFound\", "
                            "\"desc\": \"not in the fake\"}}\n",
                            id);
        json_decref(args);
    }
    return 0;
}

static void parse_mode(void)
{
    const char *mode = getenv("FAKE_QEMU_MODE");

    if (mode != NULL)
        vm.mode = mode;
    if (sscanf(vm.mode, "vanish:%63[^:]:%d", vm.vanish_cmd, &vm.vanish_at) != 2)
        vm.vanish_cmd[0] = '\0';
}

int fake_qemu_main(int argc, char **argv)
{
    char path[108] = "";
    int lfd, fd, quit = 0;

    /* A fake that savefs started and no test quit or killed (the test died) ends itself. */
    alarm(FAKE_QEMU_LIFETIME_S);
    vm.running = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-version") == 0) {
            printf("QEMU emulator version 7.2.0 (fake)\n");
            return 0;
        }
        if (strcmp(argv[i], "-S") == 0)
            vm.running = 0;
        if (strcmp(argv[i], "-qmp") == 0 && i + 1 < argc)
            sscanf(argv[i + 1], "unix:%107[^,]", path);
    }
    parse_mode();
    unlink(path);
    lfd = fake_qmp_listen(path);
    if (lfd < 0) {
        fprintf(stderr, "fake QEMU: listen on %s: %s\n", path, strerror(errno));
        return 1;
    }
    while (!quit && (fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
        quit = serve(fd);
        close(fd);
    }
    unlink(path);
    return 0;
}
