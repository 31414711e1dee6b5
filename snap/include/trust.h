/* trust: whether a snapshot may restore on this host, and with which QEMU binary, command line
 * and working directory. A manifest decides what QEMU opens and runs on the host, so one that
 * this host cannot recognize is untrusted input (docs/trust.md):
 *   - signed (an HMAC-SHA256 over the canonical manifest) with this store's own key or with the
 *     fleet key (--trust-key): restores as it is, through the path map;
 *   - else only if STORE/NAME/local.json supplies the command line, or accepts the manifest's
 *     digest; options off qemuopts's allowlist then need the local definition too, and no host
 *     path may be in the store or be another VM's file in the QMP directory;
 *   - always: the binary must be one the host allows (--qemu), and a bad HMAC under a known key
 *     is refused.
 * Keys are read once at start; the object is then read-only and shared by every thread. */
#ifndef SAVEFS_TRUST_H
#define SAVEFS_TRUST_H

#include <stddef.h>

#include "manifest.h"
#include "qemuopts.h"

#define TRUST_HOST_KEY   ".savefs-key" /* STORE/.savefs-key, made at first start */
#define TRUST_DIGEST_MAX 80            /* "sha256:" + 64 hex digits */
#define TRUST_KEY_MIN    16
#define TRUST_KEY_MAX    4096

struct trust;

struct trust_config {
    const char *store;         /* holds the host key */
    const char *key_file;      /* --trust-key: the fleet's shared key, or NULL */
    char *const *qemu;         /* --qemu: the binaries QEMU may be started from */
    int nqemu;                 /* 0: every /usr/bin/qemu-system-* */
    const char *path_map_file; /* --path-map: the host's path map, or NULL */
    const char *qmp_dir;       /* --qmp-dir: a snapshot may name no path in it but its VM's own
                                  files (NAME.EXT), or NULL */
};

enum trust_origin {
    TRUST_HOST,        /* signed with this store's key */
    TRUST_FLEET,       /* signed with the --trust-key key */
    TRUST_UNSIGNED,    /* no hmac */
    TRUST_UNKNOWN_KEY, /* signed with a key this host does not have */
    TRUST_BAD_HMAC,    /* signed with a key this host has, but the manifest changed since */
};

/* What a restore asks about: snapshot SNAP of VM in STORE. */
struct trust_subject {
    const char *store, *vm, *snap;
};

int trust_new(struct trust **out, const struct trust_config *cfg, char *err, size_t errlen);
void trust_free(struct trust *t);

/* The binaries restores may start QEMU from (real paths): their number, the array in *OUT. */
int trust_binaries(const struct trust *t, const char *const **out);

/* Signs M (sets m->hmac) with the fleet key if there is one, else with the host key. */
int trust_sign(const struct trust *t, struct manifest *m);

/* Where M (as read: m->canonical and m->hmac set) comes from; the signing key's id in KEYID. */
enum trust_origin trust_origin(const struct trust *t, const struct manifest *m, char *keyid,
                               size_t len);

/* Whether a libvirt domain's snapshot M (m->libvirt_xml set) may restore here: its XML decides
 * what libvirt starts, with libvirt's powers, so only a manifest this host or its fleet signed
 * (a save of a domain that libvirt already trusted) is taken; no local definition or accepted
 * digest stands in for that. 0, or -EPERM with the reason in ERR. */
int trust_libvirt(const struct trust *t, const struct manifest *m, char *err, size_t errlen);

/* "sha256:HEX" of M's canonical text: what a user accepts. */
int trust_digest(const struct manifest *m, char *digest, size_t len);

/* What a restore runs, as the host decided it: the manifest's own fields are untrusted input
 * and stay as they were read. */
struct trust_plan {
    char *binary, *cwd;
    char **argv; /* NULL-terminated */
    int argc;
};

/* Decides whether M (as read) may restore here. On success HOW says why it is trusted and, if
 * PLAN is not NULL, PLAN is what to run (trust_plan_free); else a negative errno (-EPERM for a
 * refusal) and the reason, with what the user can do about it, in ERR. */
int trust_resolve(const struct trust *t, const struct trust_subject *s, const struct manifest *m,
                  struct trust_plan *plan, char *how, size_t howlen, char *err, size_t errlen);
void trust_plan_free(struct trust_plan *plan);

/* What the user reviews before accepting a snapshot: its manifest with the command line, binary
 * and working directory through the path maps, and what each finding of qemuopts_check means
 * on this host. */
struct trust_note {
    char abs[4096]; /* a path: where QEMU would open it (from its working directory) */
    int refused;    /* -EPERM: refused (a path) or not allowed yet (an option); else 0 */
    char why[256];  /* why, when refused */
};

struct trust_review {
    struct manifest m;
    char digest[TRUST_DIGEST_MAX];
    struct qemuopts_report rep; /* of m.argv */
    struct trust_note *note;    /* one per rep.f */
};

int trust_review(const struct trust *t, const struct trust_subject *s, struct trust_review *rv,
                 char *err, size_t errlen);
void trust_review_free(struct trust_review *rv);

/* Accepts the manifest of S whose digest is DIGEST for this host (STORE/VM/local.json).
 * -ESTALE if the manifest's digest is not DIGEST (it changed since the user looked); -EPERM if
 * it names a path that is refused whatever the user accepts (trust_review). */
int trust_accept(const struct trust *t, const struct trust_subject *s, const char *digest,
                 char *err, size_t errlen);

#endif
