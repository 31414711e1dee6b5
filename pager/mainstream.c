/* mainstream: walks a saved main stream (see mainstream.h). The configuration and the device
 * sections are opaque vmstate that only QEMU can parse: the first is known by what follows it
 * (the RAM section's start), the second by where it ends (QEMU_VM_EOF, before the trailing JSON
 * description when there is one). */
#include "mainstream.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define PG_QEVM_MAGIC   0x5145564du
#define PG_QEVM_VERSION 3u
#define PG_RAM_VERSION  4u

struct pg_rd {
    const uint8_t *p;
    size_t len, pos;
    int bad;
    int block; /* the RAM block named last: CONTINUE records go on in it, across sections */
};

static uint64_t pg_rd_be(struct pg_rd *r, int n)
{
    uint64_t v = 0;

    if (r->bad || r->len - r->pos < (size_t)n) {
        r->bad = 1;
        return 0;
    }
    for (int i = 0; i < n; i++)
        v = v << 8 | r->p[r->pos++];
    return v;
}

static const char *pg_rd_bytes(struct pg_rd *r, size_t n)
{
    const char *s = (const char *)r->p + r->pos;

    if (r->bad || r->len - r->pos < n) {
        r->bad = 1;
        return NULL;
    }
    r->pos += n;
    return s;
}

static int pg_bad(const struct pg_rd *r, char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "main stream, offset %zu: %s", r->pos, what);
    return -EBADMSG;
}

/* The RAM blocks of the setup section: names and lengths until they add up to TOTAL. */
static int pg_main_blocks(struct pg_rd *r, uint64_t total, struct pg_map *map, char *err,
                          size_t errlen)
{
    while (total && !r->bad) {
        size_t n = (size_t)pg_rd_be(r, 1);
        const char *name = pg_rd_bytes(r, n);
        uint64_t length = pg_rd_be(r, 8);
        int rc;

        if (r->bad || length > total)
            return pg_bad(r, err, errlen, "RAM block list cut short or too long");
        rc = pg_map_add(map, name, n, length, err, errlen);
        if (rc)
            return rc;
        total -= length;
    }
    return 0;
}

/* RAM records up to and including EOS: the setup's block list, zero pages (marked in MAP), sync
 * points. A page with bytes in main means a save this pager does not understand. */
static int pg_main_records(struct pg_rd *r, struct pg_map *map, char *err, size_t errlen)
{
    for (;;) {
        uint64_t v = pg_rd_be(r, 8), addr = v & ~0xfffull;
        unsigned flags = (unsigned)(v & 0xfff);
        int rc;

        if (r->bad)
            return pg_bad(r, err, errlen, "RAM section cut short");
        if (flags == PG_RAM_EOS)
            return 0;
        if (flags == PG_RAM_MEM_SIZE) {
            if ((rc = pg_main_blocks(r, addr, map, err, errlen)))
                return rc;
            continue;
        }
        if (flags == PG_RAM_MULTIFD_FLUSH)
            continue;
        if ((flags & ~PG_RAM_CONTINUE) != PG_RAM_ZERO)
            return pg_bad(r, err, errlen,
                          "a RAM record other than a zero page (not a multifd save)");
        if (!(flags & PG_RAM_CONTINUE)) {
            size_t n = (size_t)pg_rd_be(r, 1);
            const char *name = pg_rd_bytes(r, n);
            r->block = r->bad ? -1 : pg_map_find(map, name, n);
        }
        if (r->block < 0)
            return pg_bad(r, err, errlen, "a zero page of an unknown RAM block");
        if (pg_rd_be(r, 1) != 0)
            return pg_bad(r, err, errlen, "a page filled with a byte other than 0");
        if ((rc = pg_map_set(map, r->block, addr, PG_ZERO, err, errlen)))
            return rc;
    }
}

static int pg_main_footer(struct pg_rd *r, uint32_t id, char *err, size_t errlen)
{
    if (pg_rd_be(r, 1) != PG_VM_SECTION_FOOTER || pg_rd_be(r, 4) != id)
        return pg_bad(r, err, errlen, "RAM section without its footer");
    return 0;
}

/* Where QEMU_VM_EOF is: before the JSON description ("0x06, be32 length, text" ending the
 * stream) if there is one, else the last byte. */
static int pg_main_eof(const uint8_t *d, size_t len, size_t *eof)
{
    for (size_t p = len >= 6 ? len - 6 : 0; p > 0; p--) {
        size_t json = (size_t)d[p + 1] << 24 | (size_t)d[p + 2] << 16 | d[p + 3] << 8 | d[p + 4];
        if (d[p] == PG_VM_VMDESCRIPTION && json == len - p - 5 && d[p - 1] == PG_VM_EOF) {
            *eof = p - 1;
            return 0;
        }
        if (len - p > (1u << 24)) /* no description is that long */
            break;
    }
    if (len && d[len - 1] == PG_VM_EOF) {
        *eof = len - 1;
        return 0;
    }
    return -EBADMSG;
}

/* The header, the configuration (opaque), and the RAM setup section that must follow it. */
static int pg_main_head(struct pg_main *mn, struct pg_rd *r, struct pg_map *map, char *err,
                        size_t errlen)
{
    static const uint8_t ram[] = {3, 'r', 'a', 'm', 0, 0, 0, 0, 0, 0, 0, PG_RAM_VERSION};
    const uint8_t *at;
    int rc;

    if (pg_rd_be(r, 4) != PG_QEVM_MAGIC || pg_rd_be(r, 4) != PG_QEVM_VERSION ||
        pg_rd_be(r, 1) != PG_VM_CONFIGURATION)
        return pg_bad(r, err, errlen, "not a QEMU migration stream with a configuration");
    at = memmem(r->p + r->pos, r->len - r->pos, ram, sizeof(ram));
    if (!at || at - r->p < (ptrdiff_t)r->pos + 5 || at[-5] != PG_VM_SECTION_START)
        return pg_bad(r, err, errlen, "no RAM section after the configuration");
    mn->head_end = (size_t)(at - r->p) - 5;
    r->pos = mn->head_end + 1;
    mn->ram_section = (uint32_t)pg_rd_be(r, 4);
    r->pos += sizeof(ram);
    if ((rc = pg_main_records(r, map, err, errlen)) ||
        (rc = pg_main_footer(r, mn->ram_section, err, errlen)))
        return rc;
    if (map->nblocks == 0)
        return pg_bad(r, err, errlen, "the RAM setup section lists no block");
    mn->setup_end = r->pos;
    return 0;
}

int pg_main_parse(struct pg_main *mn, const uint8_t *data, size_t len, struct pg_map *map,
                  char *err, size_t errlen)
{
    struct pg_rd r = {.p = data, .len = len, .block = -1};
    int rc, type;

    memset(mn, 0, sizeof(*mn));
    mn->data = data;
    mn->len = len;
    if ((rc = pg_main_head(mn, &r, map, err, errlen)))
        return rc;
    if (pg_main_eof(data, len, &mn->dev_end))
        return pg_bad(&r, err, errlen, "no QEMU_VM_EOF at the end");
    /* RAM iterations, then its end, then the devices (their own sections, opaque). */
    while ((type = (int)pg_rd_be(&r, 1)) == PG_VM_SECTION_PART || type == PG_VM_SECTION_END ||
           type == PG_VM_COMMAND) {
        /* 10.0 announces the switchover before RAM's end (savevm.c, for devices that load
         * their state while RAM still comes): a hint the pager's stream does without. */
        if (type == PG_VM_COMMAND) {
            if (pg_rd_be(&r, 2) != PG_CMD_SWITCHOVER_START || pg_rd_be(&r, 2) != 0)
                return pg_bad(&r, err, errlen, "a command other than SWITCHOVER_START in RAM");
            continue;
        }
        if (pg_rd_be(&r, 4) != mn->ram_section)
            return pg_bad(&r, err, errlen, "an iterative section other than RAM's");
        if ((rc = pg_main_records(&r, map, err, errlen)) ||
            (rc = pg_main_footer(&r, mn->ram_section, err, errlen)))
            return rc;
    }
    if (r.bad || (type != PG_VM_SECTION_FULL && type != PG_VM_EOF) || r.pos - 1 > mn->dev_end)
        return pg_bad(&r, err, errlen, "neither device state nor the end after RAM");
    mn->dev_start = r.pos - 1;
    return 0;
}
