/* stream: the file side of a copy: the stage interface, the file writer that ends every write
 * path, the file reader, XXH3 on both. Each object is used by one thread at a time. */
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "worker.h"

struct cp_fwriter {
    struct cp_stage stage; /* first: the stage callbacks cast back to the writer */
    char path[PATH_MAX];
    int fd;
    int direct; /* 1 while O_DIRECT is on */
    uint8_t *buf;
    size_t cap, len; /* buffer size; bytes held */
    uint64_t size;   /* bytes committed */
    XXH3_state_t *xxh;
};

struct cp_freader {
    char path[PATH_MAX];
    int fd;
    int direct;
    uint8_t *buf;
    size_t cap;
    uint64_t size;      /* bytes read so far */
    uint64_t file_size; /* at open */
    XXH3_state_t *xxh;
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

/* Turns O_DIRECT on or off for FD: 0, or -errno (-EINVAL where the file system has no direct
 * I/O). It is set with fcntl after open because open(O_CREAT | O_EXCL | O_DIRECT) on such a
 * file system (ramfs; tmpfs before Linux 6.6) creates the file before it fails with EINVAL, and
 * the retry without O_DIRECT would then meet EEXIST. */
static int cp_set_direct(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    fl = on ? fl | O_DIRECT : fl & ~O_DIRECT;
    if (fcntl(fd, F_SETFL, fl) < 0)
        return -errno;
    return 0;
}

/* Direct I/O if asked for and possible: 1 on, 0 buffered, or -errno. */
static int cp_try_direct(int fd, int direct_io, const char *path, char *err, size_t errlen)
{
    if (!direct_io)
        return 0;
    int r = cp_set_direct(fd, 1);
    if (r == -EINVAL)
        return 0;
    if (r < 0)
        return cp_errno_msg(err, errlen, r, "fcntl O_DIRECT %s", path);
    return 1;
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
 * next buffers would then come from, and stay in, the arenas of short-lived stream threads. */
int cp_buf_map(uint8_t **buf, size_t cap, char *err, size_t errlen)
{
    void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        *buf = NULL;
        return cp_errno_msg(err, errlen, -errno, "buffer of %zu bytes", cap);
    }
    *buf = p;
    return 0;
}

void cp_buf_unmap(uint8_t *buf, size_t cap)
{
    if (buf != NULL)
        munmap(buf, cap);
}

/* An aligned buffer and a fresh XXH3 state. */
static int cp_buf_alloc(uint8_t **buf, size_t cap, XXH3_state_t **xxh, char *err, size_t errlen)
{
    int r = cp_buf_map(buf, cap, err, errlen);
    if (r < 0)
        return r;
    *xxh = XXH3_createState();
    if (*xxh == NULL || XXH3_64bits_reset(*xxh) != XXH_OK)
        return cp_msg(err, errlen, -ENOMEM, "XXH3 state: out of memory");
    return 0;
}

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

static int cp_fwriter_flush(struct cp_fwriter *w, char *err, size_t errlen)
{
    int r = cp_write_all(w->fd, w->buf, w->len, w->path, err, errlen);
    w->len = 0;
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
    return cp_fwriter_flush(w, err, errlen);
}

int cp_fwriter_reserve(struct cp_fwriter *w, size_t n, char *err, size_t errlen)
{
    if (w->cap - w->len >= n)
        return 0;
    if (n > w->cap - CP_ALIGN)
        return cp_msg(err, errlen, -EINVAL, "%s: %zu bytes do not fit a buffer of %zu", w->path,
                      n, w->cap);
    size_t whole = w->direct ? w->len - w->len % CP_ALIGN : w->len;
    int r = cp_write_all(w->fd, w->buf, whole, w->path, err, errlen);
    if (r < 0)
        return r;
    memmove(w->buf, w->buf + whole, w->len - whole);
    w->len -= whole;
    return 0;
}

/* Writes what the buffer holds, then makes the file durable. With O_DIRECT the whole blocks go
 * first and O_DIRECT comes off for the partial last block, which goes through the page cache
 * and fdatasync: no padding to write and truncate away, and the file never holds a byte that
 * is not the stream's. */
static int cp_fwriter_finish(struct cp_stage *st, char *err, size_t errlen)
{
    struct cp_fwriter *w = (struct cp_fwriter *)st;
    size_t whole = w->direct ? w->len - w->len % CP_ALIGN : 0;
    int r = cp_write_all(w->fd, w->buf, whole, w->path, err, errlen);
    if (r < 0)
        goto out;
    if (whole < w->len && w->direct) {
        r = cp_set_direct(w->fd, 0);
        if (r < 0) {
            cp_errno_msg(err, errlen, r, "fcntl %s", w->path);
            goto out;
        }
        w->direct = 0;
    }
    r = cp_write_all(w->fd, w->buf + whole, w->len - whole, w->path, err, errlen);
    if (r < 0)
        goto out;
    w->len = 0;
    if (fdatasync(w->fd) < 0) {
        r = cp_errno_msg(err, errlen, -errno, "fdatasync %s", w->path);
        goto out;
    }
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) < 0)
        r = cp_errno_msg(err, errlen, -errno, "close %s", w->path);
out:
    return r;
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
    r = cp_buf_alloc(&w->buf, w->cap, &w->xxh, err, errlen);
    if (r < 0)
        goto out;
    w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        r = cp_errno_msg(err, errlen, -errno, "create %s", w->path);
        goto out;
    }
    r = cp_try_direct(w->fd, direct_io, w->path, err, errlen);
    if (r < 0)
        goto out;
    w->direct = r;
    r = 0;
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
    if (w->fd >= 0)
        close(w->fd); /* the copy has failed already; nothing to report */
    XXH3_freeState(w->xxh);
    cp_buf_unmap(w->buf, w->cap);
    free(w);
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
    r = cp_buf_size(&buf_size, err, errlen);
    if (r < 0)
        goto out;
    rd->cap = buf_size;
    r = cp_path(rd->path, sizeof(rd->path), dir, name, err, errlen);
    if (r < 0)
        goto out;
    r = cp_buf_alloc(&rd->buf, rd->cap, &rd->xxh, err, errlen);
    if (r < 0)
        goto out;
    rd->fd = open(rd->path, O_RDONLY | O_CLOEXEC);
    if (rd->fd < 0) {
        r = cp_errno_msg(err, errlen, -errno, "open %s", rd->path);
        goto out;
    }
    off_t end = lseek(rd->fd, 0, SEEK_END);
    if (end < 0 || lseek(rd->fd, 0, SEEK_SET) < 0) {
        r = cp_errno_msg(err, errlen, -errno, "seek %s", rd->path);
        goto out;
    }
    rd->file_size = (uint64_t)end;
    r = cp_try_direct(rd->fd, direct_io, rd->path, err, errlen);
    if (r < 0)
        goto out;
    rd->direct = r;
    r = 0;
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
    size_t got = 0;
    while (got < r->cap) {
        ssize_t n = read(r->fd, r->buf + got, r->cap - got);
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
            int e = cp_set_direct(r->fd, 0);
            if (e < 0)
                return cp_errno_msg(err, errlen, e, "fcntl %s", r->path);
            r->direct = 0;
        }
    }
    (void)XXH3_64bits_update(r->xxh, r->buf, got);
    r->size += got;
    *data = r->buf;
    return (ssize_t)got;
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
    if (r->fd >= 0)
        close(r->fd); /* read-only: nothing to lose */
    XXH3_freeState(r->xxh);
    cp_buf_unmap(r->buf, r->cap);
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
