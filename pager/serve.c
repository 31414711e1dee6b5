/* serve: one restore's stream, written by the calling thread: the saved header and RAM setup,
 * the postcopy commands, the device state packaged with LISTEN and RUN (or, resuming, the
 * recovery handshake: resume.h), then every page exactly once (QEMU 7.2 fails a page placed twice:
 * UFFDIO_COPY says EEXIST), requested pages first. The return-path thread and the background
 * readers feed it through the queue. */
#include "pager.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "hot.h"
#include "push.h"
#include "resume.h"
#include "rp.h"
#include "verify.h"
#include "wire.h"

/* A requested page waits behind what the socket holds, but a small socket makes the writer and
 * QEMU's loading thread take turns at every few pages: 64 KiB pushed 1 GiB 15% slower than
 * 208 KiB, 1 MiB or 4 MiB, which were alike (docs/benchmarks.md). */
#define PG_SNDBUF (256 << 10)

/* What QEMU has of a page. A zero page is left as POSTCOPY_ADVISE's discard of all RAM made it
 * (zero memory; QEMU 7.2 `init_range` and 10.0 alike), counted as in from the start: pushing it
 * cost QEMU's one loading thread a record and a UFFDIO_ZEROPAGE per page. It is still sent when
 * requested, as QEMU's userfaultfd then waits for it. */
enum { PG_UNSENT, PG_SENT, PG_LEFT_ZERO };
#define PG_URGENT_EVERY 16 /* pages of a chunk between looks at the requests */

struct pg_sender {
    const struct pg_snap *s;
    struct pg_wire *w;
    struct pg_queue *q;
    struct pg_events *ev;
    uint8_t *sent[PG_MAX_BLOCKS]; /* PG_UNSENT, PG_SENT or PG_LEFT_ZERO per page */
    uint64_t nsent, npages, requested;
    double t_waited; /* in pg_queue_next once the guest runs: nothing to send */
    struct pg_vcache vc;
    uint8_t page[PG_PAGE_SIZE];
    double *lat; /* ms per request */
    size_t nlat, latcap;
    char err[512];
};

double pg_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int pg_connect(const char *path, int ms, char *err, size_t errlen)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = -1, rc = -ENAMETOOLONG;

    if (strlen(path) < sizeof(a.sun_path)) {
        strcpy(a.sun_path, path);
        /* Every 5 ms: the wait for QEMU to listen is time to running. */
        for (int i = 0; rc && i <= ms / 5; i++) {
            if (i)
                usleep(5000);
            if (fd < 0)
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            rc = fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) ? -errno : 0;
        }
    }
    if (rc) {
        snprintf(err, errlen, "connecting to %s: %s", path, strerror(-rc));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    return fd;
}

/* Everything before the pages: what the destination needs to LISTEN, then the devices. */
static int pg_preamble(const struct pg_snap *s, struct pg_wire *w)
{
    const struct pg_main *m = &s->main;
    const struct pg_block *b0 = &s->map.blocks[0];
    uint8_t advise[16], discard[2 + 256 + 1 + 16];
    size_t n = strlen(b0->name), dev = m->dev_end - m->dev_start;
    uint32_t blob = (uint32_t)(dev + PG_PACKAGED_EXTRA);

    pg_wire_bytes(w, m->data, m->head_end);
    pg_wire_cmd(w, PG_CMD_OPEN_RETURN_PATH, NULL, 0);
    /* Page-size summary (OR of all blocks' page sizes) and target page size: 4 KiB pages. */
    memset(advise, 0, sizeof(advise));
    advise[6] = advise[14] = PG_PAGE_SIZE >> 8;
    pg_wire_cmd(w, PG_CMD_POSTCOPY_ADVISE, advise, sizeof(advise));
    pg_wire_bytes(w, m->data + m->head_end, m->setup_end - m->head_end);
    /* One discard of one page, which ADVISE already discarded: without any, 7.2's LISTEN takes the
     * precopy path and its listen thread faults on its own registered RAM. */
    memset(discard, 0, sizeof(discard));
    discard[1] = (uint8_t)n;
    memcpy(discard + 2, b0->name, n);
    discard[2 + n + 1 + 14] = PG_PAGE_SIZE >> 8;
    pg_wire_cmd(w, PG_CMD_POSTCOPY_RAM_DISCARD, discard, (uint16_t)(2 + n + 1 + 16));
    pg_wire_cmd(w, PG_CMD_PACKAGED,
                (uint8_t[]){blob >> 24, blob >> 16 & 0xff, blob >> 8 & 0xff, blob & 0xff}, 4);
    pg_wire_cmd(w, PG_CMD_POSTCOPY_LISTEN, NULL, 0);
    pg_wire_bytes(w, m->data + m->dev_start, dev);
    /* Before RUN: RUN ends the package's reading (LOADVM_QUIT), so a PING after it would never
     * be answered. Its PONG comes once the devices are loaded; RUN follows from the same buffer. */
    pg_wire_cmd(w, PG_CMD_PING,
                (uint8_t[]){PG_PING_DEVICES >> 24, PG_PING_DEVICES >> 16 & 0xff,
                            PG_PING_DEVICES >> 8 & 0xff, PG_PING_DEVICES & 0xff},
                4);
    pg_wire_cmd(w, PG_CMD_POSTCOPY_RUN, NULL, 0);
    return pg_wire_flush(w);
}

/* Sends page RAM_OFFSET of block B unless QEMU has it (REQUESTED: also a zero page left to the
 * discard), out of DATA or read and checked here. */
static int pg_send_page(struct pg_sender *x, int b, uint64_t ram_offset, const uint8_t *data,
                        int requested)
{
    const struct pg_block *bl = &x->s->map.blocks[b];
    uint64_t p = ram_offset / PG_PAGE_SIZE, e = bl->ent[p];
    int rc = 0, counted = x->sent[b][p] == PG_LEFT_ZERO;

    if (x->sent[b][p] == PG_SENT || (counted && !requested))
        return 0;
    if (pg_ent_is_data(e) && !data) {
        rc = pg_verify_read(x->s, pg_ent_channel(e), pg_ent_offset(e), PG_PAGE_SIZE, x->page,
                            &x->vc, x->err, sizeof(x->err));
        data = x->page;
    }
    if (rc)
        return rc;
    pg_wire_page(x->w, bl->name, ram_offset, pg_ent_is_data(e) ? data : NULL);
    x->sent[b][p] = PG_SENT;
    x->nsent += !counted;
    pg_events_push(x->ev, x->nsent, x->npages, x->nsent == x->npages);
    return 0;
}

static int pg_serve_req(struct pg_sender *x, const struct pg_req *r)
{
    const struct pg_block *bl = &x->s->map.blocks[r->block];
    uint64_t start = r->start / PG_PAGE_SIZE * PG_PAGE_SIZE;
    int rc = 0;

    for (uint64_t off = start; !rc && off < r->start + r->len && off < bl->length;
         off += PG_PAGE_SIZE, x->requested++)
        rc = pg_send_page(x, r->block, off, NULL, 1);
    pg_wire_section_close(x->w);
    if (!rc)
        rc = pg_wire_flush(x->w);
    if (!rc && x->nlat < x->latcap)
        x->lat[x->nlat++] = (pg_now() - r->t) * 1e3;
    return rc;
}

static int pg_serve_reqs(struct pg_sender *x)
{
    struct pg_req r;
    int rc = 0;

    while (!rc && pg_queue_take_req(x->q, &r))
        rc = pg_serve_req(x, &r);
    return rc;
}

static int pg_serve_chunk(struct pg_sender *x, const struct pg_chunk *c)
{
    int rc = 0;

    for (uint32_t i = 0; !rc && i < c->npages; i++) {
        const struct pg_chunk_page *p = &c->pages[i];
        if (i % PG_URGENT_EVERY == 0 && (rc = pg_serve_reqs(x)))
            break;
        rc = pg_send_page(x, p->block, p->ram_offset, c->buf + (p->stream_offset - c->base), 0);
    }
    pg_wire_section_close(x->w);
    return rc ? rc : x->w->err;
}

/* Until QEMU runs the guest (the queue is held till then): requests only. */
static int pg_serve_until_running(struct pg_sender *x)
{
    struct pg_req r;
    int rc = 0;

    while (!rc && pg_queue_req_while_held(x->q, &r))
        rc = pg_serve_req(x, &r);
    return rc;
}

/* Before the index order, the pages of a previous restore's fault log (requests first still),
 * while the readers fill the queue. */
static int pg_serve_hot(struct pg_sender *x, const struct pg_hot *h, uint64_t *n)
{
    uint64_t before = x->nsent;
    int rc = 0;

    for (size_t i = 0; !rc && i < h->n; i++) {
        if (i % PG_URGENT_EVERY == 0 && (rc = pg_serve_reqs(x)))
            break;
        rc = pg_send_page(x, h->pages[i].block, h->pages[i].ram_offset, NULL, 0);
    }
    pg_wire_section_close(x->w);
    *n = x->nsent - before;
    return rc ? rc : x->w->err;
}

/* After the readers: any data page not sent yet (none, unless a reader skipped one), then the end
 * of RAM and of the stream. */
static int pg_serve_rest(struct pg_sender *x)
{
    const struct pg_map *m = &x->s->map;
    uint64_t n = 0;
    int rc = 0;

    for (int b = 0; !rc && b < m->nblocks; b++)
        for (uint64_t p = 0; !rc && p < m->blocks[b].length / PG_PAGE_SIZE; p++) {
            if (n++ % (PG_URGENT_EVERY * 16) == 0 && (rc = pg_serve_reqs(x)))
                break;
            rc = pg_send_page(x, b, p * PG_PAGE_SIZE, NULL, 0);
        }
    /* The end only after every data page: QEMU takes one never sent for zero memory. */
    if (!rc && x->nsent != x->npages) {
        snprintf(x->err, sizeof(x->err), "%llu of %llu pages in at the end",
                 (unsigned long long)x->nsent, (unsigned long long)x->npages);
        rc = -EPROTO;
    }
    if (rc)
        return rc;
    pg_wire_section_close(x->w);
    pg_wire_be(x->w, CP_VM_SECTION_END, 1);
    pg_wire_be(x->w, x->w->ram_section, 4);
    pg_wire_be(x->w, CP_RAM_EOS, 8);
    pg_wire_be(x->w, CP_VM_SECTION_FOOTER, 1);
    pg_wire_be(x->w, x->w->ram_section, 4);
    pg_wire_be(x->w, CP_VM_EOF, 1);
    return pg_wire_flush(x->w);
}

/* The writer's loop: requests, chunks, and what remains once the readers are done. */
static int pg_serve_pages(struct pg_sender *x)
{
    struct pg_chunk *c = NULL;
    struct pg_req r;
    enum pg_next next;
    int rc = 0;

    while (!rc) {
        /* Before waiting, what is buffered goes: a page may be waited for. */
        if ((rc = pg_wire_flush(x->w)))
            break;
        double t0 = pg_now();
        next = pg_queue_next(x->q, &r, &c);
        x->t_waited += pg_now() - t0;
        if (next == PG_NEXT_DONE)
            break;
        if (next == PG_NEXT_REQ) {
            rc = pg_serve_req(x, &r);
        } else {
            rc = pg_serve_chunk(x, c);
            pg_queue_recycle(x->q, c);
        }
    }
    return rc ? rc : x->q->stopped ? -ECANCELED : pg_serve_rest(x);
}

static int pg_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void pg_sender_stats(struct pg_sender *x, struct pg_stats *st)
{
    st->requested_pages = x->requested;
    if (x->nlat == 0)
        return;
    qsort(x->lat, x->nlat, sizeof(*x->lat), pg_cmp_double);
    st->req_median_ms = x->lat[x->nlat / 2];
    st->req_p99_ms = x->lat[x->nlat * 99 / 100];
    st->req_max_ms = x->lat[x->nlat - 1];
}

static int pg_sender_init(struct pg_sender *x, const struct pg_snap *s, struct pg_wire *w,
                          struct pg_queue *q, struct pg_events *ev)
{
    memset(x, 0, sizeof(*x));
    x->s = s;
    x->w = w;
    x->q = q;
    x->ev = ev;
    pg_vcache_init(&x->vc);
    x->latcap = 1 << 16;
    if (!(x->lat = malloc(x->latcap * sizeof(*x->lat))))
        return -ENOMEM;
    for (int b = 0; b < s->map.nblocks; b++)
        if (!(x->sent[b] = calloc(s->map.blocks[b].length / PG_PAGE_SIZE + 1, 1)))
            return -ENOMEM;
    x->npages = pg_map_npages(&s->map);
    return 0;
}

/* What QEMU has before the first page: on recovery the pages its bitmaps say it received (never
 * sent again), and the zero pages it has as zero. The number of the former. */
static uint64_t pg_sender_had(struct pg_sender *x, const struct pg_rp *rp)
{
    const struct pg_map *m = &x->s->map;
    uint64_t had = 0, zero = 0;

    for (int b = 0; b < m->nblocks; b++)
        for (uint64_t p = 0; p < m->blocks[b].length / PG_PAGE_SIZE; p++)
            if (pg_rp_has(rp, b, p)) {
                x->sent[b][p] = PG_SENT;
                had++;
            } else if (!pg_ent_is_data(m->blocks[b].ent[p])) {
                x->sent[b][p] = PG_LEFT_ZERO;
                zero++;
            }
    x->nsent = had + zero;
    return had;
}

static void pg_sender_free(struct pg_sender *x)
{
    for (int b = 0; b < PG_MAX_BLOCKS; b++)
        free(x->sent[b]);
    free(x->lat);
    pg_vcache_free(&x->vc);
}

/* The words for what ended the stream (the writer's RC; the readers' error is already in ERR). */
static int pg_serve_outcome(int rc, const struct pg_sender *x, const struct pg_rp *rp, char *err,
                            size_t errlen)
{
    if (rc && x->err[0]) {
        snprintf(err, errlen, "%s", x->err);
    } else if (rc == -ECANCELED || (!rc && (!rp->shut || rp->shut_err))) {
        snprintf(err, errlen, "the destination %s",
                 rp->shut ? "reported a failed migration" : rp->err);
        rc = rc ? rc : -EPROTO;
    } else if (rc) {
        snprintf(err, errlen, "writing to the destination: %s", strerror(-rc));
    }
    return rc;
}

/* The pages, fed by the readers and the return path, until SHUT. */
static int pg_serve_run(const struct pg_snap *s, int fd, struct pg_wire *w, const struct pg_opts *o,
                        struct pg_stats *st, double t0, char *err, size_t errlen)
{
    struct pg_queue q;
    struct pg_push push;
    struct pg_rp rp;
    struct pg_sender x;
    int rc, prc;

    memset(&push, 0, sizeof(push));
    pg_queue_init(&q, 2 * (o->readers > 0 ? o->readers : 1) + 2, o->readers > 0 ? o->readers : 1);
    pg_queue_hold(&q); /* released by the return path once QEMU runs the guest */
    if ((rc = pg_sender_init(&x, s, w, &q, o->ev)) || (rc = pg_rp_start(&rp, fd, &s->map, &q, o))) {
        snprintf(err, errlen, "cannot start serving: %s", strerror(-rc));
        pg_sender_free(&x);
        pg_queue_destroy(&q);
        return rc;
    }
    rc = o->resume ? pg_resume_handshake(s, w, &rp, x.err, sizeof(x.err)) : pg_preamble(s, w);
    if (!rc) {
        st->t_devices_sent = pg_now() - t0;
        st->had_pages = pg_sender_had(&x, &rp);
    }
    if (!rc && !(rc = pg_push_start(&push, s, &q, &rp, o->readers)))
        rc = pg_serve_until_running(&x);
    if (!rc && o->hot)
        rc = pg_serve_hot(&x, o->hot, &st->hot_pages);
    if (!rc)
        rc = pg_serve_pages(&x);
    st->t_last_page = pg_now() - t0;
    pg_queue_stop(&q);
    prc = pg_push_join(&push, err, errlen);
    if (rc || prc)
        shutdown(fd, SHUT_RDWR); /* nothing more to say: the return path ends too */
    pg_rp_join(&rp);
    st->t_shut = pg_now() - t0;
    st->requests = rp.requests;
    st->t_running = rp.t_running > 0 ? rp.t_running - t0 : 0;
    st->bytes = w->bytes;
    st->t_send = w->t_send;
    st->t_waited = x.t_waited;
    pg_sender_stats(&x, st);
    rc = prc ? prc : pg_serve_outcome(rc, &x, &rp, err, errlen);
    pg_sender_free(&x);
    pg_queue_destroy(&q);
    return rc;
}

int pg_serve(const struct pg_snap *s, const char *sock_path, const struct pg_opts *o,
             struct pg_stats *st, char *err, size_t errlen)
{
    double t0 = pg_now();
    struct pg_wire *w;
    int fd, rc;

    memset(st, 0, sizeof(*st));
    st->data_pages = s->data_pages;
    st->zero_pages = s->zero_pages;
    fd = pg_connect(sock_path, o->connect_ms, err, errlen);
    if (fd < 0)
        return fd;
    st->t_connected = pg_now() - t0;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){PG_SNDBUF}, sizeof(int));
    if (!(w = malloc(sizeof(*w)))) {
        close(fd);
        return -ENOMEM;
    }
    pg_wire_init(w, fd, s->main.ram_section);
    rc = pg_serve_run(s, fd, w, o, st, t0, err, errlen);
    free(w);
    close(fd);
    return rc;
}
