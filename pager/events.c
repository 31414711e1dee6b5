/* events: progress lines for the job that started the pager (see events.h). */
#include "events.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pager.h"

void pg_events_init(struct pg_events *ev, int fd)
{
    memset(ev, 0, sizeof(*ev));
    ev->fd = fd;
    ev->last_push = -1;
    pthread_mutex_init(&ev->mu, NULL);
}

void pg_events_destroy(struct pg_events *ev)
{
    pthread_mutex_destroy(&ev->mu);
}

/* One write per line; a reader that went away costs the pager nothing (SIGPIPE is ignored by
 * main): the restore goes on without its watcher. */
static void pg_events_write_locked(struct pg_events *ev, const char *line, size_t n)
{
    while (n && !ev->failed) {
        ssize_t k = write(ev->fd, line, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        line += k;
        n -= (size_t)k;
    }
}

static void pg_events_line(struct pg_events *ev, const char *line, size_t n)
{
    pthread_mutex_lock(&ev->mu);
    pg_events_write_locked(ev, line, n);
    pthread_mutex_unlock(&ev->mu);
}

void pg_events_running(struct pg_events *ev)
{
    if (ev && ev->fd >= 0)
        pg_events_line(ev, "running\n", 8);
}

void pg_events_push(struct pg_events *ev, uint64_t done, uint64_t total, int force)
{
    char line[64];
    double now;
    int n;

    if (!ev || ev->fd < 0)
        return;
    now = pg_now();
    pthread_mutex_lock(&ev->mu);
    if (force || ev->last_push < 0 || now - ev->last_push >= PG_EVENTS_PUSH_EVERY) {
        ev->last_push = now;
        n = snprintf(line, sizeof(line), "push %" PRIu64 " %" PRIu64 "\n", done, total);
        pg_events_write_locked(ev, line, (size_t)n);
    }
    pthread_mutex_unlock(&ev->mu);
}

void pg_events_done(struct pg_events *ev, double seconds)
{
    char line[64];
    int n;

    if (!ev || ev->fd < 0)
        return;
    n = snprintf(line, sizeof(line), "done %.3f\n", seconds);
    pg_events_line(ev, line, (size_t)n);
}

void pg_events_fail(struct pg_events *ev, const char *why)
{
    char line[1100];
    int n;

    if (!ev || ev->fd < 0)
        return;
    n = snprintf(line, sizeof(line), "fail %s", why[0] ? why : "(no reason given)");
    if (n < 0 || (size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    for (int i = 5; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    pthread_mutex_lock(&ev->mu);
    pg_events_write_locked(ev, line, (size_t)n);
    ev->failed = 1;
    pthread_mutex_unlock(&ev->mu);
}
