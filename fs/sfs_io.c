/* sfs_io: FUSE_HANDLE_KILLPRIV_V2 for savefs's mount (sfs_io.h). With a libfuse that does not
 * know the flag, the session reads and writes /dev/fuse through the functions below, which do
 * what libfuse does itself (read, writev, splice) and, once, note the INIT request's id and
 * whether the kernel offers the flag, and add it to the reply of that id. */
#include "sfs_io.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#ifdef FUSE_CAP_HANDLE_KILLPRIV_V2

void sfs_io_want(struct fuse_conn_info *conn)
{
    if (conn->capable & FUSE_CAP_HANDLE_KILLPRIV_V2)
        conn->want |= FUSE_CAP_HANDLE_KILLPRIV_V2;
}

int sfs_io_install(struct fuse *fuse)
{
    (void)fuse;
    return 0;
}

#else

/* The INIT request's id while its reply is due (0: none, or answered); set by the worker that
 * read it, read by the one that answers (the kernel sends nothing else before the answer). */
static _Atomic uint64_t init_unique;

void sfs_io_want(struct fuse_conn_info *conn)
{
    (void)conn;
}

static void note_init(const void *buf, ssize_t n)
{
    const struct fuse_in_header *in = buf;
    const struct fuse_init_in *arg = (const void *)(in + 1);

    if (n >= (ssize_t)(sizeof(*in) + sizeof(*arg)) && in->opcode == FUSE_INIT &&
        arg->major == FUSE_KERNEL_VERSION && (arg->flags & FUSE_HANDLE_KILLPRIV_V2))
        atomic_store(&init_unique, in->unique);
}

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
    ssize_t n = read(fd, buf, len);

    (void)userdata;
    if (n > 0)
        note_init(buf, n);
    return n;
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
    const struct fuse_out_header *out = iov[0].iov_base;
    uint64_t unique = atomic_load(&init_unique);
    struct fuse_init_out init;

    (void)userdata;
    /* libfuse replies with the header in iov[0] and its fuse_init_out (as long as the kernel's
     * version has it) in iov[1]. */
    if (unique && count == 2 && iov[0].iov_len == sizeof(*out) && out->unique == unique &&
        out->error == 0 && iov[1].iov_len > offsetof(struct fuse_init_out, max_write) &&
        iov[1].iov_len <= sizeof(init) &&
        atomic_compare_exchange_strong(&init_unique, &unique, 0)) {
        struct iovec patched[2] = {iov[0], {&init, iov[1].iov_len}};
        memcpy(&init, iov[1].iov_base, iov[1].iov_len);
        init.flags |= FUSE_HANDLE_KILLPRIV_V2;
        return writev(fd, patched, 2);
    }
    return writev(fd, iov, count);
}

static ssize_t io_splice(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
                         unsigned int flags, void *userdata)
{
    (void)userdata;
    return splice(fdin, offin, fdout, offout, len, flags);
}

int sfs_io_install(struct fuse *fuse)
{
    /* Without splice functions libfuse would stop splicing (it offers splice only then). */
    static const struct fuse_custom_io io = {.read = io_read,
                                             .writev = io_writev,
                                             .splice_receive = io_splice,
                                             .splice_send = io_splice};
    struct fuse_session *se = fuse_get_session(fuse);

    return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

#endif
