/* vms: which VMs exist. A VM is a QEMU listening on QMPDIR/NAME.qmp, or a directory in the store;
 * both are read without talking to QEMU, so listing never disturbs a VM or its monitor's client. */
#include "job_int.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "qemu.h"
#include "store.h"

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

/* 1 if FILE is NAME.qmp in the QMP directory and a QEMU listens on it; NAME is then set. */
static int listening_vm(const struct job_ctx *ctx, const char *file, char *name)
{
    size_t len = strlen(file);
    char path[PATH_MAX];

    if (len <= 4 || len - 4 > SNAPSHOT_NAME_MAX || strcmp(file + len - 4, ".qmp") != 0)
        return 0;
    memcpy(name, file, len - 4);
    name[len - 4] = '\0';
    return words_valid_name(name) && job_qmp_path(ctx, name, path) == 0 && qemu_listening(path);
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
    if (!words_valid_name(file) || !store_vm_exists(ctx->store, file))
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
        scan_dir(ctx->store, stored_vm, ctx, &names, &n, &cap)) {
        job_vm_list_free(names);
        return NULL;
    }
    if (!names)
        return calloc(1, sizeof(char *));
    qsort(names, (size_t)n, sizeof(char *), cmp_names);
    return names;
}

void job_vm_list_free(char **names)
{
    for (char **p = names; p && *p; p++)
        free(*p);
    free(names);
}

int job_vm_exists(struct job_ctx *ctx, const char *vm)
{
    char path[PATH_MAX];

    if (!words_valid_name(vm))
        return 0;
    return store_vm_exists(ctx->store, vm) ||
           (job_qmp_path(ctx, vm, path) == 0 && qemu_listening(path));
}

int job_vm_create(struct job_ctx *ctx, const char *vm)
{
    char err[JOB_ERR_MAX];

    if (!words_valid_name(vm))
        return -EINVAL;
    return store_vm_create(ctx->store, vm, err, sizeof(err));
}

int job_vm_remove(struct job_ctx *ctx, const char *vm)
{
    char err[JOB_ERR_MAX], path[PATH_MAX];
    int busy;

    if (!words_valid_name(vm))
        return -ENOENT;
    if (job_qmp_path(ctx, vm, path) == 0 && qemu_listening(path))
        return -EBUSY;
    pthread_mutex_lock(&ctx->lock);
    busy = 0;
    for (struct vm_state *s = ctx->vms; s; s = s->next)
        busy |= strcmp(s->name, vm) == 0 && s->job;
    pthread_mutex_unlock(&ctx->lock);
    if (busy)
        return -EBUSY;
    return store_vm_remove(ctx->store, vm, err, sizeof(err));
}

int job_snapshot_busy(struct job_ctx *ctx, const char *vm, const char *snap)
{
    int busy = 0;

    pthread_mutex_lock(&ctx->lock);
    for (struct vm_state *s = ctx->vms; s; s = s->next)
        busy |= strcmp(s->name, vm) == 0 && s->job && s->job->op == JOB_RESTORE &&
                strcmp(s->job->snapshot, snap) == 0;
    pthread_mutex_unlock(&ctx->lock);
    return busy;
}
