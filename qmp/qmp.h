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

/* The pid of the QEMU process serving the socket (SO_PEERCRED). */
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

#endif
