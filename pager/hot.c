/* hot: fault logs and the prefetch order drawn from them (see hot.h). */
#include "hot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void pg_hot_log(FILE *f, const char *name, uint64_t start, uint32_t len)
{
    for (uint64_t off = start / PG_PAGE_SIZE * PG_PAGE_SIZE; off < start + len; off += PG_PAGE_SIZE)
        fprintf(f, "%s %" PRIx64 "\n", name, off);
}

/* Where a page lies: channel, then stream offset (both in its map entry's bits). */
static uint64_t pg_hot_where(const struct pg_snap *s, const struct pg_hot_page *p)
{
    return s->map.blocks[p->block].ent[p->ram_offset / PG_PAGE_SIZE] & ~(1ull << 63);
}

static const struct pg_snap *pg_hot_sort_snap; /* qsort's context: one load at a time */

static int pg_hot_cmp(const void *a, const void *b)
{
    uint64_t x = pg_hot_where(pg_hot_sort_snap, a), y = pg_hot_where(pg_hot_sort_snap, b);
    return (x > y) - (x < y);
}

/* Adds page NAME OFF to H if S holds data there and it is not in H yet (SEEN). */
static int pg_hot_add(struct pg_hot *h, size_t *cap, uint8_t **seen, const struct pg_snap *s,
                      const char *name, uint64_t off)
{
    int b = pg_map_find(&s->map, name, strlen(name));
    uint64_t p = off / PG_PAGE_SIZE;

    if (b < 0 || off % PG_PAGE_SIZE || off >= s->map.blocks[b].length ||
        !pg_ent_is_data(s->map.blocks[b].ent[p]) || seen[b][p / 8] >> (p % 8) & 1)
        return 0;
    if (h->n == *cap) {
        size_t n = *cap ? 2 * *cap : 1024;
        void *q = realloc(h->pages, n * sizeof(*h->pages));
        if (!q)
            return -ENOMEM;
        h->pages = q;
        *cap = n;
    }
    seen[b][p / 8] |= (uint8_t)(1u << (p % 8));
    h->pages[h->n++] = (struct pg_hot_page){b, off};
    return 0;
}

int pg_hot_load(struct pg_hot *h, const char *path, const struct pg_snap *s, char *err,
                size_t errlen)
{
    uint8_t *seen[PG_MAX_BLOCKS] = {0};
    char line[512], name[256];
    size_t cap = 0;
    uint64_t off;
    int rc = 0;
    FILE *f;

    memset(h, 0, sizeof(*h));
    if (!(f = fopen(path, "re"))) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    for (int b = 0; !rc && b < s->map.nblocks; b++)
        if (!(seen[b] = calloc(s->map.blocks[b].length / PG_PAGE_SIZE / 8 + 1, 1)))
            rc = -ENOMEM;
    while (!rc && h->n < PG_HOT_MAX && fgets(line, sizeof(line), f))
        if (sscanf(line, "%255s %" SCNx64, name, &off) == 2)
            rc = pg_hot_add(h, &cap, seen, s, name, off);
    fclose(f);
    for (int b = 0; b < PG_MAX_BLOCKS; b++)
        free(seen[b]);
    if (rc) {
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        pg_hot_free(h);
        return rc;
    }
    pg_hot_sort_snap = s;
    if (h->n) /* an empty log has no array: qsort wants one all the same */
        qsort(h->pages, h->n, sizeof(*h->pages), pg_hot_cmp);
    return 0;
}

void pg_hot_free(struct pg_hot *h)
{
    free(h->pages);
    memset(h, 0, sizeof(*h));
}
