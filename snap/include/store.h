/* store: the on-disk layout of savefs's store, and the steps that make a snapshot appear whole
 * or not at all.
 *   STORE/NAME/snapshots/S/   published snapshots (manifest.json + chunk files)
 *   STORE/NAME/.tmp/S@HOST.X  saves in progress of host HOST; removed at its start and on failure
 *   STORE/NAME/.qemu.json@HOST  the QEMU that savefs started for NAME on HOST (pid, argv)
 *   STORE/NAME/.restoring@HOST  the QEMU of a restore in progress, killed at start if savefs died
 * What names a process of a host carries the host's name: the store may be shared by a fleet
 * (docs/fleet.md). Pure file operations, any thread. */
#ifndef SAVEFS_STORE_H
#define SAVEFS_STORE_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* The longest name of a VM or a snapshot. */
#define SNAPSHOT_NAME_MAX 64

#define STORE_SNAPSHOTS    "snapshots"
#define STORE_TMP          ".tmp"
#define STORE_QEMU_RECORD  ".qemu.json"
#define STORE_SAVE_MARK    ".source" /* in a save's tmp dir: "PID RUNNING", before the VM stops */
#define STORE_RESTORE_MARK ".restoring" /* in STORE/VM: "PID" of a QEMU being restored */
#define STORE_CLAIM_MARK   ".claim"     /* in a save's tmp dir: the name it claimed in snapshots/ */

/* Sets this host's name, used in the store's per-host names: 1 if NAME is valid (as a VM's
 * name), else 0. Called once by main before any thread; the default is the hostname's first
 * label (or "localhost"). */
int store_host_set(const char *name);
/* This host's name. */
const char *store_host(void);
/* in STORE/VM: "QEMU_PID PAGER_PID" of a VM that runs while savefs-pager pushes its pages */
#define STORE_LAZY_MARK ".lazy"
/* in STORE/VM: the pages the last lazy restore's guest asked for, in order (savefs-pager
 * --fault-log), pushed first by the next one (--hot) */
#define STORE_LAZY_FAULTS ".faults"

/* Which directory a path named when savefs started: the mount lists that one for good. */
struct store_id {
    dev_t dev;
    ino_t ino;
};

/* Reads the identity of directory STORE into ID. */
int store_id_get(const char *store, struct store_id *id, char *err, size_t errlen);
/* 0 if STORE is still the directory ID; else -ESTALE (removed, or replaced by another directory:
 * what a job would write there could never be listed), with the reason naming STORE. */
int store_check(const char *store, const struct store_id *id, char *err, size_t errlen);

/* 1 if NAME may name a VM or a snapshot in the store (a directory of its own): 1..64 of
 * A-Za-z0-9._- and not starting with '.', else 0. */
int store_valid_name(const char *name);

/* snprintf into PATH of length PATH_MAX; -ENAMETOOLONG if it does not fit. */
int store_path(char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The one spelling of a snapshot's place: "VM/snapshots", "VM/snapshots/SNAP" or
 * "VM/snapshots/SNAP/FILE" (SNAP and FILE may be NULL) into REL of LEN, relative to the store
 * (what fs/ resolves beneath the store's descriptor). -ENAMETOOLONG if it does not fit. */
int store_snapshot_rel(char *rel, size_t len, const char *vm, const char *snap, const char *file);
/* The same below STORE, into PATH of length PATH_MAX. */
int store_snapshot_path(char *path, const char *store, const char *vm, const char *snap,
                        const char *file);
/* STORE/VM, or STORE/VM/FILE (FILE one of the STORE_* names above, or local.json), into PATH of
 * length PATH_MAX. */
int store_vm_path(char *path, const char *store, const char *vm, const char *file);

/* STORE/VM/FILE@HOST: VM's FILE (STORE_QEMU_RECORD, STORE_RESTORE_MARK) of this host. */
int store_vm_host_path(char *path, const char *store, const char *vm, const char *file);

/* mkdir -p DIR with mode 0700 for every directory it creates. */
int store_mkdirs(const char *dir, char *err, size_t errlen);

/* Creates STORE/VM and STORE/VM/snapshots. Returns -EEXIST if STORE/VM exists. */
int store_vm_create(const char *store, const char *vm, char *err, size_t errlen);
/* The same, STORE/VM or its snapshots/ may exist: made meanwhile by another host of a fleet. */
int store_vm_ensure(const char *store, const char *vm, char *err, size_t errlen);
/* Removes STORE/VM if it holds no snapshot: -ENOTEMPTY otherwise. */
int store_vm_remove(const char *store, const char *vm, char *err, size_t errlen);
/* 1 if STORE/VM/snapshots is a directory. */
int store_vm_exists(const char *store, const char *vm);
/* 1 if STORE/VM/snapshots/SNAP exists. */
int store_snapshot_exists(const char *store, const char *vm, const char *snap);

/* The default snapshot name: UTC YYYYMMDD-HHMMSS, then -2, -3 ... if taken (-EEXIST once
 * STORE_NAME_COUNT_MAX is reached). */
#define STORE_STAMP_LEN      15 /* YYYYMMDD-HHMMSS */
#define STORE_NAME_COUNT_MAX 1000
int store_default_name(const char *store, const char *vm, char *name, size_t len);
/* NAME, a default name that a save could not publish (another save took it meanwhile: another
 * host of a fleet, in the same second), becomes the next free one of its second: STAMP-N+1... */
int store_default_name_next(const char *store, const char *vm, char *name, size_t len);

/* Creates a fresh private directory STORE/VM/.tmp/SNAP@HOST.XXXXXX for a save; its path in TMP. */
int store_tmp_create(const char *store, const char *vm, const char *snap, char *tmp, char *err,
                     size_t errlen);
/* Makes TMP's files the snapshot STORE/VM/snapshots/SNAP, which must not exist (-EEXIST, on
 * every host of a shared store): fsyncs TMP, renames it there without replacing and fsyncs the
 * parent. Where the filesystem has no RENAME_NOREPLACE (GlusterFS answers EINVAL), it claims the
 * name with mkdir (exclusive everywhere) of a directory marked as a claim (store_claimed), moves
 * the files in, the manifest last, fsyncs them, and then clears the mark: the commit. */
int store_publish(const char *store, const char *vm, const char *tmp, const char *snap, char *err,
                  size_t errlen);
/* Deletes STORE/VM/snapshots/SNAP and all it holds. It is first renamed into STORE/VM/.tmp, and
 * that rename made durable: the snapshot vanishes whole, never a part of it, and what a deletion
 * cut short leaves there is removed at the next start. */
int store_snapshot_delete(const char *store, const char *vm, const char *snap, char *err,
                          size_t errlen);
/* 1 if ST, a directory in snapshots/, is a claim of a publication in progress (the sticky bit,
 * set by the mkdir that makes it): no snapshot yet, hidden from every reader. */
int store_claimed(const struct stat *st);
/* Removes DIR and everything in it (a snapshot holds disks/), following no symlink. */
int store_remove_dir(const char *dir);
/* Calls LEFTOVER(OPAQUE, VM, PATH) for every leftover save directory of this host
 * STORE/VM/.tmp/X (X names this host, or no host: an older savefs's), then removes it, and the
 * claim it made in snapshots/ if any. Returns how many there were. */
int store_clean_tmp(const char *store, void *opaque,
                    void (*leftover)(void *opaque, const char *vm, const char *path));
/* Writes TEXT to PATH (0600), replacing it. Survives savefs being killed, not a power loss. */
int store_write_text(const char *path, const char *text);
/* Writes all LEN bytes of BUF to FD (a short write is retried): 0 or -errno. */
int store_write_all(int fd, const void *buf, size_t len);

/* fsync of a directory. */
int store_fsync_dir(const char *dir);

#endif
