/* test_copier: drives the copier with synthetic QEMU 7.2 migration streams: a fake source for
 * saves, a fake destination for restores, and broken streams and peers for the failures a real
 * QEMU cannot be made to produce on demand; plain and zstd-compressed (seek table, random access
 * to a frame, damaged and truncated files). Plain C: each failure prints file:line; the exit
 * status is non-zero if any check failed. COPIER_SEED=n replays a run.
 * "test_copier bench DIR MIB CHANNELS" measures save throughput instead. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "copier.h"
#include "fake_stream.h"
#include "index.h"
#include "indexer.h"
#include "stream.h"
#include "zframe.h"

#define MAXCH 8

static int failures;

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#define CHECKM(c, ...)                                                                             \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #c);                  \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static void die(const char *what)
{
    fprintf(stderr, "test_copier: %s: %s\n", what, strerror(errno));
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- files and directories ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    if (remove(path) < 0)
        fprintf(stderr, "test_copier: remove %s: %s\n", path, strerror(errno));
    return 0;
}

static void rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_tmp(char *out, size_t len, const char *base, const char *tag)
{
    snprintf(out, len, "%s/cptest-%s-XXXXXX", base, tag);
    if (mkdtemp(out) == NULL)
        die(out);
}

static int read_file(const char *path, struct buf *b)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -errno;
    b->len = 0;
    for (;;) {
        uint8_t tmp[65536];
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n <= 0)
            break;
        buf_put(b, tmp, (size_t)n);
    }
    close(fd);
    return 0;
}

static void write_file(const char *path, const void *d, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, d, n) != (ssize_t)n || close(fd) < 0)
        die(path);
}

static int exists(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* B gets the stream file PATH holds: its bytes, decompressed if they are zstd frames (or only a
 * skippable one, the seek table of an empty stream). */
static int read_stream(const char *path, struct buf *b)
{
    struct buf raw = {0};
    int r = read_file(path, &raw);
    if (r < 0 || raw.len < 4 ||
        (memcmp(raw.p, "\x28\xb5\x2f\xfd", 4) != 0 && memcmp(raw.p, "\x5e\x2a\x4d\x18", 4) != 0)) {
        *b = raw;
        return r;
    }
    ZSTD_DStream *d = ZSTD_createDStream();
    ZSTD_inBuffer in = {raw.p, raw.len, 0};
    b->len = 0;
    r = 0;
    while (r == 0 && in.pos < in.size) {
        uint8_t tmp[65536];
        ZSTD_outBuffer out = {tmp, sizeof(tmp), 0};
        size_t h = ZSTD_decompressStream(d, &out, &in);
        if (ZSTD_isError(h))
            r = -EBADMSG;
        buf_put(b, tmp, out.pos);
    }
    ZSTD_freeDStream(d);
    free(raw.p);
    return r;
}

/* A fresh file system mounted on a temporary directory; 0 if we may not mount. */
static int mount_tmp(char *dir, size_t len, const char *fstype, const char *opts)
{
    make_tmp(dir, len, "/tmp", fstype);
    if (mount("none", dir, fstype, 0, opts) == 0)
        return 1;
    printf("  skip %s: mount: %s\n", fstype, strerror(errno));
    rmdir(dir);
    return 0;
}

static void unmount_tmp(const char *dir)
{
    if (umount(dir) < 0)
        fprintf(stderr, "test_copier: umount %s: %s\n", dir, strerror(errno));
    rmdir(dir);
}

/* ---- fake QEMU source: one thread per connection ---- */

struct src {
    struct cp_save *s;
    int fd;
    const uint8_t *data;
    size_t len;
    uint64_t seed;
    int tiny;      /* only splits of 1 to 9 bytes */
    uint64_t gate; /* first wait until the copier has received this many bytes */
    int hold;      /* after sending, keep the socket open until the copier shuts it down */
    int gate_late; /* the gate opened only by timeout */
    pthread_t t;
};

static int src_connect(const char *sock)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        die("connect");
    return fd;
}

static void *src_main(void *arg)
{
    struct src *c = arg;
    uint64_t rng = c->seed;
    double until = now_s() + 10;
    while (c->gate && cp_save_bytes(c->s) < c->gate && !(c->gate_late = now_s() > until))
        usleep(1000);
    for (size_t off = 0; off < c->len;) {
        size_t max = c->tiny || rng_below(&rng, 5) == 0 ? 9 : 256 * 1024;
        size_t n = 1 + rng_below(&rng, max);
        n = n < c->len - off ? n : c->len - off;
        ssize_t w = send(c->fd, c->data + off, n, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the copier failed and shut us out */
        off += (size_t)w;
    }
    char x;
    if (c->hold)
        while (read(c->fd, &x, 1) > 0)
            ;
    close(c->fd);
    return NULL;
}

struct save_run {
    char dir[256], sockdir[64], sock[108];
    struct cp_save *s;
    struct src src[MAXCH + 4];
    int nsrc, njoined;
    struct cp_file files[2 * MAXCH + 1];
    int nfiles;
    char err[512];
};

static void save_begin(struct save_run *sr, const char *base, int nchannels,
                       const struct cp_opts *o)
{
    memset(sr, 0, sizeof(*sr));
    make_tmp(sr->dir, sizeof(sr->dir), base, "store");
    make_tmp(sr->sockdir, sizeof(sr->sockdir), "/tmp", "sock");
    snprintf(sr->sock, sizeof(sr->sock), "%s/mig.sock", sr->sockdir);
    int r = cp_save_start(&sr->s, sr->sock, sr->dir, nchannels, o, sr->err, sizeof(sr->err));
    CHECKM(r == 0, "%s", sr->err);
    if (r < 0)
        exit(1);
}

/* Connects now (the order of calls is the order of connects) and starts sending. */
static struct src *save_send(struct save_run *sr, const struct buf *b, uint64_t seed, int tiny)
{
    struct src *c = &sr->src[sr->nsrc++];
    c->s = sr->s;
    c->fd = src_connect(sr->sock);
    c->data = b->p;
    c->len = b->len;
    c->seed = seed;
    c->tiny = tiny;
    return c;
}

static void save_go(struct save_run *sr)
{
    for (int i = 0; i < sr->nsrc; i++)
        if (pthread_create(&sr->src[i].t, NULL, src_main, &sr->src[i]) != 0)
            die("pthread_create");
}

static int save_end(struct save_run *sr)
{
    int r = cp_save_finish(sr->s, sr->files, &sr->nfiles, sr->err, sizeof(sr->err));
    CHECK(cp_save_done(sr->s));
    return r;
}

static void save_join_sources(struct save_run *sr)
{
    for (; sr->njoined < sr->nsrc; sr->njoined++)
        pthread_join(sr->src[sr->njoined].t, NULL);
}

/* Sources still queued in the listen backlog of a failed save wake when free closes it. */
static void save_cleanup(struct save_run *sr)
{
    cp_save_free(sr->s);
    save_join_sources(sr);
    CHECK(access(sr->sock, F_OK) < 0); /* the socket file is gone */
    rm_rf(sr->dir);
    rm_rf(sr->sockdir);
}

static void shuffle(int *v, int n, uint64_t *rng)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(rng, (uint64_t)i + 1), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* ---- checks of a saved directory ---- */

static const struct cp_file *find_file(const struct cp_file *files, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(files[i].name, name) == 0)
            return &files[i];
    return NULL;
}

/* FILE in DIR holds exactly B, mode 0600, and FILES says so. */
static void check_file(const char *dir, const struct cp_file *files, int n, const char *name,
                       const struct buf *b)
{
    char path[512];
    struct buf got = {0};
    struct stat st;
    const struct cp_file *f = find_file(files, n, name);
    CHECKM(f != NULL, "%s not listed", name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    CHECKM(read_file(path, &got) == 0, "%s", path);
    CHECKM(got.len == b->len && memcmp(got.p, b->p, b->len) == 0, "%s: %zu bytes, want %zu", path,
           got.len, b->len);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    if (f != NULL) {
        char err[512];
        CHECK(f->size == b->len);
        CHECK(f->xxh3 == XXH3_64bits(b->p, b->len));
        CHECKM(cp_verify_file(dir, f, err, sizeof(err)) == 0, "%s", err);
    }
    free(got.p);
}

/* Reads stream bytes of a channel file: straight from a plain file, or through the seek table
 * of a zstd one, decompressing only the frames that hold them. */
struct stream_reader {
    int fd;
    struct cp_zseek *z; /* NULL: plain */
    int64_t cached;     /* the frame in frame, -1 none */
    uint8_t *frame;
    uint64_t decoded; /* frames decompressed */
};

static void stream_open(struct stream_reader *sr, const char *path, int zstd)
{
    char err[512];
    memset(sr, 0, sizeof(*sr));
    sr->cached = -1;
    sr->fd = open(path, O_RDONLY);
    CHECKM(sr->fd >= 0, "%s", path);
    if (zstd && sr->fd >= 0) {
        int r = cp_zseek_load(&sr->z, sr->fd, err, sizeof(err));
        CHECKM(r == 0, "%s: %s", path, err);
    }
}

static int stream_pread(struct stream_reader *sr, uint8_t *out, size_t len, uint64_t off)
{
    char err[512];
    if (sr->z == NULL)
        return pread(sr->fd, out, len, (off_t)off) == (ssize_t)len ? 0 : -EIO;
    while (len > 0) {
        int64_t i = cp_zseek_find(sr->z, off);
        if (i < 0)
            return -ERANGE;
        const struct cp_zframe *f = cp_zseek_frame(sr->z, (uint32_t)i);
        if (i != sr->cached) {
            free(sr->frame);
            sr->frame = malloc(f->stream_size);
            int r = cp_zseek_read(sr->z, sr->fd, (uint32_t)i, sr->frame, err, sizeof(err));
            CHECKM(r == 0, "frame %lld: %s", (long long)i, err);
            if (r < 0)
                return r;
            sr->cached = i;
            sr->decoded++;
        }
        size_t at = (size_t)(off - f->stream_offset), n = f->stream_size - at;
        n = n < len ? n : len;
        memcpy(out, sr->frame + at, n);
        out += n;
        len -= n;
        off += n;
    }
    return 0;
}

static void stream_close(struct stream_reader *sr)
{
    if (sr->fd >= 0)
        close(sr->fd);
    cp_zseek_free(sr->z);
    free(sr->frame);
}

/* A version 2 index: one SUM per block of the stream, each the XXH3 of that block's bytes. */
static void check_index_sums(const struct cp_index *ix, const struct buf *stream)
{
    uint32_t shift = cp_index_sum_shift(ix);
    CHECK(cp_index_version(ix) == CP_INDEX_VERSION && shift == CP_INDEX_SUM_SHIFT);
    uint64_t block = 1ull << shift, n = (stream->len + block - 1) / block;
    CHECKM(cp_index_nsums(ix) == n, "%" PRIu64 " sums, %" PRIu64 " due", cp_index_nsums(ix), n);
    for (uint64_t k = 0; k < n && k < cp_index_nsums(ix); k++) {
        size_t len = stream->len - k * block < block ? stream->len - k * block : block;
        CHECKM(cp_index_sum(ix, k) == XXH3_64bits(stream->p + k * block, len), "sum %" PRIu64, k);
    }
}

/* Every page the index names is where it says, with the right bytes, in stream order. */
static void check_index(const char *dir, const struct cp_file *files, int n, const struct chan *c)
{
    char path[512], name[64], err[512];
    struct cp_index *ix;
    snprintf(name, sizeof(name), "channel-%d.idx", c->id);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct buf raw = {0};
    CHECK(read_file(path, &raw) == 0);
    check_file(dir, files, n, name, &raw);
    int r = cp_index_load(&ix, path, err, sizeof(err));
    CHECKM(r == 0, "%s", err);
    if (r == 0)
        CHECK(cp_index_xxh3(ix) == XXH3_64bits(raw.p, raw.len));
    free(raw.p);
    if (r < 0)
        return;
    CHECK(cp_index_npages(ix) == c->npages);
    CHECK(cp_index_stream_size(ix) == c->b.len);
    check_index_sums(ix, &c->b);
    snprintf(name, sizeof(name), "channel-%d", c->id);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    const struct cp_file *cf = find_file(files, n, name);
    struct stream_reader sr;
    stream_open(&sr, path, cf != NULL && cf->zstd);
    struct cp_index_iter it = {0};
    struct cp_index_page pg;
    size_t i = 0;
    for (; cp_index_next(ix, &it, &pg); i++) {
        uint8_t want[PAGE], have[PAGE];
        const char *block = cp_index_block_name(ix, pg.block_id);
        int bi = 0;
        while (bi < NBLOCKS && strcmp(block_names[bi], block) != 0)
            bi++;
        CHECKM(bi < NBLOCKS, "unknown block %s", block);
        if (i < c->npages) {
            CHECK(bi == c->pages[i].block);
            CHECK(pg.ram_offset == c->pages[i].ram_offset);
            CHECK(pg.stream_offset == c->pages[i].stream_offset);
            CHECK(pg.zero == c->pages[i].zero);
        }
        if (pg.zero)
            continue;
        page_fill(want, bi, pg.ram_offset);
        CHECK(stream_pread(&sr, have, PAGE, pg.stream_offset) == 0);
        CHECKM(memcmp(want, have, PAGE) == 0, "%s page %zu at %" PRIu64, path, i, pg.stream_offset);
    }
    CHECK(i == c->npages);
    stream_close(&sr);
    cp_index_free(ix);
}

/* A zstd stream file: listed with the stream's size and checksum and the file's, decompresses to
 * B as a whole and frame by frame through its seek table, with every frame but the last holding
 * FRAME bytes of the stream; a random frame decompresses alone. */
static void check_zfile(const char *dir, const struct cp_file *files, int n, const char *name,
                        const struct buf *b, size_t frame, uint64_t *rng)
{
    char path[512], err[512];
    struct buf raw = {0}, got = {0};
    const struct cp_file *f = find_file(files, n, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    CHECKM(f != NULL && f->zstd, "%s not listed as zstd", name);
    if (f == NULL)
        return;
    CHECK(read_file(path, &raw) == 0);
    CHECK(f->size == raw.len && f->xxh3 == XXH3_64bits(raw.p, raw.len));
    CHECK(f->stream_size == b->len && f->stream_xxh3 == XXH3_64bits(b->p, b->len));
    CHECKM(cp_verify_file(dir, f, err, sizeof(err)) == 0, "%s", err);
    CHECK(read_stream(path, &got) == 0);
    CHECKM(got.len == b->len && memcmp(got.p, b->p, b->len) == 0, "%s: %zu bytes, want %zu", path,
           got.len, b->len);
    struct stream_reader sr;
    stream_open(&sr, path, 1);
    if (sr.z != NULL) {
        uint32_t nf = cp_zseek_nframes(sr.z);
        CHECK(cp_zseek_stream_size(sr.z) == b->len);
        CHECKM(nf == (b->len + frame - 1) / frame, "%s: %u frames of %zu for %zu bytes", path, nf,
               frame, b->len);
        for (uint32_t i = 0; i + 1 < nf; i++)
            CHECK(cp_zseek_frame(sr.z, i)->stream_size == frame);
        /* One frame in the middle, alone, as a lazy restore would read it. */
        uint32_t k = (uint32_t)rng_below(rng, nf);
        const struct cp_zframe *fr = cp_zseek_frame(sr.z, k);
        uint64_t off = fr->stream_offset + rng_below(rng, fr->stream_size);
        CHECK(cp_zseek_find(sr.z, off) == k);
        CHECK(cp_zseek_find(sr.z, b->len) == -1);
        uint8_t one[16];
        uint64_t frame_end = fr->stream_offset + fr->stream_size;
        /* Within the frame: bytes past its end would decode the next one as well. */
        size_t len = frame_end - off < sizeof(one) ? frame_end - off : sizeof(one);
        CHECK(stream_pread(&sr, one, len, off) == 0 && memcmp(one, b->p + off, len) == 0);
        CHECK(sr.decoded == 1);
        /* Then every frame, in order. */
        uint8_t *all = malloc(b->len + 1);
        CHECK(stream_pread(&sr, all, b->len, 0) == 0 && memcmp(all, b->p, b->len) == 0);
        free(all);
    }
    stream_close(&sr);
    free(raw.p);
    free(got.p);
}

/* ---- save tests ---- */

/* main and NCH channels, connected in random order (main too), sent in random splits. */
static void test_save_ok(const char *base, int nch, size_t buf_size, int tiny, uint64_t seed)
{
    struct save_run sr;
    struct cp_opts o = {.direct_io = 1, .buf_size = buf_size};
    struct buf mainb = {0};
    struct chan ch[MAXCH];
    uint64_t rng = seed;
    int order[MAXCH + 1];
    printf("save: %s, %d channels, buffer %zu%s\n", base, nch, buf_size,
           tiny ? ", tiny splits" : "");
    gen_main(&mainb, tiny ? 3000 : 300000 + rng_below(&rng, 10000), &rng);
    for (int i = 0; i < nch; i++)
        gen_channel(&ch[i], i, tiny ? 3 : 4 + (int)rng_below(&rng, 12), &rng, GEN_PLAIN);
    for (int i = 0; i <= nch; i++)
        order[i] = i - 1;
    shuffle(order, nch + 1, &rng);
    save_begin(&sr, base, nch, &o);
    for (int i = 0; i <= nch; i++)
        save_send(&sr, order[i] < 0 ? &mainb : &ch[order[i]].b, rng_next(&rng), tiny);
    save_go(&sr);
    int r = save_end(&sr);
    CHECKM(r == 0, "%s", sr.err);
    CHECK(sr.nfiles == 2 * nch + 1);
    uint64_t total = mainb.len;
    CHECK(sr.files[0].kind == CP_MAIN && strcmp(sr.files[0].name, "main") == 0);
    check_file(sr.dir, sr.files, sr.nfiles, "main", &mainb);
    for (int i = 0; i < nch; i++) {
        char name[32];
        snprintf(name, sizeof(name), "channel-%d", i);
        CHECK(sr.files[1 + i].kind == CP_CHANNEL && sr.files[1 + i].channel == i);
        CHECK(sr.files[1 + nch + i].kind == CP_INDEX && sr.files[1 + nch + i].channel == i);
        check_file(sr.dir, sr.files, sr.nfiles, name, &ch[i].b);
        check_index(sr.dir, sr.files, sr.nfiles, &ch[i]);
        total += ch[i].b.len;
    }
    CHECK(cp_save_bytes(sr.s) == total);
    save_cleanup(&sr);
    free(mainb.p);
    for (int i = 0; i < nch; i++)
        chan_free(&ch[i]);
}

/* The same with compression: every stream file holds zstd frames of BUF_SIZE bytes (1 MiB by
 * default) and a seek table, and decompresses to what was sent; the index still gives stream
 * offsets, found through the seek table. */
static void test_save_zstd(const char *base, int nch, size_t buf_size, int level, int tiny,
                           uint64_t seed)
{
    struct save_run sr;
    struct cp_opts o = {.direct_io = 1, .buf_size = buf_size, .zstd_level = level};
    struct buf mainb = {0};
    struct chan ch[MAXCH];
    uint64_t rng = seed, stored = 0, total = 0, text = 0;
    int order[MAXCH + 1];
    size_t frame = buf_size ? buf_size : CP_ZFRAME_SIZE;
    printf("save zstd:%d: %s, %d channels, frames of %zu%s\n", level, base, nch, frame,
           tiny ? ", tiny splits" : "");
    gen_main(&mainb, tiny ? 3000 : 300000 + rng_below(&rng, 10000), &rng);
    for (int i = 0; i < nch; i++)
        gen_channel(&ch[i], i, tiny ? 3 : 4 + (int)rng_below(&rng, 40), &rng, GEN_PLAIN);
    for (int i = 0; i <= nch; i++)
        order[i] = i - 1;
    shuffle(order, nch + 1, &rng);
    save_begin(&sr, base, nch, &o);
    for (int i = 0; i <= nch; i++)
        save_send(&sr, order[i] < 0 ? &mainb : &ch[order[i]].b, rng_next(&rng), tiny);
    save_go(&sr);
    int r = save_end(&sr);
    CHECKM(r == 0, "%s", sr.err);
    CHECK(sr.nfiles == 2 * nch + 1);
    check_zfile(sr.dir, sr.files, sr.nfiles, "main", &mainb, frame, &rng);
    stored += sr.files[0].size;
    total += mainb.len;
    for (int i = 0; i < nch; i++) {
        char name[32];
        snprintf(name, sizeof(name), "channel-%d", i);
        check_zfile(sr.dir, sr.files, sr.nfiles, name, &ch[i].b, frame, &rng);
        check_index(sr.dir, sr.files, sr.nfiles, &ch[i]);
        CHECK(!sr.files[1 + nch + i].zstd); /* indexes stay plain */
        stored += sr.files[1 + i].size;
        total += ch[i].b.len;
        for (size_t k = 0; k < ch[i].npages; k++) {
            const struct exp_page *pg = &ch[i].pages[k];
            text += !pg->zero && (pg->block == 1 || pg->block == 2) ? PAGE : 0;
        }
    }
    CHECK(cp_save_bytes(sr.s) == total);
    /* Half of main and the pages of blocks 1 and 2 are text-like: they shrink at least twofold. */
    text += mainb.len / 2;
    if (!tiny)
        CHECKM(stored < total - text / 2,
               "%" PRIu64 " bytes stored for %" PRIu64 ", %" PRIu64 " text-like", stored, total,
               text);
    save_cleanup(&sr);
    free(mainb.p);
    for (int i = 0; i < nch; i++)
        chan_free(&ch[i]);
}

/* Main connects first but sends nothing until the copier has read every channel: the accept
 * loop must not wait on a stream's first bytes. Channels here tell the index to give up. */
/* Drops from C's expected pages the one at RAM offset RAM (block 0) whose copy is not the last. */
static void exp_drop(struct chan *c, uint64_t ram, size_t nth)
{
    for (size_t i = 0; i < c->npages; i++)
        if (c->pages[i].block == 0 && c->pages[i].ram_offset == ram && nth-- == 0) {
            memmove(&c->pages[i], &c->pages[i + 1], (c->npages - i - 1) * sizeof(c->pages[0]));
            c->npages--;
            return;
        }
    CHECKM(0, "no page at %" PRIu64, ram);
}

/* A running VM's save: pages come again, on another channel or the same, after a sync (and
 * once within one, as 7.2's race does, the later packet_num being the later copy). Each index
 * keeps only a page's last copy, and the manifest lists the rewritten indexes. */
static void test_save_resent(uint64_t seed)
{
    struct save_run sr;
    struct cp_opts o = {.direct_io = 1};
    struct buf mainb = {0};
    struct chan ch[2];
    uint64_t rng = seed;
    enum { A = 1, B, C, D, E, F, G };
    const uint64_t p0[] = {A * PAGE, B * PAGE, C * PAGE}, p1[] = {E * PAGE, G * PAGE};
    const uint64_t p0b[] = {D * PAGE, A * PAGE}, p1b[] = {B * PAGE, F * PAGE}, p1c[] = {G * PAGE};
    printf("save: pages sent again across channels and epochs\n");
    gen_main(&mainb, 5000, &rng);
    memset(ch, 0, sizeof(ch));
    for (int i = 0; i < 2; i++) {
        ch[i].id = i;
        gen_handshake(&ch[i].b, i);
    }
    gen_packet_at(&ch[0], 0, 3, 0, 0, p0);                    /* epoch 0: A B C */
    gen_packet_at(&ch[1], 0, 2, 0, 1, p1);                    /* epoch 0: E G */
    gen_packet_at(&ch[1], 0, 1, 0, 2, p1c);                   /* epoch 0 again: G, later */
    gen_packet_at(&ch[0], CP_MULTIFD_FLAG_SYNC, 0, 0, 3, p0); /* the sync */
    gen_packet_at(&ch[1], CP_MULTIFD_FLAG_SYNC, 0, 0, 4, p1);
    gen_packet_at(&ch[0], 0, 2, 0, 5, p0b); /* epoch 1: D A (A again, same channel) */
    gen_packet_at(&ch[1], 0, 2, 0, 6, p1b); /* epoch 1: B F (B again, other channel) */
    gen_packet_at(&ch[0], CP_MULTIFD_FLAG_SYNC, 0, 0, 7, p0);
    gen_packet_at(&ch[1], CP_MULTIFD_FLAG_SYNC, 0, 0, 8, p1);
    save_begin(&sr, "/var/tmp", 2, &o);
    save_send(&sr, &mainb, rng_next(&rng), 0);
    for (int i = 0; i < 2; i++)
        save_send(&sr, &ch[i].b, rng_next(&rng), 0);
    save_go(&sr);
    int r = save_end(&sr);
    CHECKM(r == 0, "%s", sr.err);
    exp_drop(&ch[0], A * PAGE, 0);
    exp_drop(&ch[0], B * PAGE, 0);
    exp_drop(&ch[1], G * PAGE, 0);
    CHECK(ch[0].npages == 3 && ch[1].npages == 4);
    for (int i = 0; r == 0 && i < 2; i++)
        check_index(sr.dir, sr.files, sr.nfiles, &ch[i]);
    save_cleanup(&sr);
    free(mainb.p);
    for (int i = 0; i < 2; i++)
        chan_free(&ch[i]);
}

static void test_save_main_late(uint64_t seed)
{
    struct save_run sr;
    struct cp_opts o = {.direct_io = 1, .buf_size = 64 * 1024};
    struct buf mainb = {0};
    struct chan ch[3];
    uint64_t rng = seed;
    printf("save: main stream silent until the channels are in; index give-up\n");
    gen_main(&mainb, 100000, &rng);
    gen_channel(&ch[0], 0, 6, &rng, GEN_PLAIN);
    gen_channel(&ch[1], 1, 6, &rng, GEN_BAD_MAGIC);
    gen_channel(&ch[2], 2, 6, &rng, GEN_ZLIB);
    save_begin(&sr, "/var/tmp", 3, &o);
    struct src *m = save_send(&sr, &mainb, rng_next(&rng), 0);
    m->gate = ch[0].b.len + ch[1].b.len + ch[2].b.len;
    for (int i = 2; i >= 0; i--)
        save_send(&sr, &ch[i].b, rng_next(&rng), 0);
    save_go(&sr);
    int r = save_end(&sr);
    CHECKM(r == 0, "%s", sr.err);
    CHECK(!m->gate_late);
    CHECK(sr.nfiles == 1 + 3 + 1);
    check_file(sr.dir, sr.files, sr.nfiles, "main", &mainb);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof(name), "channel-%d", i);
        check_file(sr.dir, sr.files, sr.nfiles, name, &ch[i].b);
    }
    check_index(sr.dir, sr.files, sr.nfiles, &ch[0]);
    CHECK(find_file(sr.files, sr.nfiles, "channel-1.idx") == NULL);
    CHECK(find_file(sr.files, sr.nfiles, "channel-2.idx") == NULL);
    CHECK(!exists(sr.dir, "channel-1.idx") && !exists(sr.dir, "channel-2.idx"));
    save_cleanup(&sr);
    free(mainb.p);
    for (int i = 0; i < 3; i++)
        chan_free(&ch[i]);
}

/* Broken sources. Each connection is a stream kind: a channel id, MAIN, or a special. */
enum { S_MAIN = -1, S_MAGIC = -2, S_EMPTY = -3, S_SHORT_HS = -4, S_CUT = -5 };

struct fail_case {
    const char *what;
    int nch;
    int conns[6];
    int nconns;
    int code;
    const char *msg;
};

static const struct fail_case fail_cases[] = {
    {"duplicate channel id", 3, {S_MAIN, 0, 1, 1}, 4, -EPROTO, "duplicate channel id 1"},
    {"channel id out of range", 2, {S_MAIN, 0, 5}, 3, -EPROTO, "channel id 5, but the save has 2"},
    {"unknown magic", 2, {S_MAIN, 0, S_MAGIC}, 3, -EPROTO, "unknown stream magic 0x58585858"},
    {"second main", 2, {S_MAIN, 0, S_MAIN}, 3, -EPROTO, "a second main stream"},
    {"no bytes at all", 1, {S_EMPTY, 0}, 2, -EPROTO, "stream ends after 0 bytes"},
    {"cut inside handshake",
     2,
     {S_MAIN, S_SHORT_HS, 1},
     3,
     -EPROTO,
     "inside its multifd handshake (20 of 64 bytes)"},
    {"cut inside a packet",
     2,
     {S_MAIN, 0, S_CUT},
     3,
     -EPROTO,
     "channel-1: stream ends inside packet"},
};

/* LEVEL 1 compresses: the same failures come through the zstd stage. */
static void test_save_fail(const struct fail_case *fc, int level, uint64_t seed)
{
    struct save_run sr;
    struct cp_opts o = {.direct_io = 1, .buf_size = 64 * 1024, .zstd_level = level};
    struct buf bufs[6] = {{0}};
    struct chan ch;
    uint64_t rng = seed;
    printf("save fails%s: %s\n", level ? " (zstd)" : "", fc->what);
    save_begin(&sr, "/var/tmp", fc->nch, &o);
    for (int i = 0; i < fc->nconns; i++) {
        int k = fc->conns[i];
        if (k == S_MAIN)
            gen_main(&bufs[i], 50000, &rng);
        else if (k == S_MAGIC)
            buf_put(&bufs[i], "XXXXXXXXXXXX", 12);
        else if (k == S_SHORT_HS || k >= 0 || k == S_CUT) {
            gen_channel(&ch, k >= 0 ? k : 1, 4, &rng, k == S_CUT ? GEN_CUT : GEN_PLAIN);
            bufs[i] = ch.b;
            free(ch.pages);
            if (k == S_SHORT_HS)
                bufs[i].len = 20;
        }
        save_send(&sr, &bufs[i], rng_next(&rng), 0);
    }
    save_go(&sr);
    int r = save_end(&sr);
    CHECKM(r == fc->code, "%d: %s", r, sr.err);
    CHECKM(strstr(sr.err, fc->msg) != NULL, "message \"%s\"", sr.err);
    CHECKM(strncmp(sr.err, "connection ", 11) == 0 || strncmp(sr.err, "channel-", 8) == 0,
           "message \"%s\" names no connection", sr.err);
    CHECK(sr.nfiles == 0);
    /* The cut channel's index may stay behind with the failed save's files, but never as a
     * whole index: END is written only at a packet boundary. */
    if (fc->conns[fc->nconns - 1] == S_CUT && exists(sr.dir, "channel-1.idx")) {
        char path[600], err[512] = "";
        struct cp_index *ix;
        snprintf(path, sizeof(path), "%s/channel-1.idx", sr.dir);
        int r = cp_index_load(&ix, path, err, sizeof(err));
        CHECKM(r == -EBADMSG && ix == NULL, "%d: %s", r, err);
        cp_index_free(ix);
    }
    save_cleanup(&sr);
    for (int i = 0; i < fc->nconns; i++)
        free(bufs[i].p);
}

/* Cancel while a stream is open: finish returns -ECANCELED and the peers wake. */
static void test_save_cancel(uint64_t seed)
{
    struct save_run sr;
    struct cp_opts o = {.direct_io = 1, .buf_size = 64 * 1024};
    struct buf mainb = {0};
    struct chan ch[2];
    uint64_t rng = seed;
    printf("save: cancel mid-stream\n");
    gen_main(&mainb, 50000, &rng);
    gen_channel(&ch[0], 0, 4, &rng, GEN_PLAIN);
    gen_channel(&ch[1], 1, 4, &rng, GEN_PLAIN);
    save_begin(&sr, "/var/tmp", 2, &o);
    save_send(&sr, &mainb, rng_next(&rng), 0);
    save_send(&sr, &ch[0].b, rng_next(&rng), 0);
    struct src *c1 = save_send(&sr, &ch[1].b, rng_next(&rng), 0);
    c1->len /= 2;
    c1->hold = 1;
    save_go(&sr);
    double t0 = now_s();
    while (cp_save_bytes(sr.s) < mainb.len + ch[0].b.len + c1->len && now_s() < t0 + 10)
        usleep(1000);
    CHECK(!cp_save_done(sr.s));
    cp_save_cancel(sr.s);
    int r = save_end(&sr);
    CHECKM(r == -ECANCELED, "%d: %s", r, sr.err);
    CHECK(now_s() - t0 < 5);
    save_cleanup(&sr);
    free(mainb.p);
    chan_free(&ch[0]);
    chan_free(&ch[1]);
}

/* A failure (the second accept fails, as out of descriptors) cuts no peer off: the connections
 * that follow are still accepted, every stream is read to its end, and the save ends only once
 * its peers closed their ends, or at finish, which then shuts the one still open down. QEMU 7.2
 * hangs or aborts when a channel is cut or refused while it sets its migration up. */
static void test_save_drain(uint64_t seed)
{
    struct save_run sr;
    struct cp_opts o = {.direct_io = 1, .buf_size = 64 * 1024, .debug_fail_accept = 2};
    struct buf mainb = {0};
    struct chan ch[2];
    uint64_t rng = seed;
    char err[512];
    printf("save: a failure drains every stream\n");
    gen_main(&mainb, 50000, &rng);
    gen_channel(&ch[0], 0, 40, &rng, GEN_PLAIN);
    gen_channel(&ch[1], 1, 40, &rng, GEN_PLAIN);
    save_begin(&sr, "/var/tmp", 2, &o);
    save_send(&sr, &mainb, rng_next(&rng), 0);
    save_send(&sr, &ch[0].b, rng_next(&rng), 0)->hold = 1;
    save_send(&sr, &ch[1].b, rng_next(&rng), 0);
    save_go(&sr);
    uint64_t total = mainb.len + ch[0].b.len + ch[1].b.len;
    double t0 = now_s();
    while (cp_save_bytes(sr.s) < total && now_s() < t0 + 10)
        usleep(1000);
    CHECKM(cp_save_bytes(sr.s) == total, "%llu of %llu bytes read",
           (unsigned long long)cp_save_bytes(sr.s), (unsigned long long)total);
    int r = cp_save_failed(sr.s, err, sizeof(err));
    CHECKM(r == -EMFILE && strstr(err, "accept on") != NULL, "%d: %s", r, err);
    usleep(100 * 1000);
    CHECK(!cp_save_done(sr.s)); /* channel-0's peer holds its end open */
    r = save_end(&sr);
    CHECKM(r == -EMFILE, "%d: %s", r, sr.err);
    CHECK(now_s() - t0 < 5);
    save_cleanup(&sr);
    free(mainb.p);
    chan_free(&ch[0]);
    chan_free(&ch[1]);
}

/* A file already there, and a full file system: errors name the stream and the file. */
static void test_save_io_errors(uint64_t seed)
{
    struct save_run sr;
    struct cp_opts o = {.direct_io = 1, .buf_size = 64 * 1024};
    struct buf mainb = {0};
    struct chan ch;
    uint64_t rng = seed;
    char mnt[256];
    printf("save: file exists, disk full\n");
    gen_main(&mainb, 50000, &rng);
    gen_channel(&ch, 0, 40, &rng, GEN_PLAIN);
    save_begin(&sr, "/var/tmp", 1, &o);
    char path[512];
    snprintf(path, sizeof(path), "%s/main", sr.dir);
    write_file(path, "x", 1);
    save_send(&sr, &mainb, rng_next(&rng), 0);
    save_send(&sr, &ch.b, rng_next(&rng), 0);
    save_go(&sr);
    int r = save_end(&sr);
    CHECKM(r == -EEXIST && strstr(sr.err, "main: create ") == sr.err &&
               strstr(sr.err, "/main: File exists") != NULL,
           "%d: %s", r, sr.err);
    save_cleanup(&sr);
    if (mount_tmp(mnt, sizeof(mnt), "tmpfs", "size=1m")) {
        save_begin(&sr, mnt, 1, &o);
        save_send(&sr, &mainb, rng_next(&rng), 0);
        save_send(&sr, &ch.b, rng_next(&rng), 0);
        save_go(&sr);
        r = save_end(&sr);
        /* channel-0 fills the disk, but main or the index may be the first to find it full */
        CHECKM(r == -ENOSPC && strstr(sr.err, ": write /tmp/cptest-tmpfs-") != NULL &&
                   strstr(sr.err, ": No space left on device") != NULL,
               "%d: %s", r, sr.err);
        save_cleanup(&sr);
        unmount_tmp(mnt);
    }
    free(mainb.p);
    chan_free(&ch);
}

/* ---- the file writer: O_DIRECT where possible, every tail length ---- */

static void test_writer(const char *base, int want_direct)
{
    static const size_t sizes[] = {0, 1, 4095, 4096, 4097, 65536, 65537, 3 * 65536 - 5};
    char dir[256], err[512];
    uint64_t rng = 7;
    make_tmp(dir, sizeof(dir), base, "writer");
    struct buf b = {0};
    while (b.len < 3 * 65536) {
        uint64_t v = rng_next(&rng);
        buf_put(&b, &v, 8);
    }
    int direct = -1;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct cp_fwriter *w;
        char name[32], path[512];
        struct buf got = {0};
        snprintf(name, sizeof(name), "f%zu", i);
        int r = cp_fwriter_open(&w, dir, name, 65536, 1, err, sizeof(err));
        CHECKM(r == 0, "%s", err);
        if (r < 0)
            continue;
        direct = cp_fwriter_direct(w);
        struct cp_stage *st = cp_fwriter_stage(w);
        CHECK(cp_stage_put(st, b.p, sizes[i], err, sizeof(err)) == 0);
        CHECKM(st->finish(st, err, sizeof(err)) == 0, "%s", err);
        CHECK(cp_fwriter_size(w) == sizes[i]);
        CHECK(cp_fwriter_xxh3(w) == XXH3_64bits(b.p, sizes[i]));
        cp_fwriter_free(w);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        CHECK(read_file(path, &got) == 0);
        CHECKM(got.len == sizes[i] && (got.len == 0 || memcmp(got.p, b.p, got.len) == 0), "%s",
               path);
        free(got.p);
    }
    printf("writer: %s: O_DIRECT %s\n", base, direct ? "on" : "refused, buffered");
    if (want_direct >= 0)
        CHECK(direct == want_direct);
    free(b.p);
    rm_rf(dir);
}

/* ---- zstd frames: the writer stage at every length, the pool's bound, a damaged seek table */

#define ZFRAME (64 * 1024)

/* Writes B's first LEN bytes to DIR/NAME as zstd frames of ZFRAME bytes, the file's to RAW. */
static int zwrite(const char *dir, const char *name, const struct buf *b, size_t len,
                  struct cp_zpool *pool, int *direct, struct buf *raw)
{
    char err[512], path[512];
    struct cp_fwriter *w;
    struct cp_zwriter *z;
    int r = cp_fwriter_open(&w, dir, name, cp_zwriter_buf_size(ZFRAME), 1, err, sizeof(err));
    CHECKM(r == 0, "%s", err);
    if (r < 0)
        return r;
    *direct = cp_fwriter_direct(w);
    r = cp_zwriter_open(&z, pool, w, ZFRAME, err, sizeof(err));
    CHECKM(r == 0, "%s", err);
    struct cp_stage *st = cp_zwriter_stage(z);
    CHECK(cp_stage_put(st, b->p, len, err, sizeof(err)) == 0);
    r = st->finish(st, err, sizeof(err));
    CHECKM(r == 0, "%s", err);
    CHECK(cp_zwriter_size(z) == len && cp_zwriter_xxh3(z) == XXH3_64bits(b->p, len));
    CHECK(cp_zwriter_nframes(z) == (len + ZFRAME - 1) / ZFRAME);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    CHECK(read_file(path, raw) == 0);
    CHECK(cp_fwriter_size(w) == raw->len && cp_fwriter_xxh3(w) == XXH3_64bits(raw->p, raw->len));
    cp_zwriter_free(z);
    cp_fwriter_free(w);
    return r;
}

/* Text-like and random runs, so that frames are of every kind. */
static void zdata(struct buf *b, size_t len, uint64_t seed)
{
    uint64_t rng = seed;
    while (b->len < len) {
        uint8_t page[PAGE];
        page_fill(page, (int)rng_below(&rng, NBLOCKS), rng_below(&rng, 1 << 20) * PAGE);
        buf_put(b, page, PAGE);
    }
    b->len = len;
}

static void test_zwriter(const char *base, int want_direct)
{
    static const size_t sizes[] = {0, 1, 4095, ZFRAME - 1, ZFRAME, ZFRAME + 1, 3 * ZFRAME + 5};
    char dir[256], err[512];
    struct cp_zpool *pool;
    struct buf b = {0};
    int direct = -1;
    make_tmp(dir, sizeof(dir), base, "zwriter");
    zdata(&b, 3 * ZFRAME + 5, 11);
    CHECK(cp_zpool_new(&pool, 3, ZFRAME, 1, err, sizeof(err)) == 0);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char name[32], path[512];
        struct buf raw = {0}, got = {0};
        snprintf(name, sizeof(name), "z%zu", i);
        if (zwrite(dir, name, &b, sizes[i], pool, &direct, &raw) < 0)
            continue;
        /* zstd's own decoder reads the whole file, seek table and all. */
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        CHECK(read_stream(path, &got) == 0);
        CHECKM(got.len == sizes[i] && (sizes[i] == 0 || memcmp(got.p, b.p, sizes[i]) == 0), "%s",
               path);
        struct stream_reader sr;
        stream_open(&sr, path, 1);
        CHECK(sr.z != NULL && cp_zseek_stream_size(sr.z) == sizes[i]);
        if (sr.z != NULL && sizes[i] > 0) {
            uint8_t *all = malloc(sizes[i]);
            CHECK(stream_pread(&sr, all, sizes[i], 0) == 0 && memcmp(all, b.p, sizes[i]) == 0);
            free(all);
        }
        stream_close(&sr);
        free(raw.p);
        free(got.p);
    }
    printf("zstd writer: %s: O_DIRECT %s\n", base, direct ? "on" : "refused, buffered");
    if (want_direct >= 0)
        CHECK(direct == want_direct);
    cp_zpool_free(pool);
    free(b.p);
    rm_rf(dir);
}

/* 1 if a mapping of this process overlaps [P, P + LEN), 0 if none, -1 if /proc/self/maps cannot
 * be read (touching an unmapped address, even through a syscall, is an error under valgrind). */
static int mapped(const void *p, size_t len)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return -1;
    unsigned long lo, hi, a = (unsigned long)(uintptr_t)p;
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo < a + len && a < hi;
    fclose(f);
    return found;
}

/* Buffers of a huge page or more start on one (so that O_DIRECT sends them to the disk as one
 * request each); every byte is usable, and unmapping gives the whole buffer back. */
static void test_buf_map(void)
{
    static const size_t caps[] = {CP_BUF_MIN, 3 * 4096, CP_HUGE_PAGE, CP_HUGE_PAGE + 4096,
                                  2 * CP_HUGE_PAGE};
    char err[512];
    printf("buffers: huge-page aligned from %u bytes\n", CP_HUGE_PAGE);
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        uint8_t *b;
        CHECKM(cp_buf_map(&b, caps[i], err, sizeof(err)) == 0, "map %zu: %s", caps[i], err);
        if (b == NULL)
            continue;
        CHECKM(caps[i] < CP_HUGE_PAGE || (uintptr_t)b % CP_HUGE_PAGE == 0, "%zu bytes at %p",
               caps[i], (void *)b);
        memset(b, 0xa5, caps[i]);
        CHECKM(b[0] == 0xa5 && b[caps[i] - 1] == 0xa5, "%zu bytes not writable", caps[i]);
        cp_buf_unmap(b, caps[i]);
        CHECKM(mapped(b, caps[i]) == 0, "%zu bytes still mapped", caps[i]);
    }
}

/* cp_hash_file gives the XXH3 of the file's bytes whatever their layout: holes (whole chunks of
 * them are not read) hash as zeros, a tail that ends inside a block, data starting inside a
 * chunk, an empty file; a missing file is named. */
static void test_hash_file(const char *base)
{
    static const struct {
        const char *what;
        off_t size, data_at; /* DATA_LEN random bytes at DATA_AT, holes elsewhere */
        size_t data_len;
    } cases[] = {
        {"empty", 0, 0, 0},
        {"one byte", 1, 0, 1},
        {"holes around data, unaligned tail", (9 << 20) + 123, (5 << 20) - 4096, 3 << 20},
        {"all hole", 7 << 20, 0, 0},
        {"data to an unaligned end", (3 << 20) + 7, 1 << 20, (2 << 20) + 7},
        {"more chunks than buffers", (19 << 20) + 5, 4096, (19 << 20) - 4091},
    };
    char dir[256], err[512], path[300];
    uint64_t size, sum;
    printf("hash_file: XXH3 of sparse files read by several threads\n");
    snprintf(dir, sizeof(dir), "%s/test_hash_file.XXXXXX", base);
    CHECKM(mkdtemp(dir) != NULL, "mkdtemp %s", dir);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *bytes = calloc(1, (size_t)cases[i].size + 1);
        uint64_t rng = 0x9e3779b97f4a7c15ULL + i;
        snprintf(path, sizeof(path), "%s/f", dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        for (size_t k = 0; k < cases[i].data_len; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            bytes[cases[i].data_at + (off_t)k] = (uint8_t)rng;
        }
        CHECKM(fd >= 0 && ftruncate(fd, cases[i].size) == 0 &&
                   pwrite(fd, bytes + cases[i].data_at, cases[i].data_len, cases[i].data_at) ==
                       (ssize_t)cases[i].data_len &&
                   close(fd) == 0,
               "%s: write %s", cases[i].what, path);
        size = 1;
        sum = 0;
        CHECKM(cp_hash_file(dir, "f", &size, &sum, err, sizeof(err)) == 0, "%s: %s", cases[i].what,
               err);
        CHECKM(size == (uint64_t)cases[i].size, "%s: %" PRIu64 " bytes", cases[i].what, size);
        CHECKM(sum == XXH3_64bits(bytes, (size_t)cases[i].size), "%s: another checksum",
               cases[i].what);
        free(bytes);
        unlink(path);
    }
    CHECKM(cp_hash_file(dir, "none", &size, &sum, err, sizeof(err)) == -ENOENT &&
               strstr(err, "/none"),
           "a missing file: %s", err);
    rmdir(dir);
}

/* High levels need tens of MiB per context: the pool lends fewer contexts than streams. */
static void test_zpool(void)
{
    char err[512];
    struct cp_zpool *p;
    printf("zstd pool: contexts within the budget\n");
    CHECK(cp_zpool_new(&p, 1, CP_ZFRAME_SIZE, 9, err, sizeof(err)) == 0 && cp_zpool_max(p) == 9);
    cp_zpool_free(p);
    CHECK(cp_zpool_new(&p, 19, CP_ZFRAME_SIZE, 9, err, sizeof(err)) == 0 && cp_zpool_max(p) == 1);
    cp_zpool_free(p);
    CHECK(cp_zpool_new(&p, 20, CP_ZFRAME_SIZE, 9, err, sizeof(err)) == -EINVAL && p == NULL);
    CHECK(cp_zpool_new(&p, 0, CP_ZFRAME_SIZE, 9, err, sizeof(err)) == -EINVAL && p == NULL);
}

struct zseek_damage {
    const char *what;
    long at;   /* where to write VALUE: from the start if >= 0, else from the end */
    int width; /* 1 or 4 bytes; 0 writes nothing */
    uint32_t value;
    long cut; /* bytes cut off the end */
    const char *msg;
};

/* A file of 3 frames (ZFRAME, ZFRAME, 100 bytes): its seek table is 8 + 3 * 8 + 9 = 41 bytes at
 * the end: header at -41, entries at -33, -25, -17, footer at -9 (count), -5 (descriptor), -4. */
static const struct zseek_damage zseek_damages[] = {
    {"footer magic", -1, 1, 0x00, 0, "no seek table"},
    {"cut short", 0, 0, 0, 5, "no seek table"},
    {"cut inside a frame", 0, 0, 0, 41 + 50, "no seek table"},
    {"reserved descriptor bits", -5, 1, 0x04, 0, "descriptor 0x04"},
    {"checksum flag", -5, 1, 0x80, 0, "descriptor 0x80"},
    {"frame count too large", -9, 4, 0x10000000, 0, "does not fit"},
    {"frame count one short", -9, 4, 2, 0, "skippable frame header is wrong"},
    {"skippable magic", -41, 4, 0x184d2a50, 0, "skippable frame header is wrong"},
    {"skippable size", -37, 4, 40, 0, "skippable frame header is wrong"},
    {"compressed size", -25, 4, 77, 0, "frames end at"},
    {"empty frame", -33, 4, 0, 0, "entry 0"},
    {"huge stream size", -29, 4, 0x40000000, 0, "entry 0"},
};

static void test_zseek(void)
{
    char dir[256], path[512], err[512];
    struct cp_zpool *pool;
    struct buf b = {0}, raw = {0};
    struct cp_zseek *z;
    int direct;
    printf("zstd seek table: a damaged frame alone, damaged and cut tables\n");
    make_tmp(dir, sizeof(dir), "/tmp", "zseek");
    zdata(&b, 2 * ZFRAME + 100, 5);
    CHECK(cp_zpool_new(&pool, 1, ZFRAME, 1, err, sizeof(err)) == 0);
    CHECK(zwrite(dir, "ok", &b, b.len, pool, &direct, &raw) == 0);
    snprintf(path, sizeof(path), "%s/ok", dir);
    int fd = open(path, O_RDONLY);
    CHECK(cp_zseek_load(&z, fd, err, sizeof(err)) == 0);
    close(fd);
    if (z == NULL)
        goto out;
    CHECK(cp_zseek_nframes(z) == 3 && cp_zseek_frame(z, 2)->stream_size == 100);
    uint64_t f1 = cp_zseek_frame(z, 1)->file_offset, f1len = cp_zseek_frame(z, 1)->file_size;
    cp_zseek_free(z);

    /* A byte of frame 1 flipped: frames 0 and 2 still read alone, frame 1 does not. */
    struct buf bad = {0};
    buf_put(&bad, raw.p, raw.len);
    bad.p[f1 + f1len / 2] ^= 0x20;
    snprintf(path, sizeof(path), "%s/bad", dir);
    write_file(path, bad.p, bad.len);
    fd = open(path, O_RDONLY);
    CHECK(cp_zseek_load(&z, fd, err, sizeof(err)) == 0);
    if (z != NULL) {
        uint8_t *out = malloc(ZFRAME);
        CHECK(cp_zseek_read(z, fd, 0, out, err, sizeof(err)) == 0 && memcmp(out, b.p, ZFRAME) == 0);
        CHECK(cp_zseek_read(z, fd, 2, out, err, sizeof(err)) == 0 &&
              memcmp(out, b.p + 2 * ZFRAME, 100) == 0);
        err[0] = '\0';
        int r = cp_zseek_read(z, fd, 1, out, err, sizeof(err));
        CHECKM(r == -EBADMSG && strstr(err, "frame 1 at file offset") != NULL, "%d: %s", r, err);
        free(out);
        cp_zseek_free(z);
    }
    close(fd);
    free(bad.p);

    for (size_t i = 0; i < sizeof(zseek_damages) / sizeof(zseek_damages[0]); i++) {
        const struct zseek_damage *d = &zseek_damages[i];
        struct buf t = {0};
        buf_put(&t, raw.p, raw.len);
        size_t at = d->at >= 0 ? (size_t)d->at : raw.len - (size_t)-d->at;
        for (int k = 0; k < d->width; k++)
            t.p[at + k] = (uint8_t)(d->value >> (8 * k));
        write_file(path, t.p, raw.len - (size_t)d->cut);
        fd = open(path, O_RDONLY);
        err[0] = '\0';
        int r = cp_zseek_load(&z, fd, err, sizeof(err));
        CHECKM(r == -EBADMSG && z == NULL && strstr(err, d->msg) != NULL, "%s: %d \"%s\"", d->what,
               r, err);
        cp_zseek_free(z);
        close(fd);
        free(t.p);
    }
out:
    cp_zpool_free(pool);
    free(raw.p);
    free(b.p);
    rm_rf(dir);
}

/* A skippable frame where the table says a frame is: its seek table is sound, but reading the
 * frame must fail as a restore of the file fails ("not zstd frames"), not read as no bytes. */
static void test_zseek_skippable(void)
{
    static const uint8_t file[] = {
        0x50, 0x2a, 0x4d, 0x18, 4,  0, 0, 0, 'a', 'b',  'c',  'd', /* skippable */
        0x5e, 0x2a, 0x4d, 0x18, 17, 0, 0, 0, 12,  0,    0,    0,   /* table, entry */
        0,    0,    0,    0,    1,  0, 0, 0, 0,   0xb1, 0xea, 0x92, 0x8f};
    char dir[256], path[512], err[512] = "";
    struct cp_zseek *z;
    uint8_t out[1];
    printf("zstd seek table: a skippable frame is not a frame\n");
    make_tmp(dir, sizeof(dir), "/tmp", "zskip");
    snprintf(path, sizeof(path), "%s/skip", dir);
    write_file(path, file, sizeof(file));
    int fd = open(path, O_RDONLY);
    CHECKM(cp_zseek_load(&z, fd, err, sizeof(err)) == 0, "%s", err);
    if (z != NULL) {
        CHECK(cp_zseek_nframes(z) == 1 && cp_zseek_stream_size(z) == 0);
        int r = cp_zseek_read(z, fd, 0, out, err, sizeof(err));
        CHECKM(r == -EBADMSG && strstr(err, "is not one zstd frame") != NULL, "%d: %s", r, err);
        cp_zseek_free(z);
    }
    close(fd);
    rm_rf(dir);
}

/* ---- the index reader: a valid index, then table-driven damage ---- */

/* header, BLOCK 0 "pc.ram", PAGES (block 0, 2 pages), BLOCK 1 "vga", PAGES (block 1, 1 page),
 * END: records at 24, 48, 88, 112, 144; 168 bytes. */
static void make_index(const char *dir, struct buf *out)
{
    char err[512], path[512];
    struct cp_fwriter *w;
    uint64_t offs0[2] = {0x1000, 0x5000}, offs1[1] = {0x2000};
    CHECK(cp_fwriter_open(&w, dir, "ok.idx", 4096, 0, err, sizeof(err)) == 0);
    struct cp_stage *st = cp_fwriter_stage(w);
    CHECK(cp_index_put_header(st, 1, err, sizeof(err)) == 0);
    CHECK(cp_index_put_block(st, 0, "pc.ram", 6, err, sizeof(err)) == 0);
    CHECK(cp_index_put_pages(st, 1, CP_INDEX_PAGES, 0, 2, 1408, offs0, err, sizeof(err)) == 0);
    CHECK(cp_index_put_block(st, 1, "vga", 3, err, sizeof(err)) == 0);
    CHECK(cp_index_put_pages(st, 1, CP_INDEX_PAGES, 1, 1, 1408 + 2 * PAGE + 1344, offs1, err,
                             sizeof(err)) == 0);
    CHECK(cp_index_put_end(st, 3, 1408 + 3 * PAGE + 1344, err, sizeof(err)) == 0);
    CHECK(st->finish(st, err, sizeof(err)) == 0);
    cp_fwriter_free(w);
    snprintf(path, sizeof(path), "%s/ok.idx", dir);
    CHECK(read_file(path, out) == 0);
}

struct idx_damage {
    const char *what;
    size_t at; /* where to write VALUE */
    int width; /* 1, 4 or 8 bytes; 0 writes nothing */
    uint64_t value;
    size_t len; /* the damaged file's length; 0 keeps it */
    const char *msg;
};

static const struct idx_damage idx_damages[] = {
    {"bad magic", 0, 1, 'X', 0, "not a page index"},
    {"version 4", 8, 4, 4, 0, "not supported"},
    {"a run in version 1", 60, 4, CP_INDEX_RUN, 0, "offset 48: flags 0x1 in a version 1 index"},
    {"sum shift in version 1", 16, 4, 18, 0, "not supported"},
    {"page size", 12, 4, 65536, 0, "not supported"},
    {"block id out of order", 28, 4, 1, 0, "offset 24: block id 1 where 0 was due"},
    {"empty name", 32, 4, 0, 0, "offset 24: bad block name length 0"},
    {"long name", 32, 4, 300, 0, "bad block name length 300"},
    {"NUL in name", 41, 1, 0, 0, "NUL in block name"},
    {"unknown block", 52, 4, 7, 0, "offset 48: pages of unknown block 7"},
    {"zero pages", 56, 4, 0, 0, "bad page count 0"},
    {"pages past the end", 56, 4, 0xffffffff, 0, "pages past the end"},
    {"offset overflow", 64, 8, UINT64_MAX - 10, 0, "out of order"},
    {"overlapping pages", 128, 8, 1408 + PAGE, 0, "offset 112: pages at stream offset"},
    {"unknown record", 88, 4, 9, 0, "offset 88: unknown record type 9"},
    {"END miscounts", 152, 8, 4, 0, "END counts 4 pages"},
    {"stream too short", 160, 8, 100, 0, "past the stream's 100 bytes"},
    {"truncated", 0, 0, 0, 160, "END record not last"},
    {"no END", 0, 0, 0, 144, "no END record"},
    {"trailing bytes", 0, 0, 0, 176, "END record not last"},
    {"header only", 0, 0, 0, 24, "no END record"},
    {"empty file", 0, 0, 0, 1, "not a page index"},
};

static void test_index_reader(void)
{
    char dir[256], path[512], err[512];
    struct buf ok = {0};
    struct cp_index *ix;
    printf("index: reader, valid and damaged\n");
    make_tmp(dir, sizeof(dir), "/tmp", "index");
    make_index(dir, &ok);
    CHECK(ok.len == 168);
    snprintf(path, sizeof(path), "%s/ok.idx", dir);
    int r = cp_index_load(&ix, path, err, sizeof(err));
    CHECKM(r == 0, "%s", err);
    if (r < 0)
        goto out;
    CHECK(cp_index_nblocks(ix) == 2);
    CHECK(strcmp(cp_index_block_name(ix, 0), "pc.ram") == 0);
    CHECK(strcmp(cp_index_block_name(ix, 1), "vga") == 0);
    CHECK(cp_index_npages(ix) == 3);
    static const struct cp_index_page want[] = {
        {0, 0x1000, 1408, 0}, {0, 0x5000, 1408 + PAGE, 0}, {1, 0x2000, 1408 + 2 * PAGE + 1344, 0}};
    struct cp_index_iter it = {0};
    struct cp_index_page pg;
    for (int i = 0; i < 3; i++) {
        CHECK(cp_index_next(ix, &it, &pg) == 1);
        CHECK(pg.block_id == want[i].block_id && pg.ram_offset == want[i].ram_offset &&
              pg.stream_offset == want[i].stream_offset);
    }
    CHECK(cp_index_next(ix, &it, &pg) == 0);
    cp_index_free(ix);
    for (size_t i = 0; i < sizeof(idx_damages) / sizeof(idx_damages[0]); i++) {
        const struct idx_damage *d = &idx_damages[i];
        struct buf b = {0};
        buf_put(&b, ok.p, ok.len);
        buf_zeros(&b, 16);
        for (int k = 0; k < d->width; k++)
            b.p[d->at + k] = (uint8_t)(d->value >> (8 * k));
        snprintf(path, sizeof(path), "%s/bad.idx", dir);
        write_file(path, b.p, d->len ? d->len : ok.len);
        err[0] = '\0';
        r = cp_index_load(&ix, path, err, sizeof(err));
        CHECKM(r == -EBADMSG && ix == NULL && strstr(err, d->msg) != NULL, "%s: %d \"%s\"", d->what,
               r, err);
        free(b.p);
    }
out:
    free(ok.p);
    rm_rf(dir);
}

/* An index with zero pages (QEMU >= 9.0): read back as such, in stream order; a ZEROS record
 * that starts inside the pages before it is refused. */
static void test_index_zeros(void)
{
    char dir[256], path[512], err[512];
    uint64_t offs[3] = {0x3000, 0x1000, 0x7000};
    struct cp_fwriter *w;
    struct cp_index *ix;
    printf("index: zero pages\n");
    make_tmp(dir, sizeof(dir), "/tmp", "index-zeros");
    snprintf(path, sizeof(path), "%s/z.idx", dir);
    for (int bad = 0; bad < 2; bad++) {
        unlink(path);
        if (cp_fwriter_open(&w, dir, "z.idx", 4096, 0, err, sizeof(err)) < 0) {
            CHECKM(0, "%s", err);
            break;
        }
        struct cp_stage *st = cp_fwriter_stage(w);
        uint64_t zeros_at = 1408 + PAGE - (bad ? 1 : 0);
        CHECK(cp_index_put_header(st, 1, err, sizeof(err)) == 0);
        CHECK(cp_index_put_block(st, 0, "pc.ram", 6, err, sizeof(err)) == 0);
        CHECK(cp_index_put_pages(st, 1, CP_INDEX_PAGES, 0, 1, 1408, offs, err, sizeof(err)) == 0);
        CHECK(cp_index_put_pages(st, 1, CP_INDEX_ZEROS, 0, 2, zeros_at, offs + 1, err,
                                 sizeof(err)) == 0);
        CHECK(cp_index_put_end(st, 3, 1408 + PAGE, err, sizeof(err)) == 0);
        CHECK(st->finish(st, err, sizeof(err)) == 0);
        cp_fwriter_free(w);
        int r = cp_index_load(&ix, path, err, sizeof(err));
        if (bad) {
            CHECKM(r == -EBADMSG && strstr(err, "out of order") != NULL, "%d \"%s\"", r, err);
            continue;
        }
        CHECKM(r == 0, "%s", err);
        if (r < 0)
            continue;
        CHECK(cp_index_npages(ix) == 3);
        struct cp_index_iter it = {0};
        struct cp_index_page pg;
        for (int i = 0; i < 3; i++) {
            CHECK(cp_index_next(ix, &it, &pg) == 1);
            CHECK(pg.ram_offset == offs[i] && pg.zero == (i > 0));
            CHECK(pg.stream_offset == (i ? 1408 + PAGE : 1408));
        }
        CHECK(cp_index_next(ix, &it, &pg) == 0);
        cp_index_free(ix);
    }
    rm_rf(dir);
}

/* Version 2: a SUM per block of the stream, in order, read back; missing, repeated, extra or
 * out-of-order sums, and sums in a version 1 index, refused. */
static void test_index_sums(void)
{
    static const struct {
        const char *what;
        uint32_t version;
        uint64_t stream; /* END's stream size */
        uint64_t ks[4];  /* the SUM records' k, in file order */
        int nk;
        const char *msg; /* NULL: accepted */
    } cases[] = {
        {"two blocks and a tail", 2, (2 << CP_INDEX_SUM_SHIFT) + 1, {0, 1, 2}, 3, NULL},
        {"exact blocks", 2, 2 << CP_INDEX_SUM_SHIFT, {0, 1}, 2, NULL},
        {"empty stream", 2, 0, {0}, 0, NULL},
        {"a sum missing", 2, (2 << CP_INDEX_SUM_SHIFT) + 1, {0, 1}, 2, "2 SUM records"},
        {"a sum too many", 2, 2 << CP_INDEX_SUM_SHIFT, {0, 1, 2}, 3, "3 SUM records"},
        {"out of order", 2, 2 << CP_INDEX_SUM_SHIFT, {1, 0}, 2, "SUM of block 1 where 0"},
        {"repeated", 2, 2 << CP_INDEX_SUM_SHIFT, {0, 0}, 2, "SUM of block 0 where 1"},
        {"in version 1", 1, 4096, {0}, 1, "a SUM record in a version 1 index"},
    };
    char dir[256], path[512], err[512];
    struct cp_fwriter *w;
    struct cp_index *ix;
    printf("index: sums\n");
    make_tmp(dir, sizeof(dir), "/tmp", "index-sums");
    snprintf(path, sizeof(path), "%s/s.idx", dir);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unlink(path);
        if (cp_fwriter_open(&w, dir, "s.idx", 4096, 0, err, sizeof(err)) < 0) {
            CHECKM(0, "%s", err);
            break;
        }
        struct cp_stage *st = cp_fwriter_stage(w);
        CHECK(cp_index_put_header(st, cases[i].version, err, sizeof(err)) == 0);
        for (int k = 0; k < cases[i].nk; k++)
            CHECK(cp_index_put_sum(st, cases[i].ks[k], 1000 + cases[i].ks[k], err, sizeof(err)) ==
                  0);
        CHECK(cp_index_put_end(st, 0, cases[i].stream, err, sizeof(err)) == 0);
        CHECK(st->finish(st, err, sizeof(err)) == 0);
        cp_fwriter_free(w);
        err[0] = '\0';
        int r = cp_index_load(&ix, path, err, sizeof(err));
        if (cases[i].msg) {
            CHECKM(r == -EBADMSG && strstr(err, cases[i].msg), "%s: %d \"%s\"", cases[i].what, r,
                   err);
            continue;
        }
        CHECKM(r == 0, "%s: %s", cases[i].what, err);
        if (r < 0)
            continue;
        CHECK(cp_index_version(ix) == 2 && cp_index_sum_shift(ix) == CP_INDEX_SUM_SHIFT);
        CHECK(cp_index_nsums(ix) == (uint64_t)cases[i].nk);
        for (int k = 0; k < cases[i].nk; k++)
            CHECK(cp_index_sum(ix, (uint64_t)k) == 1000 + (uint64_t)k);
        cp_index_free(ix);
    }
    rm_rf(dir);
}

/* Version 3: a packet's pages contiguous in RAM become runs of 32 bytes where that is shorter
 * than their list, and read back page by page as the list would; damaged runs are refused. */
static void test_index_runs(void)
{
    static const struct {
        const char *what;
        uint32_t type, n;
        uint64_t first[3]; /* each run's first RAM offset */
        uint32_t len[3];   /* its pages */
        int nruns;
        size_t bytes; /* of the records */
    } cases[] = {
        {"one run of 128", CP_INDEX_PAGES, 128, {0x200000}, {128}, 1, 32},
        {"two runs", CP_INDEX_PAGES, 7, {0x1000, 0x9000}, {3, 4}, 2, 64},
        {"zero runs", CP_INDEX_ZEROS, 5, {0x4000, 0}, {2, 3}, 2, 64},
        {"scattered: a list", CP_INDEX_PAGES, 3, {0x1000, 0x3000, 0x5000}, {1, 1, 1}, 3, 48},
    };
    char dir[256], path[512], err[512];
    struct cp_fwriter *w;
    struct cp_index *ix;
    printf("index: runs\n");
    make_tmp(dir, sizeof(dir), "/tmp", "index-runs");
    snprintf(path, sizeof(path), "%s/r.idx", dir);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        uint64_t offs[128];
        uint32_t n = 0;
        for (int k = 0; k < cases[c].nruns; k++)
            for (uint32_t i = 0; i < cases[c].len[k]; i++)
                offs[n++] = cases[c].first[k] + (uint64_t)i * PAGE;
        CHECK(n == cases[c].n);
        int zero = cases[c].type == CP_INDEX_ZEROS;
        uint64_t stream = 1408 + (zero ? 0 : (uint64_t)n * PAGE);
        unlink(path);
        if (cp_fwriter_open(&w, dir, "r.idx", 4096, 0, err, sizeof(err)) < 0) {
            CHECKM(0, "%s", err);
            break;
        }
        struct cp_stage *st = cp_fwriter_stage(w);
        CHECK(cp_index_put_header(st, CP_INDEX_VERSION, err, sizeof(err)) == 0);
        CHECK(cp_index_put_block(st, 0, "pc.ram", 6, err, sizeof(err)) == 0);
        CHECK(cp_index_put_pages(st, CP_INDEX_VERSION, cases[c].type, 0, n, 1408, offs, err,
                                 sizeof(err)) == 0);
        for (uint64_t k = 0; k <= stream >> CP_INDEX_SUM_SHIFT; k++)
            CHECK(cp_index_put_sum(st, k, k, err, sizeof(err)) == 0);
        CHECK(cp_index_put_end(st, n, stream, err, sizeof(err)) == 0);
        CHECK(st->finish(st, err, sizeof(err)) == 0);
        cp_fwriter_free(w);
        struct buf b = {0};
        CHECK(read_file(path, &b) == 0);
        /* header 24, BLOCK 24, the records, a SUM of 24 per started 2^S bytes, END 24 */
        CHECKM(b.len == 24 + 24 + cases[c].bytes + 24 * ((stream >> CP_INDEX_SUM_SHIFT) + 1) + 24,
               "%s: %zu bytes", cases[c].what, b.len);
        int r = cp_index_load(&ix, path, err, sizeof(err));
        CHECKM(r == 0, "%s: %s", cases[c].what, err);
        if (r == 0) {
            struct cp_index_iter it = {0};
            struct cp_index_page pg;
            for (uint32_t i = 0; i < n; i++) {
                CHECK(cp_index_next(ix, &it, &pg) == 1);
                CHECKM(pg.ram_offset == offs[i] && pg.zero == zero &&
                           pg.stream_offset == 1408 + (zero ? 0 : (uint64_t)i * PAGE),
                       "%s: page %u", cases[c].what, i);
            }
            CHECK(cp_index_next(ix, &it, &pg) == 0);
            cp_index_free(ix);
        }
        /* The first run damaged: an unknown flag, then a run that wraps around RAM offsets. */
        if (c == 0 && b.len > 48 + 32) {
            static const struct {
                size_t at;
                uint64_t v;
                int width;
                const char *msg;
            } bad[] = {{48 + 12, 2, 4, "flags 0x2 in a version 3 index"},
                       {48 + 8, CP_INDEX_RUN_MAX + 1, 4, "a run of 129 pages (at most 128)"},
                       {48 + 24, UINT64_MAX - PAGE, 8, "past the end of RAM"}};
            for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
                struct buf d = {0};
                buf_put(&d, b.p, b.len);
                for (int j = 0; j < bad[k].width; j++)
                    d.p[bad[k].at + j] = (uint8_t)(bad[k].v >> (8 * j));
                write_file(path, d.p, d.len);
                r = cp_index_load(&ix, path, err, sizeof(err));
                CHECKM(r == -EBADMSG && strstr(err, bad[k].msg), "%d \"%s\"", r, err);
                free(d.p);
            }
        }
        free(b.p);
    }
    rm_rf(dir);
}

/* A second BLOCK record with a name seen before: refused, as the writer announces a name once. */
static void test_index_repeated_block(void)
{
    char dir[256], path[512], err[512] = "";
    struct cp_fwriter *w;
    struct cp_index *ix;
    printf("index: a block name announced twice\n");
    make_tmp(dir, sizeof(dir), "/tmp", "index-repeat");
    snprintf(path, sizeof(path), "%s/r.idx", dir);
    CHECK(cp_fwriter_open(&w, dir, "r.idx", 4096, 0, err, sizeof(err)) == 0);
    struct cp_stage *st = cp_fwriter_stage(w);
    CHECK(cp_index_put_header(st, 1, err, sizeof(err)) == 0);
    CHECK(cp_index_put_block(st, 0, "pc.ram", 6, err, sizeof(err)) == 0);
    CHECK(cp_index_put_block(st, 1, "pc.ram", 6, err, sizeof(err)) == 0);
    CHECK(cp_index_put_end(st, 0, 0, err, sizeof(err)) == 0);
    CHECK(st->finish(st, err, sizeof(err)) == 0);
    cp_fwriter_free(w);
    int r = cp_index_load(&ix, path, err, sizeof(err));
    CHECKM(r == -EBADMSG && ix == NULL &&
               strstr(err, "offset 48: block 1 repeats the name of block 0") != NULL,
           "%d \"%s\"", r, err);
    cp_index_free(ix);
    rm_rf(dir);
}

/* ---- fake QEMU destination for restores ---- */

enum dest_mode { D_ALL, D_EXACT_CLOSE, D_CLOSE_AFTER, D_NONE };

struct dest_conn {
    int fd;
    enum dest_mode mode;
    size_t close_after;
    struct buf want; /* the file this connection should carry */
    size_t got;
    int match;
    pthread_t t;
};

struct dest {
    char sock[108];
    int lfd;
    int n; /* streams: main, then channels in the restore's order */
    struct dest_conn c[MAXCH + 1];
    int accepted;
    int hs_ok; /* every handshake came right after its connect */
    pthread_t t;
};

static void *dest_reader(void *arg)
{
    struct dest_conn *c = arg;
    size_t limit = c->mode == D_CLOSE_AFTER ? c->close_after : SIZE_MAX;
    uint8_t b[65536];
    c->match = 1;
    while (c->got < limit) {
        if (c->mode == D_EXACT_CLOSE && c->got == c->want.len)
            break; /* all there: close without waiting for EOF */
        size_t n = sizeof(b) < limit - c->got ? sizeof(b) : limit - c->got;
        ssize_t k = read(c->fd, b, n);
        if (k <= 0)
            break;
        if (c->got + (size_t)k > c->want.len || memcmp(b, c->want.p + c->got, (size_t)k) != 0)
            c->match = 0;
        c->got += (size_t)k;
    }
    if (c->mode != D_ALL) {
        shutdown(c->fd, SHUT_RDWR);
        close(c->fd);
        c->fd = -1;
    }
    return NULL;
}

/* Reads the handshake within a second of the connect. */
static int dest_handshake(struct dest_conn *c)
{
    uint8_t hs[CP_MULTIFD_HANDSHAKE_LEN];
    size_t have = 0;
    while (have < sizeof(hs)) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 1000) != 1)
            return 0;
        ssize_t k = read(c->fd, hs + have, sizeof(hs) - have);
        if (k <= 0)
            return 0;
        have += (size_t)k;
    }
    c->got = have;
    return memcmp(hs, c->want.p, sizeof(hs)) == 0;
}

/* Like 7.2: accepts main, then each channel, reading its handshake at once; reads the streams
 * only when all are in. */
static void *dest_main(void *arg)
{
    struct dest *d = arg;
    d->hs_ok = 1;
    for (int i = 0; i < d->n; i++) {
        int fd = accept(d->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        d->c[i].fd = fd;
        d->accepted++;
        if (i > 0 && !dest_handshake(&d->c[i]))
            d->hs_ok = 0;
    }
    for (int i = 0; i < d->n; i++)
        if (d->c[i].mode != D_NONE && pthread_create(&d->c[i].t, NULL, dest_reader, &d->c[i]))
            die("pthread_create");
    for (int i = 0; i < d->n; i++)
        if (d->c[i].mode != D_NONE)
            pthread_join(d->c[i].t, NULL);
    return NULL;
}

/* Listens and loads what each stream should carry. The backlog is 0, stricter than QEMU's
 * (the channel count): a copier that does not send each handshake right after its connect
 * blocks in a later connect while we wait for that handshake. */
static void dest_start(struct dest *d, const char *sockdir, const char *dir,
                       const struct cp_file *order, int n)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->sock, sizeof(d->sock), "%s/dest.sock", sockdir);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", d->sock);
    d->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (d->lfd < 0 || bind(d->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(d->lfd, 0) < 0)
        die("dest listen");
    d->n = n;
    for (int i = 0; i < n; i++) {
        char path[1024];
        d->c[i].fd = -1;
        snprintf(path, sizeof(path), "%s/%s", dir, order[i].name);
        if (read_stream(path, &d->c[i].want) < 0)
            die(path);
    }
}

static void dest_run(struct dest *d)
{
    if (pthread_create(&d->t, NULL, dest_main, d) != 0)
        die("pthread_create");
}

/* After the copier is done: its sockets are shut down, so readers are at EOF. */
static void dest_join(struct dest *d)
{
    shutdown(d->lfd, SHUT_RDWR); /* wakes an accept still waiting */
    pthread_join(d->t, NULL);
}

static void dest_free(struct dest *d)
{
    for (int i = 0; i < d->n; i++) {
        if (d->c[i].fd >= 0)
            close(d->c[i].fd);
        free(d->c[i].want.p);
    }
    close(d->lfd);
    unlink(d->sock);
}

/* A saved directory to restore from: 3 channels of SIZE bytes or so, compressed at LEVEL. */
static void make_saved(struct save_run *sr, size_t chan_bytes, int level, uint64_t seed)
{
    struct cp_opts o = {.direct_io = 1, .buf_size = 256 * 1024, .zstd_level = level};
    struct buf mainb = {0};
    struct chan ch[3];
    uint64_t rng = seed;
    gen_main(&mainb, 200000, &rng);
    for (int i = 0; i < 3; i++)
        gen_channel(&ch[i], i, (int)(chan_bytes / (66 * PAGE)) + 1, &rng, GEN_PLAIN);
    save_begin(sr, "/var/tmp", 3, &o);
    save_send(sr, &mainb, rng_next(&rng), 0);
    for (int i = 0; i < 3; i++)
        save_send(sr, &ch[i].b, rng_next(&rng), 0);
    save_go(sr);
    CHECKM(save_end(sr) == 0, "%s", sr->err);
    CHECK(sr->nfiles == 7);
    save_join_sources(sr);
    free(mainb.p);
    for (int i = 0; i < 3; i++)
        chan_free(&ch[i]);
}

/* FILES with the channels in the order 2, 0, 1 and the indexes: the restore must connect in
 * the order given. ORDER gets main and the channels in connect order. */
static int restore_files(const struct save_run *sr, struct cp_file *files, struct cp_file *order)
{
    static const int perm[] = {0, 3, 1, 2, 4, 5, 6};
    int n = 0;
    for (int i = 0; i < 7; i++) {
        files[i] = sr->files[perm[i]];
        if (files[i].kind != CP_INDEX)
            order[n++] = files[i];
    }
    return n;
}

enum damage {
    DMG_NONE,
    DMG_FLIP,       /* a byte in the middle of channel-0 (stream 2) */
    DMG_TRUNCATE,   /* channel-0 loses its last 100 bytes */
    DMG_INDEX,      /* a byte of channel-1.idx */
    DMG_STREAM_SUM, /* the manifest's stream checksum of channel-0 */
    DMG_SAYS_PLAIN, /* the manifest calls zstd channel-0 plain */
    DMG_SAYS_ZSTD,  /* the manifest calls plain channel-0 zstd */
    DMG_MISSING,    /* channel-0 is not there */
    DMG_SHORT,      /* channel-0 holds 20 bytes, and the manifest says so */
    DMG_CUT_FRAME,  /* zstd channel-0 ends inside its last frame, and the manifest says so */
};

struct restore_case {
    const char *what;
    int level; /* of the saved files; 0 plain */
    enum dest_mode modes[4];
    size_t close_after;
    int stall_ms;
    enum damage damage;
    int cancel; /* cancel after 100 ms */
    int code;
    const char *msg;
};

/* One case a line or two, its fields in the struct's order. */
/* clang-format off */
static const struct restore_case restore_cases[] = {
    {"all streams", 0, {D_ALL, D_EXACT_CLOSE, D_ALL, D_EXACT_CLOSE}, 0, 5000, 0, 0, 0, NULL},
    {"checksum mismatch", 0, {D_ALL, D_ALL, D_ALL, D_ALL}, 0, 5000, DMG_FLIP, 0, -EBADMSG,
     "channel-0: /var/tmp/"},
    {"truncated file", 0, {D_NONE, D_NONE, D_NONE, D_NONE}, 0, 5000, DMG_TRUNCATE, 0, -EBADMSG,
     "channel-0: /var/tmp/"},
    {"damaged index", 0, {D_ALL, D_ALL, D_ALL, D_ALL}, 0, 5000, DMG_INDEX, 0, -EBADMSG,
     "channel-1.idx: /var/tmp/"},
    {"peer stops reading", 0, {D_NONE, D_NONE, D_NONE, D_NONE}, 0, 300, 0, 0, -ETIMEDOUT,
     "QEMU took no byte for 300 ms"},
    {"peer closes early", 0, {D_ALL, D_ALL, D_CLOSE_AFTER, D_ALL}, 100000, 5000, 0, 0, -EPIPE,
     "channel-0: QEMU closed the connection after "},
    {"cancel", 0, {D_NONE, D_NONE, D_NONE, D_NONE}, 0, 0, 0, 1, -ECANCELED, "restore cancelled"},
    {"plain file the manifest calls zstd", 0, {D_NONE, D_NONE, D_NONE, D_NONE}, 0, 5000,
     DMG_SAYS_ZSTD, 0, -EBADMSG, "channel-0: not zstd frames"},
    {"zstd: all streams", 1, {D_ALL, D_EXACT_CLOSE, D_ALL, D_EXACT_CLOSE}, 0, 5000, 0, 0, 0, NULL},
    {"zstd: a damaged frame", 1, {D_ALL, D_ALL, D_ALL, D_ALL}, 0, 5000, DMG_FLIP, 0, -EBADMSG,
     "channel-0: zstd frame "},
    {"zstd: truncated file", 3, {D_NONE, D_NONE, D_NONE, D_NONE}, 0, 5000, DMG_TRUNCATE, 0,
     -EBADMSG, "channel-0: /var/tmp/"},
    {"zstd: stream checksum mismatch", 1, {D_ALL, D_ALL, D_ALL, D_ALL}, 0, 5000, DMG_STREAM_SUM,
     0, -EBADMSG, "channel-0: stream checksum mismatch"},
    {"zstd file the manifest calls plain", 1, {D_NONE, D_NONE, D_NONE, D_NONE}, 0, 5000,
     DMG_SAYS_PLAIN, 0, -EBADMSG, "channel-0: holds zstd frames, but the manifest says"},
    {"zstd: peer closes early", 1, {D_ALL, D_ALL, D_CLOSE_AFTER, D_ALL}, 100000, 5000, 0, 0,
     -EPIPE, "channel-0: QEMU closed the connection after "},
    {"missing file", 0, {D_NONE, D_NONE, D_NONE, D_NONE}, 0, 5000, DMG_MISSING, 0, -ENOENT,
     "channel-0: open /var/tmp/"},
    {"channel shorter than its handshake", 0, {D_NONE, D_NONE, D_NONE, D_NONE}, 0, 5000,
     DMG_SHORT, 0, -EBADMSG, "channel-0 is shorter than a multifd handshake"},
    {"zstd: cut inside a frame, sizes as the manifest says", 1, {D_ALL, D_ALL, D_ALL, D_ALL}, 0,
     5000, DMG_CUT_FRAME, 0, -EBADMSG, "channel-0: ends inside zstd frame"},
};
/* clang-format on */

/* Cuts the file of C0 in DIR to LEN bytes and tells C0 its new size and checksum, as a
 * manifest written for the damaged file would. */
static void cut_file(const char *dir, struct cp_file *c0, size_t len)
{
    char path[512];
    struct buf b = {0};
    snprintf(path, sizeof(path), "%s/%s", dir, c0->name);
    CHECK(read_file(path, &b) == 0 && b.len >= len);
    write_file(path, b.p, len);
    c0->size = len;
    c0->xxh3 = XXH3_64bits(b.p, len);
    free(b.p);
}

/* A zstd file cut 100 bytes before its last frame ends (the seek table gone too). */
static size_t cut_inside_frame(const char *dir, const struct cp_file *c0)
{
    char path[512];
    struct buf b = {0};
    snprintf(path, sizeof(path), "%s/%s", dir, c0->name);
    CHECK(read_file(path, &b) == 0 && b.len > 2 * CP_ZSEEK_FOOTER);
    const uint8_t *foot = b.p + b.len - CP_ZSEEK_FOOTER;
    size_t n = (size_t)foot[0] | (size_t)foot[1] << 8 | (size_t)foot[2] << 16;
    size_t table = 8 + n * CP_ZSEEK_ENTRY_LEN + CP_ZSEEK_FOOTER;
    free(b.p);
    return b.len - table - 100;
}

static void damage_file(const char *dir, const char *name, int truncate_it)
{
    char path[512];
    struct buf b = {0};
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    CHECK(read_file(path, &b) == 0);
    if (truncate_it)
        b.len -= 100;
    else
        b.p[b.len / 2] ^= 0x40;
    write_file(path, b.p, b.len);
    free(b.p);
}

/* Damage to the files (or to what FILES says of them, as a manifest would). */
static void damage(const struct save_run *sr, struct cp_file *files, enum damage what)
{
    struct cp_file *c0 = &files[2];
    CHECK(strcmp(c0->name, "channel-0") == 0);
    switch (what) {
    case DMG_NONE:
        break;
    case DMG_FLIP:
    case DMG_TRUNCATE:
        damage_file(sr->dir, "channel-0", what == DMG_TRUNCATE);
        break;
    case DMG_INDEX:
        damage_file(sr->dir, "channel-1.idx", 0);
        break;
    case DMG_STREAM_SUM:
        c0->stream_xxh3 ^= 1;
        break;
    case DMG_SAYS_PLAIN:
        c0->zstd = 0;
        break;
    case DMG_SAYS_ZSTD:
        c0->zstd = 1;
        c0->stream_size = c0->size;
        c0->stream_xxh3 = c0->xxh3;
        break;
    case DMG_MISSING: {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", sr->dir, c0->name);
        CHECK(unlink(path) == 0);
        break;
    }
    case DMG_SHORT:
        cut_file(sr->dir, c0, 20);
        break;
    case DMG_CUT_FRAME:
        cut_file(sr->dir, c0, cut_inside_frame(sr->dir, c0));
        break;
    }
}

static void test_restore(const struct restore_case *rc, uint64_t seed)
{
    struct save_run sr;
    struct cp_file files[7], order[4];
    struct dest d;
    struct cp_restore *r = NULL;
    char err[512] = "";
    /* Found while opening the files, before any connect. */
    int early = rc->damage == DMG_TRUNCATE || rc->damage == DMG_SAYS_PLAIN ||
                rc->damage == DMG_SAYS_ZSTD || rc->damage == DMG_MISSING || rc->damage == DMG_SHORT;
    printf("restore: %s\n", rc->what);
    make_saved(&sr, 4 << 20, rc->level, seed);
    int n = restore_files(&sr, files, order);
    dest_start(&d, sr.sockdir, sr.dir, order, n);
    for (int i = 0; i < n; i++) {
        d.c[i].mode = rc->modes[i];
        d.c[i].close_after = rc->close_after;
    }
    damage(&sr, files, rc->damage);
    dest_run(&d);
    struct cp_opts o = {.direct_io = 1, .buf_size = 128 * 1024, .stall_ms = rc->stall_ms};
    double t0 = now_s();
    int e = cp_restore_open(&r, sr.dir, files, 7, &o, err, sizeof(err));
    if (e == 0)
        e = cp_restore_start(r, d.sock, err, sizeof(err));
    if (e == 0) {
        if (rc->cancel) {
            usleep(100000);
            CHECK(!cp_restore_done(r));
            cp_restore_cancel(r);
        }
        e = cp_restore_finish(r, err, sizeof(err));
        CHECK(cp_restore_done(r));
    }
    double dt = now_s() - t0;
    dest_join(&d);
    CHECKM(e == rc->code, "%s: %d: %s", rc->what, e, err);
    CHECKM(rc->msg == NULL || strstr(err, rc->msg) != NULL, "message \"%s\"", err);
    if (rc->damage == DMG_TRUNCATE)
        CHECKM(strstr(err, "expected") != NULL, "%s", err);
    if (rc->damage == DMG_FLIP && rc->level == 0)
        CHECKM(strstr(err, "checksum mismatch") != NULL, "%s", err);
    if (rc->stall_ms == 300)
        CHECKM(dt < 3, "stall noticed after %.2f s", dt);
    if (rc->cancel)
        CHECKM(dt < 3, "cancel took %.2f s", dt);
    if (early)
        CHECK(d.accepted == 0);
    else
        CHECK(d.hs_ok && d.accepted == n);
    if (rc->code == 0) {
        uint64_t total = 0;
        for (int i = 0; i < n; i++) {
            CHECK(d.c[i].match && d.c[i].got == d.c[i].want.len);
            total += d.c[i].want.len;
        }
        CHECK(cp_restore_bytes(r) == total);
    }
    /* The damaged stream's last chunk was held back. */
    if (rc->damage == DMG_FLIP || rc->damage == DMG_STREAM_SUM || rc->damage == DMG_CUT_FRAME)
        CHECKM(d.c[2].got < d.c[2].want.len, "%zu of %zu", d.c[2].got, d.c[2].want.len);
    cp_restore_free(r);
    dest_free(&d);
    save_cleanup(&sr);
}

/* ---- throughput ---- */

struct bench_src {
    int fd;
    int id; /* -1 main */
    uint64_t bytes;
    pthread_t t;
};

static void *bench_main(void *arg)
{
    struct bench_src *b = arg;
    struct chan c;
    uint64_t rng = 1;
    if (b->id < 0) {
        struct buf m = {0};
        gen_main(&m, 1 << 20, &rng);
        send(b->fd, m.p, m.len, MSG_NOSIGNAL);
        free(m.p);
        close(b->fd);
        return NULL;
    }
    memset(&c, 0, sizeof(c));
    gen_handshake(&c.b, b->id);
    send(b->fd, c.b.p, c.b.len, MSG_NOSIGNAL);
    c.b.len = 0;
    gen_packet(&c, &rng, CP_MULTIFD_MAGIC, 0, CP_MULTIFD_PAGES_ALLOC, 0, 0, 0);
    for (uint64_t sent = 0; sent < b->bytes; sent += c.b.len)
        if (send(b->fd, c.b.p, c.b.len, MSG_NOSIGNAL) != (ssize_t)c.b.len)
            break;
    chan_free(&c);
    close(b->fd);
    return NULL;
}

static double bench_once(const char *base, uint64_t total, int nch, int direct)
{
    struct save_run sr;
    struct bench_src b[MAXCH + 1];
    struct cp_opts o = {.direct_io = direct};
    save_begin(&sr, base, nch, &o);
    double t0 = now_s();
    for (int i = 0; i <= nch; i++) {
        b[i] = (struct bench_src){
            .fd = src_connect(sr.sock), .id = i - 1, .bytes = total / (uint64_t)nch};
        if (pthread_create(&b[i].t, NULL, bench_main, &b[i]) != 0)
            die("pthread_create");
    }
    int r = cp_save_finish(sr.s, sr.files, &sr.nfiles, sr.err, sizeof(sr.err));
    double dt = now_s() - t0;
    CHECKM(r == 0, "%s", sr.err);
    uint64_t bytes = cp_save_bytes(sr.s);
    for (int i = 0; i <= nch; i++)
        pthread_join(b[i].t, NULL);
    save_cleanup(&sr);
    printf("bench: %s, %d channels, O_DIRECT %s: %.0f MiB in %.2f s = %.0f MiB/s\n", base, nch,
           direct ? "asked" : "off", bytes / 1048576.0, dt, bytes / 1048576.0 / dt);
    return dt;
}

static int bench(const char *base, const char *mib, const char *nch)
{
    uint64_t total = strtoull(mib, NULL, 10) << 20;
    int n = atoi(nch);
    if (n < 1 || n > MAXCH)
        return 2;
    bench_once(base, total, n, 1);
    bench_once(base, total, n, 0);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 5 && strcmp(argv[1], "bench") == 0)
        return bench(argv[2], argv[3], argv[4]);
    /* A hang is a failure. 600 s: under valgrind on a loaded host the indexer's sums (XXH3 of
     * every channel byte, emulated) took it past 300 s (312 s at load average 25). */
    alarm(600);
    const char *env = getenv("COPIER_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    printf("COPIER_SEED=%" PRIu64 "\n", seed);
    char mnt[256];

    test_writer("/var/tmp", -1);
    test_writer("/tmp", -1);
    test_writer("/dev/shm", -1);
    if (mount_tmp(mnt, sizeof(mnt), "ramfs", NULL)) {
        test_writer(mnt, 0);
        test_save_ok(mnt, 2, 64 * 1024, 0, seed + 1);
        unmount_tmp(mnt);
    }
    test_buf_map();
    test_hash_file("/var/tmp");
    test_hash_file("/dev/shm");
    test_index_reader();
    test_index_zeros();
    test_index_repeated_block();
    test_index_sums();
    test_index_runs();
    test_zpool();
    test_zseek();
    test_zseek_skippable();
    test_zwriter("/var/tmp", -1);
    test_zwriter("/dev/shm", -1);
    if (mount_tmp(mnt, sizeof(mnt), "ramfs", NULL)) {
        test_zwriter(mnt, 0);
        test_save_zstd(mnt, 2, 64 * 1024, 1, 0, seed + 40);
        unmount_tmp(mnt);
    }
    test_save_zstd("/var/tmp", 4, 64 * 1024, 1, 0, seed + 41);
    test_save_zstd("/var/tmp", 3, 0, 3, 0, seed + 42);
    test_save_zstd("/var/tmp", 2, 4096, 1, 1, seed + 43);
    test_save_zstd("/var/tmp", 1, 128 * 1024, 19, 0, seed + 44);
    test_save_ok("/var/tmp", 4, 64 * 1024, 0, seed + 2);
    test_save_ok("/var/tmp", 4, 0, 0, seed + 3);
    test_save_ok("/var/tmp", 2, 4096, 1, seed + 4);
    test_save_ok("/dev/shm", 4, 64 * 1024, 0, seed + 5);
    test_save_main_late(seed + 6);
    test_save_resent(seed + 7);
    for (size_t i = 0; i < sizeof(fail_cases) / sizeof(fail_cases[0]); i++) {
        test_save_fail(&fail_cases[i], 0, seed + 7 + i);
        test_save_fail(&fail_cases[i], 1, seed + 7 + i);
    }
    test_save_cancel(seed + 20);
    test_save_drain(seed + 22);
    test_save_io_errors(seed + 21);
    for (size_t i = 0; i < sizeof(restore_cases) / sizeof(restore_cases[0]); i++)
        test_restore(&restore_cases[i], seed + 30 + i);

    if (failures) {
        fprintf(stderr, "test_copier: %d checks failed (COPIER_SEED=%" PRIu64 ")\n", failures,
                seed);
        return 1;
    }
    printf("test_copier: all checks passed\n");
    return 0;
}
