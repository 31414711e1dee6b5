/* cp_zseek: random access to a stream stored as seekable zstd frames (zframe.h has the format and
 * the writer): the seek table, the frame holding a stream offset, one frame decompressed. */
#ifndef SAVEFS_COPIER_CP_ZSEEK_H
#define SAVEFS_COPIER_CP_ZSEEK_H

#include <stdint.h>

/* The seek table of one file, validated against the file's size. */
struct cp_zseek;

struct cp_zframe {
    uint64_t file_offset, stream_offset;
    uint32_t file_size, stream_size;
};

/* Reads and checks the seek table at the end of FD: 0, or -EBADMSG / -errno with ERR filled. */
int cp_zseek_load(struct cp_zseek **out, int fd, char *err, size_t errlen);
uint32_t cp_zseek_nframes(const struct cp_zseek *z);
uint64_t cp_zseek_stream_size(const struct cp_zseek *z);
/* Frame I < nframes. */
const struct cp_zframe *cp_zseek_frame(const struct cp_zseek *z, uint32_t i);
/* The frame holding stream byte OFFSET, or -1 if the stream is shorter. */
int64_t cp_zseek_find(const struct cp_zseek *z, uint64_t offset);
/* Reads frame I from FD and decompresses it into OUT, which has room for its stream_size bytes.
 * 0, or -EBADMSG (damaged: the frame's checksum, its sizes) / -errno with ERR filled. */
int cp_zseek_read(const struct cp_zseek *z, int fd, uint32_t i, uint8_t *out, char *err,
                  size_t errlen);
/* NULL is fine. */
void cp_zseek_free(struct cp_zseek *z);

#endif
