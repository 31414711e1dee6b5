/* rp: the return-path reader (see rp.h). */
#include "rp.h"

#include "pager.h"
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum {
    PG_RP_SHUT = 1,
    PG_RP_PONG = 2,
    PG_RP_REQ_PAGES_ID = 3,
    PG_RP_REQ_PAGES = 4,
};

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
    return pg_queue_put_req(rp->q, &r);
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
            rp->t_running = pg_now();
            pg_events_running(rp->ev);
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
    return NULL;
}

int pg_rp_start(struct pg_rp *rp, int fd, const struct pg_map *map, struct pg_queue *q,
                struct pg_events *ev)
{
    memset(rp, 0, sizeof(*rp));
    rp->fd = fd;
    rp->map = map;
    rp->q = q;
    rp->ev = ev;
    return -pthread_create(&rp->thread, NULL, pg_rp_main, rp);
}

void pg_rp_join(struct pg_rp *rp)
{
    pthread_join(rp->thread, NULL);
}
