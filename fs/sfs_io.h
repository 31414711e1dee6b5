/* sfs_io: what savefs asks of the kernel's FUSE that its libfuse cannot say. Before every write()
 * the kernel asks the filesystem for the file's security.capability (to drop it, as a write must):
 * through a FUSE mount, one round trip per write() of an import (tar's 10 KiB records, cp's 128
 * KiB), which halved `tar x` into restore/. A filesystem that drops privileges itself says so
 * with FUSE_HANDLE_KILLPRIV_V2, and the kernel then asks once per file. libfuse says it from
 * 3.16 on; with an older one (Debian 12's 3.14) savefs adds the flag to libfuse's INIT reply on
 * its way to the kernel. savefs has nothing to drop: it stores no set-user-ID, set-group-ID or
 * sticky bit (modes & 0777) and no security.* attribute (setxattr takes user.* only).
 * The same way it tells the kernel to pass the store's files through (sfs_pt.h), which libfuse
 * says from 3.17 on: at INIT, and in the reply of each open of a store file. */
#ifndef SAVEFS_SFS_IO_H
#define SAVEFS_SFS_IO_H

#include "sfs.h"

/* In the init callback: asks for FUSE_HANDLE_KILLPRIV_V2 where libfuse knows it; decides on
 * passthrough where savefs's own I/O can say it (and then drops the writeback cache). */
void sfs_io_want(struct fuse_conn_info *conn);

/* After fuse_mount() and before the loop: where libfuse does not know the flag, passes the
 * session's traffic through savefs's own I/O (fuse_session_custom_io), which adds it to the INIT
 * reply if the kernel offered it, and passthrough where decided. 0 or a negative errno. */
int sfs_io_install(struct fuse *fuse);

#endif
