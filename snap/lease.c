/* lease: a VM's lease on the shared store (lease.h). The lease is an OFD write lock on byte 0 of
 * STORE/.leases/VM: an OFD lock (F_OFD_SETLK), not a process's fcntl lock (F_SETLK), because a
 * process's lock is not inherited by a forked child and goes when that process closes any
 * descriptor of the file, while an OFD lock goes with the open file description itself: savefs
 * takes it, the QEMU it starts inherits the descriptor across fork and exec, and the lock lives
 * until the last descriptor closes. Through a FUSE mount the kernel hands both kinds to the
 * filesystem (GlusterFS's features/locks on every brick), with the file description as owner.
 * Pure file operations, any thread. */
#include "lease.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

/* The text is written whole, padded to one size, at offset 0: a reader sees the old text or the
 * new one, never a shorter file in between. */
#define LEASE_TEXT_MAX 512

int lease_valid_host(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > LEASE_HOST_MAX)
        return 0;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static int lease_path(char *path, const char *store, const char *vm)
{
    if (!store_valid_name(vm))
        return -EINVAL;
    return store_path(path, "%s/%s/%s", store, LEASE_DIR, vm);
}

static void copy_field(json_t *root, const char *key, char *out, size_t len)
{
    const char *s = json_string_value(json_object_get(root, key));

    /* Another host wrote it: only what fits, and only a name's characters for the host. */
    snprintf(out, len, "%s", s ? s : "");
}

/* HOLDER from the text of the lease FD: a file written on another host is untrusted input, so
 * what cannot be read leaves the fields empty. */
static void read_holder(int fd, struct lease_holder *h)
{
    char text[LEASE_TEXT_MAX + 1];
    ssize_t n = pread(fd, text, LEASE_TEXT_MAX, 0);
    json_t *root;

    memset(h, 0, sizeof(*h));
    if (n <= 0 || !(root = json_loadb(text, (size_t)n, JSON_DISABLE_EOF_CHECK, NULL)))
        return;
    copy_field(root, "host", h->host, sizeof(h->host));
    if (!lease_valid_host(h->host))
        snprintf(h->host, sizeof(h->host), "?");
    copy_field(root, "since", h->since, sizeof(h->since));
    copy_field(root, "how", h->how, sizeof(h->how));
    if (json_is_integer(json_object_get(root, "pid")))
        h->pid = (int)json_integer_value(json_object_get(root, "pid"));
    json_decref(root);
}

static int lock_byte(int fd, int cmd, struct flock *fl)
{
    *fl = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    return fcntl(fd, cmd, fl) < 0 ? -errno : 0;
}

int lease_renew(int fd, struct lease_holder *holder)
{
    struct flock fl;
    int rc = lock_byte(fd, F_OFD_SETLK, &fl);

    if (rc == -EAGAIN || rc == -EACCES) {
        read_holder(fd, holder);
        return -EBUSY;
    }
    return rc;
}

int lease_take(const char *store, const char *vm, int *fd, struct lease_holder *holder, char *err,
               size_t errlen)
{
    char path[PATH_MAX];
    int rc = lease_path(path, store, vm), lfd;

    *fd = -1;
    if (rc || (rc = store_path(path, "%s/%s", store, LEASE_DIR))) {
        snprintf(err, errlen, "no lease for %s: bad name or path too long", vm);
        return rc;
    }
    if (mkdir(path, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
        return rc;
    }
    lease_path(path, store, vm);
    if ((lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        rc = -errno;
        snprintf(err, errlen, "open %s: %s", path, strerror(errno));
        return rc;
    }
    rc = lease_renew(lfd, holder);
    if (rc) {
        if (rc != -EBUSY)
            snprintf(err, errlen, "lock %s: %s", path, strerror(-rc));
        close(lfd);
        return rc;
    }
    *fd = lfd;
    return 0;
}

int lease_write(int fd, const struct lease_holder *h)
{
    json_t *root = json_pack("{s:s, s:s, s:i, s:s}", "host", h->host, "since", h->since, "pid",
                             h->pid, "how", h->how);
    char text[LEASE_TEXT_MAX];
    char *dump = root ? json_dumps(root, JSON_PRESERVE_ORDER) : NULL;
    size_t n = dump ? strlen(dump) : 0;
    int rc = 0;

    json_decref(root);
    if (!dump || n >= sizeof(text)) {
        free(dump);
        return -ENOMEM;
    }
    memset(text, ' ', sizeof(text));
    memcpy(text, dump, n);
    text[sizeof(text) - 1] = '\n';
    free(dump);
    /* No fsync: the lock is the lease, the text only says whose it is, and a text lost in a crash
     * goes with a lock that went too. An fsync was most of the lease's cost (38 ms of 39, median
     * of 3 restores, contrib/bench on a loaded local disk). */
    if (pwrite(fd, text, sizeof(text), 0) != (ssize_t)sizeof(text))
        rc = errno ? -errno : -EIO;
    return rc;
}

int lease_query(const char *store, const char *vm, struct lease_holder *holder)
{
    char path[PATH_MAX];
    struct flock fl;
    int rc = lease_path(path, store, vm), fd;

    memset(holder, 0, sizeof(*holder));
    if (rc)
        return rc;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return errno == ENOENT ? 0 : -errno;
    /* A test of the lock, not a lock: readers never take one. */
    rc = lock_byte(fd, F_OFD_GETLK, &fl);
    if (!rc && fl.l_type != F_UNLCK) {
        read_holder(fd, holder);
        rc = 1;
    }
    close(fd);
    return rc;
}

int lease_save(const char *path, const struct lease_holder *h)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), rc;

    if (fd < 0)
        return -errno;
    rc = lease_write(fd, h);
    if (close(fd) < 0 && !rc)
        rc = -errno;
    return rc;
}

int lease_load(const char *path, struct lease_holder *h)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    memset(h, 0, sizeof(*h));
    if (fd < 0)
        return -errno;
    read_holder(fd, h);
    close(fd);
    return h->host[0] ? 0 : -EBADMSG;
}

void lease_describe(const struct lease_holder *h, char *buf, size_t len)
{
    char pid[32] = "";

    /* savefs does not know the pid of a QEMU started by hand (it only sees its socket). */
    if (h->pid > 0)
        snprintf(pid, sizeof(pid), "pid %d", h->pid);
    snprintf(buf, len, "runs on host %s since %s (%s%s)", h->host[0] ? h->host : "unknown",
             h->since[0] ? h->since : "an unknown time", pid,
             strcmp(h->how, "seen") == 0 ? "started by hand, its lease held by savefs"
             : pid[0]                    ? ""
                                         : "pid unknown");
}
