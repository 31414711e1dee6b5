/* facts: what a snapshot's manifest says, as its user.savefs.* attributes show it (vm, snapshot,
 * created, qemu_version, machine, ram_size, channels, compression, was_running, digest,
 * keep_running where the disks were recorded, and trust: whether this host would run it; the
 * disks' state is no fact of the manifest's). Reading a manifest (up to 4 MiB of JSON) and deciding
 * trust costs far more than a getxattr, and `getfattr -d` asks for 13 attributes in a row: each
 * snapshot's facts are computed once and kept while its manifest and its VM's local.json stay as
 * they are. Any thread. */
#ifndef SAVEFS_FACTS_H
#define SAVEFS_FACTS_H

#include <stddef.h>

#include "manifest.h"

#define FACTS_XATTR_PREFIX "user.savefs."
#define FACTS_ERR_MAX      1024

struct facts_cache;
struct trust;

/* One snapshot's facts: names (with FACTS_XATTR_PREFIX) NUL-separated in NAMES, and values. */
struct facts {
    char *names;
    size_t names_len;
    char **values;
    int n;
    char unreadable[FACTS_ERR_MAX]; /* why the manifest could not be read; "" if it could */
    struct cp_file files[MANIFEST_MAX_FILES]; /* the files the manifest names */
    int nfiles;
    /* The writable disks it recorded (their paths owned here): their state is no fact of the
     * manifest, it is looked at where it is asked for (disks.h). */
    struct manifest_disk disks[MANIFEST_MAX_DISKS];
    int ndisks, disks_recorded;
};

int facts_cache_new(struct facts_cache **out, const struct trust *trust);
void facts_cache_free(struct facts_cache *fc);

/* The facts of snapshot SNAP of VM in STORE, copied into F (facts_free). */
int facts_get(struct facts_cache *fc, const char *store, const char *vm, const char *snap,
              struct facts *f);
/* The value of fact NAME (with its prefix), or NULL. */
const char *facts_value(const struct facts *f, const char *name);
void facts_free(struct facts *f);

#endif
