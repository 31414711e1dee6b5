/* qemudisk: disk images in a QEMU command line, swapped for others, and qemu-img for overlays.
 * A -drive names its image with file= and its driver with format=; a -blockdev names it with
 * filename= (a protocol node, read by the format node whose file= is its node-name) or
 * file.filename= (inline, the driver= beside it), in QemuOpts or JSON form. */
#include "qemudisk.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qemu.h"
#include "qemu_int.h"
#include "qemuopts.h"

#define QCOW2_MAGIC     0x514649fbU
#define MAX_NODES       64
#define QEMU_IMG_OUTPUT 512

/* Node names of protocol nodes whose image was swapped, and the driver their reader gets. */
struct nodes {
    char *name[MAX_NODES];
    const char *format[MAX_NODES];
    int n;
};

/* The swap whose image PATH (as QEMU reads it, from CWD) is, or NULL. */
static struct qemudisk_swap *find_swap(const char *path, const char *cwd, struct qemudisk_swap *sw,
                                       int n)
{
    char abs[PATH_MAX], real[PATH_MAX];
    int has_real;

    if (!path || !path[0] ||
        snprintf(abs, sizeof(abs), "%s%s%s", path[0] == '/' ? "" : cwd, path[0] == '/' ? "" : "/",
                 path) >= (int)sizeof(abs))
        return NULL;
    has_real = realpath(abs, real) != NULL;
    for (int i = 0; i < n; i++)
        if (strcmp(abs, sw[i].from) == 0 || (has_real && strcmp(real, sw[i].from) == 0))
            return &sw[i];
    return NULL;
}

/* The items of the QemuOpts string S, raw (",," kept), in ITEMS[*N]. */
static int split_items(const char *s, char ***items, int *n)
{
    *items = NULL;
    *n = 0;
    while (*s) {
        const char *p = s;
        char **grown;

        while (*p && !(*p == ',' && p[1] != ','))
            p += *p == ',' ? 2 : 1;
        grown = realloc(*items, (size_t)(*n + 1) * sizeof(char *));
        if (!grown || !(grown[*n] = strndup(s, (size_t)(p - s)))) {
            *items = grown ? grown : *items;
            return -ENOMEM;
        }
        *items = grown;
        (*n)++;
        s = *p ? p + 1 : p;
    }
    return 0;
}

static void free_items(char **items, int n)
{
    for (int i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

static int has_key(const char *item, const char *key)
{
    size_t len = strlen(key);

    return strncmp(item, key, len) == 0 && item[len] == '=';
}

/* ITEM replaced by KEY=VALUE (VALUE escaped). */
static int set_item(char **item, const char *key, const char *value)
{
    char *esc = qemu_opt_escape(value), *s = NULL;

    if (esc && asprintf(&s, "%s=%s", key, esc) < 0)
        s = NULL;
    free(esc);
    if (!s)
        return -ENOMEM;
    free(*item);
    *item = s;
    return 0;
}

/* The items joined by ',' into *OUT, with ",KEY=VALUE" after them if ADD_KEY. */
static int join_items(char **items, int n, const char *add_key, const char *add_value, char **out)
{
    size_t len = 1 + (add_key ? strlen(add_key) + strlen(add_value) + 2 : 0);
    char *s;

    for (int i = 0; i < n; i++)
        len += strlen(items[i]) + 1;
    s = *out = calloc(1, len);
    if (!s)
        return -ENOMEM;
    for (int i = 0; i < n; i++)
        s += sprintf(s, "%s%s", i ? "," : "", items[i]);
    if (add_key)
        sprintf(s, "%s%s=%s", n ? "," : "", add_key, add_value);
    return 0;
}

/* -drive VALUE: file= swapped, format= set. */
static int swap_drive(const char *value, const char *cwd, struct qemudisk_swap *sw, int n,
                      char **out)
{
    char file[PATH_MAX], **items;
    struct qemudisk_swap *s;
    int nitems, rc, has_format = 0;

    if (!qemuopts_get(value, "file", file, sizeof(file)) || !(s = find_swap(file, cwd, sw, n)))
        return (*out = strdup(value)) ? 0 : -ENOMEM;
    rc = split_items(value, &items, &nitems);
    for (int i = 0; !rc && i < nitems; i++) {
        if (has_key(items[i], "file"))
            rc = set_item(&items[i], "file", s->to);
        else if (has_key(items[i], "format") && (has_format = 1))
            rc = set_item(&items[i], "format", s->format);
    }
    if (!rc)
        rc = join_items(items, nitems, has_format ? NULL : "format", s->format, out);
    s->matched += !rc;
    free_items(items, nitems);
    return rc;
}

static int nodes_add(struct nodes *nodes, const char *name, const char *format)
{
    if (!name)
        return 0;
    if (nodes->n == MAX_NODES || !(nodes->name[nodes->n] = strdup(name)))
        return -ENOMEM;
    nodes->format[nodes->n++] = format;
    return 0;
}

/* The driver for the format node that reads protocol node NAME, if its image was swapped. */
static const char *nodes_format(const struct nodes *nodes, const char *name)
{
    for (int i = 0; name && i < nodes->n; i++)
        if (strcmp(nodes->name[i], name) == 0)
            return nodes->format[i];
    return NULL;
}

/* -blockdev in JSON: filename (a protocol node, remembered in NODES by its node-name) or
 * file.filename (with driver) swapped; a node reading a remembered protocol node gets its
 * driver. */
static int swap_blockdev_json(const char *value, const char *cwd, struct qemudisk_swap *sw, int n,
                              struct nodes *nodes, char **out)
{
    json_t *o = json_loads(value, 0, NULL), *file;
    struct qemudisk_swap *s;
    const char *format;
    int rc = 0;

    if (!json_is_object(o)) {
        json_decref(o);
        return (*out = strdup(value)) ? 0 : -ENOMEM;
    }
    file = json_object_get(o, "file");
    if ((s = find_swap(json_string_value(json_object_get(o, "filename")), cwd, sw, n))) {
        rc = json_object_set_new(o, "filename", json_string(s->to)) ||
                     nodes_add(nodes, json_string_value(json_object_get(o, "node-name")), s->format)
                 ? -ENOMEM
                 : 0;
        s->matched++;
    } else if (json_is_object(file) &&
               (s = find_swap(json_string_value(json_object_get(file, "filename")), cwd, sw, n))) {
        rc = json_object_set_new(file, "filename", json_string(s->to)) ||
                     json_object_set_new(o, "driver", json_string(s->format))
                 ? -ENOMEM
                 : 0;
        s->matched++;
    } else if ((format = nodes_format(nodes, json_string_value(file)))) {
        rc = json_object_set_new(o, "driver", json_string(format)) ? -ENOMEM : 0;
    }
    if (!rc && !(*out = json_dumps(o, JSON_COMPACT)))
        rc = -ENOMEM;
    json_decref(o);
    return rc;
}

/* -blockdev in QemuOpts form, the same way as swap_blockdev_json. */
static int swap_blockdev_opts(const char *value, const char *cwd, struct qemudisk_swap *sw, int n,
                              struct nodes *nodes, char **out)
{
    char path[PATH_MAX], node[256], ref[256], **items;
    struct qemudisk_swap *top = NULL, *inner = NULL;
    const char *format = NULL;
    int nitems, rc;

    if (qemuopts_get(value, "filename", path, sizeof(path)))
        top = find_swap(path, cwd, sw, n);
    if (qemuopts_get(value, "file.filename", path, sizeof(path)))
        inner = find_swap(path, cwd, sw, n);
    if (!top && !inner && qemuopts_get(value, "file", ref, sizeof(ref)))
        format = nodes_format(nodes, ref);
    if (!top && !inner && !format)
        return (*out = strdup(value)) ? 0 : -ENOMEM;
    rc = split_items(value, &items, &nitems);
    for (int i = 0; !rc && i < nitems; i++) {
        if (top && has_key(items[i], "filename"))
            rc = set_item(&items[i], "filename", top->to);
        else if (inner && has_key(items[i], "file.filename"))
            rc = set_item(&items[i], "file.filename", inner->to);
        else if ((inner || format) && has_key(items[i], "driver"))
            rc = set_item(&items[i], "driver", inner ? inner->format : format);
    }
    if (!rc && top && qemuopts_get(value, "node-name", node, sizeof(node)))
        rc = nodes_add(nodes, node, top->format);
    if (!rc)
        rc = join_items(items, nitems, NULL, NULL, out);
    if (top)
        top->matched++;
    if (inner)
        inner->matched++;
    free_items(items, nitems);
    return rc;
}

/* Over the command line in OUT (copies, replaced as they change): a node refers only to nodes
 * declared before it, so one pass finds every reader of a swapped protocol node. */
static int swap_pass(char **out, int argc, const char *cwd, struct qemudisk_swap *sw, int n,
                     struct nodes *nodes)
{
    int rc = 0;

    for (int i = 1; !rc && i + 1 < argc; i++) {
        char *value = out[i + 1], *next = NULL;

        if (qemuopts_is_opt(out[i], "drive"))
            rc = swap_drive(value, cwd, sw, n, &next);
        else if (qemuopts_is_opt(out[i], "blockdev") && value[0] == '{')
            rc = swap_blockdev_json(value, cwd, sw, n, nodes, &next);
        else if (qemuopts_is_opt(out[i], "blockdev"))
            rc = swap_blockdev_opts(value, cwd, sw, n, nodes, &next);
        else
            continue;
        if (!rc) {
            free(out[i + 1]);
            out[i + 1] = next;
            i++;
        }
    }
    return rc;
}

int qemudisk_argv_swap(char *const *argv, int argc, const char *cwd, struct qemudisk_swap *sw,
                       int n, char ***out)
{
    struct nodes nodes = {.n = 0};
    char **copy = calloc((size_t)argc + 1, sizeof(char *));
    int rc = copy ? 0 : -ENOMEM;

    for (int i = 0; !rc && i < argc; i++)
        if (!(copy[i] = strdup(argv[i])))
            rc = -ENOMEM;
    for (int i = 0; i < n; i++)
        sw[i].matched = 0;
    if (!rc)
        rc = swap_pass(copy, argc, cwd, sw, n, &nodes);
    for (int i = 0; i < nodes.n; i++)
        free(nodes.name[i]);
    if (rc) {
        qemu_argv_free(copy);
        copy = NULL;
    }
    *out = copy;
    return rc;
}

/* qemu-img beside QEMU_BINARY (the same build), else the one on PATH. */
static void qemu_img_path(const char *qemu_binary, char *out, size_t len)
{
    char *dir = strdup(qemu_binary ? qemu_binary : "");

    if (dir && qemu_binary && qemu_binary[0] == '/' &&
        snprintf(out, len, "%s/qemu-img", dirname(dir)) < (int)len && access(out, X_OK) == 0) {
        free(dir);
        return;
    }
    free(dir);
    snprintf(out, len, "/usr/bin/qemu-img");
}

static int run_qemu_img(const char *qemu_binary, char **args, char *err, size_t errlen)
{
    char img[PATH_MAX], out[QEMU_IMG_OUTPUT];
    int status = 0, rc;

    qemu_img_path(qemu_binary, img, sizeof(img));
    args[0] = img;
    rc = qemu_run(img, args, out, sizeof(out), &status);
    if (rc) {
        snprintf(err, errlen, "start %s: %s", img, strerror(-rc));
        return rc;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    out[strcspn(out, "\n")] = '\0';
    snprintf(err, errlen, "%s %s: %s", img, args[1], out[0] ? out : "failed");
    return -EIO;
}

int qemudisk_overlay(const char *qemu_binary, const char *overlay, const char *backing,
                     const char *format, uint64_t size, char *err, size_t errlen)
{
    char sz[32];
    char *args[] = {
        NULL, "create",        "-q", "-f", "qcow2", "-b", (char *)backing, "-F", (char *)format,
        "-u", (char *)overlay, sz,   NULL};

    /* With a size, BACKING is not opened (it may be in use); without, it says its size. */
    snprintf(sz, sizeof(sz), "%" PRIu64, size);
    if (!size) {
        args[9] = (char *)overlay;
        args[10] = NULL;
    }
    return run_qemu_img(qemu_binary, args, err, errlen);
}

int qemudisk_rebase(const char *qemu_binary, const char *image, const char *backing,
                    const char *format, char *err, size_t errlen)
{
    char *args[] = {NULL, "rebase",       "-u",          "-b", (char *)backing,
                    "-F", (char *)format, (char *)image, NULL};

    return run_qemu_img(qemu_binary, args, err, errlen);
}

int qemudisk_qcow2_backing(int fd, char *out, size_t len)
{
    unsigned char hdr[20];
    uint32_t magic, name_len;
    uint64_t off;

    if (pread(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
        return -EINVAL;
    memcpy(&magic, hdr, 4);
    memcpy(&off, hdr + 8, 8);
    memcpy(&name_len, hdr + 16, 4);
    if (be32toh(magic) != QCOW2_MAGIC)
        return -EINVAL;
    off = be64toh(off);
    name_len = be32toh(name_len);
    if (!off) {
        snprintf(out, len, "%s", "");
        return 0;
    }
    /* QEMU refuses a name over 1023 bytes. */
    if (name_len >= len || name_len > 1023 ||
        pread(fd, out, name_len, (off_t)off) != (ssize_t)name_len)
        return -EINVAL;
    out[name_len] = '\0';
    return 0;
}
