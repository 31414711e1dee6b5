/* fake_qmp: the server side of QMP for tests: a listening socket, QEMU's greeting, requests read
 * one line at a time and answers written as text. test_qmp scripts it in a thread; test_orch's
 * fake QEMU answers the commands of a save and a restore with it.
 * Any thread; each connection belongs to the thread that serves it. */
#ifndef SAVEFS_FAKE_QMP_H
#define SAVEFS_FAKE_QMP_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#define FAKE_QMP_GREETING                                                                          \
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "              \
    "\"package\": \"\"}, \"capabilities\": [\"oob\"]}}\n"

/* What the server itself found wrong (a request missing or not the one expected); a test adds
 * it to its own failures. */
extern atomic_int fake_qmp_failures;

/* A unix socket bound to PATH and listening; -1 with errno on failure. */
int fake_qmp_listen(const char *path);
/* Writes S whole (a client that hung up is not an error here). */
void fake_qmp_send(int fd, const char *s);
/* Sends a formatted line whose only %lld is the id. */
void fake_qmp_answer(int fd, const char *fmt, json_int_t id);
/* Reads the next request: its command into NAME (LEN bytes), its id into *ID and, if ARGS is not
 * NULL, its "arguments" (or NULL). 0, or -1 at EOF, on an error or a line that is no request. */
int fake_qmp_read(int fd, char *name, size_t len, json_int_t *id, json_t **args);
/* Reads one request, counts a failure unless it runs NAME, and returns its id (-1 on failure). */
json_int_t fake_qmp_expect(int fd, const char *name, json_t **args);
/* The greeting, then qmp_capabilities answered. */
void fake_qmp_handshake(int fd);

/* A server in a thread: it accepts one client at PATH and runs SCRIPT on it. */
struct fake_qmp {
    char path[128];
    int lfd;
    void (*script)(int fd);
    pthread_t th;
};

/* Listens at DIR/NAME.qmp and starts the thread; exits the test if it cannot. */
void fake_qmp_start(struct fake_qmp *f, const char *dir, const char *name, void (*script)(int fd));
/* Waits for the script to end, then removes the socket. */
void fake_qmp_join(struct fake_qmp *f);

#endif
