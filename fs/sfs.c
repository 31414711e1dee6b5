/* sfs: the FUSE operations. Every path is first classified (a VM, its save or status file, its
 * restore/ or snapshots/ directory, or something inside a snapshot); snapshot contents pass
 * straight through to the store's files (sfs_store.h), everything else is answered by the job
 * module. NAME/restore/S/... is the same store directory as NAME/snapshots/S/... once S was made
 * there: that is an import (import.h). Reads never start a job: only write(save),
 * rename(into restore/) and the last close of an import's file do. */
#include "sfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "follow.h"
#include "import.h"
#include "job.h"
#include "manifest.h"
#include "sfs_io.h"
#include "sfs_pt.h"
#include "sfs_store.h"
#include "store.h"
#include "words.h"

enum sfs_kind {
    SFS_ROOT,
    SFS_README, /* MOUNT/README: what each file does, for who only sees the mount */
    SFS_VM,
    SFS_SAVE,
    SFS_STATUS,
    SFS_PROGRESS,      /* NAME/progress: the job followed line by line (follow.h) */
    SFS_RESTORE,       /* NAME/restore */
    SFS_RESTORE_ENTRY, /* NAME/restore/S: the target of a restoring rename, or an import */
    SFS_SNAPSHOTS,     /* NAME/snapshots */
    SFS_SNAPSHOT,      /* NAME/snapshots/S */
    SFS_IN_SNAPSHOT,   /* NAME/snapshots/S/... or an import's NAME/restore/S/... */
};

struct sfs_path {
    enum sfs_kind kind;
    int via_restore; /* below NAME/restore: an import's name for NAME/snapshots/S */
    char vm[SNAPSHOT_NAME_MAX + 1];
    char snap[NAME_MAX + 1];
    char rel[PATH_MAX]; /* below the store, for SFS_RESTORE_ENTRY and SFS_SNAPSHOTS on */
    size_t member;      /* SFS_IN_SNAPSHOT: where in REL the path inside the snapshot starts */
};

#define SFS_README_NAME "README"

/* For someone who only ever sees the mount: what each file does, in a few lines. */
static const char sfs_readme[] =
    "savefs: every QEMU VM is a directory NAME here (a QEMU started with\n"
    "-qmp unix:QMPDIR/NAME.qmp,server=on,wait=off, or one with snapshots in the store).\n"
    "\n"
    "NAME/save        write save words to save NAME: echo 4 > NAME/save (4 channels;\n"
    "                 also name=S, keep=N, keep-running, compress=zstd, direct-io=off); the\n"
    "                 write returns once the snapshot is durable. Read it: the last save's\n"
    "                 outcome. keep-running is a live checkpoint: the disks are captured too\n"
    "                 (disks=auto|reflink|overlay|none).\n"
    "NAME/snapshots/  one directory per snapshot (manifest.json, main, channel-K); ls, cp,\n"
    "                 tar and rm -r work on them.\n"
    "NAME/restore/    move a snapshot in to restore NAME from it:\n"
    "                 mv NAME/snapshots/S NAME/restore/ (returns once NAME runs); copying\n"
    "                 one in from elsewhere imports and then restores it.\n"
    "NAME/status      JSON: NAME's state, the job in progress, the last job's result.\n"
    "NAME/progress    cat it: a line a second while a save, a restore or a copy into\n"
    "                 snapshots/ or restore/ runs, then its outcome (ok or failed: why)\n"
    "                 and the end; else the last outcome.\n"
    "\n"
    "savefs save NAME [WORDS] and savefs restore NAME S do the same with a progress bar.\n"
    "Errors and everything else: man savefs.\n";

static struct sfs_ctx *ctx(void)
{
    return fuse_get_context()->private_data;
}

int sfs_ctx_init(struct sfs_ctx *c, struct job_ctx *job, struct import *imp)
{
    c->job = job;
    c->imp = imp;
    c->owner = getuid();
    c->mounted = time(NULL);
    c->store_fd = open(job_store(job), O_PATH | O_DIRECTORY | O_CLOEXEC);
    return c->store_fd < 0 ? -errno : 0;
}

void sfs_ctx_close(struct sfs_ctx *c)
{
    if (c->store_fd >= 0)
        close(c->store_fd);
    c->store_fd = -1;
}

/* ---- paths ---- */

/* Copies the path component at *P (up to '/' or the end) into OUT and advances *P past it.
 * "." and ".." never name anything in savefs; a name longer than NAME_MAX none anywhere. */
static int next_component(const char **p, char *out, size_t len)
{
    size_t n = strcspn(*p, "/");

    if (n > NAME_MAX)
        return -ENAMETOOLONG;
    if (n == 0 || n >= len)
        return -ENOENT;
    memcpy(out, *p, n);
    out[n] = '\0';
    *p += n + ((*p)[n] == '/');
    return strcmp(out, ".") == 0 || strcmp(out, "..") == 0 ? -EINVAL : 0;
}

/* Below NAME/snapshots or NAME/restore: S, then anything inside it. */
static int classify_snapshot(const char *p, struct sfs_path *sp)
{
    char rest[NAME_MAX + 1];
    const char *q;
    int rc;

    if ((rc = next_component(&p, sp->snap, sizeof(sp->snap))))
        return rc;
    for (q = p; *q;)
        if ((rc = next_component(&q, rest, sizeof(rest))))
            return rc;
    if ((rc = store_snapshot_rel(sp->rel, sizeof(sp->rel), sp->vm, sp->snap, NULL)))
        return rc;
    if (*p) {
        sp->kind = SFS_IN_SNAPSHOT;
        sp->member = strlen(sp->rel) + 1;
    }
    return store_snapshot_rel(sp->rel, sizeof(sp->rel), sp->vm, sp->snap, *p ? p : NULL);
}

static int classify_vm_child(const char *p, struct sfs_path *sp)
{
    char name[NAME_MAX + 1];
    int rc;

    if ((rc = next_component(&p, name, sizeof(name))))
        return rc;
    if (strcmp(name, "save") == 0 || strcmp(name, "status") == 0 || strcmp(name, "progress") == 0) {
        sp->kind = name[1] == 'a' ? SFS_SAVE : name[1] == 't' ? SFS_STATUS : SFS_PROGRESS;
        return *p ? -ENOTDIR : 0;
    }
    if (strcmp(name, "restore") == 0) {
        sp->kind = *p ? SFS_RESTORE_ENTRY : SFS_RESTORE;
        sp->via_restore = 1;
        return *p ? classify_snapshot(p, sp) : 0;
    }
    if (strcmp(name, STORE_SNAPSHOTS) != 0)
        return -ENOENT;
    sp->kind = *p ? SFS_SNAPSHOT : SFS_SNAPSHOTS;
    if (!*p)
        return store_snapshot_rel(sp->rel, sizeof(sp->rel), sp->vm, NULL, NULL);
    return classify_snapshot(p, sp);
}

/* Classifies PATH. -ENOENT for what does not exist in savefs's tree. */
static int classify(const char *path, struct sfs_path *sp)
{
    const char *p = path ? path + 1 : "";
    int rc;

    memset(sp, 0, sizeof(*sp));
    if (!path)
        return -ENOENT; /* a removed file, reached only through its descriptor */
    if (*p == '\0') {
        sp->kind = SFS_ROOT;
        return 0;
    }
    if (strcmp(p, SFS_README_NAME) == 0) {
        sp->kind = SFS_README;
        return 0;
    }
    if ((rc = next_component(&p, sp->vm, sizeof(sp->vm))))
        return rc == -ENAMETOOLONG ? rc : -ENOENT;
    if (!store_valid_name(sp->vm))
        return -ENOENT;
    sp->kind = SFS_VM;
    return *p ? classify_vm_child(p, sp) : 0;
}

/* 1 if SP names a store directory or file: a snapshot, its contents, an import. */
static int in_store(const struct sfs_path *sp)
{
    return sp->kind == SFS_SNAPSHOT || sp->kind == SFS_IN_SNAPSHOT ||
           (sp->kind == SFS_RESTORE_ENTRY && import_known(ctx()->imp, sp->vm, sp->snap));
}

/* 1 if snapshot SNAP of VM is a claim: a save of some host publishing it, not yet a snapshot
 * (store_publish). Seen from every host, nothing in it exists until its commit. */
static int claimed(const char *vm, const char *snap)
{
    char rel[PATH_MAX];
    struct stat st;

    return store_snapshot_rel(rel, sizeof(rel), vm, snap, NULL) == 0 &&
           sfs_store_stat(ctx()->store_fd, rel, &st) == 0 && store_claimed(&st);
}

/* Classifies PATH and checks that its VM, and an import it goes through, exist. */
static int resolve(const char *path, struct sfs_path *sp)
{
    int rc = classify(path, sp);

    if (!rc && sp->kind != SFS_ROOT && sp->kind != SFS_README && !job_vm_exists(ctx()->job, sp->vm))
        rc = -ENOENT;
    if (!rc && sp->snap[0] && claimed(sp->vm, sp->snap))
        rc = -ENOENT;
    if (!rc && sp->kind == SFS_IN_SNAPSHOT && sp->via_restore &&
        !import_known(ctx()->imp, sp->vm, sp->snap))
        rc = -ENOENT;
    return rc;
}

/* 1 if NAME is one a manifest can name: manifest.json, main, channel-K, channel-K.idx. */
static int snapshot_file_name(const char *name)
{
    return strcmp(name, MANIFEST_NAME) == 0 || cp_file_name_valid(name);
}

/* The path of SP inside its snapshot (SFS_IN_SNAPSHOT only): "main", "sub/x". */
static const char *snapshot_member(const struct sfs_path *sp)
{
    return sp->rel + sp->member;
}

/* 1 if SP is the manifest of a snapshot. */
static int is_manifest(const struct sfs_path *sp)
{
    return sp->kind == SFS_IN_SNAPSHOT && strcmp(snapshot_member(sp), MANIFEST_NAME) == 0;
}

/* 1 while a restore or an import's verification reads the snapshot and SP is the snapshot or a
 * file that they read. Other files may come and go: restores ignore them, and copy tools bring
 * them along (rsync's temporary names, whatever else was in the directory). */
static int snapshot_busy(const struct sfs_path *sp)
{
    const char *name = snapshot_member(sp);

    if (sp->kind == SFS_IN_SNAPSHOT && (strchr(name, '/') || !snapshot_file_name(name)))
        return 0;
    return job_snapshot_busy(ctx()->job, sp->vm, sp->snap) ||
           import_busy(ctx()->imp, sp->vm, sp->snap);
}

/* ---- attributes and listing ---- */

#define ATTR_TIMEOUT_S   1.0
#define SPLICE_MAX_WRITE ((1u << 20) - 4096)

/* Snapshots are carried with tar's 10 KiB records and cp's 128 KiB ones at the disk's speed.
 * Where the kernel passes the store's files through (sfs_pt.h: root, Linux 6.9 on), it reads and
 * writes them itself. Elsewhere, and for files it refuses, their pages stay in the kernel's cache
 * and are read ahead, and imports reach savefs in large writes (docs/benchmarks.md). */
static void want_cache(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    /* A published snapshot never changes: the page cache of a file is kept across opens while
     * its mtime and size are unchanged (a snapshot deleted and made again under the same name
     * has another mtime), rather than asked for the attributes at every read(), which made
     * each of tar's records a round trip. */
    cfg->auto_cache = 1;
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
    /* Imports: the kernel gathers small writes into pages and sends them up to max_write at
     * once. Every dirty page reaches savefs before the close's flush, so an import's last
     * release still sees the whole file. */
    if (conn->capable & FUSE_CAP_WRITEBACK_CACHE)
        conn->want |= FUSE_CAP_WRITEBACK_CACHE;
    /* Reads of a store file (sfs_read_buf) go from its descriptor to the kernel by splice(),
     * without a copy through savefs's memory. */
    if (conn->capable & FUSE_CAP_SPLICE_WRITE)
        conn->want |= FUSE_CAP_SPLICE_WRITE;
    /* ... spliced from /dev/fuse into the store's files (sfs_write_buf): libfuse splices a
     * request only into a pipe that holds the largest (a write of max_write and a page of
     * headers), and without CAP_SYS_RESOURCE a pipe holds at most pipe-max-size, 1 MiB by
     * default, where libfuse's max_write is 1 MiB itself. */
    if (conn->max_write > SPLICE_MAX_WRITE)
        conn->max_write = SPLICE_MAX_WRITE;
    /* ... without a request for security.capability before each of their write()s; or
     * passed through, without the writeback cache, which the kernel refuses beside it. */
    sfs_io_want(conn);
}

static void *sfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    /* Names appear and vanish with VMs and jobs: never let the kernel answer a lookup from its
     * cache. */
    cfg->entry_timeout = 0;
    cfg->negative_timeout = 0;
    /* Attributes may be cached a little: savefs's own entries have fixed ones (status and save
     * are read with direct_io, whatever their size says), a published snapshot's never change,
     * and every lookup brings fresh ones. With 0, each write() of an import asked for the
     * attributes first (the writeback cache's size and mode check). */
    cfg->attr_timeout = ATTR_TIMEOUT_S;
    /* ... but every open of a file checks its mtime and size, so that no page of a snapshot
     * deleted and made again under the same name is served from the cache. */
    cfg->ac_attr_timeout_set = 1;
    cfg->ac_attr_timeout = 0;
    want_cache(conn, cfg);
    /* An unlinked open file stays readable through its descriptor: no .fuse_hidden renames. */
    cfg->hard_remove = 1;
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
    st->st_atime = st->st_mtime = st->st_ctime = ctx()->mounted;
}

/* With -o allow_other, other users may look; only the owner (or root) acts. The kernel checks
 * modes too (default_permissions): this is the rule even where a mode was widened. */
static int caller_acts(void)
{
    uid_t uid = fuse_get_context()->uid;

    return uid == 0 || uid == ctx()->owner;
}

/* An open file: a store file (FD) or a text rendered at open (status, save's outcome), the
 * save file opened for writing (WORDS, no FD, no text), or a reader of progress (FOLLOW). */
struct sfs_file {
    int fd;
    struct follow *follow;
    int writer; /* opened for writing: the import is told at release */
    char *text;
    size_t len;
    struct words_input *words; /* save's words gathered until a newline or the close */
    char vm[SNAPSHOT_NAME_MAX + 1];
    char snap[NAME_MAX + 1];
    int manifest; /* a snapshot's manifest, opened for writing: checked at close */
    int backing;  /* the kernel reads and writes FD itself (sfs_pt.h): its id, else 0 */
};

static struct sfs_file *file_of(const struct fuse_file_info *fi)
{
    return fi ? (struct sfs_file *)(uintptr_t)fi->fh : NULL;
}

static int sfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    struct sfs_file *f = file_of(fi);
    struct sfs_path sp;
    int rc;

    if (f && f->fd >= 0)
        return fstat(f->fd, st) < 0 ? -errno : 0;
    if ((rc = resolve(path, &sp)))
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
    case SFS_PROGRESS:
        fill_virtual(st, S_IFREG | 0400);
        return 0;
    case SFS_README:
        fill_virtual(st, S_IFREG | 0444);
        st->st_size = (off_t)strlen(sfs_readme);
        return 0;
    case SFS_SNAPSHOTS:
        /* A running VM that was never saved has no directory in the store yet. */
        rc = sfs_store_stat(ctx()->store_fd, sp.rel, st);
        if (rc == -ENOENT)
            fill_virtual(st, S_IFDIR | 0700);
        return rc == -ENOENT ? 0 : rc;
    default:
        return in_store(&sp) ? sfs_store_stat(ctx()->store_fd, sp.rel, st) : -ENOENT;
    }
}

struct fill_ctx {
    void *buf;
    fuse_fill_dir_t filler;
    const char *vm; /* listing VM/snapshots: its claims are left out */
};

static void fill_one(void *arg, const char *name)
{
    struct fill_ctx *fc = arg;

    if (!fc->vm || !claimed(fc->vm, name))
        fc->filler(fc->buf, name, NULL, 0, 0);
}

/* NAMES but SKIP (if not NULL). */
static int list_names(char **names, const char *skip, void *buf, fuse_fill_dir_t filler)
{
    if (!names)
        return -ENOMEM;
    for (char **n = names; *n; n++)
        if (!skip || strcmp(*n, skip) != 0)
            filler(buf, *n, NULL, 0, 0);
    return 0;
}

static int sfs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    static const char *const vm_entries[] = {"save", "status", "progress", "restore", "snapshots"};
    struct fill_ctx fc = {buf, filler, NULL};
    struct sfs_path sp;
    char **names;
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
        filler(buf, SFS_README_NAME, NULL, 0, 0);
        names = job_vm_list(ctx()->job);
        /* The README takes the place of a VM of that name (a QEMU may call its socket
         * README.qmp; its directory cannot be reached through the mount). */
        rc = list_names(names, SFS_README_NAME, buf, filler);
        job_names_free(names);
        return rc;
    case SFS_VM:
        for (size_t i = 0; i < sizeof(vm_entries) / sizeof(vm_entries[0]); i++)
            filler(buf, vm_entries[i], NULL, 0, 0);
        return 0;
    case SFS_RESTORE:
        names = import_names(ctx()->imp, sp.vm);
        rc = list_names(names, NULL, buf, filler);
        job_names_free(names);
        return rc;
    case SFS_SNAPSHOTS:
        fc.vm = sp.vm;
        rc = sfs_store_list(ctx()->store_fd, sp.rel, fill_one, &fc);
        return rc == -ENOENT ? 0 : rc;
    default:
        return in_store(&sp) ? sfs_store_list(ctx()->store_fd, sp.rel, fill_one, &fc) : -ENOTDIR;
    }
}

/* ---- opening, reading, writing ---- */

static int new_file(struct fuse_file_info *fi, int fd, char *text, const struct sfs_path *sp)
{
    struct sfs_file *f = calloc(1, sizeof(*f));

    if (!f) {
        if (fd >= 0)
            close(fd);
        free(text);
        return -ENOMEM;
    }
    f->fd = fd;
    f->text = text;
    f->len = text ? strlen(text) : 0;
    snprintf(f->vm, sizeof(f->vm), "%s", sp->vm);
    snprintf(f->snap, sizeof(f->snap), "%s", sp->snap);
    fi->fh = (uint64_t)(uintptr_t)f;
    return 0;
}

static int open_words(struct fuse_file_info *fi, const struct sfs_path *sp)
{
    struct words_input *words = calloc(1, sizeof(*words));
    int rc = words ? new_file(fi, -1, NULL, sp) : -ENOMEM;

    if (rc)
        free(words);
    else
        file_of(fi)->words = words;
    return rc;
}

static int open_text(struct fuse_file_info *fi, char *text, const struct sfs_path *sp)
{
    if (!text)
        return -ENOMEM;
    /* The size is known only now: read until EOF rather than up to st_size. */
    fi->direct_io = 1;
    return new_file(fi, -1, text, sp);
}

/* Reading follows VM's job (follow.h): the size is 0, and each read returns what is there. */
static int open_progress(struct fuse_file_info *fi, const struct sfs_path *sp)
{
    struct follow *follow;
    int rc = follow_open(ctx()->job, ctx()->imp, sp->vm, &follow);

    if (rc)
        return rc;
    fi->direct_io = 1;
    /* A line is ready when it is: the kernel must not read ahead or keep pages of it. */
    fi->nonseekable = 1;
    if ((rc = new_file(fi, -1, NULL, sp)))
        follow_close(follow);
    else
        file_of(fi)->follow = follow;
    return rc;
}

/* The flags of an open that reach the store: no O_DIRECT (the store's alignment is not the
 * caller's), no O_NOCTTY or O_LARGEFILE noise. A writer's file is also read: with the writeback
 * cache the kernel reads the rest of a page it writes part of. Nor O_APPEND: the kernel places
 * appends itself, and pwrite() at its offset must land there. */
static int store_flags(int flags)
{
    int acc = (flags & O_ACCMODE) == O_RDONLY ? O_RDONLY : O_RDWR;

    return acc | (flags & (O_TRUNC | O_CREAT | O_EXCL | O_SYNC | O_DSYNC));
}

/* Opens a regular file of a snapshot; a writer is counted for the import. */
static int open_store(struct fuse_file_info *fi, const struct sfs_path *sp, mode_t mode)
{
    int wr = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_CREAT));
    struct stat st;
    int fd, rc;

    if (sp->kind != SFS_IN_SNAPSHOT)
        return sp->kind == SFS_SNAPSHOT || sp->kind == SFS_RESTORE_ENTRY ? -EISDIR : -EPERM;
    if (wr && !caller_acts())
        return -EACCES;
    if (wr && snapshot_busy(sp))
        return -EBUSY;
    /* A snapshot refused for naming another VM: cp fails at once for every later file. */
    if (wr && import_refused(ctx()->imp, sp->vm, sp->snap))
        return -EXDEV;
    fd = sfs_store_open(ctx()->store_fd, sp->rel, store_flags(fi->flags), mode);
    if (fd < 0)
        return fd;
    rc = fstat(fd, &st) < 0 ? -errno : S_ISDIR(st.st_mode) ? -EISDIR : 0;
    if (!rc && !S_ISREG(st.st_mode))
        rc = -EPERM;
    if (rc) {
        close(fd);
        return rc;
    }
    if ((rc = new_file(fi, fd, NULL, sp)))
        return rc;
    if (wr) {
        file_of(fi)->writer = 1;
        import_writer_open(ctx()->imp, sp->vm, sp->snap);
    }
    file_of(fi)->manifest = wr && is_manifest(sp);
    /* Every open of a file passes through, or none: the kernel fails (EIO) one that does not
     * beside one that does. An O_DIRECT open's reads and writes still come to savefs, which
     * does them without O_DIRECT (the store's alignment is not the caller's). */
    file_of(fi)->backing = sfs_pt_open(fd, fi->fh);
    if (file_of(fi)->backing && (fi->flags & O_DIRECT))
        fi->direct_io = 1;
    return 0;
}

/* VM's status with its imports, as the JSON text NAME/status shows; NULL without memory. */
static char *status_text(const char *vm)
{
    struct job_status *st = job_status_new(ctx()->job, vm);
    char *text = st && !import_status_add(ctx()->imp, st) ? job_status_json(st) : NULL;

    job_status_free(st);
    return text;
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
            return open_words(fi, &sp);
        }
        return open_text(fi, job_last_save_text(ctx()->job, sp.vm), &sp);
    case SFS_README:
        return wr ? -EACCES : open_text(fi, strdup(sfs_readme), &sp);
    case SFS_PROGRESS:
        return wr ? -EACCES : open_progress(fi, &sp);
    case SFS_STATUS:
        if (wr)
            return -EACCES;
        return open_text(fi, status_text(sp.vm), &sp);
    default:
        return in_store(&sp) ? open_store(fi, &sp, 0) : -EISDIR;
    }
}

static int sfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi);

/* RC (ENOENT) of a name that savefs does not have: EPERM instead where its directory exists, for
 * savefs's own directories hold only what savefs puts there (`touch NAME/x`). */
static int not_creatable(const char *path, int rc)
{
    const char *slash = strrchr(path, '/');
    char parent[PATH_MAX];
    struct stat st;

    if (rc != -ENOENT || !slash)
        return rc;
    snprintf(parent, sizeof(parent), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    return sfs_getattr(parent, &st, NULL) == 0 && S_ISDIR(st.st_mode) ? -EPERM : rc;
}

static int sfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    struct sfs_path sp;
    int rc = resolve(path, &sp);

    if (rc)
        return not_creatable(path, rc);
    /* Only regular files, and only inside a snapshot: snapshots/ holds directories. */
    if (!S_ISREG(mode) || sp.kind != SFS_IN_SNAPSHOT)
        return -EPERM;
    fi->flags |= O_CREAT;
    return open_store(fi, &sp, mode);
}

static int sfs_mknod(const char *path, mode_t mode, dev_t dev)
{
    struct fuse_file_info fi = {.flags = O_WRONLY | O_CREAT | O_EXCL};
    int rc;

    (void)dev;
    /* Only regular files: no devices, FIFOs or sockets in a snapshot. */
    if (!S_ISREG(mode))
        return -EPERM;
    rc = sfs_create(path, mode, &fi);
    if (!rc) {
        struct sfs_file *f = file_of(&fi);
        close(f->fd);
        sfs_pt_release(f->backing);
        import_writer_close(ctx()->imp, f->vm, f->snap);
        free(f);
    }
    return rc;
}

/* A reader of progress waits for its next line in this worker: it stops waiting when the reader
 * is interrupted (Ctrl-C, a kill) or the mount goes away (an unmount, SIGTERM). */
static int reader_gone(void)
{
    return fuse_interrupted() || fuse_session_exited(fuse_get_session(fuse_get_context()->fuse));
}

/* Up to SIZE bytes of FOLLOW's lines into B, waiting for the next line. */
static int read_progress(struct follow *follow, struct fuse_buf *b, size_t size)
{
    ssize_t n;

    if (!(b->mem = malloc(size ? size : 1)))
        return -ENOMEM;
    n = follow_read(follow, b->mem, size, reader_gone);
    if (n < 0) {
        free(b->mem);
        return (int)n;
    }
    b->size = (size_t)n;
    return 0;
}

static int sfs_read_buf(const char *path, struct fuse_bufvec **bufp, size_t size, off_t off,
                        struct fuse_file_info *fi)
{
    struct sfs_file *f = file_of(fi);
    struct fuse_bufvec *bv;
    size_t n;
    int rc;

    (void)path;
    if (!f || (f->fd < 0 && !f->text && !f->follow))
        return -EBADF;
    bv = malloc(sizeof(*bv));
    if (!bv)
        return -ENOMEM;
    *bv = FUSE_BUFVEC_INIT(size);
    if (f->follow) {
        rc = read_progress(f->follow, &bv->buf[0], size);
        if (rc) {
            free(bv);
            return rc;
        }
    } else if (f->fd >= 0) {
        /* Straight from the store's file: libfuse reads (or splices) it into the reply. */
        bv->buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
        bv->buf[0].fd = f->fd;
        bv->buf[0].pos = off;
    } else {
        n = (size_t)off >= f->len ? 0 : f->len - (size_t)off < size ? f->len - (size_t)off : size;
        bv->buf[0].size = n;
        bv->buf[0].mem = malloc(n ? n : 1);
        if (!bv->buf[0].mem) {
            free(bv);
            return -ENOMEM;
        }
        memcpy(bv->buf[0].mem, f->text + (n ? off : 0), n);
    }
    *bufp = bv;
    return 0;
}

/* Runs the save of F's complete words. The kernel serializes the write()s of one file. */
static int save_words(struct sfs_file *f)
{
    int rc = job_save(ctx()->job, f->vm, f->words->buf, f->words->ready, fuse_interrupted);

    words_input_consume(f->words);
    return rc;
}

/* Writes of an import come spliced from /dev/fuse (FUSE_CAP_SPLICE_READ, on wherever write_buf
 * is given): libfuse splices them on from its pipe into the store's file, whose page cache takes
 * the only copy of the bytes in savefs. The words of a save are copied out as ever. */
static int sfs_write_buf(const char *path, struct fuse_bufvec *buf, off_t off,
                         struct fuse_file_info *fi)
{
    struct sfs_file *f = file_of(fi);
    size_t size = fuse_buf_size(buf);
    struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
    ssize_t n;
    int rc;

    (void)path;
    if (!f)
        return -EBADF;
    if (f->words) {
        if (!caller_acts())
            return -EACCES;
        if (!(dst.buf[0].mem = malloc(size ? size : 1)))
            return -ENOMEM;
        n = fuse_buf_copy(&dst, buf, 0);
        /* A save starts on complete words only: inside the write() that brings the newline,
         * whose errno is the save's (so `echo 4 > save` blocks until the snapshot is durable). */
        rc = n < 0                                                  ? (int)n
             : words_input_add(f->words, dst.buf[0].mem, (size_t)n) ? save_words(f)
                                                                    : 0;
        free(dst.buf[0].mem);
        return rc ? rc : (int)n;
    }
    /* A store file: its writer was checked at open; the kernel's writeback may send its pages
     * from a thread of its own. */
    if (f->fd < 0)
        return -EBADF;
    dst.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
    dst.buf[0].fd = f->fd;
    dst.buf[0].pos = off;
    /* fuse_buf_copy: the bytes copied or a negative errno */
    return (int)fuse_buf_copy(&dst, buf, 0);
}

static int sfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    struct sfs_file *f = file_of(fi);
    struct sfs_path sp;
    int rc;

    if (f && f->fd >= 0)
        return ftruncate(f->fd, size) < 0 ? -errno : 0;
    if ((rc = resolve(path, &sp)))
        return rc;
    /* `echo 4 > save` opens with O_TRUNC: that is not an error, and not a save either. */
    if (sp.kind == SFS_SAVE && size == 0)
        return 0;
    if (sp.kind != SFS_IN_SNAPSHOT)
        return sp.kind == SFS_SAVE || sp.kind == SFS_STATUS || sp.kind == SFS_PROGRESS ? -EINVAL
                                                                                       : -EPERM;
    if (snapshot_busy(&sp))
        return -EBUSY;
    rc = sfs_store_truncate(ctx()->store_fd, sp.rel, size);
    if (!rc)
        import_changed(ctx()->imp, sp.vm, sp.snap);
    return rc;
}

/* 1 if task TID closes its files because a signal killed it: it is exiting (PF_EXITING) and the
 * exit code it set before closing them (/proc/TID/stat's 52nd field) is a signal's. */
static int flusher_killed(pid_t tid)
{
    char path[64], buf[1024], *p, *save = NULL;
    unsigned long flags = 0;
    int code = 0, field = 3, fd;
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0 || !(buf[n] = '\0', p = strrchr(buf, ')')))
        return 0;
    /* After the command's ')', field 3 (the state) on, space-separated; strtok_r, as FUSE's
     * worker threads may flush at once. */
    for (char *tok = strtok_r(p + 1, " \n", &save); tok;
         tok = strtok_r(NULL, " \n", &save), field++) {
        if (field == 9)
            flags = strtoul(tok, NULL, 10);
        else if (field == 52)
            code = atoi(tok);
    }
    return (flags & 0x4 /* PF_EXITING */) && (code & 0x7f) != 0;
}

/* Words without a newline are complete at close: their save runs in the flush of the close(),
 * which gets its errno (release cannot report one), and Ctrl-C cancels it there. A writer killed
 * mid-words closes in its exit: the kernel interrupts that flush, but the interrupt may come after
 * the flush is being served, so the flusher's exit code tells too; the save is cancelled (the VM
 * runs on as before). */
static int flush_words(struct sfs_file *f)
{
    if (!words_input_close(f->words))
        return 0;
    if (fuse_interrupted() || flusher_killed(fuse_get_context()->pid)) {
        words_input_consume(f->words);
        return -EINTR;
    }
    return save_words(f);
}

/* A failed close of a store file (NFS reports write errors there) reaches the writer. A manifest
 * that names another VM fails here: close is where cp and tar see it, the first moment its
 * bytes are all there (cp may copy it before or after the chunk files). */
static int sfs_flush(const char *path, struct fuse_file_info *fi)
{
    struct sfs_file *f = file_of(fi);
    char rel[PATH_MAX];
    int fd, rc;

    (void)path;
    if (f && f->words)
        return flush_words(f);
    if (!f || f->fd < 0 || !f->writer)
        return 0;
    fd = dup(f->fd);
    if (fd < 0)
        return -errno;
    rc = close(fd) < 0 ? -errno : 0;
    if (!rc && f->manifest) {
        store_snapshot_rel(rel, sizeof(rel), f->vm, f->snap, MANIFEST_NAME);
        rc = import_manifest_written(ctx()->imp, f->vm, f->snap, rel);
    }
    return rc;
}

static int sfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    struct sfs_file *f = file_of(fi);

    (void)path;
    if (!f || f->fd < 0)
        return 0;
    return (datasync ? fdatasync(f->fd) : fsync(f->fd)) < 0 ? -errno : 0;
}

static int sfs_release(const char *path, struct fuse_file_info *fi)
{
    struct sfs_file *f = file_of(fi);

    (void)path;
    if (!f)
        return 0;
    if (f->fd >= 0)
        close(f->fd);
    sfs_pt_release(f->backing);
    if (f->writer)
        import_writer_close(ctx()->imp, f->vm, f->snap);
    follow_close(f->follow);
    free(f->text);
    free(f->words);
    free(f);
    return 0;
}

/* ---- names ---- */

/* A rename inside the store: a snapshot to another snapshot name, or a file or directory inside
 * snapshots of the same VM. */
static int rename_in_store(const struct sfs_path *src, const struct sfs_path *dst,
                           unsigned int flags)
{
    int dir = src->kind != SFS_IN_SNAPSHOT;
    int rc;

    if (strcmp(src->vm, dst->vm) != 0)
        return -EXDEV;
    if (dir != (dst->kind != SFS_IN_SNAPSHOT))
        return -EPERM; /* a file is not a snapshot, a snapshot does not go inside another */
    if (dir && !store_valid_name(dst->snap))
        return -EINVAL;
    /* A running VM's layer names its base by path: renamed, it would be gone for its next start. */
    if (snapshot_busy(src) || snapshot_busy(dst) ||
        job_snapshot_is_base(ctx()->job, src->vm, src->snap))
        return -EBUSY;
    /* rsync writes a temporary file and renames it to manifest.json. */
    if (is_manifest(dst) &&
        (rc = import_manifest_written(ctx()->imp, dst->vm, dst->snap, src->rel)))
        return rc;
    /* A snapshot never replaces another. */
    rc = sfs_store_rename(ctx()->store_fd, src->rel, dst->rel, dir ? RENAME_NOREPLACE : flags);
    if (rc)
        return rc;
    if (dir)
        import_forget(ctx()->imp, src->vm, src->snap);
    import_changed(ctx()->imp, src->vm, src->snap);
    if (strcmp(src->snap, dst->snap) != 0)
        import_changed(ctx()->imp, dst->vm, dst->snap);
    return 0;
}

static int sfs_rename(const char *from, const char *to, unsigned int flags)
{
    struct sfs_path src, dst;
    int rc;

    if (!caller_acts())
        return -EACCES;
    if ((rc = resolve(from, &src)))
        return rc;
    rc = classify(to, &dst);
    if (rc)
        return rc;
    if (flags & ~RENAME_NOREPLACE)
        return -EINVAL;
    if (dst.kind == SFS_RESTORE_ENTRY && src.kind == SFS_SNAPSHOT) {
        if (strcmp(src.vm, dst.vm) != 0)
            return -EXDEV;
        return job_restore(ctx()->job, src.vm, src.snap, fuse_interrupted);
    }
    if (!in_store(&src))
        return -EPERM;
    if (dst.via_restore && dst.kind == SFS_IN_SNAPSHOT &&
        !import_known(ctx()->imp, dst.vm, dst.snap))
        return -ENOENT;
    return in_store(&dst) ? rename_in_store(&src, &dst, flags) : -EPERM;
}

/* Makes STORE/VM/snapshots for a VM that only runs so far. */
static int ensure_snapshots_dir(const struct sfs_path *sp)
{
    struct stat st;
    int rc;

    if (sfs_store_stat(ctx()->store_fd, sp->rel, &st) == 0)
        return 0;
    rc = job_vm_create(ctx()->job, sp->vm);
    return rc == -EEXIST ? 0 : rc;
}

/* mkdir NAME/snapshots/S or NAME/restore/S: a new snapshot directory; the latter is an import. */
static int make_snapshot_dir(const struct sfs_path *sp, mode_t mode)
{
    struct sfs_path parent = *sp;
    int rc;

    if (!store_valid_name(sp->snap))
        return -EINVAL;
    store_snapshot_rel(parent.rel, sizeof(parent.rel), sp->vm, NULL, NULL);
    if ((rc = ensure_snapshots_dir(&parent)) ||
        (rc = sfs_store_mkdir(ctx()->store_fd, sp->rel, mode)))
        return rc;
    if (sp->kind == SFS_RESTORE_ENTRY)
        return import_begin(ctx()->imp, sp->vm, sp->snap);
    /* A new directory: what was refused in one of that name removed behind savefs is over. */
    import_forget(ctx()->imp, sp->vm, sp->snap);
    return 0;
}

static int sfs_mkdir(const char *path, mode_t mode)
{
    struct sfs_path sp;
    int rc = classify(path, &sp);

    if (!caller_acts())
        return -EACCES;
    if (rc)
        return rc == -ENOENT ? -EINVAL : rc;
    if (sp.kind == SFS_README)
        return -EEXIST;
    if (sp.kind == SFS_VM)
        return job_vm_create(ctx()->job, sp.vm);
    if (!job_vm_exists(ctx()->job, sp.vm))
        return -ENOENT;
    switch (sp.kind) {
    case SFS_SNAPSHOT:
    case SFS_RESTORE_ENTRY:
        return make_snapshot_dir(&sp, mode);
    case SFS_IN_SNAPSHOT:
        if ((rc = resolve(path, &sp)))
            return rc;
        return sfs_store_mkdir(ctx()->store_fd, sp.rel, mode);
    default:
        return -EPERM;
    }
}

static void count_one(void *arg, const char *name)
{
    (void)name;
    (*(int *)arg)++;
}

/* `rm -rf NAME` empties restore/ and snapshots/ and then removes them: they stay as long as NAME
 * does, and the removal of NAME itself (job_vm_remove) takes the store's directory with it. */
static int control_dir_empty(const struct sfs_path *sp)
{
    char **names;
    int n = 0, rc = 0;

    if (sp->kind == SFS_SNAPSHOTS) {
        rc = sfs_store_list(ctx()->store_fd, sp->rel, count_one, &n);
    } else {
        names = import_names(ctx()->imp, sp->vm);
        rc = names ? 0 : -ENOMEM;
        for (char **p = names; p && *p; p++)
            n++;
        job_names_free(names);
    }
    if (rc == -ENOENT)
        rc = 0;
    return rc ? rc : n ? -ENOTEMPTY : 0;
}

static int sfs_rmdir(const char *path)
{
    struct sfs_path sp;
    int rc = resolve(path, &sp);

    if (!caller_acts())
        return -EACCES;
    if (rc)
        return rc;
    if (sp.kind == SFS_VM)
        return job_vm_remove(ctx()->job, sp.vm);
    if (sp.kind == SFS_RESTORE || sp.kind == SFS_SNAPSHOTS)
        return control_dir_empty(&sp);
    if (!in_store(&sp))
        return -EPERM;
    if (snapshot_busy(&sp) || job_snapshot_is_base(ctx()->job, sp.vm, sp.snap))
        return -EBUSY;
    rc = sfs_store_rmdir(ctx()->store_fd, sp.rel);
    if (!rc && sp.kind != SFS_IN_SNAPSHOT)
        import_forget(ctx()->imp, sp.vm, sp.snap);
    return rc;
}

static int sfs_unlink(const char *path)
{
    struct sfs_path sp;
    int rc = resolve(path, &sp);

    if (!caller_acts())
        return -EACCES;
    if (rc)
        return rc;
    /* save, status and progress are there as long as NAME is: `rm -rf NAME` passes over them. */
    if (sp.kind == SFS_SAVE || sp.kind == SFS_STATUS || sp.kind == SFS_PROGRESS)
        return 0;
    if (sp.kind != SFS_IN_SNAPSHOT)
        return -EPERM;
    /* Any file of a snapshot whose images a running VM stands on: `rm -r` deletes nothing. */
    if (snapshot_busy(&sp) || job_snapshot_is_base(ctx()->job, sp.vm, sp.snap))
        return -EBUSY;
    rc = sfs_store_unlink(ctx()->store_fd, sp.rel);
    if (!rc)
        import_changed(ctx()->imp, sp.vm, sp.snap);
    return rc;
}

/* Symlinks and hard links could make the store reach outside itself, or one file two. */
static int sfs_symlink(const char *target, const char *path)
{
    (void)target;
    (void)path;
    return -EPERM;
}

static int sfs_link(const char *from, const char *to)
{
    (void)from;
    (void)to;
    return -EPERM;
}

/* ---- metadata ---- */

static int sfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    struct sfs_file *f = file_of(fi);
    struct sfs_path sp;
    int rc;

    if (f && f->fd >= 0)
        return fchmod(f->fd, mode & 0777) < 0 ? -errno : 0;
    if ((rc = resolve(path, &sp)))
        return rc;
    return in_store(&sp) ? sfs_store_chmod(ctx()->store_fd, sp.rel, mode) : -EPERM;
}

static int sfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    struct sfs_file *f = file_of(fi);
    struct sfs_path sp;
    int rc;

    /* Only root gives files away, as on any filesystem. */
    if (fuse_get_context()->uid != 0)
        return -EPERM;
    if (f && f->fd >= 0)
        return fchown(f->fd, uid, gid) < 0 ? -errno : 0;
    if ((rc = resolve(path, &sp)))
        return rc;
    return in_store(&sp) ? sfs_store_chown(ctx()->store_fd, sp.rel, uid, gid) : -EPERM;
}

static int sfs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    struct sfs_file *f = file_of(fi);
    struct sfs_path sp;
    int rc;

    if (f && f->fd >= 0)
        return futimens(f->fd, tv) < 0 ? -errno : 0;
    if ((rc = resolve(path, &sp)))
        return rc;
    if (sp.kind == SFS_SNAPSHOTS || in_store(&sp))
        return sfs_store_utimens(ctx()->store_fd, sp.rel, tv);
    /* With the writeback cache the kernel keeps a written file's times and sends them at close:
     * save's stay what they are, and that close succeeds. */
    return sp.kind == SFS_SAVE ? 0 : -EPERM;
}

static int sfs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
    struct sfs_path sp;
    int rc;

    (void)fi;
    if ((rc = resolve(path, &sp)))
        return rc;
    return in_store(&sp) ? sfs_store_fsync(ctx()->store_fd, sp.rel, datasync) : 0;
}

/* ---- extended attributes: user.* pass through; user.savefs.* are the manifest's facts ---- */

static int is_fact(const char *name)
{
    /* The user.savefs.* the user sets: one lets a restore over changed disks go ahead, the other
     * says how a snapshot or a VM restores. */
    return strncmp(name, IMPORT_XATTR_PREFIX, strlen(IMPORT_XATTR_PREFIX)) == 0 &&
           strcmp(name, MANIFEST_FORCE_XATTR) != 0 && strcmp(name, MANIFEST_RESTORE_XATTR) != 0;
}

/* The value of fact NAME of the snapshot SP into VALUE (SIZE 0: only its length). */
static int get_fact(const struct sfs_path *sp, const char *name, char *value, size_t size)
{
    char *v;
    size_t len;
    int rc = import_fact(ctx()->imp, sp->vm, sp->snap, name, &v);

    if (rc)
        return rc;
    len = strlen(v);
    rc = size == 0 ? (int)len : len > size ? -ERANGE : (int)len;
    if (size && len <= size)
        memcpy(value, v, len);
    free(v);
    return rc;
}

static int sfs_getxattr(const char *path, const char *name, char *value, size_t size)
{
    struct sfs_path sp;
    int rc;

    if ((rc = resolve(path, &sp)))
        return rc;
    if (!in_store(&sp))
        return -ENODATA;
    if (is_fact(name))
        return sp.kind == SFS_IN_SNAPSHOT ? -ENODATA : get_fact(&sp, name, value, size);
    return sfs_store_getxattr(ctx()->store_fd, sp.rel, name, value, size);
}

/* The store's names without user.savefs.* (a copy from another mount may have put some there
 * while such writes were ignored elsewhere), then the facts for a snapshot directory. */
static int list_with_facts(const struct sfs_path *sp, char *list, size_t size)
{
    char stored[65536], *p, *facts = NULL;
    int n = sfs_store_listxattr(ctx()->store_fd, sp->rel, stored, sizeof(stored));
    size_t len = 0, facts_len = 0;
    int rc = 0;

    if (n < 0)
        return n;
    if (sp->kind != SFS_IN_SNAPSHOT &&
        (rc = import_fact_names(ctx()->imp, sp->vm, sp->snap, &facts, &facts_len)))
        return rc;
    for (p = stored; p < stored + n; p += strlen(p) + 1) {
        size_t l = strlen(p) + 1;
        if (is_fact(p))
            continue;
        if (size && len + l <= size)
            memcpy(list + len, p, l);
        len += l;
    }
    if (size && len + facts_len <= size)
        memcpy(list + len, facts, facts_len);
    len += facts_len;
    free(facts);
    return size && len > size ? -ERANGE : (int)len;
}

static int sfs_listxattr(const char *path, char *list, size_t size)
{
    struct sfs_path sp;
    int rc;

    if ((rc = resolve(path, &sp)))
        return rc;
    return in_store(&sp) ? list_with_facts(&sp, list, size) : 0;
}

/* Where a change of user attribute NAME on PATH goes: 1 for a store file (SP set), 0 for a fact
 * (computed from the manifest; a copy from another savefs mount writes them, and they are
 * ignored), or a negative errno. */
static int user_xattr_target(const char *path, const char *name, struct sfs_path *sp)
{
    int rc = resolve(path, sp);

    if (rc)
        return rc;
    if (!in_store(sp) || strncmp(name, "user.", 5) != 0)
        return -ENOTSUP;
    return !is_fact(name);
}

static int sfs_setxattr(const char *path, const char *name, const char *value, size_t size,
                        int flags)
{
    struct sfs_path sp;
    int rc = user_xattr_target(path, name, &sp);

    if (rc > 0 && strcmp(name, MANIFEST_RESTORE_XATTR) == 0 &&
        job_restore_mode_parse(value, size) < 0)
        return -EINVAL;
    return rc <= 0 ? rc : sfs_store_setxattr(ctx()->store_fd, sp.rel, name, value, size, flags);
}

static int sfs_removexattr(const char *path, const char *name)
{
    struct sfs_path sp;
    int rc = user_xattr_target(path, name, &sp);

    return rc <= 0 ? rc : sfs_store_removexattr(ctx()->store_fd, sp.rel, name);
}

static int sfs_statfs(const char *path, struct statvfs *st)
{
    (void)path;
    return fstatvfs(ctx()->store_fd, st) < 0 ? -errno : 0;
}

/* The kernel asks for security.capability before the first write() of a file (to drop it, as a
 * write must; before every write() where FUSE_HANDLE_KILLPRIV_V2 is off, sfs_io.h): answered at
 * once. Nothing written through the mount sets a security.* attribute (setxattr takes user.*
 * only). */
static int sfs_getxattr_of(const char *path, const char *name, char *value, size_t size)
{
    if (strncmp(name, "security.", strlen("security.")) == 0)
        return -ENODATA;
    return sfs_getxattr(path, name, value, size);
}

const struct fuse_operations sfs_ops = {
    .init = sfs_init,
    .getattr = sfs_getattr,
    .readdir = sfs_readdir,
    .open = sfs_open,
    .create = sfs_create,
    .mknod = sfs_mknod,
    .read_buf = sfs_read_buf,
    .write_buf = sfs_write_buf,
    .truncate = sfs_truncate,
    .flush = sfs_flush,
    .fsync = sfs_fsync,
    .release = sfs_release,
    .rename = sfs_rename,
    .mkdir = sfs_mkdir,
    .rmdir = sfs_rmdir,
    .unlink = sfs_unlink,
    .symlink = sfs_symlink,
    .link = sfs_link,
    .chmod = sfs_chmod,
    .chown = sfs_chown,
    .utimens = sfs_utimens,
    .fsyncdir = sfs_fsyncdir,
    .getxattr = sfs_getxattr_of,
    .listxattr = sfs_listxattr,
    .setxattr = sfs_setxattr,
    .removexattr = sfs_removexattr,
    .statfs = sfs_statfs,
};
