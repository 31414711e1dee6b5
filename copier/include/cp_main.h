/* cp_main: what lies where in a saved main stream, QEMU's precopy stream as savefs saves it
 * (multifd on: main carries zero pages only): the header and configuration, the RAM setup
 * section, the zero pages, the device state. A lazy restore sends the first two and the last
 * again; a save records where they are (the main file's layout in the manifest), so that a lazy
 * restore reads those parts alone, not the zero-page records between them (9 bytes a page: 6 MiB
 * for a guest of 8 GiB with a third of it zero). Refuses anything else. Pure functions over
 * untrusted bytes, one thread. */
#ifndef SAVEFS_CP_MAIN_H
#define SAVEFS_CP_MAIN_H

#include <stddef.h>
#include <stdint.h>

#include "copier.h"

/* savevm.c's section types and RAM record flags (ram.c), as QEMU 7.2 to 10.0 spell them. */
enum {
    CP_VM_EOF = 0x00,
    CP_VM_SECTION_START = 0x01,
    CP_VM_SECTION_PART = 0x02,
    CP_VM_SECTION_END = 0x03,
    CP_VM_SECTION_FULL = 0x04,
    CP_VM_VMDESCRIPTION = 0x06,
    CP_VM_CONFIGURATION = 0x07,
    CP_VM_COMMAND = 0x08,
    CP_VM_SECTION_FOOTER = 0x7e,
};
/* The one command a saved stream may hold (10.0: MIG_CMD_SWITCHOVER_START, no data). */
#define CP_CMD_SWITCHOVER_START 11

enum {
    CP_RAM_ZERO = 0x02,
    CP_RAM_MEM_SIZE = 0x04,
    CP_RAM_PAGE = 0x08,
    CP_RAM_EOS = 0x10,
    CP_RAM_CONTINUE = 0x20,
    CP_RAM_MULTIFD_FLUSH = 0x200, /* 8.1 and later: a sync point, no page */
};

#define CP_MAIN_MAX_BLOCKS 128

struct cp_main {
    uint64_t head_end;           /* [0, head_end): header and configuration */
    uint64_t setup_end;          /* [head_end, setup_end): the RAM setup section */
    uint64_t dev_start, dev_end; /* the device-state sections, up to QEMU_VM_EOF */
    uint32_t ram_section;        /* the RAM section's id */
};

/* What a parse tells its caller as it goes (either may be NULL): each RAM block of the setup
 * section, numbered from 0 in order, and each zero page (its block's number and offset, checked
 * within the block). A nonzero return stops the parse with it, ERR filled. */
struct cp_main_sink {
    void *opaque;
    int (*block)(void *opaque, const char *name, size_t len, uint64_t length, char *err,
                 size_t errlen);
    int (*zero)(void *opaque, int block, uint64_t offset, char *err, size_t errlen);
};

/* Parses the LEN bytes of DATA, a whole main stream, into MN. 0, or -EBADMSG with the reason
 * (and the stream offset) in ERR, or the sink's error. */
int cp_main_parse(struct cp_main *mn, const uint8_t *data, size_t len,
                  const struct cp_main_sink *sink, char *err, size_t errlen);
/* Parses DATA, which must be exactly a stream's header, configuration and RAM setup section
 * (what a layout calls its head), into MN's head_end, setup_end and ram_section. */
int cp_main_parse_head(struct cp_main *mn, const uint8_t *data, size_t len,
                       const struct cp_main_sink *sink, char *err, size_t errlen);
/* As cp_main_parse, over the SIZE bytes of the file FD, read a window at a time (a big guest's
 * main holds many MiB of zero-page records), without a sink. */
int cp_main_scan(struct cp_main *mn, int fd, uint64_t size, char *err, size_t errlen);
/* The layout of the main stream in the file FD of SIZE bytes (a scan, then the XXH3 of its
 * head and of its device state): what a save records of main. 0, or -errno with ERR filled and
 * L all zero. */
int cp_main_layout_read(int fd, uint64_t size, struct cp_main_layout *l, char *err, size_t errlen);

#endif
