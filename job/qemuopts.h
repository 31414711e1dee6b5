/* qemuopts: reads a QEMU command line the way a host that did not write it must: which options
 * make QEMU start another program, which ones savefs sets itself, and where host paths are (for
 * a path map). Pure functions, any thread. */
#ifndef SAVEFS_QEMUOPTS_H
#define SAVEFS_QEMUOPTS_H

#include <stddef.h>

/* A host-specific path map: a path that starts with FROM[i] (the whole prefix, then '/' or the
 * end) is rewritten to start with TO[i]; the longest FROM wins. */
struct path_map {
    int n;
    char **from, **to;
};

/* The index in ARGV of the first option (its name) that makes QEMU start another program or
 * load code into itself, with the reason in WHY; -1 if there is none. Options that cannot be
 * checked (-readconfig, -set, a netdev in JSON) count as such. */
int qemuopts_find_program(char *const *argv, int argc, char *why, size_t whylen);

/* The index of the first option that savefs sets itself on a restore (-incoming, -daemonize),
 * or -1. */
int qemuopts_find_reserved(char *const *argv, int argc);

/* Looks up KEY in the QEMU option string OPTS ("tap,id=n0,script=no"; ",," is a literal comma).
 * 1 and its unescaped value in OUT (truncated to LEN) if present, else 0. */
int qemuopts_get(const char *opts, const char *key, char *out, size_t len);

/* ARG with every path that MAP rewrites rewritten: a path starts ARG or follows '=', ':' or ','.
 * New string in *OUT. */
int qemuopts_map_arg(const char *arg, const struct path_map *map, char **out);

/* Checks MAP's entries: absolute, no "..", no ',' (QEMU would read it as a separator). */
int qemuopts_check_map(const struct path_map *map, char *err, size_t errlen);

void qemuopts_map_free(struct path_map *map);

#endif
