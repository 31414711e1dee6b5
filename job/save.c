/* save: one save job, in its thread. stop the VM, migrate it over multifd into the copier, fsync,
 * write the manifest, publish the snapshot by rename, and only then quit QEMU (or resume it with
 * keep-running live=off). A live checkpoint (keep-running) migrates the running VM instead: QEMU
 * pauses it to complete, the disks are captured, the VM resumes at once, and only then are the
 * files made durable and published. Any failure resumes the VM as it was and removes every
 * partial file. docs/checkpoints.md says why precopy and not background-snapshot. */
#include "job_int.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "copier.h"
#include "disks.h"
#include "keep.h"
#include "lazy.h"
#include "lvirt.h"
#include "manifest.h"
#include "migrate.h"
#include "progress.h"
#include "qemu.h"
#include "qmp.h"
#include "record.h"
#include "store.h"
#include "trust.h"

#define DRAIN_TIMEOUT_MS   30000 /* after QEMU says completed, its sockets close at once */
#define QUIT_TIMEOUT_MS    10000
#define QEMU_EXIT_GRACE_MS 3000 /* from its monitor closing to its end */
/* A live checkpoint: the pause QEMU aims at (its own estimate of sending what is left, the
 * device state included), leaving room within the 50 ms target for savefs's resume. */
#define LIVE_DOWNTIME_MS 20
/* After this many passes over the dirty pages, a guest that dirties faster than the store
 * writes will not converge: QEMU is let pause it as long as it needs (a save as live=off). */
#define LIVE_MAX_PASSES          30
#define LIVE_GIVE_UP_DOWNTIME_MS 600000

struct save {
    struct job *job;
    struct qmp *qmp;
    int pidfd;
    char sock[PATH_MAX], tmp[PATH_MAX];
    struct manifest m;
    struct mig_saved saved;
    struct cp_save *cp;
    int migrating;      /* migrate was sent to a QEMU that lives: it must end and be cleaned up */
    int stopped;        /* the VM is paused for the save, by us or by QEMU completing: resume it */
    int live;           /* a live checkpoint: the VM runs while its memory streams */
    int gave_up;        /* live, but it did not converge: QEMU paused the VM as long as it needed */
    char not_live[160]; /* why a keep-running save paused the VM for all of it */
    double completed_at; /* job_now() when the live migration was seen completed */
    double recorded_at;  /* ... and when its disks were recorded */
    int libvirt;         /* a libvirt domain: its monitor is libvirt's, libvirt stops it */
    int persistent; /* libvirt keeps its definition: its <metadata> says where its state went */
    char sock_dir[PATH_MAX]; /* a libvirt domain's: the save socket's, its QEMU's own */
};

static const char *vm_name(const struct save *s)
{
    return s->job->vm->name;
}

static int save_connect(struct save *s)
{
    char err[JOB_ERR_MAX - 80];
    int rc;

    rc = job_vm_monitor(s->job->ctx, vm_name(s), QMP_TIMEOUT_MS, &s->qmp, &s->libvirt, err,
                        sizeof(err));
    if (rc == -ETIMEDOUT)
        rc = -EBUSY;
    if (rc)
        return job_fail(s->job, rc, "%s", err);
    s->pidfd = (int)syscall(SYS_pidfd_open, qmp_peer_pid(s->qmp), 0);
    if (s->pidfd < 0)
        return job_fail(s->job, -errno, "pidfd_open: %s", strerror(errno));
    job_set_pid(s->job, qmp_peer_pid(s->qmp));
    return 0;
}

/* A libvirt domain: its migratable XML, and its command line as /proc says. */
static int describe_domain(struct save *s, char **argv, int argc, char ***out, int *n)
{
    char err[JOB_ERR_MAX - 80];
    int rc = lv_domain_xml(s->job->ctx->lv, vm_name(s), &s->m.libvirt_xml, &s->persistent, err,
                           sizeof(err));

    if (rc)
        return job_fail(s->job, rc, "%s", err);
    *out = calloc((size_t)argc + 1, sizeof(char *));
    if (!*out)
        return -ENOMEM;
    memcpy(*out, argv, (size_t)argc * sizeof(char *));
    *n = argc;
    return 0;
}

static int libvirt_sock(struct save *s)
{
    char err[JOB_ERR_MAX - 80];
    int rc = job_lv_sock(s->job->ctx, vm_name(s), qmp_peer_pid(s->qmp), "save", s->sock_dir,
                         s->sock, err, sizeof(err));

    return rc ? job_fail(s->job, rc, "%s", err) : 0;
}

/* The save socket's owner is the QEMU's (job_lv_sock). */
static int libvirt_sock_own(struct save *s)
{
    struct stat st;

    if (stat(s->sock_dir, &st) < 0 || chown(s->sock, st.st_uid, st.st_gid) < 0)
        return job_fail(s->job, -errno, "chown %s: %s", s->sock, strerror(errno));
    return 0;
}

/* The command line that recreates the VM: savefs's record if savefs started this QEMU, else
 * what /proc says. */
static int describe_cmdline(struct save *s)
{
    char binary[PATH_MAX], cwd[PATH_MAX], err[JOB_ERR_MAX - 80], **argv = NULL, **portable = NULL;
    pid_t pid = qmp_peer_pid(s->qmp);
    int argc = 0, n = 0, rc;

    rc = s->libvirt ? -ENOENT
                    : record_read(s->job->ctx->store, vm_name(s), pid, binary, cwd, &argv, &argc);
    if (rc) {
        rc = qemu_read_cmdline(pid, &argv, &argc, binary, sizeof(binary), err, sizeof(err));
        if (!rc && (rc = qemu_read_cwd(pid, cwd, sizeof(cwd))))
            snprintf(err, sizeof(err), "read /proc/%d/cwd: %s", (int)pid, strerror(-rc));
    }
    if (rc) {
        job_fail(s->job, rc, "%s", err);
        goto out;
    }
    snprintf(err, sizeof(err), "%s.qmp", vm_name(s));
    /* libvirt restores its domain from the XML: the command line is kept as it ran, for reading
     * (its -add-fd and key files were libvirtd's, a plain QEMU could not use them). */
    if (s->libvirt)
        rc = describe_domain(s, argv, argc, &portable, &n);
    else
        rc = qemu_argv_portable(argv, argc, err, &portable, &n);
    s->m.binary = strdup(binary);
    s->m.cwd = strdup(cwd);
    s->m.argv = calloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; !rc && s->m.argv && i < n; i++)
        if ((s->m.argv[i] = strdup(portable[i])))
            s->m.argc = i + 1;
    if (!rc && (!s->m.binary || !s->m.cwd || !s->m.argv || s->m.argc != n))
        rc = -ENOMEM;
    free(portable);
out:
    qemu_argv_free(argv);
    return rc;
}

static int describe_vm(struct save *s)
{
    json_t *ver = NULL, *status = NULL, *type = NULL, *mem = NULL, *uuid = NULL;
    const char *t;
    int rc;

    if ((rc = job_qmp(s->job, s->qmp, "query-version", NULL, &ver)) ||
        (rc = job_qmp(s->job, s->qmp, "query-status", NULL, &status)) ||
        (rc = job_qmp(s->job, s->qmp, "qom-get",
                      json_pack("{s:s, s:s}", "path", "/machine", "property", "type"), &type)) ||
        (rc = job_qmp(s->job, s->qmp, "query-memory-size-summary", NULL, &mem)) ||
        (rc = job_qmp(s->job, s->qmp, "query-uuid", NULL, &uuid)))
        goto out;
    json_t *q = json_object_get(ver, "qemu");
    snprintf(s->m.qemu_version, sizeof(s->m.qemu_version), "%d.%d.%d",
             (int)json_integer_value(json_object_get(q, "major")),
             (int)json_integer_value(json_object_get(q, "minor")),
             (int)json_integer_value(json_object_get(q, "micro")));
    s->m.was_running = json_is_true(json_object_get(status, "running"));
    t = json_string_value(type) ? json_string_value(type) : "unknown";
    /* QOM calls the type "pc-i440fx-7.2-machine"; -machine takes "pc-i440fx-7.2". */
    snprintf(s->m.machine, sizeof(s->m.machine), "%.*s",
             (int)(strlen(t) > 8 && strcmp(t + strlen(t) - 8, "-machine") == 0 ? strlen(t) - 8
                                                                               : strlen(t)),
             t);
    s->m.ram_size = (uint64_t)json_integer_value(json_object_get(mem, "base-memory"));
    t = json_string_value(json_object_get(uuid, "UUID"));
    snprintf(s->m.uuid, sizeof(s->m.uuid), "%s", t ? t : "");
    rc = describe_cmdline(s);
out:
    json_decref(ver);
    json_decref(status);
    json_decref(type);
    json_decref(mem);
    json_decref(uuid);
    return rc;
}

static int check_idle(struct save *s)
{
    char status[32], why[256];
    char err[JOB_ERR_MAX - 80];
    int rc = mig_query(s->qmp, status, sizeof(status), why, sizeof(why), err, sizeof(err));

    if (rc)
        return job_fail(s->job, rc, "%s", err);
    if (!mig_finished(status) && strcmp(status, "none") != 0)
        return job_fail(s->job, -EBUSY, "a migration is already %s", status);
    return 0;
}

static int prepare(struct save *s)
{
    struct job *job = s->job;
    const struct save_words *w = &job->words;
    struct cp_opts opts = {.direct_io = w->direct_io, .zstd_level = w->zstd_level};
    const char *fault = getenv("SAVEFS_DEBUG_SAVE_FAIL_ACCEPT"); /* tests: docs/reliability.md */
    char err[JOB_ERR_MAX - 80];
    int rc;

    if (w->name[0])
        snprintf(job->snapshot, sizeof(job->snapshot), "%s", w->name);
    else
        store_default_name(job->ctx->store, vm_name(s), job->snapshot, sizeof(job->snapshot));
    if (store_snapshot_exists(job->ctx->store, vm_name(s), job->snapshot))
        return job_fail(s->job, -EEXIST, "snapshot %s exists", job->snapshot);
    if (!store_vm_exists(job->ctx->store, vm_name(s)) &&
        (rc = store_vm_ensure(job->ctx->store, vm_name(s), err, sizeof(err))))
        return job_fail(s->job, rc, "%s", err);
    if ((rc = store_tmp_create(job->ctx->store, vm_name(s), job->snapshot, s->tmp, err,
                               sizeof(err))))
        return job_fail(s->job, rc, "%s", err);
    if (s->libvirt)
        rc = libvirt_sock(s);
    else if ((rc = job_sock_path(job->ctx, vm_name(s), "save", s->sock)))
        return job_fail(s->job, rc, "socket path too long");
    if (rc)
        return rc;
    unlink(s->sock);
    opts.debug_fail_accept = fault ? atoi(fault) : 0;
    rc = cp_save_start(&s->cp, s->sock, s->tmp, w->parallel, &opts, err, sizeof(err));
    if (rc)
        return job_fail(s->job, rc, "%s", err);
    return s->libvirt ? libvirt_sock_own(s) : 0;
}

/* QEMU before 9.0 under TCG loses a running guest's writes during a migration: its dirty-bitmap
 * sync takes a fast path for RAM blocks whose size is a multiple of 64 pages, which clears the
 * migration's dirty bits without resetting the TLB entries that let writes through unmarked
 * (7.2: cpu_physical_memory_sync_dirty_bitmap; the slow path calls tlb_reset_dirty_range_all).
 * Pages written after the first pass are then never sent again: the restored guest crashes
 * (test_checkpoint_mem, docs/checkpoints.md). KVM tracks writes itself. 1 if a live checkpoint
 * is safe, else 0 with the reason in S->not_live. */
static int live_safe(struct save *s)
{
    json_t *kvm = NULL;
    int major = 0, safe;

    sscanf(s->m.qemu_version, "%d", &major);
    safe = major >= 9 || s->m.ram_size % (64 * 4096) != 0;
    if (!safe && mig_cmd(s->qmp, "query-kvm", NULL, &kvm, NULL, 0) == 0)
        safe = json_is_true(json_object_get(kvm, "enabled"));
    json_decref(kvm);
    if (!safe)
        snprintf(s->not_live, sizeof(s->not_live),
                 "QEMU %s under TCG would lose the guest's writes during a live migration",
                 s->m.qemu_version);
    return safe;
}

static int start_migration(struct save *s)
{
    char uri[PATH_MAX + 8], path[PATH_MAX], mark[64], err[JOB_ERR_MAX - 80];
    int rc;

    job_set_phase(s->job, "pausing");
    /* If savefs dies from here on, its next start finds this and resumes the VM. */
    snprintf(mark, sizeof(mark), "%d %d\n", (int)qmp_peer_pid(s->qmp), s->m.was_running);
    if ((rc = store_path(path, "%s/%s", s->tmp, STORE_SAVE_MARK)) ||
        (rc = store_write_text(path, mark)))
        return job_fail(s->job, rc, "write %s: %s", path, strerror(-rc));
    s->live = s->job->words.keep_running && s->job->words.live && s->m.was_running && live_safe(s);
    /* rate=: QEMU paces the whole migration, every channel together. */
    rc = mig_setup(s->qmp, s->job->words.parallel,
                   s->job->words.rate_mbs ? (int64_t)s->job->words.rate_mbs * 1000000
                                          : MIGRATE_NO_BANDWIDTH_CAP,
                   s->live ? LIVE_DOWNTIME_MS : 0, &s->saved, err, sizeof(err));
    if (rc)
        return job_fail(s->job, rc, "%s", err);
    if (s->m.was_running && !s->live) {
        rc = job_qmp(s->job, s->qmp, "stop", NULL, NULL);
        s->stopped = !rc;
    }
    if (rc)
        return rc;
    job_set_phase(s->job, "migrating");
    snprintf(uri, sizeof(uri), "unix:%s", s->sock);
    rc = job_qmp(s->job, s->qmp, "migrate", json_pack("{s:s}", "uri", uri), NULL);
    s->migrating = !rc;
    return rc;
}

/* Why the copier failed, if it did (QEMU then fails for want of it); else QEMU's reason. */
static int copier_or_qemu_reason(struct save *s, const char *qemu_why)
{
    char err[JOB_ERR_MAX - 80];
    int rc = cp_save_failed(s->cp, err, sizeof(err));

    if (rc && rc != -ECANCELED)
        return job_fail(s->job, rc, "%s", err);
    return job_fail(s->job, -EIO, "QEMU: migration failed: %s", qemu_why);
}

/* 1 if QEMU exited: a QEMU that dies closes its monitor a moment before it is gone, so a
 * connection it closed waits for its end a little while. */
static int qemu_died(struct save *s, int rc)
{
    if (rc == -ECONNRESET || rc == -EPIPE)
        return qemu_wait_exit(s->pidfd, QEMU_EXIT_GRACE_MS);
    return qemu_exited(s->pidfd);
}

/* A live migration that makes pass after pass does not converge: let QEMU pause the VM as long
 * as it needs to complete, and say so in the outcome. */
static void check_convergence(struct save *s, int64_t passes)
{
    char err[JOB_ERR_MAX - 80];

    if (!s->live || s->gave_up || passes < LIVE_MAX_PASSES)
        return;
    if (mig_set_downtime(s->qmp, LIVE_GIVE_UP_DOWNTIME_MS, err, sizeof(err)) == 0)
        s->gave_up = 1;
}

/* 1 if QEMU lives and its streams moved since *SEEN bytes: QEMU completes a migration holding
 * its big lock, and its monitor answers nothing until the last page is sent (many seconds for a
 * big VM paused for the whole save on a loaded host): a query that timed out then is waited out. */
static int completing(struct save *s, uint64_t *seen)
{
    uint64_t now = cp_save_bytes(s->cp);
    int moved = now != *seen;

    *seen = now;
    return moved && !qemu_exited(s->pidfd);
}

static int wait_migration(struct save *s)
{
    char status[32], why[JOB_ERR_MAX - 160], err[JOB_ERR_MAX - 80];
    uint64_t seen = 0;
    int rc, tick = 1;

    for (;;) {
        check_convergence(s, progress_save(s->job, s->qmp, cp_save_bytes(s->cp)));
        if (job_cancelled(s->job))
            return job_fail(s->job, -EINTR, "save cancelled");
        rc = mig_query(s->qmp, status, sizeof(status), why, sizeof(why), err, sizeof(err));
        if (rc == -ETIMEDOUT && completing(s, &seen))
            continue;
        if (rc && qemu_died(s, rc)) {
            s->migrating = 0;
            return job_fail(s->job, -EIO, "QEMU exited during the save");
        }
        if (rc)
            return job_fail(s->job, rc, "%s", err);
        if (strcmp(status, "completed") == 0)
            break;
        /* A failed copier drains QEMU's streams: QEMU goes on until roll_back cancels it. */
        if (mig_finished(status) || cp_save_failed(s->cp, why, 0))
            return copier_or_qemu_reason(s, why);
        /* QEMU says when it stops the VM and when the migration completes (its events), and
         * closes its streams as it completes: each is the moment to ask. A live checkpoint's
         * pause lasts until our `cont`: a look at the next tick would add up to a tick to it. */
        job_wait_qmp(s->qmp, cp_save_done(s->cp) ? -1 : cp_save_done_fd(s->cp), &tick);
    }
    s->migrating = 0;
    if (s->live) {
        /* QEMU paused the VM to complete: it is ours to resume. */
        s->completed_at = job_now();
        s->stopped = 1;
    }
    return 0;
}

/* RFC 3339 with milliseconds, UTC, of the wall clock AGO_S seconds ago. */
static void instant_ago(double ago_s, char *buf, size_t len)
{
    struct timespec now;
    struct tm tm;
    int64_t ms;

    clock_gettime(CLOCK_REALTIME, &now);
    ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - (int64_t)(ago_s * 1000);
    time_t t = (time_t)(ms / 1000);
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03dZ", (int)(ms % 1000));
}

/* While the VM runs and its memory streams (ckpt.h). */
static int warm_disks(struct save *s)
{
    if (s->live)
        ckpt_disks_warm(s->job, s->qmp, s->tmp, &s->m);
    return 0;
}

/* While a live checkpoint's VM is paused: its disks as of now. */
static int record_disks(struct save *s)
{
    /* A live checkpoint's captured disks get their fingerprints from their captures, after the
     * pause (ckpt.c). */
    int rc =
        disks_record(s->job, s->qmp, &s->m, s->live && s->job->words.disks != WORDS_DISKS_NONE);

    s->recorded_at = job_now();
    return rc;
}

/* A live checkpoint's VM runs on as soon as its state is whole, before anything is made durable:
 * the pause is QEMU's downtime (from the stop to completion) and ours until `cont` returned. */
static int resume_live(struct save *s)
{
    char err[JOB_ERR_MAX - 80];
    int64_t downtime_ms = 0;
    int rc;

    if (!s->live)
        return 0;
    job_set_phase(s->job, "resuming");
    double captured_at = job_now();
    if ((rc = mig_cont(s->qmp, err, sizeof(err))))
        return job_fail(s->job, rc, "resume after the checkpoint: %s", err);
    s->stopped = 0;
    double resumed_at = job_now(), ours = resumed_at - s->completed_at;
    mig_downtime(s->qmp, &downtime_ms, err, sizeof(err));
    s->m.checkpoint = 1;
    s->m.checkpoint_pause_ms = (double)downtime_ms + ours * 1000;
    instant_ago(s->m.checkpoint_pause_ms / 1000, s->m.checkpoint_at, sizeof(s->m.checkpoint_at));
    job_log(s->job,
            "checkpoint %s: paused %.1f ms: QEMU %" PRId64 " ms to complete, then savefs "
            "%.1f ms (disks recorded %.1f ms, captured %.1f ms, cont %.1f ms)",
            s->job->snapshot, s->m.checkpoint_pause_ms, downtime_ms, ours * 1000,
            (s->recorded_at - s->completed_at) * 1000, (captured_at - s->recorded_at) * 1000,
            (resumed_at - captured_at) * 1000);
    return 0;
}

/* Every stream to its end: QEMU closes them as it completes. */
static int drain_streams(struct save *s)
{
    int tick = 1;
    double deadline = job_now() + DRAIN_TIMEOUT_MS / 1000.0;

    for (; !cp_save_done(s->cp); job_wait(cp_save_done_fd(s->cp), &tick))
        if (job_now() > deadline)
            return job_fail(s->job, -ETIMEDOUT, "QEMU completed but left a stream open");
    progress_save_sent(s->job, cp_save_bytes(s->cp));
    return 0;
}

/* The mount lists the store directory that savefs started on: a snapshot published into one that
 * replaced it since would say ok and never be seen. */
static int check_store(struct save *s)
{
    char err[JOB_ERR_MAX - 80];
    int rc = store_check(s->job->ctx->store, &s->job->ctx->store_id, err, sizeof(err));

    return rc ? job_fail(s->job, rc, "%s", err) : 0;
}

/* The manifest, named SNAP and signed, in the save's directory. */
static int write_manifest(struct save *s, const char *snap)
{
    char err[JOB_ERR_MAX - 80], path[PATH_MAX];
    int rc;

    snprintf(s->m.snapshot, sizeof(s->m.snapshot), "%s", snap);
    if (s->job->ctx->trust && (rc = trust_sign(s->job->ctx->trust, &s->m)))
        return job_fail(s->job, rc, "cannot sign the manifest");
    if ((rc = store_path(path, "%s/%s", s->tmp, MANIFEST_NAME)))
        return job_fail(s->job, rc, "%s: path too long", s->tmp);
    /* The manifest is created exclusively; one written under a name that was taken meanwhile is
     * replaced (the directory is this save's alone). */
    if (unlink(path) < 0 && errno != ENOENT)
        return job_fail(s->job, -errno, "remove %s: %s", path, strerror(errno));
    if ((rc = manifest_write(path, &s->m, err, sizeof(err))))
        return job_fail(s->job, rc, "%s", err);
    return 0;
}

/* Publishes the save as job->snapshot. A default name that another save published meanwhile
 * (another host of a fleet sharing the store, in the same second: prepare() saw it free) moves on
 * to the next of its second, -2, -3..., and the manifest is written again under it; a name the
 * user gave stays EEXIST. */
static int publish(struct save *s)
{
    char err[JOB_ERR_MAX - 80], snap[SNAPSHOT_NAME_MAX + 1];
    struct job *job = s->job;
    int rc;

    snprintf(snap, sizeof(snap), "%s", job->snapshot);
    for (;;) {
        rc = store_publish(job->ctx->store, vm_name(s), s->tmp, snap, err, sizeof(err));
        if (rc != -EEXIST || job->words.name[0] ||
            store_default_name_next(job->ctx->store, vm_name(s), snap, sizeof(snap)))
            break;
        if ((rc = write_manifest(s, snap)))
            return rc;
        job_set_snapshot(job, snap);
    }
    if (rc)
        return job_fail(s->job, rc, "%s", err);
    s->tmp[0] = '\0';
    return 0;
}

/* The chunk files durable, their indexes resolved, their sizes and checksums in the manifest. */
static int finish_streams(struct save *s)
{
    char err[JOB_ERR_MAX - 80];
    int rc;

    job_set_phase(s->job, "syncing");
    rc = cp_save_finish(s->cp, s->m.files, &s->m.nfiles, err, sizeof(err));
    return rc ? job_fail(s->job, rc, "%s", err) : 0;
}

static int write_snapshot(struct save *s)
{
    char path[PATH_MAX];
    struct job *job = s->job;
    int rc;

    s->m.version = MANIFEST_VERSION;
    s->m.channels = job->words.parallel;
    snprintf(s->m.vm, sizeof(s->m.vm), "%s", vm_name(s));
    snprintf(s->m.compression, sizeof(s->m.compression), job->words.zstd_level ? "zstd" : "none");
    s->m.compression_level = job->words.zstd_level;
    job_rfc3339(s->m.created, sizeof(s->m.created));
    s->m.duration_s = job_now() - job->started;
    if ((rc = write_manifest(s, job->snapshot)))
        return rc;
    job_set_phase(job, "publishing");
    /* The snapshot is whole: the mark that recovers a paused VM has no place in it. */
    if ((rc = store_path(path, "%s/%s", s->tmp, STORE_SAVE_MARK)) ||
        (unlink(path) < 0 && (rc = -errno)))
        return job_fail(s->job, rc, "remove %s: %s", path, strerror(-rc));
    if ((rc = check_store(s)) || (rc = publish(s)))
        return rc;
    return check_store(s);
}

static uint64_t snapshot_bytes(const struct manifest *m)
{
    uint64_t sum = 0;

    for (int i = 0; i < m->nfiles; i++)
        sum += m->files[i].size;
    return sum;
}

/* The snapshot is durable: now QEMU may quit, or run on. */
static void finish_vm(struct save *s)
{
    struct pollfd p = {.fd = s->pidfd, .events = POLLIN};

    mig_undo(s->qmp, &s->saved);
    if (s->job->words.keep_running) {
        if (s->stopped)
            mig_cont(s->qmp, NULL, 0);
        return;
    }
    job_set_phase(s->job, "quitting");
    if (s->libvirt)
        /* libvirt ends its QEMU itself: its domain is "shut off (destroyed)", not a guest that
         * shut down; the mark already says where its state is. */
        lv_destroy(s->job->ctx->lv, vm_name(s), NULL, 0);
    else
        mig_cmd(s->qmp, "quit", NULL, NULL, NULL, 0);
    poll(&p, 1, QUIT_TIMEOUT_MS);
}

/* A checkpoint whose disks were captured lets the VM run on before its images are checksummed
 * and copied (ckpt_disks_start): the clones and the frozen images are the VM's no more. For a
 * keep-running live=off save, this is where its pause ends. */
static int resume_checkpointed(struct save *s, const struct ckpt *c)
{
    char err[JOB_ERR_MAX - 80];
    int rc;

    if (!c || !s->job->words.keep_running || !s->stopped)
        return 0;
    mig_undo(s->qmp, &s->saved);
    if ((rc = mig_cont(s->qmp, err, sizeof(err))))
        job_fail(s->job, rc, "%s", err);
    s->stopped = rc != 0;
    return rc;
}

/* Before a libvirt domain stops: its <metadata> says that the snapshot holds its state, which
 * the hook reads to refuse a cold boot (docs/libvirt.md). A domain libvirt forgets once it stops
 * (transient) has no definition to mark. */
static int mark_libvirt(struct save *s)
{
    char err[JOB_ERR_MAX - 80], at[32];
    int rc;

    if (!s->libvirt || !s->persistent || s->job->words.keep_running)
        return 0;
    job_rfc3339(at, sizeof(at));
    rc = lv_mark_saved(s->job->ctx->lv, vm_name(s), s->job->snapshot, s->job->ctx->store, at, err,
                       sizeof(err));
    return rc ? job_fail(s->job, rc, "the snapshot %s is whole, but %s: the domain runs on",
                         s->job->snapshot, err)
              : 0;
}

/* Leaves the VM as it was before the save, and able to migrate again: the copier drains every
 * stream QEMU still writes until QEMU has cancelled and cleaned its migration up (QEMU 7.2 stays
 * in "setup" for good, or aborts, if a stream is cut while it sets up). */
static void roll_back(struct save *s)
{
    size_t n = strlen(s->job->err);

    if (s->cp)
        cp_save_cancel(s->cp);
    if (s->qmp && s->migrating && mig_cancel(s->qmp, DRAIN_TIMEOUT_MS))
        snprintf(s->job->err + n, sizeof(s->job->err) - n,
                 "; QEMU did not end its migration within %d s: it may need a restart before the "
                 "VM can be saved again",
                 DRAIN_TIMEOUT_MS / 1000);
    if (s->qmp && s->saved.caps)
        mig_undo(s->qmp, &s->saved);
    /* The save's own error is what the user reads: a failed resume does not replace it. A live
     * migration that failed as QEMU completed it may have left the VM paused. */
    if (s->qmp && (s->stopped || (s->live && !mig_vm_running(s->qmp))))
        mig_cont(s->qmp, NULL, 0);
}

static void summarize(struct save *s)
{
    struct job *job = s->job;
    int n = snprintf(job->summary, sizeof(job->summary),
                     "%s%d channels, %llu MiB of RAM, %llu MiB written in %.2f s",
                     s->live ? "live checkpoint: " : "", job->words.parallel,
                     (unsigned long long)(s->m.ram_size >> 20),
                     (unsigned long long)(snapshot_bytes(&s->m) >> 20), job_now() - job->started);

    if (s->not_live[0] && n > 0 && (size_t)n < sizeof(job->summary))
        snprintf(job->summary + n, sizeof(job->summary) - (size_t)n,
                 "; paused for all of it, not live: %s", s->not_live);
    if (s->live && n > 0 && (size_t)n < sizeof(job->summary))
        snprintf(job->summary + n, sizeof(job->summary) - (size_t)n,
                 "; paused %.0f ms%s; holds the VM as at %s (memory streaming completed)",
                 s->m.checkpoint_pause_ms,
                 s->gave_up ? " (the guest dirtied memory faster than it could be saved)" : "",
                 s->m.checkpoint_at);
}

static int save_body(struct job *job)
{
    struct save s = {.job = job, .pidfd = -1};
    struct ckpt *ckpt = NULL;
    int rc;

    job_set_phase(job, "connecting");
    /* While the VM is paused (a live checkpoint's, by QEMU completing): its disks as of now. */
    if (!(rc = save_connect(&s)) && !(rc = describe_vm(&s)) && !(rc = check_idle(&s)) &&
        !(rc = prepare(&s)) && !(rc = start_migration(&s)) && !(rc = warm_disks(&s)) &&
        !(rc = wait_migration(&s)) && !(rc = record_disks(&s)) &&
        !(rc = ckpt_disks_capture(job, s.qmp, s.tmp, &s.m, &ckpt)) && !(rc = resume_live(&s)) &&
        !(rc = resume_checkpointed(&s, ckpt)) && !(rc = drain_streams(&s)) &&
        !(rc = ckpt_disks_start(job, ckpt, &s.m)) && !(rc = finish_streams(&s)) &&
        !(rc = ckpt_disks_finish(job, s.qmp, ckpt)) && !(rc = write_snapshot(&s)))
        rc = mark_libvirt(&s);
    if (rc) {
        ckpt_failed(job, ckpt);
        roll_back(&s);
    } else {
        summarize(&s);
        finish_vm(&s);
        keep_prune(job);
    }
    ckpt_free(ckpt);
    if (s.cp)
        cp_save_free(s.cp);
    if (s.tmp[0])
        store_remove_dir(s.tmp);
    if (s.sock_dir[0]) {
        unlink(s.sock);
        rmdir(s.sock_dir);
    }
    if (s.qmp)
        qmp_close(s.qmp);
    if (s.pidfd >= 0)
        close(s.pidfd);
    manifest_free(&s.m);
    return rc;
}

const struct job_kind job_kind_save = {
    .name = "save",
    .state = "saving",
    .body = save_body,
    .is_save = 1,
};

int job_save(struct job_ctx *ctx, const char *vm, const char *words, size_t len,
             job_interrupted_fn interrupted)
{
    char why[JOB_ERR_MAX];
    struct job *job;
    int rc;

    job = job_new(ctx, &job_kind_save);
    if (!job)
        return -ENOMEM;
    rc = words_parse(words, len, &job->words, why, sizeof(why));
    job->channels = job->words.parallel;
    if (!rc)
        rc = store_check(ctx->store, &ctx->store_id, why, sizeof(why));
    if (!rc && job->words.name[0] && store_snapshot_exists(ctx->store, vm, job->words.name)) {
        snprintf(why, sizeof(why), "snapshot %s exists", job->words.name);
        rc = -EEXIST;
    }
    /* A lazy restore's push (of this savefs's job or one left by another) is waited for. */
    while (!rc && lazy_pushing(ctx, vm, why, sizeof(why))) {
        if (interrupted && interrupted()) {
            snprintf(why, sizeof(why), "interrupted while waiting for the push of a lazy restore");
            rc = -EINTR;
        }
        usleep(100 * 1000);
    }
    if (rc) {
        free(job);
        return job_refuse(ctx, vm, &job_kind_save, rc, why);
    }
    return job_run(job, vm, interrupted);
}
