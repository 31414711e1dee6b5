/* manifest: reads and writes a snapshot's manifest.json, the one file that says what a snapshot
 * holds. Reading treats the file as untrusted input. Pure functions, any thread. */
#ifndef SAVEFS_MANIFEST_H
#define SAVEFS_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "copier.h"

#define MANIFEST_NAME       "manifest.json"
#define MANIFEST_VERSION    1
#define MANIFEST_MAX_FILES  (2 * CP_MAX_CHANNELS + 1)
#define MANIFEST_MAX_ARGS   4096
#define MANIFEST_MAX_DISKS  32
#define MANIFEST_MAX_LAYERS 16      /* a captured disk's chain: its image and the images below it */
#define MANIFEST_DISKS_DIR  "disks" /* in a snapshot: the captured images */
/* A libvirt domain's XML: libvirt's own domains are far smaller. */
#define MANIFEST_LIBVIRT_XML_MAX (1 << 20)

/* The one attribute of a snapshot directory that the user sets rather than savefs computes:
 * "disks" lets the next restore go ahead over disks that changed since the save (disks.h). */
#define MANIFEST_FORCE_XATTR "user.savefs.force"
/* Set by the user on a snapshot (through the mount) or a VM's directory in the store: how it
 * restores, "auto", "lazy" or "full" (the snapshot's wins). */
#define MANIFEST_RESTORE_XATTR "user.savefs.restore"

/* One image of a captured disk, as a file of the snapshot: MANIFEST_DISKS_DIR "/" NAME. */
struct manifest_layer {
    char *file;      /* "disks/D.L.FORMAT", relative to the snapshot */
    char format[16]; /* "raw", "qcow2": a qcow2's backing is the next layer, by this name */
    uint64_t size;   /* bytes */
    uint64_t xxh3;   /* of the whole file */
};

/* A writable disk of the VM as it was when the snapshot was taken (disks.h). */
struct manifest_disk {
    char *path;           /* absolute */
    char format[16];      /* QEMU's driver: "raw", "qcow2", ... */
    uint64_t size;        /* bytes */
    int64_t mtime_ns;     /* st_mtim in ns */
    uint64_t inode;       /* st_ino: shown, not compared (a disk copied back keeps its content) */
    char fingerprint[24]; /* "xxh3:" + 16 hex digits of sampled content and qcow2 metadata */
    /* Captured by a checkpoint (job/ckpt.h): the disk's state at the snapshot's instant, top
     * image first; NLAYERS 0 if it was only recorded. */
    char device[64]; /* QEMU's name of the drive ("virtio0") or its qdev path */
    char method[16]; /* "reflink" or "overlay" */
    struct manifest_layer layers[MANIFEST_MAX_LAYERS];
    int nlayers;
};

struct manifest {
    int version;
    char vm[65];
    char snapshot[65];
    char created[32];      /* RFC 3339, UTC */
    char qemu_version[32]; /* "7.2.22" */
    char machine[64];      /* "pc-i440fx-7.2" */
    char uuid[40];         /* the source's -uuid, all zeros if none */
    char *binary;          /* absolute path of the QEMU binary */
    char *cwd;             /* its working directory: relative paths in argv start there */
    char **argv;           /* the QEMU command line that recreates the VM, NULL-terminated */
    int argc;
    uint64_t ram_size;
    int was_running;
    int channels;
    char compression[16];  /* "none", or "zstd": main and channels are zstd files (zframe.h) */
    int compression_level; /* zstd's level, 1..19; 0 with "none" */
    double duration_s;
    /* Since savefs recorded disks; a manifest without them restores as before, unchecked. */
    int disks_recorded;
    int keep_running; /* the VM ran on after the save: its disks went on changing */
    /* A libvirt domain's (docs/libvirt.md): its migratable XML, what libvirt starts to restore it;
     * argv is then its QEMU's command line as it was, for reading only. NULL: no libvirt. */
    char *libvirt_xml;
    struct manifest_disk disks[MANIFEST_MAX_DISKS];
    int ndisks;
    /* A live checkpoint (keep-running): the VM ran while its memory streamed, and the snapshot
     * holds it as it was when QEMU paused it to complete the migration ("holds": "completion"),
     * at CHECKPOINT_AT (RFC 3339, UTC, ms), paused for CHECKPOINT_PAUSE_MS. */
    int checkpoint;
    char checkpoint_at[40];
    double checkpoint_pause_ms;
    struct cp_file files[MANIFEST_MAX_FILES];
    int nfiles;
    char hmac[128];  /* optional: "hmac-sha256:KEYID:MAC" over the canonical text (see trust.h) */
    char *canonical; /* read: the manifest without "hmac", keys sorted, compact: what is signed */
};

/* Writes M as PATH (created 0600, must not exist) and fsyncs it. */
int manifest_write(const char *path, const struct manifest *m, char *err, size_t errlen);

/* Parses and validates the LEN bytes of TEXT, read from NAME (named in errors). On success M owns
 * allocated strings: manifest_free(M). */
int manifest_parse(const char *text, size_t len, const char *name, struct manifest *m, char *err,
                   size_t errlen);

/* Reads PATH and parses it. */
int manifest_read(const char *path, struct manifest *m, char *err, size_t errlen);

/* The canonical text of M (keys sorted, compact, no "hmac"), as manifest_read sets m->canonical
 * for the file that manifest_write makes of M. Malloc'd in *TEXT. */
int manifest_canonical(const struct manifest *m, char **text);

/* Validates M the way manifest_read does (used before writing, too). */
int manifest_check(const struct manifest *m, char *err, size_t errlen);

void manifest_free(struct manifest *m);

/* Looks at file F of the snapshot in DIR (its path into PATH, of length PATH_MAX; what lstat
 * says into ST): 0 if it is a regular file of F's size, -ENOENT if it is missing or not a regular
 * file, -EMSGSIZE if its size is not F's, -ENAMETOOLONG. */
int manifest_file_stat(const char *dir, const struct cp_file *f, char *path, struct stat *st);

/* The entry of kind KIND for CHANNEL (-1 for main), or NULL. */
const struct cp_file *manifest_find(const struct manifest *m, enum cp_kind kind, int channel);

#endif
