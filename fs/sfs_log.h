/* sfs_log: savefs's log, one line a message: to standard error (the terminal with -f, the
 * journal under systemd) and to syslog. Called from any thread. */
#ifndef SAVEFS_SFS_LOG_H
#define SAVEFS_SFS_LOG_H

/* Looks once whether standard error is the journal (before any thread starts). */
void sfs_log_init(void);
/* Logs MSG: "savefs: MSG", after a timestamp unless the journal stamps it. */
void sfs_log(const char *msg);

#endif
