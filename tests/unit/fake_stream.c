/* fake_stream: synthetic QEMU 7.2 migration streams (fake_stream.h). */
#include "fake_stream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "indexer.h" /* QEMU's multifd constants */

const char *const block_names[NBLOCKS] = {"pc.ram", "vga.vram", "/rom@etc/acpi/tables", "pc.bios"};

static void fake_stream_die(const char *what)
{
    fprintf(stderr, "fake_stream: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* ---- randomness, byte buffers ---- */

uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return rng_next(s) % n;
}

void buf_put(struct buf *b, const void *d, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (b->p == NULL)
            fake_stream_die("realloc");
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

void buf_be32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {v >> 24, v >> 16, v >> 8, v};
    buf_put(b, x, 4);
}

void buf_be64(struct buf *b, uint64_t v)
{
    buf_be32(b, (uint32_t)(v >> 32));
    buf_be32(b, (uint32_t)v);
}

void buf_zeros(struct buf *b, size_t n)
{
    static const uint8_t z[256];
    while (n > 0) {
        size_t k = n < sizeof(z) ? n : sizeof(z);
        buf_put(b, z, k);
        n -= k;
    }
}

/* ---- synthetic QEMU 7.2 streams ---- */

/* The page that block BLOCK holds at RAM: derived from both, so any misplacement shows. Pages
 * of blocks 1 and 2 are text-like, the others random: compression has something to do. */
void page_fill(uint8_t *p, int block, uint64_t ram)
{
    uint64_t s = ram * 31 + (uint64_t)block * 0x100000001b3ull;
    if (block == 1 || block == 2) {
        char line[64];
        int n =
            snprintf(line, sizeof(line), "block %d page at %" PRIx64 " says hello. ", block, ram);
        for (int i = 0; i < PAGE; i++)
            p[i] = (uint8_t)line[i % n];
        return;
    }
    for (int i = 0; i < PAGE / 8; i++) {
        uint64_t v = rng_next(&s);
        memcpy(p + 8 * i, &v, 8);
    }
}

/* A main stream: its magic, then runs of random and of repeated bytes. */
void gen_main(struct buf *b, size_t len, uint64_t *rng)
{
    buf_put(b, "QEVM", 4);
    buf_be32(b, 3);
    while (b->len < len) {
        uint64_t v = b->len / 4096 % 2 ? 0x0900000000000000ull : rng_next(rng);
        buf_put(b, &v, 8);
    }
}

void gen_handshake(struct buf *b, int id)
{
    buf_be32(b, CP_MULTIFD_MAGIC);
    buf_be32(b, 1);
    buf_put(b, "0123456789abcdef", 16); /* uuid */
    uint8_t rest[40] = {(uint8_t)id};
    buf_put(b, rest, sizeof(rest));
}

static void exp_add(struct chan *c, struct exp_page pg)
{
    if (c->npages == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->pages = realloc(c->pages, c->cap * sizeof(*c->pages));
        if (c->pages == NULL)
            fake_stream_die("realloc");
    }
    c->pages[c->npages++] = pg;
}

/* A packet of N pages and Z zero pages (QEMU >= 9.0; 7.2 sends none) of BLOCK at random
 * offsets; without pages the block name and next_packet_size are stale, as 7.2 sends them, and
 * pages_alloc is 0 half the time, as QEMU >= 9.0 sends its SYNC packets. */
/* The packet's bytes, with its pages at OFFS (N normal pages, then Z zero pages). */
static void gen_packet_bytes(struct chan *c, uint32_t magic, uint32_t flags, int n, int z,
                             int block, uint64_t num, const uint64_t *offs)
{
    struct buf *b = &c->b;
    char name[256] = {0};
    snprintf(name, sizeof(name), "%s", n + z ? block_names[block] : "stale-name");
    buf_be32(b, magic);
    buf_be32(b, 1);
    buf_be32(b, flags);
    buf_be32(b, n + z == 0 && num % 2 ? 0 : CP_MULTIFD_PAGES_ALLOC);
    buf_be32(b, (uint32_t)n);
    buf_be32(b, n ? (uint32_t)n * PAGE : 512 * 1024);
    buf_be64(b, num);
    buf_be32(b, (uint32_t)z);
    buf_zeros(b, 28);
    buf_put(b, name, sizeof(name));
    for (int i = 0; i < CP_MULTIFD_PAGES_ALLOC; i++)
        buf_be64(b, i < n + z ? offs[i] : 0);
    for (int i = 0; i < n; i++) {
        uint8_t page[PAGE];
        exp_add(c, (struct exp_page){block, offs[i], b->len, 0});
        page_fill(page, block, offs[i]);
        buf_put(b, page, PAGE);
    }
    for (int i = n; i < n + z; i++)
        exp_add(c, (struct exp_page){block, offs[i], b->len, 1});
}

void gen_packet(struct chan *c, uint64_t *rng, uint32_t magic, uint32_t flags, int n, int z,
                int block, uint64_t num)
{
    uint64_t offs[CP_MULTIFD_PAGES_ALLOC];
    /* Each channel its own range of pages, in a shuffled order. */
    uint64_t base = ((uint64_t)c->id << 18) + c->next_page, shift = rng_below(rng, 7);
    for (int i = 0; i < n + z; i++)
        offs[i] = (base + ((uint64_t)i + shift) % (uint64_t)(n + z)) * PAGE;
    c->next_page += (uint64_t)(n + z);
    gen_packet_bytes(c, magic, flags, n, z, block, num, offs);
}

void gen_packet_at(struct chan *c, uint32_t flags, int n, int block, uint64_t num,
                   const uint64_t *offs)
{
    gen_packet_bytes(c, CP_MULTIFD_MAGIC, flags, n, 0, block, num, offs);
}

void gen_channel(struct chan *c, int id, int npackets, uint64_t *rng, enum gen_kind kind)
{
    memset(c, 0, sizeof(*c));
    c->id = id;
    gen_handshake(&c->b, id);
    int block = 0;
    for (int k = 0; k < npackets; k++) {
        int n = rng_below(rng, 5) == 0 ? 0 : 1 + (int)rng_below(rng, CP_MULTIFD_PAGES_ALLOC);
        /* Zero pages in a third of the packets, as QEMU >= 9.0 sends them. */
        int z = rng_below(rng, 3) == 0 ? (int)rng_below(rng, CP_MULTIFD_PAGES_ALLOC - n + 1) : 0;
        uint32_t flags = k % 4 == 3 ? CP_MULTIFD_FLAG_SYNC : 0; /* SYNC may carry pages */
        if (rng_below(rng, 3) == 0)
            block = (int)rng_below(rng, NBLOCKS);
        uint32_t magic = CP_MULTIFD_MAGIC;
        if (k == npackets / 2 && kind == GEN_BAD_MAGIC)
            magic = 0xdeadbeef;
        if (k == npackets / 2 && kind == GEN_ZLIB)
            flags |= 1u << 1;
        gen_packet(c, rng, magic, flags, n, z, block, (uint64_t)k);
    }
    gen_packet(c, rng, CP_MULTIFD_MAGIC, CP_MULTIFD_FLAG_SYNC, 0, 0, block, (uint64_t)npackets);
    if (kind == GEN_CUT) {
        gen_packet(c, rng, CP_MULTIFD_MAGIC, 0, 9, 0, block, (uint64_t)npackets + 1);
        c->b.len -= 5 * PAGE + 100;
    }
}

void chan_free(struct chan *c)
{
    free(c->b.p);
    free(c->pages);
}
