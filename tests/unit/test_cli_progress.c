/* test_cli_progress: what savefs save and restore make of the progress file's lines (a table):
 * progress told from an outcome by the third field, the bar drawn from the percent after "OP VM"
 * and never past its width. */
#include <string.h>

#include "check.h"
#include "cli_mount.h"

static const struct {
    const char *line;
    int progress;
    const char *bar; /* the line with its bar, for a progress line */
} cases[] = {
    {"save vm1   52%  1.4/2.7 GiB  1.3 GiB/s  ETA 1s  migrating", 1,
     "save vm1 [##########          ]   52%  1.4/2.7 GiB  1.3 GiB/s  ETA 1s  migrating"},
    {"restore vm1    0%  0.0/0.0 MiB  0.0 MiB/s  starting", 1,
     "restore vm1 [                    ]    0%  0.0/0.0 MiB  0.0 MiB/s  starting"},
    {"save vm1  100%  520.0/512.0 MiB  40.0 MiB/s  syncing\n", 1,
     "save vm1 [####################]  100%  520.0/512.0 MiB  40.0 MiB/s  syncing\n"},
    {"save vm1  ok  s1  2 channels  2.7 GiB in 2.1 s  1.29 GiB/s", 0, NULL},
    {"save vm1  failed: ESRCH: no QEMU listens on /run/savefs/vm1.qmp 50%", 0, NULL},
    {"", 0, NULL},
    {"save", 0, NULL},
};

int main(void)
{
    char line[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK(cli_is_progress(cases[i].line) == cases[i].progress, "case %zu: progress %d", i,
              !cases[i].progress);
        if (!cases[i].bar)
            continue;
        cli_progress_bar(cases[i].line, line, sizeof(line));
        CHECK(strcmp(line, cases[i].bar) == 0, "case %zu:\n  got  '%s'\n  want '%s'", i, line,
              cases[i].bar);
    }
    return check_result("test_cli_progress");
}
