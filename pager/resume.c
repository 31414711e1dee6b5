/* resume: postcopy recovery's handshake (see resume.h). */
#include "resume.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Waits until RP has every block's bitmap or ended; 0, or -ETIMEDOUT / -EPIPE. */
static int pg_resume_wait(struct pg_rp *rp, int nblocks)
{
    struct timespec until;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += PG_RESUME_WAIT_MS / 1000;
    pthread_mutex_lock(&rp->mu);
    while (!rc && rp->nreceived < nblocks && !rp->ended)
        rc = -pthread_cond_timedwait(&rp->cond, &rp->mu, &until);
    if (!rc && rp->nreceived < nblocks)
        rc = -EPIPE;
    pthread_mutex_unlock(&rp->mu);
    return rc;
}

int pg_resume_handshake(const struct pg_snap *s, struct pg_wire *w, struct pg_rp *rp, char *err,
                        size_t errlen)
{
    const struct pg_map *m = &s->map;
    uint8_t name[1 + 255];
    int rc;

    for (int b = 0; b < m->nblocks; b++) {
        size_t n = strlen(m->blocks[b].name);
        name[0] = (uint8_t)n;
        memcpy(name + 1, m->blocks[b].name, n);
        pg_wire_cmd(w, PG_CMD_RECV_BITMAP, name, (uint16_t)(n + 1));
    }
    if ((rc = pg_wire_flush(w)))
        return snprintf(err, errlen, "asking for the received bitmaps: %s", strerror(-rc)), rc;
    if ((rc = pg_resume_wait(rp, m->nblocks))) {
        snprintf(err, errlen, "the destination sent %d of %d received bitmaps%s%s", rp->nreceived,
                 m->nblocks, rc == -ETIMEDOUT ? " in time (is it in postcopy-recover?)" : ": ",
                 rc == -ETIMEDOUT ? "" : rp->err);
        return rc;
    }
    pg_wire_cmd(w, PG_CMD_POSTCOPY_RESUME, NULL, 0);
    if ((rc = pg_wire_flush(w)))
        snprintf(err, errlen, "sending RESUME: %s", strerror(-rc));
    return rc;
}
