/* map: where every page of every RAM block of a snapshot comes from (a channel file and its
 * stream offset, or zero), built from the main stream's zero pages and the channels' page
 * indexes, and checked complete before anything is served. Built by one thread, then read-only. */
#ifndef SAVEFS_PAGER_MAP_H
#define SAVEFS_PAGER_MAP_H

#include <stddef.h>
#include <stdint.h>

#define PG_PAGE_SIZE  4096u
#define PG_MAX_BLOCKS 128

/* A page's entry: 0 while no stream said anything of it, PG_ZERO, or pg_map_data(). Once the
 * map is built, 0 is a zero page too: a map from main read whole is checked to have none, one
 * from main's layout takes the pages no index lists as zero (snap.c). */
#define PG_ZERO 1ull

struct pg_block {
    char name[256];
    uint64_t length; /* bytes, a multiple of PG_PAGE_SIZE */
    uint64_t *ent;   /* length / PG_PAGE_SIZE entries */
};

struct pg_map {
    struct pg_block blocks[PG_MAX_BLOCKS];
    int nblocks;
};

static inline uint64_t pg_map_data(int channel, uint64_t stream_offset)
{
    return 1ull << 63 | (uint64_t)channel << 48 | stream_offset;
}
static inline int pg_ent_channel(uint64_t e)
{
    return (int)(e >> 48 & 0x7fff);
}
static inline uint64_t pg_ent_offset(uint64_t e)
{
    return e & ((1ull << 48) - 1);
}
static inline int pg_ent_is_data(uint64_t e)
{
    return (int)(e >> 63);
}

/* Adds a block of LENGTH bytes named by the LEN bytes of NAME. 0 or -errno with ERR filled. */
int pg_map_add(struct pg_map *m, const char *name, size_t len, uint64_t length, char *err,
               size_t errlen);
/* The index of the block named NAME (LEN bytes), or -1. */
int pg_map_find(const struct pg_map *m, const char *name, size_t len);
/* Records what page RAM_OFFSET of block B holds. -ERANGE with ERR filled if out of the block. */
int pg_map_set(struct pg_map *m, int b, uint64_t ram_offset, uint64_t ent, char *err,
               size_t errlen);
/* 0 if every page has an entry; else -ENODATA naming the first page none covers. */
int pg_map_check_complete(const struct pg_map *m, char *err, size_t errlen);
uint64_t pg_map_npages(const struct pg_map *m);
void pg_map_free(struct pg_map *m);

#endif
