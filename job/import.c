/* import: the registry of imports and their threads. An import is checked only when nothing
 * writes into it (the last writer's close, a rename): a file that merely appeared starts
 * nothing, and a restore starts only after every checksum matched. Items are never freed before
 * import_free, so a thread may hold one without a reference count. Never holds the lock across
 * I/O or a job. */
#include "import.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "copier.h"
#include "disks.h"
#include "job.h"
#include "manifest.h"
#include "store.h"
#include "trust.h"
#include "words.h"

#define STOP_TICK_MS 100

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
    struct item *next;
    char vm[SNAPSHOT_NAME_MAX + 1], snap[SNAPSHOT_NAME_MAX + 1];
    /* guarded by imp->lock */
    int forgotten;
    enum import_phase phase;
    int writers; /* files open for writing through the mount */
    int running; /* a thread works on it */
    int recheck; /* something changed while the thread ran */
    char reason[JOB_ERR_MAX];
    char verified_at[32]; /* RFC 3339; empty if never verified */
    struct seen seen[MANIFEST_MAX_FILES];
    int nseen;
};

struct import {
    /* set before threads start */
    struct job_ctx *ctx;
    const struct trust *trust;
    /* guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a thread ended */
    struct item *items;
    int threads;
    int stopping;
};

int import_new(struct import **out, struct job_ctx *ctx, const struct trust *trust)
{
    struct import *imp = calloc(1, sizeof(*imp));

    if (!imp)
        return -ENOMEM;
    imp->ctx = ctx;
    imp->trust = trust;
    pthread_mutex_init(&imp->lock, NULL);
    pthread_cond_init(&imp->changed, NULL);
    *out = imp;
    return 0;
}

void import_free(struct import *imp)
{
    struct item *it, *next;
    struct timespec ts;

    if (!imp)
        return;
    pthread_mutex_lock(&imp->lock);
    imp->stopping = 1;
    while (imp->threads > 0) {
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
    for (it = imp->items; it; it = next) {
        next = it->next;
        free(it);
    }
    pthread_mutex_destroy(&imp->lock);
    pthread_cond_destroy(&imp->changed);
    free(imp);
}

static struct item *find_locked(struct import *imp, const char *vm, const char *snap)
{
    for (struct item *it = imp->items; it; it = it->next)
        if (!it->forgotten && strcmp(it->vm, vm) == 0 && strcmp(it->snap, snap) == 0)
            return it;
    return NULL;
}

int import_begin(struct import *imp, const char *vm, const char *snap)
{
    struct item *it = calloc(1, sizeof(*it));

    if (!it)
        return -ENOMEM;
    snprintf(it->vm, sizeof(it->vm), "%s", vm);
    snprintf(it->snap, sizeof(it->snap), "%s", snap);
    snprintf(it->reason, sizeof(it->reason), "waiting: %s is missing", MANIFEST_NAME);
    pthread_mutex_lock(&imp->lock);
    for (struct item *old = find_locked(imp, vm, snap); old; old = find_locked(imp, vm, snap))
        old->forgotten = 1;
    it->next = imp->items;
    imp->items = it;
    pthread_mutex_unlock(&imp->lock);
    return 0;
}

int import_known(struct import *imp, const char *vm, const char *snap)
{
    int known;

    pthread_mutex_lock(&imp->lock);
    known = find_locked(imp, vm, snap) != NULL;
    pthread_mutex_unlock(&imp->lock);
    return known;
}

char **import_names(struct import *imp, const char *vm)
{
    char **names;
    int n = 0;

    pthread_mutex_lock(&imp->lock);
    for (struct item *it = imp->items; it; it = it->next)
        n++;
    names = calloc((size_t)n + 1, sizeof(char *));
    n = 0;
    for (struct item *it = imp->items; names && it; it = it->next) {
        if (it->forgotten || strcmp(it->vm, vm) != 0 || it->phase >= IMP_RESTORED)
            continue;
        if (!(names[n] = strdup(it->snap)))
            break;
        n++;
    }
    pthread_mutex_unlock(&imp->lock);
    return names;
}

void import_names_free(char **names)
{
    for (char **p = names; p && *p; p++)
        free(*p);
    free(names);
}

void import_forget(struct import *imp, const char *vm, const char *snap)
{
    pthread_mutex_lock(&imp->lock);
    for (struct item *it = find_locked(imp, vm, snap); it; it = find_locked(imp, vm, snap))
        it->forgotten = 1;
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

/* ---- the check, in the import's thread ---- */

static void rfc3339_now(char *buf, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;

    gmtime_r(&now, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

struct check {
    struct import *imp;
    struct item *it;
    char dir[PATH_MAX];
    struct manifest m;
};

static void set_phase(struct check *c, enum import_phase phase, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_phase(struct check *c, enum import_phase phase, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&c->imp->lock);
    c->it->phase = phase;
    va_start(ap, fmt);
    vsnprintf(c->it->reason, sizeof(c->it->reason), fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&c->imp->lock);
}

/* Every file the manifest names is there with its size; what was seen goes to SEEN. */
static int check_sizes(const char *dir, const struct manifest *m, struct seen *seen, char *why,
                       size_t len)
{
    char path[PATH_MAX];
    struct stat st;

    for (int i = 0; i < m->nfiles; i++) {
        const struct cp_file *f = &m->files[i];

        if (store_path(path, "%s/%s", dir, f->name))
            return -ENAMETOOLONG;
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
            snprintf(why, len, "%s is missing", f->name);
            return -ENOENT;
        }
        if ((uint64_t)st.st_size != f->size) {
            snprintf(why, len, "%s has %lld of %llu bytes", f->name, (long long)st.st_size,
                     (unsigned long long)f->size);
            return -EAGAIN;
        }
        seen[i] = (struct seen){st.st_ino, st.st_size, st.st_mtim};
    }
    return 0;
}

/* Reads the manifest and checks sizes; the reason for waiting goes to the item. */
static int check_complete(struct check *c, struct seen *seen)
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
        rc = check_sizes(c->dir, &c->m, seen, why, sizeof(why));
    if (rc)
        set_phase(c, IMP_WAITING, "waiting: %s", why);
    return rc;
}

static int check_trust(struct check *c)
{
    struct trust_subject s = {job_store(c->imp->ctx), c->it->vm, c->it->snap};
    char how[256], why[JOB_ERR_MAX - 64];
    struct manifest copy;
    char path[PATH_MAX];
    int rc;

    /* trust_resolve rewrites the command line: decide on a fresh copy. */
    if (store_path(path, "%s/%s", c->dir, MANIFEST_NAME) ||
        manifest_read(path, &copy, why, sizeof(why)))
        return -EAGAIN;
    rc = trust_resolve(c->imp->trust, &s, &copy, how, sizeof(how), why, sizeof(why));
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
    if (rc)
        set_phase(c, IMP_WAITING, "verifying failed: %s", why);
    return rc;
}

static int keep_verified(struct check *c, const struct seen *seen)
{
    struct seen now[MANIFEST_MAX_FILES];
    char why[256];
    int rc = check_sizes(c->dir, &c->m, now, why, sizeof(why));

    /* A file that changed while it was read is not verified. */
    if (!rc && memcmp(now, seen, sizeof(*now) * (size_t)c->m.nfiles) != 0)
        rc = -EAGAIN;
    pthread_mutex_lock(&c->imp->lock);
    if (!rc) {
        memcpy(c->it->seen, seen, sizeof(*seen) * (size_t)c->m.nfiles);
        c->it->nseen = c->m.nfiles;
        rfc3339_now(c->it->verified_at, sizeof(c->it->verified_at));
    }
    pthread_mutex_unlock(&c->imp->lock);
    return rc;
}

/* The job's own words for a failed restore, from its status. */
static void restore_reason(struct check *c, int rc, char *why, size_t len)
{
    char *text = job_status_json(c->imp->ctx, c->it->vm);
    json_t *root = text ? json_loads(text, 0, NULL) : NULL;
    const char *e = json_string_value(json_object_get(json_object_get(root, "last"), "error"));

    snprintf(why, len, "%s", e ? e : strerror(-rc));
    json_decref(root);
    free(text);
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
    struct seen seen[MANIFEST_MAX_FILES];
    int rc;

    if ((rc = check_complete(c, seen)) || (rc = check_trust(c)))
        return rc;
    set_phase(c, IMP_VERIFYING, "verifying checksums");
    if ((rc = check_sums(c)) || (rc = keep_verified(c, seen)))
        return rc;
    if (c->imp->stopping)
        return -ECANCELED;
    restore(c);
    return 0;
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
    pthread_mutex_unlock(&c->imp->lock);
    return more;
}

static void *check_thread(void *arg)
{
    struct check *c = arg;
    struct import *imp = c->imp;

    do
        check_once(c);
    while (again(c));
    manifest_free(&c->m);
    free(c);
    pthread_mutex_lock(&imp->lock);
    imp->threads--;
    pthread_cond_broadcast(&imp->changed);
    pthread_mutex_unlock(&imp->lock);
    return NULL;
}

/* Starts IT's check thread (signals blocked: they belong to the main thread). */
static int start_check_locked(struct import *imp, struct item *it)
{
    struct check *c = calloc(1, sizeof(*c));
    sigset_t all, old;
    pthread_attr_t attr;
    pthread_t thread;
    int rc;

    if (!c)
        return -ENOMEM;
    c->imp = imp;
    c->it = it;
    rc = store_path(c->dir, "%s/%s/snapshots/%s", job_store(imp->ctx), it->vm, it->snap);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (!rc)
        rc = -pthread_create(&thread, &attr, check_thread, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc) {
        free(c);
        return rc;
    }
    it->running = 1;
    imp->threads++;
    return 0;
}

static void kick_locked(struct import *imp, struct item *it)
{
    if (!it || it->writers > 0 || imp->stopping || it->phase == IMP_RESTORED)
        return;
    if (it->running)
        it->recheck = 1;
    else if (start_check_locked(imp, it))
        snprintf(it->reason, sizeof(it->reason), "cannot start a thread to check the import");
}

void import_writer_open(struct import *imp, const char *vm, const char *snap)
{
    struct item *it;

    pthread_mutex_lock(&imp->lock);
    if ((it = find_locked(imp, vm, snap)))
        it->writers++;
    pthread_mutex_unlock(&imp->lock);
}

void import_writer_close(struct import *imp, const char *vm, const char *snap)
{
    struct item *it;

    pthread_mutex_lock(&imp->lock);
    if ((it = find_locked(imp, vm, snap))) {
        if (it->writers > 0)
            it->writers--;
        kick_locked(imp, it);
    }
    pthread_mutex_unlock(&imp->lock);
}

void import_changed(struct import *imp, const char *vm, const char *snap)
{
    pthread_mutex_lock(&imp->lock);
    kick_locked(imp, find_locked(imp, vm, snap));
    pthread_mutex_unlock(&imp->lock);
}

/* ---- status ---- */

static json_t *item_json_locked(const struct item *it)
{
    json_t *j = json_pack("{s:s, s:s}", "snapshot", it->snap, "phase", phase_names[it->phase]);

    if (j && it->phase != IMP_RESTORED)
        json_object_set_new(j, "reason", json_string(it->reason));
    if (j && it->writers)
        json_object_set_new(j, "files_open", json_integer(it->writers));
    return j;
}

/* Adds VM's imports to ROOT; an import in progress names the state when no job runs. */
static void add_imports_locked(struct import *imp, const char *vm, json_t *root)
{
    json_t *list = json_array();
    const char *state = json_string_value(json_object_get(root, "state"));
    int idle = json_is_null(json_object_get(root, "job"));

    for (struct item *it = imp->items; list && it; it = it->next) {
        if (it->forgotten || strcmp(it->vm, vm) != 0)
            continue;
        json_array_append_new(list, item_json_locked(it));
        if (idle && state && it->phase <= IMP_VERIFYING && strcmp(state, "stopped") == 0) {
            json_object_set_new(root, "state", json_string(phase_names[it->phase]));
            state = json_string_value(json_object_get(root, "state"));
        }
    }
    if (list && json_array_size(list))
        json_object_set_new(root, "imports", list);
    else
        json_decref(list);
}

char *import_status(struct import *imp, const char *vm, char *status)
{
    json_t *root = status ? json_loads(status, 0, NULL) : NULL;
    char *dumped, *text;

    if (!root)
        return status;
    pthread_mutex_lock(&imp->lock);
    add_imports_locked(imp, vm, root);
    pthread_mutex_unlock(&imp->lock);
    dumped = json_dumps(root, JOB_STATUS_JSON_FLAGS);
    json_decref(root);
    if (!dumped || asprintf(&text, "%s\n", dumped) < 0) {
        free(dumped);
        return status;
    }
    free(dumped);
    free(status);
    return text;
}

/* ---- facts and acceptance ---- */

static int add_fact(struct import_facts *f, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int add_fact(struct import_facts *f, const char *name, const char *fmt, ...)
{
    size_t len = strlen(IMPORT_XATTR_PREFIX) + strlen(name) + 1;
    char *names = realloc(f->names, f->names_len + len);
    char **values = realloc(f->values, (size_t)(f->n + 1) * sizeof(char *));
    va_list ap;
    int rc;

    if (names)
        f->names = names;
    if (values)
        f->values = values;
    if (!names || !values)
        return -ENOMEM;
    va_start(ap, fmt);
    rc = vasprintf(&f->values[f->n], fmt, ap);
    va_end(ap);
    if (rc < 0)
        return -ENOMEM;
    snprintf(f->names + f->names_len, len, "%s%s", IMPORT_XATTR_PREFIX, name);
    f->names_len += len;
    f->n++;
    return 0;
}

void import_facts_free(struct import_facts *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->values[i]);
    free(f->values);
    free(f->names);
    memset(f, 0, sizeof(*f));
}

/* Whether the VM ran on after the save, and whether its disks are still as saved (disks.h). */
static int disks_facts(struct import_facts *f, const struct manifest *m)
{
    char disks[JOB_ERR_MAX];
    int rc;

    disks_fact(m, disks, sizeof(disks));
    if (m->disks_recorded &&
        (rc = add_fact(f, "keep_running", "%s", m->keep_running ? "yes" : "no")))
        return rc;
    return add_fact(f, "disks", "%s", disks);
}

static int manifest_facts(struct import_facts *f, const struct manifest *m)
{
    char digest[TRUST_DIGEST_MAX];
    int rc;

    trust_digest(m, digest, sizeof(digest));
    if ((rc = add_fact(f, "vm", "%s", m->vm)) ||
        (rc = add_fact(f, "snapshot", "%s", m->snapshot)) ||
        (rc = add_fact(f, "created", "%s", m->created)) ||
        (rc = add_fact(f, "qemu_version", "%s", m->qemu_version)) ||
        (rc = add_fact(f, "machine", "%s", m->machine)) ||
        (rc = add_fact(f, "ram_size", "%llu", (unsigned long long)m->ram_size)) ||
        (rc = add_fact(f, "channels", "%d", m->channels)) ||
        (rc = add_fact(f, "compression", "%s", m->compression)) ||
        (rc = add_fact(f, "was_running", "%s", m->was_running ? "yes" : "no")) ||
        (rc = add_fact(f, "digest", "%s", digest)))
        return rc;
    return disks_facts(f, m);
}

static int trust_fact(struct import *imp, const struct trust_subject *s, const char *path,
                      struct import_facts *f)
{
    char how[256], why[JOB_ERR_MAX];
    struct manifest m;
    int rc = manifest_read(path, &m, why, sizeof(why));

    if (!rc)
        rc = trust_resolve(imp->trust, s, &m, how, sizeof(how), why, sizeof(why));
    manifest_free(&m);
    return rc ? add_fact(f, "trust", "refused: %s", why) : add_fact(f, "trust", "ok: %s", how);
}

/* Verified if the last verification saw exactly the files that are there now. */
static int verified_fact(struct import *imp, const struct trust_subject *s, const char *dir,
                         const struct manifest *m, struct import_facts *f)
{
    struct seen now[MANIFEST_MAX_FILES];
    char why[256], at[32] = "";
    struct item *it;

    if (check_sizes(dir, m, now, why, sizeof(why)))
        return add_fact(f, "verified", "no: incomplete: %s", why);
    pthread_mutex_lock(&imp->lock);
    it = find_locked(imp, s->vm, s->snap);
    if (it && it->nseen == m->nfiles && it->verified_at[0] &&
        memcmp(it->seen, now, sizeof(*now) * (size_t)m->nfiles) == 0)
        snprintf(at, sizeof(at), "%s", it->verified_at);
    pthread_mutex_unlock(&imp->lock);
    if (at[0])
        return add_fact(f, "verified", "yes: every file's size and xxh3 matched at %s", at);
    return add_fact(f, "verified",
                    "sizes: every file has its size; checksums are verified as a restore reads "
                    "them");
}

static int import_fact(struct import *imp, const char *vm, const char *snap, struct import_facts *f)
{
    char phase[16], reason[JOB_ERR_MAX];
    struct item *it;

    pthread_mutex_lock(&imp->lock);
    it = find_locked(imp, vm, snap);
    if (it) {
        snprintf(phase, sizeof(phase), "%s", phase_names[it->phase]);
        snprintf(reason, sizeof(reason), "%s", it->reason);
    }
    pthread_mutex_unlock(&imp->lock);
    return it ? add_fact(f, "import", "%s: %s", phase, reason) : 0;
}

int import_facts(struct import *imp, const char *vm, const char *snap, struct import_facts *f)
{
    struct trust_subject s = {job_store(imp->ctx), vm, snap};
    char dir[PATH_MAX], path[PATH_MAX], why[JOB_ERR_MAX];
    struct manifest m;
    int rc;

    memset(f, 0, sizeof(*f));
    if (store_path(dir, "%s/%s/snapshots/%s", s.store, vm, snap) ||
        store_path(path, "%s/%s", dir, MANIFEST_NAME))
        return -ENAMETOOLONG;
    rc = manifest_read(path, &m, why, sizeof(why));
    if (rc)
        rc = add_fact(f, "verified", "no: %s", why);
    else if (!(rc = manifest_facts(f, &m)) && !(rc = trust_fact(imp, &s, path, f)))
        rc = verified_fact(imp, &s, dir, &m, f);
    if (!rc)
        rc = import_fact(imp, vm, snap, f);
    manifest_free(&m);
    if (rc)
        import_facts_free(f);
    return rc;
}
