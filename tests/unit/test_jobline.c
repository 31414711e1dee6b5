/* test_jobline: a job's lines (a table): the progress line's percent, figures in MiB or GiB by the
 * total, the rate, an ETA only while it can be known, never past 100%; the outcome's figures and a
 * failure's reason on one line without the VM named twice; the start's channels. */
#include <string.h>

#include "check.h"
#include "jobline.h"

#define MiB (1024ULL * 1024)
#define GiB (1024 * MiB)

enum kind { PROGRESS, OUTCOME, STARTED };

/* O's progress in phase PH: D of T bytes, S seconds after the start. */
#define AT(o, ph, d, t, s)                                                                         \
    {                                                                                              \
        .op = o, .vm = "vm1", .snapshot = "", .phase = ph, .done = (uint64_t)(d),                  \
        .total = (uint64_t)(t), .seconds = s, .rate = (s) > 0 ? (double)(d) / (s) : 0              \
    }

/* O's success on snapshot SN: C channels, B bytes in S seconds. */
#define OK(o, sn, c, b, s)                                                                         \
    {                                                                                              \
        .op = o, .vm = "vm1", .snapshot = sn, .seconds = s, .channels = c, .bytes = (uint64_t)(b)  \
    }

static const struct {
    enum kind kind;
    struct jobline j;
    const char *line;
} cases[] = {
    {PROGRESS, AT("save", "migrating", 1398101, 2899102924ULL, 0.0010),
     "save vm1    0%  0.0/2.7 GiB  1.3 GiB/s  ETA 2s  migrating"},
    {PROGRESS, AT("save", "migrating", 0.52 * 2.7 * GiB, 2.7 * GiB, 1.08),
     "save vm1   52%  1.4/2.7 GiB  1.3 GiB/s  ETA 1s  migrating"},
    /* Nothing known yet: no ETA, no division by zero. */
    {PROGRESS, AT("restore", "starting", 0, 0, 0), "restore vm1    0%  starting"},
    {PROGRESS, AT("restore", "restoring", 100 * MiB, 400 * MiB, 2),
     "restore vm1   25%  100.0/400.0 MiB  50.0 MiB/s  ETA 6s  restoring"},
    /* QEMU may count a few pages twice: never past the end. */
    {PROGRESS, AT("save", "syncing", 520 * MiB, 512 * MiB, 13),
     "save vm1  100%  520.0/512.0 MiB  40.0 MiB/s  syncing"},
    {OUTCOME, OK("save", "20261202-101500", 4, 2.7 * GiB, 2.1),
     "save vm1  ok  20261202-101500  4 channels  2.7 GiB in 2.1 s  1.29 GiB/s"},
    {OUTCOME, OK("restore", "s1", 1, 300 * MiB, 0.5),
     "restore vm1  ok  s1  1 channel  300.0 MiB in 0.5 s  0.59 GiB/s"},
    /* A copy's time is not known: its size alone. */
    {OUTCOME, OK("import", "s9", 0, 300 * MiB, 0), "import vm1  ok  s9  300.0 MiB"},
    {OUTCOME,
     {.op = "save", .vm = "vm1", .snapshot = "", .rc = -3, .reason = "vm1: no QEMU\nlistens"},
     "save vm1  failed: ESRCH: no QEMU listens"},
    {STARTED,
     {.op = "save", .vm = "vm1", .snapshot = "", .channels = 2},
     "save vm1  started  2 channels"},
    {STARTED, {.op = "restore", .vm = "vm1", .snapshot = "s1"}, "restore vm1  started  s1"},
};

int main(void)
{
    char line[512];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].kind == PROGRESS)
            jobline_progress(&cases[i].j, line, sizeof(line));
        else if (cases[i].kind == OUTCOME)
            jobline_outcome(&cases[i].j, line, sizeof(line));
        else
            jobline_started(&cases[i].j, line, sizeof(line));
        CHECK(strcmp(line, cases[i].line) == 0, "case %zu:\n  got  '%s'\n  want '%s'", i, line,
              cases[i].line);
    }
    return check_result("test_jobline");
}
