/* source: channel and main files of a snapshot (see source.h). */
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

static int pg_errno(char *err, size_t errlen, int e, const char *dir, const char *name,
                    const char *what)
{
    snprintf(err, errlen, "%s/%s: %s: %s", dir, name, what, strerror(e));
    return -e;
}

static int pg_pread(int fd, uint8_t *buf, size_t len, uint64_t off)
{
    while (len) {
        ssize_t n = pread(fd, buf, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EBADMSG;
        buf += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* The aligned part directly where offset and buffer allow, the rest through the cache. */
static int pg_pread_plain(const struct pg_chan *c, uint8_t *out, size_t len, uint64_t off)
{
    size_t n = len / PG_DIO_ALIGN * PG_DIO_ALIGN;
    int rc = -EINVAL;

    if (c->dfd >= 0 && n && off % PG_DIO_ALIGN == 0 && (uintptr_t)out % PG_DIO_ALIGN == 0)
        rc = pg_pread(c->dfd, out, n, off);
    if (rc == -EINVAL) /* not aligned, or refused after all: the cache's way */
        n = 0;
    else if (rc)
        return rc;
    return pg_pread(c->fd, out + n, len - n, off + n);
}

int pg_chan_open(struct pg_chan *c, const char *dir, const struct cp_file *f, char *err,
                 size_t errlen)
{
    char path[4096];
    int rc;

    memset(c, 0, sizeof(*c));
    c->file = *f;
    c->dfd = -1;
    snprintf(path, sizeof(path), "%s/%s", dir, f->name);
    c->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (c->fd < 0)
        return pg_errno(err, errlen, errno, dir, f->name, "open");
    c->stream_size = f->zstd ? f->stream_size : f->size;
    /* The push reads every block once: through the page cache each block costs fresh pages
     * (in a VM a fault each, up to 1.4 s of system time for a 1 GiB guest's pages), with
     * O_DIRECT none. A store without O_DIRECT (tmpfs) is read through the cache. */
    if (!f->zstd) {
        c->dfd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
        return 0;
    }
    rc = cp_zseek_load(&c->zseek, c->fd, err, errlen);
    if (!rc && cp_zseek_stream_size(c->zseek) != f->stream_size) {
        snprintf(err, errlen, "%s: its seek table holds %" PRIu64 " stream bytes, not %" PRIu64,
                 f->name, cp_zseek_stream_size(c->zseek), f->stream_size);
        rc = -EBADMSG;
    }
    return rc;
}

void pg_chan_close(struct pg_chan *c)
{
    cp_zseek_free(c->zseek);
    if (c->fd >= 0)
        close(c->fd);
    if (c->dfd >= 0)
        close(c->dfd);
    c->zseek = NULL;
    c->fd = c->dfd = -1;
}

static int pg_fcache_fill(const struct pg_chan *c, int64_t i, struct pg_fcache *fc, char *err,
                          size_t errlen)
{
    const struct cp_zframe *fr = cp_zseek_frame(c->zseek, (uint32_t)i);

    if (fc->ch == c && fc->frame == i)
        return 0;
    if (fc->cap < fr->stream_size) {
        free(fc->buf);
        fc->buf = malloc(fr->stream_size);
        fc->cap = fc->buf ? fr->stream_size : 0;
        if (!fc->buf)
            return -ENOMEM;
    }
    fc->ch = NULL;
    int rc = cp_zseek_read(c->zseek, c->fd, (uint32_t)i, fc->buf, err, errlen);
    if (rc == 0) {
        fc->ch = c;
        fc->frame = i;
    }
    return rc;
}

int pg_chan_check_range(const struct pg_chan *c, uint64_t off, size_t len, char *err, size_t errlen)
{
    if (off <= c->stream_size && len <= c->stream_size - off)
        return 0;
    snprintf(err, errlen, "%s: stream bytes %" PRIu64 "+%zu are past its end", c->file.name, off,
             len);
    return -EBADMSG;
}

int pg_chan_read(const struct pg_chan *c, uint64_t off, size_t len, uint8_t *out,
                 struct pg_fcache *fc, char *err, size_t errlen)
{
    char what[64];
    int rc = pg_chan_check_range(c, off, len, err, errlen);

    if (rc)
        return rc;
    if (!c->zseek) {
        rc = pg_pread_plain(c, out, len, off);
        snprintf(what, sizeof(what), "read at %" PRIu64, off);
        return rc ? pg_errno(err, errlen, -rc, "", c->file.name, what) : 0;
    }
    while (len && !rc) {
        int64_t i = cp_zseek_find(c->zseek, off);
        const struct cp_zframe *fr = cp_zseek_frame(c->zseek, (uint32_t)i);
        size_t in = (size_t)(off - fr->stream_offset), n = fr->stream_size - in;

        n = n < len ? n : len;
        rc = pg_fcache_fill(c, i, fc, err, errlen);
        if (rc == 0)
            memcpy(out, fc->buf + in, n);
        out += n;
        off += n;
        len -= n;
    }
    if (rc && rc != -ENOMEM) {
        char why[512];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "%s: %s", c->file.name, why);
    }
    return rc;
}

void pg_fcache_free(struct pg_fcache *fc)
{
    free(fc->buf);
    memset(fc, 0, sizeof(*fc));
}

static int pg_main_unzstd(int fd, const struct cp_file *f, uint8_t **out, char *err, size_t errlen)
{
    struct cp_zseek *z = NULL;
    int rc = cp_zseek_load(&z, fd, err, errlen);

    if (!rc && cp_zseek_stream_size(z) != f->stream_size) {
        snprintf(err, errlen, "main: its seek table holds %" PRIu64 " stream bytes, not %" PRIu64,
                 cp_zseek_stream_size(z), f->stream_size);
        rc = -EBADMSG;
    }
    if (!rc && !(*out = malloc(f->stream_size ? f->stream_size : 1)))
        rc = -ENOMEM;
    for (uint32_t i = 0; !rc && i < cp_zseek_nframes(z); i++)
        rc = cp_zseek_read(z, fd, i, *out + cp_zseek_frame(z, i)->stream_offset, err, errlen);
    cp_zseek_free(z);
    return rc;
}

int pg_main_load(const char *dir, const struct cp_file *f, uint8_t **out, size_t *len, char *err,
                 size_t errlen)
{
    char path[4096];
    uint8_t *file = NULL;
    int fd, rc;

    *out = NULL;
    snprintf(path, sizeof(path), "%s/%s", dir, f->name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pg_errno(err, errlen, errno, dir, f->name, "open");
    rc = (file = malloc(f->size ? f->size : 1)) ? pg_pread(fd, file, f->size, 0) : -ENOMEM;
    if (rc) {
        rc = pg_errno(err, errlen, -rc, dir, f->name, "read");
        goto out;
    }
    /* The file is read once here: what is checked is what is served. */
    if (XXH3_64bits(file, f->size) != f->xxh3) {
        snprintf(err, errlen, "%s/%s: its checksum does not match the manifest", dir, f->name);
        rc = -EBADMSG;
        goto out;
    }
    if (!f->zstd) {
        *out = file;
        *len = f->size;
        file = NULL;
        goto out;
    }
    rc = pg_main_unzstd(fd, f, out, err, errlen);
    if (!rc && XXH3_64bits(*out, f->stream_size) != f->stream_xxh3) {
        snprintf(err, errlen, "%s/%s: its stream's checksum does not match the manifest", dir,
                 f->name);
        rc = -EBADMSG;
    }
    *len = f->stream_size;
out:
    if (rc) {
        free(*out);
        *out = NULL;
    }
    free(file);
    close(fd);
    return rc;
}

int pg_main_load_parts(const char *dir, const struct cp_file *f, size_t max, uint8_t **out,
                       size_t *head, size_t *dev, char *err, size_t errlen)
{
    const struct cp_main_layout *l = &f->layout;
    uint64_t ndev = l->eof - l->devices;
    char path[4096];
    uint8_t *buf = NULL;
    struct stat st;
    int fd, rc = 0;

    *out = NULL;
    if (l->head > max || ndev > max) {
        snprintf(err, errlen,
                 "%s/%s: its layout's head (%llu bytes) or device state (%llu bytes) is more "
                 "than QEMU takes in one package",
                 dir, f->name, (unsigned long long)l->head, (unsigned long long)ndev);
        return -E2BIG;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, f->name);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return pg_errno(err, errlen, errno, dir, f->name, "open");
    /* A file of another size is not the one whose parts the manifest describes. */
    if (fstat(fd, &st) < 0)
        rc = pg_errno(err, errlen, errno, dir, f->name, "stat");
    else if ((uint64_t)st.st_size != f->size)
        rc = pg_errno(err, errlen, EBADMSG, dir, f->name, "not the manifest's size");
    else if (!(buf = malloc(l->head + ndev + 1)))
        rc = pg_errno(err, errlen, ENOMEM, dir, f->name, "read");
    else if ((rc = pg_pread(fd, buf, l->head, 0)) ||
             (rc = pg_pread(fd, buf + l->head, ndev, l->devices)))
        rc = pg_errno(err, errlen, -rc, dir, f->name, "read");
    /* What is checked is what is served: each part once, here. */
    else if (XXH3_64bits(buf, l->head) != l->head_xxh3 ||
             XXH3_64bits(buf + l->head, ndev) != l->devices_xxh3) {
        snprintf(err, errlen,
                 "%s/%s: a part its layout names does not match the manifest's checksum", dir,
                 f->name);
        rc = -EBADMSG;
    }
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *head = l->head;
    *dev = ndev;
    return 0;
}
