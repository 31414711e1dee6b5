/* follow_job: what job.c tells follow.c (follow.h) of the jobs it runs: their lines in the log,
 * and the outcome line that readers of the progress file end with. */
#ifndef SAVEFS_FOLLOW_JOB_H
#define SAVEFS_FOLLOW_JOB_H

#include <stddef.h>

#include "job_int.h"

/* Logs JOB's start; called in job_run once JOB holds its VM, without the lock. */
void follow_job_started(struct job *job);
/* The line of S's last outcome into BUF. Caller holds ctx->lock. */
void follow_outcome_locked(const struct vm_state *s, char *buf, size_t len);

/* Room for any line of a job (jobline.h): the longest is a failure's reason. */
#define FOLLOW_LINE_MAX (JOB_ERR_MAX + 256)

#endif
