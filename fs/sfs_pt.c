/* sfs_pt: FUSE passthrough of the store's files (sfs_pt.h): the decision at INIT, the backing
 * files shared per store file, and what a thread's open tells its reply. Called from libfuse's
 * workers; the registry is guarded by one lock, held only across fstat and the two ioctls. */
#include "sfs_pt.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sfs_log.h"

#ifndef FUSE_DEV_IOC_BACKING_OPEN /* Linux 6.9's uapi; Debian 12's headers are 6.1's */
struct fuse_backing_map {
    int32_t fd;
    uint32_t flags;
    uint64_t padding;
};
#define FUSE_DEV_IOC_BACKING_OPEN  _IOW(FUSE_DEV_IOC_MAGIC, 1, struct fuse_backing_map)
#define FUSE_DEV_IOC_BACKING_CLOSE _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)
#endif

/* One store file handed to the kernel, with the opens that use it. */
struct backing {
    struct backing *next;
    dev_t dev;
    ino_t ino;
    int fd; /* a copy of the first opener's descriptor: its link count tells this file from a
               new one that got the number of a deleted one */
    int id;
    unsigned refs;
};

static atomic_int pt_on;
static int pt_dev = -1; /* set at INIT, before any open */
static atomic_int pt_refused_logged;
static pthread_mutex_t pt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct backing *pt_list; /* guarded by pt_lock */

/* What this thread's open asked of its reply: libfuse answers an open in the thread that ran it. */
static _Thread_local struct {
    uint64_t fh;
    int id;
} pt_pending;

/* 1 if savefs holds CAP_SYS_ADMIN in the initial user namespace, where the kernel checks it. */
static int may_register(void)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
    unsigned long inside = 1, outside = 1, count = 0;
    FILE *f;

    if (syscall(SYS_capget, &h, d) != 0 ||
        !(d[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective & CAP_TO_MASK(CAP_SYS_ADMIN)))
        return 0;
    /* The initial namespace maps every uid to itself in one line. */
    f = fopen("/proc/self/uid_map", "re");
    if (f && fscanf(f, "%lu %lu %lu", &inside, &outside, &count) != 3)
        count = 0;
    if (f)
        fclose(f);
    return inside == 0 && outside == 0 && count == 4294967295UL;
}

int sfs_pt_negotiate(int kernel_offers, int fuse_dev)
{
    const char *why = !kernel_offers    ? "the kernel does not offer it (Linux 6.9 and later do)"
                      : !may_register() ? "savefs lacks CAP_SYS_ADMIN (it does not run as root)"
                                        : NULL;
    char msg[256];

    if (why)
        snprintf(msg, sizeof(msg),
                 "store files are read and written through savefs, not passed "
                 "through the kernel: %s",
                 why);
    else
        snprintf(msg, sizeof(msg),
                 "store files pass through the kernel (FUSE passthrough): "
                 "their reads and writes make no request to savefs");
    sfs_log(msg);
    pt_dev = fuse_dev;
    atomic_store(&pt_on, why == NULL);
    return why == NULL;
}

int sfs_pt_on(void)
{
    return atomic_load(&pt_on);
}

/* The live entry for ST's file. */
static struct backing *find_locked(const struct stat *st)
{
    struct stat cur;

    for (struct backing *b = pt_list; b; b = b->next)
        if (b->dev == st->st_dev && b->ino == st->st_ino && fstat(b->fd, &cur) == 0 &&
            cur.st_nlink > 0)
            return b;
    return NULL;
}

/* Registers FD's file with the kernel: its new entry, or NULL with errno set. */
static struct backing *register_locked(int fd, const struct stat *st)
{
    struct fuse_backing_map map = {.fd = fd};
    struct backing *b = calloc(1, sizeof(*b));
    int err;

    if (!b)
        return NULL;
    b->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    b->id = b->fd < 0 ? -1 : ioctl(pt_dev, FUSE_DEV_IOC_BACKING_OPEN, &map);
    if (b->id <= 0) {
        err = errno;
        if (b->fd >= 0)
            close(b->fd);
        free(b);
        errno = err;
        return NULL;
    }
    b->dev = st->st_dev;
    b->ino = st->st_ino;
    b->next = pt_list;
    pt_list = b;
    return b;
}

/* Once: why files go through savefs although passthrough is on. */
static void log_refused(int err)
{
    char msg[160];

    if (atomic_exchange(&pt_refused_logged, 1))
        return;
    snprintf(msg, sizeof(msg),
             "the kernel refused a store file for passthrough (%s): such files "
             "are read and written through savefs",
             strerror(err));
    sfs_log(msg);
}

int sfs_pt_open(int fd, uint64_t fh)
{
    struct backing *b;
    struct stat st;
    int id = 0;

    pt_pending.id = 0;
    if (!sfs_pt_on() || fstat(fd, &st) < 0)
        return 0;
    pthread_mutex_lock(&pt_lock);
    b = find_locked(&st);
    if (!b)
        b = register_locked(fd, &st);
    if (b) {
        b->refs++;
        id = b->id;
    }
    pthread_mutex_unlock(&pt_lock);
    if (!id) {
        log_refused(errno);
        return 0;
    }
    pt_pending.fh = fh;
    pt_pending.id = id;
    return id;
}

void sfs_pt_release(int id)
{
    struct backing **p, *gone = NULL;
    uint32_t kid = (uint32_t)id;

    if (id <= 0)
        return;
    if (pt_pending.id == id)
        pt_pending.id = 0;
    pthread_mutex_lock(&pt_lock);
    for (p = &pt_list; *p; p = &(*p)->next)
        if ((*p)->id == id) {
            if (--(*p)->refs == 0) {
                gone = *p;
                *p = gone->next;
                /* Open files keep their backing file in the kernel; the id goes. */
                ioctl(pt_dev, FUSE_DEV_IOC_BACKING_CLOSE, &kid);
            }
            break;
        }
    pthread_mutex_unlock(&pt_lock);
    if (gone) {
        close(gone->fd);
        free(gone);
    }
}

int sfs_pt_reply(uint64_t fh, int32_t *id)
{
    int mine = pt_pending.id > 0 && pt_pending.fh == fh;

    *id = pt_pending.id;
    pt_pending.id = 0;
    return mine;
}
