/* sfs_store: the store seen through one directory descriptor. The final component is handled
 * by the *at call with its parent opened beneath the store, so a symlink is never followed,
 * not even the last one. */
#include "sfs_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#define RESOLVE_SAFE (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

int sfs_store_open(int store_fd, const char *rel, int flags, mode_t mode)
{
    struct open_how how = {
        .flags = (unsigned long long)(flags | O_CLOEXEC | O_NOFOLLOW),
        .mode = flags & O_CREAT ? mode & 0777 : 0,
        .resolve = RESOLVE_SAFE,
    };
    long fd = syscall(SYS_openat2, store_fd, rel, &how, sizeof(how));

    return fd < 0 ? -errno : (int)fd;
}

/* Opens the parent of REL beneath the store and copies REL's last component into NAME. */
static int open_parent(int store_fd, const char *rel, char *name)
{
    const char *slash = strrchr(rel, '/');
    char parent[PATH_MAX];
    size_t plen = slash ? (size_t)(slash - rel) : 0;

    if (!slash || plen >= sizeof(parent) || strlen(slash + 1) > NAME_MAX || !slash[1])
        return -EINVAL;
    memcpy(parent, rel, plen);
    parent[plen] = '\0';
    strcpy(name, slash + 1);
    return sfs_store_open(store_fd, parent, O_PATH | O_DIRECTORY, 0);
}

int sfs_store_stat(int store_fd, const char *rel, struct stat *st)
{
    char name[NAME_MAX + 1];
    int dir = open_parent(store_fd, rel, name), rc = 0;

    if (dir < 0)
        return dir;
    if (fstatat(dir, name, st, AT_SYMLINK_NOFOLLOW) < 0)
        rc = -errno;
    close(dir);
    return rc;
}

int sfs_store_list(int store_fd, const char *rel, void (*fill)(void *arg, const char *name),
                   void *arg)
{
    int fd = sfs_store_open(store_fd, rel, O_RDONLY | O_DIRECTORY, 0);
    struct dirent *e;
    DIR *d;

    if (fd < 0)
        return fd;
    d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            fill(arg, e->d_name);
    closedir(d);
    return 0;
}

int sfs_store_mkdir(int store_fd, const char *rel, mode_t mode)
{
    char name[NAME_MAX + 1];
    int dir = open_parent(store_fd, rel, name), rc = 0;

    if (dir < 0)
        return dir;
    if (mkdirat(dir, name, mode & 0777) < 0)
        rc = -errno;
    else
        fsync(dir);
    close(dir);
    return rc;
}

static int unlink_in(int store_fd, const char *rel, int flags)
{
    char name[NAME_MAX + 1];
    int dir = open_parent(store_fd, rel, name), rc = 0;

    if (dir < 0)
        return dir;
    if (unlinkat(dir, name, flags) < 0)
        rc = -errno;
    close(dir);
    return rc;
}

int sfs_store_rmdir(int store_fd, const char *rel)
{
    return unlink_in(store_fd, rel, AT_REMOVEDIR);
}

int sfs_store_unlink(int store_fd, const char *rel)
{
    return unlink_in(store_fd, rel, 0);
}

int sfs_store_rename(int store_fd, const char *from, const char *to, unsigned int flags)
{
    char fname[NAME_MAX + 1], tname[NAME_MAX + 1];
    int fdir = open_parent(store_fd, from, fname);
    int tdir = fdir < 0 ? fdir : open_parent(store_fd, to, tname);
    int rc = tdir < 0 ? tdir : 0;

    if (!rc && renameat2(fdir, fname, tdir, tname, flags) < 0)
        rc = -errno;
    if (!rc)
        fsync(tdir);
    if (fdir >= 0)
        close(fdir);
    if (tdir >= 0)
        close(tdir);
    return rc;
}

int sfs_store_chmod(int store_fd, const char *rel, mode_t mode)
{
    char name[NAME_MAX + 1];
    int dir = open_parent(store_fd, rel, name), rc = 0;

    if (dir < 0)
        return dir;
    /* Snapshot files are data: no set-id or sticky bits. */
    if (fchmodat(dir, name, mode & 0777, AT_SYMLINK_NOFOLLOW) < 0)
        rc = -errno;
    close(dir);
    return rc;
}

int sfs_store_chown(int store_fd, const char *rel, uid_t uid, gid_t gid)
{
    char name[NAME_MAX + 1];
    int dir = open_parent(store_fd, rel, name), rc = 0;

    if (dir < 0)
        return dir;
    if (fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        rc = -errno;
    close(dir);
    return rc;
}

int sfs_store_utimens(int store_fd, const char *rel, const struct timespec tv[2])
{
    char name[NAME_MAX + 1];
    int dir = open_parent(store_fd, rel, name), rc = 0;

    if (dir < 0)
        return dir;
    if (utimensat(dir, name, tv, AT_SYMLINK_NOFOLLOW) < 0)
        rc = -errno;
    close(dir);
    return rc;
}

int sfs_store_truncate(int store_fd, const char *rel, off_t size)
{
    int fd = sfs_store_open(store_fd, rel, O_WRONLY | O_NONBLOCK, 0), rc = 0;

    if (fd < 0)
        return fd;
    if (ftruncate(fd, size) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

int sfs_store_fsync(int store_fd, const char *rel, int datasync)
{
    int fd = sfs_store_open(store_fd, rel, O_RDONLY | O_NONBLOCK, 0), rc = 0;

    if (fd < 0)
        return fd;
    if ((datasync ? fdatasync(fd) : fsync(fd)) < 0)
        rc = -errno;
    if (close(fd) < 0 && !rc)
        rc = -errno;
    return rc;
}

/* A descriptor for xattr calls: O_RDONLY works on files and directories alike. */
static int open_for_xattr(int store_fd, const char *rel)
{
    return sfs_store_open(store_fd, rel, O_RDONLY | O_NONBLOCK, 0);
}

int sfs_store_getxattr(int store_fd, const char *rel, const char *name, char *value, size_t size)
{
    int fd = open_for_xattr(store_fd, rel);
    ssize_t n;

    if (fd < 0)
        return fd;
    n = fgetxattr(fd, name, value, size);
    n = n < 0 ? -errno : n;
    close(fd);
    return (int)n;
}

int sfs_store_setxattr(int store_fd, const char *rel, const char *name, const char *value,
                       size_t size, int flags)
{
    int fd = open_for_xattr(store_fd, rel), rc = 0;

    if (fd < 0)
        return fd;
    if (fsetxattr(fd, name, value, size, flags) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

int sfs_store_listxattr(int store_fd, const char *rel, char *list, size_t size)
{
    int fd = open_for_xattr(store_fd, rel);
    ssize_t n;

    if (fd < 0)
        return fd;
    n = flistxattr(fd, list, size);
    n = n < 0 ? -errno : n;
    close(fd);
    return (int)n;
}

int sfs_store_removexattr(int store_fd, const char *rel, const char *name)
{
    int fd = open_for_xattr(store_fd, rel), rc = 0;

    if (fd < 0)
        return fd;
    if (fremovexattr(fd, name) < 0)
        rc = -errno;
    close(fd);
    return rc;
}
