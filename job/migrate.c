/* migrate: multifd settings over QMP. Capabilities that this QEMU does not have are skipped, so
 * that the same code drives QEMU 7.2 and later versions that dropped some of them. */
#include "migrate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "job_int.h"
#include "qmp.h"

#define MIG_RELEASE_TIMEOUT_MS 5000 /* QEMU cleans a migration up within milliseconds */
#define MIG_FINALIZE_WAIT_MS   2000 /* its migration thread's last step, as long */

int mig_cmd(struct qmp *q, const char *name, json_t *args, json_t **ret, char *err, size_t errlen)
{
    char unused[256];
    int rc = qmp_cmd(q, name, args, ret, QMP_TIMEOUT_MS, err ? err : unused,
                     err ? errlen : sizeof(unused));

    json_decref(args);
    return rc;
}

/* ON_POSTCOPY: the capability's state for a lazy restore's postcopy instead (-1: as ON). */
static const struct {
    const char *name;
    int on, on_postcopy;
} wanted_caps[] = {
    {"multifd", 1, 0},
    {"return-path", 0, -1},
    {"postcopy-ram", 0, 1},
    {"pause-before-switchover", 0, -1},
    {"compress", 0, -1},
    {"xbzrle", 0, -1},
    /* QEMU >= 9.0: a file migration's fixed offsets refuse a socket stream, and a background
     * snapshot refuses multifd; another tool may have left either on. */
    {"mapped-ram", 0, -1},
    {"background-snapshot", 0, -1},
    /* A MIGRATION event at each status: the job learns of completion as it happens. */
    {"events", 1, -1},
};

enum { CAPS_AS_THEY_ARE, CAPS_MULTIFD, CAPS_POSTCOPY };

static int cap_wanted(size_t k, int how)
{
    return how == CAPS_POSTCOPY && wanted_caps[k].on_postcopy >= 0 ? wanted_caps[k].on_postcopy
                                                                   : wanted_caps[k].on;
}

/* Of the capabilities QEMU lists in CURRENT, those in wanted_caps, set as HOW wants them (or as
 * they are). */
static json_t *caps_list(json_t *current, int how)
{
    json_t *list = json_array(), *c;
    size_t i, k;

    json_array_foreach(current, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "capability"));

        for (k = 0; name && k < sizeof(wanted_caps) / sizeof(wanted_caps[0]); k++)
            if (strcmp(name, wanted_caps[k].name) == 0)
                json_array_append_new(list,
                                      json_pack("{s:s, s:b}", "capability", name, "state",
                                                how != CAPS_AS_THEY_ARE
                                                    ? cap_wanted(k, how)
                                                    : json_is_true(json_object_get(c, "state"))));
    }
    return list;
}

/* 1 while QEMU still holds the migration's yank instance: it registers one at migrate and drops
 * it only at the very end of its clean-up, after the migration thread and every channel ended.
 * Until then a new migrate fails ("duplicate yank instance") and leaves QEMU's state in "setup"
 * for good (7.2). A QEMU without query-yank is taken as clean. */
static int mig_yank_held(struct qmp *q)
{
    json_t *list = NULL, *e;
    size_t i;
    int held = 0;

    if (mig_cmd(q, "query-yank", NULL, &list, NULL, 0))
        return 0;
    json_array_foreach(list, i, e)
    {
        const char *type = json_string_value(json_object_get(e, "type"));
        held |= type && strcmp(type, "migration") == 0;
    }
    json_decref(list);
    return held;
}

/* A migration that QEMU has not let go of yet (a failed one whose clean-up is still running or
 * stuck): a migrate now would leave 7.2 in "setup" for good. -EBUSY after TIMEOUT_MS. */
static int mig_wait_released(struct qmp *q, int timeout_ms, char *err, size_t errlen)
{
    double deadline = job_now() + timeout_ms / 1000.0;
    int tick = 1;

    while (mig_yank_held(q)) {
        if (job_now() > deadline) {
            snprintf(err, errlen, "QEMU has not let go of its last migration yet (query-yank)");
            return -EBUSY;
        }
        job_wait(-1, &tick);
    }
    return 0;
}

int mig_set_downtime(struct qmp *q, int downtime_ms, char *err, size_t errlen)
{
    return mig_cmd(q, "migrate-set-parameters", json_pack("{s:i}", "downtime-limit", downtime_ms),
                   NULL, err, errlen);
}

/* 1 if QEMU lists capability NAME in CAPS. */
static int caps_have(json_t *caps, const char *name)
{
    json_t *c;
    size_t i;

    json_array_foreach(caps, i, c)
    {
        const char *n = json_string_value(json_object_get(c, "capability"));
        if (n && strcmp(n, name) == 0)
            return 1;
    }
    return 0;
}

/* HOW: CAPS_MULTIFD with CHANNELS channels, or CAPS_POSTCOPY (CHANNELS unused). */
static int mig_setup_as(struct qmp *q, int how, int channels, int64_t bandwidth, int downtime_ms,
                        struct mig_saved *saved, char *err, size_t errlen)
{
    json_t *caps = NULL, *params = NULL;
    int rc;

    rc = mig_wait_released(q, MIG_RELEASE_TIMEOUT_MS, err, errlen);
    if (!rc)
        rc = mig_cmd(q, "query-migrate-capabilities", NULL, &caps, err, errlen);
    if (!rc && how == CAPS_POSTCOPY && !caps_have(caps, "postcopy-ram")) {
        snprintf(err, errlen, "this QEMU has no postcopy-ram capability");
        rc = -EPROTONOSUPPORT;
    }
    if (!rc && saved) {
        saved->caps = caps_list(caps, CAPS_AS_THEY_ARE);
        rc = mig_cmd(q, "query-migrate-parameters", NULL, &params, err, errlen);
    }
    if (!rc && saved)
        saved->params = json_pack("{s:O*, s:O*, s:O*, s:O*}", "multifd-channels",
                                  json_object_get(params, "multifd-channels"), "max-bandwidth",
                                  json_object_get(params, "max-bandwidth"), "multifd-compression",
                                  json_object_get(params, "multifd-compression"), "downtime-limit",
                                  json_object_get(params, "downtime-limit"));
    if (!rc)
        rc = mig_cmd(q, "migrate-set-capabilities",
                     json_pack("{s:o}", "capabilities", caps_list(caps, how)), NULL, err, errlen);
    if (!rc && how == CAPS_MULTIFD)
        rc = mig_cmd(q, "migrate-set-parameters",
                     json_pack("{s:i, s:I, s:s}", "multifd-channels", channels, "max-bandwidth",
                               (json_int_t)bandwidth, "multifd-compression", "none"),
                     NULL, err, errlen);
    if (!rc && downtime_ms > 0)
        rc = mig_set_downtime(q, downtime_ms, err, errlen);
    json_decref(caps);
    json_decref(params);
    return rc;
}

int mig_setup(struct qmp *q, int channels, int64_t bandwidth, int downtime_ms,
              struct mig_saved *saved, char *err, size_t errlen)
{
    return mig_setup_as(q, CAPS_MULTIFD, channels, bandwidth, downtime_ms, saved, err, errlen);
}

int mig_setup_postcopy(struct qmp *q, struct mig_saved *saved, char *err, size_t errlen)
{
    return mig_setup_as(q, CAPS_POSTCOPY, 0, MIGRATE_NO_BANDWIDTH_CAP, 0, saved, err, errlen);
}

void mig_undo(struct qmp *q, struct mig_saved *saved)
{
    if (saved->caps)
        mig_cmd(q, "migrate-set-capabilities", json_pack("{s:O}", "capabilities", saved->caps),
                NULL, NULL, 0);
    if (saved->params && json_object_size(saved->params))
        mig_cmd(q, "migrate-set-parameters", json_incref(saved->params), NULL, NULL, 0);
    json_decref(saved->caps);
    json_decref(saved->params);
    saved->caps = saved->params = NULL;
}

int mig_query(struct qmp *q, char *status, size_t len, char *why, size_t whylen, char *err,
              size_t errlen)
{
    json_t *ret = NULL;
    const char *s, *desc;
    int rc = mig_cmd(q, "query-migrate", NULL, &ret, err, errlen);

    if (rc)
        return rc;
    s = json_string_value(json_object_get(ret, "status"));
    desc = json_string_value(json_object_get(ret, "error-desc"));
    snprintf(status, len, "%s", s ? s : "none");
    snprintf(why, whylen, "%s", desc ? desc : "no reason given");
    json_decref(ret);
    return 0;
}

int mig_downtime(struct qmp *q, int64_t *downtime_ms, char *err, size_t errlen)
{
    json_t *ret = NULL;
    int rc = mig_cmd(q, "query-migrate", NULL, &ret, err, errlen);

    if (!rc)
        *downtime_ms = json_integer_value(json_object_get(ret, "downtime"));
    json_decref(ret);
    return rc;
}

/* QEMU's query-status: 1 while the VM runs; its run state into STATUS (empty if unknown). */
static int mig_run_state(struct qmp *q, char *status, size_t len)
{
    json_t *ret = NULL;
    const char *st;
    int running = 0;

    if (len)
        status[0] = '\0';
    if (mig_cmd(q, "query-status", NULL, &ret, NULL, 0) == 0) {
        running = json_is_true(json_object_get(ret, "running"));
        if (len && (st = json_string_value(json_object_get(ret, "status"))))
            snprintf(status, len, "%s", st);
    }
    json_decref(ret);
    return running;
}

int mig_vm_running(struct qmp *q)
{
    return mig_run_state(q, NULL, 0);
}

/* 1 while the VM is in QEMU's "finish-migrate" run state. */
static int mig_finishing(struct qmp *q)
{
    char st[32];

    mig_run_state(q, st, sizeof(st));
    return strcmp(st, "finish-migrate") == 0;
}

int mig_cont(struct qmp *q, char *err, size_t errlen)
{
    double deadline = job_now() + MIG_FINALIZE_WAIT_MS / 1000.0;
    int rc = mig_cmd(q, "cont", NULL, NULL, err, errlen);

    /* Only a refused cont asks why: the common case costs a live checkpoint's pause nothing. */
    if (rc && mig_finishing(q)) {
        while (mig_finishing(q) && job_now() < deadline)
            usleep(1000);
        rc = mig_cmd(q, "cont", NULL, NULL, err, errlen);
    }
    return rc;
}

int mig_finished(const char *status)
{
    return strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0 ||
           strcmp(status, "cancelled") == 0;
}

int mig_cancel(struct qmp *q, int timeout_ms)
{
    double deadline = job_now() + timeout_ms / 1000.0;
    char status[32], why[256], err[256];
    int rc;

    mig_cmd(q, "migrate_cancel", NULL, NULL, NULL, 0);
    for (int tick = 1;; job_wait(-1, &tick)) {
        rc = mig_query(q, status, sizeof(status), why, sizeof(why), err, sizeof(err));
        if (rc || mig_finished(status) || strcmp(status, "none") == 0)
            break;
        if (job_now() > deadline) {
            rc = -ETIMEDOUT;
            break;
        }
    }
    if (!rc)
        rc = mig_wait_released(q, (int)((deadline - job_now()) * 1000), err, sizeof(err));
    return rc;
}
