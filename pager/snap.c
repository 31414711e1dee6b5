/* snap: opening a snapshot for serving (see snap.h). */
#include "snap.h"

#include "pager.h"
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cp_file *pg_find(const struct cp_file *files, int nfiles, enum cp_kind kind,
                                     int channel)
{
    for (int i = 0; i < nfiles; i++)
        if (files[i].kind == kind && files[i].channel == channel)
            return &files[i];
    return NULL;
}

/* Marks in the map what index IX says of channel K's pages. */
static int pg_snap_index(struct pg_snap *s, int k, const struct cp_index *ix, char *err,
                         size_t errlen)
{
    int blocks[CP_INDEX_MAX_BLOCKS];
    struct cp_index_iter it = {0};
    struct cp_index_page pg;
    int rc = 0;

    for (uint32_t b = 0; b < cp_index_nblocks(ix); b++) {
        const char *name = cp_index_block_name(ix, b);
        blocks[b] = pg_map_find(&s->map, name, strlen(name));
        if (blocks[b] < 0) {
            snprintf(err, errlen, "channel-%d.idx names RAM block '%s', which main does not list",
                     k, name);
            return -EBADMSG;
        }
    }
    while (!rc && cp_index_next(ix, &it, &pg))
        rc = pg_map_set(&s->map, blocks[pg.block_id], pg.ram_offset,
                        pg.zero ? PG_ZERO : pg_map_data(k, pg.stream_offset), err, errlen);
    return rc;
}

/* One channel's files, opened and checked on a thread of its own while the caller reads main:
 * a big guest's indexes are tens of MiB, read cold while QEMU starts, and the page server
 * connects only once they are (the map is filled after, on the caller's thread). */
struct pg_load {
    struct pg_snap *s;
    const char *dir;
    const struct cp_file *files;
    int nfiles, k, rc, started;
    struct cp_index *ix;
    pthread_t thread;
    char err[512];
};

static int pg_load_channel(struct pg_load *l)
{
    const struct cp_file *f = pg_find(l->files, l->nfiles, CP_CHANNEL, l->k);
    const struct cp_file *fi = pg_find(l->files, l->nfiles, CP_INDEX, l->k);
    struct pg_chan *c = &l->s->chans[l->k];
    char path[4096], *err = l->err;
    size_t errlen = sizeof(l->err);
    int rc, k = l->k;

    if (!f) {
        snprintf(err, errlen, "the manifest lists no channel-%d", k);
        return -EBADMSG;
    }
    /* QEMU's own multifd compression leaves no index: its packets are not randomly readable. */
    if (!fi) {
        snprintf(err, errlen,
                 "channel-%d has no page index (a save of an older savefs, or a stream the "
                 "indexer could not read, such as QEMU's own multifd compression): only a full "
                 "restore can read it",
                 k);
        return -ENODATA;
    }
    if ((rc = pg_chan_open(c, l->dir, f, err, errlen)))
        return rc;
    snprintf(path, sizeof(path), "%s/%s", l->dir, fi->name);
    if ((rc = cp_index_load(&l->ix, path, err, errlen)))
        return rc;
    if (cp_index_xxh3(l->ix) != fi->xxh3) {
        snprintf(err, errlen, "%s: its checksum does not match the manifest", fi->name);
        rc = -EBADMSG;
    } else if (cp_index_version(l->ix) < 2) {
        /* Served unchecked, a damaged block would reach the guest before the whole file's
         * checksum could tell: such snapshots restore fully. */
        snprintf(err, errlen,
                 "%s is a version %u page index, without a checksum per block: only a full "
                 "restore can read it",
                 fi->name, cp_index_version(l->ix));
        rc = -ENODATA;
    } else if (cp_index_stream_size(l->ix) != c->stream_size) {
        snprintf(err, errlen, "%s covers %" PRIu64 " stream bytes of %" PRIu64, fi->name,
                 cp_index_stream_size(l->ix), c->stream_size);
        rc = -ENODATA;
    }
    return rc;
}

static void *pg_load_main(void *arg)
{
    struct pg_load *l = arg;

    l->rc = pg_load_channel(l);
    return NULL;
}

/* Starts a thread per channel (one that cannot start loads on the caller's thread). */
static void pg_load_start(struct pg_load *loads, struct pg_snap *s, const char *dir,
                          const struct cp_file *files, int nfiles)
{
    for (int k = 0; k < s->nchans; k++) {
        loads[k] = (struct pg_load){.s = s, .dir = dir, .files = files, .nfiles = nfiles, .k = k};
        loads[k].started = pthread_create(&loads[k].thread, NULL, pg_load_main, &loads[k]) == 0;
        if (!loads[k].started)
            pg_load_main(&loads[k]);
    }
}

/* Joins them all; the first failure, in channel order, into ERR. Each index goes to S. */
static int pg_load_join(struct pg_load *loads, struct pg_snap *s, int rc, char *err, size_t errlen)
{
    for (int k = 0; k < s->nchans; k++) {
        if (loads[k].started)
            pthread_join(loads[k].thread, NULL);
        s->index[k] = loads[k].ix;
        if (!rc && loads[k].rc) {
            snprintf(err, errlen, "%s", loads[k].err);
            rc = loads[k].rc;
        }
    }
    return rc;
}

static void pg_snap_count(struct pg_snap *s)
{
    for (int b = 0; b < s->map.nblocks; b++)
        for (uint64_t p = 0; p < s->map.blocks[b].length / PG_PAGE_SIZE; p++) {
            if (pg_ent_is_data(s->map.blocks[b].ent[p]))
                s->data_pages++;
            else
                s->zero_pages++;
        }
}

/* Main read whole: its RAM blocks, its zero pages, and the parts sent again. */
static int pg_snap_main_whole(struct pg_snap *s, const char *dir, const struct cp_file *fm,
                              char *err, size_t errlen)
{
    size_t len = 0;
    int rc = pg_main_load(dir, fm, &s->main_stream, &len, err, errlen);

    s->main_read = len;
    return rc ? rc : pg_main_parse(&s->main, s->main_stream, len, &s->map, err, errlen);
}

/* Main's head and device state alone, where its layout says: what a big guest's main holds
 * between them (a 9-byte record per zero page) is not read before QEMU can be served. */
static int pg_snap_main_parts(struct pg_snap *s, const char *dir, const struct cp_file *fm,
                              char *err, size_t errlen)
{
    size_t head = 0, dev = 0;
    int rc =
        pg_main_load_parts(dir, fm, PG_MAX_PACKAGED, &s->main_stream, &head, &dev, err, errlen);

    s->main_read = head + dev;
    s->main_parts = 1;
    return rc ? rc : pg_main_parse_parts(&s->main, s->main_stream, head, dev, &s->map, err, errlen);
}

int pg_snap_open(struct pg_snap **out, const char *dir, const struct cp_file *files, int nfiles,
                 char *err, size_t errlen)
{
    const struct cp_file *fm = pg_find(files, nfiles, CP_MAIN, -1);
    struct pg_snap *s = calloc(1, sizeof(*s));
    struct pg_load loads[CP_MAX_CHANNELS];
    int rc = 0;

    *out = NULL;
    if (!s)
        return -ENOMEM;
    for (int i = 0; i < CP_MAX_CHANNELS; i++)
        s->chans[i].fd = -1;
    while (pg_find(files, nfiles, CP_CHANNEL, s->nchans))
        s->nchans++;
    if (!fm) {
        snprintf(err, errlen, "the manifest lists no main stream");
        rc = -EBADMSG;
        goto out;
    }
    double t0 = pg_now();
    pg_load_start(loads, s, dir, files, nfiles);
    rc = fm->layout.head ? pg_snap_main_parts(s, dir, fm, err, errlen)
                         : pg_snap_main_whole(s, dir, fm, err, errlen);
    if (!rc && s->main.dev_end - s->main.dev_start + PG_PACKAGED_EXTRA > PG_MAX_PACKAGED) {
        snprintf(err, errlen, "its device state (%zu bytes) is more than QEMU takes in one package",
                 s->main.dev_end - s->main.dev_start);
        rc = -E2BIG;
    }
    s->t_main = pg_now() - t0;
    /* main's failure first, as it was read first */
    rc = pg_load_join(loads, s, rc, err, errlen);
    s->t_channels = pg_now() - t0;
    for (int k = 0; !rc && k < s->nchans; k++)
        rc = pg_snap_index(s, k, s->index[k], err, errlen);
    /* With a layout, main's zero-page records were not read: a page no index lists is zero, as
     * after a full restore of a page QEMU never sent (map.h). */
    if (!rc && !fm->layout.head)
        rc = pg_map_check_complete(&s->map, err, errlen);
    if (!rc)
        pg_snap_count(s);
    s->t_map = pg_now() - t0;
out:
    if (rc)
        pg_snap_free(s);
    else
        *out = s;
    return rc;
}

void pg_snap_free(struct pg_snap *s)
{
    if (!s)
        return;
    for (int k = 0; k < CP_MAX_CHANNELS; k++) {
        if (s->chans[k].fd >= 0)
            pg_chan_close(&s->chans[k]);
        cp_index_free(s->index[k]);
    }
    pg_map_free(&s->map);
    free(s->main_stream);
    free(s);
}
