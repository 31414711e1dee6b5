/* zframe: a stream stored as independent zstd frames and a seek table, so that any part of it
 * can be read without decompressing what comes before it (a lazy restore reads the page a guest
 * touches: the page index gives its stream offset, the seek table its frame). Writing is a stage
 * of a save's write path (stream.h); reading is a restore's streaming decompressor, or random
 * access through the seek table. Each object belongs to one thread, but a save's streams share
 * one context pool.
 *
 * Format: zstd's seekable format (zstd/contrib/seekable_format), so `zstd -d` reads a whole file
 * and seekable-format tools can seek in it. All numbers little-endian.
 *   frames 0..N-1  zstd frames, each with its content size in its header and the XXH64 content
 *                  checksum at its end (checked whenever it is decompressed); every frame but the
 *                  last holds exactly the save's frame size of stream bytes (CP_ZFRAME_SIZE, less
 *                  when many channels share the memory budget)
 *   seek table     one skippable frame: u32 0x184D2A5E, u32 8 * N + 9,
 *                  N x { u32 compressed size, u32 stream size },
 *                  u32 N, u8 descriptor 0 (no per-entry checksums: the frames carry theirs),
 *                  u32 0x8F92EAB1
 * Frame i starts in the file at the sum of the compressed sizes before it and holds the stream
 * from the sum of the stream sizes before it. The seek table costs 8 bytes per frame in the file
 * and in a save's memory until its end: 4 KiB per GiB of stream. */
#ifndef SAVEFS_COPIER_ZFRAME_H
#define SAVEFS_COPIER_ZFRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cp_zseek.h"
#include "stream.h"

#define CP_ZFRAME_SIZE     (1u << 20) /* stream bytes per frame, at most */
#define CP_ZSEEK_MAGIC     0x8F92EAB1u
#define CP_ZSKIP_MAGIC     0x184D2A5Eu
#define CP_ZSEEK_FOOTER    9
#define CP_ZSEEK_ENTRY_LEN 8

/* ---- writing ---- */

/* The compression contexts of one save, lent to its streams one frame at a time: as many as
 * CP_ZPOOL_BUDGET holds at LEVEL (levels from 9 up need 12 to 34 MiB each), at most NSTREAMS. */
struct cp_zpool;

#define CP_ZPOOL_BUDGET (24u << 20)

int cp_zpool_new(struct cp_zpool **out, int level, size_t frame_size, int nstreams, char *err,
                 size_t errlen);
/* How many contexts the pool may hold at once. */
int cp_zpool_max(const struct cp_zpool *p);
/* NULL is fine; every context must have been given back. */
void cp_zpool_free(struct cp_zpool *p);

/* A stage that compresses each FRAME_SIZE bytes of the stream into W's buffer, which must be
 * cp_zwriter_buf_size(FRAME_SIZE) bytes or more. Finishing it appends the seek table and
 * finishes W. W is not owned. */
struct cp_zwriter;

size_t cp_zwriter_buf_size(size_t frame_size);
int cp_zwriter_open(struct cp_zwriter **out, struct cp_zpool *pool, struct cp_fwriter *w,
                    size_t frame_size, char *err, size_t errlen);
struct cp_stage *cp_zwriter_stage(struct cp_zwriter *z);
/* Stream bytes committed and their XXH3 (final after finish); frames written. */
uint64_t cp_zwriter_size(const struct cp_zwriter *z);
uint64_t cp_zwriter_xxh3(const struct cp_zwriter *z);
uint32_t cp_zwriter_nframes(const struct cp_zwriter *z);
/* NULL is fine. */
void cp_zwriter_free(struct cp_zwriter *z);

/* ---- reading a whole file in order ---- */

/* Decompresses what RD (not owned) reads, from the file's first byte, which must open a zstd
 * frame. */
struct cp_zreader;

int cp_zreader_open(struct cp_zreader **out, struct cp_freader *rd, size_t out_size, char *err,
                    size_t errlen);
/* The next stream bytes, at most MAX and at most OUT_SIZE, in *DATA: their count, 0 at the end of
 * the file, or -EBADMSG (not zstd, a damaged frame) / -errno with ERR filled. */
ssize_t cp_zreader_read(struct cp_zreader *z, const uint8_t **data, size_t max, char *err,
                        size_t errlen);
/* Once the stream's last byte was read: reads the rest of the file (the seek table) and checks
 * that it ends after a whole frame and holds no more stream bytes. 0 or -EBADMSG / -errno. */
int cp_zreader_end(struct cp_zreader *z, char *err, size_t errlen);
/* Stream bytes read so far and their XXH3. */
uint64_t cp_zreader_size(const struct cp_zreader *z);
uint64_t cp_zreader_xxh3(const struct cp_zreader *z);
/* NULL is fine. */
void cp_zreader_free(struct cp_zreader *z);

#endif
