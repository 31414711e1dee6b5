/* cli_mount: what `savefs save` and `savefs restore` read from a savefs mount, and nothing else:
 * they are clients of the mount's files (no QMP, no store). Called from the command's
 * threads; nothing here keeps state. */
#ifndef SAVEFS_CLI_MOUNT_H
#define SAVEFS_CLI_MOUNT_H

#include <stddef.h>
#include <time.h>

/* Opens MOUNT/VM/progress, whose lines follow the VM's job (savefs(1)): a descriptor, or a
 * negative errno. */
int cli_progress_open(const char *mount, const char *vm);

/* 1 if LINE of the progress file is a job's progress ("save vm1   52%  ..."), 0 if it is an
 * outcome ("save vm1  ok  ..."): a progress line's third field ends with '%'. */
int cli_is_progress(const char *line);

/* 1 while a job runs on VM (its operation, "save" or "restore", into OP), 0 if none does (a copy
 * into its snapshots may), or a negative errno. */
int cli_job_running(const char *mount, const char *vm, char *op, size_t oplen);

/* LINE, a progress line, with a bar drawn after "OP VM" from its percent: "save vm1
 * [##########          ]   52%  ...". */
void cli_progress_bar(const char *line, char *buf, size_t len);

/* The outcome of the VM's last job of OP ("save" or "restore") if it finished at or after SINCE:
 * "ok ..." or "error EFOO: ..." into BUF; 1 if it is ours, 0 if the last job is another's (a job
 * refused before it started records nothing), or a negative errno. */
/* 1 while VM's status shows a job (a lazy restore's push goes on after its rename returned). */
int cli_job_runs(const char *mount, const char *vm);

int cli_outcome(const char *mount, const char *vm, const char *op, time_t since, char *buf,
                size_t len);

#endif
