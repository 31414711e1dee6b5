/* lazy: a lazy restore (lazy.h). QEMU starts with -incoming defer -S and postcopy-ram;
 * savefs-pager, spawned in its own session like QEMU, connects to it and writes its events
 * (`running`, `push DONE TOTAL`, `done SECONDS`, `fail WORDS`) to a file in the VM's runtime
 * directory, which outlives both savefs and a pipe's reader. Once the guest runs, the job's
 * caller returns and the job follows the push; a page server that dies before the last page is
 * replaced by one that resumes QEMU's postcopy, and one that fails (or cannot be replaced) gets
 * the VM stopped (QEMU killed: a vCPU waiting for a page cannot even pause), never a guest left
 * hanging. A restarted savefs follows a push left by its predecessor the same way, in a job of
 * its own (lazy_adopt). Runs in the restore job's thread. */
#include "lazy.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "agent.h"
#include "job.h"
#include "qemu.h"
#include "qemuopts.h"
#include "qmp.h"
#include "store.h"
#include "trust.h"

#define LAZY_PAGE_SIZE          4096  /* `push` counts target pages */
#define LAZY_QEMU_EXIT_GRACE_MS 3000  /* a QEMU that refused the stream exits at once */
#define LAZY_MAX_RESUMES        2     /* a page server that keeps dying: the VM is stopped */
#define LAZY_PAUSE_WAIT_MS      10000 /* QEMU goes postcopy-paused once it sees the stream end */
#define LAZY_DIGEST_REFUSAL     "manifest's digest is" /* the pager's words (pager/main.c) */
/* Every tick of a wait before the guest runs is time to running: short ones (job_wait grows them
 * to 100 ms), and QMP asked at most this often (the pager's events say it first). */
#define LAZY_TICK_MAX_MS 4
#define LAZY_QMP_EVERY_S 0.05

enum lazy_mode { LAZY_AUTO, LAZY_FULL, LAZY_ON };
static const char *const mode_words[] = {"auto", "full", "lazy"};

int job_restore_mode_parse(const char *value, size_t len)
{
    for (int i = 0; i < 3; i++)
        if (len == strlen(mode_words[i]) && memcmp(value, mode_words[i], len) == 0)
            return i;
    return -EINVAL;
}

/* The mode set on PATH, or -1 if none (a value that is no mode is none: setxattr refuses those). */
static int mode_at(const char *path)
{
    char value[16];
    ssize_t n = getxattr(path, MANIFEST_RESTORE_XATTR, value, sizeof(value));

    return n < 0 ? -1 : job_restore_mode_parse(value, (size_t)n);
}

/* The user's choice: the snapshot's, else its VM's, else auto. */
static enum lazy_mode user_mode(const struct restore *r)
{
    char vmdir[PATH_MAX];
    int mode = mode_at(r->dir);

    if (mode < 0 && !store_vm_path(vmdir, r->job->ctx->store, restore_vm(r), NULL))
        mode = mode_at(vmdir);
    return mode < 0 ? LAZY_AUTO : (enum lazy_mode)mode;
}

/* Why R cannot restore lazily into WHY, or "" if it can. */
static void lazy_obstacle(const struct restore *r, int strict, char *why, size_t len)
{
    char idx[CP_NAME_MAX], version[32] = "";
    int found;

    why[0] = '\0';
    /* A live checkpoint's pages were sent more than once, and 7.2 sends a zero page in the main
     * stream, apart from the channels' order: the indexes cannot tell yet whether a channel's
     * copy or a later zero page is a page's last state (docs/lazy.md). */
    if (r->m.checkpoint) {
        snprintf(why, len, "a live checkpoint is restored fully (its zero pages are not indexed)");
        return;
    }
    if (qemuopts_ram_obstacle(r->plan.argv, r->plan.argc, r->plan.cwd, why, len))
        return;
    for (int k = 0; k < r->m.channels && !why[0]; k++) {
        found = 0;
        cp_file_name(CP_INDEX, k, idx, sizeof(idx));
        for (int i = 0; i < r->m.nfiles; i++)
            found |= strcmp(r->m.files[i].name, idx) == 0;
        if (!found)
            snprintf(why, len, "channel-%d has no page index (saved by an older savefs)", k);
    }
    if (why[0])
        return;
    if (!r->job->ctx->pager[0] || access(r->job->ctx->pager, X_OK) < 0) {
        snprintf(why, len, "no page server at %s", r->job->ctx->pager);
        return;
    }
    /* 7.2 opens userfaultfd with the plain syscall, as this does: what savefs may, its QEMU may. */
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, len,
                 "userfaultfd is not available (%s): it needs root, CAP_SYS_PTRACE or "
                 "vm.unprivileged_userfaultfd=1",
                 strerror(errno));
        return;
    }
    close(fd);
    /* The page server speaks 7.2's postcopy stream, the one version it was verified with; a
     * choice of "lazy" tries it anyway. */
    if (!strict && (qemu_binary_version(r->plan.binary, version, sizeof(version)) ||
                    strncmp(version, "7.2.", 4) != 0))
        snprintf(why, len, "the page server is known to work with QEMU 7.2 only, not %s",
                 version[0] ? version : "this one");
}

int lazy_choose(struct restore *r)
{
    enum lazy_mode mode = user_mode(r);
    char why[320];

    if (mode == LAZY_FULL) {
        snprintf(r->how, sizeof(r->how), "; fully: restore=full");
        return 0;
    }
    lazy_obstacle(r, mode == LAZY_ON, why, sizeof(why));
    if (!why[0]) {
        snprintf(r->how, sizeof(r->how), "; lazily (restore=%s)", mode_words[mode]);
        r->auto_mode = mode == LAZY_AUTO;
        return r->lazy = 1;
    }
    if (mode == LAZY_ON)
        return job_fail(r->job, -EPROTONOSUPPORT, "restore=lazy, but %s", why);
    snprintf(r->how, sizeof(r->how), "; fully (restore=auto): %s", why);
    return 0;
}

/* ---- the page server ---- */

int lazy_pager_alive(pid_t pid)
{
    char binary[PATH_MAX], err[128], **argv = NULL;
    int argc = 0, found;

    if (pid <= 0 || kill(pid, 0) < 0 ||
        qemu_read_cmdline(pid, &argv, &argc, binary, sizeof(binary), err, sizeof(err)))
        return 0;
    found = strstr(binary, "savefs-pager") != NULL;
    qemu_argv_free(argv);
    return found;
}

int lazy_mark_read(const char *path, struct lazy_marked *mk)
{
    FILE *f = fopen(path, "re");
    int n;

    memset(mk, 0, sizeof(*mk));
    if (!f)
        return -1;
    n = fscanf(f, "%d %d %64s %79s", &mk->qemu, &mk->pager, mk->snapshot, mk->digest);
    fclose(f);
    return n >= 2 && mk->qemu > 0 && mk->pager > 0 ? 0 : -1;
}

int lazy_pushing(const struct job_ctx *ctx, const char *vm, char *why, size_t len)
{
    struct lazy_marked mk;
    char mark[PATH_MAX];

    if (store_vm_host_path(mark, ctx->store, vm, STORE_LAZY_MARK) || lazy_mark_read(mark, &mk) ||
        !lazy_pager_alive(mk.pager))
        return 0;
    snprintf(why, len,
             "the page server of its lazy restore (pid %d) still pushes its pages: save it once "
             "they are all in",
             mk.pager);
    return -EBUSY;
}

struct lazy {
    struct restore *r;
    char events[PATH_MAX], log[PATH_MAX], mark[PATH_MAX];
    char faults[PATH_MAX];         /* the VM's fault log on this host: --fault-log, --hot */
    char digest[TRUST_DIGEST_MAX]; /* of the manifest the job decided on: --digest */
    int efd;                       /* the events file, read from its start */
    char line[512];
    size_t len;
    pid_t pager;
    int pager_pidfd;
    int running, done, failed;    /* events seen */
    int resumes;                  /* page servers started with --resume after one died */
    int adopted;                  /* a push a restarted savefs found (lazy_adopt) */
    char resume_err[160];         /* why the last resume was not made */
    uint64_t pushed, total;       /* pages */
    double t0, t_running, t_done; /* from the start of the job: of the `mv` */
    char fail[256];
};

/* Takes one event line in. */
static void lazy_event(struct lazy *z, const char *line)
{
    unsigned long long a, b;

    if (strcmp(line, "running") == 0) {
        z->running = 1;
    } else if (sscanf(line, "push %llu %llu", &a, &b) == 2) {
        z->pushed = a;
        z->total = b;
        job_set_progress(z->r->job, a * LAZY_PAGE_SIZE, b * LAZY_PAGE_SIZE);
    } else if (strncmp(line, "done", 4) == 0) {
        z->done = 1;
        z->pushed = z->total;
        job_set_progress(z->r->job, z->total * LAZY_PAGE_SIZE, z->total * LAZY_PAGE_SIZE);
    } else if (strncmp(line, "fail", 4) == 0) {
        z->failed = 1;
        snprintf(z->fail, sizeof(z->fail), "%s", line[4] ? line + 5 : "(no reason)");
    }
}

/* Reads what the page server wrote since the last call. */
static void lazy_events(struct lazy *z)
{
    char buf[4096];
    ssize_t n;

    while ((n = read(z->efd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (z->len < sizeof(z->line) - 1)
                    z->line[z->len++] = buf[i];
                continue;
            }
            z->line[z->len] = '\0';
            z->len = 0;
            lazy_event(z, z->line);
        }
    }
}

static int lazy_paths(struct lazy *z)
{
    const struct job_ctx *ctx = z->r->job->ctx;
    const char *vm = restore_vm(z->r);
    int rc;

    if ((rc = store_path(z->events, "%s/%s.pager.events", ctx->run_dir, vm)) ||
        (rc = store_path(z->log, "%s/%s.pager.log", ctx->run_dir, vm)) ||
        (rc = store_vm_host_path(z->mark, ctx->store, vm, STORE_LAZY_MARK)) ||
        (rc = store_vm_host_path(z->faults, ctx->store, vm, STORE_LAZY_FAULTS)) ||
        (rc = job_sock_path(ctx, vm, "pager", z->r->sock)))
        return job_fail(z->r->job, rc, "a path for the page server is too long");
    return 0;
}

static int lazy_incoming(struct lazy *z)
{
    struct restore *r = z->r;
    char uri[PATH_MAX + 8], err[JOB_ERR_MAX - 80];
    int rc;

    job_set_phase(r->job, "preparing QEMU");
    if ((rc = mig_setup_postcopy(r->qmp, &r->saved, err, sizeof(err))))
        return job_fail(r->job, rc, "%s", err);
    snprintf(uri, sizeof(uri), "unix:%s", r->sock);
    return job_qmp(r->job, r->qmp, "migrate-incoming", json_pack("{s:s}", "uri", uri), NULL);
}

/* savefs-pager --events 3 --digest D --fault-log F [--hot F] SNAPSHOT SOCKET, in its own
 * session, its events in z->events. --digest: the pager re-reads the manifest, and must serve the
 * one trust decided on, not one swapped in since. The fault log is the VM's local state, never
 * the snapshot's (immutable, signed); the previous restore's log, read before it is rewritten,
 * orders this push (hot first: docs/lazy.md). With RESUME, --resume instead of the log (the dead
 * pager's log stays as it was): its events follow the dead one's in the same file. 0, or a
 * negative errno with the reason in ERR. */
static int events_unopened(const struct lazy *z, char *err, size_t errlen)
{
    int rc = -errno;

    snprintf(err, errlen, "open %.200s: %s", z->events, strerror(-rc));
    return rc;
}

static int lazy_exec(struct lazy *z, int resume, char *err, size_t errlen)
{
    struct restore *r = z->r;
    char *argv[] = {r->job->ctx->pager, "--events", "3",       "--digest", z->digest, "--fault-log",
                    z->faults,          "--hot",    z->faults, r->dir,     r->sock,   NULL};
    int wfd, rc, at = access(z->faults, R_OK) < 0 ? 7 : 9; /* none: index order */

    if (resume) {
        argv[5] = "--resume";
        at = 6;
    }
    argv[at] = r->dir;
    argv[at + 1] = r->sock;
    argv[at + 2] = NULL;
    wfd = open(z->events, O_WRONLY | O_CREAT | (resume ? 0 : O_TRUNC) | O_APPEND | O_CLOEXEC, 0600);
    if (wfd < 0)
        return events_unopened(z, err, errlen);
    if (z->efd < 0 && (z->efd = open(z->events, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = events_unopened(z, err, errlen);
        close(wfd);
        return rc;
    }
    rc = qemu_spawn_fd(argv[0], argv, "/", z->log, wfd, &z->pager, &z->pager_pidfd, err, errlen);
    close(wfd);
    return rc;
}

static int lazy_spawn(struct lazy *z)
{
    struct restore *r = z->r;
    char err[JOB_ERR_MAX - 80];
    int rc;

    job_set_phase(r->job, "starting the page server");
    if (trust_digest(&r->m, z->digest, sizeof(z->digest)))
        return job_fail(r->job, -EINVAL, "the manifest has no canonical text to digest");
    unlink(z->log);
    unlink(r->sock); /* the pager retries until QEMU listens there, never on a stale file */
    rc = lazy_exec(z, 0, err, sizeof(err));
    /* The rest of the wait is QEMU's start: one phase (a phase entered twice adds). */
    job_set_phase(r->job, "starting QEMU");
    return rc ? job_fail(r->job, rc, "%s", err) : 0;
}

/* job_wait, its tick kept short (LAZY_TICK_MAX_MS). */
static void lazy_wait(int fd, int *tick)
{
    job_wait(fd, tick);
    if (*tick > LAZY_TICK_MAX_MS)
        *tick = LAZY_TICK_MAX_MS;
}

/* The page server's own last words, for the job's error. */
static void pager_words(const struct lazy *z, char *out, size_t len)
{
    qemu_log_tail(z->log, out, len);
    if (!out[0])
        snprintf(out, len, "(no output)");
}

static int pager_gone(struct lazy *z, const char *when)
{
    char tail[400];

    pager_words(z, tail, sizeof(tail));
    return job_fail(z->r->job, -EPIPE, "the page server (pid %d) exited %s: %s", (int)z->pager,
                    when, tail);
}

static int migration_is(struct restore *r, const char *a, const char *b)
{
    char status[32], why[64], err[128];

    return mig_query(r->qmp, status, sizeof(status), why, sizeof(why), err, sizeof(err)) == 0 &&
           (strcmp(status, a) == 0 || (b && strcmp(status, b) == 0));
}

/* 1 if the page server stopped before QEMU got a byte (it refuses what it cannot serve
 * before it connects) and the user left the choice to savefs: R->how then says why, and the
 * restore goes on fully. */
static int lazy_refused(struct lazy *z)
{
    struct restore *r = z->r;
    char words[160];

    if (!r->auto_mode || !migration_is(r, "none", "setup"))
        return 0;
    lazy_events(z);
    if (z->failed && strstr(z->fail, LAZY_DIGEST_REFUSAL))
        return 0; /* the snapshot changed under the restore: no restore at all */
    if (z->failed)
        snprintf(words, sizeof(words), "%.150s", z->fail);
    else
        pager_words(z, words, sizeof(words));
    snprintf(r->how, sizeof(r->how), "; fully (restore=auto): the page server refused: %.180s",
             words);
    return 1;
}

/* Until QEMU has its devices and takes pages: the pager says `running` (QEMU in postcopy tells
 * as much to a pager without events). */
static int lazy_wait_devices(struct lazy *z)
{
    struct restore *r = z->r;
    double limit = r->job->ctx->watchdog_ms / 1000.0, start = job_now(), asked = 0;
    int tick = 1;

    job_set_phase(r->job, "loading devices");
    for (;; lazy_wait(z->pager_pidfd, &tick)) {
        int gone = qemu_exited(z->pager_pidfd); /* once: it may go between two looks */
        int ask = job_now() - asked >= LAZY_QMP_EVERY_S;

        lazy_events(z);
        if ((z->failed || gone) && lazy_refused(z))
            return LAZY_FALLBACK;
        /* QEMU refusing the device state closes the stream: its words, not the pager's EPIPE. */
        if ((z->failed || gone) && qemu_wait_exit(r->pidfd, LAZY_QEMU_EXIT_GRACE_MS))
            return restore_qemu_gone(r, "while loading the snapshot");
        if (z->failed)
            return job_fail(r->job, strstr(z->fail, LAZY_DIGEST_REFUSAL) ? -EPERM : -EIO,
                            "the page server stopped: %s", z->fail);
        if (z->running)
            return 0;
        if (ask && (asked = job_now()) && migration_is(r, "postcopy-active", "completed"))
            return 0;
        if (qemu_exited(r->pidfd))
            return restore_qemu_gone(r, "while loading the devices");
        if (gone)
            return pager_gone(z, "before QEMU had the devices");
        if (job_now() - start > limit)
            return job_fail(r->job, -ETIMEDOUT, "QEMU did not take the devices within %.0f s",
                            limit);
        if (job_cancelled(r->job))
            return job_fail(r->job, -EINTR, "restore cancelled");
    }
}

/* `cont`, and the guest runs (7.2 takes a cont during the incoming migration as autostart). */
static int lazy_run_guest(struct lazy *z)
{
    struct restore *r = z->r;
    double limit = r->job->ctx->watchdog_ms / 1000.0, start = job_now();
    json_t *st = NULL;
    int rc = 0, tick = 1, up = 0;

    if (!r->m.was_running)
        return 0;
    if ((rc = job_qmp(r->job, r->qmp, "cont", NULL, NULL)))
        return rc;
    for (; !rc && !up; lazy_wait(z->pager_pidfd, &tick)) {
        if (!(rc = job_qmp(r->job, r->qmp, "query-status", NULL, &st)))
            up = json_is_true(json_object_get(st, "running"));
        json_decref(st);
        st = NULL;
        if (!rc && !up && job_now() - start > limit)
            rc = job_fail(r->job, -ETIMEDOUT, "the guest did not run within %.0f s", limit);
    }
    return rc;
}

/* The push's mark (struct lazy_marked), rewritten for each new page server. */
static int lazy_mark(struct lazy *z)
{
    struct restore *r = z->r;
    char text[64 + SNAPSHOT_NAME_MAX + TRUST_DIGEST_MAX];
    int rc;

    snprintf(text, sizeof(text), "%d %d %s %s\n", (int)r->pid, (int)z->pager, r->job->snapshot,
             z->digest);
    if ((rc = store_write_text(z->mark, text)))
        return job_fail(r->job, rc, "write %s: %s", z->mark, strerror(-rc));
    return 0;
}

/* The guest runs: it is no half-restored QEMU for a restarted savefs to kill any more, but a VM
 * whose page server it must look after. */
static int lazy_running(struct lazy *z)
{
    struct restore *r = z->r;
    int rc = lazy_mark(z);

    if (rc)
        return rc;
    unlink(r->mark);
    r->mark[0] = '\0';
    restore_record(r);
    return 0;
}

/* The page server died mid-push without a word (SIGKILL, a crash): QEMU, past POSTCOPY_RUN, waits
 * in postcopy-paused keeping every page it has; `migrate-recover` and a new pager with --resume
 * give it the rest (docs/lazy.md, "Postcopy recovery"). A pager that said `fail` (a damaged
 * block, QEMU gone) is not resumed: the VM is stopped as before. 0 if a new pager runs, else -1
 * with the reason in z->resume_err. */
static int lazy_resume(struct lazy *z)
{
    struct restore *r = z->r;
    double until = job_now() + LAZY_PAUSE_WAIT_MS / 1000.0;
    char uri[PATH_MAX + 8], err[JOB_ERR_MAX - 80];
    int tick = 1;

    if (z->failed || z->done)
        return -1;
    if (z->resumes >= LAZY_MAX_RESUMES) {
        snprintf(z->resume_err, sizeof(z->resume_err), "it died %d times", z->resumes + 1);
        return -1;
    }
    while (!migration_is(r, "postcopy-paused", NULL)) {
        if (job_now() > until || qemu_exited(r->pidfd)) {
            snprintf(z->resume_err, sizeof(z->resume_err), "QEMU did not pause its postcopy");
            return -1;
        }
        job_wait(-1, &tick);
    }
    if (z->pager_pidfd >= 0)
        close(z->pager_pidfd);
    z->pager_pidfd = -1;
    unlink(r->sock);
    snprintf(uri, sizeof(uri), "unix:%s", r->sock);
    if (mig_cmd(r->qmp, "migrate-recover", json_pack("{s:s}", "uri", uri), NULL, err,
                sizeof(err)) ||
        lazy_exec(z, 1, err, sizeof(err))) {
        snprintf(z->resume_err, sizeof(z->resume_err), "%.150s", err);
        return -1;
    }
    z->resumes++;
    z->running = 0;
    /* a save must wait for the new pager, a restarted savefs find it */
    return lazy_mark(z) ? -1 : 0;
}

/* What ended the push, once the pager is gone or said why. */
static int lazy_push_end(struct lazy *z)
{
    struct restore *r = z->r;

    lazy_events(z);
    if (z->failed)
        return job_fail(r->job, -EIO,
                        "the page server stopped: %s: the VM was stopped (QEMU killed) before it "
                        "could run on memory that is not its own",
                        z->fail);
    if (z->done || migration_is(r, "completed", NULL))
        return 0;
    char when[400];

    snprintf(when, sizeof(when),
             "before the last page%s%s: the VM was stopped (QEMU killed), a guest waiting for a "
             "page that never comes would hang",
             z->resume_err[0] ? " and no page server could resume it: " : "", z->resume_err);
    return pager_gone(z, when);
}

/* Follows the push to its end. Savefs stopping (SIGTERM, an unmount) leaves it to the pager:
 * LAZY_DETACHED. */
#define LAZY_DETACHED 2

static int lazy_follow(struct lazy *z)
{
    struct restore *r = z->r;
    int tick = 1;

    job_set_phase(r->job, "pushing");
    for (;; job_wait(z->pager_pidfd, &tick)) {
        lazy_events(z);
        if (z->done || z->failed)
            break;
        if (z->pager_pidfd < 0 || qemu_exited(z->pager_pidfd)) {
            lazy_events(z); /* its last lines, written before it exited */
            if (z->done || z->failed || migration_is(r, "completed", NULL) || lazy_resume(z))
                break;
            continue;
        }
        if (qemu_exited(r->pidfd))
            return restore_qemu_gone(r, "while its pages were pushed");
        if (job_cancelled(r->job)) /* nobody waits for it any more: savefs stops */
            return LAZY_DETACHED;
    }
    z->t_done = job_now() - z->t0;
    return lazy_push_end(z);
}

/* The migration over, QEMU's settings put back (postcopy-ram on would refuse a later save's
 * multifd). */
static void lazy_finish(struct lazy *z)
{
    struct restore *r = z->r;
    double until = job_now() + r->job->ctx->watchdog_ms / 1000.0;

    for (int tick = 1; !migration_is(r, "completed", NULL) && job_now() < until;)
        job_wait(-1, &tick);
    mig_undo(r->qmp, &r->saved);
    unlink(z->mark);
}

static void lazy_summary(struct lazy *z, int detached)
{
    struct restore *r = z->r;
    char done[160];

    if (detached)
        snprintf(done, sizeof(done), "savefs stopped during the push, which goes on in pid %d",
                 (int)z->pager);
    else
        snprintf(done, sizeof(done), "last page in after %.2f s%s", z->t_done,
                 z->resumes ? " (its page server resumed after one died)" : "");
    if (z->adopted) {
        snprintf(r->job->summary, sizeof(r->job->summary),
                 "followed the push of %s's lazy restore after savefs restarted: %s (pid %d)",
                 r->job->snapshot, done, (int)r->pid);
        return;
    }
    snprintf(r->job->summary, sizeof(r->job->summary),
             "restored %s lazily: %s after %.2f s, %s: %d channels (pid %d)%s%s", r->job->snapshot,
             r->m.was_running ? "running" : "paused", z->t_running, done, r->m.channels,
             (int)r->pid, r->how + strlen("; lazily"), r->note);
}

/* Where the time to running went, in savefs's log: the job's phases so far. */
static void lazy_log_running(struct lazy *z)
{
    struct job *job = z->r->job;
    char phases[600];

    if (!job->ctx->log)
        return;
    job_phases_text(job, phases, sizeof(phases));
    job_log(job, "restore %s lazily: the guest runs %.3f s after the mv: %s", job->snapshot,
            z->t_running, phases);
}

/* After the push, or a failure: the summary, postcopy-ram put back, the mark gone with a push
 * that failed (QEMU is killed by the caller). */
static int lazy_end(struct lazy *z, int rc, int released)
{
    if (rc == LAZY_DETACHED) {
        lazy_summary(z, 1);
        rc = 0;
    } else if (!rc) {
        lazy_finish(z);
        lazy_summary(z, 0);
    } else if (z->pager_pidfd >= 0) {
        qemu_kill(z->pager_pidfd, KILL_TIMEOUT_MS);
    }
    if (rc && released)
        unlink(z->mark);
    if (z->pager_pidfd >= 0)
        close(z->pager_pidfd);
    if (z->efd >= 0)
        close(z->efd);
    return rc;
}

int lazy_restore(struct restore *r)
{
    struct lazy z = {.r = r, .efd = -1, .pager_pidfd = -1, .t0 = r->job->started};
    int rc, released = 0;

    /* The pager starts with QEMU, not after it: it opens and checks the snapshot while QEMU
     * starts, and connects as soon as QEMU listens (migrate-incoming). */
    if (!(rc = lazy_paths(&z)) && !(rc = restore_start_qemu(r)) && !(rc = lazy_spawn(&z)) &&
        !(rc = restore_connect_qmp(r)) && !(rc = lazy_incoming(&z)) &&
        !(rc = lazy_wait_devices(&z)) && !(rc = lazy_run_guest(&z)) && !(rc = lazy_running(&z))) {
        z.t_running = job_now() - z.t0;
        lazy_log_running(&z);
        job_release(r->job, r->m.was_running ? "running" : "paused");
        released = 1;
        agent_sync_clock(r->m.was_running, r->plan.argv, r->plan.argc, r->plan.cwd,
                         r->note + strlen(r->note), sizeof(r->note) - strlen(r->note));
        rc = lazy_follow(&z);
    }
    return lazy_end(&z, rc, released);
}

/* ---- a push that a restarted savefs finds (recover.c) ---- */

/* The VM of the push marked MK: its QEMU's monitor, the snapshot's directory, the page server if
 * it still runs, the events so far (status shows the push's progress at once; a `fail` a dead
 * pager wrote stops the VM rather than resume it). */
static int adopt_open(struct lazy *z, const struct lazy_marked *mk)
{
    struct restore *r = z->r;
    struct job *job = r->job;
    char err[JOB_ERR_MAX - 80];
    int rc;

    r->pid = mk->qemu;
    job_set_pid(job, r->pid);
    z->pager = mk->pager;
    snprintf(z->digest, sizeof(z->digest), "%s", mk->digest);
    if ((r->pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0)) < 0)
        return job_fail(job, -ESRCH, "its QEMU (pid %d) is gone", (int)r->pid);
    if (lazy_pager_alive(z->pager))
        z->pager_pidfd = (int)syscall(SYS_pidfd_open, z->pager, 0);
    if ((rc = job_qmp_path(job->ctx, restore_vm(r), r->qmp_path)) ||
        (rc = store_snapshot_path(r->dir, job->ctx->store, restore_vm(r), job->snapshot, NULL)))
        return job_fail(job, rc, "a path of the push is too long");
    if ((rc = qmp_connect(&r->qmp, r->qmp_path, QMP_TIMEOUT_MS, err, sizeof(err))))
        return job_fail(job, rc, "%s", err);
    if (qmp_peer_pid(r->qmp) != r->pid)
        return job_fail(job, -ESRCH, "its QEMU (pid %d) is gone", (int)r->pid);
    z->efd = open(z->events, O_RDONLY | O_CLOEXEC); /* none: no progress to show */
    /* Once the push is over: postcopy-ram off, as the restore leaves it (migrate.c's saved). */
    r->saved.caps = json_pack("[{s:s, s:b}]", "capability", "postcopy-ram", "state", 0);
    return 0;
}

static const char *adopt_state(struct restore *r)
{
    return mig_vm_running(r->qmp) ? "running" : "paused";
}

/* The push goes on under this savefs's eye: status shows it, a save waits for it, and a page
 * server that died (with the savefs before, or later) is resumed as the restore job would. */
static int adopt_body(struct job *job)
{
    struct restore r = {.job = job, .pidfd = -1, .lease_fd = -1};
    struct lazy z = {.r = &r, .efd = -1, .pager_pidfd = -1, .t0 = job->started, .adopted = 1};
    struct lazy_marked mk;
    int rc;

    job_set_phase(job, "finding the push");
    if ((rc = lazy_paths(&z)))
        return rc;
    if (lazy_mark_read(z.mark, &mk))
        return job_fail(job, -ENOENT, "no push is marked in %s", z.mark);
    if ((rc = adopt_open(&z, &mk))) {
        if (r.pidfd < 0)
            unlink(z.mark); /* that QEMU is gone: nothing to follow */
        if (z.pager_pidfd >= 0)
            close(z.pager_pidfd);
        z.pager_pidfd = -1;
    } else {
        job_release(job, adopt_state(&r));
        rc = lazy_end(&z, lazy_follow(&z), 1);
    }
    /* A push that failed: the VM is stopped, its guest would wait for a page for ever. */
    restore_drop_qemu(&r, rc != 0 && r.qmp && qmp_peer_pid(r.qmp) == r.pid);
    return rc;
}

static const struct job_kind job_kind_push = {
    .name = "restore",
    .state = "restoring",
    .body = adopt_body,
    .reads_snapshot = 1,
};

int lazy_adopt(struct job_ctx *ctx, const char *vm)
{
    struct lazy_marked mk;
    char mark[PATH_MAX];
    struct job *job;

    if (store_vm_host_path(mark, ctx->store, vm, STORE_LAZY_MARK) || lazy_mark_read(mark, &mk) ||
        !mk.snapshot[0])
        return -ENOENT;
    if (!(job = job_new(ctx, &job_kind_push)))
        return -ENOMEM;
    snprintf(job->snapshot, sizeof(job->snapshot), "%s", mk.snapshot);
    return job_run(job, vm, NULL);
}
