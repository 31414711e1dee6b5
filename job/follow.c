/* follow: readers of MOUNT/NAME/progress (follow.h) and a job's lines in the log. A job does
 * nothing for its readers but what it does anyway: it counts itself in its VM's state when it
 * starts and broadcasts ctx->changed when it ends. Each reader takes the lock once a second to
 * read the job's progress, and waits on ctx->changed in between (a FUSE worker thread). */
#include "follow.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "follow_job.h"
#include "jobline.h"

#define FOLLOW_TICK_S 1.0

struct follow {
    /* set at open */
    struct job_ctx *ctx;
    char vm[SNAPSHOT_NAME_MAX + 1];
    unsigned long job; /* the VM's count of jobs when the one followed started; 0: none ran */
    /* guarded by reading */
    pthread_mutex_t reading;
    int given;      /* lines given so far */
    int over;       /* the outcome was given: what is left of it, then the end */
    double next_at; /* job_now() when the next progress line is due */
    char line[FOLLOW_LINE_MAX];
    size_t len, off; /* the line, and how much of it was read */
};

int follow_open(struct job_ctx *ctx, const char *vm, struct follow **out)
{
    struct follow *f = calloc(1, sizeof(*f));
    struct vm_state *s;
    int rc = 0;

    if (!f)
        return -ENOMEM;
    f->ctx = ctx;
    snprintf(f->vm, sizeof(f->vm), "%s", vm);
    pthread_mutex_init(&f->reading, NULL);
    pthread_mutex_lock(&ctx->lock);
    if (ctx->followers >= FOLLOW_READERS_MAX) {
        rc = -EBUSY;
    } else {
        ctx->followers++;
        s = job_vm_find_locked(ctx, vm);
        f->job = s && s->job ? s->jobs : 0;
    }
    pthread_mutex_unlock(&ctx->lock);
    if (rc) {
        pthread_mutex_destroy(&f->reading);
        free(f);
    } else {
        *out = f;
    }
    return rc;
}

void follow_close(struct follow *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->ctx->lock);
    f->ctx->followers--;
    pthread_mutex_unlock(&f->ctx->lock);
    pthread_mutex_destroy(&f->reading);
    free(f);
}

static void progress_locked(const struct job *job, char *buf, size_t len)
{
    struct jobline j = {.op = job->kind->name,
                        .vm = job->vm->name,
                        .snapshot = job->snapshot,
                        .phase = job->phase,
                        .done = job->bytes_done,
                        .total = job->bytes_total,
                        .seconds = job_now() - job->started};

    jobline_progress(&j, buf, len);
}

void follow_outcome_locked(const struct vm_state *s, char *buf, size_t len)
{
    const struct job_result *r = &s->last;
    struct jobline j = {.op = r->kind->name,
                        .vm = s->name,
                        .snapshot = r->snapshot,
                        .seconds = r->duration_s,
                        .channels = r->channels,
                        .rc = r->rc,
                        .reason = r->message,
                        .bytes = r->bytes};

    jobline_outcome(&j, buf, len);
}

void follow_job_started(struct job *job)
{
    char line[FOLLOW_LINE_MAX];
    struct jobline j = {.op = job->kind->name,
                        .vm = job->vm->name,
                        .snapshot = job->snapshot[0] ? job->snapshot : job->words.name,
                        .channels = job->channels};

    if (!job->ctx->log)
        return;
    jobline_started(&j, line, sizeof(line));
    job->ctx->log(line);
}

/* Waits on ctx->changed until job_now() reaches AT (or a job ends). */
static void wait_until_locked(struct job_ctx *ctx, double at)
{
    double left = at - job_now();
    struct timespec ts;

    if (left <= 0)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)left;
    ts.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&ctx->changed, &ctx->lock, &ts);
}

/* The next line of F into F->line: 1, 0 if there is none (the end), -EINTR. */
static int next_line_locked(struct follow *f, int (*stop)(void))
{
    struct vm_state *s;
    double now;

    for (;;) {
        s = job_vm_find_locked(f->ctx, f->vm);
        if (!f->job || !s || !s->job || s->jobs != f->job) {
            /* No job when it opened, or the one followed is over: its outcome, then the end. */
            f->over = 1;
            if (!s || !s->last.valid)
                return 0;
            follow_outcome_locked(s, f->line, sizeof(f->line) - 1);
            return 1;
        }
        now = job_now();
        if (!f->given || now >= f->next_at) {
            progress_locked(s->job, f->line, sizeof(f->line) - 1);
            /* One a second, late or not: a reader that was slow gets the news, not a backlog. */
            f->next_at = f->given && f->next_at + FOLLOW_TICK_S > now ? f->next_at + FOLLOW_TICK_S
                                                                      : now + FOLLOW_TICK_S;
            return 1;
        }
        if (stop && stop())
            return -EINTR;
        wait_until_locked(f->ctx, f->next_at);
    }
}

/* Fills F's line if it was read to its end: 1 with a line, 0 at the end, -EINTR. */
static int refill(struct follow *f, int (*stop)(void))
{
    int rc, oldstate;

    if (f->off < f->len)
        return 1;
    if (f->over)
        return 0;
    /* libfuse cancels its workers when the loop ends: never inside the wait, which would leave
     * the context's lock held. STOP tells this one to go within a second. */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &oldstate);
    pthread_mutex_lock(&f->ctx->lock);
    rc = next_line_locked(f, stop);
    pthread_mutex_unlock(&f->ctx->lock);
    pthread_setcancelstate(oldstate, NULL);
    if (rc == 1) {
        f->len = strlen(f->line);
        f->line[f->len++] = '\n';
        f->off = 0;
        f->given++;
    }
    return rc;
}

ssize_t follow_read(struct follow *f, char *buf, size_t size, int (*stop)(void))
{
    ssize_t n = 0;
    int rc;

    pthread_mutex_lock(&f->reading);
    rc = refill(f, stop);
    if (rc == 1) {
        n = (ssize_t)(f->len - f->off < size ? f->len - f->off : size);
        memcpy(buf, f->line + f->off, (size_t)n);
        f->off += (size_t)n;
    }
    pthread_mutex_unlock(&f->reading);
    return rc < 0 ? rc : n;
}
