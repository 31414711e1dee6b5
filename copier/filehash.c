/* filehash: the XXH3 of a whole file read by several threads at once, hashed in order by the
 * caller's thread (copier.h: cp_hash_file). For a checkpoint's captured disk images: a clone is a
 * new inode, none of its blocks in the page cache, and one read at a time leaves the device idle
 * between requests. Reads are O_DIRECT where the file system allows it, into 2 MiB buffers on
 * huge pages (stream.c: one request each); a chunk that is all hole is not read at all, and
 * hashes as the zeros it reads as. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <xxhash.h>

#include "copier.h"
#include "stream.h"
#include "worker.h"

#define FH_CHUNK   CP_BUF_DEFAULT
#define FH_READERS 4
#define FH_SLOTS   (2 * FH_READERS) /* chunk C is read into slot C % FH_SLOTS */

struct fh_slot {
    uint8_t *buf;
    size_t len;
    uint64_t chunk;
    int ready; /* holds chunk CHUNK's LEN bytes, not hashed yet */
    int hole;  /* ... which are all zero: hashed from fh_zeros, BUF untouched */
};

/* Never written (.bss, not const: a const array may land in the binary): its pages are the
 * kernel's zero page. */
static uint8_t fh_zeros[FH_CHUNK];

struct fh {
    /* set before the readers start */
    char path[PATH_MAX];
    int fd;
    uint64_t size, nchunks;
    struct fh_slot slot[FH_SLOTS];
    /* guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t next;   /* the next chunk a reader takes */
    uint64_t hashed; /* chunks hashed: chunk C's slot is free once C < HASHED + FH_SLOTS */
    int err, stop;
    char why[CP_ERR_MAX];
};

/* Chunk C of F into BUF: LEN bytes (the file's size at open); 1 for a chunk that is all hole,
 * not read. */
static int fh_read(struct fh *f, uint64_t c, uint8_t *buf, size_t len, char *why, size_t wlen)
{
    off_t off = (off_t)(c * FH_CHUNK), data = lseek(f->fd, off, SEEK_DATA);
    size_t got = 0;

    /* All hole, or past the last data (ENXIO). */
    if ((data < 0 && errno == ENXIO) || (data >= 0 && data >= off + (off_t)len))
        return 1;
    while (got < len) {
        /* Whole blocks under O_DIRECT: the last may end past the file's end (a short read). */
        size_t want = (len - got + CP_ALIGN - 1) / CP_ALIGN * CP_ALIGN;
        ssize_t n = pread(f->fd, buf + got, want, off + (off_t)got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cp_errno_msg(why, wlen, -errno, "read %s", f->path);
        if (n == 0)
            return cp_msg(why, wlen, -EIO, "%s shrank while it was read", f->path);
        got += (size_t)n;
    }
    return 0;
}

static void *fh_reader(void *arg)
{
    struct fh *f = arg;
    char why[CP_ERR_MAX];

    pthread_mutex_lock(&f->lock);
    for (;;) {
        while (!f->stop && !f->err && f->next < f->nchunks && f->next >= f->hashed + FH_SLOTS)
            pthread_cond_wait(&f->cond, &f->lock);
        if (f->stop || f->err || f->next >= f->nchunks)
            break;
        uint64_t c = f->next++;
        struct fh_slot *s = &f->slot[c % FH_SLOTS];
        size_t len = c + 1 < f->nchunks ? FH_CHUNK : (size_t)(f->size - c * FH_CHUNK);
        pthread_mutex_unlock(&f->lock);
        int r = fh_read(f, c, s->buf, len, why, sizeof(why));
        pthread_mutex_lock(&f->lock);
        if (r < 0 && !f->err) {
            f->err = r;
            snprintf(f->why, sizeof(f->why), "%s", why);
        }
        s->len = len;
        s->chunk = c;
        s->ready = r >= 0;
        s->hole = r == 1;
        pthread_cond_broadcast(&f->cond);
    }
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

/* Hashes the chunks in order as the readers bring them. */
static int fh_hash(struct fh *f, XXH3_state_t *h)
{
    int r = 0;

    for (uint64_t c = 0; !r && c < f->nchunks; c++) {
        struct fh_slot *s = &f->slot[c % FH_SLOTS];

        pthread_mutex_lock(&f->lock);
        while (!f->err && !(s->ready && s->chunk == c))
            pthread_cond_wait(&f->cond, &f->lock);
        r = f->err;
        pthread_mutex_unlock(&f->lock);
        if (r)
            break;
        (void)XXH3_64bits_update(h, s->hole ? fh_zeros : s->buf, s->len);
        pthread_mutex_lock(&f->lock);
        s->ready = 0;
        f->hashed = c + 1;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->lock);
    }
    return r;
}

static int fh_open(struct fh *f, const char *dir, const char *name, char *err, size_t errlen)
{
    off_t end;
    int r = 0, direct;

    if (snprintf(f->path, sizeof(f->path), "%s/%s", dir, name) >= (int)sizeof(f->path))
        return cp_msg(err, errlen, -ENAMETOOLONG, "%s/%s: path too long", dir, name);
    f->fd = cp_open_direct(f->path, O_RDONLY | O_CLOEXEC, 1, &direct);
    if (f->fd < 0)
        return cp_errno_msg(err, errlen, f->fd, "open %s", f->path);
    end = lseek(f->fd, 0, SEEK_END);
    if (end < 0)
        return cp_errno_msg(err, errlen, -errno, "seek %s", f->path);
    f->size = (uint64_t)end;
    f->nchunks = (f->size + FH_CHUNK - 1) / FH_CHUNK;
    for (int i = 0; r >= 0 && i < FH_SLOTS; i++)
        r = cp_buf_map(&f->slot[i].buf, FH_CHUNK, err, errlen);
    return r < 0 ? r : 0;
}

int cp_hash_file(const char *dir, const char *name, uint64_t *size, uint64_t *xxh3, char *err,
                 size_t errlen)
{
    struct fh f = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    XXH3_state_t *h = XXH3_createState();
    pthread_t readers[FH_READERS];
    int started = 0, r = h ? fh_open(&f, dir, name, err, errlen) : -ENOMEM;

    if (h)
        (void)XXH3_64bits_reset(h);
    else
        cp_msg(err, errlen, r, "out of memory");
    for (; r == 0 && started < FH_READERS && (uint64_t)started < f.nchunks; started++)
        if ((r = cp_thread_start(&readers[started], fh_reader, &f)) < 0)
            cp_errno_msg(err, errlen, r, "start a reader of %s", f.path);
    if (r == 0 && (r = fh_hash(&f, h)) < 0)
        cp_msg(err, errlen, r, "%s", f.why);
    pthread_mutex_lock(&f.lock);
    f.stop = 1;
    pthread_cond_broadcast(&f.cond);
    pthread_mutex_unlock(&f.lock);
    while (started > 0)
        pthread_join(readers[--started], NULL);
    if (r == 0) {
        *size = f.size;
        *xxh3 = XXH3_64bits_digest(h);
    }
    for (int i = 0; i < FH_SLOTS; i++)
        cp_buf_unmap(f.slot[i].buf, FH_CHUNK);
    if (f.fd >= 0)
        close(f.fd);
    XXH3_freeState(h);
    return r;
}
