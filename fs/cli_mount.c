/* cli_mount: reads a VM's progress from the mount's progress file and its outcome from the
 * status and save files (see cli_mount.h). Only this file knows which files those are and what
 * their lines and JSON look like. */
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

int cli_job_runs(const char *mount, const char *vm)
{
    int rc;
    json_t *st = read_status(mount, vm, &rc);
    int runs = !rc && json_is_object(json_object_get(st, "job"));

    json_decref(st);
    return runs;
}

int cli_progress_open(const char *mount, const char *vm)
{
    char path[PATH_MAX];
    int fd;

    if (snprintf(path, sizeof(path), "%s/%s/progress", mount, vm) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* The end of LINE's second field (after "OP VM"), or NULL. */
static const char *after_vm(const char *line)
{
    const char *p = line + strcspn(line, " ");

    p += strspn(p, " ");
    if (!*p)
        return NULL;
    return p + strcspn(p, " ");
}

int cli_is_progress(const char *line)
{
    const char *p = after_vm(line);
    size_t n;

    if (!p)
        return 0;
    p += strspn(p, " ");
    n = strcspn(p, " \n");
    return n > 0 && p[n - 1] == '%';
}

int cli_job_running(const char *mount, const char *vm, char *op, size_t oplen)
{
    char line[512];
    ssize_t n;
    int fd = cli_progress_open(mount, vm);

    if (fd < 0)
        return fd;
    /* The first line comes at once: the job's progress if one runs, else the last outcome. */
    n = read(fd, line, sizeof(line) - 1);
    close(fd);
    if (n < 0)
        return -errno;
    line[n] = '\0';
    /* A copy into the VM's snapshots (an "import" line) is no job: a save may run beside it. */
    if (!cli_is_progress(line) || strncmp(line, "import ", 7) == 0)
        return 0;
    snprintf(op, oplen, "%.*s", (int)strcspn(line, " "), line);
    return 1;
}

#define BAR_WIDTH 20

void cli_progress_bar(const char *line, char *buf, size_t len)
{
    const char *p = after_vm(line);
    double pct = p ? strtod(p, NULL) : 0;
    int n;

    if (!p) {
        snprintf(buf, len, "%s", line);
        return;
    }
    n = (int)(pct / 100 * BAR_WIDTH);
    n = n < 0 ? 0 : n > BAR_WIDTH ? BAR_WIDTH : n;
    snprintf(buf, len, "%.*s [%.*s%*s]%s", (int)(p - line), line, n, "####################",
             BAR_WIDTH - n, "", p);
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
