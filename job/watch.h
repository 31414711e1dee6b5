/* watch: the leases of the VMs that run on this host (lease.h), kept by a thread of its own, and
 * the fence that stops a QEMU savefs started when the store stops answering. restore.c and
 * status.c ask it; job.c starts and ends it. */
#ifndef SAVEFS_WATCH_H
#define SAVEFS_WATCH_H

#include "job_int.h"
#include "lease.h"

/* What NAME/status says of a VM's lease. */
struct watch_view {
    int known;  /* 0: the lease could not be read */
    int held;   /* someone holds it: HOLDER says who */
    int mine;   /* that someone is this host */
    int fenced; /* this host stopped its QEMU of the VM */
    int savefs; /* savefs holds it itself (a QEMU started by hand, or one whose lock was lost) */
    struct lease_holder holder;
    char alarm[1024]; /* what went wrong, loudly; "" if nothing */
};

/* Starts the thread that keeps the leases (after savefs daemonized: a fork keeps no thread). */
int watch_start(struct job_ctx *ctx);
/* Ends it and releases the leases savefs holds itself (those of QEMUs started by hand). */
void watch_stop(struct job_ctx *ctx);

/* The lease of VM as status shows it: the watch's if VM runs here, else read from the store. */
void watch_view(struct job_ctx *ctx, const char *vm, struct watch_view *v);

/* Before a restore of VM on this host: a lease savefs holds for a QEMU that has gone is let go
 * now, not at the next tick. */
void watch_forget(struct job_ctx *ctx, const char *vm);

/* This host's note of the QEMU a restore started (QMPDIR/.savefs/VM.lease), into PATH. */
int watch_note_path(const struct job_ctx *ctx, const char *vm, char *path);

#endif
