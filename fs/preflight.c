/* preflight: the checks before a mount (preflight.h). Each failure is said in one line naming
 * the path and what to do; the store is probed by doing once, on scratch names, each call savefs
 * relies on (probe.c). */
#include "preflight.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "probe.h"
#include "store.h"

/* The store's lock: one savefs per store, or the second would remove the first's saves in
 * progress as leftovers of a crash, and both would start the same VMs. */
#define PREFLIGHT_LOCK ".lock"

static const struct {
    int code;
    const char *what;
} preflight_codes[] = {
    {1, "another failure (the reason is printed)"},
    {PREFLIGHT_USAGE, "a bad command line"},
    {PREFLIGHT_MOUNTPOINT_MISSING, "the mountpoint is missing or not a directory"},
    {PREFLIGHT_MOUNTPOINT_BUSY, "the mountpoint is busy: something is mounted there"},
    {PREFLIGHT_NO_FUSE, "no /dev/fuse, or it cannot be opened"},
    {PREFLIGHT_STORE_NOT_WRITABLE, "the store cannot be made or written (permissions, read-only)"},
    {PREFLIGHT_STORE_REFUSES, "the store's filesystem fails what a save does to it"},
    {PREFLIGHT_QMP_DIR_MISSING, "the QMP directory given with --qmp-dir is missing"},
    {PREFLIGHT_STORE_LOCKED, "another savefs already serves the store"},
};

void preflight_usage(void)
{
    printf("Exit status when the mount cannot start:\n");
    for (size_t i = 0; i < sizeof(preflight_codes) / sizeof(preflight_codes[0]); i++)
        printf("    %3d  %s\n", preflight_codes[i].code, preflight_codes[i].what);
}

/* mountinfo escapes space, tab, newline and backslash in paths as \ooo. */
static void unescape(char *s)
{
    char *out = s;

    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] && s[3]) {
            *out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

/* 1 if something is mounted on the directory PATH (canonical). */
static int mounted_on(const char *path)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096], point[PATH_MAX];
    int found = 0;

    while (f && !found && fgets(line, sizeof(line), f))
        if (sscanf(line, "%*s %*s %*s %*s %4095s", point) == 1) {
            unescape(point);
            found = strcmp(point, path) == 0;
        }
    if (f)
        fclose(f);
    return found;
}

static int check_mountpoint(const char *mnt, char *err, size_t errlen)
{
    char real[PATH_MAX];
    struct stat st;
    int e = stat(mnt, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;

    if (e == ENOTCONN) {
        snprintf(err, errlen, "the mountpoint %s holds a savefs that died: fusermount3 -u %s", mnt,
                 mnt);
        return PREFLIGHT_MOUNTPOINT_BUSY;
    }
    if (e) {
        snprintf(err, errlen, "the mountpoint %s: %s%s", mnt,
                 e == ENOTDIR  ? "not a directory"
                 : e == ENOENT ? "missing"
                               : strerror(e),
                 e == ENOENT ? " (mkdir it first)" : "");
        return PREFLIGHT_MOUNTPOINT_MISSING;
    }
    if (realpath(mnt, real) && mounted_on(real)) {
        snprintf(err, errlen,
                 "the mountpoint %s is busy: something is mounted there already (findmnt %s)", mnt,
                 real);
        return PREFLIGHT_MOUNTPOINT_BUSY;
    }
    return 0;
}

static int check_fuse(char *err, size_t errlen)
{
    int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (errno == ENOENT)
        snprintf(err, errlen, "no /dev/fuse: load the fuse module (modprobe fuse)");
    else
        snprintf(err, errlen, "cannot open /dev/fuse: %s", strerror(errno));
    return PREFLIGHT_NO_FUSE;
}

static int check_qmp_dir(const struct preflight *pf, char *err, size_t errlen)
{
    struct stat st;

    if (!pf->qmp_dir_given || (stat(pf->qmp_dir, &st) == 0 && S_ISDIR(st.st_mode)))
        return 0;
    snprintf(err, errlen,
             "the QMP directory %s is missing: make it (the VMs' NAME.qmp sockets "
             "go there), or leave --qmp-dir out for the default",
             pf->qmp_dir);
    return PREFLIGHT_QMP_DIR_MISSING;
}

/* The lock is this host's, STORE/.lock@HOST: the hosts of a fleet share a store (docs/fleet.md),
 * each with its own savefs, whose saves in progress and marks carry its host's name. */
static int lock_store(int dir, const char *store, int *lock_fd, char *err, size_t errlen)
{
    char name[NAME_MAX + 1];
    int fd;

    snprintf(name, sizeof(name), "%s@%s", PREFLIGHT_LOCK, store_host());
    fd = openat(dir, name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0)
        return probe_failed(store, "creating its lock file", errno, err, errlen);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen,
                 "another savefs already serves the store %s on this host (it holds %s/%s): "
                 "one savefs per store and host",
                 store, store, name);
        close(fd);
        return PREFLIGHT_STORE_LOCKED;
    }
    *lock_fd = fd;
    return 0;
}

static int check_store(const struct preflight *pf, int *lock_fd, char *err, size_t errlen)
{
    int dir, rc;

    if ((rc = store_mkdirs(pf->store, err, errlen)))
        return probe_failed(pf->store, "making it", -rc, err, errlen);
    if ((dir = open(pf->store, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        return probe_failed(pf->store, "opening it", errno, err, errlen);
    /* The lock first: the probe's scratch names are another savefs's too. */
    rc = lock_store(dir, pf->store, lock_fd, err, errlen);
    if (!rc && (rc = probe_store(dir, pf->store, err, errlen))) {
        close(*lock_fd);
        *lock_fd = -1;
    }
    close(dir);
    return rc;
}

int preflight_check(const struct preflight *pf, int *lock_fd, char *err, size_t errlen)
{
    int rc;

    *lock_fd = -1;
    if ((rc = check_mountpoint(pf->mountpoint, err, errlen)) || (rc = check_fuse(err, errlen)) ||
        (rc = check_qmp_dir(pf, err, errlen)))
        return rc;
    return check_store(pf, lock_fd, err, errlen);
}
