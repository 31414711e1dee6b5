/* qemuopts: QEMU's command line seen as untrusted input. The program check does not parse the
 * whole command line (option arity differs by version): it looks at every element that names a
 * watched option and at the element after it, so an option cannot hide behind a misread flag;
 * a watched name that is itself a value only makes the check stricter. */
#include "qemuopts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALUE_MAX 4096

/* NAME without its one or two leading dashes if ARG is an option, else NULL. */
static const char *opt_name(const char *arg)
{
    if (arg[0] != '-' || arg[1] == '\0')
        return NULL;
    return arg + (arg[1] == '-' ? 2 : 1);
}

static int is_opt(const char *arg, const char *name)
{
    const char *n = opt_name(arg);

    return n && strcmp(n, name) == 0;
}

/* Copies the item of OPTS at *P (up to an unescaped ',') unescaped into OUT; advances *P. */
static void next_item(const char **p, char *out, size_t len)
{
    size_t n = 0;

    while (**p) {
        if (**p == ',' && (*p)[1] != ',')
            break;
        if (n + 1 < len)
            out[n++] = **p;
        *p += **p == ',' ? 2 : 1;
    }
    if (**p == ',')
        (*p)++;
    out[n] = '\0';
}

int qemuopts_get(const char *opts, const char *key, char *out, size_t len)
{
    size_t klen = strlen(key);
    char item[VALUE_MAX];
    const char *p = opts;
    int found = 0;

    /* QEMU takes the last occurrence of a repeated key. */
    while (*p) {
        next_item(&p, item, sizeof(item));
        if (strncmp(item, key, klen) == 0 && item[klen] == '=') {
            snprintf(out, len, "%s", item + klen + 1);
            found = 1;
        }
    }
    return found;
}

/* The backend type of a -netdev/-net/-nic value: its first item, or its type= key. */
static void net_type(const char *opts, char *type, size_t len)
{
    const char *p = opts;

    next_item(&p, type, len);
    if (strchr(type, '=') && !qemuopts_get(opts, "type", type, len))
        type[0] = '\0';
}

static int script_off(const char *opts, const char *key)
{
    char v[VALUE_MAX];

    return qemuopts_get(opts, key, v, sizeof(v)) && (strcmp(v, "no") == 0 || v[0] == '\0');
}

/* Why a network backend OPTS starts a program, or NULL. */
static const char *net_program(const char *opts)
{
    char type[64], v[VALUE_MAX];

    if (opts[0] == '{')
        return "a netdev in JSON cannot be checked";
    net_type(opts, type, sizeof(type));
    if (qemuopts_get(opts, "helper", v, sizeof(v)))
        return "helper= runs a program";
    if (strcmp(type, "bridge") == 0)
        return "a bridge backend runs qemu-bridge-helper";
    if (strcmp(type, "tap") == 0 && !qemuopts_get(opts, "fd", v, sizeof(v)) &&
        !qemuopts_get(opts, "fds", v, sizeof(v)) &&
        !(script_off(opts, "script") && script_off(opts, "downscript")))
        return "a tap backend runs its script and downscript (/etc/qemu-ifup by default) unless "
               "both are 'no'";
    if (strcmp(type, "user") == 0 && qemuopts_get(opts, "smb", v, sizeof(v)))
        return "smb= runs smbd";
    if (strcmp(type, "user") == 0 && strstr(opts, "cmd:"))
        return "guestfwd=...-cmd: runs a command";
    return NULL;
}

/* Why option ARG with value VALUE starts a program, or NULL. */
static const char *option_program(const char *arg, const char *value)
{
    if (is_opt(arg, "netdev") || is_opt(arg, "net") || is_opt(arg, "nic"))
        return net_program(value);
    if (is_opt(arg, "plugin"))
        return "a TCG plugin is code loaded into QEMU";
    if (is_opt(arg, "readconfig"))
        return "a config file can hold any option: it cannot be checked";
    if (is_opt(arg, "set"))
        return "-set can change any option: it cannot be checked";
    return NULL;
}

int qemuopts_find_program(char *const *argv, int argc, char *why, size_t whylen)
{
    for (int i = 0; i < argc; i++) {
        const char *reason = option_program(argv[i], i + 1 < argc ? argv[i + 1] : "");

        if (reason) {
            snprintf(why, whylen, "%s", reason);
            return i;
        }
    }
    return -1;
}

int qemuopts_find_reserved(char *const *argv, int argc)
{
    for (int i = 0; i < argc; i++)
        if (is_opt(argv[i], "incoming") || is_opt(argv[i], "daemonize"))
            return i;
    return -1;
}

/* The length of the longest FROM of MAP that P starts with (as a whole path prefix), and its
 * index in *WHICH; 0 if none. */
static size_t map_match(const char *p, const struct path_map *map, int *which)
{
    size_t best = 0;

    for (int i = 0; i < map->n; i++) {
        size_t len = strlen(map->from[i]);
        char after;

        if (len <= best || strncmp(p, map->from[i], len) != 0)
            continue;
        after = p[len]; /* P is at least LEN long: it starts with FROM */
        if (after == '/' || after == '\0' || after == ',' || map->from[i][len - 1] == '/') {
            best = len;
            *which = i;
        }
    }
    return best;
}

int qemuopts_map_arg(const char *arg, const struct path_map *map, char **out)
{
    size_t alen = strlen(arg), cap = alen + 1, n = 0; /* strlen once: args run to 64 KiB */
    char *s = malloc(cap);

    if (!s)
        return -ENOMEM;
    for (size_t i = 0; arg[i];) {
        int which = -1;
        int boundary = i == 0 || strchr("=:,", arg[i - 1]);
        size_t len = boundary && arg[i] == '/' ? map_match(arg + i, map, &which) : 0;
        const char *add = len ? map->to[which] : arg + i;
        size_t addlen = len ? strlen(add) : 1;

        if (n + addlen + (alen - i) + 1 > cap) {
            char *grown = realloc(s, cap = n + addlen + (alen - i) + 1);
            if (!grown) {
                free(s);
                return -ENOMEM;
            }
            s = grown;
        }
        memcpy(s + n, add, addlen);
        n += addlen;
        i += len ? len : 1;
    }
    s[n] = '\0';
    *out = s;
    return 0;
}

static int check_map_path(const char *p, char *err, size_t errlen)
{
    if (p[0] != '/' || strchr(p, ',') || strstr(p, "/../") ||
        (strlen(p) >= 3 && strcmp(p + strlen(p) - 3, "/..") == 0)) {
        snprintf(err, errlen, "path map entry '%s' must be an absolute path without ',' or '..'",
                 p);
        return -EINVAL;
    }
    return 0;
}

int qemuopts_check_map(const struct path_map *map, char *err, size_t errlen)
{
    int rc = 0;

    for (int i = 0; !rc && i < map->n; i++)
        if (!(rc = check_map_path(map->from[i], err, errlen)))
            rc = check_map_path(map->to[i], err, errlen);
    return rc;
}

void qemuopts_map_free(struct path_map *map)
{
    for (int i = 0; i < map->n; i++) {
        free(map->from[i]);
        free(map->to[i]);
    }
    free(map->from);
    free(map->to);
    memset(map, 0, sizeof(*map));
}
