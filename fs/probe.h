/* probe: what savefs does to its store, done once on scratch names at mount (preflight.c calls
 * it before the mount, in main's thread). A missing call savefs cannot do without refuses the
 * mount naming it; one it can do without is said on standard error, with what changes. */
#ifndef SAVEFS_PROBE_H
#define SAVEFS_PROBE_H

#include <stddef.h>

/* Probes the store STORE (DIR: an O_PATH descriptor of it). 0, or a preflight_exit with the
 * reason in ERR. */
int probe_store(int dir, const char *store, char *err, size_t errlen);

/* A step that failed with errno E: permissions and space say the store is not writable
 * (PREFLIGHT_STORE_NOT_WRITABLE), anything else that its filesystem fails what savefs needs
 * (PREFLIGHT_STORE_REFUSES). */
int probe_failed(const char *store, const char *step, int e, char *err, size_t errlen);

#endif
