/* sfs_io: what savefs tells the kernel's FUSE that libfuse 3.14 cannot say (sfs_io.h). With a
 * libfuse that does not know FUSE_HANDLE_KILLPRIV_V2, the session reads and writes /dev/fuse
 * through the functions below, which do what libfuse does itself (read, writev, splice) and
 * note the INIT request's id and what the kernel offers in it; they add to the reply of that id
 * the flag and passthrough (sfs_pt.h), and to an open's reply the file's backing id. */
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

#include "sfs_pt.h"

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

#ifndef FUSE_PASSTHROUGH /* Linux 6.9's uapi; Debian 12's headers are 6.1's */
#define FUSE_PASSTHROUGH  (1ULL << 37)
#define FOPEN_PASSTHROUGH (1 << 7)
#endif

/* fuse_open_out as Linux 6.9 reads it: the padding became the backing file's id. */
struct open_out {
    uint64_t fh;
    uint32_t open_flags;
    int32_t backing_id;
};
_Static_assert(sizeof(struct open_out) == sizeof(struct fuse_open_out), "fuse_open_out");

/* The longest reply that ends in a fuse_open_out: a create's, after its fuse_entry_out. */
#define OPEN_REPLY_MAX (sizeof(struct fuse_entry_out) + sizeof(struct open_out))

/* The INIT request's id while its reply is due (0: none, or answered), and what the kernel
 * offered in it (flags2 above flags); set by the worker that read it, read by the one that
 * answers (the kernel sends nothing else before the answer). */
static _Atomic uint64_t init_unique;
static _Atomic uint64_t init_offered;
static int session_fd = -1; /* set before the loop */

void sfs_io_want(struct fuse_conn_info *conn)
{
    /* The kernel does not pass files through where the writeback cache is on (Linux 6.9 to
     * 6.18 refuse the pair), and imports need it no more: their writes skip savefs. */
    if (sfs_pt_negotiate((atomic_load(&init_offered) & FUSE_PASSTHROUGH) != 0, session_fd))
        conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

static void note_init(const void *buf, ssize_t n)
{
    const struct fuse_in_header *in = buf;
    const struct fuse_init_in *arg = (const void *)(in + 1);
    uint64_t flags;

    if (n < (ssize_t)(sizeof(*in) + sizeof(*arg)) || in->opcode != FUSE_INIT ||
        arg->major != FUSE_KERNEL_VERSION)
        return;
    flags = arg->flags;
    if (flags & FUSE_INIT_EXT)
        flags |= (uint64_t)arg->flags2 << 32;
    atomic_store(&init_offered, flags);
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

/* libfuse's INIT reply (IOV[1], as long as the kernel's version has it) with what it cannot
 * say: FUSE_HANDLE_KILLPRIV_V2 where offered, passthrough where sfs_pt_negotiate said yes. */
static ssize_t write_init(int fd, const struct iovec *iov)
{
    uint64_t offered = atomic_load(&init_offered);
    struct fuse_init_out init;
    struct iovec patched[2] = {iov[0], {&init, iov[1].iov_len}};
    uint32_t depth = 2; /* a store on a stacked filesystem (overlayfs) may back files too */

    memcpy(&init, iov[1].iov_base, iov[1].iov_len);
    if (offered & FUSE_HANDLE_KILLPRIV_V2)
        init.flags |= FUSE_HANDLE_KILLPRIV_V2;
    if (sfs_pt_on() && iov[1].iov_len == sizeof(init)) {
        init.flags |= FUSE_INIT_EXT;
        init.flags2 |= (uint32_t)(FUSE_PASSTHROUGH >> 32);
        /* max_stack_depth, after flags2 from 7.40 on */
        memcpy((char *)&init + offsetof(struct fuse_init_out, flags2) + sizeof(init.flags2), &depth,
               sizeof(depth));
    }
    return writev(fd, patched, 2);
}

/* The file handle that ends IOV's reply if it is an open's or a create's (fuse_open_out last). */
static uint64_t reply_fh(const struct iovec *iov, int count)
{
    struct open_out o;

    if (count != 2 || iov[1].iov_len < sizeof(o) || iov[1].iov_len > OPEN_REPLY_MAX)
        return 0;
    memcpy(&o, (const char *)iov[1].iov_base + iov[1].iov_len - sizeof(o), sizeof(o));
    return o.fh;
}

/* An open's reply that hands the file to the kernel: FOPEN_PASSTHROUGH and the backing file's
 * ID, without FOPEN_KEEP_CACHE (libfuse's auto_cache), which the kernel refuses beside it. */
static ssize_t write_passthrough(int fd, const struct iovec *iov, int32_t id)
{
    unsigned char reply[OPEN_REPLY_MAX];
    struct iovec patched[2] = {iov[0], {reply, iov[1].iov_len}};
    unsigned char *tail = reply + iov[1].iov_len - sizeof(struct open_out);
    struct open_out o;

    memcpy(reply, iov[1].iov_base, iov[1].iov_len);
    memcpy(&o, tail, sizeof(o));
    o.open_flags = (o.open_flags & ~(uint32_t)FOPEN_KEEP_CACHE) | FOPEN_PASSTHROUGH;
    o.backing_id = id;
    memcpy(tail, &o, sizeof(o));
    return writev(fd, patched, 2);
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
    const struct fuse_out_header *out = iov[0].iov_base;
    uint64_t unique = atomic_load(&init_unique);
    int ok = count == 2 && iov[0].iov_len == sizeof(*out) && out->error == 0;
    int32_t id;

    (void)userdata;
    if (sfs_pt_reply(reply_fh(iov, count), &id) && ok)
        return write_passthrough(fd, iov, id);
    /* libfuse replies with the header in iov[0] and its fuse_init_out in iov[1]. */
    if (unique && ok && out->unique == unique &&
        iov[1].iov_len > offsetof(struct fuse_init_out, max_write) &&
        iov[1].iov_len <= sizeof(struct fuse_init_out) &&
        atomic_compare_exchange_strong(&init_unique, &unique, 0))
        return write_init(fd, iov);
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

    session_fd = fuse_session_fd(se);
    return fuse_session_custom_io(se, &io, session_fd);
}

#endif
