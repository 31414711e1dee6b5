/* disks: what a snapshot records of the VM's writable disks, and whether they are still so.
 * Only host-side facts: a path, its size, mtime and inode, and a sampled content hash. */
#include "disks.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "migrate.h"

#define EDGE_BYTES   65536
#define SAMPLE_BYTES 4096
#define SAMPLES      64
#define L1_MAX_BYTES (32 << 20) /* 4 TiB of a 64 KiB-cluster qcow2 */
#define QCOW2_MAGIC  0x514649fbU

/* Hashes LEN bytes at OFF of FD (fewer at the end of the file). */
static int hash_range(XXH3_state_t *h, int fd, uint64_t off, size_t len)
{
    char buf[EDGE_BYTES];

    while (len > 0) {
        ssize_t n = pread(fd, buf, len < sizeof(buf) ? len : sizeof(buf), (off_t)off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        (void)XXH3_64bits_update(h, buf, (size_t)n);
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

/* A qcow2's L1 table: it changes whenever the image grows a cluster. */
static int hash_qcow2_l1(XXH3_state_t *h, int fd)
{
    unsigned char hdr[48];
    uint32_t magic, l1_size;
    uint64_t l1_off;

    if (pread(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
        return 0;
    memcpy(&magic, hdr, 4);
    if (be32toh(magic) != QCOW2_MAGIC)
        return 0;
    memcpy(&l1_size, hdr + 36, 4);
    memcpy(&l1_off, hdr + 40, 8);
    l1_size = be32toh(l1_size);
    if ((uint64_t)l1_size * 8 > L1_MAX_BYTES)
        l1_size = L1_MAX_BYTES / 8;
    return hash_range(h, fd, be64toh(l1_off), (size_t)l1_size * 8);
}

int disks_fingerprint(int fd, char *out, size_t len)
{
    XXH3_state_t *h = XXH3_createState();
    off_t size = lseek(fd, 0, SEEK_END);
    uint64_t span, le;
    int rc = 0;

    if (!h)
        return -ENOMEM;
    if (size < 0)
        rc = -errno;
    (void)XXH3_64bits_reset(h);
    le = htole64((uint64_t)(size < 0 ? 0 : size));
    (void)XXH3_64bits_update(h, &le, sizeof(le));
    span = size > SAMPLE_BYTES ? (uint64_t)size - SAMPLE_BYTES : 0;
    if (!rc)
        rc = hash_range(h, fd, 0, EDGE_BYTES);
    for (int i = 0; !rc && i < SAMPLES; i++)
        rc = hash_range(h, fd, span / (SAMPLES - 1) * (uint64_t)i / SAMPLE_BYTES * SAMPLE_BYTES,
                        SAMPLE_BYTES);
    if (!rc)
        rc = hash_range(h, fd, size > EDGE_BYTES ? (uint64_t)size - EDGE_BYTES : 0, EDGE_BYTES);
    if (!rc)
        rc = hash_qcow2_l1(h, fd);
    if (!rc)
        snprintf(out, len, "xxh3:%016" PRIx64, (uint64_t)XXH3_64bits_digest(h));
    XXH3_freeState(h);
    return rc;
}

/* The disk at D->path as it is now: size, mtime, inode, and its fingerprint unless LATER (then
 * ""). A manifest from elsewhere names these paths: only regular files and block devices are
 * read, and a FIFO cannot block. */
static int disk_now(struct manifest_disk *d, int later)
{
    int fd = open(d->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), rc;
    struct stat st;
    off_t size;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || (size = lseek(fd, 0, SEEK_END)) < 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        rc = -EINVAL;
        goto out;
    }
    d->size = (uint64_t)size;
    d->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    d->inode = (uint64_t)st.st_ino;
    d->fingerprint[0] = '\0';
    rc = later ? 0 : disks_fingerprint(fd, d->fingerprint, sizeof(d->fingerprint));
out:
    close(fd);
    return rc;
}

int disks_fingerprint_path(const char *path, char *out, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), rc;

    if (fd < 0)
        return -errno;
    rc = disks_fingerprint(fd, out, len);
    close(fd);
    return rc;
}

/* ---- recording at save ---- */

const char *disks_image_file(const char *filename, json_t **parsed)
{
    const char *driver;
    json_t *file;

    *parsed = NULL;
    if (!filename || strncmp(filename, "json:", 5) != 0)
        return filename && strstr(filename, "://") ? NULL : filename;
    *parsed = json_loads(filename + 5, 0, NULL);
    file = json_object_get(*parsed, "file");
    driver = json_string_value(json_object_get(file, "driver"));
    if (!driver || strcmp(driver, "file") != 0)
        return NULL;
    return json_string_value(json_object_get(file, "filename"));
}

/* One entry of query-block into M, if it is a writable disk savefs can look at: a file or block
 * device by path (relative paths start at QEMU's working directory). */
static int record_one(struct manifest *m, json_t *block, int later)
{
    json_t *ins = json_object_get(block, "inserted");
    const char *drv = json_string_value(json_object_get(ins, "drv"));
    struct manifest_disk *d = &m->disks[m->ndisks];
    char path[PATH_MAX];
    json_t *parsed;
    const char *file = disks_image_file(json_string_value(json_object_get(ins, "file")), &parsed);
    int rc;

    /* Network images name no file here: nothing to compare. */
    if (!ins || !file || !drv || json_is_true(json_object_get(ins, "ro"))) {
        json_decref(parsed);
        return 0;
    }
    rc = snprintf(path, sizeof(path), "%s%s%s", file[0] == '/' ? "" : m->cwd,
                  file[0] == '/' ? "" : "/", file) >= (int)sizeof(path)
             ? -ENAMETOOLONG
             : 0;
    json_decref(parsed);
    if (rc)
        return rc;
    if (m->ndisks == MANIFEST_MAX_DISKS)
        return -E2BIG;
    memset(d, 0, sizeof(*d));
    snprintf(d->format, sizeof(d->format), "%s", drv);
    d->path = realpath(path, NULL);
    /* Legacy protocol syntax ("nbd:unix:/s") is no path either. */
    if (!d->path)
        return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
    m->ndisks++;
    return disk_now(d, later);
}

int disks_record(struct job *job, struct qmp *q, struct manifest *m, int later)
{
    json_t *blocks = NULL, *b;
    size_t i;
    int rc;

    m->disks_recorded = 1;
    m->keep_running = job->words.keep_running;
    rc = job_qmp(job, q, "query-block", NULL, &blocks);
    json_array_foreach(blocks, i, b)
    {
        if (rc)
            break;
        rc = record_one(m, b, later);
        if (rc)
            job_fail(job, rc, "disk %s: %s",
                     json_string_value(json_object_get(json_object_get(b, "inserted"), "file")),
                     strerror(-rc));
    }
    json_decref(blocks);
    return rc;
}

/* ---- comparing at restore ---- */

/* How disk SAVED differs from what is at its path now, in WHY; 0 if it does not. */
static int disk_changed(const struct manifest_disk *saved, char *why, size_t len)
{
    struct manifest_disk now = {.path = saved->path};
    char then_s[32], now_s[32];
    int rc = disk_now(&now, 0);

    if (rc) {
        snprintf(why, len, "disk %s: %s", saved->path, strerror(-rc));
        return 1;
    }
    job_rfc3339_at((time_t)(saved->mtime_ns / 1000000000), then_s, sizeof(then_s));
    job_rfc3339_at((time_t)(now.mtime_ns / 1000000000), now_s, sizeof(now_s));
    if (now.size != saved->size)
        snprintf(why, len, "disk %s changed: %llu bytes, %llu when saved", saved->path,
                 (unsigned long long)now.size, (unsigned long long)saved->size);
    else if (now.mtime_ns != saved->mtime_ns)
        snprintf(why, len, "disk %s changed: modified at %s, saved as of %s", saved->path, now_s,
                 then_s);
    else if (strcmp(now.fingerprint, saved->fingerprint) != 0)
        snprintf(why, len, "disk %s changed: its content differs (mtime kept)", saved->path);
    else
        return 0;
    return 1;
}

/* A disk captured by a checkpoint is restored from its capture: that its image moved on since
 * is the point, not a reason to refuse. */
static int compare_list(const struct manifest_disk *disks, int n, char *why, size_t len)
{
    for (int i = 0; i < n; i++)
        if (!disks[i].nlayers && disk_changed(&disks[i], why, len))
            return -ESTALE;
    return 0;
}

int disks_compare(const struct manifest *m, char *why, size_t len)
{
    return compare_list(m->disks, m->ndisks, why, len);
}

void disks_fact(const struct manifest_disk *disks, int n, int recorded, char *out, size_t len)
{
    char why[PATH_MAX + 128];
    int captured = 0;

    for (int i = 0; i < n; i++)
        captured += disks[i].nlayers > 0;
    if (!recorded)
        snprintf(out, len, "unknown: not recorded (saved by an older savefs)");
    else if (compare_list(disks, n, why, sizeof(why)))
        snprintf(out, len, "changed: %s", why);
    else
        snprintf(out, len, "unchanged: %d writable disk%s as saved%s", n, n == 1 ? "" : "s",
                 captured ? " or captured" : "");
}

int disks_take_force(const char *dir)
{
    char value[16];
    ssize_t n = getxattr(dir, DISKS_FORCE_XATTR, value, sizeof(value) - 1);

    if (n < 0)
        return 0;
    value[n] = '\0';
    if (strcmp(value, DISKS_FORCE_VALUE) != 0)
        return 0;
    removexattr(dir, DISKS_FORCE_XATTR);
    return 1;
}
