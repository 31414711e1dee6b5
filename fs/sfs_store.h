/* sfs_store: file operations on the store for paths below it ("VM/snapshots/S/main"). Every path
 * is resolved beneath the store's descriptor with no symlink followed (openat2
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so nothing done through the mount reaches outside the
 * store, whatever someone left in it. Only regular files and directories are made. All return 0
 * (or a descriptor, or a length) or a negative errno. Any thread. */
#ifndef SAVEFS_SFS_STORE_H
#define SAVEFS_SFS_STORE_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Opens REL beneath STORE_FD; O_CREAT makes a regular file of MODE (& 0777). */
int sfs_store_open(int store_fd, const char *rel, int flags, mode_t mode);
int sfs_store_stat(int store_fd, const char *rel, struct stat *st);
/* Calls FILL for each entry of directory REL but "." and "..". */
int sfs_store_list(int store_fd, const char *rel, void (*fill)(void *arg, const char *name),
                   void *arg);
int sfs_store_mkdir(int store_fd, const char *rel, mode_t mode);
int sfs_store_rmdir(int store_fd, const char *rel);
int sfs_store_unlink(int store_fd, const char *rel);
int sfs_store_rename(int store_fd, const char *from, const char *to, unsigned int flags);
int sfs_store_chmod(int store_fd, const char *rel, mode_t mode);
int sfs_store_chown(int store_fd, const char *rel, uid_t uid, gid_t gid);
int sfs_store_utimens(int store_fd, const char *rel, const struct timespec tv[2]);
int sfs_store_truncate(int store_fd, const char *rel, off_t size);
int sfs_store_fsync(int store_fd, const char *rel, int datasync);

/* Extended attributes of REL (a file or a directory), as the l*xattr calls. */
int sfs_store_getxattr(int store_fd, const char *rel, const char *name, char *value, size_t size);
int sfs_store_setxattr(int store_fd, const char *rel, const char *name, const char *value,
                       size_t size, int flags);
int sfs_store_listxattr(int store_fd, const char *rel, char *list, size_t size);
int sfs_store_removexattr(int store_fd, const char *rel, const char *name);

#endif
