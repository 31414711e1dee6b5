/* recover: what savefs does at start about jobs that a killed savefs left behind. A save that
 * died leaves its VM paused (savefs stopped it) and a temporary directory: the VM is resumed (a
 * libvirt domain through libvirt, so that libvirt knows it runs), its status says so, and the
 * directory is removed. A save that died once its snapshot was published left no such directory:
 * its VM is not resumed, for it would run on from the state that the snapshot holds. A
 * restore that died leaves a QEMU that never ran the guest: it is killed, and the snapshot can be
 * restored again. A lazy restore's push is followed again, and resumed if its page server is
 * gone (job_recover_pushes, once savefs has daemonized: a job is a thread, which a fork does not
 * keep). Runs in main's thread. */
#include "job_int.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lazy.h"
#include "lvirt.h"
#include "migrate.h"
#include "qemu.h"
#include "qmp.h"
#include "store.h"

#define RECOVER_QMP_TIMEOUT_MS 2000
#define CANCEL_WAIT_MS         10000
#define LAZY_QMP_WAIT_MS       5000 /* before a QEMU whose monitor does not answer is killed */

/* What recovery knows of the VM it looks at. */
struct recovery {
    struct job_ctx *ctx;
    char vm[SNAPSHOT_NAME_MAX + 1];
    void (*log)(const char *msg);
};

static void recovery_init(struct recovery *r, struct job_ctx *ctx, const char *vm,
                          void (*log)(const char *msg))
{
    memset(r, 0, sizeof(*r));
    snprintf(r->vm, sizeof(r->vm), "%.64s", vm);
    r->ctx = ctx;
    r->log = log;
}

static void say(struct recovery *r, const char *what, const char *detail)
{
    char msg[2 * JOB_ERR_MAX];

    snprintf(msg, sizeof(msg), "%s: %s%s%.1000s", r->vm, what, detail[0] ? ": " : "", detail);
    r->log(msg);
}

static int read_pid_file(const char *path, pid_t *pid, int *running)
{
    FILE *f = fopen(path, "re");
    int p = 0, run = 0, n;

    if (!f)
        return -errno;
    n = fscanf(f, "%d %d", &p, &run);
    fclose(f);
    if (n < 1 || p <= 0)
        return -EINVAL;
    *pid = p;
    if (running)
        *running = run;
    return 0;
}

/* Connects to VM's monitor if the QEMU behind it is PID, waiting TIMEOUT_MS at most: its QMP
 * socket, else libvirt's connection to domain VM (then *LIBVIRT is 1). */
static struct qmp *connect_pid_ms(struct recovery *r, pid_t pid, int timeout_ms, int *libvirt)
{
    char err[256];
    struct qmp *q = NULL;

    if (job_vm_monitor(r->ctx, r->vm, timeout_ms, &q, libvirt, err, sizeof(err)))
        return NULL;
    if (qmp_peer_pid(q) != pid) {
        qmp_close(q);
        return NULL;
    }
    return q;
}

static struct qmp *connect_pid(struct recovery *r, pid_t pid, int *libvirt)
{
    return connect_pid_ms(r, pid, RECOVER_QMP_TIMEOUT_MS, libvirt);
}

static void cancel_migration(struct recovery *r, struct qmp *q)
{
    char status[32], why[256], err[256];

    if (mig_query(q, status, sizeof(status), why, sizeof(why), err, sizeof(err)) ||
        mig_finished(status) || strcmp(status, "none") == 0)
        return;
    if (mig_cancel(q, CANCEL_WAIT_MS))
        say(r,
            "QEMU did not end the interrupted save's migration: the VM may need a restart "
            "before it can be saved again",
            status);
}

/* Lets the VM that an interrupted save paused run again: a libvirt domain through libvirt
 * (virDomainResume: libvirt then says running, and a `cont` of its own would leave it believing
 * the domain paused), then `cont` if QEMU still does not run. 0 or -errno with ERR. */
static int resume_vm(struct recovery *r, struct qmp *q, int libvirt, char *err, size_t errlen)
{
    int rc = libvirt ? lv_resume(r->ctx->lv, r->vm, err, errlen) : 0;

    if (!rc && !mig_vm_running(q))
        rc = mig_cmd(q, "cont", NULL, NULL, err, errlen);
    return rc;
}

static void resume_saved_vm(void *opaque, const char *vm, const char *tmpdir)
{
    struct recovery *r = opaque, rv;
    char mark[PATH_MAX], err[JOB_ERR_MAX / 2], why[JOB_ERR_MAX];
    int running = 0, libvirt = 0, rc;
    struct qmp *q;
    pid_t pid;

    recovery_init(&rv, r->ctx, vm, r->log);
    say(&rv, "removing the partial save", tmpdir);
    if (store_path(mark, "%s/%s", tmpdir, STORE_SAVE_MARK) || read_pid_file(mark, &pid, &running) ||
        !running)
        return;
    q = connect_pid(&rv, pid, &libvirt);
    if (!q)
        return;
    cancel_migration(&rv, q);
    rc = resume_vm(&rv, q, libvirt, err, sizeof(err));
    /* Its status says it too: whoever wrote the save words saw the write fail with the mount. */
    snprintf(why, sizeof(why),
             "the save was interrupted (savefs stopped during it, no snapshot was made); at its "
             "next start savefs %s the VM%s that the save had paused%s%s",
             rc ? "could not resume" : "resumed", libvirt ? " (libvirt domain)" : "",
             rc ? ": " : "", rc ? err : "");
    say(&rv,
        rc ? "could not resume the VM that an interrupted save had paused"
           : "resumed the VM that an interrupted save had paused",
        libvirt ? "through libvirt" : "");
    job_refuse(rv.ctx, vm, &job_kind_save, rc ? rc : -EINTR, why);
    qmp_close(q);
}

/* The QEMU of a restore that did not finish never ran the guest unless it is running now. */
static void kill_half_restored(struct recovery *r, const char *mark)
{
    struct qmp *q;
    pid_t pid = 0; /* read_pid_file sets it on success; gcc -O2 cannot tell */
    int libvirt = 0;

    if (read_pid_file(mark, &pid, NULL))
        goto out;
    q = connect_pid(r, pid, &libvirt);
    if (q && mig_vm_running(q)) {
        say(r, "an interrupted restore had already resumed its VM", "");
    } else if (kill(pid, 0) == 0 && qemu_pid_is_incoming(pid)) {
        /* libvirt ends its own QEMU: the domain is "destroyed", not crashed. */
        if (!libvirt || lv_destroy(r->ctx->lv, r->vm, NULL, 0))
            kill(pid, SIGKILL);
        say(r, "killed the QEMU of an interrupted restore", "");
    }
    if (q)
        qmp_close(q);
out:
    unlink(mark);
}

/* The QEMU of a push whose page server is gone and cannot be resumed (WHY) is killed: its guest
 * would wait for its pages for ever. */
static void lazy_stop(struct recovery *r, const struct lazy_marked *mk, const char *why)
{
    char msg[JOB_ERR_MAX];

    kill(mk->qemu, SIGKILL);
    snprintf(
        msg, sizeof(msg),
        "the page server of its lazy restore (pid %d) is gone before the last page and %.300s: "
        "savefs killed the QEMU (pid %d), whose guest would wait for its pages for ever; "
        "restore the snapshot again",
        mk->pager, why, mk->qemu);
    say(r, msg, "");
    job_refuse(r->ctx, r->vm, &job_kind_restore, -EPIPE, msg);
}

/* A lazily restored VM whose push a killed savefs followed. Its page server goes on alone (it
 * needs no savefs), and job_recover_pushes follows it once savefs runs; one that is gone before
 * the last page left QEMU in postcopy-paused, and job_recover_pushes resumes it too (lazy.h).
 * Here: the mark of a QEMU that is gone goes, and so does that of a push that ended while no
 * savefs watched; a mark of an older savefs (no snapshot named: nothing to resume from) whose
 * page server is gone gets its QEMU killed, whose guest would wait for a page for ever. */
static void check_lazy(struct recovery *r, const char *mark)
{
    char status[32] = "unknown", why[512], err[256];
    struct lazy_marked mk;
    struct qmp *q = NULL;
    int libvirt = 0;

    if (lazy_mark_read(mark, &mk))
        goto out;
    if ((q = connect_pid_ms(r, mk.qemu, LAZY_QMP_WAIT_MS, &libvirt)) == NULL) {
        /* Gone, or its main thread waits for a page that no pager will send: QEMU 7.2 takes
         * even qmp_capabilities in its main thread, so no recovery can reach it. */
        if (!lazy_pager_alive(mk.pager) && qemu_pid_is_incoming(mk.qemu))
            lazy_stop(r, &mk,
                      "its monitor does not answer (its main thread waits for a page), so "
                      "that QEMU's postcopy recovery cannot be started");
        goto out;
    }
    if (lazy_pager_alive(mk.pager)) {
        say(r, "the page server of its lazy restore still pushes its pages", "");
        qmp_close(q);
        return; /* job_recover_pushes follows it */
    }
    if (mig_query(q, status, sizeof(status), why, sizeof(why), err, sizeof(err)))
        snprintf(status, sizeof(status), "unknown");
    if (strcmp(status, "completed") == 0 || strcmp(status, "none") == 0) {
        /* The push ended while no savefs watched: postcopy-ram off, for a later save. */
        mig_cmd(
            q, "migrate-set-capabilities",
            json_pack("{s:[{s:s, s:b}]}", "capabilities", "capability", "postcopy-ram", "state", 0),
            NULL, NULL, 0);
    } else if (mk.snapshot[0] && !mig_finished(status)) {
        say(r, "the page server of its lazy restore is gone before the last page: resuming it",
            status);
        qmp_close(q);
        return; /* job_recover_pushes resumes it */
    } else {
        snprintf(why, sizeof(why), "migration %s", status);
        lazy_stop(r, &mk, why);
    }
    qmp_close(q);
out:
    unlink(mark);
}

static void recover_restores(struct job_ctx *ctx, void (*log)(const char *msg))
{
    char mark[PATH_MAX];
    struct recovery r;
    DIR *d = opendir(ctx->store);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        recovery_init(&r, ctx, e->d_name, log);
        if (!store_vm_host_path(mark, ctx->store, e->d_name, STORE_RESTORE_MARK) &&
            access(mark, F_OK) == 0)
            kill_half_restored(&r, mark);
        if (!store_vm_host_path(mark, ctx->store, e->d_name, STORE_LAZY_MARK) &&
            access(mark, F_OK) == 0)
            check_lazy(&r, mark);
    }
    closedir(d);
}

void job_recover_pushes(struct job_ctx *ctx, void (*log)(const char *msg))
{
    char mark[PATH_MAX], why[JOB_ERR_MAX + 64];
    DIR *d = opendir(ctx->store);
    struct dirent *e;
    int rc;

    if (!d)
        return;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' ||
            store_vm_host_path(mark, ctx->store, e->d_name, STORE_LAZY_MARK) ||
            access(mark, F_OK) != 0)
            continue;
        if ((rc = lazy_adopt(ctx, e->d_name)) && rc != -ENOENT) {
            snprintf(why, sizeof(why), "%.64s: the push of its lazy restore: %s", e->d_name,
                     strerror(-rc));
            log(why);
        }
    }
    closedir(d);
}

void job_recover(struct job_ctx *ctx, void (*log)(const char *msg))
{
    struct recovery r;

    recovery_init(&r, ctx, "", log);
    store_clean_tmp(ctx->store, &r, resume_saved_vm);
    recover_restores(ctx, log);
}
