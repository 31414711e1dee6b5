/* facts: a snapshot's user.savefs.* facts, kept in a few slots keyed by the manifest's and
 * local.json's inode, size and times, so that a changed file is read again. A slot keeps the
 * manifest as read and each fact's value once it was asked for. Reading and computing are done
 * without the lock, on an entry that a reference keeps alive (two threads may compute the same
 * value; one is kept); values are copied out under it. */
#include "facts.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "localdef.h"
#include "store.h"
#include "trust.h"

#define SLOTS        8
#define BIG_MANIFEST (1 << 20) /* after parsing one, give the heap back to the system */

/* The facts, in the order listxattr names them. */
enum fact {
    F_VM,
    F_SNAPSHOT,
    F_CREATED,
    F_QEMU_VERSION,
    F_MACHINE,
    F_RAM_SIZE,
    F_CHANNELS,
    F_COMPRESSION,
    F_WAS_RUNNING,
    F_DIGEST,
    F_KEEP_RUNNING, /* only where the disks were recorded */
    F_TRUST,
    F_COUNT
};

static const char *const fact_names[F_COUNT] = {
    FACTS_XATTR_PREFIX "vm",           FACTS_XATTR_PREFIX "snapshot",
    FACTS_XATTR_PREFIX "created",      FACTS_XATTR_PREFIX "qemu_version",
    FACTS_XATTR_PREFIX "machine",      FACTS_XATTR_PREFIX "ram_size",
    FACTS_XATTR_PREFIX "channels",     FACTS_XATTR_PREFIX "compression",
    FACTS_XATTR_PREFIX "was_running",  FACTS_XATTR_PREFIX "digest",
    FACTS_XATTR_PREFIX "keep_running", FACTS_XATTR_PREFIX "trust",
};

/* What a file was when its facts were computed: they hold while none of these changed. */
struct file_key {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct entry {
    /* set before the entry is shared, then read-only */
    char vm[SNAPSHOT_NAME_MAX + 1], snap[SNAPSHOT_NAME_MAX + 1];
    struct file_key manifest, local, shared;
    char unreadable[FACTS_ERR_MAX]; /* why the manifest could not be read; "" if it could */
    struct manifest m;              /* as read (its command line may be MiBs) */
    /* guarded by the cache's lock */
    int refs;              /* its slot's, and each thread's that uses it */
    char *values[F_COUNT]; /* NULL until asked for */
};

struct facts_cache {
    const struct trust *trust; /* set at creation */
    pthread_mutex_t lock;      /* guards the slots, the entries' refs and values, the counts */
    struct entry *slot[SLOTS];
    int next; /* the slot replaced next */
    struct facts_counts counts;
};

int facts_cache_new(struct facts_cache **out, const struct trust *trust)
{
    struct facts_cache *fc = calloc(1, sizeof(*fc));

    if (!fc)
        return -ENOMEM;
    fc->trust = trust;
    pthread_mutex_init(&fc->lock, NULL);
    *out = fc;
    return 0;
}

static void entry_free(struct entry *e)
{
    if (!e)
        return;
    manifest_free(&e->m);
    for (int i = 0; i < F_COUNT; i++)
        free(e->values[i]);
    free(e);
}

/* Drops a reference to E; the last one frees it. Caller holds the lock. */
static void entry_put_locked(struct entry *e)
{
    if (e && --e->refs == 0)
        entry_free(e);
}

static void entry_put(struct facts_cache *fc, struct entry *e)
{
    pthread_mutex_lock(&fc->lock);
    entry_put_locked(e);
    pthread_mutex_unlock(&fc->lock);
}

void facts_cache_free(struct facts_cache *fc)
{
    if (!fc)
        return;
    for (int i = 0; i < SLOTS; i++)
        entry_put_locked(fc->slot[i]);
    pthread_mutex_destroy(&fc->lock);
    free(fc);
}

void facts_cache_counts(struct facts_cache *fc, struct facts_counts *out)
{
    pthread_mutex_lock(&fc->lock);
    *out = fc->counts;
    pthread_mutex_unlock(&fc->lock);
}

void facts_free(struct facts *f)
{
    for (int i = 0; i < f->ndisks; i++)
        free(f->disks[i].path);
    f->ndisks = 0;
}

/* ---- where facts come from ---- */

static void file_key(const char *path, struct file_key *k)
{
    struct stat st;

    memset(k, 0, sizeof(*k));
    if (stat(path, &st) == 0)
        *k = (struct file_key){st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
}

static int same_key(const struct file_key *a, const struct file_key *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* The snapshot, its manifest and the VM's local definitions (this host's and the shared one,
 * which it reads where it has none: localdef.h), and their keys now. */
struct source {
    struct trust_subject s;
    char manifest[PATH_MAX], local[PATH_MAX], shared[PATH_MAX];
    struct file_key manifest_key, local_key, shared_key;
};

static int source(const char *store, const char *vm, const char *snap, struct source *src)
{
    src->s = (struct trust_subject){store, vm, snap};
    if (store_snapshot_path(src->manifest, store, vm, snap, MANIFEST_NAME) ||
        store_vm_host_path(src->local, store, vm, LOCALDEF_NAME) ||
        store_vm_path(src->shared, store, vm, LOCALDEF_NAME))
        return -ENAMETOOLONG;
    file_key(src->manifest, &src->manifest_key);
    file_key(src->local, &src->local_key);
    file_key(src->shared, &src->shared_key);
    return 0;
}

/* Reads the manifest into a new entry (unreadable: the entry says why); NULL without memory. */
static struct entry *entry_read(struct facts_cache *fc, const struct source *src)
{
    struct entry *e = calloc(1, sizeof(*e));
    int rc;

    if (!e)
        return NULL;
    snprintf(e->vm, sizeof(e->vm), "%s", src->s.vm);
    snprintf(e->snap, sizeof(e->snap), "%s", src->s.snap);
    e->manifest = src->manifest_key;
    e->local = src->local_key;
    e->shared = src->shared_key;
    rc = manifest_read(src->manifest, &e->m, e->unreadable, sizeof(e->unreadable));
    if (rc && !e->unreadable[0])
        snprintf(e->unreadable, sizeof(e->unreadable), "%s: %s", MANIFEST_NAME, strerror(-rc));
    if (rc) { /* nothing of a manifest read in part is kept */
        manifest_free(&e->m);
        memset(&e->m, 0, sizeof(e->m));
    } else {
        e->unreadable[0] = '\0';
    }
    if (src->manifest_key.size > BIG_MANIFEST)
        malloc_trim(0);
    pthread_mutex_lock(&fc->lock);
    fc->counts.manifests_read++;
    pthread_mutex_unlock(&fc->lock);
    if (rc == -ENOMEM) {
        entry_free(e);
        return NULL;
    }
    return e;
}

/* ---- keeping ---- */

static struct entry *find_locked(struct facts_cache *fc, const struct source *src)
{
    for (int i = 0; i < SLOTS; i++) {
        struct entry *e = fc->slot[i];

        if (e && strcmp(e->vm, src->s.vm) == 0 && strcmp(e->snap, src->s.snap) == 0 &&
            same_key(&e->manifest, &src->manifest_key) && same_key(&e->local, &src->local_key) &&
            same_key(&e->shared, &src->shared_key))
            return e;
    }
    return NULL;
}

/* E takes the slot of an older version of its snapshot, whose manifest may be MiBs and is read
 * no more, or else the next slot; the slot holds a reference of its own, and a thread still
 * using the entry it replaces frees that one when it is done. */
static void keep_locked(struct facts_cache *fc, struct entry *e)
{
    int i = 0;

    while (i < SLOTS && !(fc->slot[i] && strcmp(fc->slot[i]->vm, e->vm) == 0 &&
                          strcmp(fc->slot[i]->snap, e->snap) == 0))
        i++;
    if (i == SLOTS) {
        i = fc->next;
        fc->next = (fc->next + 1) % SLOTS;
    }
    entry_put_locked(fc->slot[i]);
    fc->slot[i] = e;
    e->refs++;
}

/* The entry of SNAP as its files are now, read if no slot has it, with a reference taken
 * (entry_put). */
static int entry_get(struct facts_cache *fc, const char *store, const char *vm, const char *snap,
                     struct source *src, struct entry **out)
{
    struct entry *e, *fresh = NULL;
    int rc;

    if ((rc = source(store, vm, snap, src)))
        return rc;
    pthread_mutex_lock(&fc->lock);
    if ((e = find_locked(fc, src)))
        e->refs++;
    pthread_mutex_unlock(&fc->lock);
    if (!e && !(fresh = entry_read(fc, src)))
        return -ENOMEM;
    if (fresh) {
        pthread_mutex_lock(&fc->lock);
        if (!(e = find_locked(fc, src))) /* else another thread kept the same meanwhile */
            keep_locked(fc, e = fresh);
        e->refs++;
        pthread_mutex_unlock(&fc->lock);
        if (e != fresh)
            entry_free(fresh);
    }
    *out = e;
    return 0;
}

/* ---- computing one fact ---- */

static int print(char **value, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int print(char **value, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vasprintf(value, fmt, ap);
    va_end(ap);
    return n < 0 ? -ENOMEM : 0;
}

static int trust_value(struct facts_cache *fc, const struct trust_subject *s,
                       const struct manifest *m, char **value)
{
    char how[256], why[FACTS_ERR_MAX];
    int rc = trust_resolve(fc->trust, s, m, NULL, how, sizeof(how), why, sizeof(why));

    pthread_mutex_lock(&fc->lock);
    fc->counts.trust_decided++;
    pthread_mutex_unlock(&fc->lock);
    return rc ? print(value, "refused: %s", why) : print(value, "ok: %s", how);
}

static int compute(struct facts_cache *fc, const struct trust_subject *s, const struct manifest *m,
                   enum fact id, char **value)
{
    char digest[TRUST_DIGEST_MAX] = "";

    switch (id) {
    case F_VM:
        return print(value, "%s", m->vm);
    case F_SNAPSHOT:
        return print(value, "%s", m->snapshot);
    case F_CREATED:
        return print(value, "%s", m->created);
    case F_QEMU_VERSION:
        return print(value, "%s", m->qemu_version);
    case F_MACHINE:
        return print(value, "%s", m->machine);
    case F_RAM_SIZE:
        return print(value, "%llu", (unsigned long long)m->ram_size);
    case F_CHANNELS:
        return print(value, "%d", m->channels);
    case F_COMPRESSION:
        return print(value, "%s", m->compression);
    case F_WAS_RUNNING:
        return print(value, "%s", m->was_running ? "yes" : "no");
    case F_DIGEST:
        trust_digest(m, digest, sizeof(digest));
        return print(value, "%s", digest);
    case F_KEEP_RUNNING:
        return print(value, "%s", m->keep_running ? "yes" : "no");
    case F_TRUST:
        return trust_value(fc, s, m, value);
    default:
        return -ENODATA;
    }
}

/* 1 if E's snapshot has fact ID. */
static int has_fact(const struct entry *e, int id)
{
    return !e->unreadable[0] && (id != F_KEEP_RUNNING || e->m.disks_recorded);
}

int facts_value(struct facts_cache *fc, const char *store, const char *vm, const char *snap,
                const char *name, char **value)
{
    struct source src;
    struct entry *e;
    char *fresh = NULL;
    int id = 0, known = 0, rc;

    *value = NULL;
    while (id < F_COUNT && strcmp(fact_names[id], name) != 0)
        id++;
    if (id == F_COUNT)
        return -ENODATA;
    if ((rc = entry_get(fc, store, vm, snap, &src, &e)))
        return rc;
    if (!has_fact(e, id)) {
        rc = -ENODATA;
        goto out;
    }
    pthread_mutex_lock(&fc->lock);
    known = e->values[id] != NULL;
    pthread_mutex_unlock(&fc->lock);
    /* The entry's manifest does not change: computed without the lock. */
    if (!known && (rc = compute(fc, &src.s, &e->m, id, &fresh)))
        goto out;
    pthread_mutex_lock(&fc->lock);
    if (!e->values[id]) { /* else another thread computed it meanwhile */
        e->values[id] = fresh;
        fresh = NULL;
    }
    rc = (*value = strdup(e->values[id])) ? 0 : -ENOMEM;
    pthread_mutex_unlock(&fc->lock);
out:
    free(fresh);
    entry_put(fc, e);
    return rc;
}

int facts_names(struct facts_cache *fc, const char *store, const char *vm, const char *snap,
                char **names, size_t *len)
{
    struct source src;
    struct entry *e;
    size_t n = 0;
    char *p;
    int rc;

    *names = NULL;
    *len = 0;
    if ((rc = entry_get(fc, store, vm, snap, &src, &e)))
        return rc;
    for (int id = 0; id < F_COUNT; id++)
        n += has_fact(e, id) ? strlen(fact_names[id]) + 1 : 0;
    if (n && (p = malloc(n))) {
        *names = p;
        *len = n;
        for (int id = 0; id < F_COUNT; id++)
            if (has_fact(e, id))
                p = stpcpy(p, fact_names[id]) + 1;
    } else if (n) {
        rc = -ENOMEM;
    }
    entry_put(fc, e);
    return rc;
}

int facts_get(struct facts_cache *fc, const char *store, const char *vm, const char *snap,
              struct facts *f)
{
    struct source src;
    struct entry *e;
    int rc;

    memset(f, 0, sizeof(*f));
    if ((rc = entry_get(fc, store, vm, snap, &src, &e)))
        return rc;
    snprintf(f->unreadable, sizeof(f->unreadable), "%s", e->unreadable);
    memcpy(f->files, e->m.files, sizeof(f->files));
    f->nfiles = e->m.nfiles;
    f->disks_recorded = e->m.disks_recorded;
    for (; f->ndisks < e->m.ndisks; f->ndisks++) {
        f->disks[f->ndisks] = e->m.disks[f->ndisks];
        /* The entry owns its captured images' names: facts keep only their count. */
        for (int l = 0; l < f->disks[f->ndisks].nlayers; l++)
            f->disks[f->ndisks].layers[l].file = NULL;
        if (!(f->disks[f->ndisks].path = strdup(e->m.disks[f->ndisks].path))) {
            rc = -ENOMEM;
            break;
        }
    }
    entry_put(fc, e);
    if (rc)
        facts_free(f);
    return rc;
}
