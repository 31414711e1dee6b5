/* fake_stream: synthetic QEMU 7.2 migration streams, as a fake QEMU sends them: a main stream and
 * multifd channels (handshake, packets of pages of a few named RAM blocks, SYNC packets), with
 * where each page lands, for the checks of an index. Byte buffers and a seeded random generator
 * go with them. test_copier feeds them to the copier; test_orch's fake QEMU to a save.
 * Pure functions on the caller's buffers; any thread. */
#ifndef SAVEFS_FAKE_STREAM_H
#define SAVEFS_FAKE_STREAM_H

#include <stddef.h>
#include <stdint.h>

#define PAGE 4096

/* A splitmix64 sequence: the same seed gives the same stream. */
uint64_t rng_next(uint64_t *s);
uint64_t rng_below(uint64_t *s, uint64_t n);

/* A growing byte buffer; free(b->p). Exits the test without memory. */
struct buf {
    uint8_t *p;
    size_t len, cap;
};

void buf_put(struct buf *b, const void *d, size_t n);
void buf_be32(struct buf *b, uint32_t v);
void buf_be64(struct buf *b, uint64_t v);
void buf_zeros(struct buf *b, size_t n);

#define NBLOCKS 4
extern const char *const block_names[NBLOCKS];

struct exp_page {
    int block;
    uint64_t ram_offset, stream_offset;
    int zero; /* listed as a zero page (QEMU >= 9.0): no bytes */
};

enum gen_kind { GEN_PLAIN, GEN_BAD_MAGIC, GEN_ZLIB, GEN_CUT };

/* A multifd channel's bytes and the pages it carries. */
struct chan {
    int id;
    uint64_t next_page; /* pages get distinct offsets: a save holds each page once */
    struct buf b;
    struct exp_page *pages;
    size_t npages, cap;
};

/* The page that block BLOCK holds at RAM offset RAM. */
void page_fill(uint8_t *p, int block, uint64_t ram);
/* A main stream of about LEN bytes. */
void gen_main(struct buf *b, size_t len, uint64_t *rng);
/* The handshake that opens channel ID. */
void gen_handshake(struct buf *b, int id);
void gen_packet(struct chan *c, uint64_t *rng, uint32_t magic, uint32_t flags, int n, int z,
                int block, uint64_t num);
/* A packet of N pages of BLOCK at the RAM offsets OFFS (no zero pages). */
void gen_packet_at(struct chan *c, uint32_t flags, int n, int block, uint64_t num,
                   const uint64_t *offs);
/* Channel ID: its handshake, NPACKETS packets and a last SYNC, broken as KIND says. */
void gen_channel(struct chan *c, int id, int npackets, uint64_t *rng, enum gen_kind kind);
void chan_free(struct chan *c);

#endif
