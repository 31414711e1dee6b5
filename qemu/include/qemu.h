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

/* Calls FN with the name of every listening unix socket in /proc/net/unix, as it was bound: an
 * absolute path, a relative one (resolved against the binder's directory, unknown here) or
 * "@..." for an abstract socket. Stops at FN's first nonzero return and returns it; 0 after the
 * last, -errno if the file cannot be opened. */
int qemu_listeners(int (*fn)(const char *name, void *arg), void *arg);

/* Reads /proc/PID/cmdline into a NULL-terminated *ARGV of *ARGC strings (free with
 * qemu_argv_free) and /proc/PID/exe into BINARY. */
int qemu_read_cmdline(pid_t pid, char ***argv, int *argc, char *binary, size_t binlen, char *err,
                      size_t errlen);
void qemu_argv_free(char **argv);

/* /proc/PID/cwd into CWD: relative paths in the command line start there. */
int qemu_read_cwd(pid_t pid, char *cwd, size_t len);

/* The first process but SELF that has a descriptor open on a file under DIR (absolute, without
 * symlinks), that file in PATH; 0 if none does (processes whose descriptors this one may not
 * read are not seen). Where a file's users are asked: a captured image backing a running VM. */
pid_t qemu_proc_holding(const char *dir, pid_t self, char *path, size_t len);
/* 1 if process PID has a descriptor open on a file under DIR, that file in PATH. */
int qemu_proc_holds(pid_t pid, const char *dir, char *path, size_t len);

/* The real uid and gid that process PID runs as (/proc/PID/status): 0 or -errno. */
int qemu_owner(pid_t pid, uid_t *uid, gid_t *gid);

/* The command line that recreates a saved VM: ARGV without the options that only made sense for
 * one process (-incoming, -daemonize, its -qmp socket), which savefs sets itself. New array of
 * borrowed strings in *OUT (free only the array). */
int qemu_argv_portable(char *const *argv, int argc, const char *qmp_name, char ***out, int *outc);

/* The value of option NAME ("-NAME" or "--NAME") if ARGV[I] is that option and has one. */
const char *qemu_opt_value(char *const *argv, int argc, int i, const char *name);

/* What a restore's command line needs besides the recorded one. */
struct qemu_restore_opts {
    const char *qmp_path; /* savefs's QMP socket for the VM */
    const char *machine;  /* the versioned machine type the snapshot was saved with, or "" */
    const char *console;  /* where a console that was on stdio goes (a unix socket), or NULL */
    int *console_made;    /* out: 1 if the command line puts a console there */
};

/* The command line for a restore: PORTABLE with the machine type pinned to RO->machine, serial
 * log files appended to instead of truncated, a console on stdio moved to RO->console, then
 * "-qmp unix:QMP_PATH,server=on,wait=off -S -incoming defer". New array of new strings
 * (qemu_argv_free). */
int qemu_argv_restore(char *const *portable, int argc, const struct qemu_restore_opts *ro,
                      char ***out);

/* BINARY's version ("7.2.22"), from "BINARY -version"; remembered while the file is the same. */
int qemu_binary_version(const char *binary, char *version, size_t len);
/* Asks the first N (at most 8) of BINARIES for their versions on a thread of its own, so that a
 * first restore finds them known: at start, for the binaries restores may run. */
void qemu_versions_warm(const char *const *binaries, int n);

/* <0, 0 or >0 as QEMU version A ("7.2.22") is older than, the same as or newer than B. */
int qemu_version_cmp(const char *a, const char *b);

/* Starts BINARY with ARGV in directory CWD, in its own session, reparented away from savefs,
 * stdout and stderr appended to LOG. KEEP_FD (if >= 0), close-on-exec in savefs, stays open in
 * QEMU under the same number. *PID and a pidfd *PIDFD (readable once it exits). */
int qemu_spawn(const char *binary, char *const *argv, const char *cwd, const char *log, int keep_fd,
               pid_t *pid, int *pidfd, char *err, size_t errlen);

/* qemu_spawn for a helper of QEMU's (the page server of a lazy restore): KEEP_FD is open in it
 * as descriptor QEMU_SPAWN_FD, for it to write to. */
#define QEMU_SPAWN_FD 3
int qemu_spawn_fd(const char *binary, char *const *argv, const char *cwd, const char *log,
                  int keep_fd, pid_t *pid, int *pidfd, char *err, size_t errlen);

/* 1 if PID is a QEMU started with -incoming (a restore's, not yet a VM of its own). */
int qemu_pid_is_incoming(pid_t pid);

/* 1 if process PID has quit: gone, or its leader exited (a zombie), though its other threads
 * may still be closing its descriptors. */
int qemu_pid_quit(pid_t pid);

/* 1 if PIDFD says the process has exited. */
int qemu_exited(int pidfd);
/* 1 once the process has exited, 0 if it still runs after TIMEOUT_MS. */
int qemu_wait_exit(int pidfd, int timeout_ms);

/* SIGKILL through PIDFD and wait up to TIMEOUT_MS for the process to be gone. */
void qemu_kill(int pidfd, int timeout_ms);

/* The last whole lines of the file LOG that fit in LEN-1 bytes, joined by ";". */
void qemu_log_tail(const char *log, char *out, size_t len);

#endif
