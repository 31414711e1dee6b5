/* manifest: manifest.json <-> struct manifest. A manifest may come from another host, so reading
 * checks every field's type and range, and that the file list is exactly what the channel count
 * implies, before anything uses it. */
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

#define MANIFEST_MAX_BYTES (4 << 20)
#define ARG_MAX_BYTES      65536

static const char *kind_role(enum cp_kind kind)
{
    switch (kind) {
    case CP_MAIN:
        return "main";
    case CP_CHANNEL:
        return "channel";
    case CP_INDEX:
        return "index";
    }
    return "?";
}

/* Main's layout (copier.h): where a lazy restore finds its head and device state. */
static json_t *layout_to_json(const struct cp_main_layout *l)
{
    char head[17], dev[17];

    snprintf(head, sizeof(head), "%016" PRIx64, l->head_xxh3);
    snprintf(dev, sizeof(dev), "%016" PRIx64, l->devices_xxh3);
    return json_pack("{s:I, s:I, s:I, s:s, s:s}", "head", (json_int_t)l->head, "devices",
                     (json_int_t)l->devices, "eof", (json_int_t)l->eof, "head_xxh3", head,
                     "devices_xxh3", dev);
}

static json_t *file_to_json(const struct cp_file *f)
{
    char sum[17], stream_sum[17];
    json_t *j;

    snprintf(sum, sizeof(sum), "%016" PRIx64, f->xxh3);
    if (f->kind == CP_MAIN)
        j = json_pack("{s:s, s:s, s:I, s:s}", "name", f->name, "role", "main", "size",
                      (json_int_t)f->size, "xxh3", sum);
    else
        j = json_pack("{s:s, s:s, s:i, s:I, s:s}", "name", f->name, "role", kind_role(f->kind),
                      "channel", f->channel, "size", (json_int_t)f->size, "xxh3", sum);
    /* A zstd file: the stream it holds, checked after decompression. */
    snprintf(stream_sum, sizeof(stream_sum), "%016" PRIx64, f->stream_xxh3);
    if (j && f->zstd &&
        (json_object_set_new(j, "stream_size", json_integer((json_int_t)f->stream_size)) ||
         json_object_set_new(j, "stream_xxh3", json_string(stream_sum)))) {
        json_decref(j);
        j = NULL;
    }
    if (j && f->kind == CP_MAIN && f->layout.head &&
        json_object_set_new(j, "layout", layout_to_json(&f->layout))) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static json_t *layer_to_json(const struct manifest_layer *l)
{
    char sum[17];

    snprintf(sum, sizeof(sum), "%016" PRIx64, l->xxh3);
    return json_pack("{s:s, s:s, s:I, s:s}", "file", l->file, "format", l->format, "size",
                     (json_int_t)l->size, "xxh3", sum);
}

/* A captured disk's "captured" member: how, and its images, top first. */
static json_t *captured_to_json(const struct manifest_disk *d)
{
    json_t *layers = json_array();

    for (int i = 0; layers && i < d->nlayers; i++)
        if (json_array_append_new(layers, layer_to_json(&d->layers[i]))) {
            json_decref(layers);
            return NULL;
        }
    return layers ? json_pack("{s:s, s:s, s:o}", "device", d->device, "method", d->method, "layers",
                              layers)
                  : NULL;
}

static json_t *disk_to_json(const struct manifest_disk *d)
{
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "path", d->path, "format", d->format,
                          "size", (json_int_t)d->size, "mtime_ns", (json_int_t)d->mtime_ns, "inode",
                          (json_int_t)d->inode, "fingerprint", d->fingerprint);

    if (j && d->nlayers && json_object_set_new(j, "captured", captured_to_json(d))) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* The disks and keep_running, for manifests that record them (older ones stay as they were
 * signed). */
static int disks_to_json(const struct manifest *m, json_t *root)
{
    json_t *disks = json_array();

    for (int i = 0; disks && i < m->ndisks; i++)
        if (json_array_append_new(disks, disk_to_json(&m->disks[i]))) {
            json_decref(disks);
            disks = NULL;
        }
    if (!disks || json_object_set_new(root, "disks", disks) ||
        json_object_set_new(root, "keep_running", json_boolean(m->keep_running)))
        return -ENOMEM;
    return 0;
}

static json_t *manifest_to_json(const struct manifest *m)
{
    json_t *argv = json_array(), *files = json_array();
    json_t *root = NULL;
    int i;

    if (!argv || !files)
        goto out;
    for (i = 0; i < m->argc; i++)
        if (json_array_append_new(argv, json_string(m->argv[i])))
            goto out;
    for (i = 0; i < m->nfiles; i++)
        if (json_array_append_new(files, file_to_json(&m->files[i])))
            goto out;
    root =
        json_pack("{s:s, s:i, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:O}, s:I, s:b, s:i, "
                  "s:s, s:i, s:f, s:O}",
                  "format", "savefs-snapshot", "version", m->version, "vm", m->vm, "snapshot",
                  m->snapshot, "created", m->created, "qemu", "version", m->qemu_version, "binary",
                  m->binary, "cwd", m->cwd, "machine", m->machine, "uuid", m->uuid, "argv", argv,
                  "ram_size", (json_int_t)m->ram_size, "was_running", m->was_running, "channels",
                  m->channels, "compression", m->compression, "compression_level",
                  m->compression_level, "duration_s", m->duration_s, "files", files);
    if (root && m->checkpoint &&
        json_object_set_new(root, "checkpoint",
                            json_pack("{s:s, s:s, s:f}", "holds", "completion", "at",
                                      m->checkpoint_at, "pause_ms", m->checkpoint_pause_ms))) {
        json_decref(root);
        root = NULL;
    }
    if (root && m->libvirt_xml &&
        json_object_set_new(root, "libvirt", json_pack("{s:s}", "xml", m->libvirt_xml))) {
        json_decref(root);
        root = NULL;
    }
    if (root && m->disks_recorded && disks_to_json(m, root)) {
        json_decref(root);
        root = NULL;
    }
out:
    json_decref(argv);
    json_decref(files);
    return root;
}

int manifest_write(const char *path, const struct manifest *m, char *err, size_t errlen)
{
    json_t *root = NULL;
    char *text = NULL;
    int fd = -1, rc;

    rc = manifest_check(m, err, errlen);
    if (rc)
        return rc;
    root = manifest_to_json(m);
    if (root && m->hmac[0])
        json_object_set_new(root, "hmac", json_string(m->hmac));
    text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (!text) {
        snprintf(err, errlen, "%s: cannot encode the manifest", path);
        rc = -ENOMEM;
        goto out;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "create %s: %s", path, strerror(-rc));
        goto out;
    }
    rc = store_write_all(fd, text, strlen(text));
    if (!rc)
        rc = store_write_all(fd, "\n", 1);
    if (!rc && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && !rc)
        rc = -errno;
    if (rc)
        snprintf(err, errlen, "write %s: %s", path, strerror(-rc));
out:
    free(text);
    json_decref(root);
    return rc;
}

/* ---- reading ---- */

static int copy_string(json_t *root, const char *key, char *dst, size_t dstlen, char *err,
                       size_t errlen)
{
    json_t *v = json_object_get(root, key);

    if (!json_is_string(v) || json_string_length(v) >= dstlen ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        snprintf(err, errlen, "'%s' is missing or not a string of at most %zu bytes", key,
                 dstlen - 1);
        return -EINVAL;
    }
    strcpy(dst, json_string_value(v));
    return 0;
}

static int parse_argv(json_t *argv, struct manifest *m, char *err, size_t errlen)
{
    size_t i, n = json_array_size(argv);

    if (!json_is_array(argv) || n == 0 || n > MANIFEST_MAX_ARGS) {
        snprintf(err, errlen, "'qemu.argv' must be an array of 1 to %d strings", MANIFEST_MAX_ARGS);
        return -EINVAL;
    }
    m->argv = calloc(n + 1, sizeof(char *));
    if (!m->argv)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        json_t *a = json_array_get(argv, i);

        if (!json_is_string(a) || json_string_length(a) > ARG_MAX_BYTES ||
            strlen(json_string_value(a)) != json_string_length(a)) {
            snprintf(err, errlen, "'qemu.argv[%zu]' is not a string of at most %d bytes", i,
                     ARG_MAX_BYTES);
            return -EINVAL;
        }
        m->argv[i] = strdup(json_string_value(a));
        if (!m->argv[i])
            return -ENOMEM;
        m->argc = (int)i + 1;
    }
    return 0;
}

static int parse_kind(const char *role, enum cp_kind *kind)
{
    static const enum cp_kind kinds[] = {CP_MAIN, CP_CHANNEL, CP_INDEX};
    size_t i;

    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(role, kind_role(kinds[i])) == 0) {
            *kind = kinds[i];
            return 0;
        }
    return -EINVAL;
}

/* 16 hex digits. */
static int parse_sum(const char *sum, uint64_t *out)
{
    char *end;

    if (strlen(sum) != 16 || sum[0] == '-' || sum[0] == '+')
        return -EINVAL;
    errno = 0;
    *out = strtoull(sum, &end, 16);
    return errno || *end ? -EINVAL : 0;
}

/* A layout names parts of a plain main in order within it: 0 < head <= devices <= eof < size
 * (QEMU_VM_EOF is a byte of the file). */
static int parse_layout(json_t *jl, size_t i, struct cp_file *f, char *err, size_t errlen)
{
    struct cp_main_layout *l = &f->layout;
    json_int_t head = -1, dev = -1, eof = -1;
    const char *hsum = NULL, *dsum = NULL;

    if (json_unpack(jl, "{s:I, s:I, s:I, s:s, s:s}", "head", &head, "devices", &dev, "eof", &eof,
                    "head_xxh3", &hsum, "devices_xxh3", &dsum) ||
        f->kind != CP_MAIN || f->zstd || head <= 0 || dev < head || eof < dev ||
        (uint64_t)eof >= f->size || parse_sum(hsum, &l->head_xxh3) ||
        parse_sum(dsum, &l->devices_xxh3)) {
        snprintf(err, errlen,
                 "'files[%zu].layout' needs head, devices and eof in order within a plain main "
                 "stream, and a 16-digit head_xxh3 and devices_xxh3",
                 i);
        memset(l, 0, sizeof(*l));
        return -EINVAL;
    }
    l->head = (uint64_t)head;
    l->devices = (uint64_t)dev;
    l->eof = (uint64_t)eof;
    return 0;
}

static int parse_file(json_t *jf, size_t i, struct cp_file *f, char *err, size_t errlen)
{
    const char *name = NULL, *role = NULL, *sum = NULL, *stream_sum = NULL;
    json_int_t size = -1, stream_size = -1;
    int channel = -1;

    if (json_unpack(jf, "{s:s, s:s, s?i, s:I, s:s, s?I, s?s}", "name", &name, "role", &role,
                    "channel", &channel, "size", &size, "xxh3", &sum, "stream_size", &stream_size,
                    "stream_xxh3", &stream_sum) ||
        parse_kind(role, &f->kind) || size < 0 || strlen(name) >= sizeof(f->name) ||
        strlen(sum) != 16) {
        snprintf(err, errlen,
                 "'files[%zu]' needs name, role (main, channel or index), size and "
                 "a 16-digit xxh3",
                 i);
        return -EINVAL;
    }
    strcpy(f->name, name);
    f->channel = f->kind == CP_MAIN ? -1 : channel;
    f->size = (uint64_t)size;
    if (parse_sum(sum, &f->xxh3)) {
        snprintf(err, errlen, "'files[%zu].xxh3' is not 16 hex digits", i);
        return -EINVAL;
    }
    /* A zstd file says what stream it holds; manifest_check matches that with "compression". */
    f->zstd = json_object_get(jf, "stream_size") || json_object_get(jf, "stream_xxh3");
    if (f->zstd && (stream_size < 0 || !stream_sum || parse_sum(stream_sum, &f->stream_xxh3))) {
        snprintf(err, errlen, "'files[%zu]' needs both stream_size and a 16-digit stream_xxh3", i);
        return -EINVAL;
    }
    f->stream_size = f->zstd ? (uint64_t)stream_size : 0;
    memset(&f->layout, 0, sizeof(f->layout));
    return json_object_get(jf, "layout")
               ? parse_layout(json_object_get(jf, "layout"), i, f, err, errlen)
               : 0;
}

static int parse_files(json_t *files, struct manifest *m, char *err, size_t errlen)
{
    size_t i, n = json_array_size(files);
    int rc;

    if (!json_is_array(files) || n == 0 || n > MANIFEST_MAX_FILES) {
        snprintf(err, errlen, "'files' must be an array of 1 to %d entries", MANIFEST_MAX_FILES);
        return -EINVAL;
    }
    for (i = 0; i < n; i++) {
        rc = parse_file(json_array_get(files, i), i, &m->files[i], err, errlen);
        if (rc)
            return rc;
        m->nfiles = (int)i + 1;
    }
    return 0;
}

/* A captured image's name: a file right in the snapshot's disks/ (an untrusted manifest must
 * not name a file elsewhere). */
static int valid_layer_file(const char *file)
{
    size_t n = strlen(MANIFEST_DISKS_DIR);

    return strncmp(file, MANIFEST_DISKS_DIR "/", n + 1) == 0 && store_valid_name(file + n + 1);
}

static int parse_layer(json_t *jl, struct manifest_layer *l)
{
    const char *file = NULL, *format = NULL, *sum = NULL;
    json_int_t size = -1;

    if (json_unpack(jl, "{s:s, s:s, s:I, s:s}", "file", &file, "format", &format, "size", &size,
                    "xxh3", &sum) ||
        !valid_layer_file(file) || (strcmp(format, "raw") != 0 && strcmp(format, "qcow2") != 0) ||
        size < 0 || parse_sum(sum, &l->xxh3))
        return -EINVAL;
    l->file = strdup(file);
    if (!l->file)
        return -ENOMEM;
    strcpy(l->format, format);
    l->size = (uint64_t)size;
    return 0;
}

static int parse_captured(json_t *jc, size_t i, struct manifest_disk *d, char *err, size_t errlen)
{
    const char *device = NULL, *method = NULL;
    json_t *layers = NULL;
    size_t n;
    int rc = -EINVAL;

    if (!json_unpack(jc, "{s:s, s:s, s:o}", "device", &device, "method", &method, "layers",
                     &layers) &&
        strlen(device) < sizeof(d->device) &&
        (strcmp(method, "reflink") == 0 || strcmp(method, "overlay") == 0) &&
        json_is_array(layers) && (n = json_array_size(layers)) > 0 && n <= MANIFEST_MAX_LAYERS) {
        strcpy(d->device, device);
        strcpy(d->method, method);
        for (rc = 0; !rc && (size_t)d->nlayers < n; d->nlayers++)
            if ((rc = parse_layer(json_array_get(layers, (size_t)d->nlayers),
                                  &d->layers[d->nlayers])))
                break;
    }
    if (rc == -EINVAL)
        snprintf(err, errlen,
                 "'disks[%zu].captured' needs a device, a method (reflink or overlay) and 1 to "
                 "%d layers of file (disks/NAME), format (raw or qcow2), size and xxh3",
                 i, MANIFEST_MAX_LAYERS);
    return rc;
}

static int parse_disk(json_t *jd, size_t i, struct manifest_disk *d, char *err, size_t errlen)
{
    json_int_t size = -1, mtime = 0, inode = -1;
    const char *path = NULL, *format = NULL, *fp = NULL;

    if (json_unpack(jd, "{s:s, s:s, s:I, s:I, s:I, s:s}", "path", &path, "format", &format, "size",
                    &size, "mtime_ns", &mtime, "inode", &inode, "fingerprint", &fp) ||
        path[0] != '/' || strlen(path) >= PATH_MAX || strlen(format) >= sizeof(d->format) ||
        strlen(fp) >= sizeof(d->fingerprint) || size < 0 || inode < 0) {
        snprintf(err, errlen,
                 "'disks[%zu]' needs an absolute path, format, size, mtime_ns, inode and "
                 "fingerprint",
                 i);
        return -EINVAL;
    }
    d->path = strdup(path);
    if (!d->path)
        return -ENOMEM;
    strcpy(d->format, format);
    strcpy(d->fingerprint, fp);
    d->size = (uint64_t)size;
    d->mtime_ns = (int64_t)mtime;
    d->inode = (uint64_t)inode;
    return json_object_get(jd, "captured")
               ? parse_captured(json_object_get(jd, "captured"), i, d, err, errlen)
               : 0;
}

/* "disks" and "keep_running" come together, or not at all (a manifest of an older savefs). */
static int parse_disks(json_t *root, struct manifest *m, char *err, size_t errlen)
{
    json_t *disks = json_object_get(root, "disks"), *keep = json_object_get(root, "keep_running");
    size_t n = json_array_size(disks);
    int rc;

    if (!disks && !keep)
        return 0;
    if (!json_is_array(disks) || n > MANIFEST_MAX_DISKS || !json_is_boolean(keep)) {
        snprintf(err, errlen,
                 "'disks' must be an array of at most %d entries, with a boolean "
                 "'keep_running'",
                 MANIFEST_MAX_DISKS);
        return -EINVAL;
    }
    m->disks_recorded = 1;
    m->keep_running = json_is_true(keep);
    for (size_t i = 0; i < n; i++) {
        /* Counted before it is whole: manifest_free frees what a bad entry had. */
        m->ndisks = (int)i + 1;
        rc = parse_disk(json_array_get(disks, i), i, &m->disks[i], err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* "checkpoint", only in a live checkpoint's manifest. */
static int parse_checkpoint(json_t *root, struct manifest *m, char *err, size_t errlen)
{
    json_t *c = json_object_get(root, "checkpoint");
    const char *holds = NULL, *at = NULL;

    if (!c)
        return 0;
    if (json_unpack(c, "{s:s, s:s, s:F}", "holds", &holds, "at", &at, "pause_ms",
                    &m->checkpoint_pause_ms) ||
        strcmp(holds, "completion") != 0 || strlen(at) >= sizeof(m->checkpoint_at) ||
        !(m->checkpoint_pause_ms >= 0)) {
        snprintf(err, errlen,
                 "'checkpoint' needs holds \"completion\", a time 'at' and a pause_ms >= 0");
        return -EINVAL;
    }
    strcpy(m->checkpoint_at, at);
    m->checkpoint = 1;
    return 0;
}

/* The optional "libvirt": {"xml": "<domain ...>"}. */
static int parse_libvirt(json_t *lv, struct manifest *m, char *err, size_t errlen)
{
    json_t *xml = json_object_get(lv, "xml");

    if (!lv)
        return 0;
    if (!json_is_object(lv) || !json_is_string(xml) || json_string_length(xml) == 0 ||
        json_string_length(xml) > MANIFEST_LIBVIRT_XML_MAX ||
        strlen(json_string_value(xml)) != json_string_length(xml)) {
        snprintf(err, errlen, "'libvirt.xml' is not a string of 1 to %d bytes",
                 MANIFEST_LIBVIRT_XML_MAX);
        return -EINVAL;
    }
    m->libvirt_xml = strdup(json_string_value(xml));
    return m->libvirt_xml ? 0 : -ENOMEM;
}

static int parse_root(json_t *root, struct manifest *m, char *err, size_t errlen)
{
    json_t *qemu = json_object_get(root, "qemu");
    const char *format = NULL, *binary = NULL, *cwd = NULL;
    json_int_t ram = -1;
    int rc;

    if (json_unpack(root, "{s:s, s:i}", "format", &format, "version", &m->version) ||
        strcmp(format, "savefs-snapshot") != 0) {
        snprintf(err, errlen, "not a savefs manifest (no format \"savefs-snapshot\" and version)");
        return -EINVAL;
    }
    if (m->version != MANIFEST_VERSION) {
        snprintf(err, errlen, "manifest format version %d is not supported (this savefs reads %d)",
                 m->version, MANIFEST_VERSION);
        return -EPROTONOSUPPORT;
    }
    if ((rc = copy_string(root, "vm", m->vm, sizeof(m->vm), err, errlen)) ||
        (rc = copy_string(root, "snapshot", m->snapshot, sizeof(m->snapshot), err, errlen)) ||
        (rc = copy_string(root, "created", m->created, sizeof(m->created), err, errlen)) ||
        (rc = copy_string(root, "compression", m->compression, sizeof(m->compression), err,
                          errlen)) ||
        (rc =
             copy_string(qemu, "version", m->qemu_version, sizeof(m->qemu_version), err, errlen)) ||
        (rc = copy_string(qemu, "machine", m->machine, sizeof(m->machine), err, errlen)) ||
        (rc = copy_string(qemu, "uuid", m->uuid, sizeof(m->uuid), err, errlen)))
        return rc;
    if (json_unpack(root, "{s:I, s:b, s:i, s:F, s:{s:s, s:s}, s?i}", "ram_size", &ram,
                    "was_running", &m->was_running, "channels", &m->channels, "duration_s",
                    &m->duration_s, "qemu", "binary", &binary, "cwd", &cwd, "compression_level",
                    &m->compression_level) ||
        ram <= 0) {
        snprintf(err, errlen,
                 "ram_size, was_running, channels, duration_s, qemu.binary or "
                 "qemu.cwd is missing or of the wrong type");
        return -EINVAL;
    }
    m->ram_size = (uint64_t)ram;
    m->binary = strdup(binary);
    m->cwd = strdup(cwd);
    if (!m->binary || !m->cwd)
        return -ENOMEM;
    rc = parse_argv(json_object_get(qemu, "argv"), m, err, errlen);
    if (!rc)
        rc = parse_files(json_object_get(root, "files"), m, err, errlen);
    if (!rc)
        rc = parse_disks(root, m, err, errlen);
    if (!rc)
        rc = parse_checkpoint(root, m, err, errlen);
    if (!rc)
        rc = parse_libvirt(json_object_get(root, "libvirt"), m, err, errlen);
    return rc ? rc : manifest_check(m, err, errlen);
}

#define CANONICAL_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

int manifest_canonical(const struct manifest *m, char **text)
{
    json_t *root = manifest_to_json(m);

    *text = root ? json_dumps(root, CANONICAL_FLAGS) : NULL;
    json_decref(root);
    return *text ? 0 : -ENOMEM;
}

/* Takes the optional "hmac" out of ROOT into M and keeps the canonical text of the rest. */
static int take_signature(json_t *root, struct manifest *m, char *err, size_t errlen)
{
    json_t *h = json_object_get(root, "hmac");

    if (h && (!json_is_string(h) || json_string_length(h) >= sizeof(m->hmac))) {
        snprintf(err, errlen, "'hmac' is not a string of at most %zu bytes", sizeof(m->hmac) - 1);
        return -EINVAL;
    }
    if (h)
        snprintf(m->hmac, sizeof(m->hmac), "%s", json_string_value(h));
    json_object_del(root, "hmac");
    m->canonical = json_dumps(root, CANONICAL_FLAGS);
    return m->canonical ? 0 : -ENOMEM;
}

int manifest_parse(const char *text, size_t len, const char *name, struct manifest *m, char *err,
                   size_t errlen)
{
    char reason[256];
    json_error_t jerr;
    json_t *root;
    int rc;

    memset(m, 0, sizeof(*m));
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s: %s (line %d)", name, jerr.text, jerr.line);
        return -EINVAL;
    }
    rc = json_is_object(root) ? parse_root(root, m, reason, sizeof(reason)) : -EINVAL;
    if (!rc)
        rc = take_signature(root, m, reason, sizeof(reason));
    if (!json_is_object(root))
        snprintf(reason, sizeof(reason), "not a JSON object");
    if (rc) {
        snprintf(err, errlen, "%s: %s", name, reason);
        manifest_free(m);
    }
    json_decref(root);
    return rc;
}

/* Reads all of PATH, up to MANIFEST_MAX_BYTES, into a malloc'd *TEXT. */
static int slurp(const char *path, char **text, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    size_t n = 0;
    ssize_t got;
    int rc = 0;

    if (fd < 0)
        return -errno;
    *text = malloc(MANIFEST_MAX_BYTES + 1);
    while (*text && n <= MANIFEST_MAX_BYTES &&
           (got = read(fd, *text + n, MANIFEST_MAX_BYTES + 1 - n)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = -errno;
            break;
        }
        n += (size_t)got;
    }
    close(fd);
    if (!*text)
        return -ENOMEM;
    if (!rc && n > MANIFEST_MAX_BYTES)
        rc = -EFBIG;
    *len = n;
    return rc;
}

int manifest_read(const char *path, struct manifest *m, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = slurp(path, &text, &len);

    memset(m, 0, sizeof(*m));
    if (rc == -ENOENT)
        snprintf(err, errlen, "%s is missing", path);
    else if (rc)
        snprintf(err, errlen, "%s: %s", path,
                 rc == -EFBIG ? "larger than a manifest can be" : strerror(-rc));
    else
        rc = manifest_parse(text, len, path, m, err, errlen);
    free(text);
    return rc;
}

/* ---- checks shared by reading and writing ---- */

static int check_files(const struct manifest *m, char *err, size_t errlen)
{
    int i, mains = 0, chans[CP_MAX_CHANNELS] = {0}, idx[CP_MAX_CHANNELS] = {0};
    int zstd = strcmp(m->compression, "zstd") == 0;
    char want[CP_NAME_MAX];

    for (i = 0; i < m->nfiles; i++) {
        const struct cp_file *f = &m->files[i];

        /* With zstd, main and the channels hold zstd frames; indexes never do. */
        if (f->zstd != (zstd && f->kind != CP_INDEX)) {
            snprintf(err, errlen, "file '%s' %s stream_size and stream_xxh3 with compression %s",
                     f->name, f->zstd ? "has" : "lacks", m->compression);
            return -EINVAL;
        }

        if (f->kind != CP_MAIN && (f->channel < 0 || f->channel >= m->channels)) {
            snprintf(err, errlen, "file '%s' names channel %d of %d", f->name, f->channel,
                     m->channels);
            return -EINVAL;
        }
        cp_file_name(f->kind, f->channel, want, sizeof(want));
        if (strcmp(f->name, want) != 0) {
            snprintf(err, errlen, "file '%s' should be named '%s'", f->name, want);
            return -EINVAL;
        }
        if ((f->kind == CP_MAIN && mains++) || (f->kind == CP_CHANNEL && chans[f->channel]++) ||
            (f->kind == CP_INDEX && idx[f->channel]++)) {
            snprintf(err, errlen, "file '%s' is listed twice", f->name);
            return -EINVAL;
        }
    }
    if (!mains) {
        snprintf(err, errlen, "no 'main' file is listed");
        return -EINVAL;
    }
    for (i = 0; i < m->channels; i++)
        if (!chans[i]) {
            snprintf(err, errlen, "no file is listed for channel %d", i);
            return -EINVAL;
        }
    return 0;
}

int manifest_check(const struct manifest *m, char *err, size_t errlen)
{
    if (!store_valid_name(m->vm) || !store_valid_name(m->snapshot)) {
        snprintf(err, errlen, "vm '%s' or snapshot '%s' is not a valid name", m->vm, m->snapshot);
        return -EINVAL;
    }
    if (m->channels < 1 || m->channels > CP_MAX_CHANNELS) {
        snprintf(err, errlen, "channels %d is not between 1 and %d", m->channels, CP_MAX_CHANNELS);
        return -EINVAL;
    }
    if (!(strcmp(m->compression, "none") == 0 && m->compression_level == 0) &&
        !(strcmp(m->compression, "zstd") == 0 && m->compression_level >= 1 &&
          m->compression_level <= CP_ZSTD_LEVEL_MAX)) {
        snprintf(err, errlen, "compression '%s' at level %d is not supported", m->compression,
                 m->compression_level);
        return -EINVAL;
    }
    if (!m->binary || m->binary[0] != '/' || !m->cwd || m->cwd[0] != '/' || m->argc < 1) {
        snprintf(err, errlen,
                 "qemu.binary and qemu.cwd must be absolute paths and qemu.argv not empty");
        return -EINVAL;
    }
    return check_files(m, err, errlen);
}

const struct cp_file *manifest_find(const struct manifest *m, enum cp_kind kind, int channel)
{
    int i;

    for (i = 0; i < m->nfiles; i++)
        if (m->files[i].kind == kind && m->files[i].channel == channel)
            return &m->files[i];
    return NULL;
}

void manifest_free(struct manifest *m)
{
    int i;

    for (i = 0; m->argv && i < m->argc; i++)
        free(m->argv[i]);
    free(m->argv);
    free(m->binary);
    free(m->cwd);
    free(m->canonical);
    free(m->libvirt_xml);
    m->libvirt_xml = NULL;
    for (i = 0; i < m->ndisks; i++) {
        free(m->disks[i].path);
        for (int l = 0; l < m->disks[i].nlayers; l++)
            free(m->disks[i].layers[l].file);
    }
    m->ndisks = 0;
    m->canonical = NULL;
    m->argv = NULL;
    m->binary = NULL;
    m->cwd = NULL;
    m->argc = 0;
}

int manifest_file_stat(const char *dir, const struct cp_file *f, char *path, struct stat *st)
{
    if (store_path(path, "%s/%s", dir, f->name))
        return -ENAMETOOLONG;
    if (lstat(path, st) < 0 || !S_ISREG(st->st_mode))
        return -ENOENT;
    return (uint64_t)st->st_size == f->size ? 0 : -EMSGSIZE;
}
