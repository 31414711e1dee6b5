/* watch: once a second, the lease of every VM whose QEMU listens on this host (watch.h).
 * - A QEMU that a restore started holds its lease itself (an inherited OFD lock): the watch only
 *   checks that the store still says this host.
 * - A QEMU started by hand gets its lease as soon as the watch sees it, held by savefs (so it
 *   goes if savefs dies, until the next savefs takes it again: docs/fleet.md says so).
 * - The fence: when the store has not answered for ctx->fence_ms (a host cut off from its
 *   GlusterFS bricks), every QEMU savefs started here is stopped over QMP (killed if QMP does not
 *   answer), before the bricks let the lease go and another host may restore the VM. A lease
 *   found held by another host while the VM runs here is said loudly in status and the log, and
 *   the QEMU is stopped if savefs started it.
 * Two threads: the tick (store I/O, which may block as long as the store does) and the fence
 * (QMP only, so that a store that hangs cannot delay it). The list is guarded by watch.lock,
 * never held across I/O. */
#include "watch.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "copier.h"
#include "qemu.h"
#include "qmp.h"

#define WATCH_TICK_MS   1000
#define FENCE_TICK_MS   250
#define FENCE_QMP_MS    2000
#define FENCE_KILL_WAIT 3000

struct watched {
    struct watched *next;
    char vm[SNAPSHOT_NAME_MAX + 1];
    /* owned by the tick thread */
    int fd;   /* a lease savefs holds itself, or -1 */
    int seen; /* listening at the last tick */
    /* guarded by watch.lock */
    int ours; /* its QEMU was started here by a restore (the note names it) */
    int pid;  /* that QEMU, 0 if unknown */
    int held; /* the lease is this host's, as last read */
    int fenced;
    struct lease_holder holder; /* the lease as last read */
    char alarm[1024];
};

struct watch {
    struct job_ctx *ctx;
    pthread_t tick, fence;
    int started;
    atomic_int stop;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    /* guarded by lock */
    struct watched *list;
    double last_ok; /* when the store last answered (job_now); 0: no VM watched */
};

int watch_note_path(const struct job_ctx *ctx, const char *vm, char *path)
{
    return store_path(path, "%s/%s.lease", ctx->run_dir, vm);
}

static void say(struct watch *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct watch *w, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (w->ctx->log)
        w->ctx->log(msg);
}

static struct watched *find_locked(struct watch *w, const char *vm)
{
    for (struct watched *e = w->list; e; e = e->next)
        if (strcmp(e->vm, vm) == 0)
            return e;
    return NULL;
}

/* 1 if PID runs with QMP_PATH in its command line: the QEMU a note names is still that VM's. */
static int runs_as(int pid, const char *qmp_path)
{
    char binary[PATH_MAX], err[128], **argv = NULL;
    int argc = 0, found = 0;

    if (pid <= 0 || qemu_read_cmdline(pid, &argv, &argc, binary, sizeof(binary), err, sizeof(err)))
        return 0;
    for (int i = 0; i < argc && !found; i++)
        found = strstr(argv[i], qmp_path) != NULL;
    qemu_argv_free(argv);
    return found;
}

/* The QEMU a restore started here for VM, from its note: 1 with *NOTE if it still runs. */
static int our_qemu(struct job_ctx *ctx, const char *vm, struct lease_holder *note)
{
    char path[PATH_MAX], qmp[PATH_MAX];

    return !watch_note_path(ctx, vm, path) && !lease_load(path, note) &&
           !job_qmp_path(ctx, vm, qmp) && runs_as(note->pid, qmp);
}

static void store_answered(struct watch *w)
{
    pthread_mutex_lock(&w->lock);
    w->last_ok = job_now();
    pthread_mutex_unlock(&w->lock);
}

/* Stops VM's QEMU PID: `stop` over QMP leaves it paused with its state, for the operator; a QEMU
 * whose monitor does not answer is killed. Fence thread or tick thread, no lock held. */
static void fence(struct watch *w, const char *vm, int pid, const char *why)
{
    char path[PATH_MAX], err[256];
    struct qmp *q = NULL;
    int rc = job_qmp_path(w->ctx, vm, path);

    if (!rc && !(rc = qmp_connect(&q, path, FENCE_QMP_MS, err, sizeof(err))))
        rc = qmp_cmd(q, "stop", NULL, NULL, FENCE_QMP_MS, err, sizeof(err));
    if (q)
        qmp_close(q);
    if (rc && kill(pid, SIGKILL) == 0)
        snprintf(err, sizeof(err), "QMP did not answer: killed");
    say(w, "FENCE %s: %s; its QEMU (pid %d) %s", vm, why, pid, rc ? err : "stopped (paused)");
    pthread_mutex_lock(&w->lock);
    struct watched *e = find_locked(w, vm);
    if (e) {
        e->fenced = 1;
        snprintf(e->alarm, sizeof(e->alarm), "fenced: %s; this host's QEMU (pid %d) was %s", why,
                 pid, rc ? "killed" : "stopped and stays paused");
    }
    pthread_mutex_unlock(&w->lock);
}

/* The lease of a VM that runs here is another host's: the VM may run twice. */
static void taken(struct watch *w, struct watched *e, const struct lease_holder *h)
{
    char who[256], why[512];
    int ours, pid, fenced;

    lease_describe(h, who, sizeof(who));
    snprintf(why, sizeof(why), "%s also %s: its lease is no longer this host's", e->vm, who);
    pthread_mutex_lock(&w->lock);
    ours = e->ours;
    pid = e->pid;
    fenced = e->fenced;
    e->held = 0;
    e->holder = *h;
    if (fenced)
        snprintf(e->alarm, sizeof(e->alarm),
                 "fenced: this host's QEMU (pid %d) was stopped and stays paused; %s: quit "
                 "it here",
                 pid, why);
    else
        snprintf(e->alarm, sizeof(e->alarm), "RUNS TWICE: %s%s", why,
                 ours ? "" : "; it was started by hand: stop it here");
    pthread_mutex_unlock(&w->lock);
    if (ours && !fenced)
        fence(w, e->vm, pid, why);
    else if (!fenced)
        say(w, "RUNS TWICE: %s (started by hand: savefs does not stop it)", why);
}

/* A lease for E taken now, by savefs: for a QEMU started by hand, or one whose lock was lost. */
static void take(struct watch *w, struct watched *e, const struct lease_holder *note)
{
    struct lease_holder h = {0};
    char err[256];
    int fd, rc = lease_take(w->ctx->store, e->vm, &fd, &h, err, sizeof(err));

    if (rc == -EBUSY)
        return taken(w, e, &h);
    if (rc)
        return;
    store_answered(w);
    /* The QEMU's lock goes when it quits: one that quit between our look and the lock is gone,
     * and holding its lease now would refuse the restore that follows (until the next tick). */
    if (note && !our_qemu(w->ctx, e->vm, &h)) {
        close(fd);
        return;
    }
    if (note) {
        h = *note;
        say(w, "lease of %s: the QEMU's lock was gone (the store lost it); savefs holds it again",
            e->vm);
    } else {
        snprintf(h.host, sizeof(h.host), "%s", w->ctx->host);
        job_rfc3339(h.since, sizeof(h.since));
        snprintf(h.how, sizeof(h.how), "seen");
    }
    lease_write(fd, &h);
    pthread_mutex_lock(&w->lock);
    e->fd = fd; /* under the lock: watch_view tells a restore whether savefs holds it */
    e->held = 1;
    e->holder = h;
    pthread_mutex_unlock(&w->lock);
}

/* One VM whose QEMU listens here, once a tick. */
static void check(struct watch *w, struct watched *e)
{
    struct lease_holder note, h;
    int ours = our_qemu(w->ctx, e->vm, &note), rc;

    pthread_mutex_lock(&w->lock);
    e->ours = ours;
    e->pid = ours ? note.pid : e->pid;
    pthread_mutex_unlock(&w->lock);
    if (e->fd >= 0) {
        rc = lease_renew(e->fd, &h);
        if (rc == -EBUSY)
            taken(w, e, &h);
        if (!rc || rc == -EBUSY)
            store_answered(w);
        return;
    }
    if ((rc = lease_query(w->ctx->store, e->vm, &h)) < 0)
        return;
    store_answered(w);
    if (rc == 0)
        return take(w, e, ours ? &note : NULL);
    if (strcmp(h.host, w->ctx->host) != 0)
        return taken(w, e, &h);
    pthread_mutex_lock(&w->lock);
    e->held = 1;
    e->holder = h;
    pthread_mutex_unlock(&w->lock);
}

/* VM runs here and no restore is starting it (a restore's job holds its lease itself). */
static int listening_idle(struct job_ctx *ctx, const char *vm)
{
    char path[PATH_MAX];
    int restoring;

    if (job_qmp_path(ctx, vm, path) || !qemu_listening(path))
        return 0;
    pthread_mutex_lock(&ctx->lock);
    struct vm_state *s = job_vm_find_locked(ctx, vm);
    restoring = s && s->job && s->job->kind == &job_kind_restore;
    pthread_mutex_unlock(&ctx->lock);
    return !restoring;
}

static struct watched *add(struct watch *w, const char *vm)
{
    struct watched *e = calloc(1, sizeof(*e));

    if (!e)
        return NULL;
    snprintf(e->vm, sizeof(e->vm), "%s", vm);
    e->fd = -1;
    pthread_mutex_lock(&w->lock);
    if (!w->list)
        w->last_ok = job_now(); /* the fence's clock starts with the first VM */
    e->next = w->list;
    w->list = e;
    pthread_mutex_unlock(&w->lock);
    return e;
}

/* The VMs that no longer run here: their leases savefs held go, their notes too. */
static void drop_gone(struct watch *w)
{
    struct watched **p = &w->list, *gone = NULL, *e;
    char path[PATH_MAX];

    pthread_mutex_lock(&w->lock);
    while ((e = *p)) {
        if (e->seen) {
            p = &e->next;
            continue;
        }
        *p = e->next;
        e->next = gone;
        gone = e;
    }
    pthread_mutex_unlock(&w->lock);
    for (; gone; gone = e) {
        e = gone->next;
        if (gone->fd >= 0)
            close(gone->fd);
        if (!watch_note_path(w->ctx, gone->vm, path))
            unlink(path);
        free(gone);
    }
}

static void tick(struct watch *w)
{
    char **names = job_vm_list(w->ctx);
    struct watched *e;

    pthread_mutex_lock(&w->lock);
    for (e = w->list; e; e = e->next)
        e->seen = 0;
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; names && names[i] && !atomic_load(&w->stop); i++) {
        if (!listening_idle(w->ctx, names[i]))
            continue;
        pthread_mutex_lock(&w->lock);
        e = find_locked(w, names[i]);
        pthread_mutex_unlock(&w->lock);
        if (!e && !(e = add(w, names[i])))
            continue;
        e->seen = 1;
        check(w, e);
    }
    job_names_free(names);
    drop_gone(w);
}

/* Waits MS or until watch_stop. */
static void nap(struct watch *w, int ms)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    if (!atomic_load(&w->stop))
        pthread_cond_timedwait(&w->wake, &w->lock, &until);
    pthread_mutex_unlock(&w->lock);
}

static void *tick_main(void *arg)
{
    struct watch *w = arg;

    while (!atomic_load(&w->stop)) {
        tick(w);
        nap(w, WATCH_TICK_MS);
    }
    return NULL;
}

/* The QEMUs savefs started here that the fence stops now: the store has been silent too long. */
static int fence_due_locked(struct watch *w, char *vm, int *pid, double *silent)
{
    *silent = job_now() - w->last_ok;
    if (!w->list || *silent * 1000 < w->ctx->fence_ms)
        return 0;
    for (struct watched *e = w->list; e; e = e->next)
        if (e->ours && !e->fenced && e->pid > 0) {
            snprintf(vm, SNAPSHOT_NAME_MAX + 1, "%s", e->vm);
            *pid = e->pid;
            e->fenced = 1; /* once: fence() says how it went */
            return 1;
        }
    return 0;
}

static void *fence_main(void *arg)
{
    struct watch *w = arg;
    char vm[SNAPSHOT_NAME_MAX + 1], why[256];
    double silent;
    int pid, due;

    while (!atomic_load(&w->stop)) {
        pthread_mutex_lock(&w->lock);
        due = fence_due_locked(w, vm, &pid, &silent);
        pthread_mutex_unlock(&w->lock);
        if (due) {
            snprintf(why, sizeof(why),
                     "the store has not answered for %.0f s: its lease may expire on the other "
                     "hosts",
                     silent);
            fence(w, vm, pid, why);
            continue;
        }
        nap(w, FENCE_TICK_MS);
    }
    return NULL;
}

int watch_start(struct job_ctx *ctx)
{
    struct watch *w = calloc(1, sizeof(*w));
    int rc;

    if (!w)
        return -ENOMEM;
    w->ctx = ctx;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    ctx->watch = w;
    if ((rc = cp_thread_start(&w->tick, tick_main, w)))
        return rc;
    if ((rc = cp_thread_start(&w->fence, fence_main, w))) {
        atomic_store(&w->stop, 1);
        pthread_join(w->tick, NULL);
        return rc;
    }
    w->started = 1;
    return 0;
}

void watch_stop(struct job_ctx *ctx)
{
    struct watch *w = ctx->watch;
    struct watched *e, *next;

    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    atomic_store(&w->stop, 1);
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    if (w->started) {
        pthread_join(w->tick, NULL);
        pthread_join(w->fence, NULL);
    }
    for (e = w->list; e; e = next) {
        next = e->next;
        if (e->fd >= 0)
            close(e->fd);
        free(e);
    }
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
    ctx->watch = NULL;
}

void watch_view(struct job_ctx *ctx, const char *vm, struct watch_view *v)
{
    struct watch *w = ctx->watch;
    struct watched *e = NULL;
    int rc;

    memset(v, 0, sizeof(*v));
    if (w) {
        pthread_mutex_lock(&w->lock);
        if ((e = find_locked(w, vm))) {
            v->known = 1;
            v->held = e->held || e->holder.host[0];
            v->mine = e->held;
            v->fenced = e->fenced;
            v->savefs = e->fd >= 0;
            v->holder = e->holder;
            snprintf(v->alarm, sizeof(v->alarm), "%s", e->alarm);
        }
        pthread_mutex_unlock(&w->lock);
    }
    if (e)
        return;
    /* Not running here: the store says, without a lock taken or a file made. */
    rc = lease_query(ctx->store, vm, &v->holder);
    v->known = rc >= 0;
    v->held = rc == 1;
    v->mine = rc == 1 && strcmp(v->holder.host, ctx->host) == 0;
}

void watch_forget(struct job_ctx *ctx, const char *vm)
{
    struct watch *w = ctx->watch;

    if (!w)
        return;
    /* The tick owns the descriptors: wake it, and it lets go of what no longer listens. */
    pthread_mutex_lock(&w->lock);
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    (void)vm;
}
