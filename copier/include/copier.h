/* copier: moves QEMU migration streams between unix sockets and chunk files, one thread per
 * stream, checksumming as bytes pass, compressing on request into seekable zstd frames
 * (zframe.h). Knows no QMP and no FUSE. */
#ifndef SAVEFS_COPIER_H
#define SAVEFS_COPIER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define CP_MAX_CHANNELS 64
#define CP_NAME_MAX     32

enum cp_kind {
    CP_MAIN,    /* QEMU's main migration stream: header, zero pages, device state */
    CP_CHANNEL, /* one multifd channel: handshake, then packets of pages */
    CP_INDEX,   /* page index of one channel (see index.h) */
};

/* Where the parts of a main stream that a lazy restore sends lie (cp_main.h): [0, head) the
 * header, configuration and RAM setup section, [devices, eof) the device state, QEMU_VM_EOF at
 * eof; with the XXH3 of each part. All 0 when the save could not tell (a compressed main, a
 * stream cp_main does not understand): a reader then reads main whole. */
struct cp_main_layout {
    uint64_t head, devices, eof;
    uint64_t head_xxh3, devices_xxh3;
};

struct cp_file {
    char name[CP_NAME_MAX]; /* "main", "channel-3", "channel-3.idx" */
    enum cp_kind kind;
    int channel;   /* channel id; -1 for main */
    uint64_t size; /* bytes in the file */
    uint64_t xxh3; /* XXH3-64 of the file's bytes as stored (what cp or rsync can verify) */
    int zstd;      /* 1: the file holds its stream as zstd frames with a seek table (zframe.h) */
    /* zstd files only, else 0: the stream itself, checked end to end after decompression */
    uint64_t stream_size, stream_xxh3;
    struct cp_main_layout layout; /* main only */
};

/* The highest zstd level a save takes (cp_opts.zstd_level). */
#define CP_ZSTD_LEVEL_MAX 19

/* The name of the file of KIND for CHANNEL in a snapshot directory ("main", "channel-K",
 * "channel-K.idx") into NAME of LEN (CP_NAME_MAX is enough); -1 if it does not fit. */
int cp_file_name(enum cp_kind kind, int channel, char *name, size_t len);
/* 1 if NAME is the name of some copier file (cp_file_name of some kind and channel), else 0. */
int cp_file_name_valid(const char *name);

/* pthread_create with every signal blocked in the new thread (signals belong to the main
 * thread); 0 or -errno. Every thread of savefs starts here. */
int cp_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

struct cp_opts {
    int direct_io;   /* 1: O_DIRECT where the store supports it, silently buffered where not */
    size_t buf_size; /* per-stream buffer, a multiple of 4096; 0: a share of CP_MEM_BUDGET */
    int stall_ms;    /* restore: a stream whose peer accepts no byte for this long fails */
    int zstd_level;  /* save: 0 stores main and channels as they come; 1..19 compresses them
                        (indexes stay plain). A restore follows each file's zstd flag. */
    int debug_fail_accept; /* save, tests only: the Nth accept fails as if out of descriptors */
};

/* ---- save: QEMU connects to us ---- */
struct cp_save;

/* Listens on SOCK_PATH (created, mode 0600) for the main stream and NCHANNELS multifd channels,
 * which may connect in any order, and streams each into its file in DIR: "main", "channel-K" and
 * the index "channel-K.idx" (which maps pages to offsets in the stream, compressed or not).
 * Returns at once; threads do the work. -EMFILE, before anything listens, if savefs may not open
 * the files and sockets of every stream. */
int cp_save_start(struct cp_save **out, const char *sock_path, const char *dir, int nchannels,
                  const struct cp_opts *opts, char *err, size_t errlen);
/* Bytes received so far, all streams together. Any thread. */
uint64_t cp_save_bytes(struct cp_save *s);
/* 1 once every stream has ended (EOF, error or cancel), else 0. */
int cp_save_done(struct cp_save *s);
/* A descriptor that polls readable once cp_save_done says 1. */
int cp_save_done_fd(struct cp_save *s);
/* The save's first error (a stream's, an accept's, a cancel), 0 if none; its reason in ERR. Any
 * thread. */
int cp_save_failed(struct cp_save *s, char *err, size_t errlen);
/* Fails the save: no more bytes reach a file, but connections are still accepted and every
 * stream is read to its end and dropped, so that QEMU can end its migration (cancel it) without
 * seeing a stream cut; cp_save_done says 1 once QEMU closed them all. cp_save_finish then
 * returns -ECANCELED (or the error that came first). Any thread. */
void cp_save_cancel(struct cp_save *s);
/* Waits for every stream to end, fsyncs every file and DIR, and fills FILES (room for
 * 2 * nchannels + 1 entries) and *NFILES. Returns 0, or the first error with its reason in ERR
 * (a stream missing or cut short, a duplicate channel id, an I/O error naming the file). After
 * a failure it does not wait: it shuts every socket down (as free does) and returns the error. */
int cp_save_finish(struct cp_save *s, struct cp_file *files, int *nfiles, char *err, size_t errlen);
/* Joins threads (cancelling a save still running, and shutting its sockets down: call it once
 * QEMU's migration is over), closes and frees; removes the socket file. Leaves the files in DIR. */
void cp_save_free(struct cp_save *s);

/* ---- restore: we connect to QEMU ---- */
struct cp_restore;

/* Opens FILES[i] in DIR: the file of kind CP_MAIN, and those of kind CP_CHANNEL in order; each
 * starts reading ahead at once (so that a restore can open its files while QEMU starts). A file
 * missing, of the wrong size, or not starting as the manifest says (zstd frames or a plain
 * stream, a channel's handshake) fails it here, before anything reaches QEMU. CP_INDEX entries
 * are checked against their size and checksum only. */
int cp_restore_open(struct cp_restore **out, const char *dir, const struct cp_file *files,
                    int nfiles, const struct cp_opts *opts, char *err, size_t errlen);
/* Connects to SOCK_PATH once per file in that order, writing each channel's 64-byte handshake
 * right after its connect (QEMU 7.2 takes the first connection as main and reads each handshake
 * synchronously), then pumps every file concurrently, decompressing zstd files. On failure, R
 * is still the caller's to free. */
int cp_restore_start(struct cp_restore *r, const char *sock_path, char *err, size_t errlen);
uint64_t cp_restore_bytes(struct cp_restore *r);
int cp_restore_done(struct cp_restore *r);
/* A descriptor that polls readable once cp_restore_done says 1. */
int cp_restore_done_fd(struct cp_restore *r);
void cp_restore_cancel(struct cp_restore *r);
/* Waits for every pump; returns 0 only if every file was sent whole and its size and checksum
 * match FILES (and, for zstd files, the stream's too). Otherwise the first error, naming the
 * file (-EBADMSG for a checksum mismatch or a damaged frame). A stream's last bytes go to QEMU
 * only after those checks, so that QEMU cannot complete a restore from a damaged file. */
int cp_restore_finish(struct cp_restore *r, char *err, size_t errlen);
/* Joins threads (cancelling a restore still running), closes and frees. */
void cp_restore_free(struct cp_restore *r);

/* Checksums file NAME in DIR and compares with F (size and xxh3). 0, or -EBADMSG / -errno with
 * the reason naming the file in ERR. */
int cp_verify_file(const char *dir, const struct cp_file *f, char *err, size_t errlen);
/* The byte count and XXH3 of any file NAME in DIR (NAME may hold a '/'), as it was when opened:
 * read by four threads at once in 2 MiB chunks (O_DIRECT where the file system allows it; a chunk
 * that is all hole is not read) and hashed in order by the caller's thread (filehash.c). 0, or
 * -errno with the reason in ERR. */
int cp_hash_file(const char *dir, const char *name, uint64_t *size, uint64_t *xxh3, char *err,
                 size_t errlen);

/* LEN bytes, zeroed, in a mapping of their own that asks for transparent huge pages from 2 MiB
 * up: a page server's tables for a big guest are tens of MiB, and a 4 KiB page fault costs about
 * 18 us in this project's nested VM (64 MiB touched: 0.29 s; on huge pages 0.01 s). NULL on
 * failure. Freed by cp_mem_free with the same LEN. */
void *cp_mem_alloc(size_t len);
void cp_mem_free(void *p, size_t len);

#endif
