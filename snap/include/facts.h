/* facts: what a snapshot's manifest says, as its user.savefs.* attributes show it (vm, snapshot,
 * created, qemu_version, machine, ram_size, channels, compression, was_running, digest,
 * keep_running where the disks were recorded, and trust: whether this host would run it; the
 * disks' state is no fact of the manifest's). Reading a manifest (up to 4 MiB of JSON) costs far
 * more than a getxattr, and deciding trust more still: each snapshot's manifest is read once and
 * kept while it and its VM's local.json stay as they are, and each fact is computed the first
 * time it is asked for, so that reading one attribute computes that one fact. Any thread. */
#ifndef SAVEFS_FACTS_H
#define SAVEFS_FACTS_H

#include <stddef.h>

#include "manifest.h"

#define FACTS_XATTR_PREFIX "user.savefs."
#define FACTS_ERR_MAX      1024

struct facts_cache;
struct trust;

/* What the manifest says of the snapshot's files and disks, for the facts that are looked at
 * where they are asked for (their state now, not the manifest's). */
struct facts {
    char unreadable[FACTS_ERR_MAX]; /* why the manifest could not be read; "" if it could */
    struct cp_file files[MANIFEST_MAX_FILES]; /* the files the manifest names */
    int nfiles;
    /* The writable disks it recorded (their paths owned here, disks.h). */
    struct manifest_disk disks[MANIFEST_MAX_DISKS];
    int ndisks, disks_recorded;
};

int facts_cache_new(struct facts_cache **out, const struct trust *trust);
void facts_cache_free(struct facts_cache *fc);

/* The files and disks of snapshot SNAP of VM in STORE, copied into F (facts_free). */
int facts_get(struct facts_cache *fc, const char *store, const char *vm, const char *snap,
              struct facts *f);
void facts_free(struct facts *f);
/* The value of fact NAME (with its prefix) of SNAP into *VALUE (malloc'd): -ENODATA if SNAP has
 * no such fact (or its manifest is unreadable). */
int facts_value(struct facts_cache *fc, const char *store, const char *vm, const char *snap,
                const char *name, char **value);
/* The names of SNAP's facts (with their prefix), NUL-separated, into *NAMES (malloc'd, NULL if
 * there are none) and their length into *LEN. */
int facts_names(struct facts_cache *fc, const char *store, const char *vm, const char *snap,
                char **names, size_t *len);

/* How often the cache read a manifest and decided trust since it was made (for tests). */
struct facts_counts {
    unsigned long manifests_read, trust_decided;
};
void facts_cache_counts(struct facts_cache *fc, struct facts_counts *out);

#endif
