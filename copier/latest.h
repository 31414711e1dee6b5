/* latest: makes the page indexes of one save name each page once, at its last copy. A migration
 * of a running VM sends a page again each time the guest dirtied it, on any channel; QEMU's
 * restore applies the copies in order (its sync points), but a page server must send exactly
 * the last one (QEMU 7.2 fails a postcopy page placed twice with "File exists"). Runs in the
 * caller's thread once every channel ended, before the directory is made durable. */
#ifndef SAVEFS_COPIER_LATEST_H
#define SAVEFS_COPIER_LATEST_H

#include <stddef.h>
#include <stdint.h>

#include "indexer.h"

/* One channel's finished index DIR/NAME, with the keys of its records (cp_indexer_take_keys).
 * SIZE and XXH3 are updated when the index is rewritten. */
struct cp_latest_chan {
    const char *name;
    const struct cp_index_key *keys;
    size_t nkeys;
    uint64_t *size, *xxh3;
};

/* Rewrites, in place (a new file renamed over the old), every index of CH[0..N) that holds a
 * page which a later copy supersedes, without that copy. *DROPPED counts the copies left out.
 * 0, or -errno with ERR filled. */
int cp_latest_resolve(const char *dir, struct cp_latest_chan *ch, int n, uint64_t *dropped,
                      char *err, size_t errlen);

#endif
