/* restore: one restore job, in its thread. Check the snapshot, start a fresh QEMU from its
 * manifest with -incoming defer and -S, stream the chunk files into it through the copier, and let
 * the VM run only when the migration completed and every checksum matched. QEMU 7.2 hangs
 * silently on a damaged channel, so a watchdog kills it when bytes stop moving. On any failure
 * the fresh QEMU is killed and nothing else is touched. */
#include "restore.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent.h"
#include "ckpt.h"
#include "copier.h"
#include "lazy.h"
#include "lvirt.h"
#include "manifest.h"
#include "migrate.h"
#include "precheck.h"
#include "qemu.h"
#include "qmp.h"
#include "record.h"
#include "store.h"
#include "trust.h"
#include "watch.h"

#define QMP_START_TIMEOUT_MS 20000
#define QEMU_EXIT_GRACE_MS   3000 /* a QEMU that refused the stream exits at once */
#define LEASE_LOCAL_WAIT_S   3.0  /* savefs lets go of a lease it held for a QEMU that quit */

const char *restore_vm(const struct restore *r)
{
    return r->job->vm->name;
}

/* Every file the manifest names is there with its size; checksums are checked as they stream. */
static int check_files(struct restore *r)
{
    char path[PATH_MAX];
    struct stat st;

    for (int i = 0; i < r->m.nfiles; i++) {
        const struct cp_file *f = &r->m.files[i];

        int rc = manifest_file_stat(r->dir, f, path, &st);

        if (rc == -ENAMETOOLONG)
            return rc;
        if (rc == -ENOENT)
            return job_fail(r->job, -ENOENT, "snapshot incomplete: %s is missing", path);
        if (rc)
            return job_fail(r->job, -EBADMSG,
                            "snapshot incomplete: %s has %lld bytes, the manifest says %llu", path,
                            (long long)st.st_size, (unsigned long long)f->size);
    }
    return 0;
}

static int load_snapshot(struct restore *r)
{
    char path[PATH_MAX], err[JOB_ERR_MAX - 80];
    struct job *job = r->job;
    int rc;

    job_set_phase(job, "verifying");
    if ((rc = store_snapshot_path(r->dir, job->ctx->store, restore_vm(r), job->snapshot, NULL)) ||
        (rc = store_path(path, "%s/%s", r->dir, MANIFEST_NAME)))
        return job_fail(r->job, rc, "snapshot path too long");
    rc = manifest_read(path, &r->m, err, sizeof(err));
    if (rc)
        return job_fail(r->job, rc, "%s", err);
    job->channels = r->m.channels;
    /* The last line of defence: another VM's guest would run on its disks under this name. */
    if (strcmp(r->m.vm, restore_vm(r)) != 0)
        return job_fail(r->job, -EPERM,
                        "%s names VM %s, not %s: a snapshot goes to another VM only with "
                        "`savefs adopt`",
                        MANIFEST_NAME, r->m.vm, restore_vm(r));
    return check_files(r);
}

/* The host decides what runs: the plan, from what trust allows of the manifest (trust.h). */
static int check_trust(struct restore *r)
{
    struct trust_subject s = {r->job->ctx->store, restore_vm(r), r->job->snapshot};
    char how[256], err[JOB_ERR_MAX - 80];
    int rc;

    job_set_phase(r->job, "checking trust");
    r->libvirt = r->m.libvirt_xml != NULL;
    if (r->libvirt && !r->job->ctx->lv)
        return job_fail(r->job, -ENOTSUP,
                        "%s is a libvirt domain's snapshot, and this savefs has no libvirt "
                        "(--libvirt)",
                        r->job->snapshot);
    if (r->libvirt)
        rc = trust_libvirt(r->job->ctx->trust, &r->m, err, sizeof(err));
    else
        rc = trust_resolve(r->job->ctx->trust, &s, &r->m, &r->plan, how, sizeof(how), err,
                           sizeof(err));
    return rc ? job_fail(r->job, rc, "%s", err) : 0;
}

static int check_vm_stopped(struct restore *r)
{
    if (job_qmp_path(r->job->ctx, restore_vm(r), r->qmp_path))
        return -ENAMETOOLONG;
    if (qemu_listening(r->qmp_path))
        return job_fail(r->job, -EBUSY, "a QEMU runs on %s: quit it or save it first", r->qmp_path);
    if (r->job->ctx->lv && lv_running(r->job->ctx->lv, restore_vm(r)))
        return job_fail(r->job, -EBUSY, "libvirt's domain %s runs: shut it down or save it first",
                        restore_vm(r));
    return 0;
}

/* libvirt starts the domain from the snapshot's XML, paused, waiting for the migration; its
 * monitor is libvirt's (lvirt.h). The mark that refuses a cold boot stays until it runs. */
static int start_libvirt(struct restore *r)
{
    char err[JOB_ERR_MAX - 80];
    struct lv *lv = r->job->ctx->lv;
    int rc;

    job_set_phase(r->job, "starting QEMU");
    if ((rc = lv_start_incoming(lv, restore_vm(r), r->m.libvirt_xml, err, sizeof(err))))
        return job_fail(r->job, rc, "%s", err);
    r->libvirt_started = 1;
    if ((rc = lv_qmp_open(lv, restore_vm(r), &r->qmp, err, sizeof(err))))
        return job_fail(r->job, rc, "%s", err);
    r->pid = qmp_peer_pid(r->qmp);
    r->pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0);
    if (r->pidfd < 0)
        return job_fail(r->job, -errno, "pidfd_open: %s", strerror(errno));
    job_set_pid(r->job, r->pid);
    return 0;
}

/* The fleet's word that the VM runs nowhere else (lease.h), held from here on: by savefs, then
 * by the fresh QEMU too, which inherits it. */
static int take_lease(struct restore *r)
{
    struct job_ctx *ctx = r->job->ctx;
    struct lease_holder h;
    struct watch_view v;
    char err[JOB_ERR_MAX - 160], who[256];
    double until = job_now() + LEASE_LOCAL_WAIT_S;
    int rc;

    job_set_phase(r->job, "taking the lease");
    for (int tick = 1;; job_wait(-1, &tick)) {
        rc = lease_take(ctx->store, restore_vm(r), &r->lease_fd, &h, err, sizeof(err));
        /* This savefs may still hold it for a QEMU that has just quit (started by hand, or one
         * whose lock it took back): the watch lets go of it at its next tick. A QEMU of this host
         * that quit holds it until its last thread has closed its descriptors (`kill`, then
         * `mv` at once). */
        if (rc != -EBUSY || strcmp(h.host, ctx->host) != 0 || job_now() > until)
            break;
        watch_view(ctx, restore_vm(r), &v);
        if (!strcmp(h.how, "seen") || v.savefs)
            watch_forget(ctx, restore_vm(r));
        else if (h.pid <= 0 || !qemu_pid_quit(h.pid))
            break;
    }
    if (rc == -EBUSY) {
        lease_describe(&h, who, sizeof(who));
        return job_fail(r->job, -EBUSY, "%s: restore it here once it has quit or been saved there",
                        who);
    }
    return rc ? job_fail(r->job, rc, "%s", err) : 0;
}

/* Who holds the lease now: the QEMU just started, on this host. */
static int write_lease(struct restore *r)
{
    struct lease_holder h = {.pid = (int)r->pid};
    int rc;

    snprintf(h.host, sizeof(h.host), "%s", r->job->ctx->host);
    job_rfc3339(h.since, sizeof(h.since));
    snprintf(h.how, sizeof(h.how), "restored");
    if ((rc = lease_write(r->lease_fd, &h)))
        return job_fail(r->job, rc, "write the lease of %s: %s", restore_vm(r), strerror(-rc));
    if ((rc = watch_note_path(r->job->ctx, restore_vm(r), r->lease_note)) ||
        (rc = lease_save(r->lease_note, &h)))
        return job_fail(r->job, rc, "write %s: %s", r->lease_note, strerror(-rc));
    return 0;
}

/* Captured disks: the VM runs on layers of its own, in STORE/VM/layers/SNAPSHOT.TIME, over
 * them. */
static int restore_layers(struct restore *r)
{
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    int rc;

    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", gmtime_r(&now, &tm));
    if ((rc = store_vm_path(r->layers, r->job->ctx->store, restore_vm(r), "layers")) ||
        (rc = store_path(r->layers + strlen(r->layers), "/%s.%s", r->job->snapshot, stamp)))
        return job_fail(r->job, rc, "layers path too long");
    return ckpt_restore_layers(r->job, &r->m, r->dir, r->layers, r->plan.binary, r->plan.cwd,
                               &r->plan.argv, r->plan.argc);
}

/* The recorded command line, rewritten for a restore (qemu.h); a stale console socket goes. */
static int restore_argv(struct restore *r)
{
    struct qemu_restore_opts o = {r->qmp_path, r->m.machine, r->console, &r->console_made};
    int rc = store_path(r->console, "%s/%s.console", r->job->ctx->run_dir, restore_vm(r));

    if (!rc)
        rc = qemu_argv_restore(r->plan.argv, r->plan.argc, &o, &r->argv);
    if (!rc && r->console_made)
        unlink(r->console);
    return rc;
}

int restore_start_qemu(struct restore *r)
{
    char err[JOB_ERR_MAX - 80];
    int rc;

    job_set_phase(r->job, "starting QEMU");
    if ((rc = job_log_path(r->job->ctx, restore_vm(r), r->log)) || (rc = restore_argv(r)))
        return job_fail(r->job, rc, "cannot build the command line");
    unlink(r->log);
    unlink(r->qmp_path); /* a stale socket file of a QEMU that is gone */
    rc = qemu_spawn(r->plan.binary, r->argv, r->plan.cwd, r->log, r->lease_fd, &r->pid, &r->pidfd,
                    err, sizeof(err));
    if (rc)
        return job_fail(r->job, rc, "%s", err);
    job_set_pid(r->job, r->pid);
    /* The lease's whole cost shows as one phase (a phase entered twice adds). */
    job_set_phase(r->job, "taking the lease");
    if ((rc = write_lease(r)))
        return rc;
    job_set_phase(r->job, "starting QEMU");
    /* If savefs dies from here on, its next start finds this and kills the half-restored QEMU. */
    snprintf(err, sizeof(err), "%d\n", (int)r->pid);
    if ((rc = store_vm_host_path(r->mark, r->job->ctx->store, restore_vm(r), STORE_RESTORE_MARK)) ||
        (rc = store_write_text(r->mark, err)))
        return job_fail(r->job, rc, "write %s: %s", r->mark, strerror(-rc));
    return 0;
}

/* QEMU's own words, for an error caused by QEMU exiting. */
int restore_qemu_gone(struct restore *r, const char *when)
{
    char tail[512];

    qemu_log_tail(r->log, tail, sizeof(tail));
    return job_fail(r->job, -EIO, "QEMU exited %s: %s", when, tail[0] ? tail : "(no output)");
}

int restore_connect_qmp(struct restore *r)
{
    char err[JOB_ERR_MAX - 80];
    double deadline = job_now() + QMP_START_TIMEOUT_MS / 1000.0;
    int rc = -ENOENT;

    /* A tick of 2 ms at most: QEMU's start is most of a lazy restore's time to running, and a
     * look at /proc/net/unix costs microseconds. */
    for (int tick = 1; job_now() < deadline; job_wait(-1, &tick), tick = tick > 2 ? 2 : tick) {
        if (qemu_exited(r->pidfd))
            return restore_qemu_gone(r, "at start");
        if (qemu_listening(r->qmp_path)) {
            rc = qmp_connect(&r->qmp, r->qmp_path, QMP_TIMEOUT_MS, err, sizeof(err));
            return rc ? job_fail(r->job, rc, "%s", err) : 0;
        }
        if (job_cancelled(r->job))
            return job_fail(r->job, -EINTR, "restore cancelled");
    }
    return job_fail(r->job, -ETIMEDOUT, "QEMU did not open %s", r->qmp_path);
}

/* The files open and start streaming in (their I/O threads read ahead) before QEMU listens. */
static int open_files(struct restore *r)
{
    struct cp_opts opts = {.direct_io = 1, .stall_ms = r->job->ctx->watchdog_ms};
    char err[JOB_ERR_MAX - 80];
    int rc;

    job_set_phase(r->job, "opening files");
    rc = cp_restore_open(&r->cp, r->dir, r->m.files, r->m.nfiles, &opts, err, sizeof(err));
    return rc ? job_fail(r->job, rc, "%s", err) : 0;
}

/* QEMU starts while the files open and their first blocks are read: on a network store the
 * opens and those reads take 0.3 s (GlusterFS, 5 files, contrib/bench --gluster), which QEMU's
 * own start (0.7 s there) now hides. A file that fails its checks kills the QEMU before it saw a
 * byte. libvirt's domain starts once the files are open, as before. */
static int start_and_open(struct restore *r)
{
    int rc;

    if (r->libvirt)
        return (rc = open_files(r)) ? rc : start_libvirt(r);
    if ((rc = restore_start_qemu(r)) || (rc = open_files(r)))
        return rc;
    job_set_phase(r->job, "starting QEMU"); /* waiting for its monitor */
    return restore_connect_qmp(r);
}

static int start_incoming(struct restore *r)
{
    char uri[PATH_MAX + 8], err[JOB_ERR_MAX - 80];
    int rc;

    if (r->libvirt)
        rc = job_lv_sock(r->job->ctx, restore_vm(r), r->pid, "restore", r->sock_dir, r->sock, err,
                         sizeof(err));
    else if ((rc = job_sock_path(r->job->ctx, restore_vm(r), "restore", r->sock)))
        snprintf(err, sizeof(err), "socket path too long");
    if (rc)
        return job_fail(r->job, rc, "%s", err);
    unlink(r->sock);
    job_set_phase(r->job, "preparing QEMU");
    if ((rc = mig_setup(r->qmp, r->m.channels, MIGRATE_NO_BANDWIDTH_CAP, 0, &r->saved, err,
                        sizeof(err))))
        return job_fail(r->job, rc, "%s", err);
    snprintf(uri, sizeof(uri), "unix:%s", r->sock);
    if ((rc = job_qmp(r->job, r->qmp, "migrate-incoming", json_pack("{s:s}", "uri", uri), NULL)))
        return rc;
    job_set_phase(r->job, "connecting");
    rc = cp_restore_start(r->cp, r->sock, err, sizeof(err));
    job_set_phase(r->job, "restoring");
    return rc ? job_fail(r->job, rc, "%s", err) : 0;
}

static uint64_t stream_bytes(const struct manifest *m)
{
    uint64_t sum = 0;

    for (int i = 0; i < m->nfiles; i++)
        if (m->files[i].kind != CP_INDEX)
            sum += m->files[i].zstd ? m->files[i].stream_size : m->files[i].size;
    return sum;
}

/* The watchdog: bytes must keep moving, QEMU must stay alive, a cancel is honoured. */
static int pump(struct restore *r)
{
    uint64_t total = stream_bytes(&r->m), last = 0, now;
    double last_move = job_now(), limit = r->job->ctx->watchdog_ms / 1000.0;
    char err[JOB_ERR_MAX - 80];
    int rc, tick = 1;

    for (; !cp_restore_done(r->cp); job_wait(cp_restore_done_fd(r->cp), &tick)) {
        now = cp_restore_bytes(r->cp);
        job_set_progress(r->job, now, total);
        if (now != last) {
            last = now;
            last_move = job_now();
        }
        if (job_cancelled(r->job))
            return job_fail(r->job, -EINTR, "restore cancelled");
        /* The streams end with QEMU: a damaged file it quit on is the better reason. */
        if (qemu_exited(r->pidfd))
            return cp_restore_finish(r->cp, err, sizeof(err)) == -EBADMSG
                       ? job_fail(r->job, -EBADMSG, "%s", err)
                       : restore_qemu_gone(r, "while loading the snapshot");
        if (job_now() - last_move > limit)
            return job_fail(r->job, -ETIMEDOUT,
                            "no bytes moved for %.0f s: QEMU stopped taking the stream", limit);
    }
    job_set_progress(r->job, cp_restore_bytes(r->cp), total);
    rc = cp_restore_finish(r->cp, err, sizeof(err));
    return rc ? job_fail(r->job, rc, "%s", err) : 0;
}

/* All bytes are in and verified; QEMU must now say completed within the watchdog's bound. */
static int wait_completed(struct restore *r)
{
    char status[32], why[JOB_ERR_MAX - 160], err[JOB_ERR_MAX - 80];
    double start = job_now(), limit = r->job->ctx->watchdog_ms / 1000.0;
    int rc;

    job_set_phase(r->job, "loading");
    for (int tick = 1;; job_wait(-1, &tick)) {
        if (qemu_exited(r->pidfd))
            return restore_qemu_gone(r, "while loading the snapshot");
        rc = mig_query(r->qmp, status, sizeof(status), why, sizeof(why), err, sizeof(err));
        if (rc)
            return job_fail(r->job, rc, "%s", err);
        if (strcmp(status, "completed") == 0)
            return 0;
        if (mig_finished(status))
            return job_fail(r->job, -EIO, "QEMU: incoming migration failed: %s", why);
        if (job_now() - start > limit)
            return job_fail(r->job, -ETIMEDOUT, "QEMU did not complete the migration (status %s)",
                            status);
        if (job_cancelled(r->job))
            return job_fail(r->job, -EINTR, "restore cancelled");
    }
}

/* libvirt lets it run, so that it knows it runs; the domain's state is no longer in the
 * snapshot alone: the mark goes. */
static int resume_libvirt(struct restore *r)
{
    char err[JOB_ERR_MAX - 80];
    int rc = 0;

    if (r->m.was_running && (rc = lv_resume(r->job->ctx->lv, restore_vm(r), err, sizeof(err))))
        return job_fail(r->job, rc, "%s", err);
    if ((rc = lv_clear_mark(r->job->ctx->lv, restore_vm(r), err, sizeof(err))) && rc != -ESRCH)
        snprintf(r->note, sizeof(r->note), "; the <metadata> mark stays: %.80s", err);
    return 0;
}

static int resume(struct restore *r)
{
    int rc = 0;

    /* A later migration of this VM by other tools (exec:, one stream) must not meet multifd. */
    mig_undo(r->qmp, &r->saved);
    if (r->libvirt)
        return resume_libvirt(r);
    if (r->m.was_running)
        rc = job_qmp(r->job, r->qmp, "cont", NULL, NULL);
    if (!rc)
        restore_record(r);
    return rc;
}

void restore_record(struct restore *r)
{
    record_write(r->job->ctx->store, restore_vm(r), r->pid, r->plan.binary, r->plan.cwd,
                 r->plan.argv, r->plan.argc);
}

/* RC, unless it is a connection that QEMU closed (a stream cut with EPIPE or ECONNRESET, QMP gone)
 * because it refused the snapshot: such a QEMU exits, and its log says why. */
static int blame_qemu(struct restore *r, int rc)
{
    if ((rc == -EPIPE || rc == -ECONNRESET) && qemu_wait_exit(r->pidfd, QEMU_EXIT_GRACE_MS))
        return restore_qemu_gone(r, "while loading the snapshot");
    return rc;
}

void restore_drop_qemu(struct restore *r, int kill)
{
    if (kill && r->libvirt_started) {
        lv_destroy(r->job->ctx->lv, restore_vm(r), NULL, 0);
    } else if (kill && r->pidfd >= 0) {
        qemu_kill(r->pidfd, KILL_TIMEOUT_MS);
        unlink(r->qmp_path); /* a killed QEMU leaves its socket file behind */
    }
    r->libvirt_started = 0;
    json_decref(r->saved.caps); /* if the restore failed before resume put them back */
    json_decref(r->saved.params);
    r->saved.caps = r->saved.params = NULL;
    if (r->qmp)
        qmp_close(r->qmp);
    r->qmp = NULL;
    if (r->pidfd >= 0)
        close(r->pidfd);
    r->pidfd = -1;
    if (r->sock[0])
        unlink(r->sock);
    if (r->sock_dir[0])
        rmdir(r->sock_dir);
    r->sock_dir[0] = '\0';
    if (r->mark[0])
        unlink(r->mark);
    r->sock[0] = r->mark[0] = '\0';
    qemu_argv_free(r->argv);
    r->argv = NULL;
}

/* Every byte streamed in and checked before the guest runs. */
static int restore_full(struct restore *r)
{
    int rc;

    if (!(rc = start_and_open(r)) && !(rc = start_incoming(r)) && !(rc = pump(r)) &&
        !(rc = wait_completed(r)))
        rc = resume(r);
    if (!rc && !r->libvirt)
        agent_sync_clock(r->m.was_running, r->plan.argv, r->plan.argc, r->plan.cwd,
                         r->note + strlen(r->note), sizeof(r->note) - strlen(r->note));
    if (rc && r->pidfd >= 0)
        rc = blame_qemu(r, rc);
    if (!rc)
        snprintf(r->job->summary, sizeof(r->job->summary),
                 "restored %s: %d channels, %s (pid %d)%s%s", r->job->snapshot, r->m.channels,
                 r->m.was_running ? "running" : "paused", (int)r->pid, r->how, r->note);
    return rc;
}

static int restore_body(struct job *job)
{
    struct restore r = {.job = job, .pidfd = -1, .lease_fd = -1};
    int rc;

    if (!(rc = load_snapshot(&r)) && !(rc = check_trust(&r)) && !(rc = check_vm_stopped(&r)) &&
        !(rc = take_lease(&r)) &&
        !(rc = precheck_restore(job, &r.m, r.libvirt ? r.m.binary : r.plan.binary, r.dir, r.note,
                                sizeof(r.note))) &&
        !(rc = restore_layers(&r)))
        /* libvirt starts its domains itself: no page server there. */
        rc = (rc = r.libvirt ? 0 : lazy_choose(&r)) < 0 ? rc
             : rc                                       ? lazy_restore(&r)
                                                        : restore_full(&r);
    if (rc == LAZY_FALLBACK) {
        restore_drop_qemu(&r, 1);
        rc = restore_full(&r);
    }
    if (r.cp) {
        cp_restore_cancel(r.cp);
        cp_restore_free(r.cp);
    }
    restore_drop_qemu(&r, rc != 0);
    /* A restored QEMU holds the lease on its own now; a killed one let it go. */
    if (r.lease_fd >= 0)
        close(r.lease_fd);
    if (rc && r.lease_note[0])
        unlink(r.lease_note);
    if (rc && r.layers[0])
        store_remove_dir(r.layers); /* no VM runs on them */
    trust_plan_free(&r.plan);
    manifest_free(&r.m);
    return rc;
}

const struct job_kind job_kind_restore = {
    .name = "restore",
    .state = "restoring",
    .body = restore_body,
    .reads_snapshot = 1,
};

int job_restore(struct job_ctx *ctx, const char *vm, const char *snap,
                job_interrupted_fn interrupted)
{
    struct job *job = job_new(ctx, &job_kind_restore);
    char why[JOB_ERR_MAX];
    int rc;

    if (!job)
        return -ENOMEM;
    snprintf(job->snapshot, sizeof(job->snapshot), "%s", snap);
    if ((rc = store_check(ctx->store, &ctx->store_id, why, sizeof(why)))) {
        free(job);
        return job_refuse(ctx, vm, &job_kind_restore, rc, why);
    }
    return job_run(job, vm, interrupted);
}
