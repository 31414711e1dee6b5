/* localdef: STORE/NAME/local.json@HOST, the host's own definition of VM NAME: what this host
 * accepts of snapshots that it cannot recognize by their signature, and how it runs them. Per
 * host, since a fleet of hosts may share the store (docs/fleet.md); a host without a file of its
 * own reads STORE/NAME/local.json, the definition of every host (such as one written before
 * definitions were per host), and its first acceptance starts its own file from that one's
 * content. Written by the host's administrator (or by savefs when the user accepts a snapshot);
 * never carried with a snapshot. Every field is optional:
 *   "binary": QEMU binary to run instead of the snapshot's
 *   "argv":   command line to run instead of the snapshot's (the snapshot then decides nothing
 *             about what QEMU opens or runs on this host)
 *   "cwd":    working directory to run in instead of the snapshot's
 *   "allow":  option/value pairs, flat like argv, that may start programs ("-netdev", "tap,...")
 *   "accept": ["sha256:HEX"...], digests of manifests accepted as they are (trust.h)
 *   "paths":  {"/from": "/to"...}, the path map for this VM (qemuopts.h)
 * Pure file operations, any thread. */
#ifndef SAVEFS_LOCALDEF_H
#define SAVEFS_LOCALDEF_H

#include <stddef.h>

#include "qemuopts.h"
#include "store.h"

#define LOCALDEF_NAME     "local.json"
#define LOCALDEF_NAME_MAX (sizeof(LOCALDEF_NAME) + 1 + SNAPSHOT_NAME_MAX)

struct localdef {
    int present; /* the file exists */
    /* the file read in STORE/NAME (this host's own, or the shared local.json); where there is
     * none, this host's own: where a definition would go */
    char name[LOCALDEF_NAME_MAX];
    char *binary, *cwd;
    char **argv; /* NULL-terminated, or NULL */
    int argc;
    char **allow;
    int nallow;
    char **accept;
    int naccept;
    struct path_map paths;
};

/* This host's own file's name in STORE/NAME: local.json@HOST. */
void localdef_own_name(char *name, size_t len);
/* Reads STORE/VM/local.json@HOST, or where it is missing STORE/VM/local.json, into D; both
 * missing is an empty definition (present 0). */
int localdef_read(const char *store, const char *vm, struct localdef *d, char *err, size_t errlen);
/* Parses the LEN bytes of TEXT, a local.json read from NAME (named in errors), into D: the
 * checks and the result of localdef_read, which loads the file's JSON and goes on as this does. */
int localdef_parse(const char *text, size_t len, const char *name, struct localdef *d, char *err,
                   size_t errlen);
void localdef_free(struct localdef *d);

/* 1 if D's argv or allow has OPT (by name: "-netdev" and "--netdev" are one) followed by VALUE. */
int localdef_has_option(const struct localdef *d, const char *opt, const char *value);
/* 1 if D accepts the manifest whose digest is DIGEST. */
int localdef_accepts(const struct localdef *d, const char *digest);

/* Adds DIGEST to the "accept" of this host's STORE/VM/local.json@HOST (creating it, 0600, from
 * the shared local.json's content if there is one), atomically and under an flock of STORE/VM, so
 * that writers in other processes lose no update. */
int localdef_accept(const char *store, const char *vm, const char *digest, char *err,
                    size_t errlen);

/* Reads a path map file: a JSON object {"/from": "/to"...}. */
int localdef_read_map(const char *path, struct path_map *map, char *err, size_t errlen);

#endif
