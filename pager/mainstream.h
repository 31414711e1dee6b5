/* mainstream: finds in a saved main stream the parts a postcopy source sends again (header and
 * configuration, the RAM setup section, the device state) and marks its zero pages in the page
 * map. Understands QEMU's precopy stream as savefs saves it (multifd on: main carries zero pages
 * only) and refuses anything else. Pure functions, one thread. */
#ifndef SAVEFS_PAGER_MAINSTREAM_H
#define SAVEFS_PAGER_MAINSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "map.h"

/* savevm.c's section types and RAM record flags (ram.c), as QEMU 7.2 to 10.0 spell them. */
enum {
    PG_VM_EOF = 0x00,
    PG_VM_SECTION_START = 0x01,
    PG_VM_SECTION_PART = 0x02,
    PG_VM_SECTION_END = 0x03,
    PG_VM_SECTION_FULL = 0x04,
    PG_VM_VMDESCRIPTION = 0x06,
    PG_VM_CONFIGURATION = 0x07,
    PG_VM_COMMAND = 0x08,
    PG_VM_SECTION_FOOTER = 0x7e,
};
/* The one command a saved stream may hold (10.0: MIG_CMD_SWITCHOVER_START, no data). */
#define PG_CMD_SWITCHOVER_START 11

enum {
    PG_RAM_ZERO = 0x02,
    PG_RAM_MEM_SIZE = 0x04,
    PG_RAM_PAGE = 0x08,
    PG_RAM_EOS = 0x10,
    PG_RAM_CONTINUE = 0x20,
    PG_RAM_MULTIFD_FLUSH = 0x200, /* 8.1 and later: a sync point, no page */
};

struct pg_main {
    const uint8_t *data; /* the whole stream, not owned */
    size_t len;
    size_t head_end;           /* [0, head_end): header and configuration */
    size_t setup_end;          /* [head_end, setup_end): the RAM setup section */
    size_t dev_start, dev_end; /* the device-state sections, up to QEMU_VM_EOF */
    uint32_t ram_section;      /* the RAM section's id */
};

/* Parses the LEN bytes of DATA into MN, adds the RAM blocks to MAP and marks main's zero pages.
 * 0, or -EBADMSG with the reason (and the stream offset) in ERR. */
int pg_main_parse(struct pg_main *mn, const uint8_t *data, size_t len, struct pg_map *map,
                  char *err, size_t errlen);

#endif
