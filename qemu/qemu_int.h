/* qemu_int: helpers shared by the files of qemu/, not seen outside it. */
#ifndef SAVEFS_QEMU_INT_H
#define SAVEFS_QEMU_INT_H

#include <stddef.h>

/* VALUE with every ',' doubled, as QEMU's option strings want a literal comma: malloc'd. */
char *qemu_opt_escape(const char *value);

/* Runs BINARY with ARGV (stdin /dev/null) and waits for it: what it wrote to stdout and stderr
 * in OUT (LEN bytes at most, NUL-terminated; the rest is read and dropped), its wait status in
 * *STATUS. 0, or -errno if it could not start. */
int qemu_run(const char *binary, char *const *argv, char *out, size_t len, int *status);

#endif
