/* store: directory layout and atomic publication. A save writes into a private temporary
 * directory on the same filesystem; only a rename (or, where the filesystem cannot rename without
 * replacing, the end of a claim) makes it visible, so readers on every host see a snapshot whole
 * or not at all, even after a crash. */
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

#include "manifest.h"

static char store_host_name[SNAPSHOT_NAME_MAX + 1];

int store_host_set(const char *name)
{
    if (!store_valid_name(name))
        return 0;
    snprintf(store_host_name, sizeof(store_host_name), "%s", name);
    return 1;
}

const char *store_host(void)
{
    char host[256];

    if (!store_host_name[0]) {
        if (gethostname(host, sizeof(host)) < 0)
            host[0] = '\0';
        host[sizeof(host) - 1] = '\0';
        host[strcspn(host, ".")] = '\0';
        if (!store_host_set(host))
            store_host_set("localhost");
    }
    return store_host_name;
}

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

int store_vm_host_path(char *path, const char *store, const char *vm, const char *file)
{
    return store_path(path, "%s/%s/%s@%s", store, vm, file, store_host());
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

/* mkdir of STORE/VM, then of its snapshots/; with MAY_EXIST, either may be there already. */
static int vm_mkdirs(const char *store, const char *vm, int may_exist, char *err, size_t errlen)
{
    char path[PATH_MAX];
    int rc;

    if ((rc = store_vm_path(path, store, vm, NULL)))
        return rc;
    for (int i = 0; i < 2; i++) {
        if (i == 1 && (rc = store_snapshot_path(path, store, vm, NULL, NULL)))
            return rc;
        if (mkdir(path, 0700) < 0 && !(may_exist && errno == EEXIST)) {
            rc = -errno;
            snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
            return rc;
        }
    }
    return store_fsync_dir(store);
}

int store_vm_create(const char *store, const char *vm, char *err, size_t errlen)
{
    return vm_mkdirs(store, vm, 0, err, errlen);
}

int store_vm_ensure(const char *store, const char *vm, char *err, size_t errlen)
{
    return vm_mkdirs(store, vm, 1, err, errlen);
}

static int remove_if_exists(const char *path, int (*fn)(const char *))
{
    return fn(path) < 0 && errno != ENOENT ? -errno : 0;
}

int store_vm_remove(const char *store, const char *vm, char *err, size_t errlen)
{
    char snaps[PATH_MAX], tmp[PATH_MAX], record[PATH_MAX], faults[PATH_MAX], dir[PATH_MAX];
    int rc;

    if (store_snapshot_path(snaps, store, vm, NULL, NULL) ||
        store_vm_path(tmp, store, vm, STORE_TMP) ||
        store_vm_host_path(record, store, vm, STORE_QEMU_RECORD) ||
        store_vm_host_path(faults, store, vm, STORE_LAZY_FAULTS) ||
        store_vm_path(dir, store, vm, NULL))
        return -ENAMETOOLONG;
    /* The fault log only orders a future restore's push: it goes with the VM. */
    if ((rc = remove_if_exists(snaps, rmdir)) || (rc = remove_if_exists(tmp, rmdir)) ||
        (rc = remove_if_exists(record, unlink)) || (rc = remove_if_exists(faults, unlink)) ||
        (rc = remove_if_exists(dir, rmdir))) {
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

/* STAMP itself (FROM 1), or STAMP-N for the first N from FROM that no snapshot (nor claim) of VM
 * has, into NAME. */
static int free_name(const char *store, const char *vm, const char *stamp, int from, char *name,
                     size_t len)
{
    for (int i = from; i < STORE_NAME_COUNT_MAX; i++) {
        if (i > 1)
            snprintf(name, len, "%s-%d", stamp, i);
        else
            snprintf(name, len, "%s", stamp);
        if (!store_snapshot_exists(store, vm, name))
            return 0;
    }
    return -EEXIST;
}

int store_default_name(const char *store, const char *vm, char *name, size_t len)
{
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;

    if (!gmtime_r(&now, &tm) || !strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm))
        return -EINVAL;
    return free_name(store, vm, stamp, 1, name, len);
}

int store_default_name_next(const char *store, const char *vm, char *name, size_t len)
{
    char stamp[STORE_STAMP_LEN + 1];
    char *end = NULL;
    long n = 1;

    if (strlen(name) < STORE_STAMP_LEN)
        return -EINVAL;
    memcpy(stamp, name, STORE_STAMP_LEN);
    stamp[STORE_STAMP_LEN] = '\0';
    if (name[STORE_STAMP_LEN] == '-')
        n = strtol(name + STORE_STAMP_LEN + 1, &end, 10);
    if ((end && *end) || (!end && name[STORE_STAMP_LEN]) || n < 1 || n >= STORE_NAME_COUNT_MAX)
        return -EINVAL;
    return free_name(store, vm, stamp, (int)n + 1, name, len);
}

int store_tmp_create(const char *store, const char *vm, const char *snap, char *tmp, char *err,
                     size_t errlen)
{
    char parent[PATH_MAX];
    int rc;

    if ((rc = store_vm_path(parent, store, vm, STORE_TMP)) ||
        (rc = store_path(tmp, "%s/%s@%s.XXXXXX", parent, snap, store_host())))
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

int store_claimed(const struct stat *st)
{
    return S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX);
}

/* Moves every file of TMP into DST (both open), the manifest last: until it is there, DST is no
 * snapshot even for a reader that ignored the claim. */
static int move_files(int tmp, int dst, const char *manifest)
{
    DIR *d = fdopendir(dup(tmp));
    struct dirent *e;
    int rc = 0;

    if (!d)
        return -errno;
    while (!rc && (e = readdir(d)))
        if (e->d_name[0] != '.' && strcmp(e->d_name, manifest) != 0 &&
            renameat(tmp, e->d_name, dst, e->d_name) < 0)
            rc = -errno;
    closedir(d);
    if (!rc && renameat(tmp, manifest, dst, manifest) < 0)
        rc = -errno;
    return rc;
}

/* The publication without RENAME_NOREPLACE: mkdir claims SNAP on every host at once (a directory
 * whose sticky bit says "in progress"), the files move in, and clearing the bit commits it. A
 * DHT rename of a directory is neither atomic nor exclusive; a file's rename inside a directory
 * no other host writes needs to be neither. */
static int publish_by_claim(const char *tmp, const char *snaps, const char *dst, char *err,
                            size_t errlen)
{
    char mark[PATH_MAX];
    int tfd = -1, dfd = -1, rc;
    struct stat st;

    if (mkdir(dst, 0700 | S_ISVTX) < 0) {
        rc = -errno;
        snprintf(err, errlen, "mkdir %s: %s", dst, strerror(errno));
        return rc;
    }
    /* For a savefs that dies from here on: its next start removes the claim with TMP. */
    if ((rc = store_path(mark, "%s/%s", tmp, STORE_CLAIM_MARK)) ||
        (rc = store_write_text(mark, dst))) {
        snprintf(err, errlen, "write %s: %s", mark, strerror(-rc));
        goto fail;
    }
    if ((tfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
        (dfd = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "open %s: %s", tfd < 0 ? tmp : dst, strerror(errno));
        goto fail;
    }
    if (fstat(dfd, &st) < 0 || !store_claimed(&st)) {
        rc = -EIO;
        snprintf(err, errlen, "%s: the filesystem dropped the sticky bit of the claim", dst);
        goto fail;
    }
    if ((rc = move_files(tfd, dfd, MANIFEST_NAME))) {
        snprintf(err, errlen, "move the files of %s into %s: %s", tmp, dst, strerror(-rc));
        goto fail;
    }
    /* The files were fsynced where they were written; their new names must be durable before
     * the commit, and the commit before the save counts as done. */
    if (fsync(dfd) < 0 || fchmod(dfd, 0700) < 0 || fsync(dfd) < 0) {
        rc = -errno;
        snprintf(err, errlen, "commit %s: %s", dst, strerror(errno));
        goto fail;
    }
    close(tfd);
    close(dfd);
    store_remove_dir(tmp);
    if ((rc = store_fsync_dir(snaps)))
        snprintf(err, errlen, "fsync %s: %s", snaps, strerror(-rc));
    return rc;
fail:
    /* The files go back to TMP (its owner removes them), then the claim goes. */
    if (tfd >= 0 && dfd >= 0)
        move_files(dfd, tfd, MANIFEST_NAME);
    if (tfd >= 0)
        close(tfd);
    if (dfd >= 0)
        close(dfd);
    if (rmdir(dst) == 0)
        unlink(mark);
    return rc;
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
        if (errno == EINVAL)
            return publish_by_claim(tmp, snaps, dst, err, errlen);
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

/* 1 if NAME, a save's directory in .tmp, is this host's: NAME@HOST.XXXXXX, or NAME.XXXXXX of a
 * savefs that named no host. */
static int own_tmp(const char *name)
{
    const char *at = strrchr(name, '@'), *dot = strrchr(name, '.');
    size_t n = strlen(store_host());

    if (!at)
        return 1;
    return dot > at && (size_t)(dot - at - 1) == n && strncmp(at + 1, store_host(), n) == 0;
}

/* A save that died during publish_by_claim left its claim: removed while it is still one. */
static void remove_claim(const char *tmpdir)
{
    char mark[PATH_MAX], claim[PATH_MAX];
    struct stat st;
    FILE *f;

    if (store_path(mark, "%s/%s", tmpdir, STORE_CLAIM_MARK) || !(f = fopen(mark, "re")))
        return;
    if (fgets(claim, sizeof(claim), f) && lstat(claim, &st) == 0 && store_claimed(&st))
        store_remove_dir(claim);
    fclose(f);
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
        if (e->d_name[0] == '.' || !own_tmp(e->d_name) ||
            store_path(path, "%s/%s", tmpdir, e->d_name))
            continue;
        leftover(opaque, vm, path);
        remove_claim(path);
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
