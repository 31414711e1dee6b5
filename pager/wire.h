/* wire: the main stream as a postcopy source writes it to the destination QEMU: raw bytes,
 * QEMU_VM_COMMANDs, and RAM sections of page records (savevm.c, ram.c). Buffered; owned by the
 * one thread that writes the stream. The first failed write sticks. */
#ifndef SAVEFS_PAGER_WIRE_H
#define SAVEFS_PAGER_WIRE_H

#include <stddef.h>
#include <stdint.h>

enum {
    PG_CMD_OPEN_RETURN_PATH = 1,
    PG_CMD_PING = 2,
    PG_CMD_POSTCOPY_ADVISE = 3,
    PG_CMD_POSTCOPY_LISTEN = 4,
    PG_CMD_POSTCOPY_RUN = 5,
    PG_CMD_POSTCOPY_RAM_DISCARD = 6,
    PG_CMD_PACKAGED = 7,
    PG_CMD_POSTCOPY_RESUME = 9,
    PG_CMD_RECV_BITMAP = 10,
};

/* What the destination takes in one PACKAGED command (MAX_VM_CMD_PACKAGED_SIZE), and what the
 * package holds besides the device state (LISTEN, PING and RUN). */
#define PG_MAX_PACKAGED   (1u << 24)
#define PG_PACKAGED_EXTRA (5 + 9 + 5)
/* The PING after the devices in the package: its PONG says QEMU loaded them. */
#define PG_PING_DEVICES 0x53465331u

struct pg_wire {
    int fd;
    int err; /* 0, or the first write's -errno */
    uint32_t ram_section;
    int in_section;   /* a RAM SECTION_PART is open */
    const char *last; /* the block the open section named last (CONTINUE after it) */
    uint64_t bytes;   /* written so far */
    double t_send;    /* seconds in send(): waiting for QEMU to read */
    size_t len;
    uint8_t buf[32 << 10];
};

void pg_wire_init(struct pg_wire *w, int fd, uint32_t ram_section);
void pg_wire_bytes(struct pg_wire *w, const void *p, size_t n);
void pg_wire_be(struct pg_wire *w, uint64_t v, int nbytes);
/* A command with its LEN bytes of DATA. */
void pg_wire_cmd(struct pg_wire *w, uint16_t cmd, const void *data, uint16_t len);
/* One page record of BLOCK at RAM_OFFSET: its PG_PAGE_SIZE bytes, or a zero page if DATA is
 * NULL. Opens a RAM section part if none is. */
void pg_wire_page(struct pg_wire *w, const char *block, uint64_t ram_offset, const uint8_t *data);
/* Ends the open RAM section part (EOS, footer), if any. */
void pg_wire_section_close(struct pg_wire *w);
/* Writes what is buffered. The sticky error. */
int pg_wire_flush(struct pg_wire *w);

#endif
