/* rp: the return-path reader (see rp.h). */
#include "rp.h"

#include "hot.h"
#include "pager.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    PG_RP_SHUT = 1,
    PG_RP_PONG = 2,
    PG_RP_REQ_PAGES_ID = 3,
    PG_RP_REQ_PAGES = 4,
    PG_RP_RECV_BITMAP = 5,
    PG_RP_RESUME_ACK = 6,
};

/* ram.c: what ends a received bitmap, and migration.h: RESUME_ACK's value. */
#define PG_RP_BITMAP_END 0x0123456789abcdefull
#define PG_RP_RESUME_OK  1

static int pg_read_all(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EPIPE;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static uint64_t pg_be(const uint8_t *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* A page request: REQ_PAGES_ID names its block, REQ_PAGES means the last one named. */
static int pg_rp_req(struct pg_rp *rp, int type, const uint8_t *m, uint16_t len, int *block)
{
    struct pg_req r = {.t = pg_now()};

    if (len < 12 || (type == PG_RP_REQ_PAGES_ID && (len < 13 || len != 13 + m[12])))
        return snprintf(rp->err, sizeof(rp->err), "sent a page request of %u bytes", len), -EBADMSG;
    if (type == PG_RP_REQ_PAGES_ID)
        *block = pg_map_find(rp->map, (const char *)m + 13, m[12]);
    r.block = *block;
    r.start = pg_be(m, 8);
    r.len = (uint32_t)pg_be(m + 8, 4);
    if (r.block < 0)
        return snprintf(rp->err, sizeof(rp->err), "asked for a page of an unknown RAM block"),
               -EBADMSG;
    rp->requests++;
    if (rp->flog)
        pg_hot_log(rp->flog, rp->map->blocks[r.block].name, r.start, r.len);
    return pg_queue_put_req(rp->q, &r);
}

/* A received bitmap: the message names the block; the bitmap follows on the stream outside the
 * message (ramblock_recv_bitmap_send): be64 size, size bytes of little-endian longs, be64 end. */
static int pg_rp_bitmap(struct pg_rp *rp, const uint8_t *m, uint16_t len)
{
    int b = len >= 1 && len == 1 + m[0] ? pg_map_find(rp->map, (const char *)m + 1, m[0]) : -1;
    uint64_t npages, want, size;
    uint8_t be[8], *bits;
    int rc;

    if (b < 0)
        return snprintf(rp->err, sizeof(rp->err), "sent a received bitmap of an unknown block"),
               -EBADMSG;
    npages = rp->map->blocks[b].length / PG_PAGE_SIZE;
    want = (npages + 63) / 64 * 8; /* whole longs */
    if ((rc = pg_read_all(rp->fd, be, 8)))
        return rc;
    size = pg_be(be, 8);
    if (size != want || rp->received[b])
        return snprintf(rp->err, sizeof(rp->err),
                        "sent a received bitmap of %llu bytes for '%.64s' (%llu due, or a second)",
                        (unsigned long long)size, rp->map->blocks[b].name,
                        (unsigned long long)want),
               -EBADMSG;
    if (!(bits = malloc(size + 8)))
        return -ENOMEM;
    rc = pg_read_all(rp->fd, bits, size + 8);
    if (rc == 0 && pg_be(bits + size, 8) != PG_RP_BITMAP_END) {
        snprintf(rp->err, sizeof(rp->err), "sent a received bitmap without its end mark");
        rc = -EBADMSG;
    }
    pthread_mutex_lock(&rp->mu);
    if (rc == 0) {
        rp->received[b] = bits;
        rp->nreceived++;
        pthread_cond_broadcast(&rp->cond);
    }
    pthread_mutex_unlock(&rp->mu);
    if (rc)
        free(bits);
    return rc;
}

static void pg_rp_running(struct pg_rp *rp)
{
    pthread_mutex_lock(&rp->mu);
    rp->t_running = pg_now();
    pthread_cond_broadcast(&rp->cond);
    pthread_mutex_unlock(&rp->mu);
    pg_queue_release(rp->q);
    pg_events_running(rp->ev);
}

static void *pg_rp_main(void *arg)
{
    struct pg_rp *rp = arg;
    uint8_t hdr[4], m[UINT16_MAX];
    int block = -1, rc = 0;

    while (!rc && !rp->shut) {
        uint16_t type, len;
        if ((rc = pg_read_all(rp->fd, hdr, 4)))
            break;
        type = (uint16_t)pg_be(hdr, 2);
        len = (uint16_t)pg_be(hdr + 2, 2);
        if ((rc = pg_read_all(rp->fd, m, len)))
            break;
        if (type == PG_RP_SHUT && len == 4) {
            rp->shut = 1;
            rp->shut_err = (uint32_t)pg_be(m, 4);
        } else if (type == PG_RP_REQ_PAGES || type == PG_RP_REQ_PAGES_ID) {
            rc = pg_rp_req(rp, type, m, len, &block);
        } else if (type == PG_RP_PONG && len == 4 && pg_be(m, 4) == PG_PING_DEVICES) {
            pg_rp_running(rp);
        } else if (type == PG_RP_RECV_BITMAP) {
            rc = pg_rp_bitmap(rp, m, len);
        } else if (type == PG_RP_RESUME_ACK && len == 4 && pg_be(m, 4) == PG_RP_RESUME_OK) {
            pg_rp_running(rp);
        } else if (type != PG_RP_PONG) {
            snprintf(rp->err, sizeof(rp->err), "sent an unexpected return-path message %u", type);
            rc = -EBADMSG;
        }
    }
    if (rc && !rp->err[0])
        snprintf(rp->err, sizeof(rp->err), "closed the return path before SHUT: %s", strerror(-rc));
    /* Without a return path nothing more can be asked for: the writer stops too. */
    if (!rp->shut)
        pg_queue_stop(rp->q);
    pg_queue_release(rp->q); /* a SHUT before the PONG: what is left goes, or fails, at once */
    pthread_mutex_lock(&rp->mu);
    rp->ended = 1;
    pthread_cond_broadcast(&rp->cond);
    pthread_mutex_unlock(&rp->mu);
    return NULL;
}

int pg_rp_start(struct pg_rp *rp, int fd, const struct pg_map *map, struct pg_queue *q,
                const struct pg_opts *o)
{
    memset(rp, 0, sizeof(*rp));
    rp->fd = fd;
    rp->map = map;
    rp->q = q;
    rp->ev = o->ev;
    rp->flog = o->fault_log;
    pthread_mutex_init(&rp->mu, NULL);
    pthread_cond_init(&rp->cond, NULL);
    int rc = -pthread_create(&rp->thread, NULL, pg_rp_main, rp);
    if (rc) {
        pthread_cond_destroy(&rp->cond);
        pthread_mutex_destroy(&rp->mu);
    }
    return rc;
}

void pg_rp_join(struct pg_rp *rp)
{
    pthread_join(rp->thread, NULL);
    for (int b = 0; b < PG_MAX_BLOCKS; b++)
        free(rp->received[b]);
    pthread_cond_destroy(&rp->cond);
    pthread_mutex_destroy(&rp->mu);
}
