/* localdef: STORE/NAME/local.json, the host's own definition of VM NAME: what this host accepts
 * of snapshots that it cannot recognize by their signature, and how it runs them. Written by the
 * host's administrator (or by savefs when the user accepts a snapshot); never carried with a
 * snapshot. Every field is optional:
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

#define LOCALDEF_NAME "local.json"

struct localdef {
    int present; /* the file exists */
    char *binary, *cwd;
    char **argv; /* NULL-terminated, or NULL */
    int argc;
    char **allow;
    int nallow;
    char **accept;
    int naccept;
    struct path_map paths;
};

/* Reads STORE/VM/local.json into D; a missing file is an empty definition (present 0). */
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

/* Adds DIGEST to STORE/VM/local.json's "accept" (creating the file, 0600), atomically and under
 * an flock of STORE/VM, so that writers in other processes lose no update. */
int localdef_accept(const char *store, const char *vm, const char *digest, char *err,
                    size_t errlen);

/* Reads a path map file: a JSON object {"/from": "/to"...}. */
int localdef_read_map(const char *path, struct path_map *map, char *err, size_t errlen);

#endif
