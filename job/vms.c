/* vms: which VMs exist. A VM is a QEMU listening on QMPDIR/NAME.qmp, or a directory in the store;
 * both are read without talking to QEMU, so listing never disturbs a VM or its monitor's client.
 * Any FUSE thread; the cache of /proc/net/unix and the set of sockets logged have their own lock.
 */
#include "job_int.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lvirt.h"
#include "qemu.h"
#include "qmp.h"
#include "store.h"

/* ---- the listening sockets, read from /proc/net/unix at most once per LISTEN_TTL_MS ----
 *
 * Every lookup of a VM asks whether its socket listens, and /proc/net/unix lists every unix socket
 * of the host: with 2000 VMs, `ls -l` read it some 10000 times (36 s). One read serves lookups for
 * LISTEN_TTL_MS: shorter than a person takes between starting a QEMU and looking for it, so a
 * listing is never visibly behind. A socket that is missing from the snapshot but was bound less
 * than LISTEN_YOUNG_MS ago (its file's ctime) is looked up in a new read at once: a QEMU a script
 * has just started shows even while other listings keep the snapshot warm. A QEMU that exits may
 * still show for LISTEN_TTL_MS; a job then finds nobody at the socket and says so.
 * The snapshot is a process-wide fact (the host's sockets), hence one for the process. Its lock is
 * held during a read, so that concurrent lookups wait for that read instead of making their own. */
#define LISTEN_TTL_MS   200
#define LISTEN_YOUNG_MS 1000

/* A socket file logged as skipped, so that each is logged once. */
struct skipped {
    dev_t dev;
    ino_t ino;
};

struct listeners {
    pthread_mutex_t lock;
    /* guarded by lock */
    int64_t read_ms; /* when the snapshot was read (monotonic); 0: never */
    char **abs;      /* absolute names, sorted */
    size_t nabs, capabs;
    char **rel; /* relative names, sorted by their last component */
    size_t nrel, caprel;
    struct skipped *logged;
    size_t nlogged, caplogged;
};

static struct listeners listeners = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int64_t mono_ms(void)
{
    return (int64_t)(job_now() * 1000);
}

static const char *last_component(const char *name)
{
    const char *slash = strrchr(name, '/');

    return slash ? slash + 1 : name;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_last(const void *a, const void *b)
{
    return strcmp(last_component(*(char *const *)a), last_component(*(char *const *)b));
}

static int push(char ***v, size_t *n, size_t *cap, const char *s)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        char **grown = realloc(*v, ncap * sizeof(char *));

        if (!grown)
            return -ENOMEM;
        *v = grown;
        *cap = ncap;
    }
    (*v)[*n] = strdup(s);
    return (*v)[*n] ? (int)(++*n, 0) : -ENOMEM;
}

static void clear(char **v, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free(v[i]);
    *n = 0;
}

/* qemu_listeners's callback: files NAME (abstract sockets have no file and are left out). */
static int take_listener(const char *name, void *arg)
{
    struct listeners *l = arg;

    if (name[0] == '@')
        return 0;
    if (name[0] == '/')
        return push(&l->abs, &l->nabs, &l->capabs, name);
    return push(&l->rel, &l->nrel, &l->caprel, name);
}

static void reread_locked(struct listeners *l)
{
    clear(l->abs, &l->nabs);
    clear(l->rel, &l->nrel);
    l->read_ms = 0;
    if (qemu_listeners(take_listener, l) != 0) {
        clear(l->abs, &l->nabs); /* no snapshot: every socket looks silent until the next read */
        clear(l->rel, &l->nrel);
    }
    /* qsort of no array (NULL) is undefined, however few its elements. */
    if (l->nabs)
        qsort(l->abs, l->nabs, sizeof(char *), cmp_str);
    if (l->nrel)
        qsort(l->rel, l->nrel, sizeof(char *), cmp_last);
    l->read_ms = mono_ms();
}

/* Reads the snapshot again if it is older than LISTEN_TTL_MS. */
static void fresh_locked(struct listeners *l)
{
    if (l->read_ms == 0 || mono_ms() - l->read_ms >= LISTEN_TTL_MS)
        reread_locked(l);
}

static int in_abs_locked(const struct listeners *l, const char *path)
{
    return l->nabs && bsearch(&path, l->abs, l->nabs, sizeof(char *), cmp_str) != NULL;
}

/* Was the socket file at PATH bound less than LISTEN_YOUNG_MS ago? Then a snapshot may have been
 * read between its bind and its listen. */
static int bound_lately(const char *path)
{
    struct timespec now_rt;
    struct stat st;
    int64_t age_ms;

    if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return 0;
    clock_gettime(CLOCK_REALTIME, &now_rt);
    age_ms = (int64_t)(now_rt.tv_sec - st.st_ctim.tv_sec) * 1000 +
             (now_rt.tv_nsec - st.st_ctim.tv_nsec) / 1000000;
    return age_ms < LISTEN_YOUNG_MS;
}

/* 1 if a socket listens at PATH, as qemu_listening but from the snapshot. */
static int listening_cached(const char *path)
{
    struct listeners *l = &listeners;
    int found;

    pthread_mutex_lock(&l->lock);
    fresh_locked(l);
    found = in_abs_locked(l, path);
    if (!found && bound_lately(path)) {
        reread_locked(l);
        found = in_abs_locked(l, path);
    }
    pthread_mutex_unlock(&l->lock);
    return found;
}

static int list_has(char **names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

static int list_add(char ***names, int *n, int *cap, const char *name)
{
    if (list_has(*names, *n, name))
        return 0;
    if (*n + 1 >= *cap) {
        int ncap = *cap ? *cap * 2 : 16;
        char **grown = realloc(*names, (size_t)ncap * sizeof(char *));
        if (!grown)
            return -ENOMEM;
        *names = grown;
        *cap = ncap;
    }
    (*names)[*n] = strdup(name);
    if (!(*names)[*n])
        return -ENOMEM;
    (*names)[++*n] = NULL;
    return 0;
}

/* ---- sockets in the QMP directory that are no VM ---- */

/* A listener bound by a relative name whose last component is FILE: a QEMU started with
 * -qmp unix:FILE from inside the QMP directory. NULL if none. */
static const char *relative_listener_locked(const struct listeners *l, const char *file)
{
    char **hit;
    const char *key = file;

    if (l->nrel == 0)
        return NULL;
    hit = bsearch(&key, l->rel, l->nrel, sizeof(char *), cmp_last);
    return hit ? *hit : NULL;
}

/* Why the socket FILE at PATH, whose name is NAME.qmp or not (NAME empty), is no VM; NULL when
 * nothing listens on it (a leftover of a QEMU that died is not worth a word). */
static const char *skip_reason_locked(const struct listeners *l, const char *file, const char *path,
                                      const char *name, char *buf, size_t len)
{
    const char *rel = relative_listener_locked(l, file);

    if (!rel && !in_abs_locked(l, path))
        return NULL;
    if (!name[0])
        return "a socket listens there, but its name is not NAME.qmp (NAME: a VM name)";
    if (!store_valid_name(name)) {
        snprintf(buf, len,
                 "'%s' is not a valid VM name (1 to %d of A-Z a-z 0-9 . _ -, not starting "
                 "with '.')",
                 name, SNAPSHOT_NAME_MAX);
        return buf;
    }
    snprintf(buf, len,
             "a QEMU listens on it by the relative name '%s' (started with -qmp unix:%s from "
             "inside the directory?), and VMs are found by the absolute path %s: start QEMU "
             "with -qmp unix:%s,server=on,wait=off",
             rel, rel, path, path);
    return buf;
}

static int logged_locked(const struct listeners *l, const struct stat *st)
{
    for (size_t i = 0; i < l->nlogged; i++)
        if (l->logged[i].dev == st->st_dev && l->logged[i].ino == st->st_ino)
            return 1;
    return 0;
}

/* Adds ST's socket to those logged: 0 or -ENOMEM. */
static int remember_locked(struct listeners *l, const struct stat *st)
{
    if (l->nlogged == l->caplogged) {
        size_t ncap = l->caplogged ? l->caplogged * 2 : 16;
        struct skipped *grown = realloc(l->logged, ncap * sizeof(*grown));

        if (!grown)
            return -ENOMEM;
        l->logged = grown;
        l->caplogged = ncap;
    }
    l->logged[l->nlogged++] = (struct skipped){st->st_dev, st->st_ino};
    return 0;
}

/* Logs once per socket (its inode) why FILE in the QMP directory is no VM, if something listens
 * on it: otherwise a QEMU started the wrong way simply never shows, and nothing says why. */
static void note_skipped(const struct job_ctx *ctx, const char *file, const char *path,
                         const char *name)
{
    struct listeners *l = &listeners;
    char msg[PATH_MAX * 3 + 512], why[PATH_MAX * 2 + 256];
    const char *reason;
    struct stat st;

    if (!ctx->log || lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return;
    pthread_mutex_lock(&l->lock);
    fresh_locked(l);
    reason =
        logged_locked(l, &st) ? NULL : skip_reason_locked(l, file, path, name, why, sizeof(why));
    if (reason && remember_locked(l, &st) < 0)
        reason = NULL; /* out of memory: no word rather than the same word at every listing */
    pthread_mutex_unlock(&l->lock);
    if (reason) {
        snprintf(msg, sizeof(msg), "QMP directory: skipped socket %s: %s", path, reason);
        ctx->log(msg);
    }
}

/* ---- libvirt's domains (lvirt.h) ---- */

/* Adds the running libvirt domains whose names are VM names. */
static int add_domains(struct job_ctx *ctx, char ***names, int *n, int *cap)
{
    char **doms = ctx->lv ? lv_list(ctx->lv) : NULL;
    int rc = ctx->lv && !doms ? -ENOMEM : 0;

    for (size_t i = 0; !rc && doms && doms[i]; i++)
        if (store_valid_name(doms[i]))
            rc = list_add(names, n, cap, doms[i]);
    job_names_free(doms);
    return rc;
}

static int qmp_listening(const struct job_ctx *ctx, const char *vm)
{
    char path[PATH_MAX];

    return job_qmp_path(ctx, vm, path) == 0 && listening_cached(path);
}

int job_vm_libvirt(struct job_ctx *ctx, const char *vm)
{
    return ctx->lv && store_valid_name(vm) && !qmp_listening(ctx, vm) && lv_running(ctx->lv, vm);
}

int job_vm_monitor(struct job_ctx *ctx, const char *vm, int timeout_ms, struct qmp **q,
                   int *libvirt, char *err, size_t errlen)
{
    char path[PATH_MAX];

    *q = NULL;
    *libvirt = 0;
    if (job_qmp_path(ctx, vm, path))
        return -ENAMETOOLONG;
    if (qemu_listening(path))
        return qmp_connect(q, path, timeout_ms, err, errlen);
    if (!job_vm_libvirt(ctx, vm)) {
        snprintf(err, errlen, "no QEMU listens on %s%s", path,
                 ctx->lv ? " and no libvirt domain of that name runs" : "");
        return -ESRCH;
    }
    *libvirt = 1;
    return lv_qmp_open(ctx->lv, vm, q, err, errlen);
}

/* ---- listing ---- */

/* 1 if FILE is NAME.qmp in the QMP directory and a QEMU listens on it; NAME is then set. Any
 * other socket there that something listens on is logged once. */
static int listening_vm(const struct job_ctx *ctx, const char *file, char *name)
{
    size_t len = strlen(file);
    char path[PATH_MAX];
    int qmp = len > 4 && len - 4 <= SNAPSHOT_NAME_MAX && strcmp(file + len - 4, ".qmp") == 0;

    name[0] = '\0';
    if (qmp) {
        memcpy(name, file, len - 4);
        name[len - 4] = '\0';
    }
    if (qmp && store_valid_name(name) && job_qmp_path(ctx, name, path) == 0 &&
        listening_cached(path))
        return 1;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", ctx->qmp_dir, file) < sizeof(path))
        note_skipped(ctx, file, path, name);
    return 0;
}

static int scan_dir(const char *dir, int (*pick)(const struct job_ctx *, const char *, char *),
                    const struct job_ctx *ctx, char ***names, int *n, int *cap)
{
    char name[SNAPSHOT_NAME_MAX + 1];
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0;

    if (!d)
        return 0;
    while (!rc && (e = readdir(d)))
        if (pick(ctx, e->d_name, name))
            rc = list_add(names, n, cap, name);
    closedir(d);
    return rc;
}

static int stored_vm(const struct job_ctx *ctx, const char *file, char *name)
{
    if (!store_valid_name(file) || !store_vm_exists(ctx->store, file))
        return 0;
    strcpy(name, file);
    return 1;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **job_vm_list(struct job_ctx *ctx)
{
    char **names = NULL;
    int n = 0, cap = 0;

    if (scan_dir(ctx->qmp_dir, listening_vm, ctx, &names, &n, &cap) ||
        scan_dir(ctx->store, stored_vm, ctx, &names, &n, &cap) ||
        add_domains(ctx, &names, &n, &cap)) {
        job_names_free(names);
        return NULL;
    }
    if (!names)
        return calloc(1, sizeof(char *));
    qsort(names, (size_t)n, sizeof(char *), cmp_names);
    return names;
}

void job_names_free(char **names)
{
    qemu_argv_free(names);
}

int job_vm_exists(struct job_ctx *ctx, const char *vm)
{
    char path[PATH_MAX];

    if (!store_valid_name(vm))
        return 0;
    return store_vm_exists(ctx->store, vm) ||
           (job_qmp_path(ctx, vm, path) == 0 && listening_cached(path)) ||
           (ctx->lv && lv_running(ctx->lv, vm));
}

int job_vm_create(struct job_ctx *ctx, const char *vm)
{
    char err[JOB_ERR_MAX];

    if (!store_valid_name(vm))
        return -EINVAL;
    return store_vm_create(ctx->store, vm, err, sizeof(err));
}

int job_vm_remove(struct job_ctx *ctx, const char *vm)
{
    char err[JOB_ERR_MAX], path[PATH_MAX];
    struct lease_holder holder;
    struct vm_state *s;
    int rc;

    if (!store_valid_name(vm))
        return -ENOENT;
    /* A QEMU runs as VM here, or on another host of the fleet (its lease, lease.h; this host's
     * own lease of a QEMU that has just quit goes at the watch's next tick). */
    if ((job_qmp_path(ctx, vm, path) == 0 && qemu_listening(path)) ||
        (lease_query(ctx->store, vm, &holder) == 1 && strcmp(holder.host, ctx->host) != 0) ||
        job_vm_libvirt(ctx, vm))
        return -EBUSY;
    /* Under the lock that a job takes to start: none starts between the check and the removal. */
    pthread_mutex_lock(&ctx->lock);
    s = job_vm_find_locked(ctx, vm);
    rc = s && s->job ? -EBUSY : store_vm_remove(ctx->store, vm, err, sizeof(err));
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

int job_snapshot_busy(struct job_ctx *ctx, const char *vm, const char *snap)
{
    struct vm_state *s;
    int busy;

    pthread_mutex_lock(&ctx->lock);
    s = job_vm_find_locked(ctx, vm);
    for (;;) {
        busy = s && s->job && s->job->kind->reads_snapshot && strcmp(s->job->snapshot, snap) == 0;
        /* A lazy restore's push reads it until its last page: `rm -r` waits for that, as a
         * restore's rename makes it wait for the restore. */
        if (!busy || !s->job->released)
            break;
        pthread_cond_wait(&ctx->changed, &ctx->lock);
    }
    pthread_mutex_unlock(&ctx->lock);
    return busy;
}
