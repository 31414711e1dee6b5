/* test_qmp: the QMP client against a real QEMU (-machine none, started and killed here by pid)
 * and against scripted fake servers in a thread for what QEMU will not do on demand: events
 * before answers, split and merged writes, garbage, hang-ups, silence, huge lines. */

#include "fake_qmp.h"
#include "qmp.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static atomic_int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            atomic_fetch_add(&failures, 1);                                                        \
        }                                                                                          \
    } while (0)

/* Checks that a call returned WANT, printing the call's message if not. */
#define CHECK_RC(rc, want, err)                                                                    \
    do {                                                                                           \
        int rc_ = (rc);                                                                            \
        if (rc_ != (want)) {                                                                       \
            fprintf(stderr, "%s:%d: got %d (%s), want %s = %d; err: %s\n", __FILE__, __LINE__,     \
                    rc_, strerror(-rc_), #want, (want), (err));                                    \
            atomic_fetch_add(&failures, 1);                                                        \
        }                                                                                          \
    } while (0)

#define CHECK_HAS(str, sub)                                                                        \
    do {                                                                                           \
        if (strstr((str), (sub)) == NULL) {                                                        \
            fprintf(stderr, "%s:%d: \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, (str), (sub));     \
            atomic_fetch_add(&failures, 1);                                                        \
        }                                                                                          \
    } while (0)

static char tmpdir[64];
static pid_t qemu_pid = -1;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *str_or(const char *s)
{
    return s ? s : "";
}

static void sleep_ms(int ms)
{
    (void)poll(NULL, 0, ms);
}

static int unix_addr(struct sockaddr_un *sa, const char *path)
{
    size_t len = strlen(path);

    if (len >= sizeof(sa->sun_path))
        return -1;
    memcpy(sa->sun_path, path, len + 1);
    return 0;
}

/* ---- the real QEMU ---- */

/* Does PATH accept connections yet? QEMU binds its socket a moment before it listens. The probe
 * hangs up at once, and QEMU goes back to listening. */
static int probe(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd, rc = -1;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (unix_addr(&sa, path) == 0)
        rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    return rc;
}

/* Starts QEMU with its QMP socket at PATH and waits for the socket to appear. */
static pid_t qemu_start(const char *path)
{
    const char *bin = getenv("QEMU") ? getenv("QEMU") : "qemu-system-x86_64";
    char qmparg[256];
    struct stat st;
    pid_t pid, parent = getpid();
    int i, status;

    snprintf(qmparg, sizeof(qmparg), "unix:%s,server=on,wait=off", path);
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        /* Dies with the test, however the test ends. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(127);
        execlp(bin, bin, "-machine", "none", "-nodefaults", "-display", "none", "-qmp", qmparg,
               (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    for (i = 0; i < 1000; i++) {
        if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && probe(path) == 0)
            return pid;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "%s exited before creating %s (status 0x%x)\n", bin, path, status);
            return -1;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "%s did not create %s within 10 s\n", bin, path);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void qemu_stop(void)
{
    if (qemu_pid <= 0)
        return;
    if (kill(qemu_pid, SIGKILL) < 0)
        perror("kill qemu");
    if (waitpid(qemu_pid, NULL, 0) < 0)
        perror("waitpid qemu");
    qemu_pid = -1;
}

/* A client that must time out because another one holds the monitor. */
static void *busy_client(void *arg)
{
    const char *path = arg;
    struct qmp *q = NULL;
    char err[512];
    int64_t t0 = now_ms(), dt;
    int rc;

    rc = qmp_connect(&q, path, 400, err, sizeof(err));
    dt = now_ms() - t0;
    CHECK_RC(rc, -ETIMEDOUT, err);
    CHECK(q == NULL);
    CHECK_HAS(err, "another client holds the monitor");
    CHECK(dt >= 390 && dt < 1400);
    qmp_close(q);
    return NULL;
}

static void test_real_qemu(void)
{
    char path[128], err[512];
    struct qmp *q = NULL;
    json_t *ret = NULL, *args = NULL;
    pthread_t th[3];
    int rc, i;

    snprintf(path, sizeof(path), "%s/t.qmp", tmpdir);
    qemu_pid = qemu_start(path);
    CHECK(qemu_pid > 0);
    if (qemu_pid <= 0)
        return;

    /* connect, greeting, capabilities */
    rc = qmp_connect(&q, path, 5000, err, sizeof(err));
    CHECK_RC(rc, 0, err);
    if (rc < 0)
        return;
    CHECK(qmp_peer_pid(q) == qemu_pid);

    /* query-version */
    rc = qmp_cmd(q, "query-version", NULL, &ret, 2000, err, sizeof(err));
    CHECK_RC(rc, 0, err);
    CHECK(json_integer_value(json_object_get(json_object_get(ret, "qemu"), "major")) >= 2);
    CHECK(json_is_string(json_object_get(ret, "package")));
    json_decref(ret);

    /* QMP errors: the class and description in ERR, the connection still usable */
    ret = json_true();
    rc = qmp_cmd(q, "no-such-command", NULL, &ret, 2000, err, sizeof(err));
    CHECK_RC(rc, -EIO, err);
    CHECK(ret == NULL);
    CHECK_HAS(err, "CommandNotFound");
    CHECK_HAS(err, "no-such-command");
    CHECK_HAS(err, path);
    args = json_pack("{s:s}", "bogus", "x");
    rc = qmp_cmd(q, "query-status", args, NULL, 2000, err, sizeof(err));
    CHECK_RC(rc, -EIO, err);
    CHECK_HAS(err, "query-status: GenericError:");
    CHECK(args->refcount == 1);
    json_decref(args);
    rc = qmp_cmd(q, "query-status", NULL, &ret, 2000, err, sizeof(err));
    CHECK_RC(rc, 0, err);
    CHECK(json_is_string(json_object_get(ret, "status")));
    json_decref(ret);
    args = json_integer(1);
    rc = qmp_cmd(q, "query-status", args, NULL, 2000, err, sizeof(err));
    CHECK_RC(rc, -EINVAL, err);
    json_decref(args);

    /* more clients while the first holds the monitor: QEMU queues one without greeting it, and
     * the listen backlog refuses the rest (EAGAIN); all time out */
    for (i = 0; i < 3; i++)
        CHECK(pthread_create(&th[i], NULL, busy_client, path) == 0);
    for (i = 0; i < 3; i++)
        CHECK(pthread_join(th[i], NULL) == 0);

    /* the first is unaffected; once it leaves, a new client gets in */
    rc = qmp_cmd(q, "query-version", NULL, NULL, 2000, err, sizeof(err));
    CHECK_RC(rc, 0, err);
    qmp_close(q);
    rc = qmp_connect(&q, path, 5000, err, sizeof(err));
    CHECK_RC(rc, 0, err);
    if (rc == 0) {
        CHECK(qmp_peer_pid(q) == qemu_pid);
        rc = qmp_cmd(q, "query-version", NULL, NULL, 2000, err, sizeof(err));
        CHECK_RC(rc, 0, err);
        qmp_close(q);
    }

    /* QEMU gone: a closed connection, then a refused one */
    rc = qmp_connect(&q, path, 5000, err, sizeof(err));
    CHECK_RC(rc, 0, err);
    qemu_stop();
    if (rc == 0) {
        rc = qmp_cmd(q, "query-version", NULL, NULL, 2000, err, sizeof(err));
        CHECK_RC(rc, -ECONNRESET, err);
        CHECK_HAS(err, "query-version");
        qmp_close(q);
    }
    rc = qmp_connect(&q, path, 1000, err, sizeof(err));
    CHECK_RC(rc, -ECONNREFUSED, err);
    CHECK_HAS(err, path);
    CHECK_HAS(err, "connect: Connection refused");
    unlink(path);
}

/* ---- connect failures without QEMU ---- */

static void test_connect_errors(void)
{
    char path[200], err[512];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct qmp *q = (struct qmp *)&q;
    int64_t t0;
    int rc, fd;

    snprintf(path, sizeof(path), "%s/missing.qmp", tmpdir);
    t0 = now_ms();
    rc = qmp_connect(&q, path, 1000, err, sizeof(err));
    CHECK_RC(rc, -ENOENT, err);
    CHECK(q == NULL);
    CHECK(now_ms() - t0 < 500);
    CHECK_HAS(err, "QMP ");
    CHECK_HAS(err, path);
    CHECK_HAS(err, "connect: No such file or directory");

    /* a socket bound but not listening */
    snprintf(path, sizeof(path), "%s/deaf.qmp", tmpdir);
    CHECK(unix_addr(&sa, path) == 0);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    rc = qmp_connect(&q, path, 1000, err, sizeof(err));
    CHECK_RC(rc, -ECONNREFUSED, err);
    CHECK_HAS(err, path);
    close(fd);
    unlink(path);

    /* too long for sun_path */
    memset(path, 'x', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    rc = qmp_connect(&q, path, 1000, err, sizeof(err));
    CHECK_RC(rc, -ENAMETOOLONG, err);

    /* no room for a message is fine */
    rc = qmp_connect(&q, "/nonexistent/x.qmp", 1000, NULL, 0);
    CHECK_RC(rc, -ENOENT, "(none)");
    rc = qmp_connect(&q, "/nonexistent/x.qmp", 1000, err, 8);
    CHECK_RC(rc, -ENOENT, err);
    CHECK(strlen(err) == 7);
}

/* ---- fake servers ---- */

/* Sends LINE (LEN bytes) again and again, 64 KiB at a time so that the socket stays full whatever
 * the client does, until the client hangs up or FLOOD_MS pass: a client that never gives up
 * fails its timing checks instead of hanging the test. */
#define FLOOD_MS 10000
static void srv_flood(int fd, const char *line, size_t len)
{
    struct timeval tv = {.tv_sec = 1};
    int sndbuf = 8 << 20;
    int64_t end = now_ms() + FLOOD_MS;
    size_t reps = len < (64u << 10) ? (64u << 10) / len : 1, size = reps * len, done, i;
    char *block = malloc(size);
    ssize_t n = 0;

    CHECK(block != NULL && setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0);
    /* Megabytes queued (root may exceed wmem_max): the client never drains the socket before the
     * server is scheduled again, as with a peer on another core. */
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
    for (i = 0; block != NULL && i < reps; i++)
        memcpy(block + i * len, line, len);
    while (block != NULL && n >= 0 && now_ms() < end)
        for (done = 0; done < size && n >= 0; done += n) {
            n = send(fd, block + done, size - done, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR)
                n = 0;
        }
    free(block); /* n < 0: the client hung up */
}

/* HEAD, PAD bytes C, then TAIL: lines that move megabytes quickly. NUL-terminated. */
static char *padded_line(const char *head, char c, size_t pad, const char *tail, size_t *len)
{
    size_t hlen = strlen(head), tlen = strlen(tail);
    char *line = malloc(hlen + pad + tlen + 1);

    if (line == NULL)
        return NULL;
    memcpy(line, head, hlen);
    memset(line + hlen, c, pad);
    memcpy(line + hlen + pad, tail, tlen + 1);
    *len = hlen + pad + tlen;
    return line;
}

/* Connects to a fake server running SCRIPT; NULL with the failure counted if that fails. */
static struct qmp *fake_connect(struct fake_qmp *f, const char *name, void (*script)(int fd))
{
    char err[512];
    struct qmp *q = NULL;
    int rc;

    fake_qmp_start(f, tmpdir, name, script);
    rc = qmp_connect(&q, f->path, 2000, err, sizeof(err));
    CHECK_RC(rc, 0, err);
    if (rc == 0)
        CHECK(qmp_peer_pid(q) == getpid());
    return q;
}

/* events and blank lines before the answer are skipped; arguments are passed through */
static void script_event_first(int fd)
{
    json_t *args = NULL;
    json_int_t id;
    char *text;
    char buf[1024];

    fake_qmp_handshake(fd);
    id = fake_qmp_expect(fd, "echo", &args);
    fake_qmp_send(fd,
                  "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\n");
    fake_qmp_send(fd, "\n{\"event\": \"RESUME\"}\r\n");
    text = json_dumps(args, JSON_COMPACT);
    snprintf(buf, sizeof(buf), "{\"return\": %s, \"id\": %lld}\n", text ? text : "null",
             (long long)id);
    fake_qmp_send(fd, buf);
    free(text);
    json_decref(args);
    /* an answer without arguments: "arguments" absent, not null */
    id = fake_qmp_expect(fd, "bare", &args);
    CHECK(args == NULL);
    fake_qmp_answer(fd, "{\"return\": 7, \"id\": %lld}\n", id);
}

static void test_event_first(void)
{
    struct fake_qmp f;
    struct qmp *q = fake_connect(&f, "event", script_event_first);
    json_t *args = json_pack("{s:i, s:s}", "a", 1, "b", "two"), *ret = NULL;
    char err[512];
    int rc;

    if (q != NULL) {
        rc = qmp_cmd(q, "echo", args, &ret, 2000, err, sizeof(err));
        CHECK_RC(rc, 0, err);
        CHECK(json_equal(ret, args));
        CHECK(args->refcount == 1);
        json_decref(ret);
        rc = qmp_cmd(q, "bare", NULL, &ret, 2000, err, sizeof(err));
        CHECK_RC(rc, 0, err);
        CHECK(json_integer_value(ret) == 7);
        json_decref(ret);
        qmp_close(q);
    }
    json_decref(args);
    fake_qmp_join(&f);
}

/* A previous client's undelivered answer and event, then the greeting: QEMU sends what it still
 * held for the client before to the next one. */
static void script_stale_first(int fd)
{
    fake_qmp_send(fd, "{\"return\": {}, \"id\": 3}\n{\"timestamp\": {}, \"event\": \"STOP\"}\n");
    fake_qmp_handshake(fd);
    fake_qmp_answer(fd, "{\"return\": 5, \"id\": %lld}\n", fake_qmp_expect(fd, "five", NULL));
}

static void test_stale_first(void)
{
    struct fake_qmp f;
    struct qmp *q = fake_connect(&f, "stale", script_stale_first);
    json_t *ret = NULL;
    char err[512];
    int rc;

    if (q != NULL) {
        rc = qmp_cmd(q, "five", NULL, &ret, 2000, err, sizeof(err));
        CHECK_RC(rc, 0, err);
        CHECK(json_integer_value(ret) == 5);
        json_decref(ret);
        qmp_close(q);
    }
    fake_qmp_join(&f);
}

/* qmp_wait: an event after an answer (read with it, then dropped), one that comes later, the
 * other descriptor, and the time running out */
static void script_wait(int fd)
{
    json_int_t id;

    fake_qmp_handshake(fd);
    id = fake_qmp_expect(fd, "query-migrate", NULL);
    fake_qmp_answer(fd, "{\"return\": {}, \"id\": %lld}\n{\"event\": \"STOP\"}\n", id);
    id = fake_qmp_expect(fd, "query-migrate", NULL);
    fake_qmp_answer(fd, "{\"return\": {}, \"id\": %lld}\n", id);
    sleep_ms(100);
    fake_qmp_send(fd, "{\"event\": \"MIGRATION\", \"data\": {\"status\": \"completed\"}}\n");
    id = fake_qmp_expect(fd, "query-migrate", NULL);
    fake_qmp_answer(fd, "{\"return\": {}, \"id\": %lld}\n", id);
    id = fake_qmp_expect(fd, "quit", NULL);
    fake_qmp_answer(fd, "{\"return\": {}, \"id\": %lld}\n", id);
}

static void test_wait(void)
{
    struct fake_qmp f;
    struct qmp *q = fake_connect(&f, "wait", script_wait);
    char err[512];
    int p[2], rc;
    int64_t t0;

    if (q == NULL || pipe(p) < 0) {
        CHECK(0);
        return;
    }
    rc = qmp_cmd(q, "query-migrate", NULL, NULL, 2000, err, sizeof(err));
    CHECK_RC(rc, 0, err);
    CHECK(qmp_wait(q, p[0], 1000) == 1); /* the STOP read with the answer */
    rc = qmp_cmd(q, "query-migrate", NULL, NULL, 2000, err, sizeof(err));
    CHECK_RC(rc, 0, err);
    t0 = now_ms();
    CHECK(qmp_wait(q, p[0], 5000) == 1); /* the MIGRATION event, 100 ms later */
    CHECK(now_ms() - t0 >= 50 && now_ms() - t0 < 4000);
    rc = qmp_cmd(q, "query-migrate", NULL, NULL, 2000, err, sizeof(err));
    CHECK_RC(rc, 0, err);
    t0 = now_ms();
    CHECK(qmp_wait(q, p[0], 50) == 0); /* nothing: the time runs out */
    CHECK(now_ms() - t0 >= 40);
    CHECK(write(p[1], "x", 1) == 1);
    CHECK(qmp_wait(q, p[0], 5000) == 2);
    rc = qmp_cmd(q, "quit", NULL, NULL, 2000, err, sizeof(err));
    CHECK_RC(rc, 0, err);
    qmp_close(q);
    close(p[0]);
    close(p[1]);
    fake_qmp_join(&f);
}

/* the greeting and a reply in pieces; two messages in one write */
static void script_split(int fd)
{
    json_int_t id;
    char buf[256];

    fake_qmp_send(fd, "{\"QMP\": {\"ver");
    sleep_ms(30);
    fake_qmp_send(fd, "sion\": {}, \"capabilities\": []}}");
    sleep_ms(30);
    fake_qmp_send(fd, "\n");
    fake_qmp_answer(fd, "{\"return\": {}, \"id\": %lld}\n",
                    fake_qmp_expect(fd, "qmp_capabilities", NULL));
    id = fake_qmp_expect(fd, "split", NULL);
    fake_qmp_send(fd, "{\"return\": {\"status\": \"run");
    sleep_ms(30);
    fake_qmp_send(fd, "ning\"}, \"i");
    sleep_ms(30);
    fake_qmp_answer(fd, "d\": %lld}", id);
    sleep_ms(30);
    fake_qmp_send(fd, "\n");
    id = fake_qmp_expect(fd, "merged", NULL);
    snprintf(buf, sizeof(buf),
             "{\"event\": \"X\"}\n{\"return\": 1, \"id\": %lld}\n{\"event\": \"Y\"}\n",
             (long long)id);
    fake_qmp_send(fd, buf);
    id = fake_qmp_expect(fd, "after", NULL);
    fake_qmp_answer(fd, "{\"return\": 2, \"id\": %lld}\n", id);
}

static void test_split(void)
{
    struct fake_qmp f;
    struct qmp *q = fake_connect(&f, "split", script_split);
    json_t *ret = NULL;
    char err[512];
    int rc;

    if (q != NULL) {
        rc = qmp_cmd(q, "split", NULL, &ret, 2000, err, sizeof(err));
        CHECK_RC(rc, 0, err);
        CHECK(strcmp(str_or(json_string_value(json_object_get(ret, "status"))), "running") == 0);
        json_decref(ret);
        rc = qmp_cmd(q, "merged", NULL, &ret, 2000, err, sizeof(err));
        CHECK_RC(rc, 0, err);
        CHECK(json_integer_value(ret) == 1);
        json_decref(ret);
        rc = qmp_cmd(q, "after", NULL, &ret, 2000, err, sizeof(err));
        CHECK_RC(rc, 0, err);
        CHECK(json_integer_value(ret) == 2);
        json_decref(ret);
        qmp_close(q);
    }
    fake_qmp_join(&f);
}

/* QMP errors, with and without an id */
static void script_errors(int fd)
{
    json_int_t id;

    fake_qmp_handshake(fd);
    id = fake_qmp_expect(fd, "device_del", NULL);
    fake_qmp_answer(
        fd, "{\"id\": %lld, \"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"no dev\"}}\n",
        id);
    (void)fake_qmp_expect(fd, "broken", NULL);
    fake_qmp_send(fd,
                  "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\n");
    id = fake_qmp_expect(fd, "weird", NULL);
    fake_qmp_answer(fd, "{\"id\": %lld, \"error\": 5}\n", id);
}

static void test_errors(void)
{
    struct fake_qmp f;
    struct qmp *q = fake_connect(&f, "errors", script_errors);
    char err[512];
    int rc;

    if (q != NULL) {
        rc = qmp_cmd(q, "device_del", NULL, NULL, 2000, err, sizeof(err));
        CHECK_RC(rc, -EIO, err);
        CHECK_HAS(err, ": device_del: DeviceNotFound: no dev");
        CHECK_HAS(err, f.path);
        rc = qmp_cmd(q, "broken", NULL, NULL, 2000, err, sizeof(err));
        CHECK_RC(rc, -EIO, err);
        CHECK_HAS(err, "broken: GenericError: JSON parse error");
        rc = qmp_cmd(q, "weird", NULL, NULL, 2000, err, sizeof(err));
        CHECK_RC(rc, -EIO, err);
        qmp_close(q);
    }
    fake_qmp_join(&f);
}

/* a timed-out command's late answer is skipped, the next one gets its own */
static void script_late(int fd)
{
    json_int_t id1, id2;

    fake_qmp_handshake(fd);
    id1 = fake_qmp_expect(fd, "slow", NULL);
    id2 = fake_qmp_expect(fd, "fast", NULL);
    CHECK(id2 != id1);
    fake_qmp_answer(fd, "{\"return\": \"stale\", \"id\": %lld}\n", id1);
    fake_qmp_answer(fd, "{\"return\": \"fresh\", \"id\": %lld}\n", id2);
}

static void test_late(void)
{
    struct fake_qmp f;
    struct qmp *q = fake_connect(&f, "late", script_late);
    json_t *ret = NULL;
    char err[512];
    int64_t t0, dt;
    int rc;

    if (q != NULL) {
        t0 = now_ms();
        rc = qmp_cmd(q, "slow", NULL, &ret, 200, err, sizeof(err));
        dt = now_ms() - t0;
        CHECK_RC(rc, -ETIMEDOUT, err);
        CHECK(ret == NULL);
        CHECK(dt >= 190 && dt < 1000);
        CHECK_HAS(err, "slow: no answer within 200 ms");
        rc = qmp_cmd(q, "fast", NULL, &ret, 2000, err, sizeof(err));
        CHECK_RC(rc, 0, err);
        CHECK(strcmp(str_or(json_string_value(ret)), "fresh") == 0);
        json_decref(ret);
        qmp_close(q);
    }
    fake_qmp_join(&f);
}

/* QEMU prints uint64 values beyond int64, which jansson alone refuses: they become reals */
static void script_wide(int fd)
{
    fake_qmp_handshake(fd);
    fake_qmp_answer(fd,
                    "{\"return\": {\"max-bandwidth\": 18446744073709551615, \"n\": 5, \"e\": 1e-5, "
                    "\"s\": \"x\\\" 18446744073709551616\", \"neg\": -9223372036854775809, "
                    "\"a\": [9223372036854775807, -9223372036854775808, 9223372036854775808]}, "
                    "\"id\": %lld}\n",
                    fake_qmp_expect(fd, "query-migrate-parameters", NULL));
    (void)fake_qmp_expect(fd, "overflow", NULL);
    fake_qmp_send(fd, "{\"return\": 1e999, \"id\": 2}\n");
}

static void test_wide(void)
{
    struct fake_qmp f;
    struct qmp *q = fake_connect(&f, "wide", script_wide);
    json_t *ret = NULL, *a;
    char err[512];
    int rc;

    if (q != NULL) {
        rc = qmp_cmd(q, "query-migrate-parameters", NULL, &ret, 2000, err, sizeof(err));
        CHECK_RC(rc, 0, err);
        CHECK(json_is_real(json_object_get(ret, "max-bandwidth")));
        CHECK(json_real_value(json_object_get(ret, "max-bandwidth")) == 18446744073709551615.0);
        CHECK(json_integer_value(json_object_get(ret, "n")) == 5);
        CHECK(json_real_value(json_object_get(ret, "e")) == 1e-5);
        CHECK(strcmp(str_or(json_string_value(json_object_get(ret, "s"))),
                     "x\" 18446744073709551616") == 0);
        CHECK(json_real_value(json_object_get(ret, "neg")) == -9223372036854775809.0);
        a = json_object_get(ret, "a");
        CHECK(json_integer_value(json_array_get(a, 0)) == INT64_MAX);
        CHECK(json_integer_value(json_array_get(a, 1)) == INT64_MIN);
        CHECK(json_real_value(json_array_get(a, 2)) == 9223372036854775808.0);
        json_decref(ret);
        rc = qmp_cmd(q, "overflow", NULL, &ret, 2000, err, sizeof(err));
        CHECK_RC(rc, -EPROTO, err);
        CHECK_HAS(err, "overflow");
        qmp_close(q);
    }
    fake_qmp_join(&f);
}

/* garbage is a protocol error, and the connection stays failed */
static void script_garbage(int fd)
{
    fake_qmp_handshake(fd);
    (void)fake_qmp_expect(fd, "g", NULL);
    fake_qmp_send(fd, "this is not json\n{\"return\": {}, \"id\": 2}\n");
}

static void test_garbage(void)
{
    struct fake_qmp f;
    struct qmp *q = fake_connect(&f, "garbage", script_garbage);
    char err[512];
    int rc;

    if (q != NULL) {
        rc = qmp_cmd(q, "g", NULL, NULL, 2000, err, sizeof(err));
        CHECK_RC(rc, -EPROTO, err);
        CHECK_HAS(err, "this is not json");
        rc = qmp_cmd(q, "g2", NULL, NULL, 2000, err, sizeof(err));
        CHECK_RC(rc, -EPROTO, err);
        CHECK_HAS(err, "earlier error");
        qmp_close(q);
    }
    fake_qmp_join(&f);
}

/* a JSON line that is not an object */
static void script_array(int fd)
{
    fake_qmp_handshake(fd);
    (void)fake_qmp_expect(fd, "a", NULL);
    fake_qmp_send(fd, "[1, 2]\n");
}

static void test_array(void)
{
    struct fake_qmp f;
    struct qmp *q = fake_connect(&f, "array", script_array);
    char err[512];
    int rc;

    if (q != NULL) {
        rc = qmp_cmd(q, "a", NULL, NULL, 2000, err, sizeof(err));
        CHECK_RC(rc, -EPROTO, err);
        qmp_close(q);
    }
    fake_qmp_join(&f);
}

/* QEMU cuts the handshake of a client that came right after another (CI): greeting sent, the
 * connection closed at qmp_capabilities; the next connection is served. */
static void *serve_cut_once(void *arg)
{
    struct fake_qmp *f = arg;

    for (int i = 0; i < 2; i++) {
        int fd = accept(f->lfd, NULL, NULL);

        if (fd < 0) {
            failures++;
            return NULL;
        }
        if (i == 0) {
            fake_qmp_send(fd, FAKE_QMP_GREETING);
            (void)fake_qmp_expect(fd, "qmp_capabilities", NULL);
        } else {
            fake_qmp_handshake(fd);
            fake_qmp_answer(fd, "{\"return\": {}, \"id\": %lld}\n", fake_qmp_expect(fd, "c", NULL));
        }
        close(fd);
    }
    return NULL;
}

static void test_cut_handshake(void)
{
    struct fake_qmp f = {.lfd = -1};
    struct qmp *q = NULL;
    char err[512];
    int rc;

    snprintf(f.path, sizeof(f.path), "%s/cut.qmp", tmpdir);
    f.lfd = fake_qmp_listen(f.path);
    CHECK(f.lfd >= 0);
    if (f.lfd < 0 || pthread_create(&f.th, NULL, serve_cut_once, &f) != 0)
        return;
    rc = qmp_connect(&q, f.path, 2000, err, sizeof(err));
    CHECK_RC(rc, 0, err);
    if (q) {
        rc = qmp_cmd(q, "c", NULL, NULL, 2000, err, sizeof(err));
        CHECK_RC(rc, 0, err);
        qmp_close(q);
    }
    pthread_join(f.th, NULL);
    close(f.lfd);
    unlink(f.path);
}

/* the server hangs up in the middle of a reply */
static void script_hangup(int fd)
{
    fake_qmp_handshake(fd);
    (void)fake_qmp_expect(fd, "h", NULL);
    fake_qmp_send(fd, "{\"return\": {\"status\": ");
}

static void test_hangup(void)
{
    struct fake_qmp f;
    struct qmp *q = fake_connect(&f, "hangup", script_hangup);
    char err[512];
    int rc;

    if (q != NULL) {
        rc = qmp_cmd(q, "h", NULL, NULL, 2000, err, sizeof(err));
        CHECK_RC(rc, -ECONNRESET, err);
        CHECK_HAS(err, "h: connection closed by QEMU");
        rc = qmp_cmd(q, "h", NULL, NULL, 2000, err, sizeof(err));
        CHECK_RC(rc, -ECONNRESET, err);
        qmp_close(q);
    }
    fake_qmp_join(&f);
}

/* a reply of several MiB in one line is read whole; a line over the cap fails cleanly */
static void script_big(int fd)
{
    size_t big = 5u << 20, i;
    char *buf = malloc(big + 64);
    json_int_t id;
    int n;

    fake_qmp_handshake(fd);
    id = fake_qmp_expect(fd, "big", NULL);
    if (buf == NULL)
        return;
    n = sprintf(buf, "{\"id\": %lld, \"return\": \"", (long long)id);
    memset(buf + n, 'a', big);
    strcpy(buf + n + big, "\"}\n");
    fake_qmp_send(fd, buf);
    (void)fake_qmp_expect(fd, "huge", NULL);
    memset(buf, ' ', big); /* whitespace without a newline, 5 MiB at a time */
    buf[0] = '{';
    buf[big] = '\0';
    for (i = 0; i < 4; i++)
        fake_qmp_send(fd, buf);
    free(buf);
}

static void test_big(void)
{
    struct fake_qmp f;
    struct qmp *q = fake_connect(&f, "big", script_big);
    json_t *ret = NULL;
    char err[512];
    int rc;

    if (q != NULL) {
        rc = qmp_cmd(q, "big", NULL, &ret, 5000, err, sizeof(err));
        CHECK_RC(rc, 0, err);
        CHECK(json_string_length(ret) == 5u << 20);
        json_decref(ret);
        rc = qmp_cmd(q, "huge", NULL, &ret, 5000, err, sizeof(err));
        CHECK_RC(rc, -EMSGSIZE, err);
        CHECK_HAS(err, "huge: line longer than");
        qmp_close(q);
    }
    fake_qmp_join(&f);
}

/* A peer that streams events without pause never lets a read block: the deadline must still end
 * the call. */
static void script_flood(int fd)
{
    static const char ev[] = "{\"event\": \"X\", \"data\": {}}\n";

    fake_qmp_handshake(fd);
    (void)fake_qmp_expect(fd, "query-status", NULL);
    srv_flood(fd, ev, sizeof(ev) - 1);
}

/* A call without a deadline ends after a bounded number of bytes. Each event comes with a blank
 * line of a MiB, which the client skips without parsing, so that the bound is reached in moments
 * even under valgrind. */
static void script_flood_blank(int fd)
{
    size_t len;
    char *line = padded_line("{\"event\": \"X\"}\n", ' ', 1u << 20, "\n", &len);

    fake_qmp_handshake(fd);
    (void)fake_qmp_expect(fd, "query-status", NULL);
    if (line != NULL)
        srv_flood(fd, line, len);
    free(line);
}

static void test_flood(void)
{
    struct fake_qmp f;
    struct qmp *q = fake_connect(&f, "flood", script_flood);
    char err[512];
    int64_t t0, dt;
    int rc;

    if (q != NULL) {
        t0 = now_ms();
        rc = qmp_cmd(q, "query-status", NULL, NULL, 300, err, sizeof(err));
        dt = now_ms() - t0;
        CHECK_RC(rc, -ETIMEDOUT, err);
        CHECK_HAS(err, "query-status: no answer within 300 ms");
        CHECK(dt >= 290 && dt < 1000);
        qmp_close(q);
    }
    fake_qmp_join(&f);

    q = fake_connect(&f, "blank", script_flood_blank);
    if (q != NULL) {
        t0 = now_ms();
        rc = qmp_cmd(q, "query-status", NULL, NULL, -1, err, sizeof(err));
        dt = now_ms() - t0;
        CHECK_RC(rc, -EPROTO, err);
        CHECK_HAS(err, "MiB read without an answer");
        CHECK(dt < FLOOD_MS); /* then the server stops: the call must have ended on its own */
        fprintf(stderr, "test_qmp: a flood of events ends a call without a deadline in %lld ms\n",
                (long long)dt);
        qmp_close(q);
    }
    fake_qmp_join(&f);
}

/* an answer that never ends: a bounded line, within the deadline */
static void script_endless(int fd)
{
    char line[4096];

    fake_qmp_handshake(fd);
    (void)fake_qmp_expect(fd, "e", NULL);
    fake_qmp_send(fd, "{\"return\": \"");
    memset(line, 'a', sizeof(line));
    srv_flood(fd, line, sizeof(line));
}

static void test_endless(void)
{
    struct fake_qmp f;
    struct qmp *q = fake_connect(&f, "endless", script_endless);
    char err[512];
    int64_t t0, dt;
    int rc;

    if (q != NULL) {
        t0 = now_ms();
        rc = qmp_cmd(q, "e", NULL, NULL, 300, err, sizeof(err));
        dt = now_ms() - t0;
        CHECK(rc == -EMSGSIZE || rc == -ETIMEDOUT);
        CHECK(dt < 1000);
        qmp_close(q);
    }
    fake_qmp_join(&f);
}

/* no greeting at all (a busy monitor), a wrong greeting, a capabilities refusal */
static void script_silent(int fd)
{
    char c;

    (void)!read(fd, &c, 1); /* until the client gives up */
}

static void script_not_qmp(int fd)
{
    fake_qmp_send(fd, "QEMU 7.2.0 monitor - type 'help' for more information\n");
}

static void script_no_qmp_key(int fd)
{
    fake_qmp_send(fd, "{\"hello\": 1}\n");
}

static void script_caps_refused(int fd)
{
    json_int_t id;

    fake_qmp_send(fd, FAKE_QMP_GREETING);
    id = fake_qmp_expect(fd, "qmp_capabilities", NULL);
    fake_qmp_answer(
        fd, "{\"id\": %lld, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"nope\"}}\n",
        id);
}

/* the greeting, then events without pause: qmp_capabilities's answer never comes */
static void script_flood_greeting(int fd)
{
    static const char ev[] = "{\"event\": \"X\"}\n";

    fake_qmp_send(fd, FAKE_QMP_GREETING);
    srv_flood(fd, ev, sizeof(ev) - 1);
}

/* a greeting of 1 MiB: QEMU's has ~150 bytes */
static void script_huge_greeting(int fd)
{
    size_t len;
    char *line = padded_line("{\"QMP\": {}, \"pad\": \"", 'p', 1u << 20, "\"}\n", &len);

    if (line == NULL)
        return;
    fake_qmp_send(fd, line);
    free(line);
    script_silent(fd);
}

/* a greeting without end */
static void script_endless_greeting(int fd)
{
    char line[4096];

    fake_qmp_send(fd, "{");
    memset(line, ' ', sizeof(line));
    srv_flood(fd, line, sizeof(line));
}

static void test_greetings(void)
{
    struct {
        const char *name;
        void (*script)(int fd);
        int want;
        const char *msg;
    } cases[] = {
        {"silent", script_silent, -ETIMEDOUT, "no greeting within 300 ms"},
        {"hmp", script_not_qmp, -EPROTO, "not a JSON object"},
        {"nokey", script_no_qmp_key, -EPROTO, "no \"QMP\" member in \"{\"hello\":1}\""},
        {"caps", script_caps_refused, -EIO, "qmp_capabilities: CommandNotFound: nope"},
        {"flood", script_flood_greeting, -ETIMEDOUT, "qmp_capabilities: no answer within 300 ms"},
        {"huge", script_huge_greeting, -EMSGSIZE, "greeting: line longer than 65536 bytes"},
        {"endless", script_endless_greeting, -EMSGSIZE, "greeting: line longer than 65536 bytes"},
    };
    struct qmp *q = NULL;
    struct fake_qmp f;
    char err[512];
    int64_t t0, dt;
    size_t i;
    int rc;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fake_qmp_start(&f, tmpdir, cases[i].name, cases[i].script);
        t0 = now_ms();
        rc = qmp_connect(&q, f.path, 300, err, sizeof(err));
        dt = now_ms() - t0;
        CHECK_RC(rc, cases[i].want, err);
        CHECK(q == NULL);
        CHECK_HAS(err, cases[i].msg);
        CHECK(dt < 1000);
        if (cases[i].want == -ETIMEDOUT)
            CHECK(dt >= 290);
        qmp_close(q);
        fake_qmp_join(&f);
    }
}

/* ---- a transport instead of a socket (lvirt/'s libvirt monitor) ---- */

struct fake_transport {
    int calls, closed;
    char last[256];     /* the last request, as JSON text */
    const char *answer; /* what the next exec answers, as JSON text; NULL: fails with -ENOTCONN */
};

static int fake_exec(void *opaque, json_t *req, json_t **answer, int timeout_ms, char *err,
                     size_t errlen)
{
    struct fake_transport *f = opaque;
    char *text = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);

    (void)timeout_ms;
    f->calls++;
    snprintf(f->last, sizeof(f->last), "%s", text ? text : "");
    free(text);
    if (!f->answer) {
        snprintf(err, errlen, "fake: not connected");
        return -ENOTCONN;
    }
    *answer = json_loads(f->answer, 0, NULL);
    return 0;
}

static void fake_close(void *opaque)
{
    ((struct fake_transport *)opaque)->closed++;
}

static void test_transport(void)
{
    static const struct qmp_transport t = {fake_exec, fake_close};
    struct fake_transport f = {0};
    struct qmp *q;
    json_t *ret = NULL, *args;
    char err[256] = "";

    CHECK_RC(qmp_open_transport(&q, "dom1", 4242, &t, &f), 0, err);
    CHECK(qmp_peer_pid(q) == 4242);
    f.answer = "{\"return\": {\"running\": true}, \"id\": \"libvirt-7\"}";
    CHECK_RC(qmp_cmd(q, "query-status", NULL, &ret, 1000, err, sizeof(err)), 0, err);
    CHECK(json_is_true(json_object_get(ret, "running")));
    CHECK(strcmp(f.last, "{\"execute\":\"query-status\"}") == 0);
    json_decref(ret);
    /* Arguments go along; a QMP error is -EIO worded as for a socket, and the connection lives. */
    f.answer = "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}";
    args = json_pack("{s:s}", "uri", "unix:/x"); /* borrowed by qmp_cmd */
    CHECK_RC(qmp_cmd(q, "migrate", args, NULL, 1000, err, sizeof(err)), -EIO, err);
    json_decref(args);
    CHECK(strcmp(f.last, "{\"arguments\":{\"uri\":\"unix:/x\"},\"execute\":\"migrate\"}") == 0);
    CHECK_HAS(err, "QMP dom1: migrate: GenericError: no");
    /* An answer that is neither: -EPROTO, and the connection is unusable from then on. */
    f.answer = "{\"event\": \"STOP\"}";
    CHECK_RC(qmp_cmd(q, "stop", NULL, NULL, 1000, err, sizeof(err)), -EPROTO, err);
    f.answer = "{\"return\": {}}";
    CHECK_RC(qmp_cmd(q, "cont", NULL, NULL, 1000, err, sizeof(err)), -EPROTO, err);
    CHECK(f.calls == 3);
    qmp_close(q);
    CHECK(f.closed == 1);
    /* A transport that fails: its errno and words. */
    memset(&f, 0, sizeof(f));
    CHECK_RC(qmp_open_transport(&q, "dom2", 1, &t, &f), 0, err);
    CHECK_RC(qmp_cmd(q, "stop", NULL, NULL, 1000, err, sizeof(err)), -ENOTCONN, err);
    CHECK_HAS(err, "fake: not connected");
    qmp_close(q);
    CHECK(f.closed == 1);
}

int main(void)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

    alarm(100); /* a hang fails the test; QEMU dies with us (PR_SET_PDEATHSIG) */
    snprintf(tmpdir, sizeof(tmpdir), "%s/test_qmp.XXXXXX", base);
    if (strlen(base) > 40 || mkdtemp(tmpdir) == NULL) {
        fprintf(stderr, "mkdtemp under %s failed\n", base);
        return 1;
    }

    test_transport();
    test_connect_errors();
    test_greetings();
    test_event_first();
    test_stale_first();
    test_wait();
    test_split();
    test_errors();
    test_late();
    test_wide();
    test_garbage();
    test_array();
    test_hangup();
    test_cut_handshake();
    test_big();
    test_flood();
    test_endless();
    test_real_qemu();

    qemu_stop();
    if (rmdir(tmpdir) < 0)
        fprintf(stderr, "rmdir %s: %s\n", tmpdir, strerror(errno));
    failures += atomic_load(&fake_qmp_failures);
    if (failures) {
        fprintf(stderr, "test_qmp: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_qmp: ok\n");
    return 0;
}
