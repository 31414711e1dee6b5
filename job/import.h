/* import: snapshots that arrive through the mount. A directory made in NAME/restore/ is an
 * import: it is stored as NAME/snapshots/S, and once no file in it is open for writing and every
 * file its manifest names is there with its size, savefs checks that the host trusts it, verifies
 * every checksum, and only then restores it (phases importing, verifying, restoring). Also the
 * facts of a snapshot shown as user.savefs.* xattrs.
 * Called from FUSE worker threads; each import that checks or restores runs in a thread of its
 * own. */
#ifndef SAVEFS_IMPORT_H
#define SAVEFS_IMPORT_H

#include <stddef.h>

struct import;
struct job_ctx;
struct trust;

#define IMPORT_XATTR_PREFIX "user.savefs."

int import_new(struct import **out, struct job_ctx *ctx, const struct trust *trust);
/* Stops every import (cancelling the restores they started) and waits for their threads. */
void import_free(struct import *imp);

/* NAME/restore/SNAP was made (as NAME/snapshots/SNAP): it is an import from now on. */
int import_begin(struct import *imp, const char *vm, const char *snap);
/* 1 if NAME/restore/SNAP is an import's directory (in progress or over). */
int import_known(struct import *imp, const char *vm, const char *snap);
/* The imports of VM still in progress, as NAME/restore/ lists them (NULL-terminated, malloc'd;
 * free with import_names_free). */
char **import_names(struct import *imp, const char *vm);
void import_names_free(char **names);
/* SNAP's directory is gone: forget the import. */
void import_forget(struct import *imp, const char *vm, const char *snap);

/* A file in snapshot SNAP was opened for writing / closed; the last close checks the import. */
void import_writer_open(struct import *imp, const char *vm, const char *snap);
void import_writer_close(struct import *imp, const char *vm, const char *snap);
/* Something else changed in SNAP (a rename, an unlink): checks the import. */
void import_changed(struct import *imp, const char *vm, const char *snap);
/* 1 while an import verifies or restores SNAP: its files must not change. */
int import_busy(struct import *imp, const char *vm, const char *snap);

/* STATUS (a job_status_json text, taken over) with VM's imports added; malloc'd. */
char *import_status(struct import *imp, const char *vm, char *status);

/* The user.savefs.* facts of snapshot SNAP: NUL-separated names in *NAMES (length *NAMES_LEN)
 * and their values in VALUES[] (all malloc'd; import_facts_free). */
struct import_facts {
    char *names;
    size_t names_len;
    char **values;
    int n;
};
int import_facts(struct import *imp, const char *vm, const char *snap, struct import_facts *f);
void import_facts_free(struct import_facts *f);

#endif
