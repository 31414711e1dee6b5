/* map: the page map of one snapshot (see map.h). */
#include "map.h"

#include "copier.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pg_map_add(struct pg_map *m, const char *name, size_t len, uint64_t length, char *err,
               size_t errlen)
{
    struct pg_block *b;

    if (m->nblocks == PG_MAX_BLOCKS || len == 0 || len >= sizeof(b->name) ||
        length % PG_PAGE_SIZE || pg_map_find(m, name, len) >= 0) {
        snprintf(err, errlen, "RAM block %d ('%.*s', %" PRIu64 " bytes) cannot be served",
                 m->nblocks, (int)len, name, length);
        return -EBADMSG;
    }
    b = &m->blocks[m->nblocks];
    b->ent = cp_mem_alloc((length / PG_PAGE_SIZE + 1) * sizeof(*b->ent));
    if (!b->ent) {
        snprintf(err, errlen, "RAM block '%.*s': out of memory", (int)len, name);
        return -ENOMEM;
    }
    memcpy(b->name, name, len);
    b->name[len] = '\0';
    b->length = length;
    m->nblocks++;
    return 0;
}

int pg_map_find(const struct pg_map *m, const char *name, size_t len)
{
    for (int i = 0; i < m->nblocks; i++)
        if (strlen(m->blocks[i].name) == len && memcmp(m->blocks[i].name, name, len) == 0)
            return i;
    return -1;
}

int pg_map_set(struct pg_map *m, int b, uint64_t ram_offset, uint64_t ent, char *err, size_t errlen)
{
    struct pg_block *bl = &m->blocks[b];

    if (ram_offset % PG_PAGE_SIZE || ram_offset >= bl->length) {
        snprintf(err, errlen,
                 "page at offset %" PRIu64 " is outside RAM block '%s' (%" PRIu64 " bytes)",
                 ram_offset, bl->name, bl->length);
        return -ERANGE;
    }
    bl->ent[ram_offset / PG_PAGE_SIZE] = ent;
    return 0;
}

int pg_map_check_complete(const struct pg_map *m, char *err, size_t errlen)
{
    for (int i = 0; i < m->nblocks; i++) {
        const struct pg_block *b = &m->blocks[i];
        for (uint64_t p = 0; p < b->length / PG_PAGE_SIZE; p++)
            if (b->ent[p] == 0) {
                snprintf(err, errlen,
                         "the page at offset %" PRIu64 " of RAM block '%s' is neither a zero "
                         "page of main nor in any page index: the index is incomplete",
                         p * PG_PAGE_SIZE, b->name);
                return -ENODATA;
            }
    }
    return 0;
}

uint64_t pg_map_npages(const struct pg_map *m)
{
    uint64_t n = 0;

    for (int i = 0; i < m->nblocks; i++)
        n += m->blocks[i].length / PG_PAGE_SIZE;
    return n;
}

void pg_map_free(struct pg_map *m)
{
    for (int i = 0; i < m->nblocks; i++)
        cp_mem_free(m->blocks[i].ent,
                    (m->blocks[i].length / PG_PAGE_SIZE + 1) * sizeof(*m->blocks[i].ent));
    m->nblocks = 0;
}
