/* import: the registry of imports and their threads. An import is checked only when nothing
 * writes into it (the last writer's close, a rename): a file that merely appeared starts
 * nothing, and a restore starts only after every checksum matched. A manifest written through
 * the mount that names another VM is refused at its close, and so is every later write into
 * that snapshot. Items live in a hash table and are freed when their directory goes (a thread
 * that still works on one frees it when it ends), so memory and lookups stay bounded however
 * many imports came and went. Never holds the lock across I/O, a job or pthread_create: a check's
 * thread is started once the lock is released, and joined once it ended by the next call that
 * may start one (a close, a change) or by import_free. */
#include "import.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "copier.h"
#include "disks.h"
#include "job.h"
#include "facts.h"
#include "manifest.h"
#include "status.h"
#include "store.h"
#include "trust.h"
#include "words.h"

#define STOP_TICK_MS 100
#define BUCKETS_MIN  64
/* The images a checkpoint's manifest may list, all disks together. */
#define IMAGES_MAX (MANIFEST_MAX_DISKS * MANIFEST_MAX_LAYERS)

enum import_phase {
    IMP_WAITING,   /* importing: files still arriving, or incomplete */
    IMP_VERIFYING, /* complete: checking trust and checksums */
    IMP_RESTORING,
    IMP_RESTORED,
    IMP_FAILED, /* refused or the restore failed: stays in snapshots/ */
};

static const char *const phase_names[] = {"importing", "verifying", "restoring", "restored",
                                          "failed"};

/* What a verification saw of one file: it still holds if none of these changed. */
struct seen {
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct item {
    struct item *next; /* in its bucket */
    char vm[SNAPSHOT_NAME_MAX + 1], snap[SNAPSHOT_NAME_MAX + 1];
    int in_restore; /* made in NAME/restore/: listed there, and restored once complete */
    /* guarded by imp->lock */
    int forgotten; /* out of the table; the thread that runs frees it */
    int foreign;   /* its manifest names another VM: refused for good */
    enum import_phase phase;
    int writers; /* files open for writing through the mount */
    int running; /* a thread works on it */
    int recheck; /* something changed while the thread ran */
    char reason[JOB_ERR_MAX];
    char verified_at[32]; /* RFC 3339; empty if never verified */
    struct seen seen[MANIFEST_MAX_FILES];
    int nseen;
};

/* Files open for writing through the mount in one snapshot, an import's or a copy's into
 * snapshots/: while there are any, the snapshot is in use (a keep=N deletes none in use). */
struct writing {
    struct writing *next;
    char vm[SNAPSHOT_NAME_MAX + 1], snap[NAME_MAX + 1];
    int n;
};

/* A check's thread, joined once it ended: by the next call that may start one, or by
 * import_free. */
struct runner {
    struct runner *next;
    pthread_t thread;
    int started; /* pthread_create returned: THREAD is set */
    int ended;   /* the thread is past its last use of the import */
};

struct import {
    /* set before threads start */
    struct job_ctx *ctx;
    const struct trust *trust;
    struct facts_cache *facts; /* its own lock */
    /* guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a thread started or ended */
    struct item **buckets;
    size_t nbuckets, nitems;
    struct runner *runners; /* every thread not joined yet */
    int stopping;
    struct writing *writing; /* only snapshots with files open for writing */
};

static int users_in_use(void *imp, const char *vm, const char *snap);
static void users_deleted(void *imp, const char *vm, const char *snap);
static int runners_busy_locked(const struct import *imp);
static void reap(struct import *imp);

int import_new(struct import **out, struct job_ctx *ctx, const struct trust *trust)
{
    struct import *imp = calloc(1, sizeof(*imp));

    if (!imp || !(imp->buckets = calloc(BUCKETS_MIN, sizeof(*imp->buckets))) ||
        facts_cache_new(&imp->facts, trust)) {
        free(imp ? imp->buckets : NULL);
        free(imp);
        return -ENOMEM;
    }
    imp->nbuckets = BUCKETS_MIN;
    imp->ctx = ctx;
    imp->trust = trust;
    pthread_mutex_init(&imp->lock, NULL);
    pthread_cond_init(&imp->changed, NULL);
    job_set_snapshot_users(ctx, &(struct job_snapshot_users){users_in_use, users_deleted, imp});
    *out = imp;
    return 0;
}

void import_free(struct import *imp)
{
    struct item *it, *next;
    struct timespec ts;

    if (!imp)
        return;
    job_set_snapshot_users(imp->ctx, NULL);
    pthread_mutex_lock(&imp->lock);
    imp->stopping = 1;
    while (runners_busy_locked(imp)) {
        pthread_mutex_unlock(&imp->lock);
        job_cancel_all(imp->ctx); /* a restore an import started */
        pthread_mutex_lock(&imp->lock);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += STOP_TICK_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&imp->changed, &imp->lock, &ts);
    }
    pthread_mutex_unlock(&imp->lock);
    reap(imp);
    for (size_t b = 0; b < imp->nbuckets; b++)
        for (it = imp->buckets[b]; it; it = next) {
            next = it->next;
            free(it);
        }
    free(imp->buckets);
    while (imp->writing) {
        struct writing *w = imp->writing;
        imp->writing = w->next;
        free(w);
    }
    facts_cache_free(imp->facts);
    pthread_mutex_destroy(&imp->lock);
    pthread_cond_destroy(&imp->changed);
    free(imp);
}

/* FNV-1a of VM NUL SNAP. */
static size_t hash(const char *vm, const char *snap)
{
    uint64_t h = 14695981039346656037ULL;

    for (const char *p = vm; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h *= 1099511628211ULL;
    for (const char *p = snap; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return (size_t)h;
}

static struct item **bucket_locked(struct import *imp, const char *vm, const char *snap)
{
    return &imp->buckets[hash(vm, snap) % imp->nbuckets];
}

static struct item *find_locked(struct import *imp, const char *vm, const char *snap)
{
    for (struct item *it = *bucket_locked(imp, vm, snap); it; it = it->next)
        if (strcmp(it->vm, vm) == 0 && strcmp(it->snap, snap) == 0)
            return it;
    return NULL;
}

/* Doubles the table once it holds more items than buckets; stays as it is if memory is short. */
static void grow_locked(struct import *imp)
{
    size_t n = imp->nbuckets * 2;
    struct item **b = calloc(n, sizeof(*b)), *it, *next;

    if (!b)
        return;
    for (size_t i = 0; i < imp->nbuckets; i++)
        for (it = imp->buckets[i]; it; it = next) {
            next = it->next;
            it->next = b[hash(it->vm, it->snap) % n];
            b[hash(it->vm, it->snap) % n] = it;
        }
    free(imp->buckets);
    imp->buckets = b;
    imp->nbuckets = n;
}

/* Takes IT out of the table; a thread that works on it frees it when it ends. */
static void drop_locked(struct import *imp, struct item *it)
{
    struct item **p = bucket_locked(imp, it->vm, it->snap);

    while (*p != it)
        p = &(*p)->next;
    *p = it->next;
    imp->nitems--;
    if (it->running)
        it->forgotten = 1;
    else
        free(it);
}

/* A new item for VM's SNAP, replacing an older one of that name. */
static struct item *add_locked(struct import *imp, const char *vm, const char *snap)
{
    struct item *it = calloc(1, sizeof(*it)), *old = find_locked(imp, vm, snap), **b;

    if (!it)
        return NULL;
    snprintf(it->vm, sizeof(it->vm), "%s", vm);
    snprintf(it->snap, sizeof(it->snap), "%s", snap);
    if (old)
        drop_locked(imp, old);
    if (imp->nitems >= imp->nbuckets)
        grow_locked(imp);
    b = bucket_locked(imp, vm, snap);
    it->next = *b;
    *b = it;
    imp->nitems++;
    return it;
}

int import_begin(struct import *imp, const char *vm, const char *snap)
{
    struct item *it;

    pthread_mutex_lock(&imp->lock);
    it = add_locked(imp, vm, snap);
    if (it) {
        it->in_restore = 1;
        snprintf(it->reason, sizeof(it->reason), "waiting: %s is missing", MANIFEST_NAME);
    }
    pthread_mutex_unlock(&imp->lock);
    return it ? 0 : -ENOMEM;
}

int import_known(struct import *imp, const char *vm, const char *snap)
{
    struct item *it;
    int known;

    pthread_mutex_lock(&imp->lock);
    it = find_locked(imp, vm, snap);
    known = it && it->in_restore;
    pthread_mutex_unlock(&imp->lock);
    return known;
}

char **import_names(struct import *imp, const char *vm)
{
    char **names;
    size_t n = 0;

    pthread_mutex_lock(&imp->lock);
    names = calloc(imp->nitems + 1, sizeof(char *));
    for (size_t b = 0; names && b < imp->nbuckets; b++)
        for (struct item *it = imp->buckets[b]; it; it = it->next) {
            if (!it->in_restore || strcmp(it->vm, vm) != 0 || it->phase >= IMP_RESTORED)
                continue;
            if (!(names[n] = strdup(it->snap)))
                break;
            n++;
        }
    pthread_mutex_unlock(&imp->lock);
    return names;
}

void import_forget(struct import *imp, const char *vm, const char *snap)
{
    struct item *it;

    pthread_mutex_lock(&imp->lock);
    if ((it = find_locked(imp, vm, snap)))
        drop_locked(imp, it);
    pthread_mutex_unlock(&imp->lock);
}

int import_busy(struct import *imp, const char *vm, const char *snap)
{
    struct item *it;
    int busy;

    pthread_mutex_lock(&imp->lock);
    it = find_locked(imp, vm, snap);
    busy = it && it->running && (it->phase == IMP_VERIFYING || it->phase == IMP_RESTORING);
    pthread_mutex_unlock(&imp->lock);
    return busy;
}

int import_in_use(struct import *imp, const char *vm, const char *snap)
{
    struct item *it;
    int used = 0;

    pthread_mutex_lock(&imp->lock);
    for (struct writing *w = imp->writing; w && !used; w = w->next)
        used = strcmp(w->vm, vm) == 0 && strcmp(w->snap, snap) == 0;
    it = find_locked(imp, vm, snap);
    used |= it && (it->running || (it->in_restore && it->phase < IMP_RESTORED));
    pthread_mutex_unlock(&imp->lock);
    return used;
}

/* The job context asks and tells through these (job_set_snapshot_users). */
static int users_in_use(void *imp, const char *vm, const char *snap)
{
    return import_in_use(imp, vm, snap);
}

static void users_deleted(void *imp, const char *vm, const char *snap)
{
    import_forget(imp, vm, snap);
}

/* ---- snapshots of another VM ---- */

static void refuse_foreign_locked(struct item *it, const char *named)
{
    it->foreign = 1;
    it->phase = IMP_FAILED;
    snprintf(it->reason, sizeof(it->reason),
             "refused: %s names VM %s, not %s: a snapshot goes to another VM only with "
             "`savefs adopt`",
             MANIFEST_NAME, named, it->vm);
}

/* The "vm" of the manifest at PATH into NAMED; "" if it has none or is not JSON (yet). */
static void manifest_vm(const char *path, char *named, size_t len)
{
    json_t *root = json_load_file(path, 0, NULL);
    const char *vm = json_string_value(json_object_get(root, "vm"));

    snprintf(named, len, "%s", vm ? vm : "");
    json_decref(root);
}

int import_manifest_written(struct import *imp, const char *vm, const char *snap, const char *rel)
{
    char path[PATH_MAX], named[SNAPSHOT_NAME_MAX + 1];
    struct item *it;
    int rc = 0;

    if (store_path(path, "%s/%s", job_store(imp->ctx), rel))
        return -ENAMETOOLONG;
    manifest_vm(path, named, sizeof(named));
    if (!named[0] || strcmp(named, vm) == 0)
        return 0;
    /* Not kept: nothing of the refused copy can be restored, by an import or by mv. */
    if (unlink(path) < 0)
        rc = -errno;
    pthread_mutex_lock(&imp->lock);
    it = find_locked(imp, vm, snap);
    if (!it)
        it = add_locked(imp, vm, snap);
    if (it)
        refuse_foreign_locked(it, named);
    pthread_mutex_unlock(&imp->lock);
    return rc ? rc : -EXDEV;
}

int import_refused(struct import *imp, const char *vm, const char *snap)
{
    struct item *it;
    int refused;

    pthread_mutex_lock(&imp->lock);
    it = find_locked(imp, vm, snap);
    refused = it && it->foreign;
    pthread_mutex_unlock(&imp->lock);
    return refused;
}

/* ---- the check, in the import's thread ---- */

struct check {
    struct import *imp;
    struct item *it;
    struct runner *runner;
    char dir[PATH_MAX];
    struct manifest m;
};

static void set_phase(struct check *c, enum import_phase phase, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_phase(struct check *c, enum import_phase phase, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&c->imp->lock);
    /* A refusal for naming another VM, made at a close meanwhile, stays. */
    if (!c->it->foreign) {
        c->it->phase = phase;
        va_start(ap, fmt);
        vsnprintf(c->it->reason, sizeof(c->it->reason), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&c->imp->lock);
}

/* Every file the manifest names is there with its size; what was seen goes to SEEN. */
static int check_sizes(const char *dir, const struct cp_file *files, int nfiles, struct seen *seen,
                       char *why, size_t len)
{
    char path[PATH_MAX];
    struct stat st;

    for (int i = 0; i < nfiles; i++) {
        const struct cp_file *f = &files[i];

        int rc = manifest_file_stat(dir, f, path, &st);

        if (rc == -ENAMETOOLONG)
            return rc;
        if (rc == -ENOENT) {
            snprintf(why, len, "%s is missing", f->name);
            return -ENOENT;
        }
        if (rc) {
            snprintf(why, len, "%s has %lld of %llu bytes", f->name, (long long)st.st_size,
                     (unsigned long long)f->size);
            return -EAGAIN;
        }
        seen[i] = (struct seen){st.st_ino, st.st_size, st.st_mtim};
    }
    return 0;
}

/* Every image a checkpoint captured is there with its size, as the files are (a snapshot
 * carried without its disks/ never restores); what was seen goes to SEEN. */
static int check_images(const struct check *c, struct seen *seen, char *why, size_t len)
{
    struct stat st;
    int n = 0, rc;

    for (int i = 0; i < c->m.ndisks; i++)
        for (int l = 0; l < c->m.disks[i].nlayers; l++) {
            if ((rc = ckpt_layer_stat(&c->m.disks[i], l, c->dir, &st, why, len)))
                return rc == -EBADMSG ? -EAGAIN : rc; /* still arriving */
            seen[n++] = (struct seen){st.st_ino, st.st_size, st.st_mtim};
        }
    return 0;
}

/* Reads the manifest and checks sizes; the reason for waiting goes to the item. */
static int check_complete(struct check *c, struct seen *seen, struct seen *images)
{
    char path[PATH_MAX], why[JOB_ERR_MAX - 64];
    int rc;

    manifest_free(&c->m);
    if (store_path(path, "%s/%s", c->dir, MANIFEST_NAME))
        return -ENAMETOOLONG;
    rc = manifest_read(path, &c->m, why, sizeof(why));
    if (rc == -ENOENT)
        snprintf(why, sizeof(why), "%s is missing", MANIFEST_NAME);
    if (!rc)
        rc = check_sizes(c->dir, c->m.files, c->m.nfiles, seen, why, sizeof(why));
    if (!rc)
        rc = check_images(c, images, why, sizeof(why));
    if (rc)
        set_phase(c, IMP_WAITING, "waiting: %s", why);
    return rc;
}

/* A manifest that names another VM is refused for good, however it got there. */
static int check_owner(struct check *c)
{
    if (strcmp(c->m.vm, c->it->vm) == 0)
        return 0;
    pthread_mutex_lock(&c->imp->lock);
    refuse_foreign_locked(c->it, c->m.vm);
    pthread_mutex_unlock(&c->imp->lock);
    return -EXDEV;
}

static int check_trust(struct check *c)
{
    struct trust_subject s = {job_store(c->imp->ctx), c->it->vm, c->it->snap};
    char how[256], why[JOB_ERR_MAX - 64];
    struct manifest copy;
    char path[PATH_MAX];
    int rc;

    if (store_path(path, "%s/%s", c->dir, MANIFEST_NAME) ||
        manifest_read(path, &copy, why, sizeof(why)))
        return -EAGAIN;
    rc = trust_resolve(c->imp->trust, &s, &copy, NULL, how, sizeof(how), why, sizeof(why));
    manifest_free(&copy);
    if (rc)
        set_phase(c, IMP_FAILED, "%s", why);
    return rc;
}

static int check_sums(struct check *c)
{
    char why[JOB_ERR_MAX - 64];
    int rc = 0;

    for (int i = 0; !rc && i < c->m.nfiles; i++) {
        if (c->imp->stopping)
            return -ECANCELED;
        rc = cp_verify_file(c->dir, &c->m.files[i], why, sizeof(why));
    }
    if (!rc && !c->imp->stopping)
        rc = ckpt_check_images(&c->m, c->dir, why, sizeof(why));
    if (rc)
        set_phase(c, IMP_WAITING, "verifying failed: %s", why);
    return rc;
}

static int keep_verified(struct check *c, const struct seen *seen, const struct seen *images)
{
    struct seen now[MANIFEST_MAX_FILES], *imgs = calloc(IMAGES_MAX, sizeof(*imgs));
    char why[256];
    int rc = imgs ? check_sizes(c->dir, c->m.files, c->m.nfiles, now, why, sizeof(why)) : -ENOMEM;

    if (!rc)
        rc = check_images(c, imgs, why, sizeof(why));
    /* A file that changed while it was read is not verified. */
    if (!rc && (memcmp(now, seen, sizeof(*now) * (size_t)c->m.nfiles) != 0 ||
                memcmp(imgs, images, sizeof(*imgs) * IMAGES_MAX) != 0))
        rc = -EAGAIN;
    free(imgs);
    pthread_mutex_lock(&c->imp->lock);
    if (!rc) {
        memcpy(c->it->seen, seen, sizeof(*seen) * (size_t)c->m.nfiles);
        c->it->nseen = c->m.nfiles;
        job_rfc3339(c->it->verified_at, sizeof(c->it->verified_at));
    }
    pthread_mutex_unlock(&c->imp->lock);
    return rc;
}

/* The job's own words for a failed restore. */
static void restore_reason(struct check *c, int rc, char *why, size_t len)
{
    job_status_last_error(c->imp->ctx, c->it->vm, why, len);
    if (!why[0])
        snprintf(why, len, "%s", strerror(-rc));
}

static void restore(struct check *c)
{
    char why[JOB_ERR_MAX - 64];
    int rc;

    set_phase(c, IMP_RESTORING, "restoring");
    rc = job_restore(c->imp->ctx, c->it->vm, c->it->snap, NULL);
    if (rc)
        restore_reason(c, rc, why, sizeof(why));
    if (rc)
        set_phase(c, IMP_FAILED, "restore failed: %s", why);
    else
        set_phase(c, IMP_RESTORED, "restored");
}

/* One pass: 0 once the snapshot was handed to a restore (or refused), else waits for a change. */
static int check_once(struct check *c)
{
    struct seen seen[MANIFEST_MAX_FILES], *images = calloc(IMAGES_MAX, sizeof(*images));
    int rc = images ? 0 : -ENOMEM;

    if (rc || (rc = check_complete(c, seen, images)) || (rc = check_owner(c)) ||
        (rc = check_trust(c)))
        goto out;
    set_phase(c, IMP_VERIFYING, "verifying checksums");
    if ((rc = check_sums(c)) || (rc = keep_verified(c, seen, images)))
        goto out;
    rc = c->imp->stopping ? -ECANCELED : 0;
    if (!rc)
        restore(c);
out:
    free(images);
    return rc;
}

/* Takes the next round if something changed meanwhile; else ends the thread's work. */
static int again(struct check *c)
{
    int more;

    pthread_mutex_lock(&c->imp->lock);
    /* Only a snapshot still waiting for its files is checked again: a refused or restored
     * one starts over only on the next change (kick), never on one that came while it ran. */
    more = c->it->recheck && c->it->phase == IMP_WAITING && !c->imp->stopping &&
           c->it->writers == 0 && !c->it->forgotten;
    c->it->recheck = 0;
    if (!more)
        c->it->running = 0;
    if (!more && c->it->forgotten)
        free(c->it);
    pthread_mutex_unlock(&c->imp->lock);
    return more;
}

static void *check_thread(void *arg)
{
    struct check *c = arg;
    struct import *imp = c->imp;
    struct runner *r = c->runner;

    do
        check_once(c);
    while (again(c));
    manifest_free(&c->m);
    free(c);
    pthread_mutex_lock(&imp->lock);
    r->ended = 1;
    pthread_cond_broadcast(&imp->changed);
    pthread_mutex_unlock(&imp->lock);
    return NULL;
}

/* 1 while a thread runs, or is being started: import_free waits for it. */
static int runners_busy_locked(const struct import *imp)
{
    for (const struct runner *r = imp->runners; r; r = r->next)
        if (!r->started || !r->ended)
            return 1;
    return 0;
}

/* Joins the threads that ended. Without the lock: a thread that ended has only to return. */
static void reap(struct import *imp)
{
    struct runner *done = NULL, **p, *r;

    pthread_mutex_lock(&imp->lock);
    for (p = &imp->runners; (r = *p);) {
        if (r->started && r->ended) {
            *p = r->next;
            r->next = done;
            done = r;
        } else {
            p = &r->next;
        }
    }
    pthread_mutex_unlock(&imp->lock);
    while ((r = done)) {
        done = r->next;
        pthread_join(r->thread, NULL);
        free(r);
    }
}

/* IT is to be checked: a check that start() hands to a thread of its own once the lock is
 * released (IT stays while it runs); NULL if IT needs none now or memory is short. */
static struct check *kick_locked(struct import *imp, struct item *it)
{
    struct check *c;

    if (!it || !it->in_restore || it->foreign || it->writers > 0 || imp->stopping ||
        it->phase == IMP_RESTORED)
        return NULL;
    if (it->running) {
        it->recheck = 1;
        return NULL;
    }
    if (!(c = calloc(1, sizeof(*c))) || !(c->runner = calloc(1, sizeof(*c->runner))) ||
        store_snapshot_path(c->dir, job_store(imp->ctx), it->vm, it->snap, NULL)) {
        snprintf(it->reason, sizeof(it->reason), "cannot start a thread to check the import");
        free(c ? c->runner : NULL);
        free(c);
        return NULL;
    }
    c->imp = imp;
    c->it = it;
    it->running = 1;
    c->runner->next = imp->runners;
    imp->runners = c->runner;
    return c;
}

/* Starts C's thread (signals blocked: they belong to the main thread), outside the lock. */
static void start(struct import *imp, struct check *c)
{
    struct runner *r = c ? c->runner : NULL;
    struct item *it = c ? c->it : NULL;
    struct runner **p;
    pthread_t thread;
    int rc;

    if (!c)
        return;
    rc = cp_thread_start(&thread, check_thread, c);
    pthread_mutex_lock(&imp->lock);
    if (!rc) {
        r->thread = thread;
        r->started = 1;
    } else {
        for (p = &imp->runners; *p != r;)
            p = &(*p)->next;
        *p = r->next;
        it->running = 0;
        snprintf(it->reason, sizeof(it->reason), "cannot start a thread to check the import");
        if (it->forgotten)
            free(it);
    }
    pthread_cond_broadcast(&imp->changed);
    pthread_mutex_unlock(&imp->lock);
    if (rc) {
        free(r);
        free(c);
    }
}

/* Counts a writer of SNAP more (DELTA 1) or less (-1); the count of none is dropped. */
static void count_writer_locked(struct import *imp, const char *vm, const char *snap, int delta)
{
    struct writing **p = &imp->writing, *w;

    while (*p && (strcmp((*p)->vm, vm) != 0 || strcmp((*p)->snap, snap) != 0))
        p = &(*p)->next;
    if (!*p && delta > 0 && (*p = calloc(1, sizeof(**p)))) {
        snprintf((*p)->vm, sizeof((*p)->vm), "%s", vm);
        snprintf((*p)->snap, sizeof((*p)->snap), "%s", snap);
    }
    if (!(w = *p))
        return;
    w->n += delta;
    if (w->n <= 0) {
        *p = w->next;
        free(w);
    }
}

void import_writer_open(struct import *imp, const char *vm, const char *snap)
{
    struct item *it;

    pthread_mutex_lock(&imp->lock);
    count_writer_locked(imp, vm, snap, 1);
    if ((it = find_locked(imp, vm, snap)))
        it->writers++;
    pthread_mutex_unlock(&imp->lock);
}

void import_writer_close(struct import *imp, const char *vm, const char *snap)
{
    struct check *c = NULL;
    struct item *it;

    reap(imp);
    pthread_mutex_lock(&imp->lock);
    count_writer_locked(imp, vm, snap, -1);
    if ((it = find_locked(imp, vm, snap))) {
        if (it->writers > 0)
            it->writers--;
        c = kick_locked(imp, it);
    }
    pthread_mutex_unlock(&imp->lock);
    start(imp, c);
}

int import_copying(struct import *imp, const char *vm, char *snap, size_t len)
{
    int found = 0;

    pthread_mutex_lock(&imp->lock);
    for (struct writing *w = imp->writing; w && !found; w = w->next)
        if ((found = strcmp(w->vm, vm) == 0))
            snprintf(snap, len, "%s", w->snap);
    pthread_mutex_unlock(&imp->lock);
    return found;
}

void import_changed(struct import *imp, const char *vm, const char *snap)
{
    struct check *c;

    reap(imp);
    pthread_mutex_lock(&imp->lock);
    c = kick_locked(imp, find_locked(imp, vm, snap));
    pthread_mutex_unlock(&imp->lock);
    start(imp, c);
}

/* ---- status ---- */

static void item_status_locked(const struct item *it, struct status_import *im)
{
    snprintf(im->snapshot, sizeof(im->snapshot), "%s", it->snap);
    im->phase = phase_names[it->phase];
    im->has_reason = it->phase != IMP_RESTORED;
    snprintf(im->reason, sizeof(im->reason), "%s", it->reason);
    im->files_open = it->writers;
}

/* Adds the VM's imports to ST; an import in progress names the state when no job runs. */
static int add_imports_locked(struct import *imp, struct job_status *st)
{
    struct status_import *list;
    int n = 0;

    for (size_t b = 0; b < imp->nbuckets; b++)
        for (struct item *it = imp->buckets[b]; it; it = it->next)
            n += strcmp(it->vm, st->vm) == 0;
    if (!n)
        return 0;
    if (!(list = calloc((size_t)n, sizeof(*list))))
        return -ENOMEM;
    free(st->imports);
    st->imports = list;
    st->nimports = 0;
    for (size_t b = 0; b < imp->nbuckets; b++)
        for (struct item *it = imp->buckets[b]; it; it = it->next) {
            if (strcmp(it->vm, st->vm) != 0)
                continue;
            item_status_locked(it, &list[st->nimports++]);
            if (!st->has_job && it->phase <= IMP_VERIFYING && strcmp(st->state, "stopped") == 0)
                st->state = phase_names[it->phase];
        }
    return 0;
}

int import_status_add(struct import *imp, struct job_status *st)
{
    int rc;

    pthread_mutex_lock(&imp->lock);
    rc = add_imports_locked(imp, st);
    pthread_mutex_unlock(&imp->lock);
    return rc;
}

/* ---- facts: the manifest's (facts.h), and what the import saw ---- */

/* "verified": yes if the last verification saw exactly the files that are there now. */
static int verified_value(struct import *imp, const char *vm, const char *snap,
                          const struct facts *f, char **value)
{
    struct seen now[MANIFEST_MAX_FILES];
    char dir[PATH_MAX], why[256], at[32] = "";
    struct item *it;
    int n;

    if (f->unreadable[0])
        return asprintf(value, "no: %s", f->unreadable) < 0 ? -ENOMEM : 0;
    if (store_snapshot_path(dir, job_store(imp->ctx), vm, snap, NULL))
        return -ENAMETOOLONG;
    if (check_sizes(dir, f->files, f->nfiles, now, why, sizeof(why)))
        return asprintf(value, "no: incomplete: %s", why) < 0 ? -ENOMEM : 0;
    pthread_mutex_lock(&imp->lock);
    it = find_locked(imp, vm, snap);
    if (it && it->nseen == f->nfiles && it->verified_at[0] &&
        memcmp(it->seen, now, sizeof(*now) * (size_t)f->nfiles) == 0)
        snprintf(at, sizeof(at), "%s", it->verified_at);
    pthread_mutex_unlock(&imp->lock);
    if (at[0])
        n = asprintf(value, "yes: every file's size and xxh3 matched at %s", at);
    else
        n = asprintf(value, "sizes: every file has its size; checksums are verified as a restore "
                            "reads them");
    return n < 0 ? -ENOMEM : 0;
}

/* "disks": whether the disks the manifest recorded are still as saved, looked at now. */
static int disks_value(const struct facts *f, char **value)
{
    char fact[JOB_ERR_MAX];

    if (f->unreadable[0])
        return -ENODATA;
    disks_fact(f->disks, f->ndisks, f->disks_recorded, fact, sizeof(fact));
    return (*value = strdup(fact)) ? 0 : -ENOMEM;
}

/* "import": the phase and reason of SNAP's import; -ENODATA if there is none. */
static int import_value(struct import *imp, const char *vm, const char *snap, char **value)
{
    struct item *it;
    int rc = -ENODATA;

    pthread_mutex_lock(&imp->lock);
    if ((it = find_locked(imp, vm, snap)))
        rc = asprintf(value, "%s: %s", phase_names[it->phase], it->reason) < 0 ? -ENOMEM : 0;
    pthread_mutex_unlock(&imp->lock);
    return rc;
}

/* "verified" or "disks": what the manifest's files and disks are now. */
static int files_value(struct import *imp, const char *vm, const char *snap, const char *name,
                       char **value)
{
    struct facts *f = malloc(sizeof(*f));
    int rc = f ? facts_get(imp->facts, job_store(imp->ctx), vm, snap, f) : -ENOMEM;

    if (!rc && strcmp(name, IMPORT_XATTR_PREFIX "verified") == 0)
        rc = verified_value(imp, vm, snap, f, value);
    else if (!rc)
        rc = disks_value(f, value);
    if (f)
        facts_free(f);
    free(f);
    return rc;
}

int import_fact(struct import *imp, const char *vm, const char *snap, const char *name,
                char **value)
{
    *value = NULL;
    if (strcmp(name, IMPORT_XATTR_PREFIX "import") == 0)
        return import_value(imp, vm, snap, value);
    if (strcmp(name, IMPORT_XATTR_PREFIX "verified") == 0 ||
        strcmp(name, IMPORT_XATTR_PREFIX "disks") == 0)
        return files_value(imp, vm, snap, name, value);
    /* The manifest's own: computed on the first ask (facts.h). */
    return facts_value(imp->facts, job_store(imp->ctx), vm, snap, name, value);
}

int import_fact_names(struct import *imp, const char *vm, const char *snap, char **names,
                      size_t *len)
{
    /* "verified" and "disks", side by side: computed at each read, not kept. */
    static const char verified[] = IMPORT_XATTR_PREFIX "verified\0" IMPORT_XATTR_PREFIX "disks";
    static const char import[] = IMPORT_XATTR_PREFIX "import";
    char *facts, *p = NULL;
    size_t n = 0, nfacts;
    int rc = facts_names(imp->facts, job_store(imp->ctx), vm, snap, &facts, &nfacts);
    int has;

    if (!rc) {
        pthread_mutex_lock(&imp->lock);
        has = find_locked(imp, vm, snap) != NULL;
        pthread_mutex_unlock(&imp->lock);
        n = nfacts + sizeof(verified) + (has ? sizeof(import) : 0);
        if ((p = malloc(n))) {
            if (nfacts)
                memcpy(p, facts, nfacts);
            memcpy(p + nfacts, verified, sizeof(verified));
            if (has)
                memcpy(p + nfacts + sizeof(verified), import, sizeof(import));
        }
        rc = p ? 0 : -ENOMEM;
        free(facts);
    }
    *names = p;
    *len = p ? n : 0;
    return rc;
}
