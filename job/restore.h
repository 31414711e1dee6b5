/* restore: what restore.c (a restore job: the checks, QEMU started, the full restore) shares with
 * lazy.c (the lazy restore, served by savefs-pager). Both run in the restore job's thread. */
#ifndef SAVEFS_RESTORE_H
#define SAVEFS_RESTORE_H

#include <limits.h>
#include <sys/types.h>

#include "job_int.h"
#include "manifest.h"
#include "migrate.h"
#include "trust.h"

#define KILL_TIMEOUT_MS 5000

struct cp_restore;

struct restore {
    struct job *job;
    char dir[PATH_MAX], qmp_path[PATH_MAX], sock[PATH_MAX], log[PATH_MAX], mark[PATH_MAX];
    struct manifest m;
    struct trust_plan plan; /* what runs: trust's decision, not the manifest's say */
    char **argv;
    char console[PATH_MAX]; /* the console socket, if the original's console was on stdio */
    int console_made;
    char layers[PATH_MAX];     /* the restored VM's own layers over captured disks (ckpt.h) */
    char note[128];            /* for the summary: a check overridden, the guest clock set */
    int lease_fd;              /* the VM's lease (lease.h), inherited by the fresh QEMU */
    char lease_note[PATH_MAX]; /* this host's note of the QEMU it started (watch.h) */
    char how[384];             /* for the summary: lazily or fully, and why (lazy.h) */
    int lazy;                  /* 1: served by savefs-pager (lazy.c) */
    int auto_mode; /* restore=auto: a refusal of the page server falls back to a full restore */
    pid_t pid;
    int pidfd;
    struct qmp *qmp;
    struct mig_saved saved; /* the fresh QEMU's migration settings, put back once restored */
    struct cp_restore *cp;
    int libvirt;             /* a libvirt domain's snapshot: libvirt starts and resumes it */
    int libvirt_started;     /* libvirt started the domain: a failure destroys it */
    char sock_dir[PATH_MAX]; /* its migration socket's directory, its QEMU's own */
};

const char *restore_vm(const struct restore *r);
/* QEMU started from the plan's command line with -incoming defer -S, its pid marked in the
 * store for a restarted savefs (recover.c); then its monitor connected. */
int restore_start_qemu(struct restore *r);
int restore_connect_qmp(struct restore *r);
/* Fails the job with QEMU's own last words, for an error caused by QEMU exiting WHEN. */
int restore_qemu_gone(struct restore *r, const char *when);
/* Kills R's QEMU (if KILL) and lets go of everything that belonged to it. */
void restore_drop_qemu(struct restore *r, int kill);
/* Records the restored QEMU (record.h): the VM runs. */
void restore_record(struct restore *r);

#endif
