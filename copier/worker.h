/* worker: what the save and restore threads share: the first error of a copy, shutting its
 * sockets down so that blocked peers wake, and starting threads with signals blocked.
 * Called from every copier thread and from the caller's thread (cancel). */
#ifndef SAVEFS_COPIER_WORKER_H
#define SAVEFS_COPIER_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "copier.h"

#define CP_ERR_MAX 512
/* The sockets of one copy: a listener (save) and one per stream. */
#define CP_MAX_SOCKS (CP_MAX_CHANNELS + 2)

struct cp_fail {
    pthread_mutex_t lock; /* guards code and msg */
    int code;             /* 0, or the first error (negative errno) */
    char msg[CP_ERR_MAX];
    atomic_int socks[CP_MAX_SOCKS]; /* -1, or a socket to shut down on failure */
};

void cp_fail_init(struct cp_fail *f);
void cp_fail_destroy(struct cp_fail *f);
/* Records CODE and MSG unless an error was recorded before (the first error wins), then shuts
 * every registered socket down. */
void cp_fail(struct cp_fail *f, int code, const char *msg);
/* The first error, 0 if none; copies its message into ERR. */
int cp_fail_get(struct cp_fail *f, char *err, size_t errlen);
/* Registers socket FD in slot I; shuts it down at once if the copy has already failed. */
void cp_fail_add_sock(struct cp_fail *f, int i, int fd);

/* The running threads of a copy. Its eventfd polls readable once the last one has ended, so
 * that the caller can wait on it beside other descriptors. */
struct cp_live {
    atomic_int n;
    int efd;
};

/* 0, or -errno if the eventfd cannot be made. */
int cp_live_init(struct cp_live *l, int n);
void cp_live_destroy(struct cp_live *l);
void cp_live_add(struct cp_live *l, int n);
/* N threads ended (or will never start). */
void cp_live_end(struct cp_live *l, int n);
int cp_live_done(struct cp_live *l);

/* Formats FMT into ERR and returns CODE. */
int cp_msg(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Formats "FMT: strerror(-CODE)" into ERR and returns CODE. */
int cp_errno_msg(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
