/* precheck: the checks of this host that a restore runs before it starts a QEMU. A failed one
 * costs nothing to undo: no process was started, no file touched. */
#include "precheck.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "disks.h"
#include "qemu.h"

/* Migration streams load forwards only: an older QEMU does not know a newer one's machine types
 * and device state. */
static int check_qemu_version(struct job *job, const struct manifest *m, const char *binary)
{
    char version[32];
    int rc = qemu_binary_version(binary, version, sizeof(version));

    if (rc)
        return job_fail(job, rc, "cannot tell the version of %s: %s", binary, strerror(-rc));
    if (qemu_version_cmp(m->qemu_version, version) > 0)
        return job_fail(job, -EPROTONOSUPPORT,
                        "snapshot %s was saved by QEMU %s, newer than %s (%s): an older QEMU "
                        "cannot load it",
                        m->snapshot, m->qemu_version, binary, version);
    return 0;
}

/* The snapshot's RAM holds the guest's view of its disks (page cache, filesystem state): over
 * disks that changed since, the guest would corrupt them. */
static int check_disks(struct job *job, const struct manifest *m, const char *dir, char *note,
                       size_t notelen)
{
    char why[JOB_ERR_MAX - 200];
    int rc = disks_compare(m, why, sizeof(why));

    if (!rc)
        return 0;
    if (disks_take_force(dir)) {
        snprintf(note, notelen, "; disk check overridden by " DISKS_FORCE_XATTR);
        return 0;
    }
    return job_fail(job, rc,
                    "%s since snapshot %s was saved%s; its RAM describes the disk as it was. To "
                    "restore anyway: setfattr -n " DISKS_FORCE_XATTR " -v " DISKS_FORCE_VALUE
                    " on the snapshot",
                    why, m->snapshot, m->keep_running ? " (with keep-running)" : "");
}

int precheck_restore(struct job *job, const struct manifest *m, const char *binary, const char *dir,
                     char *note, size_t notelen)
{
    int rc;

    note[0] = '\0';
    job_set_phase(job, "checking host");
    rc = check_qemu_version(job, m, binary);
    return rc ? rc : check_disks(job, m, dir, note, notelen);
}
