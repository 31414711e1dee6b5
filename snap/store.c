/* store: directory layout and atomic publication. A save writes into a private temporary
 * directory on the same filesystem; only a rename makes it visible, so readers see a snapshot
 * whole or not at all, even after a crash. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int store_valid_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > SNAPSHOT_NAME_MAX || name[0] == '.')
        return 0;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

int store_path(char *path, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(path, PATH_MAX, fmt, ap);
    va_end(ap);
    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

int store_snapshot_rel(char *rel, size_t len, const char *vm, const char *snap, const char *file)
{
    int n = snprintf(rel, len, "%s/" STORE_SNAPSHOTS "%s%s%s%s", vm, snap ? "/" : "",
                     snap ? snap : "", snap && file ? "/" : "", snap && file ? file : "");

    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int store_snapshot_path(char *path, const char *store, const char *vm, const char *snap,
                        const char *file)
{
    char rel[PATH_MAX];
    int rc = store_snapshot_rel(rel, sizeof(rel), vm, snap, file);

    return rc ? rc : store_path(path, "%s/%s", store, rel);
}

int store_vm_path(char *path, const char *store, const char *vm, const char *file)
{
    return file ? store_path(path, "%s/%s/%s", store, vm, file)
                : store_path(path, "%s/%s", store, vm);
}

int store_id_get(const char *store, struct store_id *id, char *err, size_t errlen)
{
    struct stat st;

    if (stat(store, &st) < 0) {
        int rc = -errno;
        snprintf(err, errlen, "stat %s: %s", store, strerror(errno));
        return rc;
    }
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    return 0;
}

int store_check(const char *store, const struct store_id *id, char *err, size_t errlen)
{
    struct stat st;

    if (stat(store, &st) == 0 && st.st_dev == id->dev && st.st_ino == id->ino)
        return 0;
    snprintf(err, errlen,
             "the store %s is no longer the directory savefs mounted (removed or replaced since): "
             "restart savefs on it",
             store);
    return -ESTALE;
}

int store_mkdirs(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    char *p;

    if (store_path(path, "%s", dir))
        return -ENAMETOOLONG;
    for (p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            int rc = -errno;
            snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
            return rc;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    return 0;
}

int store_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && !rc)
        rc = -errno;
    return rc;
}

int store_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int store_write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    size_t len = strlen(text);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (write(fd, text, len) != (ssize_t)len)
        rc = -EIO;
    if (close(fd) < 0 && !rc)
        rc = -errno;
    return rc;
}

int store_vm_create(const char *store, const char *vm, char *err, size_t errlen)
{
    char path[PATH_MAX];
    int rc;

    if ((rc = store_vm_path(path, store, vm, NULL)))
        return rc;
    if (mkdir(path, 0700) < 0) {
        rc = -errno;
        snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
        return rc;
    }
    if ((rc = store_snapshot_path(path, store, vm, NULL, NULL)))
        return rc;
    if (mkdir(path, 0700) < 0) {
        rc = -errno;
        snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
        return rc;
    }
    return store_fsync_dir(store);
}

static int remove_if_exists(const char *path, int (*fn)(const char *))
{
    return fn(path) < 0 && errno != ENOENT ? -errno : 0;
}

int store_vm_remove(const char *store, const char *vm, char *err, size_t errlen)
{
    char snaps[PATH_MAX], tmp[PATH_MAX], record[PATH_MAX], dir[PATH_MAX];
    int rc;

    if (store_snapshot_path(snaps, store, vm, NULL, NULL) ||
        store_vm_path(tmp, store, vm, STORE_TMP) ||
        store_vm_path(record, store, vm, STORE_QEMU_RECORD) || store_vm_path(dir, store, vm, NULL))
        return -ENAMETOOLONG;
    if ((rc = remove_if_exists(snaps, rmdir)) || (rc = remove_if_exists(tmp, rmdir)) ||
        (rc = remove_if_exists(record, unlink)) || (rc = remove_if_exists(dir, rmdir))) {
        snprintf(err, errlen, "remove %s: %s", dir,
                 rc == -ENOTEMPTY || rc == -EEXIST
                     ? "it still holds snapshots or a local definition (local.json)"
                     : strerror(-rc));
        return rc == -EEXIST ? -ENOTEMPTY : rc;
    }
    return 0;
}

static int is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int store_vm_exists(const char *store, const char *vm)
{
    char path[PATH_MAX];

    return store_snapshot_path(path, store, vm, NULL, NULL) == 0 && is_dir(path);
}

int store_snapshot_exists(const char *store, const char *vm, const char *snap)
{
    char path[PATH_MAX];

    return store_snapshot_path(path, store, vm, snap, NULL) == 0 && access(path, F_OK) == 0;
}

int store_default_name(const char *store, const char *vm, char *name, size_t len)
{
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    int i;

    if (!gmtime_r(&now, &tm) || !strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm))
        return -EINVAL;
    snprintf(name, len, "%s", stamp);
    for (i = 2; store_snapshot_exists(store, vm, name); i++)
        snprintf(name, len, "%s-%d", stamp, i);
    return 0;
}

int store_tmp_create(const char *store, const char *vm, const char *snap, char *tmp, char *err,
                     size_t errlen)
{
    char parent[PATH_MAX];
    int rc;

    if ((rc = store_vm_path(parent, store, vm, STORE_TMP)) ||
        (rc = store_path(tmp, "%s/%s.XXXXXX", parent, snap)))
        return rc;
    if (mkdir(parent, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "mkdir %s: %s", parent, strerror(errno));
        return rc;
    }
    if (!mkdtemp(tmp)) {
        rc = -errno;
        snprintf(err, errlen, "mkdtemp in %s: %s", parent, strerror(errno));
        return rc;
    }
    return 0;
}

int store_publish(const char *store, const char *vm, const char *tmp, const char *snap, char *err,
                  size_t errlen)
{
    char snaps[PATH_MAX], dst[PATH_MAX];
    int rc;

    if ((rc = store_snapshot_path(snaps, store, vm, NULL, NULL)) ||
        (rc = store_path(dst, "%s/%s", snaps, snap)))
        return rc;
    if ((rc = store_fsync_dir(tmp))) {
        snprintf(err, errlen, "fsync %s: %s", tmp, strerror(-rc));
        return rc;
    }
    /* RENAME_NOREPLACE: a snapshot brought in meanwhile under the same name is never replaced. */
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) < 0) {
        rc = -errno;
        snprintf(err, errlen, "rename %s to %s: %s", tmp, dst, strerror(errno));
        return rc;
    }
    if ((rc = store_fsync_dir(snaps)))
        snprintf(err, errlen, "fsync %s: %s", snaps, strerror(-rc));
    return rc;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path) < 0 ? errno : 0; /* nftw stops at the first that is not 0 */
}

int store_snapshot_delete(const char *store, const char *vm, const char *snap, char *err,
                          size_t errlen)
{
    char snaps[PATH_MAX], src[PATH_MAX], tmp[PATH_MAX], base[65];
    int rc;

    /* A name put into the store by hand may be too long for NAME.XXXXXX: 64 bytes of it do. */
    snprintf(base, sizeof(base), "%s", snap);
    if ((rc = store_path(snaps, "%s/%s/snapshots", store, vm)) ||
        (rc = store_path(src, "%s/%s", snaps, snap)) ||
        (rc = store_tmp_create(store, vm, base, tmp, err, errlen)))
        return rc;
    /* Onto the empty directory just made: rename(2) replaces an empty directory. */
    if (rename(src, tmp) < 0) {
        rc = -errno;
        snprintf(err, errlen, "rename %s to %s: %s", src, tmp, strerror(errno));
        rmdir(tmp);
        return rc;
    }
    if ((rc = store_fsync_dir(snaps))) {
        snprintf(err, errlen, "fsync %s: %s", snaps, strerror(-rc));
        return rc;
    }
    if ((rc = store_remove_dir(tmp)))
        snprintf(err, errlen, "remove %s: %s", tmp, strerror(-rc));
    return rc;
}

int store_remove_dir(const char *dir)
{
    /* Depth first, symlinks not followed: only what lies in DIR goes (a snapshot's disks/). */
    int rc = nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);

    if (rc < 0)
        return errno == ENOENT ? 0 : -errno;
    return -rc;
}

static int clean_vm_tmp(const char *vm, const char *tmpdir, void *opaque,
                        void (*leftover)(void *opaque, const char *vm, const char *path))
{
    char path[PATH_MAX];
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    int n = 0;

    if (!d)
        return 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || store_path(path, "%s/%s", tmpdir, e->d_name))
            continue;
        leftover(opaque, vm, path);
        if (store_remove_dir(path) == 0)
            n++;
    }
    closedir(d);
    return n;
}

int store_clean_tmp(const char *store, void *opaque,
                    void (*leftover)(void *opaque, const char *vm, const char *path))
{
    char tmpdir[PATH_MAX];
    DIR *d = opendir(store);
    struct dirent *e;
    int n = 0;

    if (!d)
        return 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && store_vm_path(tmpdir, store, e->d_name, STORE_TMP) == 0)
            n += clean_vm_tmp(e->d_name, tmpdir, opaque, leftover);
    closedir(d);
    return n;
}
