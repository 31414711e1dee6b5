/* localdef: the host's definition of a VM, read strictly (an unknown key is an error: a typo
 * must not silently weaken what the host meant) and written only to add an accepted digest. */
#include "localdef.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "qemu.h"
#include "store.h"

#define LOCALDEF_MAX_STRINGS 4096

static const char *const known_keys[] = {"binary", "argv", "cwd", "allow", "accept", "paths"};

static int check_keys(json_t *root, char *err, size_t errlen)
{
    const char *key;
    json_t *v;

    json_object_foreach(root, key, v)
    {
        size_t i, n = sizeof(known_keys) / sizeof(known_keys[0]);

        for (i = 0; i < n && strcmp(key, known_keys[i]) != 0; i++)
            ;
        if (i == n) {
            snprintf(err, errlen,
                     "unknown key '%s' (known: binary, argv, cwd, allow, accept, paths)", key);
            return -EINVAL;
        }
    }
    return 0;
}

static int get_path(json_t *root, const char *key, char **out, char *err, size_t errlen)
{
    json_t *v = json_object_get(root, key);

    if (!v)
        return 0;
    if (!json_is_string(v) || json_string_value(v)[0] != '/') {
        snprintf(err, errlen, "'%s' must be an absolute path", key);
        return -EINVAL;
    }
    *out = strdup(json_string_value(v));
    return *out ? 0 : -ENOMEM;
}

static int get_strings(json_t *root, const char *key, char ***out, int *n, char *err, size_t errlen)
{
    json_t *v = json_object_get(root, key), *s;
    size_t i;

    if (!v)
        return 0;
    if (!json_is_array(v) || json_array_size(v) > LOCALDEF_MAX_STRINGS) {
        snprintf(err, errlen, "'%s' must be an array of strings", key);
        return -EINVAL;
    }
    *out = calloc(json_array_size(v) + 1, sizeof(char *));
    if (!*out)
        return -ENOMEM;
    json_array_foreach(v, i, s)
    {
        if (!json_is_string(s) || strlen(json_string_value(s)) != json_string_length(s)) {
            snprintf(err, errlen, "'%s[%zu]' is not a string", key, i);
            return -EINVAL;
        }
        if (!((*out)[i] = strdup(json_string_value(s))))
            return -ENOMEM;
        *n = (int)i + 1;
    }
    return 0;
}

static int map_from_json(json_t *obj, struct path_map *map, char *err, size_t errlen)
{
    size_t n = json_object_size(obj);
    const char *from;
    json_t *to;

    if (!json_is_object(obj)) {
        snprintf(err, errlen, "a path map must be an object {\"/from\": \"/to\"}");
        return -EINVAL;
    }
    map->from = calloc(n + 1, sizeof(char *));
    map->to = calloc(n + 1, sizeof(char *));
    if (!map->from || !map->to)
        return -ENOMEM;
    json_object_foreach(obj, from, to)
    {
        if (!json_is_string(to)) {
            snprintf(err, errlen, "path map: '%s' must map to a string", from);
            return -EINVAL;
        }
        map->from[map->n] = strdup(from);
        map->to[map->n] = strdup(json_string_value(to));
        map->n++;
        if (!map->from[map->n - 1] || !map->to[map->n - 1])
            return -ENOMEM;
    }
    return qemuopts_check_map(map, err, errlen);
}

static int parse(json_t *root, struct localdef *d, char *err, size_t errlen)
{
    json_t *paths = json_object_get(root, "paths");
    int rc;

    if (!json_is_object(root)) {
        snprintf(err, errlen, "not a JSON object");
        return -EINVAL;
    }
    if ((rc = check_keys(root, err, errlen)) ||
        (rc = get_path(root, "binary", &d->binary, err, errlen)) ||
        (rc = get_path(root, "cwd", &d->cwd, err, errlen)) ||
        (rc = get_strings(root, "argv", &d->argv, &d->argc, err, errlen)) ||
        (rc = get_strings(root, "allow", &d->allow, &d->nallow, err, errlen)) ||
        (rc = get_strings(root, "accept", &d->accept, &d->naccept, err, errlen)))
        return rc;
    if (d->argv && d->argc == 0) {
        snprintf(err, errlen, "'argv' must not be empty");
        return -EINVAL;
    }
    return paths ? map_from_json(paths, &d->paths, err, errlen) : 0;
}

void localdef_own_name(char *name, size_t len)
{
    snprintf(name, len, "%s@%s", LOCALDEF_NAME, store_host());
}

/* STORE/VM/local.json@HOST (OWN 1) or STORE/VM/local.json (OWN 0) into PATH. */
static int def_path(const char *store, const char *vm, int own, char *path)
{
    return own ? store_vm_host_path(path, store, vm, LOCALDEF_NAME)
               : store_vm_path(path, store, vm, LOCALDEF_NAME);
}

/* D from ROOT, loaded from NAME (NULL: JERR says why it did not load); ROOT is released. */
static int from_json(json_t *root, const json_error_t *jerr, const char *name, struct localdef *d,
                     char *err, size_t errlen)
{
    char why[512];
    int rc;

    if (!root) {
        snprintf(err, errlen, "%s: %s (line %d)", name, jerr->text, jerr->line);
        return -EINVAL;
    }
    d->present = 1;
    rc = parse(root, d, why, sizeof(why));
    if (rc) {
        snprintf(err, errlen, "%s: %s", name, why);
        localdef_free(d);
    }
    json_decref(root);
    return rc;
}

int localdef_parse(const char *text, size_t len, const char *name, struct localdef *d, char *err,
                   size_t errlen)
{
    json_error_t jerr;

    memset(d, 0, sizeof(*d));
    return from_json(json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr), &jerr, name, d, err,
                     errlen);
}

int localdef_read(const char *store, const char *vm, struct localdef *d, char *err, size_t errlen)
{
    char path[PATH_MAX];
    json_error_t jerr;

    memset(d, 0, sizeof(*d));
    localdef_own_name(d->name, sizeof(d->name));
    for (int own = 1; own >= 0; own--) {
        if (def_path(store, vm, own, path))
            return -ENAMETOOLONG;
        if (access(path, F_OK) < 0 && errno == ENOENT)
            continue;
        if (!own)
            snprintf(d->name, sizeof(d->name), "%s", LOCALDEF_NAME);
        return from_json(json_load_file(path, JSON_REJECT_DUPLICATES, &jerr), &jerr, path, d, err,
                         errlen);
    }
    return 0;
}

void localdef_free(struct localdef *d)
{
    free(d->binary);
    free(d->cwd);
    /* Each array has room for a NULL after its last string (get_strings). */
    qemu_argv_free(d->argv);
    qemu_argv_free(d->allow);
    qemu_argv_free(d->accept);
    qemuopts_map_free(&d->paths);
    memset(d, 0, sizeof(*d));
}

static int same_option(const char *a, const char *b)
{
    if (a[0] != '-' || b[0] != '-')
        return 0;
    return strcmp(a + 1 + (a[1] == '-'), b + 1 + (b[1] == '-')) == 0;
}

static int pairs_have(char *const *v, int n, const char *opt, const char *value)
{
    for (int i = 0; i + 1 < n; i++)
        if (same_option(v[i], opt) && strcmp(v[i + 1], value) == 0)
            return 1;
    return 0;
}

int localdef_has_option(const struct localdef *d, const char *opt, const char *value)
{
    return pairs_have(d->argv, d->argc, opt, value) || pairs_have(d->allow, d->nallow, opt, value);
}

int localdef_accepts(const struct localdef *d, const char *digest)
{
    for (int i = 0; i < d->naccept; i++)
        if (strcmp(d->accept[i], digest) == 0)
            return 1;
    return 0;
}

/* The current definition as JSON ({} if there is none), checked like localdef_read. */
static json_t *load_for_update(const char *path, char *err, size_t errlen)
{
    struct localdef check = {0};
    json_error_t jerr;
    json_t *root;

    if (access(path, F_OK) < 0 && errno == ENOENT)
        return json_object();
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s: %s (line %d)", path, jerr.text, jerr.line);
        return NULL;
    }
    if (parse(root, &check, err, errlen)) {
        json_decref(root);
        root = NULL;
    }
    localdef_free(&check);
    return root;
}

static int add_digest(json_t *root, const char *digest)
{
    json_t *list = json_object_get(root, "accept"), *v;
    size_t i;

    if (!list) {
        list = json_array();
        if (!list || json_object_set_new(root, "accept", list))
            return -ENOMEM;
    }
    json_array_foreach(list, i, v) if (strcmp(json_string_value(v), digest) == 0) return 0;
    return json_array_append_new(list, json_string(digest)) ? -ENOMEM : 0;
}

/* Writes ROOT to PATH through PATH.tmp: whole or not at all. */
static int replace_file(json_t *root, const char *path, char *err, size_t errlen)
{
    char tmp[PATH_MAX], *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    size_t len = text ? strlen(text) : 0;
    int fd = -1, rc = 0;

    /* A unique name: `savefs accept` and a mounted savefs may both write. */
    if (!text || store_path(tmp, "%s.XXXXXX", path)) {
        rc = text ? -ENAMETOOLONG : -ENOMEM;
        goto out;
    }
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0 && close(fd) < 0 && !rc)
        rc = -errno;
    if (!rc && rename(tmp, path) < 0)
        rc = -errno;
    if (rc) {
        snprintf(err, errlen, "write %s: %s", path, strerror(-rc));
        unlink(tmp);
    }
out:
    free(text);
    return rc;
}

int localdef_accept(const char *store, const char *vm, const char *digest, char *err, size_t errlen)
{
    char path[PATH_MAX], shared[PATH_MAX], dir[PATH_MAX];
    json_t *root = NULL;
    int rc, dirfd;

    if (def_path(store, vm, 1, path) || def_path(store, vm, 0, shared) ||
        store_vm_path(dir, store, vm, NULL))
        return -ENAMETOOLONG;
    /* Read, add, rename under an exclusive flock of the VM's directory: the mount and `savefs
     * accept` are two processes (and each thread opens its own descriptor), and an update made
     * between another writer's read and rename would be lost. */
    dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0 || flock(dirfd, LOCK_EX) < 0) {
        rc = -errno;
        snprintf(err, errlen, "write %s: %s", path, strerror(-rc));
        goto out;
    }
    /* The host's first acceptance keeps what the shared definition said, which it read until
     * now: its own file replaces that one for it. */
    root = load_for_update(access(path, F_OK) == 0 ? path : shared, err, errlen);
    rc = !root ? -EINVAL : add_digest(root, digest);
    if (!rc)
        rc = replace_file(root, path, err, errlen);
    if (!rc)
        rc = store_fsync_dir(dir);
out:
    if (dirfd >= 0)
        close(dirfd); /* and the lock with it */
    json_decref(root);
    return rc;
}

int localdef_read_map(const char *path, struct path_map *map, char *err, size_t errlen)
{
    char why[512];
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    int rc;

    memset(map, 0, sizeof(*map));
    if (!root) {
        snprintf(err, errlen, "%s: %s (line %d)", path, jerr.text, jerr.line);
        return -EINVAL;
    }
    rc = map_from_json(root, map, why, sizeof(why));
    if (rc) {
        snprintf(err, errlen, "%s: %s", path, why);
        qemuopts_map_free(map);
    }
    json_decref(root);
    return rc;
}
