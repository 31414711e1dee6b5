/* import: snapshots that arrive through the mount. A directory made in NAME/restore/ is an
 * import: it is stored as NAME/snapshots/S, and once no file in it is open for writing and every
 * file its manifest names is there with its size, savefs checks that the host trusts it, verifies
 * every checksum, and only then restores it (phases importing, verifying, restoring). A copy whose
 * manifest names another VM is refused. Also the facts of a snapshot shown as user.savefs.*
 * xattrs.
 * Called from FUSE worker threads; each import that checks or restores runs in a thread of its
 * own, joined once it ended (by the next close or change, or by import_free). */
#ifndef SAVEFS_IMPORT_H
#define SAVEFS_IMPORT_H

#include <stddef.h>

#include "facts.h"

struct import;
struct job_ctx;
struct trust;

#define IMPORT_XATTR_PREFIX FACTS_XATTR_PREFIX

int import_new(struct import **out, struct job_ctx *ctx, const struct trust *trust);
/* Stops every import (cancelling the restores they started) and waits for their threads. */
void import_free(struct import *imp);

/* NAME/restore/SNAP was made (as NAME/snapshots/SNAP): it is an import from now on. */
int import_begin(struct import *imp, const char *vm, const char *snap);
/* 1 if NAME/restore/SNAP is an import's directory (in progress or over). */
int import_known(struct import *imp, const char *vm, const char *snap);
/* The imports of VM still in progress, as NAME/restore/ lists them (NULL-terminated, malloc'd;
 * free with job_names_free). */
char **import_names(struct import *imp, const char *vm);
/* SNAP's directory is gone: forget the import. */
void import_forget(struct import *imp, const char *vm, const char *snap);

/* A file in snapshot SNAP was opened for writing / closed; the last close checks the import. */
void import_writer_open(struct import *imp, const char *vm, const char *snap);
void import_writer_close(struct import *imp, const char *vm, const char *snap);
/* 1 while a file of a snapshot of VM is open for writing through the mount (a copy into
 * snapshots/ or restore/), the snapshot's name into SNAP; else 0. */
int import_copying(struct import *imp, const char *vm, char *snap, size_t len);
/* Something else changed in SNAP (a rename, an unlink): checks the import. */
void import_changed(struct import *imp, const char *vm, const char *snap);
/* 1 while an import verifies or restores SNAP: its files must not change. */
int import_busy(struct import *imp, const char *vm, const char *snap);
/* 1 while SNAP is in use: a file in it is open for writing through the mount (an import, or a
 * copy into snapshots/), or it is an import not over yet. A save's keep=N asks this (through
 * job_set_snapshot_users, which import_new sets) before it deletes a snapshot. */
int import_in_use(struct import *imp, const char *vm, const char *snap);

struct job_status;
/* Adds the imports of ST's VM to ST (job.h), and an import's phase as the VM's state while no
 * job runs and QEMU does not: 0 or -ENOMEM. */
int import_status_add(struct import *imp, struct job_status *st);

/* A manifest was written into snapshot SNAP of VM through the mount: REL is the file, relative to
 * the store. If it names another VM, it is removed, SNAP is refused for good (its reason in VM's
 * status) and -EXDEV returned; else 0. */
int import_manifest_written(struct import *imp, const char *vm, const char *snap, const char *rel);
/* 1 if SNAP of VM was refused for naming another VM: nothing more may be written into it. */
int import_refused(struct import *imp, const char *vm, const char *snap);

/* The user.savefs.* fact NAME of snapshot SNAP into *VALUE (malloc'd): -ENODATA if SNAP has no
 * such fact. The manifest's facts are facts.h's (kept per version of the manifest); "verified"
 * and "import" say what the files and the import are now. */
int import_fact(struct import *imp, const char *vm, const char *snap, const char *name,
                char **value);
/* The names of SNAP's facts, NUL-separated, in *NAMES (malloc'd), their length in *LEN. */
int import_fact_names(struct import *imp, const char *vm, const char *snap, char **names,
                      size_t *len);

#endif
