/* test_agent: the guest agent's channel found in command lines (a table), and the clock-setting
 * exchange against a fake agent on a unix socket: stale replies skipped, the time sent, an error
 * and silence reported. The test guest has no qemu-ga, so no real agent is exercised. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "check.h"

#define PORT "-device virtserialport,chardev=ga,name=org.qemu.guest_agent.0"

static const struct {
    const char *argv, *want;
} socket_cases[] = {
    {"qemu -chardev socket,id=ga,path=/run/ga.sock,server=on,wait=off " PORT, "/run/ga.sock"},
    {"qemu -chardev socket,path=ga.sock,server=on,wait=off,id=ga " PORT, "/vm/ga.sock"},
    {"qemu " PORT " -chardev socket,id=ga,path=/a,,b,server=on,wait=off", "/a,b"},
    {"qemu -chardev socket,id=ga,path=/run/ga.sock,server=off " PORT, NULL},
    {"qemu -chardev socket,id=other,path=/o,server=on " PORT, NULL},
    {"qemu -chardev socket,id=ga,path=/g,server=on "
     "-device virtserialport,chardev=ga,name=org.example.port",
     NULL},
    {"qemu -chardev socket,id=ga,host=h,port=1,server=on " PORT, NULL},
    {"qemu -m 512", NULL},
};

static void test_socket(void)
{
    for (size_t i = 0; i < sizeof(socket_cases) / sizeof(socket_cases[0]); i++) {
        char line[512], path[256] = "", *argv[16];
        int argc = 0, found;

        snprintf(line, sizeof(line), "%s", socket_cases[i].argv);
        for (char *t = strtok(line, " "); t; t = strtok(NULL, " "))
            argv[argc++] = t;
        argv[argc] = NULL;
        found = agent_socket(argv, argc, "/vm", path, sizeof(path));
        CHECK(found == (socket_cases[i].want != NULL), "%s: found %d", socket_cases[i].argv, found);
        CHECK(!found || strcmp(path, socket_cases[i].want) == 0, "%s: '%s'", socket_cases[i].argv,
              path);
    }
}

/* The fake agent: answers as MODE says, records the time it was asked to set. */
struct fake {
    int listen_fd;
    const char *mode; /* "ok", "error" or "silent" */
    long long time_ns;
    int got_sync;
};

static FILE *accept_one(struct fake *f)
{
    int fd = accept(f->listen_fd, NULL, NULL);

    return fd < 0 ? NULL : fdopen(fd, "r+");
}

static void *fake_agent(void *arg)
{
    struct fake *f = arg;
    FILE *io = accept_one(f);
    char line[4096];

    while (io && fgets(line, sizeof(line), io)) {
        json_t *msg = json_loads(line, 0, NULL);
        const char *cmd = json_string_value(json_object_get(msg, "execute"));
        json_t *args = json_object_get(msg, "arguments");

        if (strcmp(f->mode, "silent") == 0) {
            json_decref(msg);
            continue;
        }
        if (cmd && strcmp(cmd, "guest-sync") == 0) {
            f->got_sync = 1;
            /* A stale reply of an earlier client first: it must be skipped. */
            fprintf(io, "{\"return\": 7}\n{\"return\": %lld}\n",
                    (long long)json_integer_value(json_object_get(args, "id")));
        } else if (cmd && strcmp(cmd, "guest-set-time") == 0) {
            f->time_ns = (long long)json_integer_value(json_object_get(args, "time"));
            fputs(strcmp(f->mode, "error") == 0
                      ? "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no rtc\"}}\n"
                      : "{\"return\": {}}\n",
                  io);
        }
        fflush(io);
        json_decref(msg);
    }
    if (io)
        fclose(io);
    return NULL;
}

static int run(const char *mode, struct fake *f, char *err, size_t errlen, int timeout_ms)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct timespec now;
    pthread_t t;
    int rc;

    memset(f, 0, sizeof(*f));
    f->mode = mode;
    snprintf(addr.sun_path, sizeof(addr.sun_path), "/tmp/test_agent.%d.sock", (int)getpid());
    unlink(addr.sun_path);
    f->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(bind(f->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
              listen(f->listen_fd, 1) == 0,
          "listen");
    pthread_create(&t, NULL, fake_agent, f);
    clock_gettime(CLOCK_REALTIME, &now);
    rc = agent_set_time(addr.sun_path, (int64_t)now.tv_sec * 1000000000 + now.tv_nsec, timeout_ms,
                        err, errlen);
    shutdown(f->listen_fd, SHUT_RDWR);
    pthread_join(t, NULL);
    close(f->listen_fd);
    unlink(addr.sun_path);
    return rc;
}

static void test_set_time(void)
{
    char err[256] = "";
    struct timespec now;
    struct fake f;
    int rc;

    clock_gettime(CLOCK_REALTIME, &now);
    rc = run("ok", &f, err, sizeof(err), 2000);
    CHECK(rc == 0, "ok: %d %s", rc, err);
    CHECK(f.got_sync, "no guest-sync before guest-set-time");
    CHECK(llabs(f.time_ns - ((long long)now.tv_sec * 1000000000 + now.tv_nsec)) < 2000000000LL,
          "time sent %lld", f.time_ns);

    rc = run("error", &f, err, sizeof(err), 2000);
    CHECK(rc == -EIO && strstr(err, "no rtc"), "error: %d %s", rc, err);

    rc = run("silent", &f, err, sizeof(err), 300);
    CHECK(rc == -ETIMEDOUT && strstr(err, "no answer"), "silent: %d %s", rc, err);

    rc = agent_set_time("/nonexistent/agent.sock", 1, 100, err, sizeof(err));
    CHECK(rc == -ENOENT && strstr(err, "/nonexistent/agent.sock"), "absent: %d %s", rc, err);
}

int main(void)
{
    test_socket();
    test_set_time();
    return check_result("test_agent");
}
