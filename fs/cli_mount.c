/* cli_mount: reads a VM's progress and outcome from the mount's status and save files (see
 * cli_mount.h). Only this file knows which files those are and what their JSON looks like. */
#include "cli_mount.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TEXT_MAX (256 * 1024)

/* The whole of MOUNT/VM/FILE, NUL-terminated and malloc'd into *OUT. 0 or a negative errno. */
static int read_text(const char *mount, const char *vm, const char *file, char **out)
{
    char path[PATH_MAX], *buf = NULL;
    size_t len = 0;
    ssize_t n = 1;
    int fd, rc = 0;

    if (snprintf(path, sizeof(path), "%s/%s/%s", mount, vm, file) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -errno;
    if (!(buf = malloc(TEXT_MAX + 1)))
        rc = -ENOMEM;
    while (!rc && n > 0 && len < TEXT_MAX) {
        n = read(fd, buf + len, TEXT_MAX - len);
        if (n < 0 && errno != EINTR)
            rc = -errno;
        len += n > 0 ? (size_t)n : 0;
    }
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

static json_t *read_status(const char *mount, const char *vm, int *rc)
{
    char *text;
    json_t *j;

    if ((*rc = read_text(mount, vm, "status", &text)))
        return NULL;
    j = json_loads(text, 0, NULL);
    free(text);
    *rc = j ? 0 : -EBADMSG;
    return j;
}

/* The progress source: status's "job" today. A MOUNT/VM/progress file that blocks until the
 * next line would replace this function alone. */
int cli_progress_read(const char *mount, const char *vm, struct cli_progress *p)
{
    int rc;
    json_t *st = read_status(mount, vm, &rc), *job = json_object_get(st, "job");

    memset(p, 0, sizeof(*p));
    if (json_is_object(job)) {
        p->running = 1;
        snprintf(p->op, sizeof(p->op), "%s", json_string_value(json_object_get(job, "op")) ?: "");
        snprintf(p->phase, sizeof(p->phase), "%s",
                 json_string_value(json_object_get(job, "phase")) ?: "");
        p->done = json_number_value(json_object_get(job, "bytes_done"));
        p->total = json_number_value(json_object_get(job, "bytes_total"));
        p->rate = json_number_value(json_object_get(job, "rate_bytes_per_s"));
    }
    json_decref(st);
    return rc;
}

/* BYTES as "1.4" in UNIT (GiB from 1 GiB on, MiB below), UNIT set to its name. */
static double scaled(double bytes, double ref, const char **unit)
{
    int gib = ref >= 1024.0 * 1024 * 1024;

    *unit = gib ? "GiB" : "MiB";
    return bytes / (gib ? 1024.0 * 1024 * 1024 : 1024.0 * 1024);
}

#define BAR_WIDTH 20

void cli_progress_line(const struct cli_progress *p, const char *op, const char *vm, int bar,
                       char *buf, size_t len)
{
    double frac = p->total > 0 ? p->done / p->total : 0;
    const char *unit, *rate_unit;
    double done = scaled(p->done, p->total, &unit), total = scaled(p->total, p->total, &unit);
    double rate = scaled(p->rate, p->rate, &rate_unit);
    char bars[64] = "", eta[32] = "";
    int n;

    frac = frac > 1 ? 1 : frac;
    if (bar) {
        n = (int)(frac * BAR_WIDTH);
        snprintf(bars, sizeof(bars), " [%.*s%*s]", n, "####################", BAR_WIDTH - n, "");
    }
    if (p->rate > 0 && p->total > p->done)
        snprintf(eta, sizeof(eta), "  ETA %.0fs", (p->total - p->done) / p->rate);
    snprintf(buf, len, "%s %s%s  %3.0f%%  %.1f/%.1f %s  %.1f %s/s%s  %s", op, vm, bars, frac * 100,
             done, total, unit, rate, rate_unit, eta, p->phase);
}

/* "ok SUMMARY" or "error ERRNO: ERROR" from status's "last". */
static void outcome_of(json_t *last, char *buf, size_t len)
{
    const char *summary = json_string_value(json_object_get(last, "summary"));

    if (summary)
        snprintf(buf, len, "ok %s\n", summary);
    else
        snprintf(buf, len, "error %s: %s\n",
                 json_string_value(json_object_get(last, "errno")) ?: "?",
                 json_string_value(json_object_get(last, "error")) ?: "?");
}

int cli_outcome(const char *mount, const char *vm, const char *op, time_t since, char *buf,
                size_t len)
{
    char when[32], *text = NULL;
    int rc;
    json_t *st = read_status(mount, vm, &rc), *last = json_object_get(st, "last");
    const char *finished = json_string_value(json_object_get(last, "finished"));
    const char *last_op = json_string_value(json_object_get(last, "op"));

    /* status says when in RFC 3339 UTC to the second: the same form compares as text. */
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&since));
    if (rc || !finished || !last_op || strcmp(last_op, op) != 0 || strcmp(finished, when) < 0)
        goto out;
    rc = 1;
    /* A save's outcome is the save file's words, as `cat VM/save` shows them. */
    if (strcmp(op, "save") == 0 && read_text(mount, vm, "save", &text) == 0)
        snprintf(buf, len, "%s", text);
    else
        outcome_of(last, buf, len);
out:
    free(text);
    json_decref(st);
    return rc;
}
