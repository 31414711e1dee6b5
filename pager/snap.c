/* snap: opening a snapshot for serving (see snap.h). */
#include "snap.h"

#include "wire.h"

#include <errno.h>
#include <inttypes.h>
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

static int pg_snap_channel(struct pg_snap *s, const char *dir, const struct cp_file *files,
                           int nfiles, int k, char *err, size_t errlen)
{
    const struct cp_file *f = pg_find(files, nfiles, CP_CHANNEL, k);
    const struct cp_file *fi = pg_find(files, nfiles, CP_INDEX, k);
    struct cp_index *ix = NULL;
    char path[4096];
    int rc;

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
    if ((rc = pg_chan_open(&s->chans[k], dir, f, err, errlen)))
        return rc;
    snprintf(path, sizeof(path), "%s/%s", dir, fi->name);
    if ((rc = cp_index_load(&ix, path, err, errlen)))
        return rc;
    if (cp_index_xxh3(ix) != fi->xxh3) {
        snprintf(err, errlen, "%s: its checksum does not match the manifest", fi->name);
        rc = -EBADMSG;
    } else if (cp_index_version(ix) < 2) {
        /* Served unchecked, a damaged block would reach the guest before the whole file's
         * checksum could tell: such snapshots restore fully. */
        snprintf(err, errlen,
                 "%s is a version %u page index, without a checksum per block: only a full "
                 "restore can read it",
                 fi->name, cp_index_version(ix));
        rc = -ENODATA;
    } else if (cp_index_stream_size(ix) != s->chans[k].stream_size) {
        snprintf(err, errlen, "%s covers %" PRIu64 " stream bytes of %" PRIu64, fi->name,
                 cp_index_stream_size(ix), s->chans[k].stream_size);
        rc = -ENODATA;
    }
    if (!rc)
        rc = pg_snap_index(s, k, ix, err, errlen);
    s->index[k] = ix;
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

int pg_snap_open(struct pg_snap **out, const char *dir, const struct cp_file *files, int nfiles,
                 char *err, size_t errlen)
{
    const struct cp_file *fm = pg_find(files, nfiles, CP_MAIN, -1);
    struct pg_snap *s = calloc(1, sizeof(*s));
    size_t len = 0;
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
    if ((rc = pg_main_load(dir, fm, &s->main_stream, &len, err, errlen)) ||
        (rc = pg_main_parse(&s->main, s->main_stream, len, &s->map, err, errlen)))
        goto out;
    if (!rc && s->main.dev_end - s->main.dev_start + PG_PACKAGED_EXTRA > PG_MAX_PACKAGED) {
        snprintf(err, errlen, "its device state (%zu bytes) is more than QEMU takes in one package",
                 s->main.dev_end - s->main.dev_start);
        rc = -E2BIG;
    }
    for (int k = 0; !rc && k < s->nchans; k++)
        rc = pg_snap_channel(s, dir, files, nfiles, k, err, errlen);
    if (!rc)
        rc = pg_map_check_complete(&s->map, err, errlen);
    if (!rc)
        pg_snap_count(s);
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
