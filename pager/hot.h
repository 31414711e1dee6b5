/* hot: prefetch order from a previous lazy restore. A fault log (the pages QEMU asked for, one
 * "BLOCK HEX_OFFSET" line each, in order of arrival) is written by the return-path thread with
 * --fault-log; given back with --hot, those pages are pushed first, before the index order. The
 * log belongs to the VM's local state, never to a snapshot (snapshots are immutable and signed).
 * Loading: main's thread; the list is then read-only. */
#ifndef SAVEFS_PAGER_HOT_H
#define SAVEFS_PAGER_HOT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "snap.h"

#define PG_HOT_MAX (1u << 20) /* pages taken from a log: 4 GiB of RAM */

struct pg_hot_page {
    int block;
    uint64_t ram_offset;
};

struct pg_hot {
    struct pg_hot_page *pages; /* data pages of S, each once, in stream order */
    size_t n;
};

/* Reads the fault log at PATH into H: the data pages of S it names (a line that names no page of
 * S is skipped: the log may be of an older snapshot of the VM), each once, sorted by where they
 * lie in the channels, so that reading them is sequential. 0, or -errno with ERR filled. */
int pg_hot_load(struct pg_hot *h, const char *path, const struct pg_snap *s, char *err,
                size_t errlen);
void pg_hot_free(struct pg_hot *h);

/* One line of a fault log: the request for LEN bytes at START of block NAME. */
void pg_hot_log(FILE *f, const char *name, uint64_t start, uint32_t len);

#endif
