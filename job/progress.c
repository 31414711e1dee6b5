/* progress: a save's progress as the user can read it. What QEMU has to write is only known at
 * the end (most of a guest's RAM is zero pages, a few bytes each in the stream), so the fraction
 * is taken from QEMU's scan of the RAM, and the bytes written are shown beside it. */
#include "progress.h"

#include <errno.h>
#include <jansson.h>

#define PROGRESS_QMP_TIMEOUT_MS 1000

int progress_from_migrate(json_t *ret, uint64_t *done, uint64_t *total)
{
    json_t *ram = json_object_get(ret, "ram");
    json_int_t t = json_integer_value(json_object_get(ram, "total"));
    json_int_t left = json_integer_value(json_object_get(ram, "remaining"));

    if (!json_is_object(ram) || t <= 0)
        return -ENODATA;
    if (left < 0 || left > t)
        left = t;
    *total = (uint64_t)t;
    *done = (uint64_t)(t - left);
    return 0;
}

int64_t progress_save(struct job *job, struct qmp *q, uint64_t written)
{
    uint64_t done = 0, total = 0;
    int64_t passes = 0;
    json_t *ret = NULL;
    char err[128];
    int known;

    /* Best effort: the save's own query decides about failures. */
    known =
        qmp_cmd(q, "query-migrate", NULL, &ret, PROGRESS_QMP_TIMEOUT_MS, err, sizeof(err)) == 0 &&
        progress_from_migrate(ret, &done, &total) == 0;
    if (known)
        passes =
            json_integer_value(json_object_get(json_object_get(ret, "ram"), "dirty-sync-count"));
    json_decref(ret);
    pthread_mutex_lock(&job->ctx->lock);
    if (known) {
        job->bytes_done = done;
        job->bytes_total = total;
    }
    job->bytes_written = written;
    pthread_mutex_unlock(&job->ctx->lock);
    return passes;
}

void progress_save_sent(struct job *job, uint64_t total)
{
    pthread_mutex_lock(&job->ctx->lock);
    job->bytes_done = job->bytes_total;
    job->bytes_written = total;
    job->bytes_to_write = total;
    job->bytes_to_write_known = 1;
    pthread_mutex_unlock(&job->ctx->lock);
}
