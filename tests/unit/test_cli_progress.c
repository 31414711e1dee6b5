/* test_cli_progress: the progress line of savefs save and restore (a table): percent, figures
 * in MiB or GiB by the total, the rate, an ETA only while it can be known, the bar only on a
 * terminal. */
#include <string.h>

#include "check.h"
#include "cli_mount.h"

#define MiB (1024.0 * 1024)
#define GiB (1024 * MiB)

static const struct {
    struct cli_progress p;
    const char *op;
    int bar;
    const char *line;
} cases[] = {
    {{1, "save", "migrating", 0.52 * 2.7 * GiB, 2.7 * GiB, 1.3 * GiB},
     "save",
     0,
     "save vm1   52%  1.4/2.7 GiB  1.3 GiB/s  ETA 1s  migrating"},
    {{1, "save", "migrating", 0.52 * 2.7 * GiB, 2.7 * GiB, 1.3 * GiB},
     "save",
     1,
     "save vm1 [##########          ]   52%  1.4/2.7 GiB  1.3 GiB/s  ETA 1s  migrating"},
    /* Nothing known yet: no ETA, no division by zero. */
    {{1, "restore", "starting", 0, 0, 0},
     "restore",
     1,
     "restore vm1 [                    ]    0%  0.0/0.0 MiB  0.0 MiB/s  starting"},
    {{1, "restore", "restoring", 100 * MiB, 400 * MiB, 50 * MiB},
     "restore",
     0,
     "restore vm1   25%  100.0/400.0 MiB  50.0 MiB/s  ETA 6s  restoring"},
    /* QEMU may count a few pages twice: never past the end. */
    {{1, "save", "syncing", 520 * MiB, 512 * MiB, 40 * MiB},
     "save",
     1,
     "save vm1 [####################]  100%  520.0/512.0 MiB  40.0 MiB/s  syncing"},
};

int main(void)
{
    char line[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cli_progress_line(&cases[i].p, cases[i].op, "vm1", cases[i].bar, line, sizeof(line));
        CHECK(strcmp(line, cases[i].line) == 0, "case %zu:\n  got  '%s'\n  want '%s'", i, line,
              cases[i].line);
    }
    return check_result("test_cli_progress");
}
