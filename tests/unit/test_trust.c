/* test_trust: the trust model without a QEMU. Tables of command lines that start programs or
 * not, of path maps, and of restore decisions (signed by this store, by the fleet, by nobody;
 * accepted, supplied, tampered); plus keys, signatures and accepting a digest. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "localdef.h"
#include "manifest.h"
#include "qemuopts.h"
#include "trust.h"

static char dir[] = "/tmp/test_trust.XXXXXX";

/* ---- options that start programs ---- */

struct program_case {
    const char *what;
    const char *argv[4];
    int want; /* index of the option, or -1 */
};

static const struct program_case programs[] = {
    {"user networking", {"-netdev", "user,id=n0"}, -1},
    {"tap with default scripts", {"-netdev", "tap,id=n0"}, 0},
    {"tap with scripts off", {"-netdev", "tap,id=n0,script=no,downscript=no"}, -1},
    {"tap with empty scripts", {"-netdev", "tap,id=n0,script=,downscript="}, -1},
    {"tap with only script off", {"-netdev", "tap,id=n0,script=no"}, 0},
    {"tap with a script", {"-netdev", "tap,id=n0,script=/tmp/x.sh,downscript=no"}, 0},
    {"escaped comma hides a script", {"-netdev", "tap,script=no,,script=/x,downscript=no"}, 0},
    {"last key wins", {"-netdev", "tap,script=/x,script=no,downscript=no"}, -1},
    {"tap on a passed fd", {"-netdev", "tap,id=n0,fd=3"}, -1},
    {"tap with a helper", {"-netdev", "tap,id=n0,helper=/usr/lib/qemu/qemu-bridge-helper"}, 0},
    {"bridge", {"-netdev", "bridge,id=n0,br=br0"}, 0},
    {"type= form", {"--netdev", "type=tap,id=n0"}, 0},
    {"JSON netdev", {"-netdev", "{\"type\":\"user\",\"id\":\"n0\"}"}, 0},
    {"legacy -net tap", {"-net", "tap"}, 0},
    {"-nic smb", {"-nic", "user,smb=/srv"}, 0},
    {"guestfwd to a command", {"-netdev", "user,id=n,guestfwd=tcp:10.0.2.9:1-cmd:/bin/sh"}, 0},
    {"after a flag", {"-no-reboot", "-netdev", "tap,id=n0"}, 1},
    {"readconfig", {"-readconfig", "/etc/qemu.cfg"}, 0},
    {"set", {"-set", "netdev.n0.script=/x"}, 0},
    {"plugin", {"-plugin", "/tmp/evil.so"}, 0},
    {"a file is not a program", {"-serial", "file:/etc/shadow"}, -1},
    {"a disk is not a program", {"-drive", "file=/dev/sda,format=raw"}, -1},
};

static void test_programs(void)
{
    char why[256];

    for (size_t i = 0; i < sizeof(programs) / sizeof(programs[0]); i++) {
        const struct program_case *c = &programs[i];
        int argc = 0, got;

        while (argc < 4 && c->argv[argc])
            argc++;
        why[0] = '\0';
        got = qemuopts_find_program((char *const *)c->argv, argc, why, sizeof(why));
        CHECK(got == c->want, "%s: found %d, want %d (%s)", c->what, got, c->want, why);
        CHECK(got < 0 || why[0], "%s: no reason", c->what);
    }
    char *reserved[] = {"-m", "512", "--incoming", "exec:sh -c x"};
    CHECK(qemuopts_find_reserved(reserved, 4) == 2, "--incoming not reserved");
    CHECK(qemuopts_find_reserved(reserved, 2) == -1, "-m reserved");
}

static void test_get(void)
{
    char v[64];

    CHECK(qemuopts_get("tap,id=n0,script=a,,b", "script", v, sizeof(v)) && !strcmp(v, "a,b"),
          "escaped value: %s", v);
    CHECK(!qemuopts_get("tap,id=n0", "script", v, sizeof(v)), "absent key found");
    CHECK(qemuopts_get("tap,ifname=x,id=", "id", v, sizeof(v)) && v[0] == '\0', "empty value");
}

/* ---- path maps ---- */

struct map_case {
    const char *arg, *want;
};

static const struct map_case maps[] = {
    {"/a/b/disk.img", "/c/disk.img"},
    {"/a/b", "/c"},
    {"file=/a/b/x.qcow2,format=qcow2", "file=/c/x.qcow2,format=qcow2"},
    {"file:/a/b/serial.log", "file:/c/serial.log"},
    {"path=/a/b,id=p", "path=/c,id=p"},
    {"/a/bc/disk.img", "/a/bc/disk.img"}, /* not a whole component */
    {"x/a/b/disk.img", "x/a/b/disk.img"}, /* not at a boundary */
    {"/a/b/deep/k", "/d/k"},              /* the longest prefix wins */
    {"/a/b/x:/a/b/y", "/c/x:/c/y"},       /* each path */
    {"-kernel", "-kernel"},
};

static void test_map(void)
{
    char *from[] = {"/a/b", "/a/b/deep"}, *to[] = {"/c", "/d"};
    struct path_map map = {2, from, to};
    char err[256], *out;

    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
        CHECK(qemuopts_map_arg(maps[i].arg, &map, &out) == 0, "map %s failed", maps[i].arg);
        CHECK(strcmp(out, maps[i].want) == 0, "%s mapped to %s, want %s", maps[i].arg, out,
              maps[i].want);
        free(out);
    }
    char *bad_from[] = {"relative", "/a,b", "/a/../etc", "/ok"};
    char *bad_to[] = {"/x", "/x", "/x", "/x/.."};
    for (int i = 0; i < 4; i++) {
        struct path_map bad = {1, bad_from + i, bad_to + i};
        CHECK(qemuopts_check_map(&bad, err, sizeof(err)) == -EINVAL, "map %s -> %s accepted",
              bad_from[i], bad_to[i]);
    }
}

/* ---- keys, signatures, decisions ---- */

static void write_text(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");

    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        perror(path);
    chmod(path, mode);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 1 << 16);

    if (f && buf)
        buf[fread(buf, 1, (1 << 16) - 1, f)] = '\0';
    if (f)
        fclose(f);
    return buf;
}

/* A store with a snapshot vm1/snapshots/S of binary /bin/sh, argv ARGV. */
static void make_manifest(const char *store, char **argv, int argc, const struct trust *sign)
{
    char path[512], cmd[600], err[512];
    struct manifest m;

    memset(&m, 0, sizeof(m));
    m.version = MANIFEST_VERSION;
    strcpy(m.vm, "vm1");
    strcpy(m.snapshot, "S");
    strcpy(m.created, "2026-11-26T13:45:01Z");
    strcpy(m.qemu_version, "7.2.22");
    strcpy(m.machine, "pc-i440fx-7.2");
    strcpy(m.uuid, "00000000-0000-0000-0000-000000000000");
    m.binary = "/bin/sh";
    m.cwd = "/a/b";
    m.argv = argv;
    m.argc = argc;
    m.ram_size = 512ULL << 20;
    m.channels = 1;
    strcpy(m.compression, "none");
    m.duration_s = 0.1234567890123;
    m.nfiles = 2;
    m.files[0] = (struct cp_file){"main", CP_MAIN, -1, 10, 1, 0, 0, 0};
    m.files[1] = (struct cp_file){"channel-0", CP_CHANNEL, 0, 20, 2, 0, 0, 0};
    snprintf(cmd, sizeof(cmd), "rm -rf %s/vm1 && mkdir -p %s/vm1/snapshots/S", store, store);
    if (system(cmd) != 0)
        check_failures++;
    if (sign)
        CHECK(trust_sign(sign, &m) == 0, "sign");
    snprintf(path, sizeof(path), "%s/vm1/snapshots/S/%s", store, MANIFEST_NAME);
    CHECK(manifest_write(path, &m, err, sizeof(err)) == 0, "write: %s", err);
}

static int read_manifest(const char *store, struct manifest *m)
{
    char path[512], err[512];
    int rc;

    snprintf(path, sizeof(path), "%s/vm1/snapshots/S/%s", store, MANIFEST_NAME);
    rc = manifest_read(path, m, err, sizeof(err));
    CHECK(rc == 0, "read: %s", err);
    return rc;
}

static struct trust *new_trust(const char *store, const char *key, const char *map)
{
    char *qemu[] = {"/bin/sh"};
    struct trust_config cfg = {store, key, qemu, 1, map};
    struct trust *t = NULL;
    char err[512];
    int rc = trust_new(&t, &cfg, err, sizeof(err));

    CHECK(rc == 0, "trust_new %s: %s", store, err);
    return t;
}

static void test_keys(void)
{
    char store[300], key[300], err[512];
    struct trust *t = NULL;
    char *qemu[] = {"/bin/sh"};
    struct trust_config cfg = {store, key, qemu, 1, NULL};

    snprintf(store, sizeof(store), "%s/keys", dir);
    snprintf(key, sizeof(key), "%s/open.key", dir);
    write_text(key, "0123456789abcdef0123456789abcdef", 0644);
    CHECK(trust_new(&t, &cfg, err, sizeof(err)) == -EPERM, "a key others can read was taken");
    write_text(key, "short", 0600);
    CHECK(trust_new(&t, &cfg, err, sizeof(err)) == -EINVAL, "a short key was taken");
    char *bad[] = {"/nonexistent/qemu"};
    cfg.key_file = NULL;
    cfg.qemu = bad;
    CHECK(trust_new(&t, &cfg, err, sizeof(err)) < 0, "a missing --qemu was taken");
    snprintf(key, sizeof(key), "%s/keys/%s", dir, TRUST_HOST_KEY);
    struct stat st;
    CHECK(stat(key, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 32,
          "no private host key made");
}

static void test_origins(void)
{
    char a[300], b[300], c[300], key[300], path[400], keyid[32];
    char *argv[] = {"qemu-system-x86_64", "-m", "512"};
    struct trust *ta, *tb, *tc;
    struct manifest m;

    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    snprintf(c, sizeof(c), "%s/c", dir);
    snprintf(key, sizeof(key), "%s/fleet.key", dir);
    write_text(key, "fleet-key-fleet-key-fleet-key-32", 0600);
    ta = new_trust(a, key, NULL);
    tb = new_trust(b, key, NULL);
    tc = new_trust(c, NULL, NULL);
    if (!ta || !tb || !tc)
        goto out;

    make_manifest(a, argv, 3, tc);
    if (!read_manifest(a, &m)) {
        CHECK(trust_origin(tc, &m, keyid, sizeof(keyid)) == TRUST_HOST, "own signature");
        CHECK(trust_origin(ta, &m, keyid, sizeof(keyid)) == TRUST_UNKNOWN_KEY, "foreign key");
        manifest_free(&m);
    }
    make_manifest(a, argv, 3, ta);
    if (!read_manifest(a, &m)) {
        CHECK(trust_origin(tb, &m, keyid, sizeof(keyid)) == TRUST_FLEET, "fleet signature");
        CHECK(trust_origin(tc, &m, keyid, sizeof(keyid)) == TRUST_UNKNOWN_KEY, "no fleet key");
        manifest_free(&m);
    }
    /* One byte of the command line changed after signing. */
    snprintf(path, sizeof(path), "%s/vm1/snapshots/S/%s", a, MANIFEST_NAME);
    char *text = read_text(path), *p = text ? strstr(text, "\"512\"") : NULL;
    CHECK(p != NULL, "no argv in the manifest");
    if (p) {
        p[1] = '9';
        write_text(path, text, 0600);
        if (!read_manifest(a, &m)) {
            CHECK(trust_origin(tb, &m, keyid, sizeof(keyid)) == TRUST_BAD_HMAC, "tamper missed");
            manifest_free(&m);
        }
    }
    free(text);
    make_manifest(a, argv, 3, NULL);
    if (!read_manifest(a, &m)) {
        CHECK(trust_origin(ta, &m, keyid, sizeof(keyid)) == TRUST_UNSIGNED, "unsigned");
        manifest_free(&m);
    }
out:
    trust_free(ta);
    trust_free(tb);
    trust_free(tc);
}

struct decision_case {
    const char *what;
    const char *argv[6];
    int sign;           /* 1: with the store's own key */
    const char *local;  /* local.json, "%s" replaced by the manifest's digest; NULL: none */
    int want;           /* 0 or -EPERM */
    const char *expect; /* in the reason (refused) or in the argv run (allowed) */
};

static const struct decision_case decisions[] = {
    {"own signature", {"qemu", "-m", "512"}, 1, NULL, 0, "512"},
    {"unsigned", {"qemu", "-m", "512"}, 0, NULL, -EPERM, "savefs accept"},
    {"accepted", {"qemu", "-m", "512"}, 0, "{\"accept\": [\"%s\"]}", 0, "512"},
    {"accepted other digest", {"qemu"}, 0, "{\"accept\": [\"sha256:00\"]}", -EPERM, "not signed"},
    {"accepted with a script",
     {"qemu", "-netdev", "tap,id=n0,script=/tmp/evil.sh"},
     0,
     "{\"accept\": [\"%s\"]}",
     -EPERM,
     "allow"},
    {"allowed script",
     {"qemu", "-netdev", "tap,id=n0,script=/etc/ifup"},
     0,
     "{\"accept\": [\"%s\"], \"allow\": [\"-netdev\", \"tap,id=n0,script=/etc/ifup\"]}",
     0,
     "script=/etc/ifup"},
    {"signed with a script", {"qemu", "-netdev", "tap,id=n0"}, 1, NULL, 0, "tap,id=n0"},
    {"supplied argv",
     {"qemu", "-serial", "file:/etc/shadow"},
     0,
     "{\"argv\": [\"qemu\", \"-serial\", \"file:/tmp/mine\"]}",
     0,
     "file:/tmp/mine"},
    {"mapped",
     {"qemu", "-kernel", "/a/b/vmlinuz"},
     1,
     "{\"paths\": {\"/a/b\": \"/x\"}}",
     0,
     "/x/vmlinuz"},
    {"host map", {"qemu", "-initrd", "/h/i.gz"}, 1, NULL, 0, "/hostmap/i.gz"},
    {"reserved", {"qemu", "-incoming", "exec:sh"}, 1, NULL, -EPERM, "savefs's to set"},
    {"typo in local.json", {"qemu"}, 1, "{\"acept\": []}", -EINVAL, "unknown key"},
    {"binary not allowed", {"qemu"}, 1, "{\"binary\": \"/bin/ls\"}", -EPERM, "not one this host"},
};

static void decide(struct trust *t, const char *store, const struct decision_case *c)
{
    struct trust_subject s = {store, "vm1", "S"};
    char path[400], local[1024], how[256] = "", err[1024] = "", digest[TRUST_DIGEST_MAX];
    int argc = 0, rc;
    struct manifest m;

    while (argc < 6 && c->argv[argc])
        argc++;
    make_manifest(store, (char **)c->argv, argc, c->sign ? t : NULL);
    if (read_manifest(store, &m))
        return;
    trust_digest(&m, digest, sizeof(digest));
    snprintf(path, sizeof(path), "%s/vm1/%s", store, LOCALDEF_NAME);
    if (c->local) {
        snprintf(local, sizeof(local), c->local, digest);
        write_text(path, local, 0600);
    }
    rc = trust_resolve(t, &s, &m, how, sizeof(how), err, sizeof(err));
    CHECK(rc == c->want, "%s: %d, want %d (%s)", c->what, rc, c->want, err);
    if (rc == 0) {
        int found = 0;
        for (int i = 0; i < m.argc; i++)
            found |= strstr(m.argv[i], c->expect) != NULL;
        CHECK(found, "%s: argv lacks %s", c->what, c->expect);
        CHECK(how[0], "%s: no reason to trust", c->what);
    } else {
        CHECK(strstr(err, c->expect) != NULL, "%s: reason lacks '%s': %s", c->what, c->expect, err);
    }
    manifest_free(&m);
    unlink(path);
}

static void test_decisions(void)
{
    char store[300], map[300];
    struct trust *t;

    snprintf(store, sizeof(store), "%s/d", dir);
    snprintf(map, sizeof(map), "%s/hostmap.json", dir);
    write_text(map, "{\"/h\": \"/hostmap\"}", 0600);
    t = new_trust(store, NULL, map);
    if (!t)
        return;
    for (size_t i = 0; i < sizeof(decisions) / sizeof(decisions[0]); i++)
        decide(t, store, &decisions[i]);
    trust_free(t);
}

static void test_accept(void)
{
    char store[300], digest[TRUST_DIGEST_MAX], how[256], err[1024];
    char *argv[] = {"qemu", "-m", "64"};
    struct trust_subject s = {store, "vm1", "S"};
    struct trust *t;
    struct manifest m;

    snprintf(store, sizeof(store), "%s/acc", dir);
    t = new_trust(store, NULL, NULL);
    if (!t)
        return;
    make_manifest(store, argv, 3, NULL);
    if (!read_manifest(store, &m)) {
        trust_digest(&m, digest, sizeof(digest));
        CHECK(trust_accept(t, &s, "sha256:0000", err, sizeof(err)) == -ESTALE, "stale digest");
        CHECK(trust_accept(t, &s, digest, err, sizeof(err)) == 0, "accept: %s", err);
        CHECK(trust_accept(t, &s, digest, err, sizeof(err)) == 0, "accept twice: %s", err);
        CHECK(trust_resolve(t, &s, &m, how, sizeof(how), err, sizeof(err)) == 0,
              "accepted snapshot refused: %s", err);
        manifest_free(&m);
    }
    trust_free(t);
}

int main(void)
{
    char cmd[300];

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_programs();
    test_get();
    test_map();
    test_keys();
    test_origins();
    test_decisions();
    test_accept();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        check_failures++;
    return check_result("test_trust");
}
