/* jobline: the text of a job's lines (jobline.h). Figures in GiB from 1 GiB on, in MiB below, so
 * that a line stays short and its unit says its scale. */
#include "jobline.h"

#include <stdio.h>
#include <string.h>

#define MIB (1024.0 * 1024)
#define GIB (1024 * MIB)

/* BYTES in the unit that REF calls for (GiB from 1 GiB on, MiB below); *UNIT names it. */
static double scaled(double bytes, double ref, const char **unit)
{
    int gib = ref >= GIB;

    *unit = gib ? "GiB" : "MiB";
    return bytes / (gib ? GIB : MIB);
}

void jobline_progress(const struct jobline *j, char *buf, size_t len)
{
    double done = (double)j->done, total = (double)j->total;
    double rate = j->rate;
    double frac = total > 0 ? done / total : 0;
    const char *unit, *rate_unit;
    char eta[32] = "";

    /* Before anything moved or its size is known (a restore starting QEMU), a job has no
     * figures to show. */
    if (j->total == 0 && j->done == 0) {
        snprintf(buf, len, "%s %s    0%%  %s", j->op, j->vm, j->phase);
        return;
    }
    /* QEMU may count a few pages twice: never past the end. */
    frac = frac > 1 ? 1 : frac;
    if (rate > 0 && total > done)
        snprintf(eta, sizeof(eta), "  ETA %.0fs", (total - done) / rate);
    done = scaled(done, total, &unit);
    total = scaled(total, total, &unit);
    rate = scaled(rate, rate, &rate_unit);
    snprintf(buf, len, "%s %s  %3.0f%%  %.1f/%.1f %s  %.1f %s/s%s  %s", j->op, j->vm, frac * 100,
             done, total, unit, rate, rate_unit, eta, j->phase);
}

/* REASON without the "VM: " that a job's error starts with (the line names the VM already), on
 * one line whatever it holds. */
static void reason_text(const struct jobline *j, char *out, size_t len)
{
    const char *r = j->reason ? j->reason : "";
    size_t n = strlen(j->vm);

    if (strncmp(r, j->vm, n) == 0 && strncmp(r + n, ": ", 2) == 0)
        r += n + 2;
    snprintf(out, len, "%s", r);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
}

void jobline_outcome(const struct jobline *j, char *buf, size_t len)
{
    double gib_s = j->seconds > 0 ? (double)j->bytes / GIB / j->seconds : 0;
    const char *unit;
    double bytes = scaled((double)j->bytes, (double)j->bytes, &unit);
    char why[1024], channels[32] = "";

    if (j->rc) {
        reason_text(j, why, sizeof(why));
        snprintf(buf, len, "%s %s  failed: %s: %s", j->op, j->vm, strerrorname_np(-j->rc) ?: "?",
                 why);
        return;
    }
    if (j->channels)
        snprintf(channels, sizeof(channels), "  %d channel%s", j->channels,
                 j->channels == 1 ? "" : "s");
    snprintf(buf, len, "%s %s  ok  %s%s  %.1f %s", j->op, j->vm, j->snapshot[0] ? j->snapshot : "-",
             channels, bytes, unit);
    if (j->seconds > 0 && strlen(buf) + 1 < len)
        snprintf(buf + strlen(buf), len - strlen(buf), " in %.1f s  %.2f GiB/s", j->seconds, gib_s);
}

void jobline_started(const struct jobline *j, char *buf, size_t len)
{
    snprintf(buf, len, "%s %s  started%s%s", j->op, j->vm, j->snapshot[0] ? "  " : "", j->snapshot);
    if (j->channels && strlen(buf) + 1 < len)
        snprintf(buf + strlen(buf), len - strlen(buf), "  %d channel%s", j->channels,
                 j->channels == 1 ? "" : "s");
}
