/* follow: MOUNT/NAME/progress, a job followed line by line. Each reader (an open file) has its own
 * place in the lines of the job that ran when it opened: a progress line at once, then one a
 * second, and the job's outcome as soon as it ends, then the end of the file. Opened outside a
 * job, the file is the last job's outcome (empty if there was none) and ends at once. Called
 * from FUSE workers; a read blocks its worker until the next line is due, so readers are counted
 * and bounded (FOLLOW_READERS_MAX) and the loop keeps threads for everything else. */
#ifndef SAVEFS_FOLLOW_H
#define SAVEFS_FOLLOW_H

#include <stddef.h>
#include <sys/types.h>

struct job_ctx;
struct follow;
struct import;

/* Open progress files at most: beyond, an open fails with EBUSY. */
#define FOLLOW_READERS_MAX 64

/* A reader of VM's lines: of its job, or if none runs and IMP (may be NULL) says that a copy into
 * one of its snapshots is under way (an import), of that copy: the bytes in the store of the
 * manifest's total once the manifest is there, and "ok" once no file is open for writing and
 * every file has its size. 0, -EBUSY (too many readers) or -ENOMEM. */
int follow_open(struct job_ctx *ctx, struct import *imp, const char *vm, struct follow **out);
/* Up to SIZE bytes of F's lines into BUF: the rest of the line a short read left, else the next
 * line once it is due (waiting for it). Returns the bytes, 0 once the outcome was read (the end
 * of the file), or -EINTR when STOP (polled each second at least, may be NULL) says the reader
 * gave up or the mount goes away. Reads of one reader from several threads take turns. */
ssize_t follow_read(struct follow *f, char *buf, size_t size, int (*stop)(void));
void follow_close(struct follow *f);

#endif
