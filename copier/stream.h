/* stream: the file side of a copy. A write path of stages ending in a file writer (O_DIRECT
 * with an aligned buffer where the file system allows it), a file reader, XXH3 of the file's
 * bytes on both. Each object belongs to one thread. */
#ifndef SAVEFS_COPIER_STREAM_H
#define SAVEFS_COPIER_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CP_ALIGN       4096
#define CP_BUF_DEFAULT (2u << 20)
#define CP_BUF_MIN     (128u << 10)
#define CP_HUGE_PAGE   (2u << 20)
/* Buffers of each file writer and reader: the disk works on one while the stream's thread fills
 * or empties another, so that neither waits for the other. */
#define CP_IO_BUFS 3
/* What the stream buffers of one copy may hold together, so that savefs's memory does not grow
 * with the channel count (nor ever with the VM's size). */
#define CP_MEM_BUDGET (32u << 20)

/* Puts the default into *BUF_SIZE if 0; -EINVAL unless it is a multiple of CP_ALIGN. */
int cp_buf_size(size_t *buf_size, char *err, size_t errlen);
/* The default size of each of NBUFS buffers in each of NSTREAMS streams: an equal share of
 * CP_MEM_BUDGET, at most CP_BUF_DEFAULT and at least CP_BUF_MIN, a multiple of CP_ALIGN. */
size_t cp_buf_share(int nstreams, int nbufs);
/* A page-aligned buffer of its own mapping, which unmapping gives back to the system at once (a
 * freed malloc buffer of megabytes may stay in an arena and in savefs's resident memory). */
int cp_buf_map(uint8_t **buf, size_t cap, char *err, size_t errlen);
/* NULL is fine. */
void cp_buf_unmap(uint8_t *buf, size_t cap);
/* open(PATH, FLAGS), with O_DIRECT if DIRECT_IO asks for it and the file system allows it (not
 * set later by fcntl: a FUSE file system learns of O_DIRECT only at open): the descriptor, or
 * -errno; *DIRECT says whether it is direct. */
int cp_open_direct(const char *path, int flags, int direct_io, int *direct);
/* LEN bytes of FD from OFF into BUF, through short reads and EINTR: what was read (less than LEN
 * only at the file's end), or -errno. */
ssize_t cp_pread_full(int fd, void *buf, size_t len, uint64_t off);

/* One step of a stream's write path, Redis-rio style. Bytes are placed straight into the
 * stage's own buffer (no copy from the socket), then committed. The file writer is the last
 * stage; a compressor writing independent zstd frames would sit before it, compressing each
 * full buffer into the next stage's room. */
struct cp_stage {
    /* Free room for the next bytes of the stream; never empty. */
    uint8_t *(*room)(struct cp_stage *st, size_t *len);
    /* The first N bytes of the room now hold stream bytes. 0 or -errno with ERR filled. */
    int (*commit)(struct cp_stage *st, size_t n, char *err, size_t errlen);
    /* End of the stream: everything held goes out and is made durable. */
    int (*finish)(struct cp_stage *st, char *err, size_t errlen);
};

/* Copies LEN bytes into ST through room and commit. */
int cp_stage_put(struct cp_stage *st, const void *buf, size_t len, char *err, size_t errlen);

/* A new file (O_EXCL, 0600) as the last stage of a write path. Checksums what it writes; its
 * own thread writes each full buffer while the next fills. A write error shows at a later
 * commit, reserve or finish. */
struct cp_fwriter;

/* Creates DIR/NAME. */
int cp_fwriter_open(struct cp_fwriter **out, const char *dir, const char *name, size_t buf_size,
                    int direct_io, char *err, size_t errlen);
struct cp_stage *cp_fwriter_stage(struct cp_fwriter *w);
/* Makes the room hold at least N contiguous bytes, writing out what the buffer holds first if
 * needed (under O_DIRECT its whole blocks; a partial block moves to the buffer's start), so that
 * a stage can produce straight into it. N may be up to the buffer size less CP_ALIGN. */
int cp_fwriter_reserve(struct cp_fwriter *w, size_t n, char *err, size_t errlen);
/* 1 while the file is written with O_DIRECT (0 where the file system refuses it). */
int cp_fwriter_direct(const struct cp_fwriter *w);
/* Bytes committed and their XXH3; the checksum is final after finish. */
uint64_t cp_fwriter_size(const struct cp_fwriter *w);
uint64_t cp_fwriter_xxh3(const struct cp_fwriter *w);
/* Closes the file without syncing if finish did not; NULL is fine. */
void cp_fwriter_free(struct cp_fwriter *w);
/* Frees W and removes its file: 0, or -errno from unlink. */
int cp_fwriter_discard(struct cp_fwriter *w, char *err, size_t errlen);

/* Reads a file in buffer-sized chunks, O_DIRECT where the file system allows it, checksumming
 * what it reads. Its own thread reads ahead, CP_IO_BUFS - 1 buffers at most. */
struct cp_freader;

int cp_freader_open(struct cp_freader **out, const char *dir, const char *name, size_t buf_size,
                    int direct_io, char *err, size_t errlen);
/* The next chunk of the file: sets *DATA and returns the byte count (fewer than the buffer
 * holds only at the end, 0 at EOF) or -errno. *DATA stays valid until the next call. */
ssize_t cp_freader_fill(struct cp_freader *r, const uint8_t **data, char *err, size_t errlen);
/* Size of the file when opened; bytes read so far. */
uint64_t cp_freader_file_size(const struct cp_freader *r);
uint64_t cp_freader_size(const struct cp_freader *r);
/* Compares the bytes read with SIZE and XXH3: 0, or -EBADMSG with ERR filled. Call at EOF. */
int cp_freader_check(struct cp_freader *r, uint64_t size, uint64_t xxh3, char *err, size_t errlen);
/* NULL is fine. */
void cp_freader_free(struct cp_freader *r);

/* fsyncs directory DIR. */
int cp_fsync_dir(const char *dir, char *err, size_t errlen);

#endif
