/* cli_mount: what `savefs save` and `savefs restore` read from a savefs mount, and nothing else:
 * they are clients of the mount's files (no QMP, no store). Called from the command's main
 * thread. */
#ifndef SAVEFS_CLI_MOUNT_H
#define SAVEFS_CLI_MOUNT_H

#include <stddef.h>
#include <time.h>

/* A job's progress as the mount tells it. */
struct cli_progress {
    int running;    /* a job runs on the VM */
    char op[16];    /* its operation: "save", "restore" */
    char phase[32]; /* "migrating", "restoring" ... */
    double done;    /* bytes: RAM scanned (save), streamed (restore) */
    double total;   /* bytes; 0 while unknown */
    double rate;    /* bytes per second */
};

/* The VM's job progress. 0 or a negative errno. */
int cli_progress_read(const char *mount, const char *vm, struct cli_progress *p);

/* One line for P: "save vm1  migrating  52%  1.4/2.7 GiB  1.3 GiB/s  ETA 1s", with a bar in
 * front of the figures when BAR is set. */
void cli_progress_line(const struct cli_progress *p, const char *op, const char *vm, int bar,
                       char *buf, size_t len);

/* The outcome of the VM's last job of OP ("save" or "restore") if it finished at or after SINCE:
 * "ok ..." or "error EFOO: ..." into BUF; 1 if it is ours, 0 if the last job is another's (a job
 * refused before it started records nothing), or a negative errno. */
int cli_outcome(const char *mount, const char *vm, const char *op, time_t since, char *buf,
                size_t len);

#endif
