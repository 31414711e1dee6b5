/* indexer: an incremental parser of one QEMU multifd channel (handshake, then packets of a
 * 1344-byte big-endian header and normal_pages * 4096 bytes of pages) that streams the page
 * index through a small buffered file writer. Runs in the channel's save thread.
 * QEMU 7.2 to 10.0 share the layout; from 9.0 a packet also lists zero pages (zero_pages, in
 * what 7.2 left unused and zero), whose offsets follow the normal pages' and carry no bytes.
 * Every byte is also hashed into the index's SUMs, so that a lazy restore checks each block it
 * serves. */
#include "indexer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "bytes.h"
#include "index.h"
#include "stream.h"
#include "worker.h"

#define CP_MULTIFD_INDEX_BUF (64 * 1024)

/* Offsets in MultiFDPacket_t (packed): u32 magic, version, flags, pages_alloc, normal_pages,
 * next_packet_size, u64 packet_num, u32 zero_pages (9.0 on; 7.2: unused, zero), unused to 64,
 * char ramblock[256], u64 offset[] (normal pages, then zero pages). */
#define CP_PKT_FLAGS    8
#define CP_PKT_ALLOC    12
#define CP_PKT_NORMAL   16
#define CP_PKT_NUM      24
#define CP_PKT_ZERO     32
#define CP_PKT_RAMBLOCK 64
#define CP_PKT_OFFSETS  320

enum cp_indexer_state {
    CP_MF_HANDSHAKE, /* filling hdr with the 64-byte handshake */
    CP_MF_HEADER,    /* filling hdr with a packet header */
    CP_MF_PAGES,     /* passing over page bytes */
    CP_MF_OFF,       /* not indexing: stream not understood */
};

struct cp_indexer {
    struct cp_fwriter *idx; /* NULL once indexing stopped */
    enum cp_indexer_state state;
    uint64_t pos;  /* channel bytes seen while indexing */
    size_t have;   /* bytes of hdr filled */
    uint64_t skip; /* page bytes left in the current packet */
    uint64_t packets, npages;
    uint64_t idx_size, idx_xxh3;
    XXH3_state_t *sum; /* the SUM block being hashed */
    uint64_t sum_len;  /* its bytes so far */
    uint64_t nsums;    /* SUM records written */
    uint64_t epoch;    /* SYNC packets seen */
    struct cp_index_key *keys;
    size_t nkeys, keys_cap;
    uint32_t nblocks, last_block;
    char names[CP_INDEX_MAX_BLOCKS][CP_INDEX_NAME_MAX + 1];
    uint8_t hdr[CP_MULTIFD_HEADER_LEN];
};

int cp_indexer_open(struct cp_indexer **out, const char *dir, const char *name, char *err,
                    size_t errlen)
{
    struct cp_indexer *m = calloc(1, sizeof(*m));
    int r = -ENOMEM;
    if (m == NULL) {
        cp_msg(err, errlen, r, "%s/%s: out of memory", dir, name);
        goto out;
    }
    m->sum = XXH3_createState();
    if (m->sum == NULL || XXH3_64bits_reset(m->sum) != XXH_OK) {
        cp_msg(err, errlen, r, "%s/%s: out of memory", dir, name);
        goto out;
    }
    r = cp_fwriter_open(&m->idx, dir, name, CP_MULTIFD_INDEX_BUF, 0, err, errlen);
    if (r < 0)
        goto out;
    r = cp_index_put_header(cp_fwriter_stage(m->idx), CP_INDEX_VERSION, err, errlen);
out:
    if (r < 0) {
        cp_indexer_free(m);
        m = NULL;
    }
    *out = m;
    return r;
}

/* Not understood: no index for this channel. Only a failed unlink is an error. */
static int cp_indexer_stop(struct cp_indexer *m, char *err, size_t errlen)
{
    m->state = CP_MF_OFF;
    int r = cp_fwriter_discard(m->idx, err, errlen);
    m->idx = NULL;
    return r;
}

/* The id of block NAME in *ID, announcing a block not seen before in the index; *ID is
 * CP_INDEX_MAX_BLOCKS when the table is full. */
static int cp_indexer_block(struct cp_indexer *m, const char *name, uint32_t len, uint32_t *id,
                            char *err, size_t errlen)
{
    if (m->last_block < m->nblocks && strcmp(m->names[m->last_block], name) == 0) {
        *id = m->last_block;
        return 0;
    }
    for (*id = 0; *id < m->nblocks; (*id)++) {
        if (strcmp(m->names[*id], name) == 0) {
            m->last_block = *id;
            return 0;
        }
    }
    if (m->nblocks == CP_INDEX_MAX_BLOCKS)
        return 0;
    m->last_block = m->nblocks++;
    memcpy(m->names[*id], name, len + 1);
    return cp_index_put_block(cp_fwriter_stage(m->idx), *id, name, len, err, errlen);
}

/* The key (cp_index_key) of the records about to be written for the N pages at OFFSETS: one
 * per record, a packet's pages being one record or several runs. */
static int cp_indexer_key(struct cp_indexer *m, uint32_t n, const uint64_t *offsets, char *err,
                          size_t errlen)
{
    uint32_t recs = cp_index_records(CP_INDEX_VERSION, n, offsets);

    while (m->nkeys + recs > m->keys_cap) {
        size_t cap = m->keys_cap ? 2 * m->keys_cap : 1024;
        struct cp_index_key *k = realloc(m->keys, cap * sizeof(*k));
        if (k == NULL)
            return cp_msg(err, errlen, -ENOMEM, "page index: out of memory");
        m->keys = k;
        m->keys_cap = cap;
    }
    while (recs--)
        m->keys[m->nkeys++] = (struct cp_index_key){.epoch = m->epoch,
                                                    .packet_num = cp_get_be64(m->hdr + CP_PKT_NUM)};
    return 0;
}

/* A whole packet header is in hdr; pos is where its pages start. */
static int cp_indexer_packet(struct cp_indexer *m, char *err, size_t errlen)
{
    const uint8_t *h = m->hdr;
    uint32_t alloc = cp_get_be32(h + CP_PKT_ALLOC), n = cp_get_be32(h + CP_PKT_NORMAL);
    uint32_t z = cp_get_be32(h + CP_PKT_ZERO);
    /* From 9.0 a packet without pages (a SYNC) may say pages_alloc 0. */
    int empty = n == 0 && z == 0;
    /* Compression or device-state flags, another page count per packet or a bad magic: not
     * understood. */
    if (cp_get_be32(h) != CP_MULTIFD_MAGIC || cp_get_be32(h + 4) != CP_MULTIFD_VERSION ||
        (cp_get_be32(h + CP_PKT_FLAGS) & ~CP_MULTIFD_FLAG_SYNC) != 0 ||
        (alloc != CP_MULTIFD_PAGES_ALLOC && !(alloc == 0 && empty)) || n > alloc || z > alloc - n)
        return cp_indexer_stop(m, err, errlen);
    m->packets++;
    /* A SYNC packet's own pages were queued before the sync: they belong to the epoch it ends. */
    uint64_t epoch = m->epoch;
    if (cp_get_be32(h + CP_PKT_FLAGS) & CP_MULTIFD_FLAG_SYNC)
        m->epoch++;
    /* 7.2 leaves the block name (and next_packet_size) stale on packets without pages. */
    if (empty)
        return 0;
    char name[CP_INDEX_NAME_MAX + 1];
    /* Like QEMU's receiver, which NUL-terminates the 256-byte name at its last byte. */
    uint32_t len = (uint32_t)strnlen((const char *)h + CP_PKT_RAMBLOCK, CP_INDEX_NAME_MAX);
    memcpy(name, h + CP_PKT_RAMBLOCK, len);
    name[len] = '\0';
    uint32_t id = CP_INDEX_MAX_BLOCKS;
    int r = len == 0 ? 0 : cp_indexer_block(m, name, len, &id, err, errlen);
    if (r < 0)
        return r;
    if (id == CP_INDEX_MAX_BLOCKS)
        return cp_indexer_stop(m, err, errlen);
    uint64_t offsets[CP_MULTIFD_PAGES_ALLOC];
    for (uint32_t i = 0; i < n + z; i++)
        offsets[i] = cp_get_be64(h + CP_PKT_OFFSETS + 8 * i);
    struct cp_stage *st = cp_fwriter_stage(m->idx);
    m->npages += n + z;
    m->skip = (uint64_t)n * CP_INDEX_PAGE_SIZE;
    m->state = n ? CP_MF_PAGES : CP_MF_HEADER;
    uint64_t next_epoch = m->epoch;
    m->epoch = epoch;
    if (n && (r = cp_indexer_key(m, n, offsets, err, errlen)) == 0)
        r = cp_index_put_pages(st, CP_INDEX_VERSION, CP_INDEX_PAGES, id, n, m->pos, offsets, err,
                               errlen);
    if (r == 0 && z && (r = cp_indexer_key(m, z, offsets + n, err, errlen)) == 0)
        r = cp_index_put_pages(st, CP_INDEX_VERSION, CP_INDEX_ZEROS, id, z, m->pos + m->skip,
                               offsets + n, err, errlen);
    m->epoch = next_epoch;
    return r;
}

/* Handshake or packet header complete in hdr. */
static int cp_indexer_parsed(struct cp_indexer *m, char *err, size_t errlen)
{
    m->have = 0;
    if (m->state == CP_MF_HEADER)
        return cp_indexer_packet(m, err, errlen);
    m->state = CP_MF_HEADER;
    if (cp_get_be32(m->hdr) != CP_MULTIFD_MAGIC || cp_get_be32(m->hdr + 4) != CP_MULTIFD_VERSION)
        return cp_indexer_stop(m, err, errlen);
    return 0;
}

/* The SUM of the block being hashed, then a fresh block. */
static int cp_indexer_sum_put(struct cp_indexer *m, char *err, size_t errlen)
{
    uint64_t h = XXH3_64bits_digest(m->sum);
    XXH3_64bits_reset(m->sum);
    m->sum_len = 0;
    return cp_index_put_sum(cp_fwriter_stage(m->idx), m->nsums++, h, err, errlen);
}

/* Hashes LEN more bytes of the stream, a SUM record each time a block is complete. */
static int cp_indexer_sum(struct cp_indexer *m, const uint8_t *buf, size_t len, char *err,
                          size_t errlen)
{
    const uint64_t block = 1ull << CP_INDEX_SUM_SHIFT;
    int r = 0;
    while (r == 0 && len > 0) {
        size_t n = len < block - m->sum_len ? len : (size_t)(block - m->sum_len);
        XXH3_64bits_update(m->sum, buf, n);
        m->sum_len += n;
        buf += n;
        len -= n;
        if (m->sum_len == block)
            r = cp_indexer_sum_put(m, err, errlen);
    }
    return r;
}

int cp_indexer_feed(struct cp_indexer *m, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    int r = m->state == CP_MF_OFF ? 0 : cp_indexer_sum(m, buf, len, err, errlen);
    while (r == 0 && len > 0 && m->state != CP_MF_OFF) {
        size_t n;
        if (m->state == CP_MF_PAGES) {
            n = len < m->skip ? len : (size_t)m->skip;
            m->skip -= n;
            if (m->skip == 0)
                m->state = CP_MF_HEADER;
            m->pos += n;
        } else {
            size_t want =
                m->state == CP_MF_HANDSHAKE ? CP_MULTIFD_HANDSHAKE_LEN : CP_MULTIFD_HEADER_LEN;
            n = len < want - m->have ? len : want - m->have;
            memcpy(m->hdr + m->have, buf, n);
            m->have += n;
            m->pos += n;
            if (m->have == want)
                r = cp_indexer_parsed(m, err, errlen);
        }
        buf += n;
        len -= n;
    }
    return r;
}

int cp_indexer_finish(struct cp_indexer *m, int *indexed, char *err, size_t errlen)
{
    int r = 0;
    *indexed = 0;
    if (m->state == CP_MF_OFF)
        goto out;
    if (m->state != CP_MF_HEADER || m->have != 0) {
        r = cp_msg(err, errlen, -EPROTO, "stream ends inside packet %llu, at byte %llu",
                   (unsigned long long)m->packets + (m->state != CP_MF_PAGES),
                   (unsigned long long)m->pos);
        goto out;
    }
    struct cp_stage *st = cp_fwriter_stage(m->idx);
    if (m->sum_len > 0)
        r = cp_indexer_sum_put(m, err, errlen);
    if (r == 0)
        r = cp_index_put_end(st, m->npages, m->pos, err, errlen);
    if (r == 0)
        r = st->finish(st, err, errlen);
    if (r < 0)
        goto out;
    m->idx_size = cp_fwriter_size(m->idx);
    m->idx_xxh3 = cp_fwriter_xxh3(m->idx);
    *indexed = 1;
out:
    return r;
}

uint64_t cp_indexer_size(const struct cp_indexer *m)
{
    return m->idx_size;
}

uint64_t cp_indexer_xxh3(const struct cp_indexer *m)
{
    return m->idx_xxh3;
}

void cp_indexer_take_keys(struct cp_indexer *m, struct cp_index_key **keys, size_t *n)
{
    *keys = m->keys;
    *n = m->nkeys;
    m->keys = NULL;
    m->nkeys = m->keys_cap = 0;
}

void cp_indexer_free(struct cp_indexer *m)
{
    if (m == NULL)
        return;
    free(m->keys);
    cp_fwriter_free(m->idx);
    XXH3_freeState(m->sum);
    free(m);
}
