/* facts: a snapshot's user.savefs.* facts, kept in a few slots keyed by the manifest's and
 * local.json's inode, size and times, so that a changed file is read again. Computed without the
 * lock (two threads may compute the same; one result is kept); copied out under it. */
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

/* What a file was when its facts were computed: they hold while none of these changed. */
struct file_key {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct entry {
    char vm[SNAPSHOT_NAME_MAX + 1], snap[SNAPSHOT_NAME_MAX + 1];
    struct file_key manifest, local;
    struct facts f;
};

struct facts_cache {
    const struct trust *trust; /* set at creation */
    pthread_mutex_t lock;      /* guards the slots */
    struct entry *slot[SLOTS];
    int next; /* the slot replaced next */
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
    if (e)
        facts_free(&e->f);
    free(e);
}

void facts_cache_free(struct facts_cache *fc)
{
    if (!fc)
        return;
    for (int i = 0; i < SLOTS; i++)
        entry_free(fc->slot[i]);
    pthread_mutex_destroy(&fc->lock);
    free(fc);
}

void facts_free(struct facts *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->values[i]);
    free(f->values);
    free(f->names);
    for (int i = 0; i < f->ndisks; i++)
        free(f->disks[i].path);
    f->names = NULL;
    f->values = NULL;
    f->names_len = 0;
    f->n = 0;
    f->ndisks = 0;
}

/* The disks of FROM into F, each path a copy of its own: 0 or -ENOMEM (F holds those copied). */
static int copy_disks(struct facts *f, const struct manifest_disk *from, int n)
{
    for (f->ndisks = 0; f->ndisks < n; f->ndisks++) {
        f->disks[f->ndisks] = from[f->ndisks];
        if (!(f->disks[f->ndisks].path = strdup(from[f->ndisks].path)))
            return -ENOMEM;
    }
    return 0;
}

const char *facts_value(const struct facts *f, const char *name)
{
    const char *n = f->names;

    for (int i = 0; i < f->n; n += strlen(n) + 1, i++)
        if (strcmp(n, name) == 0)
            return f->values[i];
    return NULL;
}

/* ---- computing ---- */

static int add_fact(struct facts *f, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int add_fact(struct facts *f, const char *name, const char *fmt, ...)
{
    size_t len = strlen(FACTS_XATTR_PREFIX) + strlen(name) + 1;
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
    snprintf(f->names + f->names_len, len, "%s%s", FACTS_XATTR_PREFIX, name);
    f->names_len += len;
    f->n++;
    return 0;
}

static int manifest_facts(struct facts *f, const struct manifest *m)
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
        (rc = add_fact(f, "digest", "%s", digest)) ||
        (m->disks_recorded &&
         (rc = add_fact(f, "keep_running", "%s", m->keep_running ? "yes" : "no"))))
        return rc;
    return 0;
}

static int trust_fact(const struct trust *t, const struct trust_subject *s,
                      const struct manifest *m, struct facts *f)
{
    char how[256], why[FACTS_ERR_MAX];
    int rc = trust_resolve(t, s, m, NULL, how, sizeof(how), why, sizeof(why));

    return rc ? add_fact(f, "trust", "refused: %s", why) : add_fact(f, "trust", "ok: %s", how);
}

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

/* Where facts come from: the snapshot, its manifest and local.json, and their keys now. */
struct source {
    struct trust_subject s;
    char manifest[PATH_MAX], local[PATH_MAX];
    struct file_key manifest_key, local_key;
};

static int source(const char *store, const char *vm, const char *snap, struct source *src)
{
    src->s = (struct trust_subject){store, vm, snap};
    if (store_snapshot_path(src->manifest, store, vm, snap, MANIFEST_NAME) ||
        store_vm_path(src->local, store, vm, LOCALDEF_NAME))
        return -ENAMETOOLONG;
    file_key(src->manifest, &src->manifest_key);
    file_key(src->local, &src->local_key);
    return 0;
}

/* Reads the manifest and decides trust: a new entry, or NULL without memory. */
static struct entry *entry_compute(const struct trust *t, const struct source *src)
{
    struct entry *e = calloc(1, sizeof(*e));
    struct facts *f = e ? &e->f : NULL;
    struct manifest m;
    int rc;

    if (!e)
        return NULL;
    snprintf(e->vm, sizeof(e->vm), "%s", src->s.vm);
    snprintf(e->snap, sizeof(e->snap), "%s", src->s.snap);
    e->manifest = src->manifest_key;
    e->local = src->local_key;
    rc = manifest_read(src->manifest, &m, f->unreadable, sizeof(f->unreadable));
    if (rc && !f->unreadable[0])
        snprintf(f->unreadable, sizeof(f->unreadable), "%s: %s", MANIFEST_NAME, strerror(-rc));
    if (!rc) {
        f->unreadable[0] = '\0';
        memcpy(f->files, m.files, sizeof(m.files));
        f->nfiles = m.nfiles;
        f->disks_recorded = m.disks_recorded;
        if ((rc = manifest_facts(f, &m)) || (rc = trust_fact(t, &src->s, &m, f)) ||
            (rc = copy_disks(f, m.disks, m.ndisks)))
            facts_free(f);
    }
    manifest_free(&m);
    if (src->manifest_key.size > BIG_MANIFEST)
        malloc_trim(0);
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
            same_key(&e->manifest, &src->manifest_key) && same_key(&e->local, &src->local_key))
            return e;
    }
    return NULL;
}

static void keep_locked(struct facts_cache *fc, struct entry *e)
{
    entry_free(fc->slot[fc->next]);
    fc->slot[fc->next] = e;
    fc->next = (fc->next + 1) % SLOTS;
}

static int copy_facts(const struct facts *from, struct facts *to)
{
    memcpy(to, from, sizeof(*to));
    to->names = malloc(from->names_len ? from->names_len : 1);
    to->values = calloc((size_t)from->n + 1, sizeof(char *));
    to->n = 0;
    if (copy_disks(to, from->disks, from->ndisks) || !to->names || !to->values)
        return -ENOMEM;
    if (from->names_len) /* an unreadable manifest's facts have no names (NULL) */
        memcpy(to->names, from->names, from->names_len);
    for (; to->n < from->n; to->n++)
        if (!(to->values[to->n] = strdup(from->values[to->n])))
            return -ENOMEM;
    return 0;
}

int facts_get(struct facts_cache *fc, const char *store, const char *vm, const char *snap,
              struct facts *f)
{
    struct entry *e, *fresh = NULL;
    struct source src;
    int rc;

    memset(f, 0, sizeof(*f));
    if ((rc = source(store, vm, snap, &src)))
        return rc;
    pthread_mutex_lock(&fc->lock);
    if ((e = find_locked(fc, &src)))
        rc = copy_facts(&e->f, f);
    pthread_mutex_unlock(&fc->lock);
    if (e)
        goto out;
    if (!(fresh = entry_compute(fc->trust, &src)))
        return -ENOMEM;
    pthread_mutex_lock(&fc->lock);
    if (!(e = find_locked(fc, &src))) { /* else another thread kept the same meanwhile */
        keep_locked(fc, fresh);
        e = fresh;
        fresh = NULL;
    }
    rc = copy_facts(&e->f, f);
    pthread_mutex_unlock(&fc->lock);
out:
    entry_free(fresh);
    if (rc)
        facts_free(f);
    return rc;
}
