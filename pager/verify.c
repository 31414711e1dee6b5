/* verify: checked reads of channel stream bytes (see verify.h). */
#include "verify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

void pg_vcache_init(struct pg_vcache *vc)
{
    memset(vc, 0, sizeof(*vc));
    for (int i = 0; i < PG_VCACHE_SLOTS; i++)
        vc->slot[i].ch = -1;
}

void pg_vcache_free(struct pg_vcache *vc)
{
    for (int i = 0; i < PG_VCACHE_SLOTS; i++)
        free(vc->slot[i].buf);
    pg_fcache_free(&vc->fc);
    pg_vcache_init(vc);
}

/* Block K of channel CH, read into DST (its whole length) and checked. */
static int pg_verify_block(const struct pg_snap *s, int ch, uint64_t k, uint8_t *dst,
                           struct pg_vcache *vc, char *err, size_t errlen)
{
    const struct pg_chan *c = &s->chans[ch];
    const struct cp_index *ix = s->index[ch];
    uint32_t shift = cp_index_sum_shift(ix);
    uint64_t start = k << shift, rest = c->stream_size - start;
    size_t len = rest < (1ull << shift) ? (size_t)rest : (size_t)1 << shift;
    char why[512];
    int rc = pg_chan_read(c, start, len, dst, &vc->fc, why, sizeof(why));

    if (rc == -EBADMSG) {
        snprintf(err, errlen, "checksum %s offset %" PRIu64 ": %s", c->file.name, start, why);
    } else if (rc) {
        snprintf(err, errlen, "%s", why);
    } else if (XXH3_64bits(dst, len) != cp_index_sum(ix, k)) {
        snprintf(err, errlen, "checksum %s offset %" PRIu64, c->file.name, start);
        rc = -EBADMSG;
    }
    return rc;
}

/* The slot holding block K of CH, or -1. */
static int pg_vcache_find(const struct pg_vcache *vc, int ch, uint64_t k)
{
    for (int i = 0; i < PG_VCACHE_SLOTS; i++)
        if (vc->slot[i].ch == ch && vc->slot[i].k == k)
            return i;
    return -1;
}

/* Block K of CH in a slot, read and checked if it was not there: its index, or -errno. */
static int pg_vcache_get(const struct pg_snap *s, int ch, uint64_t k, struct pg_vcache *vc,
                         char *err, size_t errlen)
{
    int i = pg_vcache_find(vc, ch, k), rc;
    struct pg_vblock *b;

    if (i >= 0)
        return i;
    i = 0; /* the least recently used */
    for (int j = 1; j < PG_VCACHE_SLOTS; j++)
        if (vc->slot[j].used < vc->slot[i].used)
            i = j;
    b = &vc->slot[i];
    b->ch = -1;
    /* Aligned for O_DIRECT reads (source.h); a block is 4 KiB or more. */
    if (!b->buf &&
        !(b->buf = aligned_alloc(PG_DIO_ALIGN, (size_t)1 << cp_index_sum_shift(s->index[ch])))) {
        snprintf(err, errlen, "out of memory for a block of %s", s->chans[ch].file.name);
        return -ENOMEM;
    }
    if ((rc = pg_verify_block(s, ch, k, b->buf, vc, err, errlen)))
        return rc;
    b->ch = ch;
    b->k = k;
    return i;
}

int pg_verify_read(const struct pg_snap *s, int ch, uint64_t off, size_t len, uint8_t *out,
                   struct pg_vcache *vc, char *err, size_t errlen)
{
    const struct pg_chan *c = &s->chans[ch];
    uint32_t shift = cp_index_sum_shift(s->index[ch]);
    uint64_t bs = 1ull << shift, end = off + len;
    int rc = pg_chan_check_range(c, off, len, err, errlen);

    for (uint64_t k = off >> shift; !rc && len && k <= (end - 1) >> shift; k++) {
        uint64_t bstart = k << shift,
                 bend = bstart + bs < c->stream_size ? bstart + bs : c->stream_size;
        uint64_t from = off > bstart ? off : bstart, to = end < bend ? end : bend;
        int i;
        /* A block wholly wanted and not at hand is checked where it lands: no copy. */
        if (from == bstart && to == bend && pg_vcache_find(vc, ch, k) < 0) {
            rc = pg_verify_block(s, ch, k, out + (bstart - off), vc, err, errlen);
            continue;
        }
        if ((i = pg_vcache_get(s, ch, k, vc, err, errlen)) < 0) {
            rc = i;
            continue;
        }
        vc->slot[i].used = ++vc->tick;
        memcpy(out + (from - off), vc->slot[i].buf + (from - bstart), (size_t)(to - from));
    }
    return rc;
}
