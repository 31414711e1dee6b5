/* sfs: the FUSE operations. Every path is first classified (a VM, its save or status file, its
 * restore/ or snapshots/ directory, or something inside a snapshot); snapshot contents pass
 * straight through to the store's files, everything else is answered by the job module.
 * Reads never start a job: only write(save) and rename(into restore/) do. */
#include "sfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "job.h"
#include "words.h"

enum sfs_kind {
    SFS_ROOT,
    SFS_VM,
    SFS_SAVE,
    SFS_STATUS,
    SFS_RESTORE,       /* NAME/restore */
    SFS_RESTORE_ENTRY, /* NAME/restore/X: never exists; the target of a restoring rename */
    SFS_SNAPSHOTS,     /* NAME/snapshots */
    SFS_SNAPSHOT,      /* NAME/snapshots/S */
    SFS_IN_SNAPSHOT,   /* NAME/snapshots/S/... */
};

struct sfs_path {
    enum sfs_kind kind;
    char vm[SNAPSHOT_NAME_MAX + 1];
    char snap[SNAPSHOT_NAME_MAX + 1];
    char store[PATH_MAX]; /* the store path behind SFS_SNAPSHOTS and below */
};

static struct job_ctx *ctx(void)
{
    return fuse_get_context()->private_data;
}

/* Copies the path component at *P (up to '/' or the end) into OUT and advances *P past it. */
static int next_component(const char **p, char *out, size_t len)
{
    size_t n = strcspn(*p, "/");

    if (n == 0 || n >= len)
        return -ENOENT;
    memcpy(out, *p, n);
    out[n] = '\0';
    *p += n + ((*p)[n] == '/');
    return 0;
}

static int classify_vm_child(const char *p, struct sfs_path *sp)
{
    char name[NAME_MAX + 1];

    if (next_component(&p, name, sizeof(name)))
        return -ENOENT;
    if (strcmp(name, "save") == 0 || strcmp(name, "status") == 0) {
        sp->kind = name[1] == 'a' ? SFS_SAVE : SFS_STATUS;
        return *p ? -ENOTDIR : 0;
    }
    if (strcmp(name, "restore") == 0) {
        sp->kind = *p ? SFS_RESTORE_ENTRY : SFS_RESTORE;
        return 0;
    }
    if (strcmp(name, "snapshots") != 0)
        return -ENOENT;
    sp->kind = SFS_SNAPSHOTS;
    if (*p) {
        if (next_component(&p, sp->snap, sizeof(sp->snap)))
            return -ENOENT;
        sp->kind = *p ? SFS_IN_SNAPSHOT : SFS_SNAPSHOT;
    }
    return 0;
}

/* Classifies PATH. -ENOENT for what does not exist in savefs's tree. */
static int classify(const char *path, struct sfs_path *sp)
{
    const char *p = path + 1;
    const char *below;
    int rc;

    memset(sp, 0, sizeof(*sp));
    if (*p == '\0') {
        sp->kind = SFS_ROOT;
        return 0;
    }
    if (next_component(&p, sp->vm, sizeof(sp->vm)) || !words_valid_name(sp->vm))
        return -ENOENT;
    sp->kind = SFS_VM;
    if (*p && (rc = classify_vm_child(p, sp)))
        return rc;
    if (sp->kind < SFS_SNAPSHOTS)
        return 0;
    below = strstr(path + 1, "/snapshots") + strlen("/snapshots");
    rc = snprintf(sp->store, sizeof(sp->store), "%s/%s/snapshots%s", job_store(ctx()), sp->vm,
                  below);
    return rc < 0 || rc >= (int)sizeof(sp->store) ? -ENAMETOOLONG : 0;
}

/* Classifies PATH and checks that its VM exists. */
static int resolve(const char *path, struct sfs_path *sp)
{
    int rc = classify(path, sp);

    if (!rc && sp->kind != SFS_ROOT && !job_vm_exists(ctx(), sp->vm))
        rc = -ENOENT;
    return rc;
}

static void *sfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    (void)conn;
    /* Names appear and vanish with VMs and jobs: never let the kernel answer from a cache. */
    cfg->entry_timeout = 0;
    cfg->attr_timeout = 0;
    cfg->negative_timeout = 0;
    return fuse_get_context()->private_data;
}

static void fill_virtual(struct stat *st, mode_t mode)
{
    memset(st, 0, sizeof(*st));
    st->st_mode = mode;
    st->st_nlink = S_ISDIR(mode) ? 2 : 1;
    st->st_uid = getuid();
    st->st_gid = getgid();
    st->st_blksize = 4096;
}

static int sfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    struct sfs_path sp;
    int rc = resolve(path, &sp);

    (void)fi;
    if (rc)
        return rc;
    switch (sp.kind) {
    case SFS_ROOT:
    case SFS_VM:
    case SFS_RESTORE:
        fill_virtual(st, S_IFDIR | 0700);
        return 0;
    case SFS_SAVE:
        fill_virtual(st, S_IFREG | 0600);
        return 0;
    case SFS_STATUS:
        fill_virtual(st, S_IFREG | 0400);
        return 0;
    case SFS_RESTORE_ENTRY:
        return -ENOENT;
    case SFS_SNAPSHOTS:
        /* A running VM that was never saved has no directory in the store yet. */
        if (lstat(sp.store, st) < 0 && errno == ENOENT)
            fill_virtual(st, S_IFDIR | 0700);
        return 0;
    default:
        return lstat(sp.store, st) < 0 ? -errno : 0;
    }
}

static int list_root(void *buf, fuse_fill_dir_t filler)
{
    char **names = job_vm_list(ctx());

    if (!names)
        return -ENOMEM;
    for (char **n = names; *n; n++)
        filler(buf, *n, NULL, 0, 0);
    job_vm_list_free(names);
    return 0;
}

static int list_store_dir(const char *dir, void *buf, fuse_fill_dir_t filler)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return -errno;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            filler(buf, e->d_name, NULL, 0, 0);
    closedir(d);
    return 0;
}

static int sfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    static const char *const vm_entries[] = {"save", "status", "restore", "snapshots"};
    struct sfs_path sp;
    int rc = resolve(path, &sp);

    (void)off;
    (void)fi;
    (void)flags;
    if (rc)
        return rc;
    filler(buf, ".", NULL, 0, 0);
    filler(buf, "..", NULL, 0, 0);
    switch (sp.kind) {
    case SFS_ROOT:
        return list_root(buf, filler);
    case SFS_VM:
        for (size_t i = 0; i < sizeof(vm_entries) / sizeof(vm_entries[0]); i++)
            filler(buf, vm_entries[i], NULL, 0, 0);
        return 0;
    case SFS_RESTORE:
        return 0;
    case SFS_SNAPSHOTS:
        rc = list_store_dir(sp.store, buf, filler);
        return rc == -ENOENT ? 0 : rc;
    case SFS_SNAPSHOT:
    case SFS_IN_SNAPSHOT:
        return list_store_dir(sp.store, buf, filler);
    default:
        return -ENOTDIR;
    }
}

/* An open file: a store file (FD) or a text rendered at open (status, save's outcome). */
struct sfs_file {
    int fd;
    char *text;
    size_t len;
};

static int open_text(struct fuse_file_info *fi, char *text)
{
    struct sfs_file *f;

    if (!text)
        return -ENOMEM;
    f = calloc(1, sizeof(*f));
    if (!f) {
        free(text);
        return -ENOMEM;
    }
    f->fd = -1;
    f->text = text;
    f->len = strlen(text);
    fi->fh = (uint64_t)(uintptr_t)f;
    /* The size is known only now: read until EOF rather than up to st_size. */
    fi->direct_io = 1;
    return 0;
}

static int open_store(struct fuse_file_info *fi, const char *path)
{
    struct sfs_file *f;
    int fd;

    if ((fi->flags & O_ACCMODE) != O_RDONLY)
        return -EROFS;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    f = calloc(1, sizeof(*f));
    if (!f) {
        close(fd);
        return -ENOMEM;
    }
    f->fd = fd;
    fi->fh = (uint64_t)(uintptr_t)f;
    return 0;
}

static int sfs_open(const char *path, struct fuse_file_info *fi)
{
    int wr = (fi->flags & O_ACCMODE) != O_RDONLY;
    struct sfs_path sp;
    int rc = resolve(path, &sp);

    if (rc)
        return rc;
    switch (sp.kind) {
    case SFS_SAVE:
        if (wr) {
            fi->direct_io = 1;
            fi->fh = 0;
            return 0;
        }
        return open_text(fi, job_last_save_text(ctx(), sp.vm));
    case SFS_STATUS:
        return wr ? -EACCES : open_text(fi, job_status_json(ctx(), sp.vm));
    case SFS_SNAPSHOT:
    case SFS_IN_SNAPSHOT:
        return open_store(fi, sp.store);
    default:
        return -EISDIR;
    }
}

static int sfs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct sfs_file *f = (struct sfs_file *)(uintptr_t)fi->fh;
    ssize_t n;

    (void)path;
    if (!f)
        return -EBADF;
    if (f->fd < 0) {
        if ((size_t)off >= f->len)
            return 0;
        n = (ssize_t)(f->len - (size_t)off < size ? f->len - (size_t)off : size);
        memcpy(buf, f->text + off, (size_t)n);
        return (int)n;
    }
    n = pread(f->fd, buf, size, off);
    return n < 0 ? -errno : (int)n;
}

static int sfs_write(const char *path, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    struct sfs_path sp;
    int rc = resolve(path, &sp);

    (void)off;
    (void)fi;
    if (rc)
        return rc;
    if (sp.kind != SFS_SAVE)
        return -EROFS;
    rc = job_save(ctx(), sp.vm, buf, size, fuse_interrupted);
    return rc ? rc : (int)size;
}

static int sfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    struct sfs_path sp;
    int rc = resolve(path, &sp);

    (void)fi;
    if (rc)
        return rc;
    /* `echo 4 > save` opens with O_TRUNC: that is not an error, and not a save either. */
    if (sp.kind == SFS_SAVE && size == 0)
        return 0;
    return sp.kind == SFS_SAVE || sp.kind == SFS_STATUS ? -EINVAL : -EROFS;
}

static int sfs_release(const char *path, struct fuse_file_info *fi)
{
    struct sfs_file *f = (struct sfs_file *)(uintptr_t)fi->fh;

    (void)path;
    if (f) {
        if (f->fd >= 0)
            close(f->fd);
        free(f->text);
        free(f);
    }
    return 0;
}

static int sfs_rename(const char *from, const char *to, unsigned int flags)
{
    struct sfs_path src, dst;
    int rc;

    if ((rc = resolve(from, &src)))
        return rc;
    rc = classify(to, &dst);
    if (rc)
        return rc;
    if (flags)
        return -EINVAL;
    if (dst.kind == SFS_RESTORE_ENTRY) {
        if (src.kind != SFS_SNAPSHOT)
            return -EINVAL;
        if (strcmp(src.vm, dst.vm) != 0)
            return -EXDEV;
        return job_restore(ctx(), src.vm, src.snap, fuse_interrupted);
    }
    if (src.kind == SFS_SNAPSHOT && dst.kind == SFS_SNAPSHOT && strcmp(src.vm, dst.vm) == 0) {
        if (!words_valid_name(dst.snap))
            return -EINVAL;
        if (job_snapshot_busy(ctx(), src.vm, src.snap))
            return -EBUSY;
        return renameat2(AT_FDCWD, src.store, AT_FDCWD, dst.store, RENAME_NOREPLACE) < 0 ? -errno
                                                                                         : 0;
    }
    return src.kind == SFS_SNAPSHOT || src.kind == SFS_IN_SNAPSHOT ? -EXDEV : -EPERM;
}

static int sfs_mkdir(const char *path, mode_t mode)
{
    struct sfs_path sp;
    int rc = classify(path, &sp);

    (void)mode;
    if (rc)
        return rc == -ENOENT ? -EINVAL : rc;
    if (sp.kind == SFS_VM)
        return job_vm_create(ctx(), sp.vm);
    return -EPERM;
}

static int sfs_rmdir(const char *path)
{
    struct sfs_path sp;
    int rc = resolve(path, &sp);

    if (rc)
        return rc;
    switch (sp.kind) {
    case SFS_VM:
        return job_vm_remove(ctx(), sp.vm);
    case SFS_SNAPSHOT:
        if (job_snapshot_busy(ctx(), sp.vm, sp.snap))
            return -EBUSY;
        /* fallthrough */
    case SFS_IN_SNAPSHOT:
        return rmdir(sp.store) < 0 ? -errno : 0;
    default:
        return -EPERM;
    }
}

static int sfs_unlink(const char *path)
{
    struct sfs_path sp;
    int rc = resolve(path, &sp);

    if (rc)
        return rc;
    if (sp.kind != SFS_IN_SNAPSHOT)
        return -EPERM;
    if (job_snapshot_busy(ctx(), sp.vm, sp.snap))
        return -EBUSY;
    return unlink(sp.store) < 0 ? -errno : 0;
}

static int sfs_statfs(const char *path, struct statvfs *st)
{
    (void)path;
    return statvfs(job_store(ctx()), st) < 0 ? -errno : 0;
}

const struct fuse_operations sfs_ops = {
    .init = sfs_init,
    .getattr = sfs_getattr,
    .readdir = sfs_readdir,
    .open = sfs_open,
    .read = sfs_read,
    .write = sfs_write,
    .truncate = sfs_truncate,
    .release = sfs_release,
    .rename = sfs_rename,
    .mkdir = sfs_mkdir,
    .rmdir = sfs_rmdir,
    .unlink = sfs_unlink,
    .statfs = sfs_statfs,
};
