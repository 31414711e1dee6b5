/* worker: the first error of a copy, waking peers, starting signal-blocked threads.
 * cp_fail runs in any copier thread and in the caller's thread (cancel). */
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

void cp_fail_init(struct cp_fail *f)
{
    pthread_mutex_init(&f->lock, NULL);
    f->code = 0;
    f->msg[0] = '\0';
    for (int i = 0; i < CP_MAX_SOCKS; i++)
        atomic_init(&f->socks[i], -1);
}

void cp_fail_destroy(struct cp_fail *f)
{
    pthread_mutex_destroy(&f->lock);
}

static int cp_failed(struct cp_fail *f)
{
    pthread_mutex_lock(&f->lock);
    int code = f->code;
    pthread_mutex_unlock(&f->lock);
    return code;
}

void cp_fail(struct cp_fail *f, int code, const char *msg)
{
    pthread_mutex_lock(&f->lock);
    if (f->code == 0) {
        f->code = code;
        snprintf(f->msg, sizeof(f->msg), "%s", msg);
    }
    pthread_mutex_unlock(&f->lock);
    /* Outside the lock: a peer blocked in read or write wakes with EOF or EPIPE. The sockets stay
     * open until every thread is joined, so no descriptor here can have been reused. */
    for (int i = 0; i < CP_MAX_SOCKS; i++) {
        int fd = atomic_load(&f->socks[i]);
        if (fd >= 0)
            shutdown(fd, SHUT_RDWR);
    }
}

int cp_fail_get(struct cp_fail *f, char *err, size_t errlen)
{
    pthread_mutex_lock(&f->lock);
    int code = f->code;
    if (code != 0)
        snprintf(err, errlen, "%s", f->msg);
    pthread_mutex_unlock(&f->lock);
    return code;
}

void cp_fail_add_sock(struct cp_fail *f, int i, int fd)
{
    atomic_store(&f->socks[i], fd);
    /* cp_fail sets the code before it scans the slots; checking after the store means either it
     * sees this socket or we see its code. */
    if (cp_failed(f) != 0)
        shutdown(fd, SHUT_RDWR);
}

int cp_live_init(struct cp_live *l, int n)
{
    atomic_init(&l->n, n);
    l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return l->efd < 0 ? -errno : 0;
}

void cp_live_destroy(struct cp_live *l)
{
    if (l->efd >= 0)
        close(l->efd);
    l->efd = -1;
}

void cp_live_add(struct cp_live *l, int n)
{
    atomic_fetch_add(&l->n, n);
}

void cp_live_end(struct cp_live *l, int n)
{
    uint64_t one = 1;
    if (atomic_fetch_sub(&l->n, n) != n)
        return;
    /* Cannot fail otherwise: the descriptor is ours and its counter far from full. */
    while (write(l->efd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

int cp_live_done(struct cp_live *l)
{
    return atomic_load(&l->n) == 0;
}

int cp_msg(char *err, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

int cp_errno_msg(char *err, size_t errlen, int code, const char *fmt, ...)
{
    char what[CP_ERR_MAX];
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    /* GNU strerror_r: thread-safe, returns the text (maybe not in BUF). */
    snprintf(err, errlen, "%s: %s", what, strerror_r(-code, buf, sizeof(buf)));
    return code;
}

int cp_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    /* The new thread inherits the mask; ours is restored on every path. */
    int r = pthread_sigmask(SIG_SETMASK, &all, &old);
    if (r != 0)
        return -r;
    r = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -r;
}
