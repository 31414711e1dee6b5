/* test_pager: the pager's reading of a saved main stream (mainstream.c) and its page map
 * (map.c), on streams built here as QEMU 7.2 writes them with multifd on: where the header, the
 * RAM setup and the device state lie, which pages main says are zero, and every stream it must
 * refuse; its checked reads of channel bytes (verify.c) against a version 2 index's sums, a
 * damaged block refused by name and offset; fault logs read back as a prefetch order (hot.c);
 * its progress lines (events.c) as the job reads them; and its queue held until QEMU runs
 * (queue.c): requests pass, background readers wait. Table-driven; each failure
 * prints file:line; the exit status says if any failed. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcntl.h>
#include <xxhash.h>

#include "check.h"
#include "cp_main.h"
#include "cp_index.h"
#include "events.h"
#include "hot.h"
#include "mainstream.h"
#include "map.h"
#include "queue.h"
#include "snap.h"
#include "verify.h"

struct buf {
    uint8_t d[16384]; /* a stream with one page in main (V_PAGE) and its records */
    size_t len;
};

static void put(struct buf *b, const void *p, size_t n)
{
    assert(n <= sizeof(b->d) - b->len);
    memcpy(b->d + b->len, p, n);
    b->len += n;
}

static void be(struct buf *b, uint64_t v, int n)
{
    assert((size_t)n <= sizeof(b->d) - b->len);
    for (int i = n - 1; i >= 0; i--)
        b->d[b->len++] = (uint8_t)(v >> 8 * i);
}

static void name(struct buf *b, const char *s)
{
    be(b, strlen(s), 1);
    put(b, s, strlen(s));
}

/* What a case changes in the stream. */
enum variant {
    V_GOOD,
    V_NO_VMDESC,  /* suppress-vmdesc: the stream ends at QEMU_VM_EOF */
    V_PAGE,       /* a page with bytes in main */
    V_FILL,       /* a zero page filled with another byte */
    V_OTHER_ID,   /* an iterative section that is not RAM's */
    V_NO_FOOTER,  /* a RAM section without its footer */
    V_UNKNOWN,    /* a zero page of a block the setup did not list */
    V_CONT_FIRST, /* CONTINUE before any block was named */
    V_NO_EOF,     /* cut after the devices */
    V_NOT_QEVM,   /* another magic */
    V_COMMAND,    /* a command where devices should start */
    V_SWITCHOVER, /* QEMU 10.0: SWITCHOVER_START before RAM's end */
    V_PING,       /* another command there */
};

#define RAM_ID 2

static void zero(struct buf *b, const char *block, uint64_t off, int fill)
{
    be(b, off | CP_RAM_ZERO | (block ? 0 : CP_RAM_CONTINUE), 8);
    if (block)
        name(b, block);
    be(b, (uint64_t)fill, 1);
}

static void end_section(struct buf *b, enum variant v)
{
    be(b, CP_RAM_EOS, 8);
    if (v != V_NO_FOOTER) {
        be(b, CP_VM_SECTION_FOOTER, 1);
        be(b, RAM_ID, 4);
    }
}

/* The stream; *HEAD, *SETUP, *DEV, *EOF: where its parts start and end. */
static void build(struct buf *b, enum variant v, size_t *head, size_t *setup, size_t *dev,
                  size_t *eof)
{
    static const char json[] = "{\"page_size\": 4096, \"devices\": []}";

    b->len = 0;
    put(b, v == V_NOT_QEVM ? "QEVN" : "QEVM", 4);
    be(b, 3, 4);
    be(b, CP_VM_CONFIGURATION, 1);
    be(b, 13, 4);
    put(b, "pc-i440fx-7.2", 13);
    *head = b->len;
    be(b, CP_VM_SECTION_START, 1);
    be(b, RAM_ID, 4);
    name(b, "ram");
    be(b, 0, 4);
    be(b, 4, 4);
    be(b, (0x4000 + 0x2000) | CP_RAM_MEM_SIZE, 8);
    name(b, "pc.ram");
    be(b, 0x4000, 8);
    name(b, "pc.rom");
    be(b, 0x2000, 8);
    end_section(b, V_GOOD);
    *setup = b->len;
    be(b, CP_VM_SECTION_PART, 1);
    be(b, v == V_OTHER_ID ? RAM_ID + 1 : RAM_ID, 4);
    zero(b, v == V_CONT_FIRST ? NULL : v == V_UNKNOWN ? "vga.vram" : "pc.ram", 0, 0);
    zero(b, NULL, 0x1000, v == V_FILL ? 0x55 : 0);
    end_section(b, v);
    be(b, CP_VM_SECTION_PART, 1);
    be(b, RAM_ID, 4);
    zero(b, NULL, 0x2000, 0); /* CONTINUE across sections: still pc.ram */
    if (v == V_PAGE) {
        be(b, 0x3000 | CP_RAM_PAGE | CP_RAM_CONTINUE, 8);
        for (int i = 0; i < 4096; i += 8)
            be(b, 0, 8);
    }
    zero(b, "pc.rom", 0x1000, 0);
    be(b, CP_RAM_MULTIFD_FLUSH, 8);
    end_section(b, V_GOOD);
    if (v == V_SWITCHOVER || v == V_PING) {
        be(b, CP_VM_COMMAND, 1);
        be(b, v == V_PING ? 2 : 11, 2);
        be(b, v == V_PING ? 4 : 0, 2);
        if (v == V_PING)
            be(b, 7, 4);
    }
    be(b, CP_VM_SECTION_END, 1);
    be(b, RAM_ID, 4);
    end_section(b, V_GOOD);
    *dev = b->len;
    be(b, v == V_COMMAND ? CP_VM_COMMAND : CP_VM_SECTION_FULL, 1);
    be(b, 3, 4);
    name(b, "timer");
    be(b, 0, 4);
    be(b, 2, 4);
    be(b, 0x1122334455667788ull, 8);
    be(b, CP_VM_SECTION_FOOTER, 1);
    be(b, 3, 4);
    *eof = b->len;
    if (v == V_NO_EOF)
        return;
    be(b, CP_VM_EOF, 1);
    if (v == V_NO_VMDESC)
        return;
    be(b, CP_VM_VMDESCRIPTION, 1);
    be(b, sizeof(json) - 1, 4);
    put(b, json, sizeof(json) - 1);
}

/* A stream of variant V built and parsed, cut after CUT bytes if CUT is not 0. */
struct parsed {
    struct buf b;
    struct pg_map map;
    struct pg_main mn;
    size_t head, setup, dev, eof;
    char err[256];
    int rc;
};

static void parse(struct parsed *p, enum variant v, size_t cut)
{
    memset(p, 0, sizeof(*p));
    build(&p->b, v, &p->head, &p->setup, &p->dev, &p->eof);
    p->rc = pg_main_parse(&p->mn, p->b.d, cut ? cut : p->b.len, &p->map, p->err, sizeof(p->err));
}

static void test_good(enum variant v)
{
    static struct parsed p;
    struct pg_map *map = &p.map;
    char *err = p.err;

    parse(&p, v, 0);
    CHECK(p.rc == 0, "%s", err);
    CHECK(p.mn.head_end == p.head && p.mn.setup_end == p.setup, "head %zu setup %zu", p.mn.head_end,
          p.mn.setup_end);
    CHECK(p.mn.dev_start == p.dev && p.mn.dev_end == p.eof && p.mn.ram_section == RAM_ID,
          "devices %zu-%zu, section %u", p.mn.dev_start, p.mn.dev_end, p.mn.ram_section);
    CHECK(map->nblocks == 2 && strcmp(map->blocks[1].name, "pc.rom") == 0, "%d blocks",
          map->nblocks);
    CHECK(pg_map_npages(map) == 6, "%llu pages", (unsigned long long)pg_map_npages(map));
    /* pc.ram 0-2 and pc.rom 1 zero in main; pc.ram 3 and pc.rom 0 are left to the indexes. */
    CHECK(map->blocks[0].ent[2] == PG_ZERO && map->blocks[0].ent[3] == 0, "pc.ram's zero pages");
    CHECK(map->blocks[1].ent[0] == 0 && map->blocks[1].ent[1] == PG_ZERO, "pc.rom's zero pages");
    CHECK(pg_map_check_complete(map, err, sizeof(p.err)) == -ENODATA, "%s", err);
    CHECK(strstr(err, "offset 12288 of RAM block 'pc.ram'") != NULL, "%s", err);
    CHECK(pg_map_set(map, 0, 0x3000, pg_map_data(5, 1 << 20), err, sizeof(p.err)) == 0, "%s", err);
    CHECK(pg_map_set(map, 1, 0, pg_map_data(0, 64), err, sizeof(p.err)) == 0, "%s", err);
    CHECK(pg_map_check_complete(map, err, sizeof(p.err)) == 0, "%s", err);
    CHECK(pg_ent_channel(map->blocks[0].ent[3]) == 5 &&
              pg_ent_offset(map->blocks[0].ent[3]) == 1 << 20,
          "entry %llx", (unsigned long long)map->blocks[0].ent[3]);
    CHECK(pg_map_set(map, 1, 0x2000, PG_ZERO, err, sizeof(p.err)) == -ERANGE, "%s", err);
    pg_map_free(map);
}

static const struct {
    enum variant v;
    const char *why;
} refused[] = {
    {V_PAGE, "other than a zero page"},
    {V_FILL, "a byte other than 0"},
    {V_OTHER_ID, "other than RAM's"},
    {V_NO_FOOTER, "without its footer"},
    {V_UNKNOWN, "unknown RAM block"},
    {V_CONT_FIRST, "unknown RAM block"},
    {V_NO_EOF, "no QEMU_VM_EOF"},
    {V_NOT_QEVM, "not a QEMU migration stream"},
    {V_COMMAND, "a command other than SWITCHOVER_START"},
    {V_PING, "a command other than SWITCHOVER_START"},
};

/* ---- main's layout ---- */

/* BYTES (of LEN) into a new file under /tmp; its descriptor, unlinked. */
static int temp_file(const uint8_t *bytes, size_t len)
{
    char path[] = "/tmp/test_pager.XXXXXX";
    int fd = mkstemp(path);

    if (fd < 0)
        return -1;
    unlink(path);
    if (write(fd, bytes, len) != (ssize_t)len) {
        close(fd);
        return -1;
    }
    return fd;
}

/* What a save records of a stream in a file (cp_main_layout_read), and what the page server
 * makes of the two parts the layout names alone (pg_main_parse_parts). */
static void test_layout_of(const uint8_t *d, size_t len, size_t setup, size_t dev, size_t eof)
{
    struct cp_main_layout l;
    static struct pg_map map;
    struct pg_main mn;
    uint8_t parts[16384];
    char err[256] = "";
    int fd = temp_file(d, len), rc;

    CHECK(fd >= 0, "temp file");
    if (fd < 0)
        return;
    rc = cp_main_layout_read(fd, len, &l, err, sizeof(err));
    close(fd);
    CHECK(rc == 0, "layout of %zu bytes: %s", len, err);
    CHECK(l.head == setup && l.devices == dev && l.eof == eof,
          "layout %llu %llu %llu, wanted %zu %zu %zu", (unsigned long long)l.head,
          (unsigned long long)l.devices, (unsigned long long)l.eof, setup, dev, eof);
    CHECK(l.head_xxh3 == XXH3_64bits(d, setup) && l.devices_xxh3 == XXH3_64bits(d + dev, eof - dev),
          "the parts' sums");
    if (rc || setup + eof - dev > sizeof(parts))
        return;
    memcpy(parts, d, setup);
    memcpy(parts + setup, d + dev, eof - dev);
    memset(&map, 0, sizeof(map));
    rc = pg_main_parse_parts(&mn, parts, setup, eof - dev, &map, err, sizeof(err));
    CHECK(rc == 0, "parts: %s", err);
    CHECK(mn.setup_end == setup && mn.dev_start == setup && mn.dev_end == setup + eof - dev &&
              mn.ram_section == RAM_ID && mn.head_end < setup,
          "parts: head %zu setup %zu devices %zu-%zu", mn.head_end, mn.setup_end, mn.dev_start,
          mn.dev_end);
    CHECK(map.nblocks == 2 && map.blocks[0].ent[0] == 0, "parts: %d blocks, no zero page marked",
          map.nblocks);
    pg_map_free(&map);
    /* A head that does not end with the setup section, devices that do not start one. */
    CHECK(pg_main_parse_parts(&mn, parts, setup - 1, eof - dev, &map, err, sizeof(err)) == -EBADMSG,
          "a head cut short was taken");
    pg_map_free(&map);
    CHECK(pg_main_parse_parts(&mn, parts, setup, eof - dev, &map, err, sizeof(err)) == 0, "%s",
          err);
    pg_map_free(&map);
    parts[setup] ^= 0xff;
    CHECK(pg_main_parse_parts(&mn, parts, setup, eof - dev, &map, err, sizeof(err)) == -EBADMSG &&
              strstr(err, "does not start a section"),
          "devices not a section: '%s'", err);
    pg_map_free(&map);
}

static void test_layout(void)
{
    static struct parsed p;
    static uint8_t big[(2u << 20) + 16384];
    struct cp_main_layout l;
    size_t len, nrec = (1u << 20) / 9 + 1000; /* the zero records span more than one window */
    char err[256] = "";
    int fd;

    build(&p.b, V_GOOD, &p.head, &p.setup, &p.dev, &p.eof);
    test_layout_of(p.b.d, p.b.len, p.setup, p.dev, p.eof);
    build(&p.b, V_NO_VMDESC, &p.head, &p.setup, &p.dev, &p.eof);
    test_layout_of(p.b.d, p.b.len, p.setup, p.dev, p.eof);
    /* The head, a RAM section of NREC zero records of one page, then the rest as before. */
    build(&p.b, V_GOOD, &p.head, &p.setup, &p.dev, &p.eof);
    memcpy(big, p.b.d, p.setup);
    len = p.setup;
    big[len++] = CP_VM_SECTION_PART;
    memcpy(big + len, (uint8_t[]){0, 0, 0, RAM_ID}, 4);
    len += 4;
    for (size_t i = 0; i < nrec; i++, len += 9) {
        memset(big + len, 0, 9);
        big[len + 7] = CP_RAM_ZERO | (i ? CP_RAM_CONTINUE : 0);
        if (!i) {
            memcpy(big + len + 8, "\6pc.ram", 7);
            len += 7;
        }
    }
    memcpy(big + len,
           (uint8_t[]){0, 0, 0, 0, 0, 0, 0, CP_RAM_EOS, CP_VM_SECTION_FOOTER, 0, 0, 0, RAM_ID}, 13);
    len += 13;
    memcpy(big + len, p.b.d + p.setup, p.b.len - p.setup);
    len += p.b.len - p.setup;
    test_layout_of(big, len, p.setup, p.dev + (len - p.b.len), p.eof + (len - p.b.len));
    /* What a walk of the whole stream refuses, a scan of a file refuses too: no layout. */
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        build(&p.b, refused[i].v, &p.head, &p.setup, &p.dev, &p.eof);
        fd = temp_file(p.b.d, p.b.len);
        CHECK(fd >= 0 && cp_main_layout_read(fd, p.b.len, &l, err, sizeof(err)) == -EBADMSG &&
                  strstr(err, refused[i].why) && l.head == 0,
              "layout of variant %d: '%s'", refused[i].v, err);
        if (fd >= 0)
            close(fd);
    }
}

/* The lines of the --events contract, byte for byte: pushes at most every 100 ms (unless
 * forced), a fail on one line, and nothing after it. */
static void test_events(void)
{
    struct pg_events ev;
    char got[512] = "";
    int fds[2];
    ssize_t n;

    if (pipe(fds)) {
        CHECK(0, "pipe");
        return;
    }
    pg_events_init(&ev, fds[1]);
    pg_events_push(&ev, 0, 10, 0);
    pg_events_push(&ev, 1, 10, 0); /* within 100 ms of the last: dropped */
    pg_events_running(&ev);
    pg_events_push(&ev, 10, 10, 1);
    pg_events_done(&ev, 1.25);
    pg_events_fail(&ev, "checksum channel-2.idx\noffset 123");
    pg_events_done(&ev, 2);
    pg_events_running(&ev);
    pg_events_destroy(&ev);
    close(fds[1]);
    n = read(fds[0], got, sizeof(got) - 1);
    close(fds[0]);
    CHECK(n > 0 && strcmp(got, "push 0 10\nrunning\npush 10 10\ndone 1.250\n"
                               "fail checksum channel-2.idx offset 123\n") == 0,
          "events: '%s'", got);
    /* No descriptor: every call is a no-op. */
    pg_events_init(&ev, -1);
    pg_events_fail(&ev, "x");
    pg_events_destroy(&ev);
    pg_events_running(NULL);
}

/* ---- checked reads ---- */

#define VSIZE                                                                                      \
    (3 * (1u << CP_INDEX_SUM_SHIFT) + 5000) /* three blocks and a tail: a page and a part */

static void le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

/* DIR/channel-0 of VSIZE bytes of DATA and its version 2 index with the sums of DATA. */
static int write_channel(const char *dir, const uint8_t *data)
{
    static uint8_t idx[24 + 4 * 24 + 24];
    uint64_t bs = 1ull << CP_INDEX_SUM_SHIFT, n = (VSIZE + bs - 1) / bs;
    size_t len = 0;
    char path[512];
    FILE *f;

    memset(idx, 0, sizeof(idx));
    memcpy(idx, CP_INDEX_MAGIC, 8);
    le(idx + 8, 2, 4);
    le(idx + 12, CP_INDEX_PAGE_SIZE, 4);
    le(idx + 16, CP_INDEX_SUM_SHIFT, 4);
    len = 24;
    for (uint64_t k = 0; k < n; k++, len += 24) {
        size_t blen = VSIZE - k * bs < bs ? VSIZE - k * bs : bs;
        le(idx + len, CP_INDEX_SUM, 4);
        le(idx + len + 8, k, 8);
        le(idx + len + 16, XXH3_64bits(data + k * bs, blen), 8);
    }
    le(idx + len, CP_INDEX_END, 4);
    le(idx + len + 16, VSIZE, 8);
    len += 24;
    snprintf(path, sizeof(path), "%s/channel-0.idx", dir);
    if (!(f = fopen(path, "w")) || fwrite(idx, 1, len, f) != len || fclose(f))
        return -1;
    snprintf(path, sizeof(path), "%s/channel-0", dir);
    if (!(f = fopen(path, "w")) || fwrite(data, 1, VSIZE, f) != VSIZE || fclose(f))
        return -1;
    return 0;
}

static struct pg_snap *open_channel(const char *dir, char *err, size_t errlen)
{
    struct cp_file f = {.name = "channel-0", .kind = CP_CHANNEL, .channel = 0, .size = VSIZE};
    struct pg_snap *s = calloc(1, sizeof(*s));
    char path[512];

    for (int i = 0; s && i < CP_MAX_CHANNELS; i++)
        s->chans[i].fd = -1;
    snprintf(path, sizeof(path), "%s/channel-0.idx", dir);
    if (!s || pg_chan_open(&s->chans[0], dir, &f, err, errlen) ||
        cp_index_load(&s->index[0], path, err, errlen)) {
        pg_snap_free(s);
        return NULL;
    }
    s->nchans = 1;
    return s;
}

/* Flips byte OFF of DIR/channel-0. */
static void flip_byte(const char *dir, uint64_t off)
{
    char path[512];
    uint8_t b = 0;
    int fd;

    snprintf(path, sizeof(path), "%s/channel-0", dir);
    fd = open(path, O_RDWR);
    CHECK(fd >= 0 && pread(fd, &b, 1, (off_t)off) == 1, "read %s", path);
    b ^= 0xff;
    CHECK(pwrite(fd, &b, 1, (off_t)off) == 1, "write %s", path);
    close(fd);
}

static const struct {
    const char *what;
    uint64_t off;
    size_t len;
} vreads[] = {
    {"a page in a block", 100, 4096},
    {"a page across two blocks", (1u << CP_INDEX_SUM_SHIFT) - 2000, 4096},
    {"the whole stream", 0, VSIZE},
    {"the tail", VSIZE - 10, 10},
    {"two whole blocks and a part", 1u << CP_INDEX_SUM_SHIFT, (2u << CP_INDEX_SUM_SHIFT) + 5},
};

static void test_verify(void)
{
    char dir[] = "/tmp/test_pager.XXXXXX", err[1024], path[600];
    static uint8_t data[VSIZE], out[VSIZE];
    const uint64_t bs = 1ull << CP_INDEX_SUM_SHIFT;
    struct pg_vcache vc, fresh;
    struct pg_snap *s = NULL;
    uint8_t *al;
    int rc;

    for (size_t i = 0; i < VSIZE; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 13);
    if (!mkdtemp(dir) || write_channel(dir, data) || !(s = open_channel(dir, err, sizeof(err)))) {
        CHECK(0, "setting up %s: %s", dir, err);
        goto out;
    }
    pg_vcache_init(&vc);
    for (size_t i = 0; i < sizeof(vreads) / sizeof(vreads[0]); i++) {
        memset(out, 0, sizeof(out));
        rc = pg_verify_read(s, 0, vreads[i].off, vreads[i].len, out, &vc, err, sizeof(err));
        CHECK(rc == 0 && memcmp(out, data + vreads[i].off, vreads[i].len) == 0, "%s: %d %s",
              vreads[i].what, rc, err);
    }
    rc = pg_verify_read(s, 0, VSIZE - 10, 11, out, &vc, err, sizeof(err));
    CHECK(rc == -EBADMSG && strstr(err, "past its end"), "past the end: %d %s", rc, err);
    /* Into an aligned buffer, as the push reads: O_DIRECT where /tmp has it, and the short last
     * block's tail through the cache. */
    if ((al = aligned_alloc(PG_DIO_ALIGN,
                            (VSIZE + PG_DIO_ALIGN - 1) / PG_DIO_ALIGN * PG_DIO_ALIGN))) {
        rc = pg_verify_read(s, 0, 0, VSIZE, al, &vc, err, sizeof(err));
        CHECK(rc == 0 && memcmp(al, data, VSIZE) == 0, "aligned whole stream (O_DIRECT %s): %d %s",
              s->chans[0].dfd >= 0 ? "on" : "refused", rc, err);
        free(al);
    }

    /* Block 1 damaged on disk after VC checked it (a page of it read last): VC serves the bytes
     * it checked, a fresh reader refuses the block, naming its offset. */
    rc = pg_verify_read(s, 0, bs + 8192, 4096, out, &vc, err, sizeof(err));
    CHECK(rc == 0, "block 1: %d %s", rc, err);
    flip_byte(dir, bs + 7);
    rc = pg_verify_read(s, 0, bs + 4096, 4096, out, &vc, err, sizeof(err));
    CHECK(rc == 0 && memcmp(out, data + bs + 4096, 4096) == 0, "cached block: %d %s", rc, err);
    pg_vcache_init(&fresh);
    rc = pg_verify_read(s, 0, bs + 4096, 4096, out, &fresh, err, sizeof(err));
    snprintf(path, sizeof(path), "checksum channel-0 offset %llu", (unsigned long long)bs);
    CHECK(rc == -EBADMSG && strcmp(err, path) == 0, "damaged block: %d '%s'", rc, err);
    /* Neither wholly (checked in place) nor across the damage: every block is checked. */
    rc = pg_verify_read(s, 0, 0, 2 * bs, out, &fresh, err, sizeof(err));
    CHECK(rc == -EBADMSG && strcmp(err, path) == 0, "whole blocks: %d '%s'", rc, err);
    rc = pg_verify_read(s, 0, bs - 100, 200, out, &fresh, err, sizeof(err));
    CHECK(rc == -EBADMSG && strcmp(err, path) == 0, "across: %d '%s'", rc, err);
    /* The blocks around it still serve. */
    rc = pg_verify_read(s, 0, 2 * bs + 1, 4096, out, &fresh, err, sizeof(err));
    CHECK(rc == 0 && memcmp(out, data + 2 * bs + 1, 4096) == 0, "block 2: %d %s", rc, err);
    /* The short last block, damaged. */
    flip_byte(dir, VSIZE - 1);
    rc = pg_verify_read(s, 0, VSIZE - 1, 1, out, &fresh, err, sizeof(err));
    snprintf(path, sizeof(path), "checksum channel-0 offset %llu", (unsigned long long)(3 * bs));
    CHECK(rc == -EBADMSG && strcmp(err, path) == 0, "tail: %d '%s'", rc, err);
    pg_vcache_free(&vc);
    pg_vcache_free(&fresh);
out:
    pg_snap_free(s);
    snprintf(path, sizeof(path), "%s/channel-0", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/channel-0.idx", dir);
    unlink(path);
    rmdir(dir);
}

/* A fault log read back: the data pages it names, once each, in channel and stream order; lines
 * naming zero pages, other blocks, unaligned or out-of-range offsets, or nothing, skipped. */
static void test_hot(void)
{
    static const char log[] = "pc.ram 3000\npc.ram 1000\npc.ram 3000\npc.ram 2000\n"
                              "nosuch 0\npc.ram 1234\npc.ram 100000\nnot a line\nvga 0\n"
                              "pc.ram 0\n";
    static const struct pg_hot_page want[] = {{0, 0x3000}, {0, 0x1000}, {0, 0}, {1, 0}};
    char path[] = "/tmp/test_pager_hot.XXXXXX", err[512] = "";
    struct pg_snap *s = calloc(1, sizeof(*s));
    struct pg_hot h = {0};
    int fd = mkstemp(path), rc = -1;

    if (!s || fd < 0 || write(fd, log, sizeof(log) - 1) != (ssize_t)sizeof(log) - 1 ||
        pg_map_add(&s->map, "pc.ram", 6, 16 * PG_PAGE_SIZE, err, sizeof(err)) ||
        pg_map_add(&s->map, "vga", 3, 4 * PG_PAGE_SIZE, err, sizeof(err))) {
        CHECK(0, "setting up: %s", err);
        goto out;
    }
    /* pc.ram 0x3000 lies first in channel 0, then 0x1000, then 0; vga's page in channel 1. */
    pg_map_set(&s->map, 0, 0x3000, pg_map_data(0, 100), err, sizeof(err));
    pg_map_set(&s->map, 0, 0x1000, pg_map_data(0, 9000), err, sizeof(err));
    pg_map_set(&s->map, 0, 0, pg_map_data(0, 20000), err, sizeof(err));
    pg_map_set(&s->map, 0, 0x2000, PG_ZERO, err, sizeof(err));
    pg_map_set(&s->map, 1, 0, pg_map_data(1, 64), err, sizeof(err));
    rc = pg_hot_load(&h, path, s, err, sizeof(err));
    CHECK(rc == 0 && h.n == sizeof(want) / sizeof(want[0]), "%d, %zu pages: %s", rc, h.n, err);
    for (size_t i = 0; rc == 0 && i < h.n && i < sizeof(want) / sizeof(want[0]); i++)
        CHECK(h.pages[i].block == want[i].block && h.pages[i].ram_offset == want[i].ram_offset,
              "page %zu: block %d offset %llx", i, h.pages[i].block,
              (unsigned long long)h.pages[i].ram_offset);
    pg_hot_free(&h);
    rc = pg_hot_load(&h, "/nonexistent/log", s, err, sizeof(err));
    CHECK(rc == -ENOENT && h.n == 0, "a missing log: %d", rc);
out:
    if (fd >= 0)
        close(fd);
    unlink(path);
    if (s)
        pg_map_free(&s->map);
    free(s);
}

struct gate {
    struct pg_queue *q;
    atomic_int passed; /* 1 + what pg_queue_wait_released returned */
};

static void *reader(void *arg)
{
    struct gate *g = arg;

    atomic_store(&g->passed, 1 + pg_queue_wait_released(g->q));
    return NULL;
}

/* A held queue gives the writer its requests and keeps a reader at the gate until the release
 * (or a stop, which cancels it). */
static void test_queue_hold(void)
{
    struct pg_queue q;
    struct gate g = {&q, 0};
    struct pg_req r = {.block = 1, .start = 8192, .len = 4096}, got;
    pthread_t t;

    for (int stop = 0; stop < 2; stop++) {
        pg_queue_init(&q, 2, 1);
        pg_queue_hold(&q);
        atomic_store(&g.passed, 0);
        CHECK(pthread_create(&t, NULL, reader, &g) == 0, "a reader thread");
        CHECK(pg_queue_put_req(&q, &r) == 0, "a request while held");
        CHECK(pg_queue_req_while_held(&q, &got) == 1 && got.start == 8192 && got.block == 1,
              "the request passes the hold");
        usleep(50 * 1000);
        CHECK(atomic_load(&g.passed) == 0, "the reader waited while held");
        if (stop)
            pg_queue_stop(&q);
        else
            pg_queue_release(&q);
        pthread_join(t, NULL);
        CHECK(atomic_load(&g.passed) == 1 + (stop ? -ECANCELED : 0), "reader after %s: %d",
              stop ? "stop" : "release", atomic_load(&g.passed) - 1);
        CHECK(pg_queue_req_while_held(&q, &got) == 0, "no wait once %s",
              stop ? "stopped" : "released");
        pg_queue_destroy(&q);
    }
}

/* A served chunk comes back to the readers with its buffers, once. */
static void test_queue_recycle(void)
{
    struct pg_queue q;
    struct pg_chunk *c = calloc(1, sizeof(*c)), *got;

    pg_queue_init(&q, 2, 1);
    CHECK(pg_queue_spare(&q) == NULL, "a spare chunk before any was served");
    if (c && (c->buf = malloc(16)) && (c->pages = malloc(sizeof(*c->pages)))) {
        c->cap = c->npages = 1;
        pg_queue_recycle(&q, c);
        got = pg_queue_spare(&q);
        CHECK(got == c && got->npages == 0 && got->buf && got->pages && got->cap == 1,
              "a recycled chunk keeps its buffers, its pages emptied");
        CHECK(pg_queue_spare(&q) == NULL, "a recycled chunk taken twice");
        c = NULL;
        pg_queue_recycle(&q, got); /* the queue frees it: valgrind_test_pager sees no leak */
    }
    pg_chunk_free(c);
    pg_queue_destroy(&q);
}

int main(void)
{
    static struct parsed p;

    test_good(V_GOOD);
    test_good(V_NO_VMDESC);
    test_good(V_SWITCHOVER);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        parse(&p, refused[i].v, 0);
        CHECK(p.rc == -EBADMSG && strstr(p.err, refused[i].why),
              "variant %d: rc %d, '%s' (wanted '%s')", refused[i].v, p.rc, p.err, refused[i].why);
        pg_map_free(&p.map);
    }
    /* Cut anywhere before its end, the stream is refused, never read past the cut. */
    for (size_t cut = 1; cut < 200; cut++) {
        parse(&p, V_NO_VMDESC, cut);
        CHECK(p.rc != 0 || cut > p.dev, "cut at %zu", cut);
        pg_map_free(&p.map);
    }
    test_layout();
    test_events();
    test_verify();
    test_hot();
    test_queue_hold();
    test_queue_recycle();
    return check_result("test_pager");
}
