/* push: background readers (see push.h). */
#include "push.h"

#include "verify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pg_reader {
    struct pg_push *p;
    int k; /* the channel being read */
    int blocks[CP_INDEX_MAX_BLOCKS];
    struct cp_index_iter it;
    struct cp_index_page pg;
    int have; /* pg holds the next page of the index */
    struct pg_vcache vc;
    char err[512];
};

static void pg_push_fail(struct pg_push *p, int rc, const char *why)
{
    int none = 0;

    if (atomic_compare_exchange_strong(&p->failed, &none, rc))
        snprintf(p->err, sizeof(p->err), "%s", why);
    pg_queue_stop(p->q);
}

/* The pages of the index starting in [base, end) that the map serves from this channel. */
static int pg_reader_pages(struct pg_reader *r, struct pg_chunk *c, uint64_t end)
{
    const struct pg_snap *s = r->p->snap;

    while (r->have && r->pg.stream_offset < end) {
        int b = r->blocks[r->pg.block_id];
        uint64_t e = s->map.blocks[b].ent[r->pg.ram_offset / PG_PAGE_SIZE];
        /* A later record (or channel) may have superseded this one: only the last is sent. */
        if (!r->pg.zero && e == pg_map_data(r->k, r->pg.stream_offset) &&
            !pg_rp_has(r->p->have, b, r->pg.ram_offset / PG_PAGE_SIZE)) {
            if (c->npages == c->cap) {
                uint32_t cap = c->cap ? 2 * c->cap : 256;
                void *n = realloc(c->pages, cap * sizeof(*c->pages));
                if (!n)
                    return -ENOMEM;
                c->pages = n;
                c->cap = cap;
            }
            c->pages[c->npages++] =
                (struct pg_chunk_page){b, r->pg.ram_offset, r->pg.stream_offset};
        }
        r->have = cp_index_next(s->index[r->k], &r->it, &r->pg);
    }
    return 0;
}

/* Reads the chunk at BASE: the stream up to END, and on to the end of the last page that starts
 * before END; every block of it checked before the chunk is queued. */
static int pg_reader_chunk(struct pg_reader *r, uint64_t base, uint64_t end)
{
    struct pg_chunk *c = pg_queue_spare(r->p->q);
    uint64_t stop = end;
    int rc;

    if (!c && !(c = calloc(1, sizeof(*c))))
        return -ENOMEM;
    c->ch = r->k;
    c->base = base;
    rc = pg_reader_pages(r, c, end);
    if (!rc && c->npages && c->pages[c->npages - 1].stream_offset + PG_PAGE_SIZE > stop)
        stop = c->pages[c->npages - 1].stream_offset + PG_PAGE_SIZE;
    c->len = (size_t)(stop - base);
    /* Room for any chunk, aligned for O_DIRECT (source.h): the chunk is recycled, buffer and all.
     */
    if (!rc && !c->buf && !(c->buf = aligned_alloc(PG_DIO_ALIGN, PG_CHUNK_BUF)))
        rc = -ENOMEM;
    /* A chunk without pages to send is not read: its bytes would go nowhere. */
    if (!rc && c->npages)
        rc = pg_verify_read(r->p->snap, r->k, base, c->len, c->buf, &r->vc, r->err, sizeof(r->err));
    if (!rc && c->npages)
        return pg_queue_put_chunk(r->p->q, c);
    pg_queue_recycle(r->p->q, c);
    return rc;
}

static int pg_reader_channel(struct pg_reader *r)
{
    const struct pg_snap *s = r->p->snap;
    const struct pg_chan *ch = &s->chans[r->k];
    const struct cp_index *ix = s->index[r->k];
    int rc = 0;

    for (uint32_t b = 0; b < cp_index_nblocks(ix); b++) {
        const char *name = cp_index_block_name(ix, b);
        r->blocks[b] = pg_map_find(&s->map, name, strlen(name));
    }
    memset(&r->it, 0, sizeof(r->it));
    r->have = cp_index_next(ix, &r->it, &r->pg);
    for (uint64_t base = 0; !rc && base < ch->stream_size; base += PG_CHUNK_SIZE) {
        uint64_t end = base + PG_CHUNK_SIZE;
        rc = pg_reader_chunk(r, base, end < ch->stream_size ? end : ch->stream_size);
    }
    return rc;
}

static void *pg_reader_main(void *arg)
{
    struct pg_reader *r = arg;
    struct pg_push *p = r->p;
    int rc = 0;

    pg_vcache_init(&r->vc);
    rc = pg_queue_wait_released(p->q);
    while (!rc && (r->k = atomic_fetch_add(&p->next_channel, 1)) < p->snap->nchans)
        rc = pg_reader_channel(r);
    if (rc && rc != -ECANCELED) {
        if (!r->err[0])
            snprintf(r->err, sizeof(r->err), "channel-%d: %s", r->k, strerror(-rc));
        pg_push_fail(p, rc, r->err);
    }
    pg_vcache_free(&r->vc);
    pg_queue_producer_done(p->q);
    free(r);
    return NULL;
}

int pg_push_start(struct pg_push *p, const struct pg_snap *snap, struct pg_queue *q,
                  const struct pg_rp *have, int nreaders)
{
    memset(p, 0, sizeof(*p));
    p->snap = snap;
    p->q = q;
    p->have = have;
    nreaders = nreaders < 1 ? 1 : nreaders > PG_MAX_READERS ? PG_MAX_READERS : nreaders;
    for (; p->nreaders < nreaders; p->nreaders++) {
        struct pg_reader *r = calloc(1, sizeof(*r));
        int rc = ENOMEM;
        if (r) {
            r->p = p;
            rc = pthread_create(&p->threads[p->nreaders], NULL, pg_reader_main, r);
        }
        if (rc) {
            free(r);
            /* The queue counts on NREADERS producers: the missing ones are done at once. */
            for (int i = p->nreaders; i < nreaders; i++)
                pg_queue_producer_done(q);
            pg_push_fail(p, -rc, "cannot start a background reader");
            return -rc;
        }
    }
    return 0;
}

int pg_push_join(struct pg_push *p, char *err, size_t errlen)
{
    for (int i = 0; i < p->nreaders; i++)
        pthread_join(p->threads[i], NULL);
    if (p->failed)
        snprintf(err, errlen, "%s", p->err);
    return p->failed;
}
