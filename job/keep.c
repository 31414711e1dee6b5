/* keep: retention. The snapshots a keep=N looks at are the complete ones of the VM: a manifest
 * that reads and names the VM, and every file it names there with its size. A copy in progress,
 * a damaged snapshot or another VM's are neither counted nor deleted. They are ordered by the
 * manifest's creation time ("created", to the second; then the manifest file's mtime, then the
 * name): a snapshot imported from elsewhere keeps the time it was taken, whatever its name. The
 * snapshot just saved is always kept, even if an imported one claims a later time. */
#include "keep.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "manifest.h"
#include "store.h"

struct candidate {
    char name[NAME_MAX + 1];
    time_t created;
    struct timespec mtime; /* the manifest file's */
};

struct candidates {
    struct candidate *at;
    size_t n, cap;
};

void job_set_snapshot_users(struct job_ctx *ctx, const struct job_snapshot_users *users)
{
    pthread_mutex_lock(&ctx->lock);
    if (users)
        ctx->users = *users;
    else
        memset(&ctx->users, 0, sizeof(ctx->users));
    pthread_mutex_unlock(&ctx->lock);
}

/* 1 if every file M names is in DIR with the size M gives it. */
static int files_whole(const char *dir, const struct manifest *m)
{
    char path[PATH_MAX];
    struct stat st;

    for (int i = 0; i < m->nfiles; i++)
        if (store_path(path, "%s/%s", dir, m->files[i].name) || lstat(path, &st) < 0 ||
            !S_ISREG(st.st_mode) || (uint64_t)st.st_size != m->files[i].size)
            return 0;
    return 1;
}

/* Fills C for snapshot NAME of VM: 0 if it is a complete snapshot of VM, else -1. */
static int candidate_read(const char *store, const char *vm, const char *name, struct candidate *c)
{
    char dir[PATH_MAX], path[PATH_MAX], err[256];
    struct manifest m = {0};
    struct stat st;
    struct tm tm = {0};
    int ok;

    /* Another host's publication in progress (a claim) is no snapshot yet. */
    if (store_path(dir, "%s/%s/snapshots/%s", store, vm, name) || lstat(dir, &st) < 0 ||
        store_claimed(&st) || store_path(path, "%s/%s", dir, MANIFEST_NAME) ||
        stat(path, &st) < 0 || manifest_read(path, &m, err, sizeof(err)))
        return -1;
    ok = strcmp(m.vm, vm) == 0 && strptime(m.created, "%Y-%m-%dT%H:%M:%SZ", &tm) &&
         files_whole(dir, &m);
    manifest_free(&m);
    if (!ok)
        return -1;
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->created = timegm(&tm);
    c->mtime = st.st_mtim;
    return 0;
}

/* Newest first. */
static int candidate_cmp(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;

    if (x->created != y->created)
        return x->created < y->created ? 1 : -1;
    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? 1 : -1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? 1 : -1;
    return -strcmp(x->name, y->name);
}

/* The complete snapshots of JOB's VM but the one it just saved, newest first. */
static int candidates_list(struct job *job, struct candidates *cs)
{
    char dir[PATH_MAX];
    struct dirent *e;
    DIR *d;

    if (store_path(dir, "%s/%s/snapshots", job->ctx->store, job->vm->name))
        return -ENAMETOOLONG;
    if (!(d = opendir(dir)))
        return -errno;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, job->snapshot) == 0)
            continue;
        if (cs->n == cs->cap) {
            size_t cap = cs->cap ? 2 * cs->cap : 16;
            struct candidate *at = realloc(cs->at, cap * sizeof(*at));
            if (!at)
                break;
            cs->at = at;
            cs->cap = cap;
        }
        if (candidate_read(job->ctx->store, job->vm->name, e->d_name, &cs->at[cs->n]) == 0)
            cs->n++;
    }
    closedir(d);
    if (cs->n) /* no qsort of an empty, NULL list */
        qsort(cs->at, cs->n, sizeof(*cs->at), candidate_cmp);
    return 0;
}

/* 1 while SNAP is used: read by a restore, written, verified or restored by an import, or its
 * captured images the base of a running VM's layer. */
static int in_use(struct job *job, const char *snap)
{
    struct job_ctx *ctx = job->ctx;
    int used;

    if (job_snapshot_busy(ctx, job->vm->name, snap) ||
        job_snapshot_is_base(ctx, job->vm->name, snap))
        return 1;
    pthread_mutex_lock(&ctx->lock);
    used = ctx->users.in_use && ctx->users.in_use(ctx->users.opaque, job->vm->name, snap);
    pthread_mutex_unlock(&ctx->lock);
    return used;
}

static void tell_deleted(struct job *job, const char *snap)
{
    struct job_ctx *ctx = job->ctx;

    pthread_mutex_lock(&ctx->lock);
    if (ctx->users.deleted)
        ctx->users.deleted(ctx->users.opaque, job->vm->name, snap);
    pthread_mutex_unlock(&ctx->lock);
}

/* A list of names for the summary: "HEAD a, b" as far as room lasts, then " and N more". */
struct names {
    char text[JOB_ERR_MAX];
    size_t len;
    int n, left_out;
};

/* Room kept for the tail, " and N more". */
#define NAMES_TAIL 24

static void names_add(struct names *l, const char *head, const char *name)
{
    size_t room = sizeof(l->text) - NAMES_TAIL;
    int n = snprintf(l->text + l->len, room > l->len ? room - l->len : 0, "%s%s",
                     l->n ? ", " : head, name);

    if (n < 0 || l->len + (size_t)n >= room) {
        l->text[l->len] = '\0';
        l->left_out++;
    } else {
        l->len += (size_t)n;
    }
    l->n++;
}

/* Appends L, if it has names, to the text OUT of LEN bytes. */
static void names_append(struct names *l, char *out, size_t len)
{
    size_t used = strlen(out);

    if (!l->n || used >= len)
        return;
    if (l->left_out)
        snprintf(l->text + l->len, sizeof(l->text) - l->len, " and %d more", l->left_out);
    snprintf(out + used, len - used, "%s", l->text);
}

static void log_line(struct job *job, const char *what, const char *snap, const char *why)
{
    job_log(job, "keep=%d %s %s%s%s", job->words.keep, what, snap, why[0] ? ": " : "", why);
}

/* Deletes SNAP unless it is used; says which it was in the lists. A writer that opens a file of
 * SNAP between the question and the rename writes into the deleted snapshot: the window is that
 * of an rm -r through the mount, and a copy that ran into it fails at its next file. */
static void prune_one(struct job *job, const char *snap, struct names *deleted, struct names *used,
                      struct names *failed)
{
    char err[JOB_ERR_MAX], head[32], entry[NAME_MAX + 64];
    int rc;

    if (in_use(job, snap)) {
        names_add(used, "; in use, not deleted: ", snap);
        log_line(job, "kept (in use)", snap, "");
        return;
    }
    rc = store_snapshot_delete(job->ctx->store, job->vm->name, snap, err, sizeof(err));
    if (rc) {
        snprintf(entry, sizeof(entry), "%s (%s)", snap, strerror(-rc));
        names_add(failed, "; could not delete ", entry);
        log_line(job, "could not delete", snap, err);
        return;
    }
    tell_deleted(job, snap);
    snprintf(head, sizeof(head), "; keep=%d: deleted ", job->words.keep);
    names_add(deleted, head, snap);
    log_line(job, "deleted", snap, "");
}

void keep_prune(struct job *job)
{
    struct names deleted = {0}, used = {0}, failed = {0};
    struct candidates cs = {0};
    char *out = job->summary, note[128] = "";
    size_t len = sizeof(job->summary);
    int rc;

    if (!job->words.keep)
        return;
    job_set_phase(job, "pruning");
    rc = candidates_list(job, &cs);
    /* The new snapshot is the first of the N kept. */
    for (size_t i = (size_t)job->words.keep - 1; !rc && i < cs.n; i++)
        prune_one(job, cs.at[i].name, &deleted, &used, &failed);
    if (rc)
        snprintf(note, sizeof(note), "; keep=%d: cannot list the snapshots: %s", job->words.keep,
                 strerror(-rc));
    else if (!deleted.n)
        snprintf(note, sizeof(note), "; keep=%d: nothing deleted", job->words.keep);
    names_append(&deleted, out, len);
    snprintf(out + strlen(out), len - strlen(out), "%s", note);
    names_append(&used, out, len);
    names_append(&failed, out, len);
    free(cs.at);
}
