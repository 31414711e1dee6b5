/* stream: the file side of a copy: the stage interface, the file writer that ends every write
 * path, the file reader, XXH3 on both. Each object is used by one thread at a time. */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "worker.h"

/* Buffers in order, handed between a stream's thread and its file's I/O thread. */
struct cp_bufq {
    uint8_t *buf[CP_IO_BUFS];
    size_t len[CP_IO_BUFS];
    unsigned head, count;
};

/* A file's I/O thread and the two queues it shares with the stream's thread: the disk works
 * on one buffer while the stream's thread fills or empties another. */
struct cp_io {
    pthread_mutex_t lock; /* guards all below */
    pthread_cond_t cond;  /* any change */
    struct cp_bufq todo;  /* to the I/O thread: full buffers to write, or empty ones to fill */
    struct cp_bufq done;  /* back from it: emptied buffers, or filled ones */
    int stop;             /* the stream's side is going: the I/O thread ends */
    int ended;            /* the I/O thread has ended (reader: at EOF or an error) */
    int err;              /* its first error, 0 if none */
    char msg[CP_ERR_MAX];
    pthread_t thread;
    int started;
};

struct cp_fwriter {
    struct cp_stage stage; /* first: the stage callbacks cast back to the writer */
    char path[PATH_MAX];
    int fd;
    int direct; /* 1 while O_DIRECT is on */
    uint8_t *all[CP_IO_BUFS];
    uint8_t *buf;    /* the one being filled */
    size_t cap, len; /* buffer size; bytes held */
    uint64_t size;   /* bytes committed */
    XXH3_state_t *xxh;
    struct cp_io io;
};

struct cp_freader {
    char path[PATH_MAX];
    int fd;
    int direct; /* the I/O thread's once it runs */
    uint8_t *all[CP_IO_BUFS];
    uint8_t *held; /* the buffer the stream's thread reads, NULL if none */
    size_t cap;
    uint64_t size;      /* bytes taken so far */
    uint64_t file_size; /* at open */
    XXH3_state_t *xxh;
    struct cp_io io;
};

int cp_stage_put(struct cp_stage *st, const void *buf, size_t len, char *err, size_t errlen)
{
    const uint8_t *p = buf;
    while (len > 0) {
        size_t room;
        uint8_t *dst = st->room(st, &room);
        size_t n = len < room ? len : room;
        memcpy(dst, p, n);
        int r = st->commit(st, n, err, errlen);
        if (r < 0)
            return r;
        p += n;
        len -= n;
    }
    return 0;
}

static int cp_path(char *path, size_t len, const char *dir, const char *name, char *err,
                   size_t errlen)
{
    int n = snprintf(path, len, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= len)
        return cp_msg(err, errlen, -ENAMETOOLONG, "%s/%s: path too long", dir, name);
    return 0;
}

/* Turns O_DIRECT off for FD (the partial last block of a file goes through the page cache). */
static int cp_direct_off(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_DIRECT) < 0)
        return -errno;
    return 0;
}

int cp_open_direct(const char *path, int flags, int direct_io, int *direct)
{
    int fd;

    *direct = 0;
    if (direct_io) {
        fd = open(path, flags | O_DIRECT);
        if (fd >= 0) {
            *direct = 1;
            return fd;
        }
        if (errno != EINVAL)
            return -errno;
    }
    fd = open(path, flags);
    return fd < 0 ? -errno : fd;
}

ssize_t cp_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = pread(fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* A new file, exclusively, and open with O_DIRECT from the start where DIRECT_IO asks for it and
 * the file system allows it: the descriptor (or -errno), *DIRECT saying which. Not in one open:
 * open(O_CREAT | O_EXCL | O_DIRECT) on a file system without direct I/O (ramfs; tmpfs before
 * Linux 6.6) creates the file before it fails with EINVAL, and a retry would meet EEXIST. Nor
 * with O_DIRECT set by fcntl afterwards: a FUSE file system learns of O_DIRECT only at open, and
 * GlusterFS's client then takes 1.3 to 2.4 times the CPU and up to 1.75 times the time for the
 * same writes (4 streams of 175 MiB in 2 MiB writes, replica 3 on this machine). */
static int cp_create_direct(const char *path, int direct_io, int *direct)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), dfd;
    struct stat a, b;

    *direct = 0;
    if (fd < 0 || !direct_io)
        return fd < 0 ? -errno : fd;
    dfd = cp_open_direct(path, O_WRONLY | O_CLOEXEC, 1, direct);
    if (dfd < 0) {
        close(fd);
        return dfd;
    }
    /* Direct, and the same file as created (the directory is this copy's alone: a check, not a
     * defence); else the first descriptor, buffered. */
    if (!*direct || fstat(fd, &a) < 0 || fstat(dfd, &b) < 0 || a.st_ino != b.st_ino ||
        a.st_dev != b.st_dev) {
        close(dfd);
        *direct = 0;
        return fd;
    }
    close(fd);
    return dfd;
}

size_t cp_buf_share(int nstreams, int nbufs)
{
    size_t n = (size_t)(nstreams > 0 ? nstreams : 1) * (size_t)(nbufs > 0 ? nbufs : 1);
    size_t share = CP_MEM_BUDGET / n / CP_ALIGN * CP_ALIGN;
    if (share > CP_BUF_DEFAULT)
        share = CP_BUF_DEFAULT;
    return share < CP_BUF_MIN ? CP_BUF_MIN : share;
}

int cp_buf_size(size_t *buf_size, char *err, size_t errlen)
{
    if (*buf_size == 0)
        *buf_size = CP_BUF_DEFAULT;
    if (*buf_size % CP_ALIGN != 0)
        return cp_msg(err, errlen, -EINVAL, "buffer size %zu is not a multiple of %d", *buf_size,
                      CP_ALIGN);
    return 0;
}

/* Not malloc: glibc raises its mmap threshold after the first free of a large block, and the
 * next buffers would then come from, and stay in, the arenas of short-lived stream threads.
 * Buffers of a huge page or more start on a huge page and ask for transparent huge pages: a
 * buffer of 4 KiB pages scatters into one segment per page, and a block device splits an
 * O_DIRECT transfer at its segment limit (254 on virtio here: 2 MiB went out as three requests
 * of ~700 KiB, and the disk served half the bytes per second it serves 2 MiB requests). */
int cp_buf_map(uint8_t **buf, size_t cap, char *err, size_t errlen)
{
    size_t slack = cap >= CP_HUGE_PAGE ? CP_HUGE_PAGE : 0;
    uint8_t *p =
        mmap(NULL, cap + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        *buf = NULL;
        return cp_errno_msg(err, errlen, -errno, "buffer of %zu bytes", cap);
    }
    *buf = p;
    if (slack == 0)
        return 0;
    size_t head = (CP_HUGE_PAGE - (uintptr_t)p % CP_HUGE_PAGE) % CP_HUGE_PAGE;
    /* Unmapping the ends of a fresh private mapping cannot fail but for lack of memory for
     * the split, which leaves them mapped: harmless. The advice is only a wish (it fails where
     * the kernel has no transparent huge pages). */
    if (head > 0)
        (void)munmap(p, head);
    (void)munmap(p + head + cap, slack - head); /* never empty: head < slack */
    *buf = p + head;
    (void)madvise(*buf, cap, MADV_HUGEPAGE);
    return 0;
}

void cp_buf_unmap(uint8_t *buf, size_t cap)
{
    if (buf != NULL)
        munmap(buf, cap);
}

void *cp_mem_alloc(size_t len)
{
    uint8_t *p;
    char err[CP_ERR_MAX];

    return cp_buf_map(&p, len ? len : 1, err, sizeof(err)) ? NULL : p;
}

void cp_mem_free(void *p, size_t len)
{
    cp_buf_unmap(p, len ? len : 1);
}

/* The buffers of one file, side by side in one mapping (so that buffers smaller than a huge
 * page share huge pages too), and a fresh XXH3 state. */
static int cp_bufs_alloc(uint8_t **all, size_t cap, XXH3_state_t **xxh, char *err, size_t errlen)
{
    int r = cp_buf_map(&all[0], CP_IO_BUFS * cap, err, errlen);
    if (r < 0)
        return r;
    for (int i = 1; i < CP_IO_BUFS; i++)
        all[i] = all[0] + i * cap;
    *xxh = XXH3_createState();
    if (*xxh == NULL || XXH3_64bits_reset(*xxh) != XXH_OK)
        return cp_msg(err, errlen, -ENOMEM, "XXH3 state: out of memory");
    return 0;
}

static void cp_bufs_free(uint8_t **all, size_t cap, XXH3_state_t *xxh)
{
    cp_buf_unmap(all[0], CP_IO_BUFS * cap);
    XXH3_freeState(xxh);
}

/* ---- the I/O thread's queues ---- */

static void cp_bufq_push(struct cp_bufq *q, uint8_t *buf, size_t len)
{
    unsigned i = (q->head + q->count++) % CP_IO_BUFS;
    q->buf[i] = buf;
    q->len[i] = len;
}

static uint8_t *cp_bufq_pop(struct cp_bufq *q, size_t *len)
{
    uint8_t *buf = q->buf[q->head];
    *len = q->len[q->head];
    q->head = (q->head + 1) % CP_IO_BUFS;
    q->count--;
    return buf;
}

static void cp_io_init(struct cp_io *io)
{
    pthread_mutex_init(&io->lock, NULL);
    pthread_cond_init(&io->cond, NULL);
}

static int cp_io_start(struct cp_io *io, void *(*fn)(void *), void *arg, const char *path,
                       char *err, size_t errlen)
{
    int r = cp_thread_start(&io->thread, fn, arg);
    if (r < 0)
        return cp_errno_msg(err, errlen, r, "%s: I/O thread", path);
    io->started = 1;
    return 0;
}

/* Ends the I/O thread (it drops what it was handed) and frees the queues. */
static void cp_io_stop(struct cp_io *io)
{
    if (io->started) {
        pthread_mutex_lock(&io->lock);
        io->stop = 1;
        pthread_cond_broadcast(&io->cond);
        pthread_mutex_unlock(&io->lock);
        pthread_join(io->thread, NULL);
        io->started = 0;
    }
    pthread_cond_destroy(&io->cond);
    pthread_mutex_destroy(&io->lock);
}

/* The I/O thread's error, under the lock: 0, or its code with its message in ERR. */
static int cp_io_error(struct cp_io *io, char *err, size_t errlen)
{
    if (io->err != 0)
        cp_msg(err, errlen, io->err, "%s", io->msg);
    return io->err;
}

/* Records the I/O thread's first error, under the lock. */
static void cp_io_fail(struct cp_io *io, int code, const char *msg)
{
    if (io->err == 0) {
        io->err = code;
        snprintf(io->msg, sizeof(io->msg), "%s", msg);
    }
}

/* ---- the file writer ---- */

static int cp_write_all(int fd, const uint8_t *p, size_t n, const char *path, char *err,
                        size_t errlen)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return cp_errno_msg(err, errlen, -errno, "write %s", path);
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The writer's I/O thread: writes the buffers it is handed, in order, and hands them back.
 * After an error, or once told to stop, it drops them unwritten. */
static void *cp_fwriter_main(void *arg)
{
    struct cp_fwriter *w = arg;
    struct cp_io *io = &w->io;
    char msg[CP_ERR_MAX];
    pthread_mutex_lock(&io->lock);
    for (;;) {
        while (io->todo.count == 0 && !io->stop)
            pthread_cond_wait(&io->cond, &io->lock);
        if (io->todo.count == 0)
            break;
        size_t n;
        uint8_t *buf = cp_bufq_pop(&io->todo, &n);
        int skip = io->err != 0 || io->stop;
        pthread_mutex_unlock(&io->lock);
        int r = skip ? 0 : cp_write_all(w->fd, buf, n, w->path, msg, sizeof(msg));
        pthread_mutex_lock(&io->lock);
        if (r < 0)
            cp_io_fail(io, r, msg);
        cp_bufq_push(&io->done, buf, 0);
        pthread_cond_broadcast(&io->cond);
    }
    io->ended = 1;
    pthread_mutex_unlock(&io->lock);
    return NULL;
}

/* Hands the buffer's first N bytes to the I/O thread and goes on in a free buffer, which gets
 * the bytes held after those N (under O_DIRECT, a partial block). */
static int cp_fwriter_hand(struct cp_fwriter *w, size_t n, char *err, size_t errlen)
{
    struct cp_io *io = &w->io;
    size_t unused;
    pthread_mutex_lock(&io->lock);
    while (io->done.count == 0 && io->err == 0)
        pthread_cond_wait(&io->cond, &io->lock);
    int r = cp_io_error(io, err, errlen);
    if (r == 0) {
        uint8_t *next = cp_bufq_pop(&io->done, &unused);
        memcpy(next, w->buf + n, w->len - n);
        cp_bufq_push(&io->todo, w->buf, n);
        pthread_cond_broadcast(&io->cond);
        w->buf = next;
        w->len -= n;
    }
    pthread_mutex_unlock(&io->lock);
    return r;
}

/* Waits until the I/O thread has written everything it was handed. */
static int cp_fwriter_drain(struct cp_fwriter *w, char *err, size_t errlen)
{
    struct cp_io *io = &w->io;
    pthread_mutex_lock(&io->lock);
    while (io->done.count < CP_IO_BUFS - 1)
        pthread_cond_wait(&io->cond, &io->lock);
    int r = cp_io_error(io, err, errlen);
    pthread_mutex_unlock(&io->lock);
    return r;
}

static uint8_t *cp_fwriter_room(struct cp_stage *st, size_t *len)
{
    struct cp_fwriter *w = (struct cp_fwriter *)st;
    *len = w->cap - w->len;
    return w->buf + w->len;
}

static int cp_fwriter_commit(struct cp_stage *st, size_t n, char *err, size_t errlen)
{
    struct cp_fwriter *w = (struct cp_fwriter *)st;
    (void)XXH3_64bits_update(w->xxh, w->buf + w->len, n);
    w->len += n;
    w->size += n;
    if (w->len < w->cap)
        return 0;
    return cp_fwriter_hand(w, w->len, err, errlen);
}

int cp_fwriter_reserve(struct cp_fwriter *w, size_t n, char *err, size_t errlen)
{
    if (w->cap - w->len >= n)
        return 0;
    if (n > w->cap - CP_ALIGN)
        return cp_msg(err, errlen, -EINVAL, "%s: %zu bytes do not fit a buffer of %zu", w->path, n,
                      w->cap);
    return cp_fwriter_hand(w, w->direct ? w->len - w->len % CP_ALIGN : w->len, err, errlen);
}

/* The partial last block of a direct file, through a descriptor of its own without O_DIRECT
 * at the file's end, made durable: O_DIRECT taken off the direct descriptor by fcntl would not
 * reach a FUSE file system, whose server (GlusterFS with strict-o-direct) opened the file
 * O_DIRECT and refuses an unaligned write with EINVAL. */
static int cp_fwriter_tail(struct cp_fwriter *w, char *err, size_t errlen)
{
    off_t at = lseek(w->fd, 0, SEEK_CUR);
    int fd = at < 0 ? -1 : open(w->path, O_WRONLY | O_CLOEXEC), r = 0;

    if (fd < 0)
        return cp_errno_msg(err, errlen, -errno, "open %s for its last block", w->path);
    if (lseek(fd, at, SEEK_SET) < 0)
        r = cp_errno_msg(err, errlen, -errno, "seek %s", w->path);
    if (r == 0)
        r = cp_write_all(fd, w->buf, w->len, w->path, err, errlen);
    if (r == 0 && fdatasync(fd) < 0)
        r = cp_errno_msg(err, errlen, -errno, "fdatasync %s", w->path);
    if (close(fd) < 0 && r == 0)
        r = cp_errno_msg(err, errlen, -errno, "close %s", w->path);
    return r;
}

/* Writes what the buffer holds, then makes the file durable. With O_DIRECT the whole blocks go
 * first, then the partial last block without O_DIRECT (cp_fwriter_tail): no padding to write
 * and truncate away, and the file never holds a byte that is not the stream's. */
static int cp_fwriter_finish(struct cp_stage *st, char *err, size_t errlen)
{
    struct cp_fwriter *w = (struct cp_fwriter *)st;
    size_t whole = w->direct ? w->len - w->len % CP_ALIGN : w->len;
    int r = whole > 0 ? cp_fwriter_hand(w, whole, err, errlen) : 0;
    if (r == 0)
        r = cp_fwriter_drain(w, err, errlen);
    /* The I/O thread is idle: the descriptor is ours alone. */
    if (r == 0 && w->len > 0)
        r = w->direct ? cp_fwriter_tail(w, err, errlen)
                      : cp_write_all(w->fd, w->buf, w->len, w->path, err, errlen);
    if (r < 0)
        return r;
    w->len = 0;
    if (fdatasync(w->fd) < 0)
        return cp_errno_msg(err, errlen, -errno, "fdatasync %s", w->path);
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) < 0)
        return cp_errno_msg(err, errlen, -errno, "close %s", w->path);
    return 0;
}

int cp_fwriter_open(struct cp_fwriter **out, const char *dir, const char *name, size_t buf_size,
                    int direct_io, char *err, size_t errlen)
{
    struct cp_fwriter *w = calloc(1, sizeof(*w));
    int r = -ENOMEM;
    if (w == NULL) {
        cp_msg(err, errlen, r, "%s/%s: out of memory", dir, name);
        goto out;
    }
    w->fd = -1;
    cp_io_init(&w->io);
    w->stage.room = cp_fwriter_room;
    w->stage.commit = cp_fwriter_commit;
    w->stage.finish = cp_fwriter_finish;
    r = cp_buf_size(&buf_size, err, errlen);
    if (r < 0)
        goto out;
    w->cap = buf_size;
    r = cp_path(w->path, sizeof(w->path), dir, name, err, errlen);
    if (r < 0)
        goto out;
    r = cp_bufs_alloc(w->all, w->cap, &w->xxh, err, errlen);
    if (r < 0)
        goto out;
    w->buf = w->all[0];
    for (int i = 1; i < CP_IO_BUFS; i++)
        cp_bufq_push(&w->io.done, w->all[i], 0);
    w->fd = cp_create_direct(w->path, direct_io, &w->direct);
    if (w->fd < 0) {
        r = cp_errno_msg(err, errlen, w->fd, "create %s", w->path);
        goto out;
    }
    r = cp_io_start(&w->io, cp_fwriter_main, w, w->path, err, errlen);
out:
    if (r < 0) {
        cp_fwriter_free(w);
        w = NULL;
    }
    *out = w;
    return r;
}

struct cp_stage *cp_fwriter_stage(struct cp_fwriter *w)
{
    return &w->stage;
}

int cp_fwriter_direct(const struct cp_fwriter *w)
{
    return w->direct;
}

uint64_t cp_fwriter_size(const struct cp_fwriter *w)
{
    return w->size;
}

uint64_t cp_fwriter_xxh3(const struct cp_fwriter *w)
{
    return XXH3_64bits_digest(w->xxh);
}

int cp_fwriter_discard(struct cp_fwriter *w, char *err, size_t errlen)
{
    int r = 0;
    if (unlink(w->path) < 0)
        r = cp_errno_msg(err, errlen, -errno, "unlink %s", w->path);
    cp_fwriter_free(w);
    return r;
}

void cp_fwriter_free(struct cp_fwriter *w)
{
    if (w == NULL)
        return;
    cp_io_stop(&w->io);
    if (w->fd >= 0)
        close(w->fd); /* the copy has failed already; nothing to report */
    cp_bufs_free(w->all, w->cap, w->xxh);
    free(w);
}

/* ---- the file reader ---- */

/* Reads into BUF until it is full or the file ends: the byte count, or -errno. */
static ssize_t cp_read_full(struct cp_freader *r, uint8_t *buf, char *err, size_t errlen)
{
    size_t got = 0;
    while (got < r->cap) {
        ssize_t n = read(r->fd, buf + got, r->cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cp_errno_msg(err, errlen, -errno, "read %s", r->path);
        if (n == 0)
            break;
        got += (size_t)n;
        /* A partial block is the file's end; the next read, from an unaligned offset, would
         * fail under O_DIRECT. */
        if (r->direct && got % CP_ALIGN != 0) {
            int e = cp_direct_off(r->fd);
            if (e < 0)
                return cp_errno_msg(err, errlen, e, "fcntl %s", r->path);
            r->direct = 0;
        }
    }
    return (ssize_t)got;
}

/* The reader's I/O thread: fills the buffers it is handed, in order, reading ahead of the
 * stream's thread until the file ends or a read fails. */
static void *cp_freader_main(void *arg)
{
    struct cp_freader *r = arg;
    struct cp_io *io = &r->io;
    char msg[CP_ERR_MAX];
    pthread_mutex_lock(&io->lock);
    for (;;) {
        while (io->todo.count == 0 && !io->stop)
            pthread_cond_wait(&io->cond, &io->lock);
        if (io->stop)
            break;
        size_t unused;
        uint8_t *buf = cp_bufq_pop(&io->todo, &unused);
        pthread_mutex_unlock(&io->lock);
        ssize_t n = cp_read_full(r, buf, msg, sizeof(msg));
        pthread_mutex_lock(&io->lock);
        if (n < 0) {
            cp_io_fail(io, (int)n, msg);
            break;
        }
        cp_bufq_push(&io->done, buf, (size_t)n);
        pthread_cond_broadcast(&io->cond);
        if ((size_t)n < r->cap)
            break; /* the end of the file */
    }
    io->ended = 1;
    pthread_cond_broadcast(&io->cond);
    pthread_mutex_unlock(&io->lock);
    return NULL;
}

int cp_freader_open(struct cp_freader **out, const char *dir, const char *name, size_t buf_size,
                    int direct_io, char *err, size_t errlen)
{
    struct cp_freader *rd = calloc(1, sizeof(*rd));
    int r = -ENOMEM;
    if (rd == NULL) {
        cp_msg(err, errlen, r, "%s/%s: out of memory", dir, name);
        goto out;
    }
    rd->fd = -1;
    cp_io_init(&rd->io);
    r = cp_buf_size(&buf_size, err, errlen);
    if (r < 0)
        goto out;
    rd->cap = buf_size;
    r = cp_path(rd->path, sizeof(rd->path), dir, name, err, errlen);
    if (r < 0)
        goto out;
    r = cp_bufs_alloc(rd->all, rd->cap, &rd->xxh, err, errlen);
    if (r < 0)
        goto out;
    for (int i = 0; i < CP_IO_BUFS; i++)
        cp_bufq_push(&rd->io.todo, rd->all[i], 0);
    rd->fd = cp_open_direct(rd->path, O_RDONLY | O_CLOEXEC, direct_io, &rd->direct);
    if (rd->fd < 0) {
        r = cp_errno_msg(err, errlen, rd->fd, "open %s", rd->path);
        goto out;
    }
    off_t end = lseek(rd->fd, 0, SEEK_END);
    if (end < 0 || lseek(rd->fd, 0, SEEK_SET) < 0) {
        r = cp_errno_msg(err, errlen, -errno, "seek %s", rd->path);
        goto out;
    }
    rd->file_size = (uint64_t)end;
    r = cp_io_start(&rd->io, cp_freader_main, rd, rd->path, err, errlen);
out:
    if (r < 0) {
        cp_freader_free(rd);
        rd = NULL;
    }
    *out = rd;
    return r;
}

ssize_t cp_freader_fill(struct cp_freader *r, const uint8_t **data, char *err, size_t errlen)
{
    struct cp_io *io = &r->io;
    size_t n = 0;
    pthread_mutex_lock(&io->lock);
    if (io->done.count == 0 && io->ended) {
        /* Past the end, or the error the buffers before it led up to. */
        int e = cp_io_error(io, err, errlen);
        pthread_mutex_unlock(&io->lock);
        *data = r->held;
        return e;
    }
    if (r->held != NULL) {
        cp_bufq_push(&io->todo, r->held, 0);
        pthread_cond_broadcast(&io->cond);
    }
    while (io->done.count == 0 && !io->ended)
        pthread_cond_wait(&io->cond, &io->lock);
    r->held = io->done.count > 0 ? cp_bufq_pop(&io->done, &n) : NULL;
    int e = r->held == NULL ? cp_io_error(io, err, errlen) : 0;
    pthread_mutex_unlock(&io->lock);
    if (e < 0)
        return e;
    (void)XXH3_64bits_update(r->xxh, r->held, n);
    r->size += n;
    *data = r->held;
    return (ssize_t)n;
}

uint64_t cp_freader_file_size(const struct cp_freader *r)
{
    return r->file_size;
}

uint64_t cp_freader_size(const struct cp_freader *r)
{
    return r->size;
}

int cp_freader_check(struct cp_freader *r, uint64_t size, uint64_t xxh3, char *err, size_t errlen)
{
    if (r->size != size)
        return cp_msg(err, errlen, -EBADMSG, "%s has %llu bytes, expected %llu", r->path,
                      (unsigned long long)r->size, (unsigned long long)size);
    uint64_t h = XXH3_64bits_digest(r->xxh);
    if (h != xxh3)
        return cp_msg(err, errlen, -EBADMSG,
                      "%s: checksum mismatch (xxh3 %016llx, expected %016llx)", r->path,
                      (unsigned long long)h, (unsigned long long)xxh3);
    return 0;
}

void cp_freader_free(struct cp_freader *r)
{
    if (r == NULL)
        return;
    cp_io_stop(&r->io);
    if (r->fd >= 0)
        close(r->fd); /* read-only: nothing to lose */
    cp_bufs_free(r->all, r->cap, r->xxh);
    free(r);
}

int cp_fsync_dir(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cp_errno_msg(err, errlen, -errno, "open %s", dir);
    int r = 0;
    if (fsync(fd) < 0)
        r = cp_errno_msg(err, errlen, -errno, "fsync %s", dir);
    if (close(fd) < 0 && r == 0)
        r = cp_errno_msg(err, errlen, -errno, "close %s", dir);
    return r;
}
