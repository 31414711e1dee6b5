/* index: encodes page-index records into a write path, and loads and validates an index file
 * (untrusted) for the tests and the lazy restore. The format is described in index.h. */
#include "index.h"

#include "copier.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "bytes.h"
#include "worker.h"

#define CP_INDEX_REC_LEN   16 /* u32 type, u32, u32, u32 */
#define CP_INDEX_PAGES_LEN 24 /* ... then u64 stream_offset */
#define CP_INDEX_RUN_LEN   32 /* a PAGES or ZEROS record with CP_INDEX_RUN: one u64 ram_offset */
#define CP_INDEX_END_LEN   24
#define CP_INDEX_SUM_LEN   24 /* u32 type, u32 0, u64 k, u64 xxh3 */

struct cp_index {
    uint8_t *data;
    size_t len;
    uint32_t nblocks;
    char names[CP_INDEX_MAX_BLOCKS][CP_INDEX_NAME_MAX + 1];
    uint64_t npages;
    uint64_t stream_size;
    uint32_t version, sum_shift;
    uint64_t *sums, nsums, sums_cap;
};

static size_t cp_pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* The 16 bytes that open every record but END and SUM. */
static int cp_index_put_rec(struct cp_stage *st, uint32_t type, uint32_t a, uint32_t b,
                            uint32_t flags, char *err, size_t errlen)
{
    uint8_t rec[CP_INDEX_REC_LEN] = {0};
    cp_put_le32(rec, type);
    cp_put_le32(rec + 4, a);
    cp_put_le32(rec + 8, b);
    cp_put_le32(rec + 12, flags);
    return cp_stage_put(st, rec, sizeof(rec), err, errlen);
}

int cp_index_put_header(struct cp_stage *st, uint32_t version, char *err, size_t errlen)
{
    uint8_t h[CP_INDEX_HEADER_LEN] = {0};
    memcpy(h, CP_INDEX_MAGIC, 8);
    cp_put_le32(h + 8, version);
    cp_put_le32(h + 12, CP_INDEX_PAGE_SIZE);
    cp_put_le32(h + 16, version >= 2 ? CP_INDEX_SUM_SHIFT : 0);
    return cp_stage_put(st, h, sizeof(h), err, errlen);
}

int cp_index_put_block(struct cp_stage *st, uint32_t block_id, const char *name, uint32_t name_len,
                       char *err, size_t errlen)
{
    uint8_t padded[CP_INDEX_NAME_MAX + 1] = {0}; /* the longest name, padded to 8 */
    memcpy(padded, name, name_len);
    int r = cp_index_put_rec(st, CP_INDEX_BLOCK, block_id, name_len, 0, err, errlen);
    if (r < 0)
        return r;
    return cp_stage_put(st, padded, cp_pad8(name_len), err, errlen);
}

/* The offsets of N pages as one list record (after the 16 bytes, the stream offset). */
static int cp_index_put_list(struct cp_stage *st, uint32_t type, uint32_t block_id, uint32_t n,
                             uint64_t stream_offset, const uint64_t *ram_offsets, char *err,
                             size_t errlen)
{
    uint8_t v[8 * 64];
    int r = cp_index_put_rec(st, type, block_id, n, 0, err, errlen);
    cp_put_le64(v, stream_offset);
    if (r == 0)
        r = cp_stage_put(st, v, 8, err, errlen);
    for (uint32_t i = 0; r == 0 && i < n;) {
        size_t k = 0;
        for (; k < 64 && i < n; k++, i++)
            cp_put_le64(v + 8 * k, ram_offsets[i]);
        r = cp_stage_put(st, v, 8 * k, err, errlen);
    }
    return r;
}

/* The length of the run of pages contiguous in RAM that starts at OFF[0] (of N). */
static uint32_t cp_index_run(const uint64_t *off, uint32_t n)
{
    uint32_t i = 1;
    while (i < n && off[i] == off[i - 1] + CP_INDEX_PAGE_SIZE)
        i++;
    return i;
}

uint32_t cp_index_records(uint32_t version, uint32_t npages, const uint64_t *ram_offsets)
{
    uint32_t runs = 0;

    if (version < 3)
        return 1;
    for (uint32_t i = 0, len; i < npages; i += len, runs++)
        if ((len = cp_index_run(ram_offsets + i, npages - i)) > CP_INDEX_RUN_MAX)
            len = CP_INDEX_RUN_MAX;
    /* A packet of a first pass is one run: 32 bytes instead of 8 per page. Scattered pages (a
     * running guest's re-sent ones) stay a list where runs would take more room. */
    return (uint64_t)runs * CP_INDEX_RUN_LEN > CP_INDEX_PAGES_LEN + 8ull * npages ? 1 : runs;
}

int cp_index_put_pages(struct cp_stage *st, uint32_t version, uint32_t type, uint32_t block_id,
                       uint32_t npages, uint64_t stream_offset, const uint64_t *ram_offsets,
                       char *err, size_t errlen)
{
    int r = 0;

    if (version < 3 || (cp_index_records(version, npages, ram_offsets) == 1 &&
                        cp_index_run(ram_offsets, npages) < npages))
        return cp_index_put_list(st, type, block_id, npages, stream_offset, ram_offsets, err,
                                 errlen);
    for (uint32_t i = 0, len; r == 0 && i < npages; i += len) {
        uint8_t v[16];
        len = cp_index_run(ram_offsets + i, npages - i);
        if (len > CP_INDEX_RUN_MAX)
            len = CP_INDEX_RUN_MAX;
        /* a ZEROS record's offset is where the packet's page bytes end, for each of its runs */
        cp_put_le64(v, stream_offset +
                           (type == CP_INDEX_PAGES ? (uint64_t)i * CP_INDEX_PAGE_SIZE : 0));
        cp_put_le64(v + 8, ram_offsets[i]);
        r = cp_index_put_rec(st, type, block_id, len, CP_INDEX_RUN, err, errlen);
        if (r == 0)
            r = cp_stage_put(st, v, sizeof(v), err, errlen);
    }
    return r;
}

int cp_index_put_sum(struct cp_stage *st, uint64_t k, uint64_t xxh3, char *err, size_t errlen)
{
    uint8_t v[CP_INDEX_SUM_LEN] = {0};
    cp_put_le32(v, CP_INDEX_SUM);
    cp_put_le64(v + 8, k);
    cp_put_le64(v + 16, xxh3);
    return cp_stage_put(st, v, sizeof(v), err, errlen);
}

int cp_index_put_end(struct cp_stage *st, uint64_t npages, uint64_t stream_size, char *err,
                     size_t errlen)
{
    uint8_t e[CP_INDEX_END_LEN] = {0};
    cp_put_le32(e, CP_INDEX_END);
    cp_put_le64(e + 8, npages);
    cp_put_le64(e + 16, stream_size);
    return cp_stage_put(st, e, sizeof(e), err, errlen);
}

/* ---- loading ---- */

static int cp_index_read_file(struct cp_index *ix, const char *path, char *err, size_t errlen)
{
    int r = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cp_errno_msg(err, errlen, -errno, "open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        r = cp_errno_msg(err, errlen, -errno, "stat %s", path);
        goto out;
    }
    ix->len = (size_t)st.st_size;
    ix->data = cp_mem_alloc(ix->len);
    if (ix->data == NULL) {
        r = cp_msg(err, errlen, -ENOMEM, "%s: out of memory for %zu bytes", path, ix->len);
        goto out;
    }
    for (size_t got = 0; got < ix->len;) {
        ssize_t n = read(fd, ix->data + got, ix->len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = cp_errno_msg(err, errlen, -errno, "read %s", path);
            goto out;
        }
        if (n == 0) {
            r = cp_msg(err, errlen, -EBADMSG, "%s: shrank while read", path);
            goto out;
        }
        got += (size_t)n;
    }
out:
    close(fd); /* read-only */
    return r;
}

/* Checks a BLOCK record at P (REST bytes left) and keeps its name: its length or -EBADMSG. */
static int64_t cp_index_check_block(struct cp_index *ix, const uint8_t *p, size_t rest, char *err,
                                    size_t errlen)
{
    uint32_t id = cp_get_le32(p + 4), len = cp_get_le32(p + 8);
    if (id != ix->nblocks || id >= CP_INDEX_MAX_BLOCKS)
        return cp_msg(err, errlen, -EBADMSG, "block id %u where %u was due", id, ix->nblocks);
    if (len == 0 || len > CP_INDEX_NAME_MAX || cp_get_le32(p + 12) != 0)
        return cp_msg(err, errlen, -EBADMSG, "bad block name length %u", len);
    if (cp_pad8(len) > rest - CP_INDEX_REC_LEN)
        return cp_msg(err, errlen, -EBADMSG, "block name past the end");
    const char *name = (const char *)p + CP_INDEX_REC_LEN;
    if (memchr(name, '\0', len) != NULL)
        return cp_msg(err, errlen, -EBADMSG, "NUL in block name");
    memcpy(ix->names[id], name, len);
    ix->names[id][len] = '\0';
    /* A block is announced once: a reader maps names to RAMBlocks and ids to names. */
    for (uint32_t i = 0; i < id; i++)
        if (strcmp(ix->names[i], ix->names[id]) == 0)
            return cp_msg(err, errlen, -EBADMSG, "block %u repeats the name of block %u", id, i);
    ix->nblocks++;
    return (int64_t)(CP_INDEX_REC_LEN + cp_pad8(len));
}

/* Checks a PAGES or ZEROS record; *END is where the pages of the previous record end in the
 * stream. */
static int64_t cp_index_check_pages(struct cp_index *ix, const uint8_t *p, size_t rest,
                                    uint64_t *end, char *err, size_t errlen)
{
    int zero = cp_get_le32(p) == CP_INDEX_ZEROS;
    uint32_t id = cp_get_le32(p + 4), n = cp_get_le32(p + 8), flags = cp_get_le32(p + 12);
    if (id >= ix->nblocks)
        return cp_msg(err, errlen, -EBADMSG, "pages of unknown block %u", id);
    if (n == 0)
        return cp_msg(err, errlen, -EBADMSG, "bad page count %u", n);
    if (flags != 0 && (flags != CP_INDEX_RUN || ix->version < 3))
        return cp_msg(err, errlen, -EBADMSG, "flags 0x%x in a version %u index", flags,
                      ix->version);
    size_t len = flags ? CP_INDEX_RUN_LEN : CP_INDEX_PAGES_LEN + (size_t)n * 8;
    if (rest < CP_INDEX_PAGES_LEN || (!flags && (uint64_t)n > (rest - CP_INDEX_PAGES_LEN) / 8) ||
        (flags && rest < CP_INDEX_RUN_LEN))
        return cp_msg(err, errlen, -EBADMSG, "%u pages past the end", n);
    if (flags && n > CP_INDEX_RUN_MAX)
        return cp_msg(err, errlen, -EBADMSG, "a run of %u pages (at most %u)", n, CP_INDEX_RUN_MAX);
    /* A run's pages must not wrap around the RAM offsets: each page's offset is unique. */
    if (flags &&
        cp_get_le64(p + CP_INDEX_PAGES_LEN) > UINT64_MAX - (uint64_t)(n - 1) * CP_INDEX_PAGE_SIZE)
        return cp_msg(err, errlen, -EBADMSG, "a run of %u pages past the end of RAM", n);
    uint64_t off = cp_get_le64(p + 16);
    uint64_t span = zero ? 0 : (uint64_t)n * CP_INDEX_PAGE_SIZE;
    if (off < *end || off > UINT64_MAX - span)
        return cp_msg(err, errlen, -EBADMSG, "pages at stream offset %llu out of order",
                      (unsigned long long)off);
    *end = off + span;
    ix->npages += n;
    return (int64_t)len;
}

static int cp_index_check_end(struct cp_index *ix, const uint8_t *p, size_t rest, uint64_t end,
                              char *err, size_t errlen)
{
    if (rest != CP_INDEX_END_LEN || cp_get_le32(p + 4) != 0)
        return cp_msg(err, errlen, -EBADMSG, "END record not last");
    uint64_t npages = cp_get_le64(p + 8);
    ix->stream_size = cp_get_le64(p + 16);
    if (npages != ix->npages)
        return cp_msg(err, errlen, -EBADMSG, "END counts %llu pages, records hold %llu",
                      (unsigned long long)npages, (unsigned long long)ix->npages);
    if (ix->stream_size < end)
        return cp_msg(err, errlen, -EBADMSG, "pages end past the stream's %llu bytes",
                      (unsigned long long)ix->stream_size);
    /* Version 2: not a byte of the stream without its sum, and no sum past its end. */
    uint64_t want = ix->version < 2 ? 0
                                    : (ix->stream_size >> ix->sum_shift) +
                                          ((ix->stream_size & ((1ull << ix->sum_shift) - 1)) != 0);
    if (ix->nsums != want)
        return cp_msg(err, errlen, -EBADMSG,
                      "%llu SUM records for a stream of %llu bytes (%llu due)",
                      (unsigned long long)ix->nsums, (unsigned long long)ix->stream_size,
                      (unsigned long long)want);
    return 0;
}

/* Checks a SUM record and keeps its sum: its length or -EBADMSG. */
static int64_t cp_index_check_sum(struct cp_index *ix, const uint8_t *p, size_t rest, char *err,
                                  size_t errlen)
{
    if (ix->version < 2)
        return cp_msg(err, errlen, -EBADMSG, "a SUM record in a version 1 index");
    if (rest < CP_INDEX_SUM_LEN || cp_get_le32(p + 4) != 0)
        return cp_msg(err, errlen, -EBADMSG, "bad SUM record");
    if (cp_get_le64(p + 8) != ix->nsums)
        return cp_msg(err, errlen, -EBADMSG, "SUM of block %llu where %llu was due",
                      (unsigned long long)cp_get_le64(p + 8), (unsigned long long)ix->nsums);
    if (ix->nsums == ix->sums_cap) {
        uint64_t cap = ix->sums_cap ? 2 * ix->sums_cap : 64;
        uint64_t *n = realloc(ix->sums, cap * sizeof(*n));
        if (n == NULL)
            return cp_msg(err, errlen, -ENOMEM, "out of memory for %llu sums",
                          (unsigned long long)cap);
        ix->sums = n;
        ix->sums_cap = cap;
    }
    ix->sums[ix->nsums++] = cp_get_le64(p + 16);
    return CP_INDEX_SUM_LEN;
}

static int cp_index_check_header(struct cp_index *ix, char *err, size_t errlen)
{
    const uint8_t *h = ix->data;
    if (ix->len < CP_INDEX_HEADER_LEN || memcmp(h, CP_INDEX_MAGIC, 8) != 0)
        return cp_msg(err, errlen, -EBADMSG, "not a page index");
    ix->version = cp_get_le32(h + 8);
    ix->sum_shift = cp_get_le32(h + 16);
    /* Version 1 has no sums: its shift word is 0. */
    int shift_ok = ix->version == 1
                       ? ix->sum_shift == 0
                       : ix->sum_shift >= CP_INDEX_SUM_MIN && ix->sum_shift <= CP_INDEX_SUM_MAX;
    if (ix->version < 1 || ix->version > CP_INDEX_VERSION ||
        cp_get_le32(h + 12) != CP_INDEX_PAGE_SIZE || !shift_ok || cp_get_le32(h + 20) != 0)
        return cp_msg(err, errlen, -EBADMSG,
                      "index version %u, page size %u, sum shift %u not supported", ix->version,
                      cp_get_le32(h + 12), ix->sum_shift);
    return 0;
}

/* Walks every record once; after it, cp_index_next needs no bound checks. *POS tells where a
 * bad record starts. */
static int cp_index_check(struct cp_index *ix, size_t *pos, char *err, size_t errlen)
{
    int r = cp_index_check_header(ix, err, errlen);
    uint64_t end = 0;
    *pos = CP_INDEX_HEADER_LEN;
    if (r < 0)
        return r;
    for (;;) {
        size_t rest = ix->len - *pos;
        const uint8_t *p = ix->data + *pos;
        if (rest < CP_INDEX_REC_LEN)
            return cp_msg(err, errlen, -EBADMSG, "no END record");
        uint32_t type = cp_get_le32(p);
        int64_t n;
        if (type == CP_INDEX_END)
            return cp_index_check_end(ix, p, rest, end, err, errlen);
        if (type == CP_INDEX_BLOCK)
            n = cp_index_check_block(ix, p, rest, err, errlen);
        else if (type == CP_INDEX_PAGES || type == CP_INDEX_ZEROS)
            n = cp_index_check_pages(ix, p, rest, &end, err, errlen);
        else if (type == CP_INDEX_SUM)
            n = cp_index_check_sum(ix, p, rest, err, errlen);
        else
            n = cp_msg(err, errlen, -EBADMSG, "unknown record type %u", type);
        if (n < 0)
            return (int)n;
        *pos += (size_t)n;
    }
}

int cp_index_load(struct cp_index **out, const char *path, char *err, size_t errlen)
{
    char why[CP_ERR_MAX];
    struct cp_index *ix = calloc(1, sizeof(*ix));
    int r = -ENOMEM;
    if (ix == NULL) {
        cp_msg(err, errlen, r, "%s: out of memory", path);
        goto out;
    }
    r = cp_index_read_file(ix, path, err, errlen);
    if (r < 0)
        goto out;
    size_t pos;
    r = cp_index_check(ix, &pos, why, sizeof(why));
    if (r < 0)
        cp_msg(err, errlen, r, "%s: offset %zu: %s", path, pos, why);
out:
    if (r < 0) {
        cp_index_free(ix);
        ix = NULL;
    }
    *out = ix;
    return r;
}

uint32_t cp_index_nblocks(const struct cp_index *ix)
{
    return ix->nblocks;
}

const char *cp_index_block_name(const struct cp_index *ix, uint32_t id)
{
    return ix->names[id];
}

uint64_t cp_index_npages(const struct cp_index *ix)
{
    return ix->npages;
}

uint64_t cp_index_stream_size(const struct cp_index *ix)
{
    return ix->stream_size;
}

uint32_t cp_index_version(const struct cp_index *ix)
{
    return ix->version;
}

uint32_t cp_index_sum_shift(const struct cp_index *ix)
{
    return ix->sum_shift;
}

uint64_t cp_index_nsums(const struct cp_index *ix)
{
    return ix->nsums;
}

uint64_t cp_index_sum(const struct cp_index *ix, uint64_t k)
{
    return ix->sums[k];
}

uint64_t cp_index_xxh3(const struct cp_index *ix)
{
    return XXH3_64bits(ix->data, ix->len);
}

int cp_index_next(const struct cp_index *ix, struct cp_index_iter *it, struct cp_index_page *pg)
{
    if (it->pos < CP_INDEX_HEADER_LEN)
        it->pos = CP_INDEX_HEADER_LEN;
    for (;;) {
        const uint8_t *p = ix->data + it->pos;
        uint32_t type = cp_get_le32(p);
        if (type == CP_INDEX_END)
            return 0;
        if (type == CP_INDEX_BLOCK) {
            it->pos += CP_INDEX_REC_LEN + cp_pad8(cp_get_le32(p + 8));
            continue;
        }
        if (type == CP_INDEX_SUM) {
            it->pos += CP_INDEX_SUM_LEN;
            continue;
        }
        uint32_t n = cp_get_le32(p + 8);
        if (it->i < n) {
            pg->zero = type == CP_INDEX_ZEROS;
            pg->block_id = cp_get_le32(p + 4);
            pg->stream_offset = cp_get_le64(p + 16);
            if (!pg->zero)
                pg->stream_offset += (uint64_t)it->i * CP_INDEX_PAGE_SIZE;
            pg->ram_offset =
                cp_get_le32(p + 12) /* CP_INDEX_RUN */
                    ? cp_get_le64(p + CP_INDEX_PAGES_LEN) + (uint64_t)it->i * CP_INDEX_PAGE_SIZE
                    : cp_get_le64(p + CP_INDEX_PAGES_LEN + (size_t)it->i * 8);
            it->i++;
            return 1;
        }
        it->pos += cp_get_le32(p + 12) ? CP_INDEX_RUN_LEN : CP_INDEX_PAGES_LEN + (size_t)n * 8;
        it->i = 0;
    }
}

void cp_index_free(struct cp_index *ix)
{
    if (ix == NULL)
        return;
    cp_mem_free(ix->data, ix->len);
    free(ix->sums);
    free(ix);
}
