/* words: parses what a user writes to NAME/save ("4", "parallel=8 name=nightly keep-running",
 * "compress=zstd:3", "keep=7", "rate=200", "keep-running live=off").
 * Pure functions, any thread. */
#ifndef SAVEFS_WORDS_H
#define SAVEFS_WORDS_H

#include <stddef.h>

#include "store.h"

#define PARALLEL_DEFAULT 4
#define PARALLEL_MAX     64
/* keep=N: a bound only so that the number is one (a VM with more snapshots keeps them all). */
#define KEEP_MAX 100000
/* rate=MB/s: at most a TB/s, so that the bytes per second fit QEMU's max-bandwidth. */
#define RATE_MAX_MBS 1000000
/* `compress=zstd`: the fastest level, the one that pays off in a save. */
#define ZSTD_LEVEL_PLAIN 1

/* disks=: what a save does with the VM's writable disks (job/ckpt.c). */
enum words_disks {
    WORDS_DISKS_NONE,    /* memory only: the disks are recorded, not captured */
    WORDS_DISKS_AUTO,    /* reflink where the image's filesystem can, else overlay */
    WORDS_DISKS_REFLINK, /* FICLONE every image, or fail */
    WORDS_DISKS_OVERLAY, /* switch the VM onto new overlays, then copy the frozen images */
};

struct save_words {
    int parallel;                     /* multifd channels, 1..64 */
    char name[SNAPSHOT_NAME_MAX + 1]; /* empty: the default, a UTC time stamp */
    int keep_running;                 /* resume the VM after the save instead of quitting it */
    int live; /* with keep_running: a live checkpoint (1, default), or pause for the whole save */
    int direct_io;  /* 1 on (default), 0 off */
    int zstd_level; /* compress=: 0 none (default), 1..19 zstd at that level */
    int keep;       /* keep=N: 0 keeps every snapshot (default), else the N newest */
    int rate_mbs;   /* rate=MB/s: 0 no cap (default), else QEMU's max-bandwidth in 10^6 bytes/s */
    enum words_disks disks; /* disks=: auto with keep-running (default), else none */
};

/* The most bytes of words one save takes: the words of one open save file are gathered here
 * across write() calls (dd bs=1, a large write split by the kernel), so that a prefix of them
 * never starts a save. */
#define WORDS_INPUT_MAX 4096

struct words_input {
    char buf[WORDS_INPUT_MAX + 1];
    size_t len;   /* bytes in buf */
    size_t ready; /* 0, or the length of complete words at the start of buf */
    int skipping; /* words too long were refused: the rest of their line is dropped */
};

/* Adds SIZE bytes of DATA. Returns 1 when words are complete: up to the last newline of DATA, or
 * more than WORDS_INPUT_MAX bytes (which words_parse refuses); IN->buf holds them, IN->ready
 * long. Returns 0 while more may come. */
int words_input_add(struct words_input *in, const char *data, size_t size);
/* At close: returns 1 if bytes without a newline wait (they are the words, IN->ready long), 0 if
 * nothing does. */
int words_input_close(struct words_input *in);
/* Drops the complete words, keeping what followed their newline. */
void words_input_consume(struct words_input *in);

/* Parses LEN bytes of BUF. Returns 0, or -EINVAL with the reason in ERR; OUT is then unusable. */
/* More than WORDS_INPUT_MAX bytes are refused. */
int words_parse(const char *buf, size_t len, struct save_words *out, char *err, size_t errlen);

#endif
