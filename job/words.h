/* words: parses what a user writes to NAME/save ("4", "parallel=8 name=nightly keep-running",
 * "compress=zstd:3").
 * Pure functions, any thread. */
#ifndef SAVEFS_WORDS_H
#define SAVEFS_WORDS_H

#include <stddef.h>

#define SNAPSHOT_NAME_MAX 64
#define PARALLEL_DEFAULT  4
#define PARALLEL_MAX      64
#define ZSTD_LEVEL_MAX    19
/* `compress=zstd`: the fastest level, the one that pays off in a save. */
#define ZSTD_LEVEL_PLAIN 1

struct save_words {
    int parallel;                     /* multifd channels, 1..64 */
    char name[SNAPSHOT_NAME_MAX + 1]; /* empty: the default, a UTC time stamp */
    int keep_running;                 /* resume the VM after the save instead of quitting it */
    int direct_io;                    /* 1 on (default), 0 off */
    int zstd_level;                   /* compress=: 0 none (default), 1..19 zstd at that level */
};

/* Parses LEN bytes of BUF. Returns 0, or -EINVAL with the reason in ERR; OUT is then unusable. */
int words_parse(const char *buf, size_t len, struct save_words *out, char *err, size_t errlen);

/* 1 if NAME is 1..64 of A-Za-z0-9._- and does not start with '.', else 0. Used for snapshot and
 * VM names alike. */
int words_valid_name(const char *name);

#endif
