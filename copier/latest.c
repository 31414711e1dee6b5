/* latest: each page's last copy across a save's channel indexes (latest.h). Walks the records
 * from the latest key down with one bitmap of pages per RAMBlock: the first copy of a page met
 * is its last, every other is dropped. Memory: the indexes as loaded, a bit per page of RAM and
 * a few words per record. */
#include "latest.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index.h"
#include "stream.h"
#include "worker.h"

#define CP_LATEST_BUF (64 * 1024)

/* One PAGES or ZEROS record of one channel. */
struct cp_latest_rec {
    struct cp_index_key key;
    int chan;
    struct cp_index_iter start; /* cp_index_next from here gives its first page */
    uint32_t npages;
    uint64_t first; /* ordinal of its first page in the channel */
};

struct cp_latest {
    struct cp_index *ix[CP_MAX_CHANNELS];
    uint32_t gid[CP_MAX_CHANNELS][CP_INDEX_MAX_BLOCKS]; /* channel's block id -> global */
    char names[CP_INDEX_MAX_BLOCKS][CP_INDEX_NAME_MAX + 1];
    uint32_t nblocks;
    uint64_t pages[CP_INDEX_MAX_BLOCKS]; /* per global block: 1 + the highest page number */
    uint8_t *seen[CP_INDEX_MAX_BLOCKS];
    struct cp_latest_rec *recs;
    size_t nrecs;
    uint8_t *drop[CP_MAX_CHANNELS]; /* per channel: a byte per page, 1 to leave out */
    uint64_t ndrop[CP_MAX_CHANNELS];
};

/* The global id of block NAME; CP_INDEX_MAX_BLOCKS when the channels name more blocks than that. */
static uint32_t cp_latest_gid(struct cp_latest *l, const char *name)
{
    uint32_t g = 0;
    while (g < l->nblocks && strcmp(l->names[g], name) != 0)
        g++;
    if (g == l->nblocks && g < CP_INDEX_MAX_BLOCKS) {
        snprintf(l->names[g], sizeof(l->names[g]), "%s", name);
        l->nblocks++;
    }
    return g;
}

/* Loads channel K's index and lists its records. */
static int cp_latest_load(struct cp_latest *l, const char *dir, int k,
                          const struct cp_latest_chan *c, char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, c->name);
    int r = cp_index_load(&l->ix[k], path, err, errlen);
    if (r < 0)
        return r;
    struct cp_index *ix = l->ix[k];
    for (uint32_t b = 0; b < cp_index_nblocks(ix); b++)
        if ((l->gid[k][b] = cp_latest_gid(l, cp_index_block_name(ix, b))) == CP_INDEX_MAX_BLOCKS)
            return cp_msg(err, errlen, -EPROTO, "the channels name over %d RAM blocks",
                          CP_INDEX_MAX_BLOCKS);
    size_t nrec = l->nrecs, first = l->nrecs;
    struct cp_index_iter it = {0}, before = {0};
    struct cp_index_page pg;
    for (uint64_t ord = 0; cp_index_next(ix, &it, &pg); ord++, before = it) {
        uint32_t g = l->gid[k][pg.block_id];
        if (pg.ram_offset / CP_INDEX_PAGE_SIZE >= l->pages[g])
            l->pages[g] = pg.ram_offset / CP_INDEX_PAGE_SIZE + 1;
        if (it.i == 1) { /* the first page of a record */
            if (nrec - first == c->nkeys)
                return cp_msg(err, errlen, -EPROTO, "%s: more records than keys", c->name);
            struct cp_latest_rec *rec = realloc(l->recs, (nrec + 1) * sizeof(*rec));
            if (rec == NULL)
                return cp_msg(err, errlen, -ENOMEM, "out of memory");
            l->recs = rec;
            rec[nrec] = (struct cp_latest_rec){
                .key = c->keys[nrec - first], .chan = k, .start = before, .first = ord};
            nrec++;
        }
        l->recs[nrec - 1].npages++;
    }
    l->nrecs = nrec;
    if (nrec - first != c->nkeys)
        return cp_msg(err, errlen, -EPROTO, "%s: %zu records for %zu keys", c->name, nrec - first,
                      c->nkeys);
    l->drop[k] = calloc(cp_index_npages(ix) ? cp_index_npages(ix) : 1, 1);
    return l->drop[k] ? 0 : cp_msg(err, errlen, -ENOMEM, "out of memory");
}

static int cp_latest_cmp(const void *a, const void *b)
{
    const struct cp_index_key *x = &((const struct cp_latest_rec *)a)->key;
    const struct cp_index_key *y = &((const struct cp_latest_rec *)b)->key;
    if (x->epoch != y->epoch)
        return x->epoch < y->epoch ? 1 : -1;
    if (x->packet_num != y->packet_num)
        return x->packet_num < y->packet_num ? 1 : -1;
    return 0;
}

/* From the latest record down: a page already seen has a later copy. */
static int cp_latest_mark(struct cp_latest *l, char *err, size_t errlen)
{
    for (uint32_t g = 0; g < l->nblocks; g++)
        if ((l->seen[g] = calloc(l->pages[g] / 8 + 1, 1)) == NULL)
            return cp_msg(err, errlen, -ENOMEM, "out of memory");
    qsort(l->recs, l->nrecs, sizeof(l->recs[0]), cp_latest_cmp);
    for (size_t i = 0; i < l->nrecs; i++) {
        struct cp_latest_rec *rec = &l->recs[i];
        struct cp_index_iter it = rec->start;
        struct cp_index_page pg;
        for (uint32_t j = 0; j < rec->npages && cp_index_next(l->ix[rec->chan], &it, &pg); j++) {
            uint8_t *seen = l->seen[l->gid[rec->chan][pg.block_id]];
            uint64_t p = pg.ram_offset / CP_INDEX_PAGE_SIZE;
            if (seen[p / 8] & (1u << (p % 8))) {
                l->drop[rec->chan][rec->first + j] = 1;
                l->ndrop[rec->chan]++;
            }
            seen[p / 8] |= (uint8_t)(1u << (p % 8));
        }
    }
    return 0;
}

/* Writes channel K's index without its dropped pages into ST: pages of one record that stay
 * together stay one record. */
static int cp_latest_write(struct cp_latest *l, int k, struct cp_stage *st, char *err,
                           size_t errlen)
{
    struct cp_index *ix = l->ix[k];
    uint64_t offsets[CP_MULTIFD_PAGES_ALLOC], start = 0, kept = 0;
    uint32_t n = 0, type = 0, block = 0;
    int r = cp_index_put_header(st, cp_index_version(ix), err, errlen);
    for (uint32_t b = 0; r == 0 && b < cp_index_nblocks(ix); b++) {
        const char *name = cp_index_block_name(ix, b);
        r = cp_index_put_block(st, b, name, (uint32_t)strlen(name), err, errlen);
    }
    struct cp_index_iter it = {0};
    struct cp_index_page pg;
    for (uint64_t ord = 0; r == 0; ord++) {
        int more = cp_index_next(ix, &it, &pg);
        uint32_t t = more && pg.zero ? CP_INDEX_ZEROS : CP_INDEX_PAGES;
        int keep = more && !l->drop[k][ord];
        /* A run ends at a dropped page, a new record, or the end. */
        if (n && (!keep || it.i == 1 || n == CP_MULTIFD_PAGES_ALLOC)) {
            r = cp_index_put_pages(st, cp_index_version(ix), type, block, n, start, offsets, err,
                                   errlen);
            n = 0;
        }
        if (!more)
            break;
        if (!keep)
            continue;
        if (n == 0) {
            type = t;
            block = pg.block_id;
            start = pg.stream_offset;
        }
        offsets[n++] = pg.ram_offset;
        kept++;
    }
    /* The sums are of the stream, which stays as it was: all of them, in order. */
    for (uint64_t k = 0; r == 0 && k < cp_index_nsums(ix); k++)
        r = cp_index_put_sum(st, k, cp_index_sum(ix, k), err, errlen);
    if (r == 0)
        r = cp_index_put_end(st, kept, cp_index_stream_size(ix), err, errlen);
    return r == 0 ? st->finish(st, err, errlen) : r;
}

/* Replaces channel K's index by one without its dropped pages. */
static int cp_latest_rewrite(struct cp_latest *l, const char *dir, int k, struct cp_latest_chan *c,
                             char *err, size_t errlen)
{
    char tmp[CP_NAME_MAX + 8], from[PATH_MAX], to[PATH_MAX];
    struct cp_fwriter *w = NULL;
    snprintf(tmp, sizeof(tmp), "%s.new", c->name);
    int r = cp_fwriter_open(&w, dir, tmp, CP_LATEST_BUF, 0, err, errlen);
    if (r == 0)
        r = cp_latest_write(l, k, cp_fwriter_stage(w), err, errlen);
    if (r == 0) {
        *c->size = cp_fwriter_size(w);
        *c->xxh3 = cp_fwriter_xxh3(w);
        snprintf(from, sizeof(from), "%s/%s", dir, tmp);
        snprintf(to, sizeof(to), "%s/%s", dir, c->name);
        if (rename(from, to) < 0)
            r = cp_errno_msg(err, errlen, -errno, "rename %s", from);
    }
    char ignored[CP_ERR_MAX];
    if (r < 0 && w)
        cp_fwriter_discard(w, ignored, sizeof(ignored)); /* the first error is the one to tell */
    else
        cp_fwriter_free(w);
    return r;
}

int cp_latest_resolve(const char *dir, struct cp_latest_chan *ch, int n, uint64_t *dropped,
                      char *err, size_t errlen)
{
    struct cp_latest *l = calloc(1, sizeof(*l));
    int r = l ? 0 : cp_msg(err, errlen, -ENOMEM, "out of memory");
    *dropped = 0;
    for (int k = 0; r == 0 && k < n; k++)
        r = cp_latest_load(l, dir, k, &ch[k], err, errlen);
    if (r == 0)
        r = cp_latest_mark(l, err, errlen);
    for (int k = 0; r == 0 && k < n; k++) {
        *dropped += l->ndrop[k];
        if (l->ndrop[k])
            r = cp_latest_rewrite(l, dir, k, &ch[k], err, errlen);
    }
    for (int k = 0; l && k < n; k++) {
        cp_index_free(l->ix[k]);
        free(l->drop[k]);
    }
    for (uint32_t g = 0; l && g < l->nblocks; g++)
        free(l->seen[g]);
    if (l)
        free(l->recs);
    free(l);
    return r;
}
