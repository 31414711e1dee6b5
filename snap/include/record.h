/* record: STORE/NAME/.qemu.json remembers the QEMU that a restore started (its pid and the
 * command line it was restored from), so that a later save of that QEMU records the original
 * command line and not the one savefs added -incoming to. Any thread. */
#ifndef SAVEFS_RECORD_H
#define SAVEFS_RECORD_H

#include <stddef.h>
#include <sys/types.h>

int record_write(const char *store, const char *vm, pid_t pid, const char *binary, const char *cwd,
                 char *const *argv, int argc);

/* If the record names PID, its binary, cwd (both PATH_MAX) and argv (NULL-terminated,
 * qemu_argv_free). -ENOENT if there is no record or it names another process. */
int record_read(const char *store, const char *vm, pid_t pid, char *binary, char *cwd, char ***argv,
                int *argc);

#endif
