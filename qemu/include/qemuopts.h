/* qemuopts: reads a QEMU command line the way a host that did not write it must: which options
 * are not known to be harmless (they start programs, reach beyond the VM's own files, or cannot
 * be checked), which host paths QEMU would open, which options savefs sets itself, and where
 * host paths are (for a path map). Pure functions, any thread. */
#ifndef SAVEFS_QEMUOPTS_H
#define SAVEFS_QEMUOPTS_H

#include <stddef.h>

/* A host-specific path map: a path that starts with FROM[i] (the whole prefix, then '/' or the
 * end) is rewritten to start with TO[i]; the longest FROM wins. */
struct path_map {
    int n;
    char **from, **to;
};

enum qemuopts_kind {
    QEMUOPTS_ALLOWANCE, /* not on the allowlist: needs the host's allowance */
    QEMUOPTS_PATH,      /* a host path that QEMU opens */
};

/* What QEMU does with a host path. */
enum qemuopts_access {
    QEMUOPTS_READS,
    QEMUOPTS_WRITES, /* creates or truncates */
    QEMUOPTS_READS_WRITES,
    QEMUOPTS_SOCKET,    /* a unix socket: creates it (server) or connects to it */
    QEMUOPTS_DIRECTORY, /* the files below it (read, shared with the guest, or created) */
};

/* One finding: an option that needs an allowance, or a host path. PATH is as QEMU reads it
 * (relative to its working directory if not absolute); WHY says why an option needs an
 * allowance, or which key names a path. */
struct qemuopts_finding {
    enum qemuopts_kind kind;
    int opt; /* index in argv of the option (its value follows) or of a bare disk image */
    enum qemuopts_access access; /* QEMUOPTS_PATH */
    char *path;                  /* QEMUOPTS_PATH */
    char why[160];
};

struct qemuopts_report {
    struct qemuopts_finding *f;
    int n;
};

/* Reads ARGV (ARGV[0] is the program) with QEMU 7.2's own rules (an option's arity, QemuOpts: the
 * last of a repeated key wins, type=/driver= override the implied first item, ",," escapes a
 * comma, JSON forms; the -nic/-net/-netdev, chardev and disk shorthands) and reports, in order,
 * every option whose backend, driver or key is not on the allowlist (docs/trust.md) and every
 * host path. 0, or -ENOMEM. */
int qemuopts_check(char *const *argv, int argc, struct qemuopts_report *r);
void qemuopts_report_free(struct qemuopts_report *r);

/* "reads", "writes", ... */
const char *qemuopts_access_name(enum qemuopts_access a);

/* S in double quotes with '\', '"' and every byte that is not printable ASCII escaped (\r, \n,
 * \t, \xHH), so that a terminal shows it as it is: malloc'd, or NULL. */
char *qemuopts_quote(const char *s);

/* 1 if ARG is option NAME: "-NAME" or "--NAME", which are the same option to QEMU. */
int qemuopts_is_opt(const char *arg, const char *name);

/* 1 if ARG is an option that savefs sets itself on a restore (-incoming, -daemonize, -S), with
 * whether a value follows it in *HAS_VALUE and whether a command line that savefs did not write
 * may not set it in *REFUSED; else 0. */
int qemuopts_reserved(const char *arg, int *has_value, int *refused);

/* The index of the first option that savefs sets itself on a restore and that a command line
 * may not set (-incoming, -daemonize), or -1. */
int qemuopts_find_reserved(char *const *argv, int argc);

/* Looks up KEY in the QEMU option string OPTS ("tap,id=n0,script=no"; ",," is a literal comma).
 * 1 and its unescaped value in OUT (truncated to LEN) if present, else 0. */
int qemuopts_get(const char *opts, const char *key, char *out, size_t len);

/* 1 if ARGV's guest RAM cannot be restored lazily (postcopy), the reason in WHY (LEN): RAM
 * mapped from a file on a file system userfaultfd cannot serve (anything but tmpfs and
 * hugetlbfs), or mapped privately from a file that holds data (a memory-backend-file with share
 * off, or -mem-path): a postcopy destination discards its RAM before the pages come, and QEMU
 * discards a file's RAM by punching holes in the file even under a private mapping (7.2's
 * ram_block_discard_range), wiping a template other VMs may start from. A directory (QEMU makes
 * an unlinked file in it), a file QEMU makes, an empty one, or a shared mapping on tmpfs or
 * hugetlbfs is no obstacle. Relative paths are CWD's. */
int qemuopts_ram_obstacle(char *const *argv, int argc, const char *cwd, char *why, size_t len);

/* ARG with every path that MAP rewrites rewritten: a path starts ARG or follows '=', ':' or ','.
 * New string in *OUT. */
int qemuopts_map_arg(const char *arg, const struct path_map *map, char **out);

/* Checks MAP's entries: absolute, no "..", no ',' (QEMU would read it as a separator). */
int qemuopts_check_map(const struct path_map *map, char *err, size_t errlen);

void qemuopts_map_free(struct path_map *map);

#endif
