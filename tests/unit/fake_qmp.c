/* fake_qmp: the server side of QMP for tests (fake_qmp.h). */
#include "fake_qmp.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

atomic_int fake_qmp_failures;

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fake QMP server: %s%s\n", what, detail);
    atomic_fetch_add(&fake_qmp_failures, 1);
}

int fake_qmp_listen(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

void fake_qmp_send(int fd, const char *s)
{
    size_t len = strlen(s), done = 0;
    ssize_t n;

    while (done < len) {
        n = send(fd, s + done, len - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return; /* the client gave up: its checks say whether it should have */
        done += n;
    }
}

void fake_qmp_answer(int fd, const char *fmt, json_int_t id)
{
    char buf[1024];

    snprintf(buf, sizeof(buf), fmt, (long long)id);
    fake_qmp_send(fd, buf);
}

/* One line, a byte at a time: what follows it stays in the socket for the next reader. */
static int read_line(int fd, char *line, size_t size)
{
    size_t len = 0;
    ssize_t n;

    while (len < size - 1) {
        n = read(fd, line + len, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        if (line[len++] == '\n')
            break;
    }
    line[len] = '\0';
    return len > 0 && line[len - 1] == '\n' ? 0 : -1;
}

int fake_qmp_read(int fd, char *name, size_t len, json_int_t *id, json_t **args)
{
    char line[4096];
    json_t *req;
    const char *cmd;
    int rc = -1;

    if (args != NULL)
        *args = NULL;
    if (read_line(fd, line, sizeof(line)) < 0)
        return -1;
    req = json_loads(line, 0, NULL);
    cmd = json_string_value(json_object_get(req, "execute"));
    if (cmd != NULL && json_is_integer(json_object_get(req, "id"))) {
        snprintf(name, len, "%s", cmd);
        *id = json_integer_value(json_object_get(req, "id"));
        if (args != NULL)
            *args = json_incref(json_object_get(req, "arguments"));
        rc = 0;
    }
    json_decref(req);
    return rc;
}

json_int_t fake_qmp_expect(int fd, const char *name, json_t **args)
{
    char got[128];
    json_int_t id = -1;

    if (fake_qmp_read(fd, got, sizeof(got), &id, args) < 0) {
        fail("no request ", name);
        return -1;
    }
    if (strcmp(got, name) != 0)
        fail("unexpected request ", got);
    return id;
}

void fake_qmp_handshake(int fd)
{
    fake_qmp_send(fd, FAKE_QMP_GREETING);
    fake_qmp_answer(fd, "{\"return\": {}, \"id\": %lld}\n",
                    fake_qmp_expect(fd, "qmp_capabilities", NULL));
}

static void *serve(void *arg)
{
    struct fake_qmp *f = arg;
    struct pollfd p = {.fd = f->lfd, .events = POLLIN};
    struct timeval tv = {.tv_sec = 30}; /* valgrind on a loaded machine parses 5 MiB slowly */
    int fd;

    if (poll(&p, 1, 5000) != 1) {
        fail("no client at ", f->path);
        return NULL;
    }
    fd = accept(f->lfd, NULL, NULL);
    if (fd < 0) {
        fail("accept: ", strerror(errno));
        return NULL;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        fail("SO_RCVTIMEO: ", strerror(errno));
    f->script(fd);
    close(fd);
    return NULL;
}

void fake_qmp_start(struct fake_qmp *f, const char *dir, const char *name, void (*script)(int fd))
{
    snprintf(f->path, sizeof(f->path), "%s/%s.qmp", dir, name);
    f->script = script;
    f->lfd = fake_qmp_listen(f->path);
    if (f->lfd < 0 || pthread_create(&f->th, NULL, serve, f) != 0) {
        perror("fake server");
        exit(1);
    }
}

void fake_qmp_join(struct fake_qmp *f)
{
    if (pthread_join(f->th, NULL) != 0)
        fail("pthread_join", "");
    close(f->lfd);
    unlink(f->path);
}
