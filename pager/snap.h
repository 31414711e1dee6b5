/* snap: a snapshot opened for serving: its main stream parsed, its channel files open, and the
 * page map built from the page indexes (and main's zero pages, or with main's layout every page
 * no index lists as zero) and checked complete. Everything that can refuse a
 * snapshot happens here, before any QEMU is touched. Opened by one thread, then read-only. */
#ifndef SAVEFS_PAGER_SNAP_H
#define SAVEFS_PAGER_SNAP_H

#include <stddef.h>
#include <stdint.h>

#include "copier.h"
#include "cp_index.h"
#include "mainstream.h"
#include "map.h"
#include "source.h"

struct pg_snap {
    uint8_t *main_stream;
    struct pg_main main;
    struct pg_map map;
    struct pg_chan chans[CP_MAX_CHANNELS];
    struct cp_index *index[CP_MAX_CHANNELS]; /* each channel's, for reading it in order */
    int nchans;
    uint64_t data_pages, zero_pages;
    size_t main_read; /* bytes of main read: all of them, or its head and device state */
    int main_parts;   /* 1: those alone, as its layout names them */
    double t_main, t_channels, t_map; /* seconds until main was read, the channels, the map */
};

/* Opens the snapshot in DIR whose files (main, channels, indexes) FILES lists as its manifest
 * does (read during the call only). 0, or -EBADMSG / -ENODATA / -errno with ERR saying what
 * cannot be served. */
int pg_snap_open(struct pg_snap **out, const char *dir, const struct cp_file *files, int nfiles,
                 char *err, size_t errlen);
void pg_snap_free(struct pg_snap *s);

#endif
