/* indexer: follows one QEMU 7.2 multifd channel as its bytes pass through a save and streams
 * its page index (index.h) to a file. An incremental parser: bytes arrive in any split. What it
 * does not understand (another packet layout, compression, a bad magic) stops the indexing, not
 * the save. Used by the channel's save thread only. */
#ifndef SAVEFS_COPIER_INDEXER_H
#define SAVEFS_COPIER_INDEXER_H

#include <stddef.h>
#include <stdint.h>

#define CP_MULTIFD_MAGIC         0x11223344u
#define CP_MULTIFD_VERSION       1
#define CP_MULTIFD_HANDSHAKE_LEN 64 /* MultiFDInit_t */
#define CP_MULTIFD_ID_OFFSET     24 /* channel id in the handshake */
#define CP_MULTIFD_PAGES_ALLOC   128
#define CP_MULTIFD_HEADER_LEN    (320 + 8 * CP_MULTIFD_PAGES_ALLOC) /* MultiFDPacket_t */
#define CP_MULTIFD_FLAG_SYNC     1u

struct cp_indexer;

/* Where a packet stands in QEMU's order across channels: the SYNC packets its channel carried
 * before it (every channel carries one per sync, and the destination applies all pages before a
 * sync before any after it), then QEMU's global packet_num. One per PAGES or ZEROS record. */
struct cp_index_key {
    uint64_t epoch;
    uint64_t packet_num;
};

/* Creates the index file DIR/NAME and starts following a channel from its first byte. */
int cp_indexer_open(struct cp_indexer **out, const char *dir, const char *name, char *err,
                    size_t errlen);
/* The next LEN bytes of the channel. 0, or -errno when the index cannot be written. */
int cp_indexer_feed(struct cp_indexer *m, const uint8_t *buf, size_t len, char *err, size_t errlen);
/* The channel ended. While indexing: -EPROTO if it ended inside a packet, else the index is
 * completed and made durable. *INDEXED tells whether an index file exists. */
int cp_indexer_finish(struct cp_indexer *m, int *indexed, char *err, size_t errlen);
/* Size and XXH3 of the index file, after a finish that indexed. */
uint64_t cp_indexer_size(const struct cp_indexer *m);
uint64_t cp_indexer_xxh3(const struct cp_indexer *m);
/* Hands over the key of every PAGES and ZEROS record written, in order (*KEYS to free()). */
void cp_indexer_take_keys(struct cp_indexer *m, struct cp_index_key **keys, size_t *n);
/* Frees M, closing an unfinished index file as it is. NULL is fine. */
void cp_indexer_free(struct cp_indexer *m);

#endif
