/* sfs: the FUSE operations of savefs. Translates paths into VMs, snapshots and jobs; knows no
 * sockets. Called from libfuse's worker threads. */
#ifndef SAVEFS_SFS_H
#define SAVEFS_SFS_H

/* 3.12: fuse_loop_mt() takes the configuration that fuse_loop_cfg_create() makes (with 35 it
 * read it as the old struct), and libfuse 3.17 declares fuse_loop_cfg_* only from 3.12 on. */
#define FUSE_USE_VERSION 312
#include <fuse.h>

struct job_ctx;
struct import;

/* The filesystem's context (fuse's private data); set before the loop starts, read-only then. */
struct sfs_ctx {
    struct job_ctx *job;
    struct import *imp;
    int store_fd;   /* the store, O_PATH: every store path is resolved beneath it */
    uid_t owner;    /* who mounted: only they (and root) save, restore, import or delete */
    time_t mounted; /* the times of savefs's own entries (VM directories, save, status) */
};

/* Opens the store of JOB for CTX. 0 or a negative errno. */
int sfs_ctx_init(struct sfs_ctx *ctx, struct job_ctx *job, struct import *imp);
void sfs_ctx_close(struct sfs_ctx *ctx);

extern const struct fuse_operations sfs_ops;

#endif
