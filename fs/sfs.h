/* sfs: the FUSE operations of savefs. Translates paths into VMs, snapshots and jobs; knows no
 * sockets. Called from libfuse's worker threads. */
#ifndef SAVEFS_SFS_H
#define SAVEFS_SFS_H

#define FUSE_USE_VERSION 35
#include <fuse.h>

extern const struct fuse_operations sfs_ops;

#endif
