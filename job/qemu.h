/* qemu: the QEMU process as seen from outside: its command line, whether its QMP socket listens,
 * and starting one detached so that savefs can exit without taking the VM along.
 * Pure process and /proc operations, any thread. */
#ifndef SAVEFS_QEMU_H
#define SAVEFS_QEMU_H

#include <stddef.h>
#include <sys/types.h>

/* 1 if a socket listens at PATH (read from /proc/net/unix: no connection is made, so neither
 * QEMU nor a client holding its monitor notices). */
int qemu_listening(const char *path);

/* Reads /proc/PID/cmdline into a NULL-terminated *ARGV of *ARGC strings (free with
 * qemu_argv_free) and /proc/PID/exe into BINARY. */
int qemu_read_cmdline(pid_t pid, char ***argv, int *argc, char *binary, size_t binlen, char *err,
                      size_t errlen);
void qemu_argv_free(char **argv);

/* /proc/PID/cwd into CWD: relative paths in the command line start there. */
int qemu_read_cwd(pid_t pid, char *cwd, size_t len);

/* The command line that recreates a saved VM: ARGV without the options that only made sense for
 * one process (-incoming, -daemonize, its -qmp socket), which savefs sets itself. New array of
 * borrowed strings in *OUT (free only the array). */
int qemu_argv_portable(char *const *argv, int argc, const char *qmp_name, char ***out, int *outc);

/* The command line for a restore: PORTABLE + "-qmp unix:QMP_PATH,server=on,wait=off -S
 * -incoming defer". New array of new strings (qemu_argv_free). */
int qemu_argv_restore(char *const *portable, int argc, const char *qmp_path, char ***out);

/* Starts BINARY with ARGV in directory CWD, in its own session, reparented away from savefs,
 * stdout and stderr appended to LOG. *PID and a pidfd *PIDFD (readable once it exits). */
int qemu_spawn(const char *binary, char *const *argv, const char *cwd, const char *log, pid_t *pid,
               int *pidfd, char *err, size_t errlen);

/* 1 if PID is a QEMU started with -incoming (a restore's, not yet a VM of its own). */
int qemu_pid_is_incoming(pid_t pid);

/* 1 if PIDFD says the process has exited. */
int qemu_exited(int pidfd);
/* 1 once the process has exited, 0 if it still runs after TIMEOUT_MS. */
int qemu_wait_exit(int pidfd, int timeout_ms);

/* SIGKILL through PIDFD and wait up to TIMEOUT_MS for the process to be gone. */
void qemu_kill(int pidfd, int timeout_ms);

/* The last whole lines of the file LOG that fit in LEN-1 bytes, joined by ";". */
void qemu_log_tail(const char *log, char *out, size_t len);

#endif
