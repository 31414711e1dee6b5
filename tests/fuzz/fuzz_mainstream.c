/* fuzz_mainstream: libFuzzer target for the walk of a main stream (cp_main.h), which a lazy
 * restore runs on the main file of a snapshot from another host. Whatever it accepts must hold
 * its parts in order inside the stream, every zero page inside a block the setup listed; the
 * same bytes scanned from a file (the save's walk, through its window) must give the same
 * answer, and the head alone must parse as the head. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cp_main.h"

struct seen {
    int nblocks;
    uint64_t length[CP_MAIN_MAX_BLOCKS];
};

static int on_block(void *o, const char *name, size_t len, uint64_t length, char *err,
                    size_t errlen)
{
    struct seen *s = o;

    (void)name, (void)err, (void)errlen;
    if (len == 0 || s->nblocks == CP_MAIN_MAX_BLOCKS)
        abort();
    s->length[s->nblocks++] = length;
    return 0;
}

static int on_zero(void *o, int block, uint64_t offset, char *err, size_t errlen)
{
    struct seen *s = o;

    (void)err, (void)errlen;
    if (block < 0 || block >= s->nblocks || offset >= s->length[block] || offset % 4096)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seen seen = {0};
    const struct cp_main_sink sink = {.opaque = &seen, .block = on_block, .zero = on_zero};
    struct cp_main mn, scanned, head;
    char err[256];
    int rc = cp_main_parse(&mn, data, size, &sink, err, sizeof(err)), fd, src;

    if (rc == 0 && !(mn.head_end < mn.setup_end && mn.setup_end <= mn.dev_start &&
                     mn.dev_start <= mn.dev_end && mn.dev_end < size && data[mn.dev_end] == 0))
        abort();
    if ((fd = memfd_create("main", 0)) < 0)
        return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        src = cp_main_scan(&scanned, fd, size, err, sizeof(err));
        if ((src == 0) != (rc == 0) || (rc == 0 && memcmp(&mn, &scanned, sizeof(mn))))
            abort();
    }
    close(fd);
    if (rc == 0) {
        memset(&seen, 0, sizeof(seen));
        if (cp_main_parse_head(&head, data, mn.setup_end, &sink, err, sizeof(err)) ||
            head.head_end != mn.head_end || head.ram_section != mn.ram_section)
            abort();
    }
    return 0;
}
