/* status: what NAME/status and NAME/save show, built as data (status.h) and written as JSON
 * once. A running job answers from its own progress; an idle VM is asked over QMP, briefly, and a
 * monitor held by another client is "unknown", never a wait. Called from FUSE workers and from
 * imports' threads. */
#include "status.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lvirt.h"
#include "qemu.h"
#include "qmp.h"

#define STATUS_QMP_TIMEOUT_MS 1000

/* What the locked state says, copied so that no lock is held across QMP. */
static void view_take(struct job_ctx *ctx, struct job_status *st)
{
    pthread_mutex_lock(&ctx->lock);
    struct vm_state *s = job_vm_find_locked(ctx, st->vm);
    if (s) {
        st->last = s->last;
        if (s->job) {
            st->has_job = 1;
            st->job.kind = s->job->kind;
            st->job.phase = s->job->phase;
            st->job.bytes_done = s->job->bytes_done;
            st->job.bytes_total = s->job->bytes_total;
            st->job.bytes_written = s->job->bytes_written;
            st->job.bytes_to_write = s->job->bytes_to_write;
            st->job.bytes_to_write_known = s->job->bytes_to_write_known;
            st->job.started = s->job->started;
            st->job.pid = s->job->pid;
            st->job.released_state = s->job->released_state;
            memcpy(st->job.snapshot, s->job->snapshot, sizeof(st->job.snapshot));
            memcpy(&st->job.words, &s->job->words, sizeof(st->job.words));
        }
    }
    pthread_mutex_unlock(&ctx->lock);
}

/* A restored VM whose console was on stdio has it on a socket (qemu.h): say where. */
static void add_console(struct job_ctx *ctx, struct job_status *st)
{
    char path[PATH_MAX];

    if (snprintf(path, sizeof(path), "%s/%s.console", ctx->run_dir, st->vm) < (int)sizeof(path) &&
        qemu_listening(path))
        snprintf(st->console, sizeof(st->console), "%s", path);
}

/* A libvirt domain that is off may be so because a savefs snapshot holds its state (lvirt.h). */
static void add_libvirt_mark(struct job_ctx *ctx, struct job_status *st)
{
    if (ctx->lv &&
        lv_saved_mark(ctx->lv, st->vm, st->libvirt_saved, sizeof(st->libvirt_saved)) == 1)
        st->libvirt = 1;
    else
        st->libvirt_saved[0] = '\0';
}

/* Asks QEMU for its run state: "running", "paused", "stopped" (nothing listens) or "unknown". */
static const char *idle_state(struct job_ctx *ctx, struct job_status *st)
{
    json_t *ret = NULL;
    struct qmp *q;
    const char *state = "unknown", *qs;
    int rc = job_vm_monitor(ctx, st->vm, STATUS_QMP_TIMEOUT_MS, &q, &st->libvirt, st->note,
                            sizeof(st->note));

    if (rc == -ESRCH) {
        st->note[0] = '\0';
        add_libvirt_mark(ctx, st);
        return "stopped";
    }
    if (rc)
        return state;
    st->has_pid = 1;
    st->pid = qmp_peer_pid(q);
    add_console(ctx, st);
    if (qmp_cmd(q, "query-status", NULL, &ret, STATUS_QMP_TIMEOUT_MS, st->note, sizeof(st->note)) ==
        0) {
        st->note[0] = '\0';
        if ((qs = json_string_value(json_object_get(ret, "status"))))
            snprintf(st->qemu_status, sizeof(st->qemu_status), "%s", qs);
        state = json_is_true(json_object_get(ret, "running")) ? "running" : "paused";
    }
    json_decref(ret);
    qmp_close(q);
    return state;
}

struct job_status *job_status_new(struct job_ctx *ctx, const char *vm)
{
    struct job_status *st = calloc(1, sizeof(*st));

    if (!st)
        return NULL;
    snprintf(st->vm, sizeof(st->vm), "%s", vm);
    view_take(ctx, st);
    watch_view(ctx, vm, &st->lease);
    if (st->has_job) {
        st->state = st->job.released_state ? st->job.released_state : st->job.kind->state;
        if (st->job.released_state) /* the VM runs while its job goes on */
            add_console(ctx, st);
        st->has_pid = st->job.pid != 0;
        st->pid = st->job.pid;
        st->elapsed_s = job_now() - st->job.started;
    } else {
        st->state = idle_state(ctx, st);
    }
    return st;
}

void job_status_free(struct job_status *st)
{
    if (st)
        free(st->imports);
    free(st);
}

void job_status_last_error(struct job_ctx *ctx, const char *vm, char *why, size_t len)
{
    pthread_mutex_lock(&ctx->lock);
    struct vm_state *s = job_vm_find_locked(ctx, vm);
    snprintf(why, len, "%s", s && s->last.valid && s->last.rc ? s->last.message : "");
    pthread_mutex_unlock(&ctx->lock);
}

/* ---- the JSON text, written here and nowhere else ---- */

/* Indented, in order, seconds to six significant digits. */
#define STATUS_JSON_FLAGS (JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6))

/* A save's fraction is the RAM QEMU scanned (progress.h); what it wrote is beside it, and what
 * it will write once QEMU has sent everything. */
static void save_progress_json(const struct job *job, json_t *j)
{
    json_object_set_new(j, "bytes_written", json_integer((json_int_t)job->bytes_written));
    json_object_set_new(j, "bytes_to_write",
                        job->bytes_to_write_known ? json_integer((json_int_t)job->bytes_to_write)
                                                  : json_null());
    json_object_set_new(j, "parallel", json_integer(job->words.parallel));
}

static json_t *job_json(const struct job *job, double elapsed)
{
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:f}", "op", job->kind->name, "phase",
                          job->phase, "bytes_done", (json_int_t)job->bytes_done, "bytes_total",
                          (json_int_t)job->bytes_total, "rate_bytes_per_s",
                          (json_int_t)(elapsed > 0 ? (double)job->bytes_done / elapsed : 0.0),
                          "elapsed_s", elapsed);

    if (j && job->snapshot[0])
        json_object_set_new(j, "snapshot", json_string(job->snapshot));
    if (j && job->kind->is_save)
        save_progress_json(job, j);
    return j;
}

static json_t *phases_json(const struct job_phases *ph)
{
    json_t *j = json_object();

    for (int i = 0; j && i < ph->n; i++)
        json_object_set_new(j, ph->at[i].name, json_real(ph->at[i].s));
    return j;
}

static json_t *result_json(const struct job_result *r)
{
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:f}", "op", r->kind->name, "result", r->rc ? "error" : "ok",
                  "finished", r->finished, "duration_s", r->duration_s);

    if (!j)
        return NULL;
    if (r->snapshot[0])
        json_object_set_new(j, "snapshot", json_string(r->snapshot));
    if (r->phases.n)
        json_object_set_new(j, "phases_s", phases_json(&r->phases));
    if (r->rc) {
        json_object_set_new(j, "errno", json_string(strerrorname_np(-r->rc)));
        json_object_set_new(j, "error", json_string(r->message));
    } else {
        json_object_set_new(j, "summary", json_string(r->message));
    }
    return j;
}

static json_t *import_json(const struct status_import *im)
{
    json_t *j = json_pack("{s:s, s:s}", "snapshot", im->snapshot, "phase", im->phase);

    if (j && im->has_reason)
        json_object_set_new(j, "reason", json_string(im->reason));
    if (j && im->files_open)
        json_object_set_new(j, "files_open", json_integer(im->files_open));
    return j;
}

/* What QEMU said, where the VM's state comes from. */
static void qemu_json(const struct job_status *st, json_t *root)
{
    if (st->has_pid)
        json_object_set_new(root, "pid", json_integer(st->pid));
    if (st->console[0])
        json_object_set_new(root, "console", json_string(st->console));
    if (st->qemu_status[0])
        json_object_set_new(root, "qemu_status", json_string(st->qemu_status));
    if (st->note[0])
        json_object_set_new(root, "note", json_string(st->note));
    if (st->libvirt)
        json_object_set_new(root, "libvirt",
                            st->libvirt_saved[0] ? json_pack("{s:s}", "saved_in", st->libvirt_saved)
                                                 : json_object());
}

/* The lease: who runs the VM in the fleet, and since when; null if nobody, absent if the store
 * could not tell. An alarm (the VM found running on two hosts, or fenced here) is said at the
 * top, where it cannot be missed. */
static void lease_json(const struct watch_view *v, json_t *root)
{
    const struct lease_holder *h = &v->holder;
    json_t *j = NULL;

    if (v->alarm[0])
        json_object_set_new(root, "alarm", json_string(v->alarm));
    if (!v->known)
        return;
    if (v->held)
        j = json_pack("{s:s, s:s, s:i, s:s, s:b}", "host", h->host, "since", h->since, "pid",
                      h->pid, "how", h->how, "this_host", v->mine);
    json_object_set_new(root, "lease", j ? j : json_null());
}

char *job_status_json(const struct job_status *st)
{
    json_t *root = json_pack("{s:s}", "vm", st->vm), *list;
    char *text, *line;

    if (!root)
        return NULL;
    qemu_json(st, root);
    json_object_set_new(root, "state", json_string(st->state));
    lease_json(&st->lease, root);
    json_object_set_new(root, "job", st->has_job ? job_json(&st->job, st->elapsed_s) : json_null());
    json_object_set_new(root, "last", st->last.valid ? result_json(&st->last) : json_null());
    if (st->nimports && (list = json_array())) {
        for (int i = 0; i < st->nimports; i++)
            json_array_append_new(list, import_json(&st->imports[i]));
        json_object_set_new(root, "imports", list);
    }
    text = json_dumps(root, STATUS_JSON_FLAGS);
    json_decref(root);
    /* A text file ends with a newline. */
    if (!text || asprintf(&line, "%s\n", text) < 0)
        line = NULL;
    free(text);
    return line;
}

char *job_last_save_text(struct job_ctx *ctx, const char *vm)
{
    struct job_result r = {0};
    char *text = NULL;

    pthread_mutex_lock(&ctx->lock);
    struct vm_state *s = job_vm_find_locked(ctx, vm);
    if (s)
        r = s->last_save;
    pthread_mutex_unlock(&ctx->lock);
    if (!r.valid)
        return strdup("no save yet\n");
    if (r.rc == 0 && asprintf(&text, "ok %s %s\n", r.snapshot, r.message) < 0)
        return NULL;
    if (r.rc != 0 && asprintf(&text, "error %s: %s\n", strerrorname_np(-r.rc), r.message) < 0)
        return NULL;
    return text;
}
