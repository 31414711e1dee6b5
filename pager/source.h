/* source: reads stream bytes out of a snapshot's channel files, plain (pread) or seekable zstd
 * (the frames holding them, decompressed here and checked against each frame's checksum), and
 * loads the main stream (whole, or the parts its layout names). Any thread; each reading thread has
 * its own frame cache. */
#ifndef SAVEFS_PAGER_SOURCE_H
#define SAVEFS_PAGER_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "copier.h"
#include "cp_zseek.h"

/* What an O_DIRECT read's offset, length and buffer are aligned to. */
#define PG_DIO_ALIGN 4096u

struct pg_chan {
    struct cp_file file; /* as the manifest says: size, checksums, zstd (a copy) */
    int fd;
    int dfd; /* plain channels: an O_DIRECT descriptor, or -1 where the store refuses one */
    struct cp_zseek *zseek; /* zstd files only */
    uint64_t stream_size;
};

/* The last frame a thread decompressed, so that reading on through a frame costs one
 * decompression. */
struct pg_fcache {
    const struct pg_chan *ch;
    int64_t frame;
    uint8_t *buf;
    size_t cap;
};

/* Opens F (a channel) in DIR; for zstd files, loads and checks the seek table. */
int pg_chan_open(struct pg_chan *c, const char *dir, const struct cp_file *f, char *err,
                 size_t errlen);
void pg_chan_close(struct pg_chan *c);

/* 0 if stream bytes [OFF, OFF + LEN) are within C's stream, else -EBADMSG with ERR saying so. */
int pg_chan_check_range(const struct pg_chan *c, uint64_t off, size_t len, char *err,
                        size_t errlen);
/* Reads stream bytes [OFF, OFF + LEN) of C into OUT. 0, or -EBADMSG (a damaged frame, bytes past
 * the end) / -errno with ERR naming the file and offset. */
int pg_chan_read(const struct pg_chan *c, uint64_t off, size_t len, uint8_t *out,
                 struct pg_fcache *fc, char *err, size_t errlen);
void pg_fcache_free(struct pg_fcache *fc);

/* Reads main F in DIR whole, checks it against the manifest (size, XXH3; for zstd the stream's
 * too) and returns its stream in *OUT (malloc'd), *LEN bytes. */
int pg_main_load(const char *dir, const struct cp_file *f, uint8_t **out, size_t *len, char *err,
                 size_t errlen);
/* Reads only the head and the device state of main F in DIR, as its layout (nonzero) names
 * them, into *OUT (malloc'd): the head's *HEAD bytes, then the device state's *DEV; each checked
 * against the layout's XXH3, the file against the manifest's size. Parts over MAX bytes are
 * refused (-E2BIG). */
int pg_main_load_parts(const char *dir, const struct cp_file *f, size_t max, uint8_t **out,
                       size_t *head, size_t *dev, char *err, size_t errlen);

#endif
