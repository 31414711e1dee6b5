/* qmp: the client side of QEMU's QMP protocol over a unix socket: connecting, the greeting,
 * capability negotiation, then one command at a time and its answer. Owns the socket and its read
 * buffer; knows nothing of migration or files. */

#include "qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define QMP_LINE_MAX  (16u << 20) /* longest line we accept from QEMU, '\n' excluded */
#define QMP_BUF_MIN   4096        /* initial read buffer */
#define QMP_RETRY_MS  10          /* connect retry interval while QEMU's listen backlog is full */
#define QMP_QUOTE     60          /* bytes of an unparsable line quoted in error messages */
#define QMP_STALE_MAX 16          /* messages of a previous session skipped before a greeting */

/* QEMU's greeting is ~150 bytes: a peer that sends more before its first newline is no QEMU, and
 * reading 16 MiB of it would only cost time and memory. */
#define QMP_GREETING_MAX (64u << 10)
/* Bytes one call reads before it gives up, deadline or not: a peer that streams events without
 * pause would otherwise keep a call without a deadline reading for ever. A maximal answer and
 * as much again in events. */
#define QMP_CALL_BYTES_MAX (2 * (size_t)QMP_LINE_MAX)

struct qmp {
    int fd;
    pid_t pid;          /* SO_PEERCRED of the socket */
    int dead;           /* 0, or the negative errno that desynchronised the stream */
    json_int_t next_id; /* "id" of the next command */
    char *path;         /* for error messages */
    char *buf;          /* bytes read; buf[off, len) are not consumed yet */
    size_t off, len, cap;
    size_t scanned;    /* bytes from off already searched for '\n' */
    size_t line_max;   /* longest line accepted now: QMP_GREETING_MAX until greeted */
    size_t call_bytes; /* bytes read since the API call began (QMP_CALL_BYTES_MAX) */
    const struct qmp_transport *transport; /* NULL: the socket fd */
    void *opaque;                          /* the transport's */
};

/* ---- errors and time ---- */

/* Writes "QMP PATH: " and the formatted message into ERR, returns RC. */
static int qfail(const char *path, char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int qfail(const char *path, char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (err == NULL || errlen == 0)
        return rc;
    n = snprintf(err, errlen, "QMP %s: ", path);
    if (n < 0 || (size_t)n >= errlen)
        return rc;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - n, fmt, ap);
    va_end(ap);
    return rc;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A deadline TIMEOUT_MS from now; -1 (no deadline) for a negative timeout. */
static int64_t deadline_after(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

/* Milliseconds left until DEADLINE, for poll(): -1 for none, 0 when passed. */
static int ms_left(int64_t deadline)
{
    int64_t left;

    if (deadline < 0)
        return -1;
    left = deadline - now_ms();
    return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Waits until FD has EVENTS (or an error to report) or DEADLINE passes. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    int n;

    for (;;) {
        n = poll(&p, 1, ms_left(deadline));
        if (n > 0)
            return 0;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* Sleeps MS milliseconds, or less if DEADLINE comes first. */
static void nap(int64_t deadline, int ms)
{
    int left = ms_left(deadline);

    (void)poll(NULL, 0, left >= 0 && left < ms ? left : ms);
}

/* ---- connecting ---- */

/* Completes a non-blocking connect that reported EINPROGRESS. */
static int connect_finish(int fd, int64_t deadline)
{
    socklen_t len = sizeof(int);
    int rc, soerr = 0;

    rc = wait_fd(fd, POLLOUT, deadline);
    if (rc < 0)
        return rc;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        return -errno;
    return -soerr;
}

/* Connects Q->fd to Q->path. A full listen backlog (EAGAIN) is retried until DEADLINE. */
static int sock_connect(struct qmp *q, int64_t deadline, int timeout_ms, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t plen = strlen(q->path);
    int rc;

    if (plen >= sizeof(sa.sun_path))
        return qfail(q->path, err, errlen, -ENAMETOOLONG, "socket path longer than %zu bytes",
                     sizeof(sa.sun_path) - 1);
    memcpy(sa.sun_path, q->path, plen + 1);

    q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (q->fd < 0)
        return qfail(q->path, err, errlen, -errno, "socket: %s", strerror(errno));

    for (;;) {
        if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return 0;
        rc = -errno;
        if (rc == -EINPROGRESS || rc == -EINTR)
            rc = connect_finish(q->fd, deadline);
        if (rc != -EAGAIN)
            break;
        if (ms_left(deadline) == 0) {
            rc = -ETIMEDOUT;
            break;
        }
        nap(deadline, QMP_RETRY_MS);
    }
    if (rc == -ETIMEDOUT)
        return qfail(q->path, err, errlen, rc,
                     "connect: not accepted within %d ms (another client holds the monitor?)",
                     timeout_ms);
    if (rc < 0)
        return qfail(q->path, err, errlen, rc, "connect: %s", strerror(-rc));
    return 0;
}

static int peer_pid(struct qmp *q, char *err, size_t errlen)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    if (getsockopt(q->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return qfail(q->path, err, errlen, -errno, "SO_PEERCRED: %s", strerror(errno));
    q->pid = cred.pid;
    return 0;
}

/* ---- reading: lines into JSON objects ---- */

/* Makes room in the buffer for at least one more byte, up to one maximal line and its '\n'. */
static int buf_room(struct qmp *q)
{
    size_t cap;
    char *nb;

    if (q->off > 0) {
        memmove(q->buf, q->buf + q->off, q->len - q->off);
        q->len -= q->off;
        q->off = 0;
    }
    if (q->len < q->cap)
        return 0;
    cap = q->cap ? q->cap * 2 : QMP_BUF_MIN;
    if (cap > QMP_LINE_MAX + 1)
        cap = QMP_LINE_MAX + 1;
    if (cap <= q->len)
        return -EMSGSIZE;
    nb = realloc(q->buf, cap);
    if (nb == NULL)
        return -ENOMEM;
    q->buf = nb;
    q->cap = cap;
    return 0;
}

/* Reads what the socket has, waiting until DEADLINE for at least one byte. A call that has read
 * QMP_CALL_BYTES_MAX already fails with -EPROTO. */
static int buf_fill(struct qmp *q, int64_t deadline)
{
    ssize_t n;
    int rc;

    if (q->call_bytes > QMP_CALL_BYTES_MAX)
        return -EPROTO;
    rc = buf_room(q);
    if (rc < 0)
        return rc;
    for (;;) {
        n = read(q->fd, q->buf + q->len, q->cap - q->len);
        if (n > 0) {
            q->len += n;
            q->call_bytes += n;
            return 0;
        }
        if (n == 0)
            return -ECONNRESET;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        rc = wait_fd(q->fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
}

/* Returns the next complete line, NUL-terminated in place without its '\n'. It stays valid until
 * the next read. DEADLINE is checked before every read, not only when a read would block: a peer
 * that sends without pause never lets a read block. */
static int read_line(struct qmp *q, int64_t deadline, char **line, size_t *linelen)
{
    char *start, *nl;
    int rc;

    for (;;) {
        start = q->buf + q->off;
        nl =
            q->len > q->off ? memchr(start + q->scanned, '\n', q->len - q->off - q->scanned) : NULL;
        if (nl != NULL) {
            *nl = '\0';
            *line = start;
            *linelen = nl - start;
            q->off += *linelen + 1;
            q->scanned = 0;
            return 0;
        }
        q->scanned = q->len - q->off;
        if (q->scanned > q->line_max)
            return -EMSGSIZE;
        if (ms_left(deadline) == 0)
            return -ETIMEDOUT;
        rc = buf_fill(q, deadline);
        if (rc < 0)
            return rc;
    }
}

/* Describes a failed read or write of the stream in ERR; WHAT is the command or "greeting". */
static int io_fail(struct qmp *q, const char *what, int rc, int timeout_ms, char *err,
                   size_t errlen)
{
    if (rc == -ETIMEDOUT)
        return qfail(q->path, err, errlen, rc, "%s: no answer within %d ms", what, timeout_ms);
    if (rc == -ECONNRESET)
        return qfail(q->path, err, errlen, rc, "%s: connection closed by QEMU", what);
    if (rc == -EMSGSIZE)
        return qfail(q->path, err, errlen, rc, "%s: line longer than %zu bytes", what, q->line_max);
    if (rc == -EPROTO)
        return qfail(q->path, err, errlen, rc,
                     "%s: %zu MiB read without an answer (endless events?)", what,
                     QMP_CALL_BYTES_MAX >> 20);
    return qfail(q->path, err, errlen, rc, "%s: %s", what, strerror(-rc));
}

/* Is the integer literal S (LEN bytes, optional '-', digits) outside int64? */
static int int_overflows(const char *s, size_t len)
{
    int neg = s[0] == '-';
    size_t ndig = len - neg;

    if (ndig != 19)
        return ndig > 19;
    return memcmp(s + neg, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0;
}

/* The length of the number token at S (at most LEN bytes); *ISINT says whether it is an integer. */
static size_t number_len(const char *s, size_t len, int *isint)
{
    size_t j;

    *isint = 1;
    for (j = 1; j < len && memchr("0123456789.eE+-", s[j], 15) != NULL; j++)
        if (s[j] == '.' || s[j] == 'e' || s[j] == 'E')
            *isint = 0;
    return j;
}

/* Copies LEN bytes of JSON text from IN to OUT (if not NULL) with ".0" after every integer literal
 * outside int64, and returns the length of the result. */
static size_t widen(const char *in, size_t len, char *out)
{
    size_t i = 0, o = 0, n;
    int instr = 0, isint = 0, wide;

    while (i < len) {
        n = 1;
        wide = 0;
        if (instr && in[i] == '\\' && i + 1 < len)
            n = 2;
        else if (in[i] == '"')
            instr = !instr;
        else if (!instr && (in[i] == '-' || (in[i] >= '0' && in[i] <= '9'))) {
            n = number_len(in + i, len - i, &isint);
            wide = isint && int_overflows(in + i, n);
        }
        if (out != NULL)
            memcpy(out + o, in + i, n);
        o += n;
        i += n;
        if (wide && out != NULL)
            memcpy(out + o, ".0", 2);
        o += wide ? 2 : 0;
    }
    return o;
}

/* Jansson keeps integers in int64 and refuses bigger literals, but QEMU prints uint64 values such
 * as a max-bandwidth of 2^64-1. Parses LINE again with those literals made reals. */
static json_t *load_wide(const char *line, size_t len, json_error_t *jerr)
{
    size_t wlen = widen(line, len, NULL);
    char *wide = malloc(wlen);
    json_t *v;

    if (wide == NULL)
        return NULL;
    widen(line, len, wide);
    v = json_loadb(wide, wlen, 0, jerr);
    free(wide);
    return v;
}

/* Reads the next JSON object, skipping blank lines. Anything but a timeout leaves the stream
 * unusable and marks Q dead. */
static int read_msg(struct qmp *q, const char *what, int64_t deadline, int timeout_ms, json_t **msg,
                    char *err, size_t errlen)
{
    json_error_t jerr;
    size_t len;
    char *line;
    int rc;

    *msg = NULL;
    do {
        rc = read_line(q, deadline, &line, &len);
        if (rc < 0) {
            if (rc != -ETIMEDOUT)
                q->dead = rc;
            return io_fail(q, what, rc, timeout_ms, err, errlen);
        }
    } while (strspn(line, " \t\r") == len);

    *msg = json_loadb(line, len, 0, &jerr);
    if (*msg == NULL && json_error_code(&jerr) == json_error_numeric_overflow)
        *msg = load_wide(line, len, &jerr);
    if (json_is_object(*msg))
        return 0;
    q->dead = -EPROTO;
    qfail(q->path, err, errlen, -EPROTO, "%s: not a JSON object: \"%.*s\"%s (%s)", what,
          len > QMP_QUOTE ? QMP_QUOTE : (int)len, line, len > QMP_QUOTE ? "..." : "",
          *msg == NULL ? jerr.text : "not an object");
    json_decref(*msg);
    *msg = NULL;
    return -EPROTO;
}

/* ---- writing and commands ---- */

/* Sends LEN bytes; a partial send leaves the stream unusable. */
static int send_all(struct qmp *q, const char *data, size_t len, int64_t deadline)
{
    size_t done = 0;
    ssize_t n;
    int rc;

    while (done < len) {
        n = send(q->fd, data + done, len - done, MSG_NOSIGNAL);
        if (n >= 0) {
            done += n;
            continue;
        }
        if (errno == EINTR)
            continue;
        rc = errno == EPIPE ? -ECONNRESET : -errno;
        if (rc == -EAGAIN || rc == -EWOULDBLOCK)
            rc = wait_fd(q->fd, POLLOUT, deadline);
        if (rc < 0) {
            if (done > 0 || rc != -ETIMEDOUT)
                q->dead = rc;
            return rc;
        }
    }
    return 0;
}

/* Sends {"execute": NAME, "arguments": ARGS, "id": ID} and a newline. */
static int send_cmd(struct qmp *q, const char *name, json_t *args, json_int_t id, int64_t deadline)
{
    json_t *req = NULL;
    char *text = NULL;
    size_t len;
    int rc = -ENOMEM;

    req = json_pack("{s:s, s:I}", "execute", name, "id", id);
    if (req == NULL)
        goto out;
    if (args != NULL && json_object_set(req, "arguments", args) < 0)
        goto out;
    text = json_dumps(req, JSON_COMPACT);
    if (text == NULL)
        goto out;
    len = strlen(text);
    text[len] = '\n'; /* overwrites the NUL: send LEN+1 bytes, never read as a string again */
    rc = send_all(q, text, len + 1, deadline);
out:
    free(text);
    json_decref(req);
    return rc;
}

/* Is MSG the answer to command ID? QEMU echoes the id; an error without one means it could not
 * read our request at all, which is also an answer. */
static int is_answer(json_t *msg, json_int_t id)
{
    json_t *mid = json_object_get(msg, "id");

    if (json_object_get(msg, "return") == NULL && json_object_get(msg, "error") == NULL)
        return 0; /* an event, or a greeting */
    if (mid == NULL)
        return json_object_get(msg, "error") != NULL;
    return json_is_integer(mid) && json_integer_value(mid) == id;
}

/* Turns the answer MSG into a return value or an error. */
static int take_answer(struct qmp *q, const char *name, json_t *msg, json_t **ret, char *err,
                       size_t errlen)
{
    json_t *val = json_object_get(msg, "return"), *e;
    const char *cls, *desc;

    if (val != NULL) {
        if (ret != NULL)
            *ret = json_incref(val);
        return 0;
    }
    e = json_object_get(msg, "error");
    cls = json_string_value(json_object_get(e, "class"));
    desc = json_string_value(json_object_get(e, "desc"));
    return qfail(q->path, err, errlen, -EIO, "%s: %s: %s", name, cls ? cls : "UnknownClass",
                 desc ? desc : "(no description)");
}

/* A command over Q's transport: the transport matches answers to commands itself. */
static int transport_cmd(struct qmp *q, const char *name, json_t *args, json_t **ret,
                         int timeout_ms, char *err, size_t errlen)
{
    json_t *req = json_pack("{s:s}", "execute", name), *msg = NULL;
    int rc;

    if (req == NULL || (args != NULL && json_object_set(req, "arguments", args) < 0)) {
        json_decref(req);
        return qfail(q->path, err, errlen, -ENOMEM, "%s: out of memory", name);
    }
    rc = q->transport->exec(q->opaque, req, &msg, timeout_ms, err, errlen);
    json_decref(req);
    if (rc == 0 && !json_is_object(msg))
        rc = qfail(q->path, err, errlen, -EPROTO, "%s: the answer is not a JSON object", name);
    if (rc == 0 && !json_object_get(msg, "return") && !json_object_get(msg, "error"))
        rc =
            qfail(q->path, err, errlen, -EPROTO, "%s: the answer has no return and no error", name);
    if (rc < 0 && rc != -ETIMEDOUT && rc != -EIO)
        q->dead = rc;
    if (rc == 0)
        rc = take_answer(q, name, msg, ret, err, errlen);
    json_decref(msg);
    return rc;
}

static int run_cmd(struct qmp *q, const char *name, json_t *args, json_t **ret, int64_t deadline,
                   int timeout_ms, char *err, size_t errlen)
{
    json_int_t id;
    json_t *msg = NULL;
    int rc;

    if (ret != NULL)
        *ret = NULL;
    if (q->dead)
        return qfail(q->path, err, errlen, q->dead,
                     "%s: connection unusable after an earlier error (%s)", name,
                     strerror(-q->dead));
    if (args != NULL && !json_is_object(args))
        return qfail(q->path, err, errlen, -EINVAL, "%s: arguments are not a JSON object", name);

    if (q->transport)
        return transport_cmd(q, name, args, ret, timeout_ms, err, errlen);
    id = q->next_id++;
    rc = send_cmd(q, name, args, id, deadline);
    if (rc < 0)
        return io_fail(q, name, rc, timeout_ms, err, errlen);
    for (;;) {
        rc = read_msg(q, name, deadline, timeout_ms, &msg, err, errlen);
        if (rc < 0)
            goto out;
        if (is_answer(msg, id))
            break;
        json_decref(msg); /* an event, or the late answer to a command that timed out */
        msg = NULL;
    }
    rc = take_answer(q, name, msg, ret, err, errlen);
out:
    json_decref(msg);
    return rc;
}

/* Drops the whole lines already read (unasked ones: no command waits): 1 if there were any. */
static int drop_buffered(struct qmp *q)
{
    char *nl = q->len > q->off ? memrchr(q->buf + q->off, '\n', q->len - q->off) : NULL;

    if (nl == NULL)
        return 0;
    q->off = (size_t)(nl - q->buf) + 1;
    q->scanned = 0;
    return 1;
}

/* ---- the API ---- */

/* Output of a previous client's session (an answer, an event) that the monitor had not
 * delivered when that client hung up: QEMU keeps it and sends it to the next client, ahead of
 * that client's greeting. */
static int stale_msg(const json_t *msg)
{
    return json_object_get(msg, "return") || json_object_get(msg, "error") ||
           json_object_get(msg, "event");
}

static int read_greeting(struct qmp *q, int64_t deadline, int timeout_ms, char *err, size_t errlen)
{
    json_t *msg = NULL;
    int rc, stale = 0;

    do {
        json_decref(msg);
        rc = read_msg(q, "greeting", deadline, timeout_ms, &msg, err, errlen);
    } while (rc == 0 && !json_object_get(msg, "QMP") && stale_msg(msg) && ++stale < QMP_STALE_MAX);
    q->line_max = QMP_LINE_MAX;
    if (rc == -ETIMEDOUT)
        qfail(q->path, err, errlen, rc,
              "no greeting within %d ms (another client holds the monitor?)", timeout_ms);
    if (rc < 0)
        goto out;
    if (json_object_get(msg, "QMP") == NULL) {
        char *text = json_dumps(msg, JSON_COMPACT);
        size_t len = text ? strlen(text) : 0;

        rc = qfail(q->path, err, errlen, -EPROTO,
                   "greeting: no \"QMP\" member in \"%.*s\"%s: not a QMP socket?",
                   len > QMP_QUOTE ? QMP_QUOTE : (int)len, text ? text : "",
                   len > QMP_QUOTE ? "..." : "");
        free(text);
    }
out:
    json_decref(msg);
    return rc;
}

static int connect_once(struct qmp **out, const char *path, int64_t deadline, int timeout_ms,
                        char *err, size_t errlen)
{
    struct qmp *q;
    int rc;

    *out = NULL;
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return qfail(path, err, errlen, -ENOMEM, "out of memory");
    q->fd = -1;
    q->next_id = 1;
    q->line_max = QMP_GREETING_MAX;
    q->path = strdup(path);
    if (q->path == NULL) {
        rc = qfail(path, err, errlen, -ENOMEM, "out of memory");
        goto out;
    }
    rc = sock_connect(q, deadline, timeout_ms, err, errlen);
    if (rc < 0)
        goto out;
    rc = peer_pid(q, err, errlen);
    if (rc < 0)
        goto out;
    rc = read_greeting(q, deadline, timeout_ms, err, errlen);
    if (rc < 0)
        goto out;
    rc = run_cmd(q, "qmp_capabilities", NULL, NULL, deadline, timeout_ms, err, errlen);
    if (rc < 0)
        goto out;
    *out = q;
    q = NULL;
out:
    qmp_close(q);
    return rc;
}

/* QEMU can close a new client's connection during its handshake, greeting sent: CI's test_qmp
 * met it for a client that connected just after another hung up (a probe), and such a cut is
 * over at the next connection. So a handshake cut short is tried again, a few times, within the
 * same deadline; a QEMU that quit refuses the next connection and that is the error. */
#define HANDSHAKE_TRIES 3

int qmp_connect(struct qmp **out, const char *path, int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = deadline_after(timeout_ms);
    int rc;

    for (int i = 1;; i++) {
        rc = connect_once(out, path, deadline, timeout_ms, err, errlen);
        if ((rc != -ECONNRESET && rc != -EPIPE) || i == HANDSHAKE_TRIES || ms_left(deadline) == 0)
            return rc;
        usleep(10000);
    }
}

int qmp_open_transport(struct qmp **out, const char *name, pid_t pid, const struct qmp_transport *t,
                       void *opaque)
{
    struct qmp *q = calloc(1, sizeof(*q));

    *out = NULL;
    if (q == NULL || (q->path = strdup(name)) == NULL) {
        free(q);
        if (t->close)
            t->close(opaque);
        return -ENOMEM;
    }
    q->fd = -1;
    q->pid = pid;
    q->transport = t;
    q->opaque = opaque;
    *out = q;
    return 0;
}

void qmp_close(struct qmp *q)
{
    if (q == NULL)
        return;
    if (q->transport && q->transport->close)
        q->transport->close(q->opaque);
    if (q->fd >= 0)
        close(q->fd);
    free(q->buf);
    free(q->path);
    free(q);
}

pid_t qmp_peer_pid(const struct qmp *q)
{
    return q->pid;
}

int qmp_cmd(struct qmp *q, const char *name, json_t *args, json_t **ret, int timeout_ms, char *err,
            size_t errlen)
{
    q->call_bytes = 0;
    return run_cmd(q, name, args, ret, deadline_after(timeout_ms), timeout_ms, err, errlen);
}

int qmp_wait(struct qmp *q, int other_fd, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = other_fd, .events = POLLIN}, {.fd = -1, .events = POLLIN}};
    int n;

    if (!q->transport && !q->dead) {
        if (drop_buffered(q))
            return 1;
        p[1].fd = q->fd;
    }
    while ((n = poll(p, 2, timeout_ms)) < 0 && errno == EINTR)
        ;
    if (n <= 0)
        return 0;
    /* A closed socket reads as an event too: the caller's next command says what happened. */
    return p[1].revents ? 1 : 2;
}
