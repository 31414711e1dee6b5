/* follow: readers of MOUNT/NAME/progress (follow.h) and a job's lines in the log. A job does
 * nothing for its readers but what it does anyway: it counts itself in its VM's state when it
 * starts and broadcasts ctx->changed when it ends. Each reader takes the lock once a second to
 * read the job's progress, and waits on ctx->changed in between (a FUSE worker thread). */
#include "follow.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "follow_job.h"
#include "import.h"
#include "jobline.h"
#include "manifest.h"

#define FOLLOW_TICK_S 1.0

struct follow {
    /* set at open */
    struct job_ctx *ctx;
    char vm[SNAPSHOT_NAME_MAX + 1];
    unsigned long job; /* the VM's count of jobs when the one followed started; 0: none ran */
    struct import *imp;
    char snap[NAME_MAX + 1]; /* no job, a copy into this snapshot: it is followed */
    /* guarded by reading */
    pthread_mutex_t reading;
    int given;  /* lines given so far */
    int over;   /* the outcome was given: what is left of it, then the end */
    int missed; /* a copy: ticks in a row that saw no file open for writing */
    double t0;  /* a copy: when the first line was given, and the bytes there were then */
    uint64_t done0;
    double next_at; /* job_now() when the next progress line is due */
    char line[FOLLOW_LINE_MAX];
    size_t len, off; /* the line, and how much of it was read */
};

int follow_open(struct job_ctx *ctx, struct import *imp, const char *vm, struct follow **out)
{
    struct follow *f = calloc(1, sizeof(*f));
    struct vm_state *s;
    int rc = 0;

    if (!f)
        return -ENOMEM;
    f->ctx = ctx;
    f->imp = imp;
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
        return rc;
    }
    if (!f->job && imp)
        import_copying(imp, vm, f->snap, sizeof(f->snap));
    *out = f;
    return 0;
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

    j.rate = j.seconds > 0 ? (double)j.done / j.seconds : 0;

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

/* ---- a copy into the VM's snapshots, followed in the store ---- */

/* What a copy into DIR has written: the bytes of the files its manifest names, of their total,
 * once the manifest is there and whole (*COMPLETE if every file has its size, else WHY says
 * which has not); before, the bytes of every file, of a total not known (0). */
static void copy_figures(const char *dir, uint64_t *done, uint64_t *total, int *complete, char *why,
                         size_t len)
{
    char path[PATH_MAX], err[256];
    struct manifest m;
    struct dirent *e;
    struct stat st;
    DIR *d;

    *done = *total = 0;
    *complete = 0;
    snprintf(why, len, "%s is missing", MANIFEST_NAME);
    if (!store_path(path, "%s/%s", dir, MANIFEST_NAME) &&
        !manifest_read(path, &m, err, sizeof(err))) {
        *complete = 1;
        for (int i = 0; i < m.nfiles; i++) {
            const struct cp_file *cf = &m.files[i];
            int rc = manifest_file_stat(dir, cf, path, &st);

            *total += cf->size;
            *done += rc == 0 || rc == -EMSGSIZE ? (uint64_t)st.st_size : 0;
            if (rc && *complete)
                snprintf(why, len, "%s has %llu of %llu bytes", cf->name,
                         rc == -EMSGSIZE ? (unsigned long long)st.st_size : 0ULL,
                         (unsigned long long)cf->size);
            *complete &= rc == 0;
        }
        manifest_free(&m);
        return;
    }
    if (!(d = opendir(dir)))
        return;
    while ((e = readdir(d)))
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            *done += (uint64_t)st.st_size;
    closedir(d);
}

/* A line of the copy followed into F->line: its progress, or its outcome once no file of the
 * VM's is open for writing and every file has its size, or none has been open for two looks in a
 * row (cp opens one file after another: a look may fall between two). */
static void copy_line(struct follow *f)
{
    char dir[PATH_MAX], now_snap[NAME_MAX + 1], why[512];
    struct jobline j = {.op = "import", .vm = f->vm, .snapshot = f->snap, .phase = "copying"};
    int copying =
        import_copying(f->imp, f->vm, now_snap, sizeof(now_snap)) && strcmp(now_snap, f->snap) == 0;
    int complete;
    double now = job_now();

    f->missed = copying ? 0 : f->missed + 1;
    if (store_snapshot_path(dir, job_store(f->ctx), f->vm, f->snap, NULL))
        dir[0] = '\0';
    copy_figures(dir, &j.done, &j.total, &complete, why, sizeof(why));
    if (f->missed < 2 && !(f->missed && complete)) {
        if (!f->given) {
            f->t0 = now;
            f->done0 = j.done;
        }
        j.rate = now > f->t0 && j.done > f->done0 ? (double)(j.done - f->done0) / (now - f->t0) : 0;
        jobline_progress(&j, f->line, sizeof(f->line) - 1);
        return;
    }
    f->over = 1;
    j.bytes = j.total;
    j.rc = complete ? 0 : -EAGAIN;
    j.reason = why;
    jobline_outcome(&j, f->line, sizeof(f->line) - 1);
}

/* The next line of the copy F follows: the first at once, then one a second. */
static int next_copy_line(struct follow *f, int (*stop)(void))
{
    while (f->given && job_now() < f->next_at) {
        if (stop && stop())
            return -EINTR;
        pthread_mutex_lock(&f->ctx->lock);
        wait_until_locked(f->ctx, f->next_at);
        pthread_mutex_unlock(&f->ctx->lock);
    }
    copy_line(f);
    f->next_at = job_now() + FOLLOW_TICK_S;
    return 1;
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
    if (f->snap[0]) {
        rc = next_copy_line(f, stop);
    } else {
        pthread_mutex_lock(&f->ctx->lock);
        rc = next_line_locked(f, stop);
        pthread_mutex_unlock(&f->ctx->lock);
    }
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
