/* restore: we connect to QEMU's destination, main first and then each channel, writing each
 * channel's handshake right after its connect (7.2 reads it synchronously), then one thread per
 * stream pumps its file, decompressed if it holds zstd frames, into its socket, all at once. The
 * cp_restore_* functions are called from the caller's thread; cancel and the progress counters
 * from any thread. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bytes.h"
#include "copier.h"
#include "indexer.h"
#include "stream.h"
#include "worker.h"
#include "zframe.h"

/* ZSTD_MAGICNUMBER as the file's first four bytes, read be32. */
#define CP_ZSTD_MAGIC_BE 0x28b52ffdu

struct cp_restore_stream {
    /* set by cp_restore_start before the stream's thread starts */
    struct cp_restore *r;
    struct cp_file f;
    int fd; /* -1 until connected */
    int started;
    pthread_t thread;
    /* owned by the stream's thread once started */
    struct cp_freader *rd;
    struct cp_zreader *z; /* decompresses what rd reads; NULL for a plain file */
    const uint8_t *data;  /* the chunk of the stream taken last; DATA[done..len) is still to go */
    size_t len, done;
    uint64_t taken; /* stream bytes taken from the file so far */
    int last;       /* DATA ends the stream, and the file and the stream have been checked */
    uint64_t sent;
};

struct cp_restore {
    /* set before any thread starts */
    char dir[PATH_MAX];
    int stall_ms;
    int direct_io;
    size_t buf_size;
    int nstreams; /* main, then the channels in the caller's order */
    struct cp_restore_stream streams[CP_MAX_CHANNELS + 1];
    int nindex;
    struct cp_file index[CP_MAX_CHANNELS];
    int joined; /* caller's thread only */
    /* any thread */
    atomic_uint_fast64_t bytes;
    struct cp_live live; /* the stream threads */
    struct cp_fail fail; /* socket slot 1 + i is stream i */
};

/* A file name from the caller's list, which comes from a manifest: one path component. */
static int cp_name_ok(const char *name)
{
    size_t len = strnlen(name, CP_NAME_MAX);
    return len > 0 && len < CP_NAME_MAX && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

/* Splits FILES into the streams (main first) and the indexes. */
static int cp_restore_plan(struct cp_restore *r, const struct cp_file *files, int nfiles, char *err,
                           size_t errlen)
{
    int nmain = 0;
    r->nstreams = 1;
    for (int i = 0; i < nfiles; i++) {
        const struct cp_file *f = &files[i];
        if (!cp_name_ok(f->name))
            return cp_msg(err, errlen, -EINVAL, "bad file name \"%.*s\"", CP_NAME_MAX, f->name);
        if (f->kind == CP_MAIN && nmain++ == 0)
            r->streams[0].f = *f;
        else if (f->kind == CP_CHANNEL && r->nstreams <= CP_MAX_CHANNELS)
            r->streams[r->nstreams++].f = *f;
        else if (f->kind == CP_INDEX && r->nindex < CP_MAX_CHANNELS)
            r->index[r->nindex++] = *f;
        else
            return cp_msg(err, errlen, -EINVAL, "%s: one main, at most %d channels and indexes",
                          f->name, CP_MAX_CHANNELS);
    }
    if (nmain == 0)
        return cp_msg(err, errlen, -EINVAL, "no main stream among the files");
    /* Each stream holds its file reader's buffers; a zstd one, output and a window of a frame. */
    int zstd = 0;
    for (int i = 0; i < r->nstreams; i++)
        zstd |= r->streams[i].f.zstd;
    if (r->buf_size == 0)
        r->buf_size = cp_buf_share(r->nstreams, CP_IO_BUFS + (zstd ? 2 : 0));
    return cp_buf_size(&r->buf_size, err, errlen);
}

/* The file and, for zstd, the stream it held match the manifest: called once the stream's last
 * byte is taken, before it is sent. */
static int cp_restore_check(struct cp_restore_stream *st, char *why, size_t whylen)
{
    const struct cp_file *f = &st->f;
    int r = st->z ? cp_zreader_end(st->z, why, whylen) : 0;
    if (r == 0)
        r = cp_freader_check(st->rd, f->size, f->xxh3, why, whylen);
    if (r < 0 || !st->z)
        return r;
    uint64_t h = cp_zreader_xxh3(st->z);
    if (cp_zreader_size(st->z) != f->stream_size)
        return cp_msg(why, whylen, -EBADMSG, "holds a stream of %llu bytes, expected %llu",
                      (unsigned long long)cp_zreader_size(st->z),
                      (unsigned long long)f->stream_size);
    if (h != f->stream_xxh3)
        return cp_msg(why, whylen, -EBADMSG,
                      "stream checksum mismatch (xxh3 %016llx, expected %016llx)",
                      (unsigned long long)h, (unsigned long long)f->stream_xxh3);
    return 0;
}

/* Takes the next chunk of the stream into DATA. The chunk that ends the stream comes only once
 * cp_restore_check passed, so that QEMU cannot complete a restore from a damaged file. */
static int cp_restore_next(struct cp_restore_stream *st, char *why, size_t whylen)
{
    const struct cp_file *f = &st->f;
    int first = st->taken == 0;
    ssize_t n;
    if (st->z) {
        uint64_t left = f->stream_size - st->taken;
        n = cp_zreader_read(st->z, &st->data, left < SIZE_MAX ? (size_t)left : SIZE_MAX, why,
                            whylen);
    } else {
        n = cp_freader_fill(st->rd, &st->data, why, whylen);
    }
    if (n < 0)
        return (int)n;
    st->len = (size_t)n;
    st->done = 0;
    st->taken += (uint64_t)n;
    /* What the file holds is told by the manifest and its first bytes, never by its name. */
    if (first && !st->z && n >= 4 && cp_get_be32(st->data) == CP_ZSTD_MAGIC_BE)
        return cp_msg(why, whylen, -EBADMSG,
                      "holds zstd frames, but the manifest says it is not compressed");
    if (st->z)
        st->last = n == 0 || st->taken >= f->stream_size;
    else
        st->last = n == 0 || cp_freader_size(st->rd) >= f->size;
    return st->last ? cp_restore_check(st, why, whylen) : 0;
}

/* Opens the stream's file, whose I/O thread starts reading ahead at once. */
static int cp_restore_open_stream(struct cp_restore_stream *st, char *why, size_t whylen)
{
    struct cp_restore *r = st->r;
    int rc = cp_freader_open(&st->rd, r->dir, st->f.name, r->buf_size, r->direct_io, why, whylen);
    if (rc < 0)
        return rc;
    /* The whole file is checked at its end; a wrong size shows now, before QEMU sees a byte. */
    uint64_t size = cp_freader_file_size(st->rd);
    if (size != st->f.size)
        return cp_msg(why, whylen, -EBADMSG, "%s/%s has %llu bytes, expected %llu", r->dir,
                      st->f.name, (unsigned long long)size, (unsigned long long)st->f.size);
    if (st->f.zstd && (rc = cp_zreader_open(&st->z, st->rd, r->buf_size, why, whylen)) < 0)
        return rc;
    return 0;
}

/* Takes the stream's first chunk, which must hold a channel's handshake. */
static int cp_restore_first(struct cp_restore_stream *st, char *why, size_t whylen)
{
    int rc = cp_restore_next(st, why, whylen);
    if (rc < 0)
        return rc;
    if (st->f.kind == CP_CHANNEL && st->len < CP_MULTIFD_HANDSHAKE_LEN)
        return cp_msg(why, whylen, -EBADMSG, "%s/%s is shorter than a multifd handshake",
                      st->r->dir, st->f.name);
    return 0;
}

/* Waits until the socket takes bytes again, at most stall_ms. */
static int cp_restore_wait(struct cp_restore_stream *st, char *why, size_t whylen)
{
    struct pollfd pfd = {.fd = st->fd, .events = POLLOUT};
    int n = poll(&pfd, 1, st->r->stall_ms ? st->r->stall_ms : -1);
    if (n < 0 && errno != EINTR)
        return cp_errno_msg(why, whylen, -errno, "poll socket");
    if (n == 0)
        return cp_msg(why, whylen, -ETIMEDOUT, "QEMU took no byte for %d ms (%llu of %llu sent)",
                      st->r->stall_ms, (unsigned long long)st->sent,
                      (unsigned long long)st->f.size);
    return 0;
}

static int cp_restore_send(struct cp_restore_stream *st, const uint8_t *p, size_t n, char *why,
                           size_t whylen)
{
    while (n > 0) {
        ssize_t w = send(st->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        int e = w < 0 ? errno : 0;
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            st->sent += (uint64_t)w;
            atomic_fetch_add(&st->r->bytes, (uint64_t)w);
        } else if (e == EAGAIN || e == EINTR) {
            int r = cp_restore_wait(st, why, whylen);
            if (r < 0)
                return r;
        } else if (e == EPIPE || e == ECONNRESET) {
            return cp_msg(why, whylen, -EPIPE,
                          "QEMU closed the connection after %llu of %llu bytes",
                          (unsigned long long)st->sent, (unsigned long long)st->f.size);
        } else {
            return cp_errno_msg(why, whylen, -e, "write socket");
        }
    }
    return 0;
}

/* Connects the stream's socket; a channel's handshake goes out at once. */
static int cp_restore_connect(struct cp_restore_stream *st, int slot, const char *sock_path,
                              char *why, size_t whylen)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(sock_path) >= sizeof(a.sun_path))
        return cp_msg(why, whylen, -ENAMETOOLONG, "socket path too long: %s", sock_path);
    strcpy(a.sun_path, sock_path);
    st->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (st->fd < 0)
        return cp_errno_msg(why, whylen, -errno, "socket");
    cp_fail_add_sock(&st->r->fail, slot, st->fd);
    /* Past QEMU's listen backlog, connect blocks until an accept; SO_SNDTIMEO bounds that wait
     * (connect then fails with EAGAIN). 0 means no bound. */
    int ms = st->r->stall_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    if (setsockopt(st->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
        return cp_errno_msg(why, whylen, -errno, "SO_SNDTIMEO");
    /* Room for a whole buffer in the socket: QEMU is woken once per buffer, not every 200 KiB
     * (net.core.wmem_max caps it; less is only slower). */
    int sndbuf = (int)st->r->buf_size;
    (void)setsockopt(st->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    if (connect(st->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if (errno == EAGAIN)
            return cp_msg(why, whylen, -ETIMEDOUT, "QEMU accepted no connection for %d ms", ms);
        return cp_errno_msg(why, whylen, -errno, "connect %s", sock_path);
    }
    if (st->f.kind != CP_CHANNEL)
        return 0;
    st->done = CP_MULTIFD_HANDSHAKE_LEN;
    return cp_restore_send(st, st->data, CP_MULTIFD_HANDSHAKE_LEN, why, whylen);
}

/* Sends the rest of the stream, chunk by chunk. */
static int cp_restore_pump(struct cp_restore_stream *st, char *why, size_t whylen)
{
    int r = 0;
    for (;;) {
        r = cp_restore_send(st, st->data + st->done, st->len - st->done, why, whylen);
        if (r < 0 || st->last)
            break;
        r = cp_restore_next(st, why, whylen);
        if (r < 0)
            return r;
    }
    /* The destination may be gone once it has read everything. */
    if (r == 0 && shutdown(st->fd, SHUT_WR) < 0 && errno != ENOTCONN)
        r = cp_errno_msg(why, whylen, -errno, "shutdown socket");
    return r;
}

static void *cp_restore_stream_main(void *arg)
{
    struct cp_restore_stream *st = arg;
    char why[CP_ERR_MAX], msg[CP_ERR_MAX];
    int r = cp_restore_pump(st, why, sizeof(why));
    if (r < 0)
        cp_fail(&st->r->fail, cp_msg(msg, sizeof(msg), r, "%s: %s", st->f.name, why), msg);
    cp_live_end(&st->r->live, 1);
    return NULL;
}

static int cp_restore_init(struct cp_restore *r, const char *dir, const struct cp_opts *opts,
                           char *err, size_t errlen)
{
    r->joined = 1; /* no thread yet */
    cp_fail_init(&r->fail);
    if (cp_live_init(&r->live, 0) < 0)
        return cp_errno_msg(err, errlen, -errno, "restore: eventfd");
    for (int i = 0; i <= CP_MAX_CHANNELS; i++) {
        r->streams[i].r = r;
        r->streams[i].fd = -1;
    }
    r->stall_ms = opts->stall_ms > 0 ? opts->stall_ms : 0;
    r->direct_io = opts->direct_io;
    r->buf_size = opts->buf_size;
    if (strlen(dir) >= sizeof(r->dir))
        return cp_msg(err, errlen, -ENAMETOOLONG, "directory path too long: %s", dir);
    strcpy(r->dir, dir);
    return 0;
}

/* Opens every file, then takes each one's first chunk: the first reads of all files overlap
 * (on a network store each is a round trip: one file after the other took 0.06-0.12 s of a
 * 1.6 s restore, this 0.03-0.06 s; GlusterFS, 5 files, contrib/bench --gluster). */
static int cp_restore_open_all(struct cp_restore *r, char *err, size_t errlen)
{
    char why[CP_ERR_MAX];
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < r->nstreams; i++) {
            struct cp_restore_stream *st = &r->streams[i];
            int rc = pass ? cp_restore_first(st, why, sizeof(why))
                          : cp_restore_open_stream(st, why, sizeof(why));
            if (rc < 0)
                return cp_msg(err, errlen, rc, "%s: %s", st->f.name, why);
        }
    return 0;
}

/* Connects in order. */
static int cp_restore_connect_all(struct cp_restore *r, const char *sock_path, char *err,
                                  size_t errlen)
{
    char why[CP_ERR_MAX];
    for (int i = 0; i < r->nstreams; i++) {
        int rc = cp_restore_connect(&r->streams[i], 1 + i, sock_path, why, sizeof(why));
        if (rc < 0)
            return cp_msg(err, errlen, rc, "%s: %s", r->streams[i].f.name, why);
    }
    return 0;
}

static int cp_restore_run(struct cp_restore *r, char *err, size_t errlen)
{
    cp_live_add(&r->live, r->nstreams);
    r->joined = 0;
    for (int i = 0; i < r->nstreams; i++) {
        struct cp_restore_stream *st = &r->streams[i];
        int rc = cp_thread_start(&st->thread, cp_restore_stream_main, st);
        if (rc < 0) {
            cp_live_end(&r->live, r->nstreams - i);
            cp_errno_msg(err, errlen, rc, "%s: thread", st->f.name);
            cp_fail(&r->fail, rc, err); /* wakes the threads already started */
            return rc;
        }
        st->started = 1;
    }
    return 0;
}

int cp_restore_open(struct cp_restore **out, const char *dir, const struct cp_file *files,
                    int nfiles, const struct cp_opts *opts, char *err, size_t errlen)
{
    struct cp_restore *r = calloc(1, sizeof(*r));
    int rc = -ENOMEM;
    if (r == NULL) {
        cp_msg(err, errlen, rc, "restore: out of memory");
        goto out;
    }
    rc = cp_restore_init(r, dir, opts, err, errlen);
    if (rc == 0)
        rc = cp_restore_plan(r, files, nfiles, err, errlen);
    if (rc == 0)
        rc = cp_restore_open_all(r, err, errlen);
out:
    if (rc < 0) {
        cp_restore_free(r);
        r = NULL;
    }
    *out = r;
    return rc;
}

int cp_restore_start(struct cp_restore *r, const char *sock_path, char *err, size_t errlen)
{
    int rc = cp_restore_connect_all(r, sock_path, err, errlen);
    return rc < 0 ? rc : cp_restore_run(r, err, errlen);
}

uint64_t cp_restore_bytes(struct cp_restore *r)
{
    return atomic_load(&r->bytes);
}

int cp_restore_done(struct cp_restore *r)
{
    return cp_live_done(&r->live);
}

int cp_restore_done_fd(struct cp_restore *r)
{
    return r->live.efd;
}

void cp_restore_cancel(struct cp_restore *r)
{
    cp_fail(&r->fail, -ECANCELED, "restore cancelled");
}

static void cp_restore_join(struct cp_restore *r)
{
    if (r->joined)
        return;
    for (int i = 0; i < r->nstreams; i++) {
        if (r->streams[i].started)
            pthread_join(r->streams[i].thread, NULL);
    }
    r->joined = 1;
}

/* QEMU hangs up on the first damaged bytes it parses, often before savefs has read the file that
 * held them to its end and found its checksum wrong, and the stream that meets the hang-up may
 * be another: after a hang-up the files not checked whole yet are read, and a damaged one is
 * the reason given. */
static int cp_restore_blame_file(struct cp_restore *r, int rc, char *err, size_t errlen)
{
    char why[CP_ERR_MAX];

    for (int i = 0; rc == -EPIPE && i < r->nstreams; i++) {
        if (r->streams[i].last)
            continue;
        if (cp_verify_file(r->dir, &r->streams[i].f, why, sizeof(why)) == -EBADMSG)
            rc = cp_msg(err, errlen, -EBADMSG, "%s (QEMU hung up on it)", why);
    }
    return rc;
}

int cp_restore_finish(struct cp_restore *r, char *err, size_t errlen)
{
    cp_restore_join(r);
    int rc = cp_restore_blame_file(r, cp_fail_get(&r->fail, err, errlen), err, errlen);
    for (int i = 0; rc == 0 && i < r->nindex; i++)
        rc = cp_verify_file(r->dir, &r->index[i], err, errlen);
    return rc;
}

void cp_restore_free(struct cp_restore *r)
{
    if (r == NULL)
        return;
    if (!r->joined) {
        cp_restore_cancel(r);
        cp_restore_join(r);
    }
    for (int i = 0; i < r->nstreams; i++) {
        cp_zreader_free(r->streams[i].z);
        cp_freader_free(r->streams[i].rd);
        if (r->streams[i].fd >= 0)
            close(r->streams[i].fd);
    }
    cp_live_destroy(&r->live);
    cp_fail_destroy(&r->fail);
    free(r);
}

int cp_verify_file(const char *dir, const struct cp_file *f, char *err, size_t errlen)
{
    char why[CP_ERR_MAX];
    struct cp_freader *rd = NULL;
    int r = cp_name_ok(f->name) ? 0 : cp_msg(why, sizeof(why), -EINVAL, "bad file name");
    if (r == 0)
        r = cp_freader_open(&rd, dir, f->name, 0, 1, why, sizeof(why));
    while (r == 0) {
        const uint8_t *data;
        ssize_t n = cp_freader_fill(rd, &data, why, sizeof(why));
        if (n <= 0) {
            r = (int)n;
            break;
        }
    }
    if (r == 0)
        r = cp_freader_check(rd, f->size, f->xxh3, why, sizeof(why));
    if (r < 0)
        cp_msg(err, errlen, r, "%.*s: %s", CP_NAME_MAX, f->name, why);
    cp_freader_free(rd);
    return r;
}
