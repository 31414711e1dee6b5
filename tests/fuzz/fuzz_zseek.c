/* fuzz_zseek: libFuzzer target for the seek-table loader and the random-access reader, which the
 * lazy restore will run on zstd chunk files from other hosts. A table it accepts must cover the
 * file exactly: frames back to back from its first byte to the table, streams back to back to
 * the stream size, and cp_zseek_find must name the frame holding each byte. When every frame
 * reads alone, the streaming decompressor of a restore must read the same stream from the file:
 * the two readers of one file may not disagree on what it holds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "zframe.h"

#define FUZZ_STREAM_MAX (256u << 10) /* read no longer streams: fast runs */

static void check_table(const struct cp_zseek *z, uint64_t file_size)
{
    uint32_t n = cp_zseek_nframes(z);
    uint64_t foff = 0, soff = 0;

    for (uint32_t i = 0; i < n; i++) {
        const struct cp_zframe *f = cp_zseek_frame(z, i);
        if (f->file_offset != foff || f->stream_offset != soff || f->file_size == 0)
            abort();
        foff += f->file_size;
        soff += f->stream_size;
        if (f->stream_size > 0 &&
            (cp_zseek_find(z, f->stream_offset) != i || cp_zseek_find(z, soff - 1) != i))
            abort();
    }
    if (foff + 8 + (uint64_t)n * CP_ZSEEK_ENTRY_LEN + CP_ZSEEK_FOOTER != file_size ||
        soff != cp_zseek_stream_size(z) || cp_zseek_find(z, soff) != -1)
        abort();
}

/* The stream as a restore reads the file FD: it must be WANT. */
static void check_stream(int fd, const uint8_t *want, uint64_t len)
{
    char name[16], err[512];
    struct cp_freader *rd;
    struct cp_zreader *z;
    const uint8_t *p;
    uint64_t got = 0;
    ssize_t n;

    snprintf(name, sizeof(name), "%d", fd);
    if (cp_freader_open(&rd, "/proc/self/fd", name, 4096, 0, err, sizeof(err)) < 0 ||
        cp_zreader_open(&z, rd, 64 * 1024, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    while ((n = cp_zreader_read(z, &p, 64 * 1024, err, sizeof(err))) > 0) {
        if ((uint64_t)n > len - got || memcmp(p, want + got, (size_t)n) != 0)
            abort();
        got += (uint64_t)n;
    }
    if (n < 0 || got != len || cp_zreader_end(z, err, sizeof(err)) < 0) {
        fprintf(stderr, "the seek table reads %llu bytes, the stream %llu: %s\n",
                (unsigned long long)len, (unsigned long long)got, n < 0 ? err : "");
        abort();
    }
    cp_zreader_free(z);
    cp_freader_free(rd);
}

/* Reads every frame alone; 1 if all read, into the stream *OUT. */
static int read_frames(const struct cp_zseek *z, int fd, uint8_t **out)
{
    uint64_t len = cp_zseek_stream_size(z);
    char err[512] = "";

    *out = malloc(len ? len : 1);
    if (*out == NULL)
        abort();
    for (uint32_t i = 0; i < cp_zseek_nframes(z); i++) {
        const struct cp_zframe *f = cp_zseek_frame(z, i);
        if (cp_zseek_read(z, fd, i, *out + f->stream_offset, err, sizeof(err)) < 0) {
            if (err[0] == '\0')
                abort();
            return 0;
        }
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "";
    struct cp_zseek *z;
    uint8_t *stream = NULL;
    int fd = memfd_create("fuzz.zst", MFD_CLOEXEC);

    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        abort();
    if (cp_zseek_load(&z, fd, err, sizeof(err)) < 0) {
        if (z != NULL || err[0] == '\0')
            abort();
        close(fd);
        return 0;
    }
    check_table(z, size);
    if (cp_zseek_stream_size(z) <= FUZZ_STREAM_MAX && read_frames(z, fd, &stream))
        check_stream(fd, stream, cp_zseek_stream_size(z));
    free(stream);
    cp_zseek_free(z);
    close(fd);
    return 0;
}
