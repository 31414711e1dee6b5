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
#include "qemu.h"
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
    char *store, *qmp_dir; /* real paths: no accepted snapshot may name a path in them */
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

int trust_binaries(const struct trust *t, const char *const **out)
{
    *out = (const char *const *)t->qemu;
    return t->nqemu;
}

/* The real path of DIR, or DIR itself while it does not exist; NULL for none. */
static int real_dir(const char *dir, char **out)
{
    if (!dir)
        return 0;
    *out = realpath(dir, NULL);
    if (!*out)
        *out = strdup(dir);
    return *out ? 0 : -ENOMEM;
}

int trust_new(struct trust **out, const struct trust_config *cfg, char *err, size_t errlen)
{
    struct trust *t = calloc(1, sizeof(*t));
    int rc;

    if (!t)
        return -ENOMEM;
    if (!(rc = host_key(cfg->store, &t->host, err, errlen)) &&
        !(rc = real_dir(cfg->store, &t->store)))
        rc = real_dir(cfg->qmp_dir, &t->qmp_dir);
    if (!rc && cfg->key_file)
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
    free(t->store);
    free(t->qmp_dir);
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

int trust_libvirt(const struct trust *t, const struct manifest *m, char *err, size_t errlen)
{
    char keyid[KEYID_HEX + 1];
    enum trust_origin o = trust_origin(t, m, keyid, sizeof(keyid));

    if (o == TRUST_HOST || o == TRUST_FLEET)
        return 0;
    snprintf(err, errlen,
             "a libvirt domain's snapshot restores only if this host or its fleet signed it (its "
             "domain XML decides what libvirt starts): %s",
             o == TRUST_UNSIGNED   ? "it is not signed"
             : o == TRUST_BAD_HMAC ? "its manifest changed since it was signed"
                                   : "it is signed with a key this host does not have");
    return -EPERM;
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
    const struct manifest *m; /* as read: never rewritten */
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
        snprintf(how, howlen, "command line from %s/%s/%s", d->s->store, d->s->vm, d->def.name);
        return 0;
    }
    if (d->origin == TRUST_HOST || d->origin == TRUST_FLEET) {
        snprintf(how, howlen, "signed with %s key %s",
                 d->origin == TRUST_HOST ? "this store's" : "the fleet's", d->keyid);
        return 0;
    }
    if (localdef_accepts(&d->def, d->digest)) {
        snprintf(how, howlen, "accepted in %s/%s/%s as %s", d->s->store, d->s->vm, d->def.name,
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
             "(jq .qemu manifest.json), then accept it: savefs accept --store %s --host %s %s %s "
             "%s (or give %s/%s/%s an argv)",
             d->s->snap, sub, d->s->store, store_host(), d->s->vm, d->s->snap, d->digest,
             d->s->store, d->s->vm, d->def.name);
    return -EPERM;
}

/* ---- what QEMU would open ---- */

/* PATH as QEMU in CWD opens it, with ".", ".." and "//" taken out, in ABS. */
static void absolute(const char *cwd, const char *path, char *abs, size_t len)
{
    char joined[PATH_MAX], *save = NULL;
    size_t n = 0;

    snprintf(joined, sizeof(joined), "%s/%s", path[0] == '/' ? "" : cwd, path);
    abs[0] = '\0';
    for (char *c = strtok_r(joined, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, "..") == 0) {
            while (n > 0 && abs[--n] != '/')
                ;
            abs[n] = '\0';
        } else if (strcmp(c, ".") != 0) {
            n += (size_t)snprintf(abs + n, len - n, "/%s", c);
            n = n < len ? n : len - 1;
        }
    }
    if (!n)
        snprintf(abs, len, "/");
}

/* ABS below DIR (or DIR itself): what follows DIR's "/", or "" for DIR; else NULL. */
static const char *below(const char *abs, const char *dir)
{
    size_t n = strlen(dir);

    if (!dir[0] || strncmp(abs, dir, n) != 0)
        return NULL;
    if (abs[n] == '\0')
        return "";
    if (strcmp(dir, "/") == 0)
        return abs + 1;
    return abs[n] == '/' ? abs + n + 1 : NULL;
}

/* VM's own file in the QMP directory: VM.EXT, one more name component that is not "qmp" (that
 * socket is savefs's to make, each other VM's NAME.qmp its monitor). */
static int vm_own(const char *rest, const char *vm)
{
    size_t n = strlen(vm);
    const char *ext = rest + n + 1;

    return strncmp(rest, vm, n) == 0 && rest[n] == '.' && ext[0] && !strpbrk(ext, "./") &&
           strcmp(ext, "qmp") != 0;
}

/* 0 if QEMU running VM may open ABS (a directory: the files below it), else -EPERM and why. */
static int path_verdict_of(const struct trust *t, const char *vm, const char *abs, int dir,
                           char *why, size_t len)
{
    const char *rest;

    if (t->store && below(abs, t->store))
        snprintf(why, len, "it is in the store %s", t->store);
    else if (dir && ((t->store && below(t->store, abs)) || (t->qmp_dir && below(t->qmp_dir, abs))))
        snprintf(why, len, "the directory holds the store or savefs's QMP directory");
    else if (t->qmp_dir && (rest = below(abs, t->qmp_dir)) && !vm_own(rest, vm))
        snprintf(why, len,
                 "it is in savefs's QMP directory %s, and not one of %s's own files there "
                 "(%s.EXT): another VM's monitor or savefs's own",
                 t->qmp_dir, vm, vm);
    else
        return 0;
    return -EPERM;
}

/* Where RAW (PATH joined to QEMU's working directory, as the kernel resolves it: symlinks
 * before "..") leads now, in REAL: the real path, or that of its directory and its name when it
 * does not exist yet. 0 if its directory does not exist either. */
static int leads_to(const char *raw, char *real)
{
    char dir[PATH_MAX], *slash;

    if (realpath(raw, real))
        return 1;
    snprintf(dir, sizeof(dir), "%s", raw);
    slash = strrchr(dir, '/');
    if (!slash || !slash[1] || strcmp(slash + 1, ".") == 0 || strcmp(slash + 1, "..") == 0)
        return 0;
    *slash = '\0';
    if (!realpath(slash == dir ? "/" : dir, real) ||
        strlen(real) + strlen(slash + 1) + 2 >= PATH_MAX)
        return 0;
    strcat(strcmp(real, "/") == 0 ? real : strcat(real, "/"), slash + 1);
    return 1;
}

/* PATH of QEMU in CWD checked as written (ABS, lexically) and where it leads now. */
static int path_verdict(const struct trust *t, const char *vm, const char *cwd, const char *path,
                        const char *abs, int isdir, char *why, size_t len)
{
    char raw[PATH_MAX], real[PATH_MAX];
    int rc = path_verdict_of(t, vm, abs, isdir, why, len);

    snprintf(raw, sizeof(raw), "%s/%s", path[0] == '/' ? "" : cwd, path);
    if (!rc && leads_to(raw, real))
        rc = path_verdict_of(t, vm, real, isdir, why, len);
    return rc;
}

/* What finding F of ARGV (QEMU running in CWD) means here, in NOTE. */
static void judge(const struct trust *t, const struct localdef *def, const char *vm,
                  const char *cwd, char *const *argv, int argc, const struct qemuopts_finding *f,
                  struct trust_note *note)
{
    const char *value = f->opt + 1 < argc ? argv[f->opt + 1] : "";

    note->refused = 0;
    note->abs[0] = note->why[0] = '\0';
    if (f->kind == QEMUOPTS_PATH) {
        absolute(cwd, f->path, note->abs, sizeof(note->abs));
        note->refused = path_verdict(t, vm, cwd, f->path, note->abs,
                                     f->access == QEMUOPTS_DIRECTORY, note->why, sizeof(note->why));
    } else {
        snprintf(note->why, sizeof(note->why), "%s", f->why);
        note->refused = -EPERM;
    }
    /* The host's own argv and allow list vouch for an option and its value as they are. */
    if (note->refused && localdef_has_option(def, argv[f->opt], value))
        note->refused = 0;
}

/* The first finding of the command line that is refused, in ERR; 0 if there is none. */
static int refused_finding(const struct decision *d, const struct qemuopts_report *rep, char *err,
                           size_t errlen)
{
    struct trust_note note;

    for (int i = 0; i < rep->n; i++) {
        const struct qemuopts_finding *f = &rep->f[i];
        char *opt, *value;

        judge(d->t, &d->def, d->s->vm, d->cwd, d->argv, d->argc, f, &note);
        if (!note.refused)
            continue;
        opt = qemuopts_quote(d->argv[f->opt]);
        value = qemuopts_quote(f->opt + 1 < d->argc ? d->argv[f->opt + 1] : "");
        if (f->kind == QEMUOPTS_PATH)
            snprintf(err, errlen, "snapshot %s: option %s %s is refused: its path %s: %s",
                     d->s->snap, opt ? opt : "", value ? value : "", note.abs, note.why);
        else
            snprintf(err, errlen,
                     "snapshot %s: option %s %s is refused: %s. Only %s/%s/%s can allow it "
                     "(\"allow\": [%s, %s])",
                     d->s->snap, opt ? opt : "", value ? value : "", note.why, d->s->store,
                     d->s->vm, d->def.name, opt ? opt : "", value ? value : "");
        free(opt);
        free(value);
        return -EPERM;
    }
    return 0;
}

/* Options off the allowlist must be in the local definition, and no path may be refused,
 * unless a key or the host's own argv vouches for the whole command line. */
static int check_findings(struct decision *d, char *err, size_t errlen)
{
    struct qemuopts_report rep;
    int rc;

    if (d->def.argv || d->origin == TRUST_HOST || d->origin == TRUST_FLEET)
        return 0;
    if ((rc = qemuopts_check(d->argv, d->argc, &rep)))
        return rc;
    rc = refused_finding(d, &rep, err, errlen);
    qemuopts_report_free(&rep);
    return rc;
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

/* Hands what to run over to PLAN. */
static void hand_over(struct decision *d, struct trust_plan *plan)
{
    plan->argv = d->argv;
    plan->argc = d->argc;
    plan->binary = d->binary;
    plan->cwd = d->cwd;
    d->argv = NULL;
    d->binary = d->cwd = NULL;
}

void trust_plan_free(struct trust_plan *plan)
{
    qemu_argv_free(plan->argv);
    free(plan->binary);
    free(plan->cwd);
    memset(plan, 0, sizeof(*plan));
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

int trust_resolve(const struct trust *t, const struct trust_subject *s, const struct manifest *m,
                  struct trust_plan *plan, char *how, size_t howlen, char *err, size_t errlen)
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
        (rc = check_binary(&d, err, errlen)) || (rc = check_findings(&d, err, errlen)))
        goto out;
    if ((at = qemuopts_find_reserved(d.argv, d.argc)) >= 0) {
        rc = refuse(err, errlen, "snapshot %s: option %s is savefs's to set", s->snap, d.argv[at]);
        goto out;
    }
    if (plan)
        hand_over(&d, plan);
out:
    decision_free(&d);
    return rc;
}

static int read_subject(const struct trust_subject *s, struct manifest *m, char *err, size_t errlen)
{
    char path[PATH_MAX];

    memset(m, 0, sizeof(*m));
    if (store_snapshot_path(path, s->store, s->vm, s->snap, MANIFEST_NAME))
        return -ENAMETOOLONG;
    return manifest_read(path, m, err, errlen);
}

/* The snapshot's own command line, binary and directory through the maps, into RV->m. */
static int review_command(struct decision *d, struct trust_review *rv)
{
    struct trust_plan mapped = {0};
    int rc = map_all(d, rv->m.argv, rv->m.argc);

    if (!rc)
        rc = qemuopts_map_arg(rv->m.binary, &d->map, &d->binary);
    if (!rc)
        rc = qemuopts_map_arg(rv->m.cwd ? rv->m.cwd : "/", &d->map, &d->cwd);
    if (rc)
        return rc;
    /* The review's own copy shows the command line as this host would read it. */
    hand_over(d, &mapped);
    qemu_argv_free(rv->m.argv);
    free(rv->m.binary);
    free(rv->m.cwd);
    rv->m.argv = mapped.argv;
    rv->m.argc = mapped.argc;
    rv->m.binary = mapped.binary;
    rv->m.cwd = mapped.cwd;
    return 0;
}

int trust_review(const struct trust *t, const struct trust_subject *s, struct trust_review *rv,
                 char *err, size_t errlen)
{
    struct decision d = {.t = t, .s = s, .m = &rv->m};
    int rc;

    memset(rv, 0, sizeof(*rv));
    if ((rc = read_subject(s, &rv->m, err, errlen)) ||
        (rc = trust_digest(&rv->m, rv->digest, sizeof(rv->digest))) ||
        (rc = localdef_read(s->store, s->vm, &d.def, err, errlen)) || (rc = merge_maps(&d)) ||
        (rc = review_command(&d, rv)) || (rc = qemuopts_check(rv->m.argv, rv->m.argc, &rv->rep)))
        goto out;
    rv->note = calloc((size_t)rv->rep.n + 1, sizeof(*rv->note));
    if (!rv->note) {
        rc = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < rv->rep.n; i++)
        judge(t, &d.def, s->vm, rv->m.cwd, rv->m.argv, rv->m.argc, &rv->rep.f[i], &rv->note[i]);
out:
    decision_free(&d);
    if (rc)
        trust_review_free(rv);
    return rc;
}

void trust_review_free(struct trust_review *rv)
{
    manifest_free(&rv->m);
    qemuopts_report_free(&rv->rep);
    free(rv->note);
    memset(rv, 0, sizeof(*rv));
}

/* The first path of RV that is refused, in ERR. */
static int refused_path(const struct trust_subject *s, const struct trust_review *rv, char *err,
                        size_t errlen)
{
    for (int i = 0; i < rv->rep.n; i++) {
        char *path, *opt;

        if (rv->rep.f[i].kind != QEMUOPTS_PATH || !rv->note[i].refused)
            continue;
        path = qemuopts_quote(rv->note[i].abs);
        opt = qemuopts_quote(rv->m.argv[rv->rep.f[i].opt]);
        snprintf(err, errlen, "snapshot %s: path %s of option %s is refused: %s", s->snap,
                 path ? path : "", opt ? opt : "", rv->note[i].why);
        free(path);
        free(opt);
        return -EPERM;
    }
    return 0;
}

int trust_accept(const struct trust *t, const struct trust_subject *s, const char *digest,
                 char *err, size_t errlen)
{
    struct trust_review rv;
    int rc = trust_review(t, s, &rv, err, errlen);

    if (rc)
        return rc;
    if (strcmp(rv.digest, digest) != 0) {
        snprintf(err, errlen, "snapshot %s: its manifest's digest is %s, not %s: it changed",
                 s->snap, rv.digest, digest);
        rc = -ESTALE;
    }
    if (!rc)
        rc = refused_path(s, &rv, err, errlen);
    trust_review_free(&rv);
    return rc ? rc : localdef_accept(s->store, s->vm, digest, err, errlen);
}
