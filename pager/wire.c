/* wire: the stream writer of a postcopy source (see wire.h). */
#include "wire.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "mainstream.h"
#include "pager.h"
#include "map.h"

void pg_wire_init(struct pg_wire *w, int fd, uint32_t ram_section)
{
    w->fd = fd;
    w->err = 0;
    w->ram_section = ram_section;
    w->in_section = 0;
    w->last = NULL;
    w->bytes = 0;
    w->t_send = 0;
    w->len = 0;
}

int pg_wire_flush(struct pg_wire *w)
{
    size_t done = 0;
    double t0 = w->len ? pg_now() : 0;

    while (!w->err && done < w->len) {
        /* MSG_NOSIGNAL: a QEMU that went away is an error to report, not a SIGPIPE. */
        ssize_t n = send(w->fd, w->buf + done, w->len - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            w->err = -errno;
        else
            done += (size_t)n;
    }
    w->bytes += done;
    if (w->len)
        w->t_send += pg_now() - t0;
    w->len = 0;
    return w->err;
}

void pg_wire_bytes(struct pg_wire *w, const void *p, size_t n)
{
    const uint8_t *b = p;

    while (n && !w->err) {
        size_t k = sizeof(w->buf) - w->len;
        if (k == 0) {
            pg_wire_flush(w);
            continue;
        }
        k = k < n ? k : n;
        memcpy(w->buf + w->len, b, k);
        w->len += k;
        b += k;
        n -= k;
    }
}

void pg_wire_be(struct pg_wire *w, uint64_t v, int nbytes)
{
    uint8_t b[8];

    for (int i = 0; i < nbytes; i++)
        b[i] = (uint8_t)(v >> 8 * (nbytes - 1 - i));
    pg_wire_bytes(w, b, (size_t)nbytes);
}

void pg_wire_cmd(struct pg_wire *w, uint16_t cmd, const void *data, uint16_t len)
{
    pg_wire_be(w, CP_VM_COMMAND, 1);
    pg_wire_be(w, cmd, 2);
    pg_wire_be(w, len, 2);
    pg_wire_bytes(w, data, len);
}

void pg_wire_page(struct pg_wire *w, const char *block, uint64_t ram_offset, const uint8_t *data)
{
    uint64_t flags = data ? CP_RAM_PAGE : CP_RAM_ZERO;

    if (!w->in_section) {
        pg_wire_be(w, CP_VM_SECTION_PART, 1);
        pg_wire_be(w, w->ram_section, 4);
        w->in_section = 1;
        w->last = NULL;
    }
    if (w->last == block) {
        pg_wire_be(w, ram_offset | flags | CP_RAM_CONTINUE, 8);
    } else {
        size_t n = strlen(block);
        pg_wire_be(w, ram_offset | flags, 8);
        pg_wire_be(w, n, 1);
        pg_wire_bytes(w, block, n);
        w->last = block;
    }
    if (data)
        pg_wire_bytes(w, data, PG_PAGE_SIZE);
    else
        pg_wire_be(w, 0, 1);
}

void pg_wire_section_close(struct pg_wire *w)
{
    if (!w->in_section)
        return;
    pg_wire_be(w, CP_RAM_EOS, 8);
    pg_wire_be(w, CP_VM_SECTION_FOOTER, 1);
    pg_wire_be(w, w->ram_section, 4);
    w->in_section = 0;
}
