/* mainstream: walks a saved main stream (cp_main.h). The configuration and the device sections
 * are opaque vmstate that only QEMU can parse: the first is known by what follows it (the RAM
 * section's start), the second by where it ends (QEMU_VM_EOF, before the trailing JSON
 * description when there is one). The walk reads through a window, so that a scan of a file
 * holds one window of it whatever the guest's size (a whole stream in memory is one window). */
#include "cp_main.h"
#include "stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define CP_QEVM_MAGIC   0x5145564du
#define CP_QEVM_VERSION 3u
#define CP_RAM_VERSION  4u
#define CP_PAGE_SIZE    4096u
/* cp_main_scan's window: the head must lie in its first, the description in its last. */
#define CP_MAIN_WINDOW (1u << 20)
/* No JSON description is longer. */
#define CP_MAIN_MAX_DESC (1u << 24)

struct mblock {
    size_t len;
    char name[255];
    uint64_t length;
};

struct mrd {
    const uint8_t *p; /* stream bytes [base, base + len) */
    size_t len, pos;
    uint64_t base;
    int fd;        /* cp_main_scan's file (read into buf), else -1: P is the whole stream */
    uint64_t size; /* ... and its size */
    uint8_t *buf;
    int bad;
    int block; /* the RAM block named last: CONTINUE records go on in it, across sections */
    int nblocks;
    struct mblock *blocks;
    const struct cp_main_sink *sink;
};

/* Slides a file's window to start at POS and fills it as far as the file goes; a whole stream
 * in memory stays as it is. */
static void mrd_slide(struct mrd *r)
{
    if (r->fd < 0)
        return;
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->base += r->pos;
    r->len -= r->pos;
    r->pos = 0;
    uint64_t left = r->size - r->base - r->len;
    size_t want = CP_MAIN_WINDOW - r->len < left ? CP_MAIN_WINDOW - r->len : (size_t)left;
    ssize_t got = cp_pread_full(r->fd, r->buf + r->len, want, r->base + r->len);
    if (got > 0)
        r->len += (size_t)got;
}

/* N bytes readable at POS, sliding the window if needed; else the reader goes bad. */
static int mrd_need(struct mrd *r, size_t n)
{
    if (r->bad)
        return -1;
    if (r->len - r->pos < n)
        mrd_slide(r);
    if (r->len - r->pos >= n)
        return 0;
    r->bad = 1;
    return -1;
}

static uint64_t mrd_be(struct mrd *r, int n)
{
    uint64_t v = 0;

    if (mrd_need(r, (size_t)n))
        return 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | r->p[r->pos++];
    return v;
}

/* N bytes at POS, valid until the next read. */
static const char *mrd_bytes(struct mrd *r, size_t n)
{
    const char *s;

    if (mrd_need(r, n))
        return NULL;
    s = (const char *)r->p + r->pos;
    r->pos += n;
    return s;
}

static int mrd_bad(const struct mrd *r, char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "main stream, offset %llu: %s", (unsigned long long)(r->base + r->pos),
             what);
    return -EBADMSG;
}

static int mrd_find(const struct mrd *r, const char *name, size_t n)
{
    for (int i = 0; i < r->nblocks; i++)
        if (r->blocks[i].len == n && memcmp(r->blocks[i].name, name, n) == 0)
            return i;
    return -1;
}

/* The RAM blocks of the setup section: names and lengths until they add up to TOTAL. */
static int cp_main_blocks(struct mrd *r, uint64_t total, char *err, size_t errlen)
{
    while (total && !r->bad) {
        size_t n = (size_t)mrd_be(r, 1);
        const char *name = mrd_need(r, n + 8) ? NULL : mrd_bytes(r, n);
        uint64_t length = mrd_be(r, 8);
        struct mblock *b = &r->blocks[r->nblocks];
        int rc;

        if (r->bad || length > total)
            return mrd_bad(r, err, errlen, "RAM block list cut short or too long");
        if (r->nblocks == CP_MAIN_MAX_BLOCKS || n == 0 || length % CP_PAGE_SIZE ||
            mrd_find(r, name, n) >= 0)
            return mrd_bad(r, err, errlen, "a RAM block that cannot be served");
        memcpy(b->name, name, n);
        b->len = n;
        b->length = length;
        r->nblocks++;
        if (r->sink && r->sink->block &&
            (rc = r->sink->block(r->sink->opaque, b->name, n, length, err, errlen)))
            return rc;
        total -= length;
    }
    return 0;
}

/* RAM records up to and including EOS: the setup's block list, zero pages, sync points. A page
 * with bytes in main means a save this reader does not understand. */
static int cp_main_records(struct mrd *r, char *err, size_t errlen)
{
    for (;;) {
        uint64_t v = mrd_be(r, 8), addr = v & ~0xfffull;
        unsigned flags = (unsigned)(v & 0xfff);
        int rc;

        if (r->bad)
            return mrd_bad(r, err, errlen, "RAM section cut short");
        if (flags == CP_RAM_EOS)
            return 0;
        if (flags == CP_RAM_MEM_SIZE) {
            if ((rc = cp_main_blocks(r, addr, err, errlen)))
                return rc;
            continue;
        }
        if (flags == CP_RAM_MULTIFD_FLUSH)
            continue;
        if ((flags & ~CP_RAM_CONTINUE) != CP_RAM_ZERO)
            return mrd_bad(r, err, errlen,
                           "a RAM record other than a zero page (not a multifd save)");
        if (!(flags & CP_RAM_CONTINUE)) {
            size_t n = (size_t)mrd_be(r, 1);
            const char *name = mrd_bytes(r, n);
            r->block = r->bad ? -1 : mrd_find(r, name, n);
        }
        if (r->block < 0)
            return mrd_bad(r, err, errlen, "a zero page of an unknown RAM block");
        if (mrd_be(r, 1) != 0)
            return mrd_bad(r, err, errlen, "a page filled with a byte other than 0");
        if (addr >= r->blocks[r->block].length)
            return mrd_bad(r, err, errlen, "a zero page outside its RAM block");
        if (r->sink && r->sink->zero &&
            (rc = r->sink->zero(r->sink->opaque, r->block, addr, err, errlen)))
            return rc;
    }
}

static int cp_main_footer(struct mrd *r, uint32_t id, char *err, size_t errlen)
{
    if (mrd_be(r, 1) != CP_VM_SECTION_FOOTER || mrd_be(r, 4) != id)
        return mrd_bad(r, err, errlen, "RAM section without its footer");
    return 0;
}

/* Where QEMU_VM_EOF is, from D, the last LEN bytes of a stream of TOTAL: before the JSON
 * description ("0x06, be32 length, text" ending the stream) if there is one, else the last
 * byte. */
static int cp_main_eof(const uint8_t *d, size_t len, uint64_t total, uint64_t *eof)
{
    for (size_t p = len >= 6 ? len - 6 : 0; p > 0; p--) {
        size_t json = (size_t)d[p + 1] << 24 | (size_t)d[p + 2] << 16 | d[p + 3] << 8 | d[p + 4];
        if (d[p] == CP_VM_VMDESCRIPTION && json == len - p - 5 && d[p - 1] == CP_VM_EOF) {
            *eof = total - len + p - 1;
            return 0;
        }
        if (len - p > CP_MAIN_MAX_DESC)
            break;
    }
    if (len && d[len - 1] == CP_VM_EOF) {
        *eof = total - 1;
        return 0;
    }
    return -EBADMSG;
}

/* The header, the configuration (opaque), and the RAM setup section that must follow it. */
static int cp_main_head(struct cp_main *mn, struct mrd *r, char *err, size_t errlen)
{
    static const uint8_t ram[] = {3, 'r', 'a', 'm', 0, 0, 0, 0, 0, 0, 0, CP_RAM_VERSION};
    const uint8_t *at;
    int rc;

    if (mrd_be(r, 4) != CP_QEVM_MAGIC || mrd_be(r, 4) != CP_QEVM_VERSION ||
        mrd_be(r, 1) != CP_VM_CONFIGURATION)
        return mrd_bad(r, err, errlen, "not a QEMU migration stream with a configuration");
    mrd_slide(r);
    at = memmem(r->p + r->pos, r->len - r->pos, ram, sizeof(ram));
    if (!at || at - r->p < (ptrdiff_t)r->pos + 5 || at[-5] != CP_VM_SECTION_START)
        return mrd_bad(r, err, errlen, "no RAM section after the configuration");
    r->pos = (size_t)(at - r->p) - 5;
    mn->head_end = r->base + r->pos;
    r->pos++;
    mn->ram_section = (uint32_t)mrd_be(r, 4);
    r->pos += sizeof(ram);
    if ((rc = cp_main_records(r, err, errlen)) ||
        (rc = cp_main_footer(r, mn->ram_section, err, errlen)))
        return rc;
    if (r->nblocks == 0)
        return mrd_bad(r, err, errlen, "the RAM setup section lists no block");
    mn->setup_end = r->base + r->pos;
    return 0;
}

/* After the head: RAM iterations, then its end, then the devices (their own sections, opaque)
 * up to EOF, found before. */
static int cp_main_rest(struct cp_main *mn, struct mrd *r, char *err, size_t errlen)
{
    int rc, type;

    while ((type = (int)mrd_be(r, 1)) == CP_VM_SECTION_PART || type == CP_VM_SECTION_END ||
           type == CP_VM_COMMAND) {
        /* 10.0 announces the switchover before RAM's end (savevm.c, for devices that load
         * their state while RAM still comes): a hint a lazy restore's stream does without. */
        if (type == CP_VM_COMMAND) {
            if (mrd_be(r, 2) != CP_CMD_SWITCHOVER_START || mrd_be(r, 2) != 0)
                return mrd_bad(r, err, errlen, "a command other than SWITCHOVER_START in RAM");
            continue;
        }
        if (mrd_be(r, 4) != mn->ram_section)
            return mrd_bad(r, err, errlen, "an iterative section other than RAM's");
        if ((rc = cp_main_records(r, err, errlen)) ||
            (rc = cp_main_footer(r, mn->ram_section, err, errlen)))
            return rc;
    }
    if (r->bad || (type != CP_VM_SECTION_FULL && type != CP_VM_EOF) ||
        r->base + r->pos - 1 > mn->dev_end)
        return mrd_bad(r, err, errlen, "neither device state nor the end after RAM");
    mn->dev_start = r->base + r->pos - 1;
    return 0;
}

static int mrd_init(struct mrd *r, struct cp_main *mn, const uint8_t *data, size_t len,
                    const struct cp_main_sink *sink)
{
    memset(mn, 0, sizeof(*mn));
    *r = (struct mrd){.p = data, .len = len, .fd = -1, .block = -1, .sink = sink};
    r->blocks = calloc(CP_MAIN_MAX_BLOCKS, sizeof(*r->blocks));
    return r->blocks ? 0 : -ENOMEM;
}

int cp_main_parse(struct cp_main *mn, const uint8_t *data, size_t len,
                  const struct cp_main_sink *sink, char *err, size_t errlen)
{
    struct mrd r;
    int rc;

    if ((rc = mrd_init(&r, mn, data, len, sink)))
        return rc;
    if (!(rc = cp_main_head(mn, &r, err, errlen))) {
        if (cp_main_eof(data, len, len, &mn->dev_end))
            rc = mrd_bad(&r, err, errlen, "no QEMU_VM_EOF at the end");
        else
            rc = cp_main_rest(mn, &r, err, errlen);
    }
    free(r.blocks);
    return rc;
}

int cp_main_parse_head(struct cp_main *mn, const uint8_t *data, size_t len,
                       const struct cp_main_sink *sink, char *err, size_t errlen)
{
    struct mrd r;
    int rc;

    if ((rc = mrd_init(&r, mn, data, len, sink)))
        return rc;
    if (!(rc = cp_main_head(mn, &r, err, errlen)) && mn->setup_end != len)
        rc = mrd_bad(&r, err, errlen, "the RAM setup section does not end the head");
    free(r.blocks);
    return rc;
}

int cp_main_scan(struct cp_main *mn, int fd, uint64_t size, char *err, size_t errlen)
{
    size_t tail = size < CP_MAIN_WINDOW ? (size_t)size : CP_MAIN_WINDOW;
    uint64_t eof = 0;
    struct mrd r;
    int rc;

    if ((rc = mrd_init(&r, mn, NULL, 0, NULL)))
        return rc;
    if (!(r.buf = malloc(CP_MAIN_WINDOW))) {
        free(r.blocks);
        return -ENOMEM;
    }
    r.p = r.buf;
    r.fd = fd;
    r.size = size;
    if (cp_pread_full(fd, r.buf, tail, size - tail) != (ssize_t)tail)
        rc = mrd_bad(&r, err, errlen, "its end cannot be read");
    else if (cp_main_eof(r.buf, tail, size, &eof))
        rc = mrd_bad(&r, err, errlen, "no QEMU_VM_EOF at the end");
    else if (!(rc = cp_main_head(mn, &r, err, errlen))) {
        mn->dev_end = eof;
        rc = cp_main_rest(mn, &r, err, errlen);
    }
    free(r.buf);
    free(r.blocks);
    return rc;
}

/* The XXH3 of LEN bytes of FD from OFF, through BUF (a window). */
static int cp_main_hash(int fd, uint8_t *buf, uint64_t off, uint64_t len, uint64_t *out)
{
    XXH3_state_t *st = XXH3_createState();
    int rc = st ? 0 : -ENOMEM;

    if (st)
        XXH3_64bits_reset(st);
    while (!rc && len) {
        size_t want = len < CP_MAIN_WINDOW ? (size_t)len : CP_MAIN_WINDOW;
        ssize_t got = cp_pread_full(fd, buf, want, off);
        if (got <= 0) {
            rc = got < 0 ? (int)got : -EIO;
            break;
        }
        XXH3_64bits_update(st, buf, (size_t)got);
        off += (uint64_t)got;
        len -= (uint64_t)got;
    }
    if (!rc)
        *out = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return rc;
}

int cp_main_layout_read(int fd, uint64_t size, struct cp_main_layout *l, char *err, size_t errlen)
{
    uint64_t head_xxh3 = 0, devices_xxh3 = 0;
    struct cp_main mn;
    uint8_t *buf;
    int rc;

    memset(l, 0, sizeof(*l));
    if ((rc = cp_main_scan(&mn, fd, size, err, errlen)))
        return rc;
    if (!(buf = malloc(CP_MAIN_WINDOW)))
        rc = -ENOMEM;
    else if (!(rc = cp_main_hash(fd, buf, 0, mn.setup_end, &head_xxh3)))
        rc = cp_main_hash(fd, buf, mn.dev_start, mn.dev_end - mn.dev_start, &devices_xxh3);
    free(buf);
    if (rc) {
        snprintf(err, errlen, "main stream: %s", strerror(-rc));
        return rc;
    }
    *l = (struct cp_main_layout){.head = mn.setup_end,
                                 .devices = mn.dev_start,
                                 .eof = mn.dev_end,
                                 .head_xxh3 = head_xxh3,
                                 .devices_xxh3 = devices_xxh3};
    return 0;
}
