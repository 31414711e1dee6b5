/* index: the page index of one multifd channel file ("channel-K.idx"), which tells where every
 * page the channel carries lies in its file, so that a lazy restore can fetch any page without
 * reading what precedes it. Records are encoded here as the save streams (indexer.c decides
 * what to record) and loaded here, untrusted, by tests and the lazy restore. Knows no QEMU
 * packet layout. Callers: a save stream thread (put), any thread (load; one per index).
 *
 * Format: little-endian; every record starts 8-byte aligned with its u32 type.
 *   header, 24 bytes:
 *     char magic[8] "SFSPIDX1", u32 version (3; 2 before runs, 1 before sums),
 *     u32 page_size (4096),
 *     u32 sum_shift (version 2: each SUM covers 2^sum_shift stream bytes, 12..24; version 1: 0),
 *     u32 0
 *   BLOCK (type 1), the first time a RAMBlock name is seen in the channel:
 *     u32 type, u32 block_id (0, 1, 2... in order of appearance, < CP_INDEX_MAX_BLOCKS),
 *     u32 name_len (1..255), u32 0, name (no NUL), zero-padded to a multiple of 8
 *   PAGES (type 2), the pages of one packet, back to back in the channel file:
 *     u32 type, u32 block_id (a BLOCK seen before), u32 npages (>= 1), u32 flags,
 *     u64 stream_offset: where the first page starts in the channel file (handshake included),
 *     then with flags 0: u64 ram_offset[npages], each page's offset in its RAMBlock, as QEMU
 *     sent it; with flags CP_INDEX_RUN (version 3 only): one u64 ram_offset, page i's being
 *     ram_offset + i * page_size (a run: what a first pass's packets hold, 32 bytes for them;
 *     npages <= CP_INDEX_RUN_MAX).
 *     Page i is the page_size bytes at stream_offset + i * page_size. Records follow the
 *     stream: each starts at or after the end of the one before.
 *   ZEROS (type 4), the zero pages of one packet (QEMU >= 9.0 sends them in the channels, with
 *     no bytes; 7.2 sends them in the main stream): laid out as PAGES, stream_offset being
 *     where the packet's page bytes end, so that records stay in stream order.
 *     A page is as its last record in stream order says.
 *   SUM (type 5, version 2 only), one per 2^sum_shift bytes of the channel's stream, in order,
 *     anywhere among the other records (the writer puts each where its bytes ended):
 *     u32 type, u32 0, u64 k, u64 XXH3-64 of stream bytes [k << sum_shift, (k + 1) << sum_shift)
 *     (the last one up to the stream's end). Every byte of the stream is covered: a reader
 *     that checks the sums of the bytes it uses needs no other checksum of the channel.
 *   END (type 3), last, written only when the channel ended cleanly on a packet boundary:
 *     u32 type, u32 0, u64 npages (all PAGES and ZEROS records together), u64 stream_size
 * A channel the indexer did not understand has no index file at all. */
#ifndef SAVEFS_COPIER_CP_INDEX_H
#define SAVEFS_COPIER_CP_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define CP_INDEX_MAGIC   "SFSPIDX1"
#define CP_INDEX_VERSION 3
#define CP_INDEX_RUN     1u /* a PAGES or ZEROS record's flag: its pages are a run */
/* A run holds one packet's pages at most: a reader walks its pages one by one, and a run's 32
 * bytes must not claim billions of them. */
#define CP_INDEX_RUN_MAX    128
#define CP_INDEX_SUM_SHIFT  18 /* 256 KiB per SUM: what a page request reads and hashes */
#define CP_INDEX_SUM_MIN    12
#define CP_INDEX_SUM_MAX    24
#define CP_INDEX_PAGE_SIZE  4096
#define CP_INDEX_HEADER_LEN 24
#define CP_INDEX_NAME_MAX   255
#define CP_INDEX_MAX_BLOCKS 128

enum cp_index_type {
    CP_INDEX_BLOCK = 1,
    CP_INDEX_PAGES = 2,
    CP_INDEX_END = 3,
    CP_INDEX_ZEROS = 4,
    CP_INDEX_SUM = 5,
};

struct cp_index;

struct cp_index_page {
    uint32_t block_id;
    uint64_t ram_offset;
    uint64_t stream_offset; /* of a zero page: where its packet's page bytes end */
    int zero;               /* a zero page: no bytes in the stream */
};

struct cp_index_iter {
    size_t pos; /* the record being walked */
    uint32_t i; /* the next page in it */
};

/* Reads and validates the index file at PATH (every bound, every block reference, records in
 * stream order, END present and last; in version 2 a SUM for every block of the stream, in
 * order). 0, or -errno / -EBADMSG with the reason in ERR. */
int cp_index_load(struct cp_index **out, const char *path, char *err, size_t errlen);
uint32_t cp_index_nblocks(const struct cp_index *ix);
/* Name of block ID (< nblocks), NUL-terminated. */
const char *cp_index_block_name(const struct cp_index *ix, uint32_t id);
uint64_t cp_index_npages(const struct cp_index *ix);
uint64_t cp_index_stream_size(const struct cp_index *ix);
uint32_t cp_index_version(const struct cp_index *ix);
/* Version 2: each sum covers 2^shift stream bytes; version 1 (no sums): 0. */
uint32_t cp_index_sum_shift(const struct cp_index *ix);
uint64_t cp_index_nsums(const struct cp_index *ix);
/* XXH3-64 of the stream's bytes [K << shift, (K + 1) << shift) (to its end); K < nsums. */
uint64_t cp_index_sum(const struct cp_index *ix, uint64_t k);
/* XXH3-64 of the file's bytes as loaded: what the manifest's checksum of it must be, checked on
 * the very bytes that will be used. */
uint64_t cp_index_xxh3(const struct cp_index *ix);
/* Walks the pages in stream order from a zeroed IT: 1 and *PG filled, or 0 after the last. */
int cp_index_next(const struct cp_index *ix, struct cp_index_iter *it, struct cp_index_page *pg);
void cp_index_free(struct cp_index *ix);

#endif
