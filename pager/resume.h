/* resume: the source's side of QEMU's postcopy recovery, for a pager started again after one
 * died mid-push (QEMU in postcopy-paused, then `migrate-recover URI`): each RAM block's received
 * bitmap asked for (MIG_CMD_RECV_BITMAP; the return-path thread keeps the answers), then
 * MIG_CMD_POSTCOPY_RESUME, after which QEMU answers RESUME_ACK, asks again for the pages its
 * vCPUs wait on and takes pages as before. Pages it has are never sent again (a page placed
 * twice fails 7.2). Called by the stream's writer thread. */
#ifndef SAVEFS_PAGER_RESUME_H
#define SAVEFS_PAGER_RESUME_H

#include <stddef.h>

#include "rp.h"
#include "snap.h"
#include "wire.h"

#define PG_RESUME_WAIT_MS 30000 /* for the bitmaps: QEMU sends them at once */

/* Asks for the bitmaps, waits for all of them (RP keeps them), then sends RESUME. 0, or -errno
 * with ERR filled: the destination closed, or sent no bitmap in time. */
int pg_resume_handshake(const struct pg_snap *s, struct pg_wire *w, struct pg_rp *rp, char *err,
                        size_t errlen);

#endif
