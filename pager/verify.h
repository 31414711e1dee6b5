/* verify: stream bytes of a channel handed out only from blocks whose XXH3 matched the page
 * index's SUM for them (index version 2), checked on the very bytes handed out: no byte goes to
 * QEMU before the block holding it was checked. Any thread; each reading thread has its own
 * cache of checked blocks (and of zstd frames). */
#ifndef SAVEFS_PAGER_VERIFY_H
#define SAVEFS_PAGER_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "snap.h"
#include "source.h"

/* Two: a page that straddles two blocks, or a chunk's tail block that the next chunk starts
 * with, is read and checked once. */
#define PG_VCACHE_SLOTS 2

struct pg_vblock {
    int ch;        /* -1: empty */
    uint64_t k;    /* the block: stream bytes [k << shift, ...) */
    uint8_t *buf;  /* checked bytes, the block's length */
    uint64_t used; /* the cache's tick when last used */
};

struct pg_vcache {
    struct pg_vblock slot[PG_VCACHE_SLOTS];
    uint64_t tick;
    struct pg_fcache fc;
};

void pg_vcache_init(struct pg_vcache *vc);
void pg_vcache_free(struct pg_vcache *vc);

/* Reads stream bytes [OFF, OFF + LEN) of channel CH of S into OUT, every block they touch
 * checked against its SUM first. 0; -EBADMSG with ERR starting "checksum FILE offset N" (N the
 * stream offset where the block that failed starts), for a mismatch and for a zstd frame that
 * failed its own check; or -errno as pg_chan_read. */
int pg_verify_read(const struct pg_snap *s, int ch, uint64_t off, size_t len, uint8_t *out,
                   struct pg_vcache *vc, char *err, size_t errlen);

#endif
