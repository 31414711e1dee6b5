/* job: the registry of VMs and their jobs, and job_run, which runs a job of any kind (struct
 * job_kind: one file each) in a thread of its own so that a FUSE worker that gives up waiting
 * (an interrupt, an unmount) never leaves a save half done: the worker only waits and passes a
 * cancel on. Knows no kind of job by name. */
#include "job_int.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "copier.h"
#include "follow_job.h"
#include "migrate.h"
#include "lvirt.h"
#include "qemu.h"
#include "qmp.h"
#include "store.h"
#include "trust.h"
#include "watch.h"

#define WAIT_TICK_MS          100
#define STATUS_QMP_TIMEOUT_MS 1000

double job_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void job_rfc3339_at(time_t t, char *buf, size_t len)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void job_rfc3339(char *buf, size_t len)
{
    job_rfc3339_at(time(NULL), buf, len);
}

int job_qmp_path(const struct job_ctx *ctx, const char *vm, char *path)
{
    return store_path(path, "%s/%s.qmp", ctx->qmp_dir, vm);
}

int job_sock_path(const struct job_ctx *ctx, const char *vm, const char *what, char *path)
{
    return store_path(path, "%s/%s.%s.sock", ctx->run_dir, vm, what);
}

int job_lv_sock(const struct job_ctx *ctx, const char *vm, pid_t pid, const char *what, char *dir,
                char *sock, char *err, size_t errlen)
{
    uid_t uid;
    gid_t gid;
    int rc;

    if ((rc = qemu_owner(pid, &uid, &gid))) {
        snprintf(err, errlen, "read the owner of QEMU %d: %s", (int)pid, strerror(-rc));
        return rc;
    }
    if ((rc = store_path(dir, "%s/%s.libvirt", ctx->run_dir, vm)) ||
        (rc = store_path(sock, "%s/%s.sock", dir, what))) {
        snprintf(err, errlen, "socket path too long");
        return rc;
    }
    if ((mkdir(dir, 0700) < 0 && errno != EEXIST) || chown(dir, uid, gid) < 0 ||
        chmod(dir, 0700) < 0 || chmod(ctx->run_dir, 0711) < 0 || chmod(ctx->qmp_dir, 0711) < 0) {
        rc = -errno;
        snprintf(err, errlen, "make %s reachable by QEMU's user %u: %s", dir, (unsigned)uid,
                 strerror(-rc));
    }
    return rc;
}

int job_log_path(const struct job_ctx *ctx, const char *vm, char *path)
{
    return store_path(path, "%s/%s.log", ctx->run_dir, vm);
}

const char *job_store(const struct job_ctx *ctx)
{
    return ctx->store;
}

/* ---- context ---- */

int job_ctx_new(struct job_ctx **out, const struct job_config *cfg, void (*log)(const char *msg),
                char *err, size_t errlen)
{
    struct job_ctx *ctx = calloc(1, sizeof(*ctx));
    char run_dir[PATH_MAX];
    int rc;

    if (!ctx)
        return -ENOMEM;
    ctx->watchdog_ms = cfg->watchdog_ms;
    ctx->fence_ms = cfg->fence_ms;
    if (cfg->host)
        snprintf(ctx->host, sizeof(ctx->host), "%s", cfg->host);
    else if (gethostname(ctx->host, sizeof(ctx->host)) < 0 || !lease_valid_host(ctx->host))
        snprintf(ctx->host, sizeof(ctx->host), "localhost");
    ctx->trust = cfg->trust;
    ctx->log = log;
    pthread_mutex_init(&ctx->lock, NULL);
    pthread_cond_init(&ctx->changed, NULL);
    rc = store_path(run_dir, "%s/.savefs", cfg->qmp_dir);
    ctx->store = strdup(cfg->store);
    ctx->qmp_dir = strdup(cfg->qmp_dir);
    ctx->run_dir = strdup(run_dir);
    ctx->pager = strdup(cfg->pager ? cfg->pager : "");
    if (rc || !ctx->store || !ctx->qmp_dir || !ctx->run_dir || !ctx->pager) {
        rc = rc ? rc : -ENOMEM;
        goto out;
    }
    if ((rc = store_mkdirs(ctx->store, err, errlen)) ||
        (rc = store_mkdirs(ctx->qmp_dir, err, errlen)) ||
        (rc = store_mkdirs(ctx->run_dir, err, errlen)) ||
        (rc = store_id_get(ctx->store, &ctx->store_id, err, errlen)))
        goto out;
    if (cfg->libvirt_uri && (rc = lv_open(&ctx->lv, cfg->libvirt_uri, log)) == -ENOTSUP &&
        !cfg->libvirt_required)
        rc = 0;
    if (rc) {
        snprintf(err, errlen, "libvirt %s: %s", cfg->libvirt_uri,
                 rc == -ENOTSUP ? "savefs was built without libvirt" : strerror(-rc));
        goto out;
    }
out:
    if (rc)
        job_ctx_free(ctx);
    else
        *out = ctx;
    return rc;
}

static int any_job_locked(struct job_ctx *ctx)
{
    for (struct vm_state *vm = ctx->vms; vm; vm = vm->next)
        if (vm->job)
            return 1;
    return 0;
}

int job_leases_start(struct job_ctx *ctx)
{
    return watch_start(ctx);
}

void job_cancel_all(struct job_ctx *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    for (struct vm_state *vm = ctx->vms; vm; vm = vm->next)
        if (vm->job)
            atomic_store(&vm->job->cancel, 1);
    pthread_mutex_unlock(&ctx->lock);
}

void job_versions_warm(struct job_ctx *ctx)
{
    const char *const *binaries;
    int n;

    if (ctx->trust) {
        n = trust_binaries(ctx->trust, &binaries);
        qemu_versions_warm(binaries, n);
    }
}

void job_shutdown_signal(struct job_ctx *ctx)
{
    if (ctx)
        atomic_store(&ctx->shutdown, 1);
}

void job_log(struct job *job, const char *fmt, ...)
{
    char line[JOB_ERR_MAX + 256];
    int n = snprintf(line, sizeof(line), "%s: ", job->vm->name);
    va_list ap;

    if (!job->ctx->log)
        return;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    job->ctx->log(line);
}

int job_fail(struct job *job, int rc, const char *fmt, ...)
{
    int n = snprintf(job->err, sizeof(job->err), "%s: ", job->vm->name);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(job->err + n, sizeof(job->err) - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

int job_qmp(struct job *job, struct qmp *q, const char *name, json_t *args, json_t **ret)
{
    char err[JOB_ERR_MAX - 80];
    int rc = mig_cmd(q, name, args, ret, err, sizeof(err));

    return rc ? job_fail(job, rc, "%s", err) : 0;
}

int job_cancelled(struct job *job)
{
    return atomic_load(&job->cancel) || atomic_load(&job->ctx->shutdown);
}

/* Joins and frees the released jobs that ended (all of them once no job runs). */
static void job_reap(struct job_ctx *ctx)
{
    struct job *ended = NULL, **p, *job;

    pthread_mutex_lock(&ctx->lock);
    for (p = &ctx->released; (job = *p);) {
        if (job->done) {
            *p = job->next_released;
            job->next_released = ended;
            ended = job;
        } else {
            p = &job->next_released;
        }
    }
    pthread_mutex_unlock(&ctx->lock);
    for (; (job = ended); free(job)) {
        ended = job->next_released;
        pthread_join(job->thread, NULL);
    }
}

void job_ctx_free(struct job_ctx *ctx)
{
    struct vm_state *vm, *next;

    watch_stop(ctx);
    job_cancel_all(ctx);
    pthread_mutex_lock(&ctx->lock);
    while (any_job_locked(ctx))
        pthread_cond_wait(&ctx->changed, &ctx->lock);
    pthread_mutex_unlock(&ctx->lock);
    for (vm = ctx->vms; vm; vm = next) {
        next = vm->next;
        free(vm);
    }
    job_reap(ctx);
    free(ctx->pager);
    free(ctx->store);
    free(ctx->qmp_dir);
    lv_close(ctx->lv);
    free(ctx->run_dir);
    free(ctx);
}

struct vm_state *job_vm_find_locked(struct job_ctx *ctx, const char *name)
{
    struct vm_state *vm;

    for (vm = ctx->vms; vm; vm = vm->next)
        if (strcmp(vm->name, name) == 0)
            return vm;
    return NULL;
}

static struct vm_state *vm_get_locked(struct job_ctx *ctx, const char *name)
{
    struct vm_state *vm = job_vm_find_locked(ctx, name);

    if (vm)
        return vm;
    vm = calloc(1, sizeof(*vm));
    if (!vm)
        return NULL;
    snprintf(vm->name, sizeof(vm->name), "%s", name);
    vm->next = ctx->vms;
    ctx->vms = vm;
    return vm;
}

/* ---- progress, from the job thread ---- */

/* Closes the current phase: its time goes to the phases' record (a phase entered twice adds). */
static void end_phase_locked(struct job *job)
{
    struct job_phases *ph = &job->phases;
    double now = job_now();
    int i = 0;

    while (i < ph->n && strcmp(ph->at[i].name, job->phase) != 0)
        i++;
    if (i == ph->n && ph->n < JOB_PHASES_MAX)
        ph->at[ph->n++].name = job->phase;
    if (i < ph->n)
        ph->at[i].s += now - job->phase_started;
    job->phase_started = now;
}

void job_set_phase(struct job *job, const char *phase)
{
    pthread_mutex_lock(&job->ctx->lock);
    end_phase_locked(job);
    job->phase = phase;
    pthread_mutex_unlock(&job->ctx->lock);
}

void job_set_snapshot(struct job *job, const char *snap)
{
    pthread_mutex_lock(&job->ctx->lock);
    snprintf(job->snapshot, sizeof(job->snapshot), "%s", snap);
    pthread_mutex_unlock(&job->ctx->lock);
}

void job_phases_text(struct job *job, char *buf, size_t len)
{
    size_t n = 0;

    buf[0] = '\0';
    pthread_mutex_lock(&job->ctx->lock);
    end_phase_locked(job);
    for (int i = 0; i < job->phases.n && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s %.3f s", i ? ", " : "",
                              job->phases.at[i].name, job->phases.at[i].s);
    pthread_mutex_unlock(&job->ctx->lock);
}

void job_set_progress(struct job *job, uint64_t done, uint64_t total)
{
    pthread_mutex_lock(&job->ctx->lock);
    job->bytes_done = done;
    job->bytes_total = total;
    pthread_mutex_unlock(&job->ctx->lock);
}

void job_set_pid(struct job *job, int pid)
{
    pthread_mutex_lock(&job->ctx->lock);
    job->pid = pid;
    pthread_mutex_unlock(&job->ctx->lock);
}

static void tick_grow(int *tick_ms)
{
    *tick_ms += *tick_ms / 2 + 1;
    if (*tick_ms > JOB_TICK_MAX_MS)
        *tick_ms = JOB_TICK_MAX_MS;
}

void job_wait(int fd, int *tick_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    poll(&p, 1, *tick_ms); /* fd < 0: a sleep */
    tick_grow(tick_ms);
}

void job_wait_qmp(struct qmp *q, int fd, int *tick_ms)
{
    qmp_wait(q, fd, *tick_ms);
    tick_grow(tick_ms);
}

/* ---- running a job ---- */

static void record_result_locked(struct job *job)
{
    struct job_result *r = &job->vm->last;

    memset(r, 0, sizeof(*r));
    r->valid = 1;
    r->kind = job->kind;
    r->rc = job->rc;
    snprintf(r->snapshot, sizeof(r->snapshot), "%s", job->snapshot);
    snprintf(r->message, sizeof(r->message), "%s", job->rc ? job->err : job->summary);
    job_rfc3339(r->finished, sizeof(r->finished));
    r->duration_s = job_now() - job->started;
    if (job->phase_started > 0)
        end_phase_locked(job);
    r->phases = job->phases;
    r->bytes = job->kind->is_save ? job->bytes_written : job->bytes_done;
    r->channels = job->channels;
    if (job->kind->is_save)
        job->vm->last_save = *r;
}

static void *job_thread(void *arg)
{
    struct job *job = arg;
    char line[FOLLOW_LINE_MAX];

    job->rc = job->kind->body(job);
    /* The copier's threads and zstd's contexts leave freed megabytes in glibc's arenas, which
     * would otherwise stay in the resident memory of a daemon that idles between jobs. */
    malloc_trim(0);
    pthread_mutex_lock(&job->ctx->lock);
    record_result_locked(job);
    follow_outcome_locked(job->vm, line, sizeof(line));
    job->vm->job = NULL;
    job->done = 1;
    /* Wakes job_run's wait and every reader of the progress file. */
    pthread_cond_broadcast(&job->ctx->changed);
    pthread_mutex_unlock(&job->ctx->lock);
    if (job->ctx->log)
        job->ctx->log(line);
    return NULL;
}

void job_release(struct job *job, const char *state)
{
    pthread_mutex_lock(&job->ctx->lock);
    job->released = 1;
    job->released_state = state;
    pthread_cond_broadcast(&job->ctx->changed);
    pthread_mutex_unlock(&job->ctx->lock);
}

/* Waits until a job changes or WAIT_TICK_MS passed (the caller then looks at an interrupt). */
static void wait_tick_locked(struct job_ctx *ctx)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += WAIT_TICK_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&ctx->changed, &ctx->lock, &ts);
}

/* Waits for JOB's end, or its release: then it goes to ctx->released and 1 is returned (the
 * thread is joined and the job freed by job_reap). */
static int wait_done(struct job *job, job_interrupted_fn interrupted)
{
    struct job_ctx *ctx = job->ctx;
    int released;

    pthread_mutex_lock(&ctx->lock);
    while (!job->done && !job->released) {
        wait_tick_locked(ctx);
        if (interrupted && interrupted())
            atomic_store(&job->cancel, 1);
    }
    released = !job->done;
    if (released) {
        job->next_released = ctx->released;
        ctx->released = job;
    }
    pthread_mutex_unlock(&ctx->lock);
    if (!released)
        pthread_join(job->thread, NULL);
    return released;
}

/* A job whose caller went back (a lazy restore's push) is waited for, not refused: a script's
 * `mv S restore/ && echo 4 > save` saves once the push is over. -EINTR if INTERRUPTED says so. */
static int wait_released_locked(struct vm_state *vm, struct job_ctx *ctx,
                                job_interrupted_fn interrupted)
{
    while (vm->job && vm->job->released) {
        if (interrupted && interrupted())
            return -EINTR;
        wait_tick_locked(ctx);
    }
    return 0;
}

int job_run(struct job *job, const char *vm, job_interrupted_fn interrupted)
{
    struct job_ctx *ctx = job->ctx;
    int rc, oldstate;

    job_reap(ctx);
    pthread_mutex_lock(&ctx->lock);
    job->vm = vm_get_locked(ctx, vm);
    rc = job->vm ? wait_released_locked(job->vm, ctx, interrupted) : -ENOMEM;
    if (!rc && job->vm->job)
        rc = -EBUSY;
    if (!rc) {
        job->vm->job = job;
        job->vm->jobs++;
    }
    pthread_mutex_unlock(&ctx->lock);
    if (rc)
        goto out;
    follow_job_started(job);
    /* libfuse cancels its workers at exit: this one must stay until the job is over. */
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &oldstate);
    job->started = job->phase_started = job_now();
    rc = cp_thread_start(&job->thread, job_thread, job);
    if (rc) {
        pthread_mutex_lock(&ctx->lock);
        job->vm->job = NULL;
        pthread_mutex_unlock(&ctx->lock);
    } else if (wait_done(job, interrupted)) {
        job = NULL; /* the thread goes on with it */
    } else {
        rc = job->rc;
    }
    pthread_setcancelstate(oldstate, NULL);
out:
    free(job);
    return rc;
}

struct job *job_new(struct job_ctx *ctx, const struct job_kind *kind)
{
    struct job *job = calloc(1, sizeof(*job));

    if (job) {
        job->ctx = ctx;
        job->kind = kind;
        job->phase = "starting";
    }
    return job;
}

int job_refuse(struct job_ctx *ctx, const char *vm, const struct job_kind *kind, int rc,
               const char *why)
{
    struct job job = {.ctx = ctx, .kind = kind, .rc = rc, .started = job_now()};

    snprintf(job.err, sizeof(job.err), "%.64s: %.900s", vm, why);
    pthread_mutex_lock(&ctx->lock);
    job.vm = vm_get_locked(ctx, vm);
    if (job.vm)
        record_result_locked(&job);
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}
