/* probe: the store's filesystem tried, once, for each call savefs relies on (probe.h). A store
 * on a network filesystem (docs/fleet.md) lacks some: GlusterFS's FUSE client has no
 * RENAME_NOREPLACE, a volume may turn O_DIRECT away. Scratch names carry the host and the pid:
 * several hosts may probe one shared store at once. */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "preflight.h"
#include "store.h"

#define PROBE_NAME  ".probe"
#define PROBE_XATTR "user.savefs.probe"

struct probe {
    int dir;
    const char *store;
    char file[96];     /* the scratch file: .probe.HOST.PID */
    char renamed[112]; /* its new name */
    char claim[112];   /* a scratch claim, where there is no RENAME_NOREPLACE */
    char *err;
    size_t errlen;
};

int probe_failed(const char *store, const char *step, int e, char *err, size_t errlen)
{
    int denied = e == EACCES || e == EPERM || e == EROFS || e == ENOSPC || e == EDQUOT;

    snprintf(err, errlen, "the store %s %s %s: %s", store,
             denied ? "is not writable:" : "is on a filesystem that fails", step, strerror(e));
    return denied ? PREFLIGHT_STORE_NOT_WRITABLE : PREFLIGHT_STORE_REFUSES;
}

/* Something savefs does without: said once, on standard error (the log, under systemd). */
static void note(const struct probe *p, const char *call, int e, const char *meaning)
{
    fprintf(stderr, "savefs: the store %s: %s fails (%s): %s\n", p->store, call, strerror(e),
            meaning);
}

/* What every save does: create, write, fdatasync, close. */
static int probe_write(struct probe *p)
{
    static const char block[4096];
    int fd, rc = 0;

    if ((fd = openat(p->dir, p->file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
        return probe_failed(p->store, "creating a file", errno, p->err, p->errlen);
    if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block))
        rc = probe_failed(p->store, "a write", errno ? errno : EIO, p->err, p->errlen);
    else if (fdatasync(fd) < 0)
        rc = probe_failed(p->store, "fdatasync", errno, p->err, p->errlen);
    if (close(fd) < 0 && !rc)
        rc = probe_failed(p->store, "close", errno, p->err, p->errlen);
    return rc;
}

/* The chunk files are written with O_DIRECT; where it is refused they are written buffered. */
static void probe_direct(struct probe *p)
{
    void *buf = NULL;
    int fd = openat(p->dir, p->file, O_WRONLY | O_DIRECT | O_CLOEXEC), e = 0;

    if (fd < 0 || posix_memalign(&buf, 4096, 4096) != 0)
        e = fd < 0 ? errno : ENOMEM;
    else if (memset(buf, 0, 4096), pwrite(fd, buf, 4096, 0) != 4096)
        e = errno ? errno : EIO;
    free(buf);
    if (fd >= 0)
        close(fd);
    if (e)
        note(p, "O_DIRECT", e,
             "chunk files are written through the page cache (direct-io=on falls back), then "
             "fsynced");
}

/* Every access through the mount resolves beneath the store's descriptor (sfs_store.c). */
static int probe_beneath(struct probe *p)
{
    struct open_how how = {
        .flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, p->dir, p->file, &how, sizeof(how));

    if (fd < 0)
        return probe_failed(p->store,
                            "openat2 with RESOLVE_BENEATH (Linux 5.6; every file of the mount is "
                            "opened so, never following a link out of the store)",
                            errno, p->err, p->errlen);
    close((int)fd);
    return 0;
}

/* user.* attributes: cp -a and rsync -X carry them; savefs stores none in a snapshot. */
static void probe_xattr(struct probe *p)
{
    char path[PATH_MAX];

    if (store_path(path, "%s/%s", p->store, p->file))
        return;
    if (setxattr(path, PROBE_XATTR, "1", 1, 0) < 0)
        note(p, "user extended attributes", errno,
             "user.* attributes of files copied in with cp -a or rsync -X are not kept (savefs "
             "needs none: its user.savefs.* attributes are computed)");
}

/* df of the mount reports the store's filesystem. */
static void probe_statfs(struct probe *p)
{
    struct statfs sf;
    int fd = openat(p->dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0 || fstatfs(fd, &sf) < 0)
        note(p, "statfs", errno, "df of the mount reports nothing");
    if (fd >= 0)
        close(fd);
}

/* POSIX record locks on a file of the store: what a fleet's hosts exclude each other with. */
static void probe_locks(struct probe *p)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    int fd = openat(p->dir, p->file, O_RDWR | O_CLOEXEC);

    if (fd < 0 || fcntl(fd, F_SETLK, &fl) < 0)
        note(p, "POSIX locks (fcntl F_SETLK)", errno,
             "hosts sharing this store cannot exclude each other through it");
    if (fd >= 0)
        close(fd);
}

/* Snapshots are published by a rename that never replaces one of the same name, or, where the
 * filesystem has none (EINVAL), by a claim: a mkdir whose sticky bit stays (store_publish). */
static int probe_publish(struct probe *p)
{
    struct stat st;

    if (renameat2(p->dir, p->file, p->dir, p->renamed, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL)
        return probe_failed(p->store, "renameat2(RENAME_NOREPLACE)", errno, p->err, p->errlen);
    if (mkdirat(p->dir, p->claim, 0700 | S_ISVTX) < 0)
        return probe_failed(p->store, "mkdir", errno, p->err, p->errlen);
    if (fstatat(p->dir, p->claim, &st, AT_SYMLINK_NOFOLLOW) < 0 || !store_claimed(&st))
        return probe_failed(p->store,
                            "renameat2(RENAME_NOREPLACE) and keeps no sticky bit on mkdir: a "
                            "snapshot can be published neither by a rename nor by a claim",
                            EINVAL, p->err, p->errlen);
    fprintf(stderr,
            "savefs: the store %s has no renameat2(RENAME_NOREPLACE): snapshots are published by "
            "claiming their name with mkdir (docs/fleet.md)\n",
            p->store);
    return 0;
}

/* The directory's entries made durable: every publish fsyncs snapshots/. */
static int probe_fsync_dir(struct probe *p)
{
    int fd = openat(p->dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

    if (fd < 0 || fsync(fd) < 0)
        rc = probe_failed(p->store, "fsync of a directory", errno, p->err, p->errlen);
    if (fd >= 0)
        close(fd);
    return rc;
}

int probe_store(int dir, const char *store, char *err, size_t errlen)
{
    struct probe p = {.dir = dir, .store = store, .err = err, .errlen = errlen};
    int rc;

    snprintf(p.file, sizeof(p.file), "%s.%s.%d", PROBE_NAME, store_host(), (int)getpid());
    snprintf(p.renamed, sizeof(p.renamed), "%s.renamed", p.file);
    snprintf(p.claim, sizeof(p.claim), "%s.claim", p.file);
    if (!(rc = probe_write(&p)) && !(rc = probe_beneath(&p))) {
        probe_direct(&p);
        probe_xattr(&p);
        probe_statfs(&p);
        probe_locks(&p);
        if (!(rc = probe_publish(&p)))
            rc = probe_fsync_dir(&p);
    }
    unlinkat(dir, p.file, 0);
    unlinkat(dir, p.renamed, 0);
    unlinkat(dir, p.claim, AT_REMOVEDIR);
    return rc;
}
