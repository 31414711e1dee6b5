/* agent: the guest agent's wire protocol is QMP without a greeting: one JSON object per line
 * each way. A reply can be stale (left by an earlier client that gave up), so every exchange
 * starts with guest-sync and a fresh id, and lines are skipped until that id comes back. */
#include "agent.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "job_int.h"
#include "manifest.h"
#include "qemu.h"
#include "qemuopts.h"

#define LINE_MAX_BYTES 4096

/* The chardev that the agent's virtserialport uses, in ID. */
static int agent_chardev(char *const *argv, int argc, char *id, size_t len)
{
    char name[64];

    for (int i = 0; i < argc; i++) {
        const char *v = qemu_opt_value(argv, argc, i, "device");

        if (v && strncmp(v, "virtserialport,", 15) == 0 &&
            qemuopts_get(v, "name", name, sizeof(name)) && strcmp(name, AGENT_PORT_NAME) == 0 &&
            qemuopts_get(v, "chardev", id, len))
            return 1;
    }
    return 0;
}

int agent_socket(char *const *argv, int argc, const char *cwd, char *path, size_t len)
{
    char id[64], cid[64], sock[PATH_MAX], server[8];

    if (!agent_chardev(argv, argc, id, sizeof(id)))
        return 0;
    for (int i = 0; i < argc; i++) {
        const char *v = qemu_opt_value(argv, argc, i, "chardev");

        if (!v || strncmp(v, "socket,", 7) != 0 || !qemuopts_get(v, "id", cid, sizeof(cid)) ||
            strcmp(cid, id) != 0 || !qemuopts_get(v, "path", sock, sizeof(sock)))
            continue;
        /* QEMU must listen; one that connects out talks to someone else's agent proxy. */
        if (!qemuopts_get(v, "server", server, sizeof(server)) ||
            !(strcmp(server, "on") == 0 || strcmp(server, "yes") == 0 || server[0] == '\0'))
            return 0;
        return snprintf(path, len, "%s%s%s", sock[0] == '/' ? "" : cwd, sock[0] == '/' ? "" : "/",
                        sock) < (int)len;
    }
    return 0;
}

/* A connection and what has been read of it. */
struct agent_conn {
    int fd;
    double deadline;
    char buf[LINE_MAX_BYTES + 1];
    size_t len;
};

static int send_line(struct agent_conn *c, json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    size_t n = text ? strlen(text) : 0, off = 0;
    int rc = text ? 0 : -ENOMEM;

    json_decref(msg);
    if (text)
        text[n++] = '\n'; /* json_dumps's NUL becomes the line's end */
    while (!rc && off < n) {
        ssize_t w = send(c->fd, text + off, n - off, MSG_NOSIGNAL);

        if (w < 0 && errno != EINTR)
            rc = -errno;
        off += w > 0 ? (size_t)w : 0;
    }
    free(text);
    return rc;
}

/* The next JSON line, in *OUT. */
static int read_line(struct agent_conn *c, json_t **out)
{
    char *nl;

    while (!(nl = memchr(c->buf, '\n', c->len))) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int left = (int)((c->deadline - job_now()) * 1000);
        ssize_t n;

        if (left <= 0 || poll(&p, 1, left) == 0)
            return -ETIMEDOUT;
        if (c->len == LINE_MAX_BYTES)
            return -EMSGSIZE;
        n = recv(c->fd, c->buf + c->len, LINE_MAX_BYTES - c->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 ? -ECONNRESET : -errno;
        c->len += (size_t)n;
    }
    *out = json_loadb(c->buf, (size_t)(nl - c->buf), 0, NULL);
    c->len -= (size_t)(nl + 1 - c->buf);
    memmove(c->buf, nl + 1, c->len);
    return 0;
}

/* Sends MSG and reads lines until its reply: the one returning SYNC_ID for a guest-sync (0: the
 * next reply of any kind); its "return" or "error" decides. */
static int exchange(struct agent_conn *c, json_t *msg, json_int_t sync_id, char *err, size_t errlen)
{
    int rc = send_line(c, msg);
    json_t *reply = NULL;

    while (!rc && !(rc = read_line(c, &reply))) {
        json_t *ret = json_object_get(reply, "return"), *e = json_object_get(reply, "error");
        int mine = sync_id ? json_integer_value(ret) == sync_id : ret || e;

        if (mine && e) {
            const char *desc = json_string_value(json_object_get(e, "desc"));

            snprintf(err, errlen, "guest agent: %s", desc ? desc : "error");
            rc = -EIO;
        }
        json_decref(reply);
        if (mine)
            return rc;
    }
    if (rc == -ETIMEDOUT)
        snprintf(err, errlen, "no answer from the guest agent");
    else if (!err[0])
        snprintf(err, errlen, "guest agent: %s", strerror(-rc));
    return rc;
}

static int connect_unix(const char *path, int *fd)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};

    if (strlen(path) >= sizeof(addr.sun_path))
        return -ENAMETOOLONG;
    strcpy(addr.sun_path, path);
    *fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*fd < 0)
        return -errno;
    if (connect(*fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int rc = -errno;
        close(*fd);
        *fd = -1;
        return rc;
    }
    return 0;
}

int agent_set_time(const char *path, int64_t now_ns, int timeout_ms, char *err, size_t errlen)
{
    struct agent_conn c = {.fd = -1, .deadline = job_now() + timeout_ms / 1000.0};
    json_int_t id = (json_int_t)(now_ns & 0x3fffffff) | 1;
    int rc = connect_unix(path, &c.fd);

    err[0] = '\0';
    if (rc) {
        snprintf(err, errlen, "connect %s: %s", path, strerror(-rc));
        return rc;
    }
    rc = exchange(&c, json_pack("{s:s, s:{s:I}}", "execute", "guest-sync", "arguments", "id", id),
                  id, err, errlen);
    if (!rc)
        rc = exchange(&c,
                      json_pack("{s:s, s:{s:I}}", "execute", "guest-set-time", "arguments", "time",
                                (json_int_t)now_ns),
                      0, err, errlen);
    close(c.fd);
    return rc;
}

void agent_sync_clock(int was_running, char *const *argv, int argc, const char *cwd, char *note,
                      size_t len)
{
    char path[PATH_MAX], err[200];
    struct timespec now;

    if (!was_running || !agent_socket(argv, argc, cwd, path, sizeof(path)))
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    if (agent_set_time(path, (int64_t)now.tv_sec * 1000000000 + now.tv_nsec, AGENT_TIMEOUT_MS, err,
                       sizeof(err)) == 0)
        snprintf(note, len, "; guest clock set by its agent");
    else
        snprintf(note, len, "; guest clock not set: %s", err);
}
