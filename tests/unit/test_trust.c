/* test_trust: the trust model without a QEMU. Tables of command lines as QEMU 7.2 reads them
 * (what needs an allowance, which host paths they open), of quoting, of path maps, and of restore
 * decisions (signed by this store, by the fleet, by nobody; accepted, supplied, tampered; paths
 * in the store or the QMP directory); plus keys, signatures and accepting a digest. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "localdef.h"
#include "manifest.h"
#include "manifest_fixture.h"
#include "qemuopts.h"
#include "trust.h"

static char dir[] = "/tmp/test_trust.XXXXXX";

/* ---- the option check: QEMU's grammar and the allowlist ---- */

struct check_case {
    const char *what;
    const char *argv[8]; /* after argv[0] */
    /* Every finding in order: "A1" needs an allowance (option at argv[1]), "P1w/x" a path /x
     * (r reads, w writes, b both, s socket, d directory). */
    const char *want;
};

static const struct check_case checks[] = {
    /* allowed as they are */
    {"user networking", {"-netdev", "user,id=n0,hostfwd=tcp::2222-:22"}, ""},
    {"-nic defaults to user", {"-nic", "model=e1000"}, ""},
    {"-net nic and user", {"-net", "nic,model=e1000", "-net", "user"}, ""},
    {"JSON user", {"-netdev", "{\"type\":\"user\",\"id\":\"n0\"}"}, ""},
    {"hubport", {"-netdev", "hubport,id=h,hubid=0"}, ""},
    {"a NIC", {"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56"}, ""},
    {"machine", {"-m", "512", "-smp", "2", "-machine", "pc,accel=tcg", "-nodefaults"}, ""},
    {"display none", {"-display", "none", "-vga", "none", "-usbdevice", "tablet"}, ""},
    {"escaped comma is a value", {"-netdev", "user,id=n0,,type=tap"}, ""},
    {"-mon names a chardev", {"-mon", "mon0,mode=control"}, ""},
    {"reserved elsewhere", {"-incoming", "defer", "-daemonize"}, ""},
    /* the bypasses: backends that start programs */
    {"vde runs cmd://", {"-netdev", "vde,id=n0,sock=cmd://touch /tmp/x"}, "A1"},
    {"type= overrides the implied type", {"-netdev", "user,id=n0,type=tap,script=/x.sh"}, "A1"},
    {"type=bridge overrides", {"-netdev", "user,id=n0,type=bridge"}, "A1"},
    {"-nic type= override", {"-nic", "user,type=tap,script=/x.sh"}, "A1"},
    {"-net type= override", {"-net", "user,type=tap,script=/x.sh"}, "A1"},
    {"--netdev is -netdev", {"--netdev", "type=tap,id=n0"}, "A1"},
    {"last type wins", {"-netdev", "tap,script=/x,type=user"}, "A1"},
    {"JSON tap", {"-netdev", "{\"type\":\"tap\",\"id\":\"n0\",\"script\":\"/x\"}"}, "A1"},
    {"JSON repeated key", {"-netdev", "{\"type\":\"user\",\"type\":\"tap\"}"}, "A1"},
    {"tap even with scripts off", {"-netdev", "tap,id=n0,script=no,downscript=no"}, "A1"},
    {"a flag is a key", {"-netdev", "type=user,tap"}, "A1"},
    {"escaped comma in the type", {"-netdev", "user,,type=tap"}, "A1"},
    {"stream", {"-netdev", "stream,id=n,addr.type=unix,addr.path=/x"}, "A1"},
    {"smb", {"-nic", "user,smb=/srv"}, "A1"},
    {"guestfwd", {"-netdev", "user,id=n,guestfwd=tcp:10.0.2.9:1-cmd:/bin/sh"}, "A1"},
    {"plugin", {"-plugin", "/tmp/evil.so"}, "A1"},
    {"readconfig and set", {"-readconfig", "/etc/q.cfg", "-set", "netdev.n0.script=/x"}, "A1 A3"},
    {"chroot and runas", {"-chroot", "/srv/jail", "-runas", "nobody"}, "A1 A3"},
    {"unknown option", {"-bogus", "-m", "64"}, "A1"},
    {"missing value", {"-m", "64", "-netdev"}, "A3"},
    {"device passthrough", {"-device", "vfio-pci,host=01:00.0"}, "A1"},
    {"driver= overrides", {"-device", "e1000,driver=vfio-pci"}, "A1"},
    {"JSON device", {"-device", "{\"driver\":\"usb-host\",\"hostbus\":1}"}, "A1"},
    {"tcp monitor", {"-monitor", "telnet::4444,server=on,wait=off"}, "A1"},
    {"tcp chardev", {"-chardev", "socket,id=c,host=0.0.0.0,port=4444,server=on"}, "A1"},
    {"network disk", {"-drive", "file=nbd:localhost:10809"}, "A1"},
    {"JSON disk", {"-drive", "file=json:{\"driver\":\"ssh\"}"}, "A1"},
    {"vvfat", {"-drive", "file=/srv,format=vvfat"}, "P1b/srv A1"},
    {"pulseaudio", {"-audiodev", "pa,id=a"}, "A1"},
    {"vnc", {"-vnc", ":0", "-display", "gtk"}, "A1 A3"},
    /* host paths, listed */
    {"serial file", {"-serial", "file:/etc/shadow"}, "P1w/etc/shadow"},
    {"mon: prefix", {"-serial", "mon:file:/x"}, "P1w/x"},
    {"disk", {"-drive", "file=/etc/shadow,format=raw,if=virtio"}, "P1b/etc/shadow"},
    {"file: protocol", {"-hda", "file:/d.img"}, "P1b/d.img"},
    {"bare disk image", {"disk.img", "-m", "64"}, "P1bdisk.img"},
    {"cdrom", {"-cdrom", "/x.iso"}, "P1r/x.iso"},
    {"chardev socket",
     {"-chardev", "socket,id=c,path=/run/x.sock,server=on,wait=off"},
     "P1s/run/x.sock"},
    {"chardev file and log", {"-chardev", "file,id=f,path=/x,logfile=/y"}, "P1w/x P1w/y"},
    {"unix monitor",
     {"-monitor", "unix:/run/savefs/vm2.qmp,server=on,wait=off"},
     "P1s/run/savefs/vm2.qmp"},
    {"unix: then backend=",
     {"-qmp", "unix:/s,backend=file,path=/etc/shadow"},
     "P1w/s P1w/etc/shadow"},
    {"escaped comma in a path", {"-serial", "file:/a,,b"}, "P1w/a,,b"},
    {"escaped comma in a key value", {"-chardev", "file,id=f,path=/a,,b"}, "P1w/a,b"},
    {"shared memory file",
     {"-object", "memory-backend-file,id=m,size=1G,mem-path=/dev/shm/x,share=on"},
     "P1b/dev/shm/x"},
    {"JSON object",
     {"-object", "{\"qom-type\":\"memory-backend-file\",\"id\":\"m\",\"size\":1,\"mem-path\":"
                 "\"/x\"}"},
     "P1b/x"},
    {"secret file", {"-object", "secret,id=s,file=/root/key"}, "P1r/root/key"},
    {"log, pidfile, -L", {"-D", "/l", "-pidfile", "/p", "-L", "/b"}, "P1w/l P3w/p P5d/b"},
    {"loader", {"-device", "loader,file=/etc/shadow,addr=0x1000"}, "P1r/etc/shadow"},
    {"romfile", {"-device", "e1000,romfile=/etc/shadow"}, "P1r/etc/shadow"},
    {"romfile off", {"-device", "e1000,romfile="}, ""},
    {"fw_cfg", {"-fw_cfg", "name=opt/x,file=/etc/shadow"}, "P1r/etc/shadow"},
    {"wav", {"-audiodev", "wav,id=a,path=/a.wav"}, "P1w/a.wav"},
    {"wav's default", {"-audiodev", "wav,id=a"}, "P1wqemu.wav"},
    {"trace", {"-trace", "enable=x*,events=/e,file=/t"}, "P1r/e P1w/t"},
    {"-global romfile",
     {"-global", "e1000.romfile=/r", "-global", "driver=e1000,property=romfile,value=/s"},
     "P1r/r P3r/s"},
    {"-global loader file", {"-global", "loader.file=/etc/shadow"}, "P1r/etc/shadow"},
    {"acpitable list", {"-acpitable", "file=/a:/b"}, "P1r/a P1r/b"},
    {"kernel", {"-kernel", "/k", "-initrd", "/i", "-append", "console=ttyS0"}, "P1r/k P3r/i"},
    {"blockdev", {"-blockdev", "driver=file,node-name=f,filename=/x.img"}, "P1b/x.img"},
    {"machine kernel", {"-machine", "pc,dumpdtb=/d"}, "P1w/d"},
    {"fsdev", {"-fsdev", "local,id=f,path=/srv,security_model=none"}, "P1d/srv"},
    {"tftp", {"-netdev", "user,id=n0,tftp=/srv/tftp"}, "P1d/srv/tftp"},
    {"hugepages", {"-mem-path", "/dev/hugepages"}, "P1d/dev/hugepages"},
};

/* The report of C as the table writes it. */
static void render(const struct qemuopts_report *r, char *out, size_t len)
{
    size_t n = 0;

    out[0] = '\0';
    for (int i = 0; i < r->n && n < len; i++) {
        const struct qemuopts_finding *f = &r->f[i];
        const char access[] = "rwbsd";

        if (f->kind == QEMUOPTS_ALLOWANCE)
            n += (size_t)snprintf(out + n, len - n, "%sA%d", i ? " " : "", f->opt);
        else
            n += (size_t)snprintf(out + n, len - n, "%sP%d%c%s", i ? " " : "", f->opt,
                                  access[f->access], f->path);
    }
}

static void test_check(void)
{
    struct qemuopts_report r;
    char got[512];

    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
        const struct check_case *c = &checks[i];
        char *argv[9] = {"qemu-system-x86_64"};
        int argc = 1;

        while (argc < 9 && c->argv[argc - 1])
            argv[argc] = (char *)c->argv[argc - 1], argc++;
        if (qemuopts_check(argv, argc, &r) != 0) {
            CHECK(0, "%s: check failed", c->what);
            continue;
        }
        render(&r, got, sizeof(got));
        CHECK(strcmp(got, c->want) == 0, "%s: found '%s', want '%s'", c->what, got, c->want);
        for (int k = 0; k < r.n; k++)
            CHECK(r.f[k].kind == QEMUOPTS_PATH || r.f[k].why[0], "%s: no reason", c->what);
        qemuopts_report_free(&r);
    }
    char *reserved[] = {"-m", "512", "--incoming", "exec:sh -c x"};
    CHECK(qemuopts_find_reserved(reserved, 4) == 2, "--incoming not reserved");
    CHECK(qemuopts_find_reserved(reserved, 2) == -1, "-m reserved");
}

struct quote_case {
    const char *in, *want;
};

static const struct quote_case quotes[] = {
    {"-m", "\"-m\""},
    {"a b", "\"a b\""},
    {"-name\r\x1b[1A\x1b[2Kvm1", "\"-name\\r\\x1b[1A\\x1b[2Kvm1\""},
    {"x\ny\tz", "\"x\\ny\\tz\""},
    {"\"\\", "\"\\\"\\\\\""},
    {"caf\xc3\xa9\x7f", "\"caf\\xc3\\xa9\\x7f\""},
};

static void test_quote(void)
{
    for (size_t i = 0; i < sizeof(quotes) / sizeof(quotes[0]); i++) {
        char *q = qemuopts_quote(quotes[i].in);
        CHECK(q && strcmp(q, quotes[i].want) == 0, "quote: %s, want %s", q, quotes[i].want);
        free(q);
    }
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

static int read_manifest(const char *store, struct manifest *m)
{
    char path[512], err[512];
    int rc;

    snprintf(path, sizeof(path), "%s/vm1/snapshots/S/%s", store, MANIFEST_NAME);
    rc = manifest_read(path, m, err, sizeof(err));
    CHECK(rc == 0, "read: %s", err);
    return rc;
}

/* The QMP directory of every trust made by new_trust. */
static char qmp[300];

static struct trust *new_trust(const char *store, const char *key, const char *map)
{
    char *qemu[] = {"/bin/sh"};
    struct trust_config cfg = {store, key, qemu, 1, map, qmp};
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
    struct trust_config cfg = {store, key, qemu, 1, NULL, NULL};

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
    char a[300], b[300], c[300], key[300], path[400], keyid[32], err[512] = "";
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
        /* A libvirt domain's snapshot restores where it was signed, nowhere else. */
        CHECK(trust_libvirt(tc, &m, err, sizeof(err)) == 0, "libvirt, own: %s", err);
        CHECK(trust_libvirt(ta, &m, err, sizeof(err)) == -EPERM && strstr(err, "a key this host"),
              "libvirt, foreign key: %s", err);
        manifest_free(&m);
    }
    make_manifest(a, argv, 3, ta);
    if (!read_manifest(a, &m)) {
        CHECK(trust_origin(tb, &m, keyid, sizeof(keyid)) == TRUST_FLEET, "fleet signature");
        CHECK(trust_libvirt(tb, &m, err, sizeof(err)) == 0, "libvirt, fleet: %s", err);
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
            CHECK(trust_libvirt(tb, &m, err, sizeof(err)) == -EPERM && strstr(err, "changed"),
                  "libvirt, tampered: %s", err);
            manifest_free(&m);
        }
    }
    free(text);
    make_manifest(a, argv, 3, NULL);
    if (!read_manifest(a, &m)) {
        CHECK(trust_origin(ta, &m, keyid, sizeof(keyid)) == TRUST_UNSIGNED, "unsigned");
        CHECK(trust_libvirt(ta, &m, err, sizeof(err)) == -EPERM && strstr(err, "not signed"),
              "libvirt, unsigned: %s", err);
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
    {"accepted vde",
     {"qemu", "-netdev", "vde,id=n0,sock=cmd://touch /tmp/x"},
     0,
     "{\"accept\": [\"%s\"]}",
     -EPERM,
     "allow"},
    {"accepted type= override",
     {"qemu", "-nic", "user,type=tap,script=/tmp/evil.sh"},
     0,
     "{\"accept\": [\"%s\"]}",
     -EPERM,
     "allow"},
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

/* M's binary, cwd and argv in one line: the untrusted manifest must come out as it went in. */
static void command_text(const struct manifest *m, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "%s %s", m->binary, m->cwd ? m->cwd : "-");

    for (int i = 0; i < m->argc && n < len; i++)
        n += (size_t)snprintf(out + n, len - n, " %s", m->argv[i]);
}

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
    snprintf(path, sizeof(path), "%s/vm1/%s@%s", store, LOCALDEF_NAME, store_host());
    if (c->local) {
        snprintf(local, sizeof(local), c->local, digest);
        write_text(path, local, 0600);
    }
    struct trust_plan plan = {0};
    char before[4096], after[4096];
    command_text(&m, before, sizeof(before));
    rc = trust_resolve(t, &s, &m, &plan, how, sizeof(how), err, sizeof(err));
    CHECK(rc == c->want, "%s: %d, want %d (%s)", c->what, rc, c->want, err);
    command_text(&m, after, sizeof(after));
    CHECK(strcmp(before, after) == 0, "%s: the manifest was rewritten: %s", c->what, after);
    if (rc == 0) {
        int found = 0;
        for (int i = 0; i < plan.argc; i++)
            found |= strstr(plan.argv[i], c->expect) != NULL;
        CHECK(found, "%s: argv lacks %s", c->what, c->expect);
        CHECK(how[0], "%s: no reason to trust", c->what);
        CHECK(plan.binary && plan.cwd && plan.argv && !plan.argv[plan.argc], "%s: no plan",
              c->what);
        trust_plan_free(&plan);
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

/* Paths of accepted snapshots: in the QMP directory only the VM's own files, nothing in the
 * store, also through a symlink or "..". */
static void test_paths(void)
{
    char store[300], link[300], deep[300], sub[400], a[6][400], local[600];
    struct decision_case c = {"", {"qemu", a[0], a[1]}, 0, "{\"accept\": [\"%s\"]}", 0, ""};
    struct {
        const char *opt, *fmt, *dir;
        int want;
        const char *expect;
    } cases[] = {
        {"-monitor", "unix:%s/vm2.qmp,server=on,wait=off", qmp, -EPERM, "QMP directory"},
        {"-qmp", "unix:%s/vm1.qmp,server=on", qmp, -EPERM, "QMP directory"},
        {"-chardev", "socket,id=c,path=%s/.savefs/x", qmp, -EPERM, "QMP directory"},
        {"-pidfile", "%s/vm1.pid", qmp, 0, "vm1.pid"},
        {"-serial", "file:%s/vm1.x.log", qmp, -EPERM, "QMP directory"},
        {"-serial", "file:%s/.savefs-key", store, -EPERM, "in the store"},
        {"-serial", "file:%s/vm2.qmp", link, -EPERM, "QMP directory"},
        {"-D", "%s/sub/../vm2.pid", qmp, -EPERM, "QMP directory"},
        {"-D", "%s/../vm2.pid", deep, -EPERM, "QMP directory"}, /* the kernel: link, then .. */
        {"-D", "%s/vm1.log", "/tmp", 0, "vm1.log"},
        {"-fsdev", "local,id=f,path=%s,security_model=none", dir, -EPERM, "holds the store"},
        {"-L", "%s", "/", -EPERM, "holds the store"},
    };
    struct trust *t;

    snprintf(store, sizeof(store), "%s/p", dir);
    snprintf(link, sizeof(link), "%s/link", dir);
    snprintf(deep, sizeof(deep), "%s/deep", dir);
    snprintf(sub, sizeof(sub), "%s/.savefs", qmp);
    mkdir(qmp, 0700);
    mkdir(sub, 0700);
    CHECK(symlink(qmp, link) == 0 && symlink(sub, deep) == 0, "symlink");
    t = new_trust(store, NULL, NULL);
    if (!t)
        return;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(a[0], sizeof(a[0]), "%s", cases[i].opt);
        snprintf(a[1], sizeof(a[1]), cases[i].fmt, cases[i].dir);
        c.what = a[1];
        c.want = cases[i].want;
        c.expect = cases[i].expect;
        decide(t, store, &c);
    }
    /* The host allows that monitor: it runs. */
    snprintf(a[0], sizeof(a[0]), "-monitor");
    snprintf(a[1], sizeof(a[1]), "unix:%s/vm2.qmp", qmp);
    snprintf(local, sizeof(local), "{\"accept\": [\"%%s\"], \"allow\": [\"-monitor\", \"%s\"]}",
             a[1]);
    c.local = local;
    c.want = 0;
    c.expect = "vm2.qmp";
    decide(t, store, &c);
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
        CHECK(trust_resolve(t, &s, &m, NULL, how, sizeof(how), err, sizeof(err)) == 0,
              "accepted snapshot refused: %s", err);
        manifest_free(&m);
    }
    char monitor[400], *bad[] = {"qemu", "-monitor", monitor};
    snprintf(monitor, sizeof(monitor), "unix:%s/vm2.qmp", qmp);
    make_manifest(store, bad, 3, NULL);
    if (!read_manifest(store, &m)) {
        char path[400], *text;
        trust_digest(&m, digest, sizeof(digest));
        CHECK(trust_accept(t, &s, digest, err, sizeof(err)) == -EPERM,
              "another VM's monitor accepted");
        CHECK(strstr(err, "vm2.qmp") && strstr(err, "QMP directory"), "no reason: %s", err);
        snprintf(path, sizeof(path), "%s/vm1/%s@%s", store, LOCALDEF_NAME, store_host());
        text = read_text(path);
        CHECK(text && !strstr(text, digest), "the refused digest is in local.json");
        free(text);
        manifest_free(&m);
    }
    trust_free(t);
}

/* `savefs accept` and the mount are two processes that both add digests to local.json: two
 * writers at once lose none of them. */
static void test_accept_concurrent(void)
{
    enum { WRITERS = 2, EACH = 150 };
    char store[300], vmdir[320], err[1024];
    struct localdef d;
    pid_t pid[WRITERS];

    snprintf(store, sizeof(store), "%s/conc", dir);
    snprintf(vmdir, sizeof(vmdir), "%s/vm1", store);
    if (mkdir(store, 0700) < 0 || mkdir(vmdir, 0700) < 0) {
        CHECK(0, "mkdir %s", vmdir);
        return;
    }
    for (int w = 0; w < WRITERS; w++) {
        pid[w] = fork();
        if (pid[w] == 0) {
            int failed = 0;
            for (int i = 0; i < EACH; i++) {
                char digest[TRUST_DIGEST_MAX];
                snprintf(digest, sizeof(digest), "sha256:%064d", w * EACH + i);
                failed |= localdef_accept(store, "vm1", digest, err, sizeof(err)) != 0;
            }
            _exit(failed);
        }
    }
    for (int w = 0; w < WRITERS; w++) {
        int st = 1;
        CHECK(pid[w] > 0 && waitpid(pid[w], &st, 0) == pid[w] && WIFEXITED(st) &&
                  WEXITSTATUS(st) == 0,
              "writer %d failed", w);
    }
    if (localdef_read(store, "vm1", &d, err, sizeof(err)) != 0) {
        CHECK(0, "read: %s", err);
        return;
    }
    CHECK(d.naccept == WRITERS * EACH, "%d of %d digests in local.json", d.naccept, WRITERS * EACH);
    localdef_free(&d);
}

/* Digests D accepts, as "a,b," into OUT. */
static const char *accepted(const struct localdef *d, char *out, size_t len)
{
    out[0] = '\0';
    for (int i = 0; i < d->naccept; i++)
        snprintf(out + strlen(out), len - strlen(out), "%s,", d->accept[i]);
    return out;
}

/* Local definitions are per host (hosts of a fleet share the store): each host reads its own
 * local.json@HOST, or the shared local.json where it has none (one written before they were per
 * host), and an acceptance goes to the accepting host's file only, started from the shared
 * one's content. */
static void test_localdef_per_host(void)
{
    char store[300], vmdir[320], path[400], err[1024], list[256], host[80];
    struct localdef d;

    snprintf(host, sizeof(host), "%s", store_host());
    snprintf(store, sizeof(store), "%s/hosts", dir);
    snprintf(vmdir, sizeof(vmdir), "%s/vm1", store);
    if (mkdir(store, 0700) < 0 || mkdir(vmdir, 0700) < 0) {
        CHECK(0, "mkdir %s", vmdir);
        return;
    }
    snprintf(path, sizeof(path), "%s/%s", vmdir, LOCALDEF_NAME);
    write_text(path, "{\"accept\": [\"sha256:1\"], \"cwd\": \"/old\"}", 0600);
    store_host_set("a");
    CHECK(localdef_read(store, "vm1", &d, err, sizeof(err)) == 0, "read: %s", err);
    CHECK(strcmp(d.name, "local.json") == 0, "host a reads %s, not the shared one", d.name);
    localdef_free(&d);
    CHECK(localdef_accept(store, "vm1", "sha256:2", err, sizeof(err)) == 0, "accept: %s", err);
    CHECK(localdef_read(store, "vm1", &d, err, sizeof(err)) == 0, "read: %s", err);
    CHECK(strcmp(d.name, "local.json@a") == 0, "host a reads %s", d.name);
    CHECK(strcmp(accepted(&d, list, sizeof(list)), "sha256:1,sha256:2,") == 0, "host a accepts %s",
          list);
    CHECK(d.cwd && strcmp(d.cwd, "/old") == 0, "host a lost the shared cwd");
    localdef_free(&d);
    store_host_set("b");
    CHECK(localdef_read(store, "vm1", &d, err, sizeof(err)) == 0, "read: %s", err);
    CHECK(strcmp(d.name, "local.json") == 0 &&
              strcmp(accepted(&d, list, sizeof(list)), "sha256:1,") == 0,
          "host b reads %s, accepting %s", d.name, list);
    localdef_free(&d);
    store_host_set(host);
}

int main(void)
{
    char cmd[300];

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(qmp, sizeof(qmp), "%s/qmp", dir);
    test_check();
    test_quote();
    test_get();
    test_map();
    test_keys();
    test_origins();
    test_decisions();
    test_paths();
    test_accept();
    test_accept_concurrent();
    test_localdef_per_host();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        check_failures++;
    return check_result("test_trust");
}
