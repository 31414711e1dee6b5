/* adopt: `savefs adopt FROM SNAP TO [NEWSNAP]`, the one way a snapshot goes to another VM name:
 * an import whose manifest names another VM is refused (import.h), and a restore of one never
 * runs. Called by the savefs command. */
#ifndef SAVEFS_ADOPT_H
#define SAVEFS_ADOPT_H

#include <stddef.h>

struct trust;

/* Snapshot SNAP of FROM in STORE, to become NEWSNAP of TO. */
struct adoption {
    const char *store, *from, *snap, *to, *newsnap;
};

/* Copies A's snapshot to STORE/TO/snapshots/NEWSNAP with its manifest naming TO and signed by T.
 * Only a snapshot this host runs as it is (signed with a key it has, or accepted for FROM by
 * digest) is adopted; the copy runs FROM's command line unless STORE/TO/local.json gives TO its
 * own. -EEXIST if TO has a snapshot NEWSNAP; -EPERM, with the reason in ERR, if not trusted. */
int adopt_snapshot(const struct trust *t, const struct adoption *a, char *err, size_t errlen);

#endif
