/* mainstream: the parts of a saved main stream a postcopy source sends again (header and
 * configuration, the RAM setup section, the device state), found by the copier's walker
 * (cp_main.h), which also gives the page map main's RAM blocks and zero pages. Either from the
 * whole stream, or from its head and device state alone where the manifest records main's
 * layout. Pure functions, one thread. */
#ifndef SAVEFS_PAGER_MAINSTREAM_H
#define SAVEFS_PAGER_MAINSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "cp_main.h"
#include "map.h"

struct pg_main {
    const uint8_t *data; /* the stream (or its head, then its device state), not owned */
    size_t len;
    size_t head_end;           /* [0, head_end): header and configuration */
    size_t setup_end;          /* [head_end, setup_end): the RAM setup section */
    size_t dev_start, dev_end; /* the device-state sections, up to QEMU_VM_EOF */
    uint32_t ram_section;      /* the RAM section's id */
};

/* Parses the LEN bytes of DATA, a whole stream, into MN, adds the RAM blocks to MAP (empty) and
 * marks main's zero pages. 0, or -EBADMSG with the reason (and the stream offset) in ERR. */
int pg_main_parse(struct pg_main *mn, const uint8_t *data, size_t len, struct pg_map *map,
                  char *err, size_t errlen);
/* The same of DATA, a stream's head (HEAD bytes) followed by its device state (DEV bytes), as a
 * layout names them: the RAM blocks to MAP (empty); no zero page is marked. */
int pg_main_parse_parts(struct pg_main *mn, const uint8_t *data, size_t head, size_t dev,
                        struct pg_map *map, char *err, size_t errlen);

#endif
