/* job_int: what job.c (the registry, one job_run for every kind of job) shares with the files
 * of each kind (save.c, restore.c) and with status.c. */
#ifndef SAVEFS_JOB_INT_H
#define SAVEFS_JOB_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "job.h"
#include "lease.h"
#include "store.h"
#include "words.h"

struct job;

/* A kind of job: one file defines it (save.c: job_kind_save, restore.c: job_kind_restore) and
 * its public entry point, which checks what it can before job_run starts a thread. */
struct job_kind {
    const char *name;             /* "save": the op in status and results */
    const char *state;            /* "saving": the VM's state in status while it runs */
    int (*body)(struct job *job); /* runs in the job's thread: 0, or -errno with job->err */
    int reads_snapshot;           /* job->snapshot must not change while it runs */
    int is_save;                  /* its outcome is also what NAME/save reads; status shows
                                     the bytes it wrote */
};

extern const struct job_kind job_kind_save, job_kind_restore;

#define JOB_PHASES_MAX 12

/* Where a job's time went: each phase it entered and the seconds it spent there. */
struct job_phases {
    int n;
    struct {
        const char *name;
        double s;
    } at[JOB_PHASES_MAX];
};

/* The outcome of a finished job, kept for status and for reading NAME/save. */
struct job_result {
    int valid;
    const struct job_kind *kind;
    int rc; /* 0 or -errno */
    char snapshot[SNAPSHOT_NAME_MAX + 1];
    char message[JOB_ERR_MAX]; /* the reason on failure, a summary on success */
    char finished[32];         /* RFC 3339 */
    double duration_s;
    struct job_phases phases;
    uint64_t bytes; /* a save's written, a restore's streamed */
    int channels;
};

struct job {
    /* set before the thread starts */
    struct job_ctx *ctx;
    struct vm_state *vm;
    const struct job_kind *kind;
    struct save_words words;
    char snapshot[SNAPSHOT_NAME_MAX + 1]; /* a save's: its thread changes it, job_set_snapshot */
    double started;
    atomic_int cancel; /* set by any thread; the job thread polls it */
    /* guarded by ctx->lock */
    const char *phase;
    double phase_started;
    struct job_phases phases; /* the phases ended so far */
    uint64_t bytes_done, bytes_total;
    uint64_t bytes_written, bytes_to_write; /* a save's (progress.h) */
    int bytes_to_write_known;
    int pid; /* the QEMU the job works on, 0 if none yet */
    int done;
    int released;               /* job_release: its caller went back, the thread goes on */
    const char *released_state; /* the VM's state in status from then on ("running") */
    struct job *next_released;  /* in ctx->released once its caller went back */
    /* owned by the job thread until done */
    int channels; /* 0 until known: a save's words say, a restore reads its manifest */
    int rc;
    char err[JOB_ERR_MAX];
    char summary[JOB_ERR_MAX]; /* a save's ends with what keep=N deleted */
    pthread_t thread;
};

struct vm_state {
    struct vm_state *next;
    char name[SNAPSHOT_NAME_MAX + 1];
    /* guarded by ctx->lock */
    struct job *job;        /* the running job, or NULL */
    struct job_result last; /* the last job of any kind */
    struct job_result last_save;
    unsigned long jobs; /* jobs started on it: a progress reader tells its own (follow.c) */
};

struct job_ctx {
    /* set before threads start */
    char *store, *qmp_dir, *run_dir;
    struct store_id store_id; /* the store directory as it was when savefs started */
    int watchdog_ms;
    char host[LEASE_HOST_MAX + 1]; /* this host in leases */
    int fence_ms;
    struct watch *watch;          /* the leases' keeper (watch.h), or NULL */
    const struct trust *trust;    /* borrowed from the config */
    struct lv *lv;                /* libvirt's domains (lvirt.h), or NULL */
    void (*log)(const char *msg); /* savefs's log, or NULL */
    atomic_int shutdown;          /* set from a signal handler: every job cancels */
    char *pager;                  /* savefs-pager, for lazy restores */
    /* guarded by lock */
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a job ended */
    struct vm_state *vms;
    struct job_snapshot_users users; /* in_use NULL: none */
    int followers;                   /* progress files open (follow.h) */
    struct job *released;            /* jobs whose caller went back: joined once done (job_reap) */
};

/* A job of KIND, not started (free() it if it never runs); NULL without memory. */
struct job *job_new(struct job_ctx *ctx, const struct job_kind *kind);
/* Runs JOB on VM in a thread of its own, one job at a time per VM, while this thread waits
 * (INTERRUPTED cancels it); its outcome goes to VM's status. Takes JOB over. */
int job_run(struct job *job, const char *vm, job_interrupted_fn interrupted);
/* From the job thread: JOB's caller (job_run) returns 0 now while the thread goes on to the job's
 * end, which status and NAME/progress still follow (a lazy restore's push, once the guest
 * runs), and status shows the VM as STATE. The job stays the VM's job until then: a job_run on
 * the VM waits for its end instead of being refused with EBUSY. */
void job_release(struct job *job, const char *state);

/* A job of KIND refused before it started (RC, WHY) still tells why, in status and NAME/save. */
int job_refuse(struct job_ctx *ctx, const char *vm, const struct job_kind *kind, int rc,
               const char *why);

/* The state of VM NAME, or NULL if no job ever ran on it. Caller holds ctx->lock. */
struct vm_state *job_vm_find_locked(struct job_ctx *ctx, const char *name);

/* Progress reports from the job thread. */
void job_set_phase(struct job *job, const char *phase);
/* The snapshot the job makes is named SNAP now (status reads the name under the lock). */
void job_set_snapshot(struct job *job, const char *snap);
void job_set_progress(struct job *job, uint64_t done, uint64_t total);
/* "checking trust 0.012 s, starting QEMU 0.310 s, ...": the phases so far, the current one
 * included, in the order first entered. */
void job_phases_text(struct job *job, char *buf, size_t len);
void job_set_pid(struct job *job, int pid);

/* A line "VM: message" in savefs's log (none without a log). */
void job_log(struct job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Words the job's error as "VM: message" and returns RC. */
int job_fail(struct job *job, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

struct qmp;

/* A QMP command on JOB's behalf (migrate.h's mig_cmd): a failure is worded into JOB's error,
 * naming the VM. ARGS is stolen. */
int job_qmp(struct job *job, struct qmp *q, const char *name, json_t *args, json_t **ret);

/* 1 once JOB should stop: a FUSE interrupt or savefs shutting down. */
int job_cancelled(struct job *job);

/* Waits until FD (if >= 0) polls readable or *TICK_MS passes. The tick then grows by half, up
 * to JOB_TICK_MAX_MS: a wait overshoots what it waits for by a third at most, and a long one
 * polls rarely. Start *TICK_MS at 1. */
void job_wait(int fd, int *tick_ms);
#define JOB_TICK_MAX_MS 100

/* job_wait that also ends when QEMU says something unasked on Q (qmp_wait): a migration's end
 * or a VM's stop is seen as it happens, not at the next tick. */
void job_wait_qmp(struct qmp *q, int fd, int *tick_ms);

/* Seconds on the monotonic clock. */
double job_now(void);
/* Fills BUF with the current UTC time in RFC 3339, or with time T's. */
void job_rfc3339(char *buf, size_t len);
void job_rfc3339_at(time_t t, char *buf, size_t len);

/* Path of VM's QMP socket, its private copier socket for OP, and its QEMU log. */
int job_qmp_path(const struct job_ctx *ctx, const char *vm, char *path);
int job_sock_path(const struct job_ctx *ctx, const char *vm, const char *what, char *path);
int job_log_path(const struct job_ctx *ctx, const char *vm, char *path);

#define QMP_TIMEOUT_MS 5000

/* VM's monitor: its QMP socket in the QMP directory if a QEMU listens there, else libvirt's
 * connection to domain VM's (*LIBVIRT is then 1). -ESRCH if neither runs, or another negative
 * errno, with the reason in ERR. */
int job_vm_monitor(struct job_ctx *ctx, const char *vm, int timeout_ms, struct qmp **q,
                   int *libvirt, char *err, size_t errlen);
/* A libvirt domain's QEMU runs as its own user (libvirt-qemu under the stock qemu.conf), which
 * must reach the migration's socket: DIR (PATH_MAX) is made a directory of the user of QEMU PID,
 * the way to it searchable (not readable) by others, and SOCK (PATH_MAX) is DIR/WHAT.sock. */
int job_lv_sock(const struct job_ctx *ctx, const char *vm, pid_t pid, const char *what, char *dir,
                char *sock, char *err, size_t errlen);
/* 1 if VM is a libvirt domain that runs (and no QEMU listens on its QMP socket). */
int job_vm_libvirt(struct job_ctx *ctx, const char *vm);

#endif
