/* status: what NAME/status and NAME/save show. A running job answers from its own progress; an
 * idle VM is asked over QMP, briefly, and a monitor held by another client is "unknown", never a
 * wait. */
#include "job_int.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu.h"
#include "qmp.h"

#define STATUS_QMP_TIMEOUT_MS 1000

/* A snapshot of what the locked state says, taken so that no lock is held across QMP. */
struct status_view {
    int has_job;
    struct job job;
    struct job_result last;
};

static void view_take(struct job_ctx *ctx, const char *vm, struct status_view *v)
{
    memset(v, 0, sizeof(*v));
    pthread_mutex_lock(&ctx->lock);
    struct vm_state *s = job_vm_find_locked(ctx, vm);
    if (s) {
        v->last = s->last;
        if (s->job) {
            v->has_job = 1;
            v->job.kind = s->job->kind;
            v->job.phase = s->job->phase;
            v->job.bytes_done = s->job->bytes_done;
            v->job.bytes_total = s->job->bytes_total;
            v->job.bytes_written = s->job->bytes_written;
            v->job.bytes_to_write = s->job->bytes_to_write;
            v->job.bytes_to_write_known = s->job->bytes_to_write_known;
            v->job.started = s->job->started;
            v->job.pid = s->job->pid;
            memcpy(v->job.snapshot, s->job->snapshot, sizeof(v->job.snapshot));
            memcpy(&v->job.words, &s->job->words, sizeof(v->job.words));
        }
    }
    pthread_mutex_unlock(&ctx->lock);
}

/* A restored VM whose console was on stdio has it on a socket (qemu.h): say where. */
static void add_console(struct job_ctx *ctx, const char *vm, json_t *out)
{
    char path[PATH_MAX];

    if (snprintf(path, sizeof(path), "%s/%s.console", ctx->run_dir, vm) < (int)sizeof(path) &&
        qemu_listening(path))
        json_object_set_new(out, "console", json_string(path));
}

/* Asks QEMU for its run state: "running", "paused", "stopped" (nothing listens) or "unknown". */
static const char *idle_state(struct job_ctx *ctx, const char *vm, json_t *out)
{
    char path[PATH_MAX], err[256];
    json_t *ret = NULL;
    struct qmp *q;
    const char *state = "unknown";

    if (job_qmp_path(ctx, vm, path) || !qemu_listening(path))
        return "stopped";
    if (qmp_connect(&q, path, STATUS_QMP_TIMEOUT_MS, err, sizeof(err))) {
        json_object_set_new(out, "note", json_string(err));
        return state;
    }
    json_object_set_new(out, "pid", json_integer(qmp_peer_pid(q)));
    add_console(ctx, vm, out);
    if (qmp_cmd(q, "query-status", NULL, &ret, STATUS_QMP_TIMEOUT_MS, err, sizeof(err)) == 0) {
        json_object_set(out, "qemu_status", json_object_get(ret, "status"));
        state = json_is_true(json_object_get(ret, "running")) ? "running" : "paused";
    } else {
        json_object_set_new(out, "note", json_string(err));
    }
    json_decref(ret);
    qmp_close(q);
    return state;
}

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

static json_t *job_json(const struct job *job)
{
    double elapsed = job_now() - job->started;
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

char *job_status_json(struct job_ctx *ctx, const char *vm)
{
    json_t *root = json_pack("{s:s}", "vm", vm);
    struct status_view v;
    const char *state;
    char *text;

    if (!root)
        return NULL;
    view_take(ctx, vm, &v);
    if (v.has_job) {
        state = v.job.kind->state;
        if (v.job.pid)
            json_object_set_new(root, "pid", json_integer(v.job.pid));
    } else {
        state = idle_state(ctx, vm, root);
    }
    json_object_set_new(root, "state", json_string(state));
    json_object_set_new(root, "job", v.has_job ? job_json(&v.job) : json_null());
    json_object_set_new(root, "last", v.last.valid ? result_json(&v.last) : json_null());
    text = json_dumps(root, JOB_STATUS_JSON_FLAGS);
    json_decref(root);
    if (!text)
        return NULL;
    /* A text file ends with a newline. */
    char *line = realloc(text, strlen(text) + 2);
    if (line)
        strcat(line, "\n");
    else
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
