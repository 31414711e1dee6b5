/* mainstream: the pager's reading of a main stream (see mainstream.h). */
#include "mainstream.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The walker numbers blocks from 0 in order, as the map adds them: a block's number is its
 * index in the map. */
static int pg_main_block(void *map, const char *name, size_t len, uint64_t length, char *err,
                         size_t errlen)
{
    return pg_map_add(map, name, len, length, err, errlen);
}

static int pg_main_zero(void *map, int block, uint64_t offset, char *err, size_t errlen)
{
    return pg_map_set(map, block, offset, PG_ZERO, err, errlen);
}

static void pg_main_from(struct pg_main *mn, const struct cp_main *c, const uint8_t *data,
                         size_t len)
{
    *mn = (struct pg_main){.data = data,
                           .len = len,
                           .head_end = (size_t)c->head_end,
                           .setup_end = (size_t)c->setup_end,
                           .dev_start = (size_t)c->dev_start,
                           .dev_end = (size_t)c->dev_end,
                           .ram_section = c->ram_section};
}

int pg_main_parse(struct pg_main *mn, const uint8_t *data, size_t len, struct pg_map *map,
                  char *err, size_t errlen)
{
    const struct cp_main_sink sink = {.opaque = map, .block = pg_main_block, .zero = pg_main_zero};
    struct cp_main c;
    int rc = cp_main_parse(&c, data, len, &sink, err, errlen);

    pg_main_from(mn, &c, data, len);
    return rc;
}

int pg_main_parse_parts(struct pg_main *mn, const uint8_t *data, size_t head, size_t dev,
                        struct pg_map *map, char *err, size_t errlen)
{
    const struct cp_main_sink sink = {.opaque = map, .block = pg_main_block};
    struct cp_main c;
    int rc = cp_main_parse_head(&c, data, head, &sink, err, errlen);

    c.dev_start = head;
    c.dev_end = head + dev;
    pg_main_from(mn, &c, data, head + dev);
    /* Devices are whole sections, as after RAM's end in the stream. */
    if (!rc && dev && data[head] != CP_VM_SECTION_FULL) {
        snprintf(err, errlen, "main stream: its layout's device state does not start a section");
        rc = -EBADMSG;
    }
    return rc;
}
