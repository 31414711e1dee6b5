/* preflight: what a mount needs, checked before anything is started, so that each way it cannot
 * start has its own exit status and one line saying why (savefs(1), EXIT STATUS). Called once by
 * main before the store is opened. */
#ifndef SAVEFS_PREFLIGHT_H
#define SAVEFS_PREFLIGHT_H

#include <stddef.h>

/* savefs's exit statuses when it cannot mount (1: another failure, told on standard error). */
enum preflight_exit {
    PREFLIGHT_USAGE = 2,
    PREFLIGHT_MOUNTPOINT_MISSING = 20,
    PREFLIGHT_MOUNTPOINT_BUSY = 21,
    PREFLIGHT_NO_FUSE = 22,
    PREFLIGHT_STORE_NOT_WRITABLE = 23,
    PREFLIGHT_STORE_REFUSES = 24,
    PREFLIGHT_QMP_DIR_MISSING = 25,
    PREFLIGHT_STORE_LOCKED = 26,
};

struct preflight {
    const char *mountpoint;
    const char *store;   /* made (0700) if missing */
    const char *qmp_dir; /* made if missing, unless QMP_DIR_GIVEN */
    int qmp_dir_given;   /* given with --qmp-dir: a typo there would show no VM, so it must exist */
};

/* Checks the mountpoint, /dev/fuse, the QMP directory, and the store (made if missing, then
 * probed for what savefs does to it), and takes the store's lock: *LOCK_FD, to be kept open
 * while the mount lives (close-on-exec, so that no QEMU savefs starts inherits it). 0, or a
 * preflight_exit with the reason in ERR. */
int preflight_check(const struct preflight *pf, int *lock_fd, char *err, size_t errlen);

/* The statuses and their meanings, for --help. */
void preflight_usage(void);

#endif
