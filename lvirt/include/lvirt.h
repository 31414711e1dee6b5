/* lvirt: QEMU domains that libvirt runs, through libvirt's C API (libvirt, libvirt-qemu): which
 * run, their monitor (as a struct qmp whose commands go through libvirt's own connection to it),
 * their migratable XML, and the mark in a domain's <metadata> that a savefs snapshot holds its
 * state. Built without libvirt (SAVEFS_LIBVIRT=OFF, or AUTO without libvirt-dev) it knows no
 * domain. Knows no files of savefs and no jobs. Thread-safe: one connection serves every thread,
 * and is opened again when libvirtd comes back. */
#ifndef SAVEFS_LVIRT_H
#define SAVEFS_LVIRT_H

#include <stddef.h>
#include <sys/types.h>

struct lv;
struct qmp;

/* The namespace of savefs's element in a domain's <metadata>, and its prefix there:
 * <savefs:saved snapshot="S" store="DIR" at="RFC3339"/>. The hook (contrib/libvirt-hook) knows
 * both. */
#define LV_META_URI    "urn:savefs:libvirt:1"
#define LV_META_PREFIX "savefs"

/* 1 if savefs was built with libvirt. */
int lv_built(void);

/* A handle on libvirt at URI (e.g. qemu:///system). libvirtd need not run: until it does, no
 * domain is listed and nothing is an error. LOG (may be NULL) hears of connections lost and
 * made. 0 or -ENOMEM; -ENOTSUP when savefs was built without libvirt. */
int lv_open(struct lv **out, const char *uri, void (*log)(const char *msg));
void lv_close(struct lv *lv);

/* The names of the running QEMU domains (NULL-terminated, malloc'd array of malloc'd strings),
 * read at most every 200 ms; an empty list when libvirtd does not answer; NULL without memory. */
char **lv_list(struct lv *lv);
/* 1 if domain NAME runs (from the same list). */
int lv_running(struct lv *lv, const char *name);

/* A QMP connection to domain NAME's QEMU through libvirt (virDomainQemuMonitorCommand): no second
 * monitor. Its qmp_peer_pid is the QEMU's pid. 0, -ESRCH (no such running domain), or another
 * negative errno, with the reason in ERR. */
int lv_qmp_open(struct lv *lv, const char *name, struct qmp **out, char *err, size_t errlen);

/* Domain NAME's migratable XML (VIR_DOMAIN_XML_MIGRATABLE) in *XML (malloc'd); *PERSISTENT says
 * whether libvirt keeps its definition after it stops. */
int lv_domain_xml(struct lv *lv, const char *name, char **xml, int *persistent, char *err,
                  size_t errlen);

/* Marks persistent domain NAME as saved in SNAPSHOT of STORE (its live and its persistent
 * <metadata>), so that the hook refuses a cold boot; AT is the time (RFC 3339). */
int lv_mark_saved(struct lv *lv, const char *name, const char *snapshot, const char *store,
                  const char *at, char *err, size_t errlen);
/* The snapshot named by NAME's mark into SNAP (SIZE bytes): 1 if marked, 0 if not (or no such
 * domain, or libvirtd away), negative on another error. */
int lv_saved_mark(struct lv *lv, const char *name, char *snap, size_t size);
/* Removes NAME's mark (persistent definition): 0 also if there was none. */
int lv_clear_mark(struct lv *lv, const char *name, char *err, size_t errlen);

/* Starts a domain from XML (a snapshot's, as its VM NAME was saved) paused and waiting for an
 * incoming migration (QEMU's -incoming defer, through libvirt's qemu namespace): a persistent
 * domain of that name and uuid keeps its definition and runs with XML as its live one, else
 * the domain is transient. 0 or a negative errno with the reason in ERR. */
int lv_start_incoming(struct lv *lv, const char *name, const char *xml, char *err, size_t errlen);
/* Lets NAME run (virDomainResume): libvirt knows it runs. */
int lv_resume(struct lv *lv, const char *name, char *err, size_t errlen);

/* Stops NAME's QEMU through libvirt (virDomainDestroy): libvirt records "destroyed", not a guest
 * that shut down by itself. */
int lv_destroy(struct lv *lv, const char *name, char *err, size_t errlen);

#endif
