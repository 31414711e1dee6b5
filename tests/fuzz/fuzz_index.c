/* fuzz_index: libFuzzer target for the page-index loader, which the lazy restore will run on
 * channel-K.idx files from other hosts. Whatever it accepts must walk as index.h promises: blocks
 * of distinct names, every page of a known block, in stream order without overlap, inside the
 * stream END describes, and as many pages as END counts; a version 2 or 3 index has a sum for
 * every block of that stream and a version 1 none. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cp_index.h"

static void check_index(const struct cp_index *ix)
{
    uint32_t nblocks = cp_index_nblocks(ix);
    uint64_t size = cp_index_stream_size(ix), end = 0, count = 0;
    struct cp_index_iter it = {0};
    struct cp_index_page pg;

    if (nblocks > CP_INDEX_MAX_BLOCKS)
        abort();
    for (uint32_t i = 0; i < nblocks; i++) {
        size_t n = strlen(cp_index_block_name(ix, i));
        if (n == 0 || n > CP_INDEX_NAME_MAX)
            abort();
        for (uint32_t k = 0; k < i; k++)
            if (strcmp(cp_index_block_name(ix, k), cp_index_block_name(ix, i)) == 0)
                abort();
    }
    while (cp_index_next(ix, &it, &pg)) {
        uint64_t bytes = pg.zero ? 0 : CP_INDEX_PAGE_SIZE;
        if (pg.block_id >= nblocks || pg.stream_offset < end || pg.stream_offset > size ||
            bytes > size - pg.stream_offset)
            abort();
        end = pg.stream_offset + bytes;
        count++;
    }
    if (count != cp_index_npages(ix))
        abort();
    uint32_t shift = cp_index_sum_shift(ix);
    if (cp_index_version(ix) == 1
            ? shift != 0 || cp_index_nsums(ix) != 0
            : cp_index_version(ix) < 2 || cp_index_version(ix) > CP_INDEX_VERSION ||
                  shift < CP_INDEX_SUM_MIN || shift > CP_INDEX_SUM_MAX ||
                  cp_index_nsums(ix) != (size + (1ull << shift) - 1) >> shift)
        abort();
    for (uint64_t k = 0; k < cp_index_nsums(ix); k++)
        (void)cp_index_sum(ix, k); /* in bounds: ASan says if not */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[512] = "";
    struct cp_index *ix;
    int fd = memfd_create("fuzz.idx", MFD_CLOEXEC);

    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        abort();
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    int r = cp_index_load(&ix, path, err, sizeof(err));
    close(fd);
    if (r < 0) {
        if (ix != NULL || err[0] == '\0')
            abort();
        return 0;
    }
    check_index(ix);
    cp_index_free(ix);
    return 0;
}
