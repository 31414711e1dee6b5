/* precheck: the checks of this host that a restore runs before it starts a QEMU. A failed one
 * costs nothing to undo: no process was started, no file touched. */
#include "precheck.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "qemu.h"

/* Migration streams load forwards only: an older QEMU does not know a newer one's machine types
 * and device state. */
static int check_qemu_version(struct job *job, const struct manifest *m)
{
    char version[32];
    int rc = qemu_binary_version(m->binary, version, sizeof(version));

    if (rc)
        return job_fail(job, rc, "cannot tell the version of %s: %s", m->binary, strerror(-rc));
    if (qemu_version_cmp(m->qemu_version, version) > 0)
        return job_fail(job, -EPROTONOSUPPORT,
                        "snapshot %s was saved by QEMU %s, newer than %s (%s): an older QEMU "
                        "cannot load it",
                        m->snapshot, m->qemu_version, m->binary, version);
    return 0;
}

int precheck_restore(struct job *job, const struct manifest *m, const char *dir)
{
    (void)dir;
    job_set_phase(job, "checking host");
    return check_qemu_version(job, m);
}
