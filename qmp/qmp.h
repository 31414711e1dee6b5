/* qmp: a blocking client for QEMU's QMP over a unix socket, one command at a time.
 * Knows no files. Each struct qmp is used by one thread at a time. */
#ifndef SAVEFS_QMP_H
#define SAVEFS_QMP_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

struct qmp;

/* Connects to the QMP socket at PATH, reads the greeting and negotiates capabilities, all within
 * TIMEOUT_MS (negative: no limit). A QEMU whose monitor is busy with another client never greets:
 * that is -ETIMEDOUT. A missing socket is -ENOENT, a dead QEMU's -ECONNREFUSED; a peer that does
 * not speak QMP -EPROTO, a greeting over 64 KiB -EMSGSIZE. Returns 0 or a negative errno with the
 * reason in ERR ("QMP PATH: ..."; ERR may be NULL). */
int qmp_connect(struct qmp **out, const char *path, int timeout_ms, char *err, size_t errlen);
void qmp_close(struct qmp *q);

/* Another way to QEMU's monitor than a socket of its own (libvirt's connection to it, lvirt/):
 * EXEC sends REQ ({"execute": NAME, "arguments": ...}, borrowed) and stores QEMU's whole answer
 * ({"return": ...} or {"error": ...}, a new reference) in *ANSWER within TIMEOUT_MS if it can;
 * 0 or a negative errno with the reason in ERR. A failure of the transport (not a QMP error)
 * leaves the connection unusable, as on a socket. CLOSE (may be NULL) ends it. */
struct qmp_transport {
    int (*exec)(void *opaque, json_t *req, json_t **answer, int timeout_ms, char *err,
                size_t errlen);
    void (*close)(void *opaque);
};

/* A connection over transport T (borrowed, outlives the connection) with OPAQUE (owned: T's
 * close gets it); NAME says whose monitor in errors ("QMP NAME: ..."), PID is the QEMU that
 * serves it. 0 or -ENOMEM (OPAQUE is closed then). */
int qmp_open_transport(struct qmp **out, const char *name, pid_t pid, const struct qmp_transport *t,
                       void *opaque);

/* The pid of the QEMU process serving the socket (SO_PEERCRED), or the transport's. */
pid_t qmp_peer_pid(const struct qmp *q);

/* Runs command NAME with ARGS (borrowed, a JSON object, may be NULL). On success stores the
 * "return" value in *RET (a new reference; RET may be NULL) and returns 0. A QMP error returns -EIO
 * with "NAME: Class: desc" in ERR; no answer within TIMEOUT_MS (negative: no limit) returns
 * -ETIMEDOUT, and the connection stays usable: the late answer is skipped by its id. The deadline
 * holds whatever the peer sends, even events without pause. A closed socket returns -ECONNRESET, a
 * reply that is not a JSON object -EPROTO, a line over 16 MiB -EMSGSIZE, 32 MiB read in one call
 * without the answer -EPROTO (the bound of a call without a deadline); after these the connection
 * is unusable and every later call fails the same way. Events that arrive meanwhile are dropped.
 * Integers beyond int64 (QEMU's uint64 values, e.g. a max-bandwidth of 2^64-1) come back as JSON
 * reals. */
int qmp_cmd(struct qmp *q, const char *name, json_t *args, json_t **ret, int timeout_ms, char *err,
            size_t errlen);

/* Waits up to TIMEOUT_MS for QEMU to say something unasked (an event: QEMU's STOP, or a MIGRATION
 * status with the `events` capability on) or for OTHER_FD (-1: none) to be readable: 1 for an
 * event (dropped unread: ask QEMU what changed), 2 for OTHER_FD, 0 when the time is up. A caller
 * that polls QEMU learns of a change at once instead of at its next look. Over a transport (no
 * socket of ours) only OTHER_FD and the time end the wait. */
int qmp_wait(struct qmp *q, int other_fd, int timeout_ms);

#endif
