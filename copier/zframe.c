/* zframe: zstd frames with a seek table (format in zframe.h): the compressing stage of a save,
 * the streaming decompressor of a restore, random access through the seek table. The context
 * pool is shared by a save's stream threads; everything else belongs to one thread. */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getCParams, ZSTD_estimateCCtxSize_usingCParams */
#include "zframe.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "bytes.h"
#include "copier.h"
#include "worker.h"

/* A frame's stream size in the seek table is a u32; ours are far smaller. Checked on load so
 * that a hostile table cannot make a reader allocate gigabytes. */
#define CP_ZFRAME_LOAD_MAX (64u << 20)

/* ---- the context pool ---- */

struct cp_zpool {
    /* set before any thread uses the pool */
    int level;
    int max;
    /* guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t returned;
    int made; /* contexts created so far, at most max */
    int nfree;
    ZSTD_CCtx *free[CP_MAX_CHANNELS + 1];
};

int cp_zpool_new(struct cp_zpool **out, int level, size_t frame_size, int nstreams, char *err,
                 size_t errlen)
{
    struct cp_zpool *p = NULL;
    int r = 0;
    if (level < 1 || level > CP_ZSTD_LEVEL_MAX) {
        r = cp_msg(err, errlen, -EINVAL, "zstd level %d: 1 to %d are supported", level,
                   CP_ZSTD_LEVEL_MAX);
        goto out;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        r = cp_msg(err, errlen, -ENOMEM, "zstd contexts: out of memory");
        goto out;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->returned, NULL);
    p->level = level;
    /* ZSTD_compress2 sizes its tables for the frame it is given, so the estimate for a frame of
     * FRAME_SIZE bytes is what a context grows to. */
    size_t each = ZSTD_estimateCCtxSize_usingCParams(ZSTD_getCParams(level, frame_size, 0));
    size_t fit = each ? CP_ZPOOL_BUDGET / each : 1;
    int limit = nstreams < 1 ? 1 : nstreams > CP_MAX_CHANNELS + 1 ? CP_MAX_CHANNELS + 1 : nstreams;
    p->max = fit < 1 ? 1 : fit > (size_t)limit ? limit : (int)fit;
out:
    *out = p;
    return r;
}

int cp_zpool_max(const struct cp_zpool *p)
{
    return p->max;
}

/* A context to compress one frame with: a free one, a new one while fewer than max exist, or
 * the next one given back. Compressing a frame takes milliseconds and involves no I/O, so the
 * wait is short and cannot deadlock. */
static ZSTD_CCtx *cp_zpool_get(struct cp_zpool *p, char *err, size_t errlen)
{
    ZSTD_CCtx *c = NULL;
    int make = 0;
    pthread_mutex_lock(&p->lock);
    while (p->nfree == 0 && p->made == p->max)
        pthread_cond_wait(&p->returned, &p->lock);
    if (p->nfree > 0)
        c = p->free[--p->nfree];
    else
        make = ++p->made;
    pthread_mutex_unlock(&p->lock);
    if (!make)
        return c;
    c = ZSTD_createCCtx();
    if (c != NULL && (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, p->level)) ||
                      ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)))) {
        ZSTD_freeCCtx(c);
        c = NULL;
    }
    if (c == NULL) {
        pthread_mutex_lock(&p->lock);
        p->made--;
        pthread_cond_signal(&p->returned);
        pthread_mutex_unlock(&p->lock);
        cp_msg(err, errlen, -ENOMEM, "zstd context: out of memory");
    }
    return c;
}

static void cp_zpool_put(struct cp_zpool *p, ZSTD_CCtx *c)
{
    pthread_mutex_lock(&p->lock);
    p->free[p->nfree++] = c;
    pthread_cond_signal(&p->returned);
    pthread_mutex_unlock(&p->lock);
}

void cp_zpool_free(struct cp_zpool *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < p->nfree; i++)
        ZSTD_freeCCtx(p->free[i]);
    pthread_cond_destroy(&p->returned);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* ---- the compressing stage ---- */

struct cp_zwriter {
    struct cp_stage stage; /* first: the stage callbacks cast back to the writer */
    struct cp_zpool *pool;
    struct cp_fwriter *w;
    uint8_t *in; /* the frame being filled */
    size_t cap, len;
    uint64_t size; /* stream bytes committed */
    XXH3_state_t *xxh;
    uint32_t (*table)[2]; /* compressed and stream size of each frame written */
    uint32_t nframes, table_cap;
};

size_t cp_zwriter_buf_size(size_t frame_size)
{
    /* A whole compressed frame, plus the partial block cp_fwriter_reserve keeps. */
    size_t bound = ZSTD_COMPRESSBOUND(frame_size);
    return (bound + CP_ALIGN - 1) / CP_ALIGN * CP_ALIGN + CP_ALIGN;
}

static int cp_zwriter_record(struct cp_zwriter *z, size_t csize, size_t dsize, char *err,
                             size_t errlen)
{
    if (z->nframes == z->table_cap) {
        uint32_t cap = z->table_cap ? 2 * z->table_cap : 256;
        void *t = realloc(z->table, (size_t)cap * sizeof(*z->table));
        if (t == NULL || cap < z->table_cap)
            return cp_msg(err, errlen, -ENOMEM, "seek table of %u frames: out of memory", cap);
        z->table = t;
        z->table_cap = cap;
    }
    z->table[z->nframes][0] = (uint32_t)csize;
    z->table[z->nframes][1] = (uint32_t)dsize;
    z->nframes++;
    return 0;
}

/* Compresses the held bytes as one frame straight into the file writer's buffer. */
static int cp_zwriter_frame(struct cp_zwriter *z, char *err, size_t errlen)
{
    struct cp_stage *next = cp_fwriter_stage(z->w);
    size_t bound = ZSTD_compressBound(z->len), room;
    /* Room first: making it may write to the disk, which must not happen while holding one of
     * the pool's contexts. */
    int r = cp_fwriter_reserve(z->w, bound, err, errlen);
    if (r < 0)
        return r;
    uint8_t *dst = next->room(next, &room);
    ZSTD_CCtx *c = cp_zpool_get(z->pool, err, errlen);
    if (c == NULL)
        return -ENOMEM;
    size_t n = ZSTD_compress2(c, dst, room, z->in, z->len);
    cp_zpool_put(z->pool, c);
    if (ZSTD_isError(n))
        return cp_msg(err, errlen, -EIO, "zstd: frame %u: %s", z->nframes, ZSTD_getErrorName(n));
    r = cp_zwriter_record(z, n, z->len, err, errlen);
    if (r == 0)
        r = next->commit(next, n, err, errlen);
    z->len = 0;
    return r;
}

static uint8_t *cp_zwriter_room(struct cp_stage *st, size_t *len)
{
    struct cp_zwriter *z = (struct cp_zwriter *)st;
    *len = z->cap - z->len;
    return z->in + z->len;
}

static int cp_zwriter_commit(struct cp_stage *st, size_t n, char *err, size_t errlen)
{
    struct cp_zwriter *z = (struct cp_zwriter *)st;
    (void)XXH3_64bits_update(z->xxh, z->in + z->len, n);
    z->len += n;
    z->size += n;
    if (z->len < z->cap)
        return 0;
    return cp_zwriter_frame(z, err, errlen);
}

/* The seek table: a skippable frame of entries and footer. */
static int cp_zwriter_put_table(struct cp_zwriter *z, char *err, size_t errlen)
{
    struct cp_stage *next = cp_fwriter_stage(z->w);
    uint8_t b[64 * CP_ZSEEK_ENTRY_LEN];
    cp_put_le32(b, CP_ZSKIP_MAGIC);
    cp_put_le32(b + 4, z->nframes * CP_ZSEEK_ENTRY_LEN + CP_ZSEEK_FOOTER);
    int r = cp_stage_put(next, b, 8, err, errlen);
    for (uint32_t i = 0; r == 0 && i < z->nframes;) {
        size_t k = 0;
        for (; k < 64 && i < z->nframes; k++, i++) {
            cp_put_le32(b + CP_ZSEEK_ENTRY_LEN * k, z->table[i][0]);
            cp_put_le32(b + CP_ZSEEK_ENTRY_LEN * k + 4, z->table[i][1]);
        }
        r = cp_stage_put(next, b, CP_ZSEEK_ENTRY_LEN * k, err, errlen);
    }
    cp_put_le32(b, z->nframes);
    b[4] = 0;
    cp_put_le32(b + 5, CP_ZSEEK_MAGIC);
    return r ? r : cp_stage_put(next, b, CP_ZSEEK_FOOTER, err, errlen);
}

static int cp_zwriter_finish(struct cp_stage *st, char *err, size_t errlen)
{
    struct cp_zwriter *z = (struct cp_zwriter *)st;
    struct cp_stage *next = cp_fwriter_stage(z->w);
    int r = z->len > 0 ? cp_zwriter_frame(z, err, errlen) : 0;
    if (r == 0)
        r = cp_zwriter_put_table(z, err, errlen);
    return r ? r : next->finish(next, err, errlen);
}

int cp_zwriter_open(struct cp_zwriter **out, struct cp_zpool *pool, struct cp_fwriter *w,
                    size_t frame_size, char *err, size_t errlen)
{
    struct cp_zwriter *z = calloc(1, sizeof(*z));
    int r = -ENOMEM;
    if (z == NULL) {
        cp_msg(err, errlen, r, "zstd writer: out of memory");
        goto out;
    }
    z->stage.room = cp_zwriter_room;
    z->stage.commit = cp_zwriter_commit;
    z->stage.finish = cp_zwriter_finish;
    z->pool = pool;
    z->w = w;
    z->cap = frame_size;
    r = cp_buf_map(&z->in, frame_size, err, errlen);
    if (r < 0)
        goto out;
    r = -ENOMEM;
    z->xxh = XXH3_createState();
    if (z->xxh == NULL || XXH3_64bits_reset(z->xxh) != XXH_OK) {
        cp_msg(err, errlen, r, "zstd writer: out of memory");
        goto out;
    }
    r = 0;
out:
    if (r < 0) {
        cp_zwriter_free(z);
        z = NULL;
    }
    *out = z;
    return r;
}

struct cp_stage *cp_zwriter_stage(struct cp_zwriter *z)
{
    return &z->stage;
}

uint64_t cp_zwriter_size(const struct cp_zwriter *z)
{
    return z->size;
}

uint64_t cp_zwriter_xxh3(const struct cp_zwriter *z)
{
    return XXH3_64bits_digest(z->xxh);
}

uint32_t cp_zwriter_nframes(const struct cp_zwriter *z)
{
    return z->nframes;
}

void cp_zwriter_free(struct cp_zwriter *z)
{
    if (z == NULL)
        return;
    XXH3_freeState(z->xxh);
    cp_buf_unmap(z->in, z->cap);
    free(z->table);
    free(z);
}

/* ---- the streaming decompressor ---- */

struct cp_zreader {
    struct cp_freader *rd;
    ZSTD_DCtx *dctx;
    ZSTD_inBuffer in;   /* the file chunk read last */
    uint64_t in_offset; /* where it starts in the file */
    uint8_t *out;
    size_t cap;
    size_t hint;     /* ZSTD_decompressStream's last answer: 0 only between frames */
    uint64_t frames; /* frames ended, for messages */
    int eof;
    uint64_t size; /* stream bytes produced */
    XXH3_state_t *xxh;
};

int cp_zreader_open(struct cp_zreader **out, struct cp_freader *rd, size_t out_size, char *err,
                    size_t errlen)
{
    struct cp_zreader *z = calloc(1, sizeof(*z));
    int r = -ENOMEM;
    if (z == NULL) {
        cp_msg(err, errlen, r, "zstd reader: out of memory");
        goto out;
    }
    z->rd = rd;
    z->cap = out_size;
    r = cp_buf_map(&z->out, out_size, err, errlen);
    if (r < 0)
        goto out;
    r = -ENOMEM;
    z->dctx = ZSTD_createDCtx();
    z->xxh = XXH3_createState();
    if (z->dctx == NULL || z->xxh == NULL || XXH3_64bits_reset(z->xxh) != XXH_OK) {
        cp_msg(err, errlen, r, "zstd reader: out of memory");
        goto out;
    }
    r = 0;
out:
    if (r < 0) {
        cp_zreader_free(z);
        z = NULL;
    }
    *out = z;
    return r;
}

/* The next chunk of the file; the first must open a zstd frame, whatever the file is called. */
static int cp_zreader_fill(struct cp_zreader *z, char *err, size_t errlen)
{
    const uint8_t *data;
    int first = cp_freader_size(z->rd) == 0;
    z->in_offset += z->in.size;
    ssize_t n = cp_freader_fill(z->rd, &data, err, errlen);
    if (n < 0)
        return (int)n;
    z->in = (ZSTD_inBuffer){data, (size_t)n, 0};
    z->eof = n == 0;
    if (first && (n < 4 || cp_get_le32(data) != ZSTD_MAGICNUMBER))
        return cp_msg(
            err, errlen, -EBADMSG, "not zstd frames (the file starts with %02x%02x%02x%02x)",
            n > 0 ? data[0] : 0, n > 1 ? data[1] : 0, n > 2 ? data[2] : 0, n > 3 ? data[3] : 0);
    return 0;
}

ssize_t cp_zreader_read(struct cp_zreader *z, const uint8_t **data, size_t max, char *err,
                        size_t errlen)
{
    ZSTD_outBuffer o = {z->out, max < z->cap ? max : z->cap, 0};
    while (o.pos < o.size) {
        if (z->in.pos == z->in.size) {
            if (z->eof)
                break;
            int r = cp_zreader_fill(z, err, errlen);
            if (r < 0)
                return r;
            continue;
        }
        size_t at = z->in.pos;
        size_t h = ZSTD_decompressStream(z->dctx, &o, &z->in);
        if (ZSTD_isError(h))
            return cp_msg(err, errlen, -EBADMSG, "zstd frame %llu, near file offset %llu: %s",
                          (unsigned long long)z->frames, (unsigned long long)(z->in_offset + at),
                          ZSTD_getErrorName(h));
        z->hint = h;
        z->frames += h == 0;
    }
    (void)XXH3_64bits_update(z->xxh, z->out, o.pos);
    z->size += o.pos;
    *data = z->out;
    return (ssize_t)o.pos;
}

int cp_zreader_end(struct cp_zreader *z, char *err, size_t errlen)
{
    const uint8_t *data;
    uint64_t size = z->size;
    ssize_t n = cp_zreader_read(z, &data, z->cap, err, errlen);
    if (n < 0)
        return (int)n;
    if (n > 0)
        return cp_msg(err, errlen, -EBADMSG, "holds more than %llu bytes of stream",
                      (unsigned long long)size);
    if (z->hint != 0)
        return cp_msg(err, errlen, -EBADMSG, "ends inside zstd frame %llu",
                      (unsigned long long)z->frames);
    return 0;
}

uint64_t cp_zreader_size(const struct cp_zreader *z)
{
    return z->size;
}

uint64_t cp_zreader_xxh3(const struct cp_zreader *z)
{
    return XXH3_64bits_digest(z->xxh);
}

void cp_zreader_free(struct cp_zreader *z)
{
    if (z == NULL)
        return;
    ZSTD_freeDCtx(z->dctx);
    XXH3_freeState(z->xxh);
    cp_buf_unmap(z->out, z->cap);
    free(z);
}

/* ---- random access ---- */

struct cp_zseek {
    uint32_t n;
    uint64_t stream_size;
    struct cp_zframe *frames;
};

static int cp_pread_all(int fd, uint8_t *buf, size_t len, uint64_t off, char *err, size_t errlen)
{
    ssize_t n = cp_pread_full(fd, buf, len, off);

    if (n < 0)
        return cp_errno_msg(err, errlen, (int)n, "read");
    if ((size_t)n < len)
        return cp_msg(err, errlen, -EBADMSG, "file ends at %llu, inside the seek table",
                      (unsigned long long)(off + (uint64_t)n));
    return 0;
}

/* Checks the footer and skippable frame header (in TAIL, the file's last bytes) against the
 * file's SIZE; *N gets the frame count. */
static int cp_zseek_check(const uint8_t *foot, uint64_t size, uint32_t *n, char *err, size_t errlen)
{
    if (cp_get_le32(foot + 5) != CP_ZSEEK_MAGIC)
        return cp_msg(err, errlen, -EBADMSG, "no seek table (no 0x%08x at the end)",
                      CP_ZSEEK_MAGIC);
    if ((foot[4] & 0x7c) != 0 || (foot[4] & 0x80) != 0)
        return cp_msg(err, errlen, -EBADMSG, "seek table descriptor 0x%02x not supported", foot[4]);
    *n = cp_get_le32(foot);
    uint64_t table = (uint64_t)*n * CP_ZSEEK_ENTRY_LEN + CP_ZSEEK_FOOTER;
    if (table + 8 > size)
        return cp_msg(err, errlen, -EBADMSG, "a seek table of %u frames does not fit %llu bytes",
                      *n, (unsigned long long)size);
    return 0;
}

int cp_zseek_load(struct cp_zseek **out, int fd, char *err, size_t errlen)
{
    struct cp_zseek *z = calloc(1, sizeof(*z));
    uint8_t foot[CP_ZSEEK_FOOTER], head[8];
    uint8_t *raw = NULL;
    struct stat st;
    int r = -ENOMEM;
    if (z == NULL) {
        cp_msg(err, errlen, r, "seek table: out of memory");
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        r = cp_errno_msg(err, errlen, -errno, "stat");
        goto out;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < 8 + CP_ZSEEK_FOOTER) {
        r = cp_msg(err, errlen, -EBADMSG, "%llu bytes: too short for a seek table",
                   (unsigned long long)size);
        goto out;
    }
    r = cp_pread_all(fd, foot, sizeof(foot), size - CP_ZSEEK_FOOTER, err, errlen);
    if (r == 0)
        r = cp_zseek_check(foot, size, &z->n, err, errlen);
    if (r < 0)
        goto out;
    uint64_t entries = (uint64_t)z->n * CP_ZSEEK_ENTRY_LEN;
    uint64_t start = size - CP_ZSEEK_FOOTER - entries - 8; /* the skippable frame */
    raw = malloc(entries + 8);
    z->frames = calloc(z->n ? z->n : 1, sizeof(*z->frames));
    if (raw == NULL || z->frames == NULL) {
        r = cp_msg(err, errlen, -ENOMEM, "seek table of %u frames: out of memory", z->n);
        goto out;
    }
    r = cp_pread_all(fd, raw, entries + 8, start, err, errlen);
    if (r < 0)
        goto out;
    memcpy(head, raw, 8);
    if (cp_get_le32(head) != CP_ZSKIP_MAGIC || cp_get_le32(head + 4) != entries + CP_ZSEEK_FOOTER) {
        r = cp_msg(err, errlen, -EBADMSG, "the seek table's skippable frame header is wrong");
        goto out;
    }
    uint64_t foff = 0, soff = 0;
    for (uint32_t i = 0; i < z->n; i++) {
        const uint8_t *e = raw + 8 + (size_t)i * CP_ZSEEK_ENTRY_LEN;
        struct cp_zframe *f = &z->frames[i];
        f->file_size = cp_get_le32(e);
        f->stream_size = cp_get_le32(e + 4);
        f->file_offset = foff;
        f->stream_offset = soff;
        if (f->file_size == 0 || f->stream_size > CP_ZFRAME_LOAD_MAX) {
            r = cp_msg(err, errlen, -EBADMSG, "seek table entry %u: %u bytes holding %u", i,
                       f->file_size, f->stream_size);
            goto out;
        }
        foff += f->file_size;
        soff += f->stream_size;
    }
    if (foff != start) {
        r = cp_msg(err, errlen, -EBADMSG, "the seek table's frames end at %llu, the table at %llu",
                   (unsigned long long)foff, (unsigned long long)start);
        goto out;
    }
    z->stream_size = soff;
out:
    free(raw);
    if (r < 0) {
        cp_zseek_free(z);
        z = NULL;
    }
    *out = z;
    return r;
}

uint32_t cp_zseek_nframes(const struct cp_zseek *z)
{
    return z->n;
}

uint64_t cp_zseek_stream_size(const struct cp_zseek *z)
{
    return z->stream_size;
}

const struct cp_zframe *cp_zseek_frame(const struct cp_zseek *z, uint32_t i)
{
    return &z->frames[i];
}

int64_t cp_zseek_find(const struct cp_zseek *z, uint64_t offset)
{
    if (offset >= z->stream_size)
        return -1;
    uint32_t lo = 0, hi = z->n; /* frames[lo].stream_offset <= offset < frames[hi] */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (z->frames[mid].stream_offset <= offset)
            lo = mid;
        else
            hi = mid;
    }
    /* Frames of no stream bytes (allowed by the format) share an offset with the next. */
    while (z->frames[lo].stream_size == 0)
        lo++;
    return lo;
}

int cp_zseek_read(const struct cp_zseek *z, int fd, uint32_t i, uint8_t *out, char *err,
                  size_t errlen)
{
    const struct cp_zframe *f = &z->frames[i];
    uint8_t *buf = malloc(f->file_size);
    int r = 0;
    if (buf == NULL)
        return cp_msg(err, errlen, -ENOMEM, "frame %u: %u bytes: out of memory", i, f->file_size);
    r = cp_pread_all(fd, buf, f->file_size, f->file_offset, err, errlen);
    if (r < 0)
        goto out;
    /* Exactly one frame, of the size the table says, that says so itself; a zstd frame, not a
     * skippable one, which would read as no bytes here where a restore refuses the file. */
    unsigned long long content = ZSTD_getFrameContentSize(buf, f->file_size);
    size_t whole = ZSTD_findFrameCompressedSize(buf, f->file_size);
    if (f->file_size < 4 || cp_get_le32(buf) != ZSTD_MAGICNUMBER || content != f->stream_size ||
        ZSTD_isError(whole) || whole != f->file_size) {
        r = cp_msg(err, errlen, -EBADMSG,
                   "frame %u at file offset %llu is not one zstd frame of "
                   "%u bytes holding %u",
                   i, (unsigned long long)f->file_offset, f->file_size, f->stream_size);
        goto out;
    }
    size_t n = ZSTD_decompress(out, f->stream_size, buf, f->file_size);
    if (ZSTD_isError(n) || n != f->stream_size)
        r = cp_msg(err, errlen, -EBADMSG, "frame %u at file offset %llu: %s", i,
                   (unsigned long long)f->file_offset,
                   ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short");
out:
    free(buf);
    return r;
}

void cp_zseek_free(struct cp_zseek *z)
{
    if (z == NULL)
        return;
    free(z->frames);
    free(z);
}
