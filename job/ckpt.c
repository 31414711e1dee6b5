/* ckpt: a checkpoint's disks, captured at save while the VM is paused and given a layer of their
 * own at restore (ckpt.h). Runs in a save's or a restore's job thread. */
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "copier.h"
#include "disks.h"
#include "migrate.h"
#include "qemu.h"
#include "qemudisk.h"
#include "store.h"

#define COPY_CHUNK (4 << 20)

struct ckpt_layer {
    char src[PATH_MAX]; /* the image QEMU opened */
    char format[16];
    char name[64]; /* in the snapshot's disks/: "D.L.FORMAT" */
    int cloned;
};

struct ckpt_disk {
    int idx; /* in the manifest's disks */
    char device[64];
    char node[128]; /* the node the device reads: where an overlay goes on top */
    uint64_t vsize; /* the guest's size of the disk */
    struct ckpt_layer layers[MANIFEST_MAX_LAYERS];
    int nlayers;
    /* overlay: the VM goes on in OVL, a new qcow2 over the frozen top image */
    char ovl[PATH_MAX], ovl_node[64];
    int overlay, ovl_made, node_added, switched;
};

struct ckpt {
    char dir[PATH_MAX]; /* the snapshot's disks/, being written */
    char note[512];     /* overlays_note's words */
    struct ckpt_disk d[MANIFEST_MAX_DISKS];
    int n;
    /* The copies and checksums after the pause, on a thread of their own (ckpt_disks_start)
     * while the job's thread finishes the streams: it alone writes M's disks and WHY until
     * joined. */
    struct job *job;
    struct manifest *m;
    pthread_t thread;
    int started, rc;
    char why[JOB_ERR_MAX - 160];
};

/* PATH as QEMU opened it, from CWD, as an absolute path without symlinks into OUT. */
static int image_path(const char *path, const char *cwd, char *out)
{
    char abs[PATH_MAX];

    if (snprintf(abs, sizeof(abs), "%s%s%s", path[0] == '/' ? "" : cwd, path[0] == '/' ? "" : "/",
                 path) >= (int)sizeof(abs))
        return -ENAMETOOLONG;
    return realpath(abs, out) ? 0 : -errno;
}

/* ---- what QEMU runs on ---- */

/* 1 if the device that reads BLOCK shares its image with others (share-rw=on): such an image is
 * not the VM's alone to capture. */
static int shared(struct qmp *q, json_t *block)
{
    const char *qdev = json_string_value(json_object_get(block, "qdev"));
    json_t *ret = NULL;
    char err[256];
    int yes;

    if (!qdev ||
        mig_cmd(q, "qom-get", json_pack("{s:s, s:s}", "path", qdev, "property", "share-rw"), &ret,
                err, sizeof(err)))
        return 0;
    yes = json_is_true(ret);
    json_decref(ret);
    return yes;
}

/* The chain of images under BLOCK's device into D, top first: each a regular file of a format
 * savefs can name as a backing file; else why not in WHY. */
static int read_chain(json_t *block, const char *cwd, struct ckpt_disk *d, char *why, size_t len)
{
    json_t *ins = json_object_get(block, "inserted");
    json_t *img = json_object_get(ins, "image");
    const char *node = json_string_value(json_object_get(ins, "node-name"));
    const char *dev = json_string_value(json_object_get(block, "device"));
    struct stat st;
    int rc = 0;

    snprintf(d->device, sizeof(d->device), "%s",
             dev && dev[0] ? dev : json_string_value(json_object_get(block, "qdev")));
    snprintf(d->node, sizeof(d->node), "%s", node ? node : "");
    d->vsize = (uint64_t)json_integer_value(json_object_get(img, "virtual-size"));
    for (; img && !rc; img = json_object_get(img, "backing-image")) {
        const char *name = json_string_value(json_object_get(img, "filename"));
        const char *format = json_string_value(json_object_get(img, "format"));
        struct ckpt_layer *l = &d->layers[d->nlayers];
        json_t *parsed;
        const char *file = disks_image_file(name, &parsed);

        if (!file || !format)
            rc = -EOPNOTSUPP;
        else if (strcmp(format, "raw") != 0 && strcmp(format, "qcow2") != 0)
            rc = -EOPNOTSUPP;
        else if (d->nlayers == MANIFEST_MAX_LAYERS)
            rc = -E2BIG;
        else if ((rc = image_path(file, cwd, l->src)) || (rc = stat(l->src, &st) < 0 ? -errno : 0))
            ;
        else if (!S_ISREG(st.st_mode))
            rc = -EOPNOTSUPP;
        else
            snprintf(l->format, sizeof(l->format), "%s", format);
        if (rc)
            snprintf(why, len, "disk %s (%s%s%s): savefs cannot capture it: %s", d->device,
                     file   ? file
                     : name ? name
                            : "no file",
                     format ? ", " : "", format ? format : "",
                     rc == -EOPNOTSUPP ? "not a raw or qcow2 image in a regular file"
                     : rc == -E2BIG    ? "too many images in its chain"
                                       : strerror(-rc));
        json_decref(parsed);
        d->nlayers += !rc;
    }
    if (!rc && !d->nlayers) {
        snprintf(why, len, "disk %s: no image", d->device);
        rc = -EOPNOTSUPP;
    }
    return rc;
}

/* Every writable disk's chain into C (with disks=none, those savefs can read). */
static int read_disks(struct job *job, struct qmp *q, const struct manifest *m, struct ckpt *c)
{
    char why[JOB_ERR_MAX - 160];
    json_t *blocks = NULL, *b;
    size_t i;
    int rc = job_qmp(job, q, "query-block", NULL, &blocks);

    json_array_foreach(blocks, i, b)
    {
        json_t *ins = json_object_get(b, "inserted");

        if (rc)
            break;
        if (!ins || json_is_true(json_object_get(ins, "ro")) || shared(q, b))
            continue;
        if (c->n == MANIFEST_MAX_DISKS) {
            rc = job_fail(job, -E2BIG, "more than %d writable disks", MANIFEST_MAX_DISKS);
            break;
        }
        memset(&c->d[c->n], 0, sizeof(c->d[c->n]));
        c->d[c->n].idx = -1;
        rc = read_chain(b, m->cwd, &c->d[c->n], why, sizeof(why));
        if (rc && job->words.disks != WORDS_DISKS_NONE)
            job_fail(job, rc, "%s", why);
        else
            c->n += !rc;
        rc = job->words.disks == WORDS_DISKS_NONE ? 0 : rc;
    }
    json_decref(blocks);
    return rc;
}

/* M's command line names the images the VM was started on; after overlays went on top of them
 * (a checkpoint's, a restore's layer) the VM runs on the top ones: a restore must open those. */
static int real_graph(struct job *job, const struct ckpt *c, struct manifest *m)
{
    struct qemudisk_swap sw[MANIFEST_MAX_DISKS * 4];
    char **argv = NULL;
    int n = 0, rc;

    for (int i = 0; i < c->n; i++)
        for (int l = 1; l < c->d[i].nlayers && n < (int)(sizeof(sw) / sizeof(sw[0])); l++)
            sw[n++] = (struct qemudisk_swap){c->d[i].layers[l].src, c->d[i].layers[0].src,
                                             c->d[i].layers[0].format, 0};
    if (!n)
        return 0;
    rc = qemudisk_argv_swap(m->argv, m->argc, m->cwd, sw, n, &argv);
    if (rc)
        return job_fail(job, rc, "cannot rewrite the command line's disks: %s", strerror(-rc));
    qemu_argv_free(m->argv);
    m->argv = argv;
    return 0;
}

/* The manifest's record of each disk (disks_record: its top image, by path). */
static int match_records(struct job *job, struct ckpt *c, const struct manifest *m)
{
    for (int i = 0; i < c->n; i++) {
        for (int k = 0; k < m->ndisks && c->d[i].idx < 0; k++)
            if (strcmp(m->disks[k].path, c->d[i].layers[0].src) == 0)
                c->d[i].idx = k;
        if (c->d[i].idx < 0)
            return job_fail(job, -EOPNOTSUPP, "disk %s (%s): savefs cannot capture it",
                            c->d[i].device, c->d[i].layers[0].src);
    }
    return 0;
}

/* ---- capture, while the VM is paused ---- */

/* DST (new) a clone of SRC sharing its blocks: 0, or why not (-EOPNOTSUPP, -EXDEV...). */
static int reflink(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;

    if (in < 0)
        return -errno;
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0 || ioctl(out, FICLONE, in) < 0)
        rc = -errno;
    if (out >= 0 && close(out) < 0 && !rc)
        rc = -errno;
    close(in);
    if (rc && out >= 0)
        unlink(dst);
    return rc;
}

static int clone_layers(struct job *job, struct ckpt *c, struct ckpt_disk *d, int idx)
{
    enum words_disks mode = job->words.disks;
    char dst[PATH_MAX];
    int rc;

    for (int l = 0; l < d->nlayers; l++) {
        struct ckpt_layer *ly = &d->layers[l];
        char format[sizeof(ly->format)];

        /* A copy: gcc's sanitizer build takes two members of one struct for an overlap. */
        memcpy(format, ly->format, sizeof(format));
        snprintf(ly->name, sizeof(ly->name), "%d.%d.%s", idx, l, format);
        if ((rc = store_path(dst, "%s/%s", c->dir, ly->name)))
            return job_fail(job, rc, "disk %s: path too long", d->device);
        /* overlay: the top image is frozen by the switch and copied later. */
        rc = l == 0 && mode == WORDS_DISKS_OVERLAY ? -EOPNOTSUPP : reflink(ly->src, dst);
        ly->cloned = !rc;
        if (rc && mode == WORDS_DISKS_REFLINK)
            return job_fail(job, rc, "disk %s (%s): cannot reflink it into %s (disks=reflink): %s",
                            d->device, ly->src, dst, strerror(-rc));
        /* Images below the top one are read-only to QEMU: copied later just as well. */
        if (l == 0)
            d->overlay = rc != 0;
    }
    return 0;
}

/* D's overlay: a new qcow2 beside its top image, added to QEMU as a node of its own. */
static int add_overlay(struct job *job, struct qmp *q, const struct manifest *m,
                       struct ckpt_disk *d)
{
    char err[JOB_ERR_MAX - 160];
    int rc;

    if (snprintf(d->ovl, sizeof(d->ovl), "%s.%s.qcow2", d->layers[0].src, job->snapshot) >=
        (int)sizeof(d->ovl))
        return job_fail(job, -ENAMETOOLONG, "disk %s: overlay path too long", d->device);
    if (access(d->ovl, F_OK) == 0)
        return job_fail(job, -EEXIST, "disk %s: %s exists", d->device, d->ovl);
    rc = qemudisk_overlay(m->binary, d->ovl, d->layers[0].src, d->layers[0].format, d->vsize, err,
                          sizeof(err));
    if (rc) {
        unlink(d->ovl);
        return job_fail(job, rc, "disk %s: overlay %s: %s", d->device, d->ovl, err);
    }
    d->ovl_made = 1; /* removed if the switch does not happen */
    /* QEMU's node names have 31 bytes at most, and stay in its graph after the switch. */
    snprintf(d->ovl_node, sizeof(d->ovl_node), "savefs-%d-%llx", d->idx,
             (unsigned long long)(job_now() * 1e6) & 0xffffffffffULL);
    rc = job_qmp(job, q, "blockdev-add",
                 json_pack("{s:s, s:s, s:{s:s, s:s}, s:n}", "driver", "qcow2", "node-name",
                           d->ovl_node, "file", "driver", "file", "filename", d->ovl, "backing"),
                 NULL);
    d->node_added = !rc;
    return rc;
}

/* After a failed switch: QEMU lets go of the overlays it opened (the VM runs on as before). */
static void drop_overlays(struct qmp *q, struct ckpt *c)
{
    char err[256];

    for (int i = 0; i < c->n; i++)
        if (c->d[i].node_added && !c->d[i].switched)
            mig_cmd(q, "blockdev-del", json_pack("{s:s}", "node-name", c->d[i].ovl_node), NULL, err,
                    sizeof(err));
}

/* Every overlay in one transaction: all disks switch at the same instant, or none does. */
static int switch_overlays(struct job *job, struct qmp *q, struct ckpt *c)
{
    json_t *actions = json_array();
    int n = 0, rc;

    for (int i = 0; i < c->n; i++)
        if (c->d[i].overlay) {
            json_array_append_new(actions, json_pack("{s:s, s:{s:s, s:s}}", "type",
                                                     "blockdev-snapshot", "data", "node",
                                                     c->d[i].node, "overlay", c->d[i].ovl_node));
            n++;
        }
    if (!n) {
        json_decref(actions);
        return 0;
    }
    rc = job_qmp(job, q, "transaction", json_pack("{s:o}", "actions", actions), NULL);
    for (int i = 0; !rc && i < c->n; i++)
        c->d[i].switched = c->d[i].overlay;
    return rc;
}

static int capture(struct job *job, struct qmp *q, struct ckpt *c, const struct manifest *m)
{
    int rc;

    job_set_phase(job, "capturing disks");
    if (mkdir(c->dir, 0700) < 0)
        return job_fail(job, -errno, "mkdir %s: %s", c->dir, strerror(errno));
    for (int i = 0; i < c->n; i++)
        if ((rc = clone_layers(job, c, &c->d[i], c->d[i].idx)))
            return rc;
    for (int i = 0; !rc && i < c->n; i++)
        if (c->d[i].overlay)
            rc = add_overlay(job, q, m, &c->d[i]);
    if (!rc)
        rc = switch_overlays(job, q, c);
    if (rc)
        drop_overlays(q, c);
    return rc;
}

/* The capture's share of the pause, in savefs's log (contrib/bench --checkpoint-disks reads it). */
static void log_capture(struct job *job, const struct ckpt *c, double ms)
{
    int overlays = 0;

    for (int i = 0; i < c->n; i++)
        overlays += c->d[i].overlay;
    job_log(job,
            "checkpoint %s: %d disks captured in %.1f ms (%d reflinked, %d switched to overlays)",
            job->snapshot, c->n, ms, c->n - overlays, overlays);
}

/* The disks M records whose fingerprints were left for later (disks_record) and that C does not
 * capture (a shared disk): fingerprinted now, while the VM is still paused. */
static int fingerprint_uncaptured(struct job *job, const struct ckpt *c, struct manifest *m)
{
    for (int k = 0; k < m->ndisks; k++) {
        struct manifest_disk *md = &m->disks[k];
        int captured = 0, rc;

        for (int i = 0; i < c->n; i++)
            captured |= c->d[i].idx == k;
        if (captured || md->fingerprint[0])
            continue;
        if ((rc = disks_fingerprint_path(md->path, md->fingerprint, sizeof(md->fingerprint))))
            return job_fail(job, rc, "disk %s: %s", md->path, strerror(-rc));
    }
    return 0;
}

int ckpt_disks_capture(struct job *job, struct qmp *q, const char *tmpdir, struct manifest *m,
                       struct ckpt **out)
{
    struct ckpt *c = calloc(1, sizeof(*c));
    double start = job_now();
    int rc;

    *out = NULL;
    if (!c)
        return job_fail(job, -ENOMEM, "out of memory");
    rc = read_disks(job, q, m, c);
    if (!rc)
        rc = real_graph(job, c, m);
    /* Nothing to capture: the save goes on as a memory-only one. */
    if (!rc && (job->words.disks == WORDS_DISKS_NONE || !c->n)) {
        c->n = 0;
        rc = fingerprint_uncaptured(job, c, m);
        free(c);
        return rc;
    }
    if (!rc && !(rc = match_records(job, c, m)) &&
        !(rc = store_path(c->dir, "%s/%s", tmpdir, MANIFEST_DISKS_DIR)) &&
        !(rc = capture(job, q, c, m)))
        rc = fingerprint_uncaptured(job, c, m);
    if (!rc)
        log_capture(job, c, (job_now() - start) * 1000);
    *out = c;
    return rc;
}

/* ---- before the pause ---- */

/* SRC's first block cloned into DST, which is then removed: 0 or -errno. */
static int reflink_block(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;
    struct file_clone_range r = {.src_length = 4096};

    if (in < 0)
        return -errno;
    r.src_fd = in;
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0 || ioctl(out, FICLONERANGE, &r) < 0)
        rc = -errno;
    if (out >= 0) {
        close(out);
        unlink(dst);
    }
    close(in);
    return rc;
}

void ckpt_disks_warm(struct job *job, struct qmp *q, const char *tmpdir, const struct manifest *m)
{
    struct ckpt *c;
    char dst[PATH_MAX];

    if (job->words.disks == WORDS_DISKS_NONE || job->words.disks == WORDS_DISKS_OVERLAY ||
        !(c = calloc(1, sizeof(*c))))
        return;
    if (!read_disks(job, q, m, c) && !store_path(dst, "%s/.warm", tmpdir))
        for (int i = 0; i < c->n; i++)
            reflink_block(c->d[i].layers[0].src, dst);
    job->err[0] = '\0'; /* a disk it cannot read is the capture's to report */
    free(c);
}

/* ---- after the pause: on a thread of its own ---- */

/* Where the VM's disks went on after an overlay switch, for a failure's words. */
static const char *overlays_note(struct ckpt *c)
{
    size_t n = 0;

    c->note[0] = '\0';
    for (int i = 0; i < c->n && n < sizeof(c->note); i++)
        if (c->d[i].switched)
            n += (size_t)snprintf(c->note + n, sizeof(c->note) - n, "%s%s over %s", n ? ", " : "",
                                  c->d[i].ovl, c->d[i].layers[0].src);
    return c->note;
}

/* A failure's words into WHY (the disks' thread's, or an image check's caller's); returns RC. */
static int say_fail(char *why, size_t len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int say_fail(char *why, size_t len, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return rc;
}

/* The data at *OFF of IN up to its next hole (or END) hashed into H and written to OUT at the
 * same offset. */
static int copy_extent(struct ckpt *c, int in, int out, XXH3_state_t *h, char *buf, off_t *off,
                       off_t end)
{
    off_t hole = lseek(in, *off, SEEK_HOLE);
    int rc = 0;

    if (hole < 0 || hole > end)
        hole = end;
    while (!rc && *off < hole) {
        ssize_t n =
            pread(in, buf, (size_t)(hole - *off < COPY_CHUNK ? hole - *off : COPY_CHUNK), *off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO; /* the file shrank under us */
        if (lseek(out, *off, SEEK_SET) < 0)
            return -errno;
        rc = store_write_all(out, buf, (size_t)n);
        if (!rc && job_cancelled(c->job))
            rc = -EINTR;
        (void)XXH3_64bits_update(h, buf, (size_t)n);
        *off += n;
    }
    return rc;
}

/* LEN zero bytes into H: a hole reads as zeros. */
static void hash_zeros(XXH3_state_t *h, off_t len)
{
    static const char zeros[1 << 16];

    for (; len > 0; len -= (off_t)sizeof(zeros))
        (void)XXH3_64bits_update(h, zeros,
                                 len < (off_t)sizeof(zeros) ? (size_t)len : sizeof(zeros));
}

/* SRC copied to the new DST (its holes left holes) and made durable; its XXH3 in *SUM, computed
 * as the bytes pass. */
static int copy_sparse(struct ckpt *c, const char *src, const char *dst, uint64_t *sum,
                       uint64_t *size)
{
    XXH3_state_t *h = XXH3_createState();
    char *buf = malloc(COPY_CHUNK);
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;
    off_t off = 0, end = in >= 0 ? lseek(in, 0, SEEK_END) : 0, data;

    if (!h || !buf)
        rc = -ENOMEM;
    else if (in < 0 || end < 0 ||
             (out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
        rc = -errno;
    if (h)
        (void)XXH3_64bits_reset(h);
    while (!rc && off < end) {
        data = lseek(in, off, SEEK_DATA);
        if (data < 0)
            data = errno == ENXIO ? end : off;
        if (data > off) {
            hash_zeros(h, data - off);
            off = data;
        } else {
            rc = copy_extent(c, in, out, h, buf, &off, end);
        }
    }
    if (!rc && ftruncate(out, end) < 0)
        rc = -errno;
    if (!rc && fsync(out) < 0)
        rc = -errno;
    if (out >= 0 && close(out) < 0 && !rc)
        rc = -errno;
    if (in >= 0)
        close(in);
    *size = (uint64_t)off;
    if (!rc)
        *sum = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    free(buf);
    return rc;
}

/* Layer L of D, in the snapshot: a copy (or the clone), naming the next layer as its backing,
 * durable, and its checksum. A clone (it shares the frozen blocks, none of them in the page
 * cache of its new inode) or a rebased copy is read back through the copier's reader: 2 MiB
 * O_DIRECT reads ahead on a thread of its own while this one hashes. */
static int finish_layer(struct ckpt *c, struct ckpt_disk *d, int l)
{
    struct ckpt_layer *ly = &d->layers[l];
    struct manifest_layer *out = &c->m->disks[d->idx].layers[l];
    char dst[PATH_MAX], err[JOB_ERR_MAX - 160] = "";
    int fd, rc = store_path(dst, "%s/%s", c->dir, ly->name);

    if (!rc && !ly->cloned)
        rc = copy_sparse(c, ly->src, dst, &out->xxh3, &out->size);
    if (rc)
        return say_fail(c->why, sizeof(c->why), rc, "disk %s: copy %s to %s: %s%s%s", d->device,
                        ly->src, dst, strerror(-rc),
                        overlays_note(c)[0] ? "; the VM's disks: " : "", c->note);
    /* The copy names the original's backing file: the snapshot's own copy of it instead. */
    if (l + 1 < d->nlayers) {
        rc = qemudisk_rebase(c->m->binary, dst, d->layers[l + 1].name, d->layers[l + 1].format, err,
                             sizeof(err));
        if (rc)
            return say_fail(c->why, sizeof(c->why), rc, "disk %s: %s", d->device, err);
    }
    if (ly->cloned || l + 1 < d->nlayers) {
        /* A clone is new metadata of the file, a rebase a new header: either must be on disk. */
        fd = open(dst, O_RDONLY | O_CLOEXEC);
        rc = fd < 0 || fsync(fd) < 0 ? -errno : 0;
        if (fd >= 0)
            close(fd);
        if (!rc)
            rc = cp_hash_file(c->dir, ly->name, &out->size, &out->xxh3, err, sizeof(err));
    }
    if (rc)
        return say_fail(c->why, sizeof(c->why), rc, "disk %s: read %s: %s", d->device, dst,
                        err[0] ? err : strerror(-rc));
    snprintf(out->format, sizeof(out->format), "%s", ly->format);
    if (asprintf(&out->file, "%s/%s", MANIFEST_DISKS_DIR, ly->name) < 0) {
        out->file = NULL;
        return say_fail(c->why, sizeof(c->why), -ENOMEM, "out of memory");
    }
    return 0;
}

static int capture_fingerprint(struct ckpt *c, const struct ckpt_disk *d, struct manifest_disk *md)
{
    const struct ckpt_layer *top = &d->layers[0];
    char path[PATH_MAX];
    int rc = top->cloned ? store_path(path, "%s/%s", c->dir, top->name)
                         : (snprintf(path, sizeof(path), "%s", top->src), 0);

    if (!rc)
        rc = disks_fingerprint_path(path, md->fingerprint, sizeof(md->fingerprint));
    return rc ? say_fail(c->why, sizeof(c->why), rc, "disk %s: fingerprint of %s: %s", d->device,
                         path, strerror(-rc))
              : 0;
}

static void *finish_thread(void *arg)
{
    struct ckpt *c = arg;
    int rc = 0;

    for (int i = 0; !rc && i < c->n; i++) {
        struct ckpt_disk *d = &c->d[i];
        struct manifest_disk *md = &c->m->disks[d->idx];

        /* The top image as at the instant: its clone, or the image an overlay froze. */
        if (!md->fingerprint[0] && (rc = capture_fingerprint(c, d, md)))
            break;
        for (int l = 0; !rc && l < d->nlayers; l++)
            if (!(rc = finish_layer(c, d, l)))
                md->nlayers = l + 1;
        snprintf(md->device, sizeof(md->device), "%s", d->device);
        snprintf(md->method, sizeof(md->method), "%s", d->overlay ? "overlay" : "reflink");
    }
    if (!rc && (rc = store_fsync_dir(c->dir)))
        say_fail(c->why, sizeof(c->why), rc, "fsync %s: %s", c->dir, strerror(-rc));
    c->rc = rc;
    return NULL;
}

int ckpt_disks_start(struct job *job, struct ckpt *c, struct manifest *m)
{
    int rc;

    if (!c)
        return 0;
    c->job = job;
    c->m = m;
    rc = cp_thread_start(&c->thread, finish_thread, c);
    c->started = !rc;
    return rc ? job_fail(job, rc, "start the disks' thread: %s", strerror(-rc)) : 0;
}

static void join_finish(struct ckpt *c)
{
    if (c->started)
        pthread_join(c->thread, NULL);
    c->started = 0;
}

int ckpt_disks_finish(struct job *job, struct qmp *q, struct ckpt *c)
{
    double start = job_now();

    if (!c)
        return 0;
    job_set_phase(job, "copying disks");
    join_finish(c);
    if (c->rc)
        return job_fail(job, c->rc, "%s", c->why);
    /* How long the save waited for its disks after the streams were done (contrib/bench). */
    job_log(job, "checkpoint %s: disks checksummed, %.0f ms after the streams", job->snapshot,
            (job_now() - start) * 1000);
    /* A QEMU gone meanwhile took the VM along: no checkpoint of it is published. */
    if (job_qmp(job, q, "query-status", NULL, NULL))
        return job_fail(job, -EIO, "QEMU exited during the checkpoint%s%s",
                        overlays_note(c)[0] ? "; its disks: " : "", c->note);
    return 0;
}

void ckpt_failed(struct job *job, struct ckpt *c)
{
    size_t n = strlen(job->err);

    if (!c)
        return;
    join_finish(c);
    if (overlays_note(c)[0] && !strstr(job->err, c->note))
        snprintf(job->err + n, sizeof(job->err) - n, "; the VM's disks: %s", c->note);
}

void ckpt_free(struct ckpt *c)
{
    if (!c)
        return;
    join_finish(c);
    for (int i = 0; i < c->n; i++)
        if (c->d[i].ovl_made && !c->d[i].switched)
            unlink(c->d[i].ovl);
    free(c);
}

/* ---- restore, and an import's check ---- */

int ckpt_layer_stat(const struct manifest_disk *d, int l, const char *dir, struct stat *st,
                    char *why, size_t len)
{
    const struct manifest_layer *ly = &d->layers[l];
    char path[PATH_MAX];

    if (store_path(path, "%s/%s", dir, ly->file))
        return say_fail(why, len, -ENAMETOOLONG, "disk %s: path too long", d->device);
    if (lstat(path, st) < 0 || !S_ISREG(st->st_mode))
        return say_fail(why, len, -ENOENT, "captured disk %s (%s): %s is missing", d->device,
                        d->path, path);
    if ((uint64_t)st->st_size != ly->size)
        return say_fail(why, len, -EBADMSG,
                        "captured disk %s: %s has %lld bytes, the manifest says %llu", d->device,
                        path, (long long)st->st_size, (unsigned long long)ly->size);
    return 0;
}

/* Image L of captured disk D in the snapshot DIR is whole: its size, its checksum, and, for a
 * qcow2, the next captured image as its backing file (a snapshot from elsewhere must not make
 * QEMU read a host file). */
static int check_layer(const struct manifest_disk *d, int l, const char *dir, char *why, size_t len)
{
    const struct manifest_layer *ly = &d->layers[l];
    const char *next = l + 1 < d->nlayers ? strchr(d->layers[l + 1].file, '/') + 1 : "";
    char path[PATH_MAX], backing[1024], err[JOB_ERR_MAX - 160];
    uint64_t sum = 0, size = 0;
    struct stat st;
    int fd, rc = ckpt_layer_stat(d, l, dir, &st, why, len);

    if (rc)
        return rc;
    if (store_path(path, "%s/%s", dir, ly->file))
        return -ENAMETOOLONG;
    if (strcmp(ly->format, "qcow2") == 0) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        rc = fd < 0 ? -errno : qemudisk_qcow2_backing(fd, backing, sizeof(backing));
        if (fd >= 0)
            close(fd);
        if (rc || strcmp(backing, next) != 0)
            return say_fail(why, len, -EBADMSG,
                            "captured disk %s: %s names %s as its backing file, not '%s'",
                            d->device, path, rc ? "no readable name" : backing, next);
    }
    rc = cp_hash_file(dir, ly->file, &size, &sum, err, sizeof(err));
    if (rc)
        return say_fail(why, len, rc, "captured disk %s: read %s: %s", d->device, path, err);
    if (sum != ly->xxh3 || size != ly->size)
        return say_fail(why, len, -EBADMSG, "captured disk %s: %s is corrupt (checksum mismatch)",
                        d->device, path);
    return 0;
}

int ckpt_check_images(const struct manifest *m, const char *dir, char *why, size_t len)
{
    int rc = 0;

    for (int i = 0; !rc && i < m->ndisks; i++)
        for (int l = 0; !rc && l < m->disks[i].nlayers; l++)
            rc = check_layer(&m->disks[i], l, dir, why, len);
    return rc;
}

/* The layer over captured disk I of M, made from the snapshot DIR: its path in OVL. */
static int make_layer(struct job *job, const struct manifest *m, int i, const char *dir,
                      const char *layers, const char *binary, char *ovl)
{
    const struct manifest_disk *d = &m->disks[i];
    char top[PATH_MAX], err[JOB_ERR_MAX - 160];
    int rc;

    if ((rc = store_path(top, "%s/%s", dir, d->layers[0].file)) ||
        (rc = store_path(ovl, "%s/%d.qcow2", layers, i)))
        return job_fail(job, rc, "disk %s: path too long", d->device);
    rc = qemudisk_overlay(binary, ovl, top, d->layers[0].format, 0, err, sizeof(err));
    return rc ? job_fail(job, rc, "captured disk %s: %s", d->device, err) : 0;
}

static int check_layers(struct job *job, const struct manifest *m, const char *dir)
{
    char why[JOB_ERR_MAX - 160];
    int rc;

    job_set_phase(job, "checking disks");
    rc = ckpt_check_images(m, dir, why, sizeof(why));
    return rc ? job_fail(job, rc, "%s", why) : 0;
}

int ckpt_restore_layers(struct job *job, const struct manifest *m, const char *dir,
                        const char *layers, const char *binary, const char *cwd, char ***argv,
                        int argc)
{
    struct qemudisk_swap sw[MANIFEST_MAX_DISKS];
    char(*ovl)[PATH_MAX] = NULL, err[JOB_ERR_MAX - 160], **swapped = NULL;
    int n = 0, rc = check_layers(job, m, dir);

    for (int i = 0; !rc && i < m->ndisks; i++) {
        if (!m->disks[i].nlayers)
            continue;
        if (!n && (!(ovl = calloc(MANIFEST_MAX_DISKS, sizeof(*ovl))) ||
                   (rc = store_mkdirs(layers, err, sizeof(err))))) {
            rc = ovl ? job_fail(job, rc, "%s", err) : job_fail(job, -ENOMEM, "out of memory");
            break;
        }
        if (!(rc = make_layer(job, m, i, dir, layers, binary, ovl[n]))) {
            sw[n] = (struct qemudisk_swap){m->disks[i].path, ovl[n], "qcow2", 0};
            n++;
        }
    }
    if (!rc && n && (rc = qemudisk_argv_swap(*argv, argc, cwd, sw, n, &swapped)))
        job_fail(job, rc, "cannot rewrite the command line's disks: %s", strerror(-rc));
    for (int i = 0; !rc && i < n; i++)
        if (!sw[i].matched)
            rc = job_fail(job, -EINVAL,
                          "captured disk %s: the command line opens it with no -drive file= or "
                          "-blockdev filename= that savefs can point at its layer",
                          sw[i].from);
    if (!rc && swapped) {
        qemu_argv_free(*argv);
        *argv = swapped;
        swapped = NULL;
    }
    qemu_argv_free(swapped);
    free(ovl);
    return rc;
}

/* ---- a snapshot whose captured images a running VM's layer stands on ---- */

int job_snapshot_is_base(struct job_ctx *ctx, const char *vm, const char *snap)
{
    char dir[PATH_MAX], real[PATH_MAX], image[PATH_MAX], layers[PATH_MAX], layer[PATH_MAX],
        msg[3 * PATH_MAX];
    pid_t pid;

    /* No disks/: no checkpoint's images, nothing stands on them. */
    if (store_snapshot_path(dir, ctx->store, vm, snap, MANIFEST_DISKS_DIR) || !realpath(dir, real))
        return 0;
    /* savefs itself reads them only for a moment (a tar through the mount, a check). */
    pid = qemu_proc_holding(real, getpid(), image, sizeof(image));
    if (!pid)
        return 0;
    if (store_vm_path(dir, ctx->store, vm, "layers") || !realpath(dir, layers) ||
        !qemu_proc_holds(pid, layers, layer, sizeof(layer)))
        snprintf(layer, sizeof(layer), "(not a layer of the store)");
    snprintf(msg, sizeof(msg),
             "%s: snapshot %s not deleted (EBUSY): its image %s is the base of the layer %s that "
             "the VM's QEMU (pid %d) runs on; stop that VM, then delete the snapshot",
             vm, snap, image, layer, (int)pid);
    if (ctx->log)
        ctx->log(msg);
    return 1;
}
