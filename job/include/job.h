/* job: runs saves and restores, one at a time per VM, each in its own thread, and answers what
 * the filesystem asks about VMs. The only module that knows both QMP and the copier.
 * Called from FUSE worker threads; all entry points are thread-safe. */
#ifndef SAVEFS_JOB_H
#define SAVEFS_JOB_H

#include <stddef.h>

struct job_ctx;
struct trust;

struct job_config {
    const char *store;         /* snapshots live here */
    const char *qmp_dir;       /* NAME.qmp sockets of the VMs */
    int watchdog_ms;           /* a restore whose bytes stop moving this long is killed */
    const struct trust *trust; /* signs saves, decides restores (trust.h); outlives the ctx */
    const char *host;          /* this host's name in the VMs' leases (lease.h) */
    int fence_ms;              /* a QEMU savefs started is stopped when the store has not
                                  answered this long (docs/fleet.md) */
    const char *pager;         /* savefs-pager, the page server of lazy restores */
    const char *libvirt_uri;   /* libvirt's QEMU domains are VMs too (lvirt.h); NULL: none */
    int libvirt_required;      /* a savefs built without libvirt refuses to start (else: none) */
};

#define JOB_ERR_MAX 1024

/* Creates the context: makes the directories (0700). LOG is savefs's log. */
int job_ctx_new(struct job_ctx **out, const struct job_config *cfg, void (*log)(const char *msg),
                char *err, size_t errlen);
/* What a savefs that was killed left behind: resumes the VMs it left paused, kills the QEMUs of
 * restores it left unfinished and removes leftover temporaries of interrupted saves, reporting
 * through LOG. Called once at start, before the mount serves. */
void job_recover(struct job_ctx *ctx, void (*log)(const char *msg));
/* The pushes of lazy restores that a killed savefs followed: each followed by a job again, and
 * resumed if its page server is gone (docs/lazy.md). Called once savefs has daemonized. */
void job_recover_pushes(struct job_ctx *ctx, void (*log)(const char *msg));
/* Starts keeping the leases of the VMs that run on this host, and the fence (docs/fleet.md).
 * Called once savefs has daemonized; job_ctx_free ends it. */
int job_leases_start(struct job_ctx *ctx);
/* Asks the QEMU binaries restores may start for their versions, on a thread of its own, so that
 * a first restore does not wait for `qemu -version`. Called once savefs has daemonized: a fork
 * keeps no thread, and one forked while that thread held the versions' lock would keep it held. */
void job_versions_warm(struct job_ctx *ctx);
/* Cancels every running job and waits for it to end; then frees. */
void job_ctx_free(struct job_ctx *ctx);
void job_cancel_all(struct job_ctx *ctx);
/* Async-signal-safe: asks every job, running or starting, to cancel. */
void job_shutdown_signal(struct job_ctx *ctx);

/* Polled while a job runs; returns 1 once the caller wants it cancelled (a FUSE interrupt). */
typedef int (*job_interrupted_fn)(void);

/* Saves VM as the save words in WORDS[0..LEN) say; blocks until the snapshot is durable or the
 * save failed. 0 or a negative errno; the reason is in the VM's status and last save. */
int job_save(struct job_ctx *ctx, const char *vm, const char *words, size_t len,
             job_interrupted_fn interrupted);

/* Restores VM from its snapshot SNAP; blocks until the VM runs (or is paused, if it was saved
 * paused) or the restore failed. */
int job_restore(struct job_ctx *ctx, const char *vm, const char *snap,
                job_interrupted_fn interrupted);

/* The restore mode VALUE (LEN bytes, the value of MANIFEST_RESTORE_XATTR) names: 0 auto, 1
 * full, 2 lazy; -EINVAL for anything else. */
int job_restore_mode_parse(const char *value, size_t len);

/* NUL-terminated VM names (malloc'd array of malloc'd strings, NULL at the end): every VM whose
 * QMP socket listens or whose directory is in the store. */
char **job_vm_list(struct job_ctx *ctx);
/* Frees what job_vm_list or import_names returned. */
void job_names_free(char **names);
/* 1 if VM is listed by job_vm_list. */
int job_vm_exists(struct job_ctx *ctx, const char *vm);
int job_vm_create(struct job_ctx *ctx, const char *vm);
int job_vm_remove(struct job_ctx *ctx, const char *vm);
/* 1 while a restore reads VM's snapshot SNAP; a lazy restore's push is waited for. */
int job_snapshot_busy(struct job_ctx *ctx, const char *vm, const char *snap);
/* 1 if a process (the QEMU of a VM restored from SNAP) holds one of SNAP's captured images
 * open: the base of a checkpoint's layer (STORE/VM/layers/SNAP.TIME) that a VM runs on. Deleting
 * SNAP would pull its disks from under it: refused (EBUSY), and savefs's log names the image, the
 * layer and the QEMU. */
int job_snapshot_is_base(struct job_ctx *ctx, const char *vm, const char *snap);

/* Who else uses snapshots (imports, import.h): a save's keep=N deletes none that IN_USE says is
 * used, and tells DELETED of each it deleted. Called from a job thread, with the context's lock
 * held: both must be quick and call nothing of the job module. */
struct job_snapshot_users {
    int (*in_use)(void *opaque, const char *vm, const char *snap);
    void (*deleted)(void *opaque, const char *vm, const char *snap);
    void *opaque;
};
/* Sets them (NULL: none); once a call returns, no job calls the former ones any more. */
void job_set_snapshot_users(struct job_ctx *ctx, const struct job_snapshot_users *users);

/* The status of VM as data (what NAME/status shows): its state, the job in progress, the last
 * job's outcome; an idle VM's QEMU is asked, briefly. NULL without memory. The imports add theirs
 * (import_status_add). */
struct job_status;
struct job_status *job_status_new(struct job_ctx *ctx, const char *vm);
/* ST as NAME/status's JSON text, ending with a newline; malloc'd. */
char *job_status_json(const struct job_status *st);
void job_status_free(struct job_status *st);
/* The outcome of VM's last save as NAME/save's text; malloc'd. */
char *job_last_save_text(struct job_ctx *ctx, const char *vm);

/* The store's and the QMP directory's paths, for the filesystem's passthrough of snapshots. */
const char *job_store(const struct job_ctx *ctx);

#endif
