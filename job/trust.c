/* trust: keys, signatures and the restore decision. HMAC-SHA256 and SHA-256 come from nettle;
 * MACs are compared in constant time. The decision is a pure function of the manifest, the local
 * definition and the host's configuration, so that the status, the xattrs and the restore agree. */
#include "trust.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "localdef.h"
#include "qemuopts.h"
#include "store.h"

#define HMAC_PREFIX  "hmac-sha256:"
#define KEYID_HEX    16
#define QEMU_DEFAULT "/usr/bin/qemu-system-*"

struct key {
    uint8_t bytes[TRUST_KEY_MAX];
    size_t len;
    char id[KEYID_HEX + 1];
};

struct trust {
    struct key host, fleet; /* fleet.len 0: no --trust-key */
    char **qemu;            /* real paths of the allowed binaries */
    int nqemu;
    struct path_map paths; /* the host's --path-map */
};

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

/* A key's id: the start of SHA-256("savefs key id" NUL KEY). Says which key signed, not the key. */
static void key_id(struct key *k)
{
    static const char label[] = "savefs key id";
    uint8_t d[SHA256_DIGEST_SIZE];
    struct sha256_ctx c;

    sha256_init(&c);
    sha256_update(&c, sizeof(label), (const uint8_t *)label);
    sha256_update(&c, k->len, k->bytes);
    sha256_digest(&c, sizeof(d), d);
    hex(d, KEYID_HEX / 2, k->id);
}

static int read_key(const char *path, int private_only, struct key *k, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    ssize_t n;
    int rc = 0;

    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = -errno;
        snprintf(err, errlen, "key %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || (private_only && (st.st_mode & 077))) {
        snprintf(err, errlen,
                 "key %s must be a regular file that only its owner can read (chmod 600)", path);
        rc = -EPERM;
        goto out;
    }
    n = read(fd, k->bytes, sizeof(k->bytes));
    if (n < TRUST_KEY_MIN || n == sizeof(k->bytes)) {
        snprintf(err, errlen, "key %s must hold %d to %d bytes (head -c 32 /dev/urandom >FILE)",
                 path, TRUST_KEY_MIN, TRUST_KEY_MAX - 1);
        rc = -EINVAL;
        goto out;
    }
    k->len = (size_t)n;
    key_id(k);
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* The store's own key: STORE/.savefs-key, 32 random bytes made at first start. */
static int host_key(const char *store, struct key *k, char *err, size_t errlen)
{
    char path[PATH_MAX];
    uint8_t fresh[32];
    int fd, rc = 0;

    if (store_path(path, "%s/%s", store, TRUST_HOST_KEY))
        return -ENAMETOOLONG;
    if ((rc = store_mkdirs(store, err, errlen)))
        return rc;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (getrandom(fresh, sizeof(fresh), 0) != sizeof(fresh) ||
            write(fd, fresh, sizeof(fresh)) != sizeof(fresh) || fsync(fd) < 0)
            rc = -errno;
        if (close(fd) < 0 && !rc)
            rc = -errno;
        if (rc) {
            unlink(path);
            snprintf(err, errlen, "create key %s: %s", path, strerror(-rc));
            return rc;
        }
        store_fsync_dir(store);
    } else if (errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "create key %s: %s", path, strerror(errno));
        return rc;
    }
    return read_key(path, 1, k, err, errlen);
}

static int add_binary(struct trust *t, const char *path, char *err, size_t errlen)
{
    char real[PATH_MAX], **grown;

    if (!realpath(path, real) || access(real, X_OK) < 0) {
        snprintf(err, errlen, "--qemu %s: %s", path, strerror(errno));
        return -errno;
    }
    grown = realloc(t->qemu, (size_t)(t->nqemu + 1) * sizeof(char *));
    if (!grown)
        return -ENOMEM;
    t->qemu = grown;
    t->qemu[t->nqemu] = strdup(real);
    return t->qemu[t->nqemu++] ? 0 : -ENOMEM;
}

static int allowed_binaries(struct trust *t, const struct trust_config *cfg, char *err,
                            size_t errlen)
{
    glob_t g = {0};
    int rc = 0;

    for (int i = 0; !rc && i < cfg->nqemu; i++)
        rc = add_binary(t, cfg->qemu[i], err, errlen);
    if (cfg->nqemu || rc)
        return rc;
    if (glob(QEMU_DEFAULT, 0, NULL, &g) == 0)
        for (size_t i = 0; !rc && i < g.gl_pathc; i++)
            rc = add_binary(t, g.gl_pathv[i], err, errlen);
    globfree(&g);
    return rc;
}

int trust_new(struct trust **out, const struct trust_config *cfg, char *err, size_t errlen)
{
    struct trust *t = calloc(1, sizeof(*t));
    int rc;

    if (!t)
        return -ENOMEM;
    if (!(rc = host_key(cfg->store, &t->host, err, errlen)) && cfg->key_file)
        rc = read_key(cfg->key_file, 1, &t->fleet, err, errlen);
    if (!rc)
        rc = allowed_binaries(t, cfg, err, errlen);
    if (!rc && cfg->path_map_file)
        rc = localdef_read_map(cfg->path_map_file, &t->paths, err, errlen);
    if (rc)
        trust_free(t);
    else
        *out = t;
    return rc;
}

void trust_free(struct trust *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->nqemu; i++)
        free(t->qemu[i]);
    free(t->qemu);
    qemuopts_map_free(&t->paths);
    explicit_bzero(t, sizeof(*t));
    free(t);
}

/* ---- signatures ---- */

static void mac_of(const struct key *k, const char *text, uint8_t mac[SHA256_DIGEST_SIZE])
{
    struct hmac_sha256_ctx c;

    hmac_sha256_set_key(&c, k->len, k->bytes);
    hmac_sha256_update(&c, strlen(text), (const uint8_t *)text);
    hmac_sha256_digest(&c, SHA256_DIGEST_SIZE, mac);
}

int trust_sign(const struct trust *t, struct manifest *m)
{
    const struct key *k = t->fleet.len ? &t->fleet : &t->host;
    uint8_t mac[SHA256_DIGEST_SIZE];
    char machex[2 * SHA256_DIGEST_SIZE + 1], *text;
    int rc;

    m->hmac[0] = '\0';
    if ((rc = manifest_canonical(m, &text)))
        return rc;
    mac_of(k, text, mac);
    free(text);
    hex(mac, sizeof(mac), machex);
    snprintf(m->hmac, sizeof(m->hmac), "%s%s:%s", HMAC_PREFIX, k->id, machex);
    return 0;
}

/* Splits "hmac-sha256:KEYID:MAC" into KEYID and MAC's bytes. */
static int parse_hmac(const char *s, char *keyid, uint8_t mac[SHA256_DIGEST_SIZE])
{
    size_t plen = strlen(HMAC_PREFIX);

    if (strncmp(s, HMAC_PREFIX, plen) != 0 || strlen(s) != plen + KEYID_HEX + 1 + 64 ||
        s[plen + KEYID_HEX] != ':')
        return -EINVAL;
    memcpy(keyid, s + plen, KEYID_HEX);
    keyid[KEYID_HEX] = '\0';
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
        if (sscanf(s + plen + KEYID_HEX + 1 + 2 * i, "%2hhx", &mac[i]) != 1)
            return -EINVAL;
    return 0;
}

enum trust_origin trust_origin(const struct trust *t, const struct manifest *m, char *keyid,
                               size_t len)
{
    const struct key *keys[] = {&t->host, &t->fleet};
    uint8_t want[SHA256_DIGEST_SIZE], got[SHA256_DIGEST_SIZE];
    char id[KEYID_HEX + 1] = "";

    snprintf(keyid, len, "%s", "");
    if (!m->hmac[0] || !m->canonical)
        return TRUST_UNSIGNED;
    if (parse_hmac(m->hmac, id, got))
        return TRUST_UNKNOWN_KEY;
    snprintf(keyid, len, "%s", id);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (!keys[i]->len || strcmp(keys[i]->id, id) != 0)
            continue;
        mac_of(keys[i], m->canonical, want);
        if (!memeql_sec(want, got, sizeof(want)))
            return TRUST_BAD_HMAC;
        return keys[i] == &t->host ? TRUST_HOST : TRUST_FLEET;
    }
    return TRUST_UNKNOWN_KEY;
}

int trust_digest(const struct manifest *m, char *digest, size_t len)
{
    uint8_t d[SHA256_DIGEST_SIZE];
    char h[2 * SHA256_DIGEST_SIZE + 1];
    struct sha256_ctx c;

    if (!m->canonical)
        return -EINVAL;
    sha256_init(&c);
    sha256_update(&c, strlen(m->canonical), (const uint8_t *)m->canonical);
    sha256_digest(&c, sizeof(d), d);
    hex(d, sizeof(d), h);
    snprintf(digest, len, "sha256:%s", h);
    return 0;
}

/* ---- the decision ---- */

/* What is worked out while deciding; freed at the end. */
struct decision {
    const struct trust *t;
    const struct trust_subject *s;
    struct manifest *m;
    struct localdef def;
    struct path_map map; /* the VM's entries first, then the host's (borrowed strings) */
    char digest[TRUST_DIGEST_MAX], keyid[KEYID_HEX + 1];
    enum trust_origin origin;
    char *binary, *cwd, **argv; /* what to run */
    int argc;
};

static int merge_maps(struct decision *d)
{
    const struct path_map *vm = &d->def.paths, *host = &d->t->paths;
    int n = vm->n + host->n;

    d->map.from = calloc((size_t)n + 1, sizeof(char *));
    d->map.to = calloc((size_t)n + 1, sizeof(char *));
    if (!d->map.from || !d->map.to)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        const struct path_map *src = i < vm->n ? vm : host;
        int j = i < vm->n ? i : i - vm->n, dup = 0;

        for (int k = 0; src == host && k < vm->n; k++)
            dup |= strcmp(vm->from[k], host->from[j]) == 0;
        if (dup)
            continue;
        d->map.from[d->map.n] = src->from[j];
        d->map.to[d->map.n++] = src->to[j];
    }
    return 0;
}

static int map_all(struct decision *d, char *const *argv, int argc)
{
    int rc;

    d->argv = calloc((size_t)argc + 1, sizeof(char *));
    if (!d->argv)
        return -ENOMEM;
    for (int i = 0; i < argc; i++) {
        if ((rc = qemuopts_map_arg(argv[i], &d->map, &d->argv[i])))
            return rc;
        d->argc = i + 1;
    }
    return 0;
}

static int refuse(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    snprintf(err, errlen, fmt, a, b);
    return -EPERM;
}

/* Who vouches for the command line, in HOW; -EPERM if nobody does. */
static int vouch(struct decision *d, char *how, size_t howlen, char *err, size_t errlen)
{
    char sub[96];

    if (d->origin == TRUST_BAD_HMAC)
        return refuse(err, errlen,
                      "snapshot %s: manifest.json fails its HMAC under key %s: it was changed "
                      "after it was signed",
                      d->s->snap, d->keyid);
    if (d->def.argv) {
        snprintf(how, howlen, "command line from %s/%s/%s", d->s->store, d->s->vm, LOCALDEF_NAME);
        return 0;
    }
    if (d->origin == TRUST_HOST || d->origin == TRUST_FLEET) {
        snprintf(how, howlen, "signed with %s key %s",
                 d->origin == TRUST_HOST ? "this store's" : "the fleet's", d->keyid);
        return 0;
    }
    if (localdef_accepts(&d->def, d->digest)) {
        snprintf(how, howlen, "accepted in %s/%s/%s as %s", d->s->store, d->s->vm, LOCALDEF_NAME,
                 d->digest);
        return 0;
    }
    if (d->origin == TRUST_UNSIGNED)
        snprintf(sub, sizeof(sub), "is not signed");
    else
        snprintf(sub, sizeof(sub), "is signed with key %s, which this host does not have",
                 d->keyid[0] ? d->keyid : "(unreadable)");
    snprintf(err, errlen,
             "snapshot %s %s: this host does not recognize it. Review its command line "
             "(jq .qemu manifest.json), then accept it: savefs accept --store %s %s %s %s "
             "(or give %s/%s/%s an argv)",
             d->s->snap, sub, d->s->store, d->s->vm, d->s->snap, d->digest, d->s->store, d->s->vm,
             LOCALDEF_NAME);
    return -EPERM;
}

/* Options that start programs must be in the local definition, unless a key vouches. */
static int check_programs(struct decision *d, char *err, size_t errlen)
{
    char why[256];

    if (d->def.argv || d->origin == TRUST_HOST || d->origin == TRUST_FLEET)
        return 0;
    for (int i = 0; i < d->argc;) {
        int at = qemuopts_find_program(d->argv + i, d->argc - i, why, sizeof(why));
        const char *value;

        if (at < 0)
            return 0;
        at += i;
        value = at + 1 < d->argc ? d->argv[at + 1] : "";
        if (!localdef_has_option(&d->def, d->argv[at], value)) {
            snprintf(err, errlen,
                     "snapshot %s: option %s %s is refused: %s. Only %s/%s/%s can allow it "
                     "(\"allow\": [\"%s\", \"%s\"])",
                     d->s->snap, d->argv[at], value, why, d->s->store, d->s->vm, LOCALDEF_NAME,
                     d->argv[at], value);
            return -EPERM;
        }
        i = at + 1;
    }
    return 0;
}

static int check_binary(struct decision *d, char *err, size_t errlen)
{
    char real[PATH_MAX];

    if (realpath(d->binary, real))
        for (int i = 0; i < d->t->nqemu; i++)
            if (strcmp(real, d->t->qemu[i]) == 0)
                return 0;
    return refuse(err, errlen,
                  "snapshot %s: QEMU binary %s is not one this host allows (see --qemu)",
                  d->s->snap, d->binary);
}

/* The binary, command line and directory to run, before the checks. */
static int choose(struct decision *d)
{
    const struct localdef *def = &d->def;
    int rc;

    if (def->argv) {
        struct path_map none = {0};
        const struct path_map keep = d->map;

        d->map = none; /* the host's own command line is not mapped */
        rc = map_all(d, def->argv, def->argc);
        d->map = keep;
    } else {
        rc = map_all(d, d->m->argv, d->m->argc);
    }
    if (!rc)
        rc = def->binary ? ((d->binary = strdup(def->binary)) ? 0 : -ENOMEM)
                         : qemuopts_map_arg(d->m->binary, &d->map, &d->binary);
    if (!rc)
        rc = def->cwd ? ((d->cwd = strdup(def->cwd)) ? 0 : -ENOMEM)
                      : qemuopts_map_arg(d->m->cwd ? d->m->cwd : "/", &d->map, &d->cwd);
    return rc;
}

/* Hands what to run over to M. */
static void install(struct decision *d)
{
    for (int i = 0; i < d->m->argc; i++)
        free(d->m->argv[i]);
    free(d->m->argv);
    free(d->m->binary);
    free(d->m->cwd);
    d->m->argv = d->argv;
    d->m->argc = d->argc;
    d->m->binary = d->binary;
    d->m->cwd = d->cwd;
    d->argv = NULL;
    d->binary = d->cwd = NULL;
}

static void decision_free(struct decision *d)
{
    for (int i = 0; d->argv && i < d->argc; i++)
        free(d->argv[i]);
    free(d->argv);
    free(d->binary);
    free(d->cwd);
    free(d->map.from);
    free(d->map.to);
    localdef_free(&d->def);
}

int trust_resolve(const struct trust *t, const struct trust_subject *s, struct manifest *m,
                  char *how, size_t howlen, char *err, size_t errlen)
{
    struct decision d = {.t = t, .s = s, .m = m};
    int rc, at;

    if (!t)
        return refuse(err, errlen, "snapshot %s: %s", s->snap, "no trust configuration");
    if ((rc = localdef_read(s->store, s->vm, &d.def, err, errlen)) || (rc = merge_maps(&d)) ||
        (rc = trust_digest(m, d.digest, sizeof(d.digest))))
        goto out;
    d.origin = trust_origin(t, m, d.keyid, sizeof(d.keyid));
    if ((rc = vouch(&d, how, howlen, err, errlen)) || (rc = choose(&d)) ||
        (rc = check_binary(&d, err, errlen)) || (rc = check_programs(&d, err, errlen)))
        goto out;
    if ((at = qemuopts_find_reserved(d.argv, d.argc)) >= 0) {
        rc = refuse(err, errlen, "snapshot %s: option %s is savefs's to set", s->snap, d.argv[at]);
        goto out;
    }
    install(&d);
out:
    decision_free(&d);
    return rc;
}

int trust_accept(const struct trust *t, const struct trust_subject *s, const char *digest,
                 char *err, size_t errlen)
{
    char path[PATH_MAX], now[TRUST_DIGEST_MAX], why[512];
    struct manifest m;
    int rc;

    (void)t;
    if (store_path(path, "%s/%s/snapshots/%s/%s", s->store, s->vm, s->snap, MANIFEST_NAME))
        return -ENAMETOOLONG;
    rc = manifest_read(path, &m, why, sizeof(why));
    if (rc) {
        snprintf(err, errlen, "%s", why);
        return rc;
    }
    rc = trust_digest(&m, now, sizeof(now));
    manifest_free(&m);
    if (!rc && strcmp(now, digest) != 0) {
        snprintf(err, errlen, "snapshot %s: its manifest's digest is %s, not %s: it changed",
                 s->snap, now, digest);
        return -ESTALE;
    }
    return rc ? rc : localdef_accept(s->store, s->vm, digest, err, errlen);
}
