/* qemuopts: QEMU's command line seen as untrusted input. The check parses the command line the
 * way QEMU 7.2 does (its option table, then QemuOpts, keyval or JSON for the value) and holds
 * what it finds against an allowlist: a denylist of dangerous options always misses one (vde's
 * cmd://, a type= that overrides the implied backend), so whatever is not known to be harmless
 * counts as needing the host's allowance. docs/trust.md has the table and the reasons. */
#include "qemuopts.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

/* ---- option values: QemuOpts, keyval and JSON ---- */

struct item {
    char *key, *val;
};

struct opts {
    struct item *it;
    int n;
    const char *unchecked; /* why the value cannot be checked, or NULL */
};

/* Takes KEY and VAL (NULL: out of memory). */
static int opts_add(struct opts *o, char *key, char *val)
{
    struct item *grown = key && val ? realloc(o->it, (size_t)(o->n + 1) * sizeof(*o->it)) : NULL;

    if (!grown) {
        free(key);
        free(val);
        return -ENOMEM;
    }
    o->it = grown;
    o->it[o->n++] = (struct item){key, val};
    return 0;
}

static void opts_free(struct opts *o)
{
    for (int i = 0; i < o->n; i++) {
        free(o->it[i].key);
        free(o->it[i].val);
    }
    free(o->it);
    memset(o, 0, sizeof(*o));
}

/* The value at *P up to a ',' that is not doubled, with ",," read as ','; advances *P past it
 * (QEMU's get_opt_value). */
static char *take_value(const char **p)
{
    char *v = malloc(strlen(*p) + 1);
    size_t n = 0;

    if (!v)
        return NULL;
    while (**p && !(**p == ',' && (*p)[1] != ',')) {
        v[n++] = **p;
        *p += **p == ',' ? 2 : 1;
    }
    v[n] = '\0';
    return v;
}

/* One item of QemuOpts (QEMU's get_opt_name_value): "key=value"; a bare first item is the
 * implied key's value; any other bare item a flag, "noflag" meaning flag=off. A key ends at the
 * first '=' or ',' and is never unescaped. */
static int parse_item(const char **p, const char *implied, struct opts *o)
{
    size_t len = strcspn(*p, "=,");
    char *key, *val;

    if ((*p)[len] == '=') {
        key = strndup(*p, len);
        *p += len + 1;
        val = take_value(p);
    } else if (implied) {
        key = strdup(implied);
        val = take_value(p);
    } else {
        int no = strncmp(*p, "no", 2) == 0;
        key = strndup(*p + (no ? 2 : 0), len - (no ? 2 : 0));
        val = strdup(no ? "off" : "on");
        *p += len;
    }
    if (**p == ',')
        (*p)++;
    return opts_add(o, key, val);
}

static int parse_qemuopts(const char *s, const char *implied, struct opts *o)
{
    int rc = 0;

    for (const char *p = s; *p && !rc; implied = NULL)
        rc = parse_item(&p, implied, o);
    return rc;
}

/* A JSON object as keyval sees it: nested objects as dotted keys, scalars as text. */
static int flatten(json_t *obj, const char *prefix, struct opts *o)
{
    const char *key;
    json_t *v;
    int rc = 0;

    json_object_foreach(obj, key, v)
    {
        char *name = NULL, *text = NULL;

        if (rc || asprintf(&name, "%s%s", prefix, key) < 0)
            return rc ? rc : -ENOMEM;
        if (json_is_object(v)) {
            char *sub = NULL;
            rc = asprintf(&sub, "%s.", name) < 0 ? -ENOMEM : flatten(v, sub, o);
            free(sub);
            free(name);
            continue;
        }
        if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v))
            text = strdup(json_string_value(v));
        else if (json_is_integer(v) || json_is_real(v) || json_is_boolean(v))
            text = json_dumps(v, JSON_ENCODE_ANY);
        else
            o->unchecked = "a JSON list, null or a string with NUL cannot be checked";
        rc = text ? opts_add(o, name, text) : (free(name), 0);
    }
    return rc;
}

static int parse_json(const char *s, struct opts *o)
{
    json_t *root = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
    int rc = 0;

    if (json_is_object(root))
        rc = flatten(root, "", o);
    else
        o->unchecked = "JSON that is not one object without repeated keys cannot be checked";
    json_decref(root);
    return rc;
}

/* The value of an option that QEMU reads as JSON when it starts with '{' (if JSON_OK), else as
 * QemuOpts or keyval with IMPLIED as the first item's key. */
static int opts_parse(const char *s, const char *implied, int json_ok, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    if (json_ok && s[0] == '{')
        return parse_json(s, o);
    return parse_qemuopts(s, implied, o);
}

/* The last value of KEY (QEMU takes the last of a repeated key), or NULL. */
static const char *opts_last(const struct opts *o, const char *key)
{
    for (int i = o->n - 1; i >= 0; i--)
        if (strcmp(o->it[i].key, key) == 0)
            return o->it[i].val;
    return NULL;
}

int qemuopts_get(const char *s, const char *key, char *out, size_t len)
{
    struct opts o;
    const char *v;
    int found;

    if (parse_qemuopts(s, NULL, (memset(&o, 0, sizeof(o)), &o)))
        return 0;
    v = opts_last(&o, key);
    found = v != NULL;
    if (v)
        snprintf(out, len, "%s", v);
    opts_free(&o);
    return found;
}

static int on_word(const char *v)
{
    return v && (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"));
}

/* Why guest RAM mapped from P (CWD's if relative; SHARED or private) cannot be served lazily,
 * into WHY; 0 if it can. userfaultfd registers anonymous, shmem and hugetlbfs memory only: QEMU
 * fails at LISTEN on any other file (EINVAL). A file P's file system is asked, or its
 * directory's if QEMU is to make it; one that cannot be asked is left to QEMU. */
static int ram_path_obstacle(const char *p, const char *cwd, int shared, char *why, size_t len)
{
    char path[PATH_MAX], dir[PATH_MAX], *slash;
    struct stat st;
    struct statfs fs;
    int exists;

    if (snprintf(path, sizeof(path), "%s%s%s", p[0] == '/' ? "" : cwd, p[0] == '/' ? "" : "/", p) >=
        (int)sizeof(path))
        return 0;
    exists = stat(path, &st) == 0;
    snprintf(dir, sizeof(dir), "%s", path);
    if (!exists && (slash = strrchr(dir, '/')))
        *(slash == dir ? slash + 1 : slash) = '\0';
    if (statfs(dir, &fs) < 0)
        return 0;
    if (fs.f_type != TMPFS_MAGIC && fs.f_type != HUGETLBFS_MAGIC) {
        snprintf(why, len,
                 "its RAM maps %.120s, on a file system userfaultfd cannot serve (only tmpfs and "
                 "hugetlbfs files, or anonymous RAM)",
                 path);
        return 1;
    }
    if (!shared && exists && S_ISREG(st.st_mode) && st.st_blocks > 0) {
        snprintf(why, len,
                 "its RAM maps %.120s privately, and postcopy would punch holes in that file "
                 "(QEMU discards a file's RAM in the file itself)",
                 path);
        return 1;
    }
    return 0;
}

int qemuopts_ram_obstacle(char *const *argv, int argc, const char *cwd, char *why, size_t len)
{
    struct opts o;
    int found = 0;

    for (int i = 0; i + 1 < argc && !found; i++) {
        const char *v = argv[i + 1];

        if (qemuopts_is_opt(argv[i], "mem-path")) {
            found = ram_path_obstacle(v, cwd, 0, why, len);
        } else if (qemuopts_is_opt(argv[i], "object")) {
            const char *type, *mp;

            if (!opts_parse(v, "qom-type", 1, &o)) {
                type = opts_last(&o, "qom-type");
                mp = opts_last(&o, "mem-path");
                found = type && !strcmp(type, "memory-backend-file") && mp &&
                        ram_path_obstacle(mp, cwd, on_word(opts_last(&o, "share")), why, len);
            }
            opts_free(&o);
        }
    }
    return found;
}

/* ---- the report ---- */

struct ctx {
    struct qemuopts_report *r;
    int opt; /* the option being checked */
    int rc;  /* -ENOMEM once anything failed */
};

static struct qemuopts_finding *add_finding(struct ctx *c, enum qemuopts_kind kind)
{
    struct qemuopts_finding *grown;

    if (c->rc)
        return NULL;
    grown = realloc(c->r->f, (size_t)(c->r->n + 1) * sizeof(*grown));
    if (!grown) {
        c->rc = -ENOMEM;
        return NULL;
    }
    c->r->f = grown;
    grown += c->r->n++;
    memset(grown, 0, sizeof(*grown));
    grown->kind = kind;
    grown->opt = c->opt;
    return grown;
}

__attribute__((format(printf, 2, 3))) static void allowance(struct ctx *c, const char *fmt, ...)
{
    const struct qemuopts_report *r = c->r;
    struct qemuopts_finding *f;
    va_list ap;

    /* One reason per option is enough: the allowance is for the option as a whole. */
    if (r->n && r->f[r->n - 1].kind == QEMUOPTS_ALLOWANCE && r->f[r->n - 1].opt == c->opt)
        return;
    if (!(f = add_finding(c, QEMUOPTS_ALLOWANCE)))
        return;
    va_start(ap, fmt);
    vsnprintf(f->why, sizeof(f->why), fmt, ap);
    va_end(ap);
}

static void path(struct ctx *c, enum qemuopts_access access, const char *p, const char *key)
{
    struct qemuopts_finding *f = p[0] ? add_finding(c, QEMUOPTS_PATH) : NULL;

    if (!f) /* an empty path opens nothing (romfile= turns the ROM off) */
        return;
    f->access = access;
    snprintf(f->why, sizeof(f->why), "%s", key);
    if (!(f->path = strdup(p)))
        c->rc = -ENOMEM;
}

/* A colon-separated list of paths (-acpitable's file= and data=). */
static void path_list(struct ctx *c, enum qemuopts_access access, const char *list, const char *key)
{
    char *copy = strdup(list), *save = NULL;

    if (!copy) {
        c->rc = -ENOMEM;
        return;
    }
    for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save))
        path(c, access, p, key);
    free(copy);
}

/* A disk image name: a host path unless it starts with a protocol ("nbd:", "json:", ...), which
 * reaches beyond the host's files (QEMU's path_has_protocol); "file:" is a path. */
static void image(struct ctx *c, const char *v, enum qemuopts_access access, const char *key)
{
    size_t n = strcspn(v, ":/\\");

    if (v[n] != ':')
        path(c, access, v, key);
    else if (strncmp(v, "file:", 5) == 0)
        path(c, access, v + 5, key);
    else
        allowance(c, "the %.*s: protocol reaches beyond the host's files", (int)n, v);
}

/* ---- the allowlist of backends and keys ---- */

/* KEYS is a space-separated list of the keys a backend may have: "name"; "name=X" for a key
 * that names a host path (X: r reads, w writes, b reads and writes, s a socket, d a directory,
 * l a colon-separated list of files read, i a disk image); "pre.*" for every key under pre.;
 * "*" for any key. */
struct backend {
    const char *type;
    const char *keys;
    const char *implicit; /* the path opened when the path key is absent ("qemu.wav"), or NULL */
};

/* The rule for KEY in KEYS: 0 if it is not there, else the path letter or ' ' for a plain key. */
static char key_rule(const char *keys, const char *key)
{
    size_t klen = strlen(key);

    for (const char *p = keys; *p;) {
        size_t len = strcspn(p, " ");
        const char *eq = memchr(p, '=', len);
        size_t name = eq ? (size_t)(eq - p) : len;

        if ((name == 1 && p[0] == '*') || (name == klen && strncmp(p, key, klen) == 0) ||
            (name > 1 && p[name - 1] == '*' && strncmp(p, key, name - 1) == 0 && klen >= name))
            return eq ? eq[1] : ' ';
        p += len + (p[len] == ' ');
    }
    return 0;
}

static enum qemuopts_access access_of(char letter)
{
    switch (letter) {
    case 'w':
        return QEMUOPTS_WRITES;
    case 'b':
    case 'i':
        return QEMUOPTS_READS_WRITES;
    case 's':
        return QEMUOPTS_SOCKET;
    case 'd':
        return QEMUOPTS_DIRECTORY;
    default:
        return QEMUOPTS_READS;
    }
}

static void key_path(struct ctx *c, char letter, const char *val, const char *key)
{
    if (letter == 'l')
        path_list(c, QEMUOPTS_READS, val, key);
    else if (letter == 'i')
        image(c, val, QEMUOPTS_READS_WRITES, key);
    else
        path(c, access_of(letter), val, key);
}

/* Every key of O but SKIP (the key that chose B) against backend B's allowlist. */
static void check_keys(struct ctx *c, const char *what, const struct backend *b,
                       const struct opts *o, const char *skip)
{
    const char *pathkey = NULL;

    for (int i = 0; i < o->n; i++) {
        char rule = skip && strcmp(o->it[i].key, skip) == 0 ? ' ' : key_rule(b->keys, o->it[i].key);

        if (!rule)
            allowance(c, "key '%.40s' of %s '%.40s' is not on the allowlist", o->it[i].key, what,
                      b->type);
        else if (rule != ' ')
            key_path(c, rule, o->it[i].val, o->it[i].key);
        if (rule && rule != ' ')
            pathkey = o->it[i].key;
    }
    if (b->implicit && !pathkey)
        path(c, QEMUOPTS_WRITES, b->implicit, "default path");
}

/* A family of backends chosen by one key: -netdev's type, -chardev's backend, ... */
struct family {
    const char *what;     /* "netdev" */
    const char *implied;  /* the key of a bare first item, or NULL */
    const char *type_key; /* the key that chooses the backend */
    const char *dflt;     /* the backend when the type key is absent, or NULL */
    int json;             /* the value may be JSON */
    const struct backend *b;
};

/* O, parsed, against FAM; frees O. */
static void check_family_opts(struct ctx *c, const struct family *fam, struct opts *o)
{
    const char *type;
    const struct backend *b;

    type = opts_last(o, fam->type_key);
    type = type ? type : fam->dflt;
    for (b = fam->b; type && b->type && strcmp(b->type, type) != 0; b++)
        ;
    if (o->unchecked)
        allowance(c, "%s", o->unchecked);
    else if (!type)
        allowance(c, "a %s without %s= cannot be checked", fam->what, fam->type_key);
    else if (!b->type)
        allowance(c, "%s %s '%.40s' is not on the allowlist", fam->what, fam->type_key, type);
    else
        check_keys(c, fam->what, b, o, fam->type_key);
    opts_free(o);
}

static void check_family(struct ctx *c, const struct family *fam, const char *value)
{
    struct opts o;

    if (!c->rc && !(c->rc = opts_parse(value, fam->implied, fam->json, &o)))
        check_family_opts(c, fam, &o);
}

#define USER_NET                                                                                   \
    "id name ipv4 ipv6 net host ipv6-net ipv6-prefix ipv6-prefixlen ipv6-host restrict hostname "  \
    "dhcpstart dns ipv6-dns dnssearch domainname tftp-server-name hostfwd bootfile tftp=d"

static const struct backend netdevs[] = {
    {"user", USER_NET, NULL},
    {"hubport", "id hubid netdev", NULL},
    {NULL, NULL, NULL},
};
static const struct backend nics[] = {
    {"user", USER_NET " model mac", NULL},
    {"none", "", NULL},
    {NULL, NULL, NULL},
};
static const struct backend nets[] = {
    {"user", USER_NET, NULL},
    {"nic", "id name netdev macaddr model addr vectors", NULL},
    {"hubport", "id hubid netdev", NULL},
    {"none", "", NULL},
    {NULL, NULL, NULL},
};

#define CHR "id mux logappend logfile=w "
#define SOCKET_UNIX                                                                                \
    CHR "path=s server wait nodelay delay telnet tn3270 websocket reconnect abstract tight"

static const struct backend chardevs[] = {
    {"null", CHR, NULL},
    {"stdio", CHR "signal", NULL},
    {"vc", CHR "width height cols rows", NULL},
    {"pty", CHR, NULL},
    {"ringbuf", CHR "size", NULL},
    {"memory", CHR "size", NULL},
    {"msmouse", CHR, NULL},
    {"wctablet", CHR, NULL},
    {"testdev", CHR, NULL},
    {"file", CHR "path=w input-path=r append", NULL},
    {"pipe", CHR "path=b", NULL},
    {"socket", SOCKET_UNIX, NULL},
    {"serial", CHR "path=b", NULL},
    {"tty", CHR "path=b", NULL},
    {"parallel", CHR "path=b", NULL},
    {"parport", CHR "path=b", NULL},
    {NULL, NULL, NULL},
};

#define AUDIO "id driver model timer-period in.* out.*"

static const struct backend audiodevs[] = {
    {"none", AUDIO, NULL},
    {"wav", AUDIO " path=w", "qemu.wav"},
    {NULL, NULL, NULL},
};

#define MEM                                                                                        \
    "id size merge dump host-nodes policy prealloc prealloc-threads prealloc-context share "       \
    "reserve x-use-canonical-path-for-ramblock-id"

static const struct backend objects[] = {
    {"memory-backend-ram", MEM, NULL},
    {"memory-backend-memfd", MEM " seal hugetlb hugetlbsize", NULL},
    {"memory-backend-file", MEM " mem-path=b align discard-data pmem readonly", NULL},
    {"rng-builtin", "id", NULL},
    {"rng-random", "id filename=r", NULL},
    {"iothread", "id poll-max-ns poll-grow poll-shrink aio-max-batch thread-pool-*", NULL},
    {"main-loop", "id aio-max-batch thread-pool-*", NULL},
    {"throttle-group", "id limits.* x-*", NULL},
    {"secret", "id data format keyid iv file=r", NULL},
    {NULL, NULL, NULL},
};

#define NODE "node-name driver discard detect-zeroes cache.* read-only auto-read-only force-share"

static const struct backend blockdevs[] = {
    {"file", NODE " filename=b aio locking drop-cache", NULL},
    {"host_device", NODE " filename=b aio locking", NULL},
    {"host_cdrom", NODE " filename=r aio locking", NULL},
    {"raw", NODE " file offset size", NULL},
    {"qcow2",
     NODE " file backing lazy-refcounts pass-discard-* overlap-check* cache-size "
          "l2-cache-size l2-cache-entry-size refcount-cache-size cache-clean-interval",
     NULL},
    {NULL, NULL, NULL},
};

static const struct backend fsdevs[] = {
    {"local",
     "id fsdriver path=d security_model writeout readonly fmode dmode multidevs "
     "mount_tag throttling.*",
     NULL},
    {"synth", "id fsdriver readonly mount_tag", NULL},
    {NULL, NULL, NULL},
};

/* Options whose keys configure the VM itself; only the ones naming host files are marked. */
static const struct backend any_machine[] = {
    {"*", "kernel=r initrd=r dtb=r dumpdtb=w firmware=r *", NULL}, {NULL, NULL, NULL}};
static const struct backend displays[] = {{"none", "type gl", NULL}, {NULL, NULL, NULL}};

/* The machine's keys configure the VM itself: any key, and only the ones that name host files
 * are marked. There is one backend, "*", which no key chooses. */
static const struct family f_netdev = {"netdev", "type", "type", NULL, 1, netdevs};
static const struct family f_nic = {"nic", "type", "type", "user", 0, nics};
static const struct family f_net = {"net", "type", "type", NULL, 0, nets};
static const struct family f_chardev = {"chardev", "backend", "backend", NULL, 0, chardevs};
static const struct family f_audiodev = {"audiodev", "driver", "driver", NULL, 1, audiodevs};
static const struct family f_audio = {"audio", "driver", "driver", NULL, 0, audiodevs};
static const struct family f_object = {"object", "qom-type", "qom-type", NULL, 1, objects};
static const struct family f_blockdev = {"blockdev", "driver", "driver", NULL, 1, blockdevs};
static const struct family f_fsdev = {"fsdev", "fsdriver", "fsdriver", NULL, 0, fsdevs};
static const struct family f_machine = {"machine", "type", "", "*", 0, any_machine};
static const struct family f_display = {"display", "type", "type", NULL, 1, displays};

/* Options with a fixed set of keys. */
static const struct backend keyed[] = {
    {"boot", "order once menu splash=r splash-time reboot-timeout strict", NULL},
    {"acpitable",
     "sig rev oem_id oem_table_id oem_rev asl_compiler_id asl_compiler_rev "
     "file=l data=l",
     NULL},
    {"smbios", "file=r *", NULL},
    {"fw_cfg", "name file=r string gen_id", NULL},
    {"trace", "enable events=r file=w", NULL},
    {"icount", "shift align sleep rr rrfile=b rrsnapshot", NULL},
    {"option-rom", "romfile=r bootindex", NULL},
    {"mon", "id chardev mode pretty", NULL},
    {"drive",
     "file=i if index media id bus unit cyls heads secs trans snapshot cache.* aio "
     "format driver readonly read-only rerror werror serial addr discard detect-zeroes "
     "copy-on-read throttling.* bps* iops* group node-name auto-read-only force-share "
     "locking",
     NULL},
    {NULL, NULL, NULL},
};

/* The implied key of the options in KEYED. */
static const char *keyed_implied(const char *name)
{
    static const char *const pairs[][2] = {{"boot", "order"},         {"fw_cfg", "name"},
                                           {"trace", "enable"},       {"icount", "shift"},
                                           {"option-rom", "romfile"}, {"mon", "chardev"}};

    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
        if (strcmp(pairs[i][0], name) == 0)
            return pairs[i][1];
    return NULL;
}

/* Image formats and drivers of -drive that read only the image they are given. */
static const char drive_formats[] = "raw qcow2 qed vmdk vdi vpc vhdx file host_device host_cdrom";

static int in_list(const char *list, const char *word)
{
    char rule = key_rule(list, word);

    return rule != 0;
}

static void check_keyed(struct ctx *c, const struct backend *b, const char *value)
{
    struct opts o;
    const char *fmt[] = {"format", "driver"};

    if ((c->rc = opts_parse(value, keyed_implied(b->type), 0, &o)))
        return;
    check_keys(c, b->type, b, &o, NULL);
    for (int i = 0; strcmp(b->type, "drive") == 0 && i < 2; i++) {
        const char *v = opts_last(&o, fmt[i]);
        if (v && !in_list(drive_formats, v))
            allowance(c, "-drive %s=%.40s is not on the allowlist", fmt[i], v);
    }
    opts_free(&o);
}

/* ---- -device and -global ---- */

/* Devices that emulate hardware inside the VM and reach the host only through a backend that
 * is checked on its own (-drive, -netdev, -chardev, -audiodev, -object, -fsdev). Not here:
 * passthrough (vfio-*, usb-host, scsi-generic, scsi-block, u2f-passthru, virtio-input-host-*),
 * vhost and vhost-user devices, ivshmem, TPMs, remote and Xen devices. */
static const char devices[] =
    "i82801b11-bridge ioh3420 pci-bridge pcie-pci-bridge pcie-root-port pxb pxb-pcie "
    "x3130-upstream xio3130-downstream usb-hub ich9-usb-* nec-usb-xhci pci-ohci piix3-usb-uhci "
    "piix4-usb-uhci qemu-xhci usb-ehci am53c974 dc390 floppy ich9-ahci ide-cd ide-hd isa-fdc "
    "isa-ide lsi53c810 lsi53c895a megasas megasas-gen2 mptsas1068 nvme nvme-ns nvme-subsys "
    "piix3-ide piix4-ide pvscsi scsi-cd scsi-hd sd-card sdhci-pci usb-bot usb-storage usb-uas "
    "virtio-blk-* virtio-scsi-* virtio-9p-* e1000 e1000-* e1000e i8255* i82562 i82801 ne2k_isa "
    "ne2k_pci pcnet rtl8139 tulip usb-net virtio-net-* vmxnet3 i8042 isa-parallel isa-serial "
    "pci-serial pci-serial-2x pci-serial-4x usb-kbd usb-mouse usb-tablet usb-wacom-tablet "
    "usb-serial virtconsole virtio-keyboard-* virtio-mouse-* virtio-tablet-* virtio-serial-* "
    "virtserialport vmmouse ati-vga bochs-display cirrus-vga isa-cirrus-vga isa-vga qxl qxl-vga "
    "ramfb secondary-vga sga VGA virtio-gpu-pci virtio-gpu-device virtio-vga vmware-svga AC97 "
    "adlib cs4231a ES1370 gus hda-duplex hda-micro hda-output ich9-intel-hda intel-hda sb16 "
    "usb-audio isa-debug-exit isa-debugcon i6300esb ib700 pvpanic pvpanic-pci pc-dimm nvdimm "
    "virtio-balloon-* virtio-rng-* virtio-mem virtio-mem-pci virtio-pmem virtio-pmem-pci "
    "virtio-iommu-* intel-iommu amd-iommu vmcoreinfo vmgenid mc146818rtc pc-testdev edu loader";

static void check_device(struct ctx *c, const char *value)
{
    struct opts o;
    const char *driver;

    if ((c->rc = opts_parse(value, "driver", 1, &o)))
        return;
    driver = opts_last(&o, "driver");
    if (o.unchecked)
        allowance(c, "%s", o.unchecked);
    else if (!driver || !in_list(devices, driver))
        allowance(c, "device '%.40s' is not on the allowlist", driver ? driver : "");
    for (int i = 0; !o.unchecked && i < o.n; i++)
        if (strcmp(o.it[i].key, "romfile") == 0 ||
            (strcmp(o.it[i].key, "file") == 0 && driver && strcmp(driver, "loader") == 0))
            key_path(c, 'r', o.it[i].val, o.it[i].key);
    opts_free(&o);
}

/* -global DRIVER.PROP=VALUE or driver=,property=,value=: a default for devices made elsewhere;
 * only a ROM file and a loader's file name host files. */
static int global_path(const char *prop, size_t len)
{
    return (len == 7 && strncmp(prop, "romfile", 7) == 0) ||
           (len == 4 && strncmp(prop, "file", 4) == 0);
}

static void check_global(struct ctx *c, const char *value)
{
    const char *dot = strchr(value, '.'), *eq = strchr(value, '='), *prop;
    struct opts o;

    /* Both readings: QEMU chooses by a sscanf with field widths. */
    if (dot && eq && dot < eq && global_path(dot + 1, (size_t)(eq - dot - 1)))
        key_path(c, 'r', eq + 1, "property");
    if (c->rc || (c->rc = opts_parse(value, NULL, 0, &o)))
        return;
    prop = opts_last(&o, "property");
    if (prop && global_path(prop, strlen(prop)) && opts_last(&o, "value"))
        key_path(c, 'r', opts_last(&o, "value"), "value");
    opts_free(&o);
}

/* ---- chardev shorthands: -serial, -parallel, -monitor, -qmp, -debugcon, -gdb ---- */

static void check_chardev_spec(struct ctx *c, const char *v)
{
    static const char *const plain[] = {"none",    "null",     "stdio",   "pty",
                                        "msmouse", "wctablet", "testdev", "con:"};
    static const char *const network[] = {"tcp:", "telnet:", "tn3270:", "websocket:", "udp:"};
    struct opts o = {0};

    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        if (strcmp(v, plain[i]) == 0)
            return;
    for (size_t i = 0; i < sizeof(network) / sizeof(network[0]); i++)
        if (strncmp(v, network[i], strlen(network[i])) == 0)
            return allowance(c, "a network socket: whoever reaches it drives the device (a "
                                "monitor there runs programs)");
    if (strncmp(v, "mon:", 4) == 0)
        return check_chardev_spec(c, v + 4);
    if (strncmp(v, "vc", 2) == 0 || strncmp(v, "chardev:", 8) == 0)
        return;
    if (strncmp(v, "file:", 5) == 0)
        return path(c, QEMUOPTS_WRITES, v + 5, "file:");
    if (strncmp(v, "pipe:", 5) == 0)
        return path(c, QEMUOPTS_READS_WRITES, v + 5, "pipe:");
    if (strncmp(v, "/dev/", 5) == 0 || strncmp(v, "COM", 3) == 0)
        return path(c, QEMUOPTS_READS_WRITES, v, "device");
    if (strncmp(v, "unix:", 5) != 0)
        return allowance(c, "chardev '%.40s' is not on the allowlist", v);
    /* unix:PATH,server=on: a socket backend, then QemuOpts with "path" implied (which may
     * still change the backend: the last backend= wins). */
    if ((c->rc = opts_add(&o, strdup("backend"), strdup("socket"))) ||
        (c->rc = parse_qemuopts(v + 5, "path", &o)))
        opts_free(&o);
    else
        check_family_opts(c, &f_chardev, &o);
}

/* ---- the option table ---- */

enum how {
    OK,        /* harmless whatever its value */
    NEEDS,     /* needs an allowance: WHY */
    FAMILY,    /* the family FAM */
    KEYED,     /* keyed[] by name */
    DEVICE,    /* -device */
    GLOBAL,    /* -global */
    CHARDEV,   /* a chardev shorthand */
    PATH_R,    /* the value is a host path */
    PATH_W,    /* ... that QEMU creates or truncates */
    PATH_DIR,  /* ... a directory */
    IMAGE,     /* ... a disk image, read and written */
    IMAGE_R,   /* ... a CD-ROM image */
    USBDEVICE, /* tablet, mouse or keyboard */
};

struct rule {
    const char *name;
    int has_arg;
    enum how how;
    const struct family *fam; /* FAMILY */
    const char *why;          /* NEEDS */
};

#define PROGRAM_WHY "starts a program or loads code into QEMU"
#define HIDES_WHY   "can hold or change any option: it cannot be checked"
#define NET_WHY     "serves the VM's console or debugger on the network"
#define HOST_WHY    "reaches host devices, users or processes beyond the VM's files"

/* QEMU 7.2's options (qemu-options.hx) with whether they take a value. */
static const struct rule rules[] = {
    {"help", 0, OK, NULL, NULL},
    {"version", 0, OK, NULL, NULL},
    {"machine", 1, FAMILY, &f_machine, NULL},
    {"M", 1, FAMILY, &f_machine, NULL},
    {"cpu", 1, OK, NULL, NULL},
    {"accel", 1, OK, NULL, NULL},
    {"smp", 1, OK, NULL, NULL},
    {"numa", 1, OK, NULL, NULL},
    {"add-fd", 1, NEEDS, NULL, "hands QEMU file descriptors it inherits"},
    {"set", 1, NEEDS, NULL, HIDES_WHY},
    {"global", 1, GLOBAL, NULL, NULL},
    {"boot", 1, KEYED, NULL, NULL},
    {"m", 1, OK, NULL, NULL},
    {"mem-path", 1, PATH_DIR, NULL, NULL},
    {"mem-prealloc", 0, OK, NULL, NULL},
    {"k", 1, OK, NULL, NULL},
    {"audio-help", 0, OK, NULL, NULL},
    {"audio", 1, FAMILY, &f_audio, NULL},
    {"audiodev", 1, FAMILY, &f_audiodev, NULL},
    {"device", 1, DEVICE, NULL, NULL},
    {"name", 1, OK, NULL, NULL},
    {"uuid", 1, OK, NULL, NULL},
    {"fda", 1, IMAGE, NULL, NULL},
    {"fdb", 1, IMAGE, NULL, NULL},
    {"hda", 1, IMAGE, NULL, NULL},
    {"hdb", 1, IMAGE, NULL, NULL},
    {"hdc", 1, IMAGE, NULL, NULL},
    {"hdd", 1, IMAGE, NULL, NULL},
    {"cdrom", 1, IMAGE_R, NULL, NULL},
    {"blockdev", 1, FAMILY, &f_blockdev, NULL},
    {"drive", 1, KEYED, NULL, NULL},
    {"mtdblock", 1, IMAGE, NULL, NULL},
    {"sd", 1, IMAGE, NULL, NULL},
    {"snapshot", 0, OK, NULL, NULL},
    {"fsdev", 1, FAMILY, &f_fsdev, NULL},
    {"virtfs", 1, FAMILY, &f_fsdev, NULL},
    {"iscsi", 1, NEEDS, NULL, "configures iSCSI connections to other hosts"},
    {"usb", 0, OK, NULL, NULL},
    {"usbdevice", 1, USBDEVICE, NULL, NULL},
    {"display", 1, FAMILY, &f_display, NULL},
    {"nographic", 0, OK, NULL, NULL},
    {"spice", 1, NEEDS, NULL, NET_WHY},
    {"portrait", 0, OK, NULL, NULL},
    {"rotate", 1, OK, NULL, NULL},
    {"vga", 1, OK, NULL, NULL},
    {"full-screen", 0, OK, NULL, NULL},
    {"g", 1, OK, NULL, NULL},
    {"vnc", 1, NEEDS, NULL, NET_WHY},
    {"win2k-hack", 0, OK, NULL, NULL},
    {"no-fd-bootchk", 0, OK, NULL, NULL},
    {"no-acpi", 0, OK, NULL, NULL},
    {"no-hpet", 0, OK, NULL, NULL},
    {"acpitable", 1, KEYED, NULL, NULL},
    {"smbios", 1, KEYED, NULL, NULL},
    {"netdev", 1, FAMILY, &f_netdev, NULL},
    {"nic", 1, FAMILY, &f_nic, NULL},
    {"net", 1, FAMILY, &f_net, NULL},
    {"chardev", 1, FAMILY, &f_chardev, NULL},
    {"tpmdev", 1, NEEDS, NULL, HOST_WHY},
    {"bios", 1, PATH_R, NULL, NULL},
    {"pflash", 1, IMAGE, NULL, NULL},
    {"kernel", 1, PATH_R, NULL, NULL},
    {"append", 1, OK, NULL, NULL},
    {"initrd", 1, PATH_R, NULL, NULL},
    {"dtb", 1, PATH_R, NULL, NULL},
    {"compat", 1, OK, NULL, NULL},
    {"fw_cfg", 1, KEYED, NULL, NULL},
    {"serial", 1, CHARDEV, NULL, NULL},
    {"parallel", 1, CHARDEV, NULL, NULL},
    {"monitor", 1, CHARDEV, NULL, NULL},
    {"qmp", 1, CHARDEV, NULL, NULL},
    {"qmp-pretty", 1, CHARDEV, NULL, NULL},
    {"mon", 1, KEYED, NULL, NULL},
    {"debugcon", 1, CHARDEV, NULL, NULL},
    {"pidfile", 1, PATH_W, NULL, NULL},
    {"singlestep", 0, OK, NULL, NULL},
    {"preconfig", 0, NEEDS, NULL, "waits for monitor commands before the machine is made"},
    {"S", 0, OK, NULL, NULL},
    {"overcommit", 1, OK, NULL, NULL},
    {"gdb", 1, CHARDEV, NULL, NULL},
    {"s", 0, NEEDS, NULL, NET_WHY},
    {"d", 1, OK, NULL, NULL},
    {"D", 1, PATH_W, NULL, NULL},
    {"dfilter", 1, OK, NULL, NULL},
    {"seed", 1, OK, NULL, NULL},
    {"L", 1, PATH_DIR, NULL, NULL},
    {"enable-kvm", 0, OK, NULL, NULL},
    {"xen-domid", 1, NEEDS, NULL, HOST_WHY},
    {"xen-attach", 0, NEEDS, NULL, HOST_WHY},
    {"xen-domid-restrict", 0, NEEDS, NULL, HOST_WHY},
    {"no-reboot", 0, OK, NULL, NULL},
    {"no-shutdown", 0, OK, NULL, NULL},
    {"action", 1, OK, NULL, NULL},
    {"loadvm", 1, OK, NULL, NULL},
    {"daemonize", 0, OK, NULL, NULL}, /* savefs's to set: qemuopts_find_reserved */
    {"option-rom", 1, KEYED, NULL, NULL},
    {"rtc", 1, OK, NULL, NULL},
    {"icount", 1, KEYED, NULL, NULL},
    {"watchdog-action", 1, OK, NULL, NULL},
    {"echr", 1, OK, NULL, NULL},
    {"incoming", 1, OK, NULL, NULL}, /* savefs's to set: qemuopts_find_reserved */
    {"only-migratable", 0, OK, NULL, NULL},
    {"nodefaults", 0, OK, NULL, NULL},
    {"chroot", 1, NEEDS, NULL, "changes the root that every later path is read from"},
    {"runas", 1, NEEDS, NULL, "runs QEMU as another user, with that user's files"},
    {"prom-env", 1, OK, NULL, NULL},
    {"semihosting", 0, NEEDS, NULL, "gives the guest the host's files"},
    {"semihosting-config", 1, NEEDS, NULL, "gives the guest the host's files"},
    {"old-param", 0, OK, NULL, NULL},
    {"sandbox", 1, OK, NULL, NULL},
    {"readconfig", 1, NEEDS, NULL, HIDES_WHY},
    {"no-user-config", 0, OK, NULL, NULL},
    {"trace", 1, KEYED, NULL, NULL},
    {"plugin", 1, NEEDS, NULL, PROGRAM_WHY},
    {"qtest", 1, NEEDS, NULL, "hands the machine to a test protocol"},
    {"qtest-log", 1, PATH_W, NULL, NULL},
    {"async-teardown", 0, NEEDS, NULL, "starts a process that outlives QEMU"},
    {"msg", 1, OK, NULL, NULL},
    {"dump-vmstate", 1, PATH_W, NULL, NULL},
    {"enable-sync-profile", 0, OK, NULL, NULL},
    {"object", 1, FAMILY, &f_object, NULL},
};

/* The rule of option ARG, or NULL if ARG is not an option QEMU 7.2 knows ("--x" is "-x"). */
static const struct rule *rule_of(const char *arg)
{
    const char *name = arg + 1 + (arg[1] == '-');

    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
        if (strcmp(rules[i].name, name) == 0)
            return &rules[i];
    return NULL;
}

static void check_usbdevice(struct ctx *c, const char *v)
{
    if (strcmp(v, "tablet") != 0 && strcmp(v, "mouse") != 0 && strcmp(v, "keyboard") != 0)
        allowance(c, "usbdevice '%.40s' is not on the allowlist", v);
}

static void check_value(struct ctx *c, const struct rule *r, const char *v)
{
    const struct backend *k;

    switch (r->how) {
    case OK:
        break;
    case NEEDS:
        allowance(c, "%s", r->why);
        break;
    case FAMILY:
        check_family(c, r->fam, v);
        break;
    case KEYED:
        for (k = keyed; strcmp(k->type, r->name) != 0; k++)
            ;
        check_keyed(c, k, v);
        break;
    case DEVICE:
        check_device(c, v);
        break;
    case GLOBAL:
        check_global(c, v);
        break;
    case CHARDEV:
        check_chardev_spec(c, v);
        break;
    case PATH_R:
    case PATH_W:
    case PATH_DIR:
        path(c,
             r->how == PATH_R   ? QEMUOPTS_READS
             : r->how == PATH_W ? QEMUOPTS_WRITES
                                : QEMUOPTS_DIRECTORY,
             v, "");
        break;
    case IMAGE:
    case IMAGE_R:
        image(c, v, r->how == IMAGE ? QEMUOPTS_READS_WRITES : QEMUOPTS_READS, "");
        break;
    case USBDEVICE:
        check_usbdevice(c, v);
        break;
    }
}

int qemuopts_check(char *const *argv, int argc, struct qemuopts_report *r)
{
    struct ctx c = {.r = r};

    memset(r, 0, sizeof(*r));
    for (int i = 1; i < argc && !c.rc; i++) {
        const struct rule *rule = argv[i][0] == '-' ? rule_of(argv[i]) : NULL;

        c.opt = i;
        if (argv[i][0] != '-') {
            image(&c, argv[i], QEMUOPTS_READS_WRITES, "a disk image"); /* QEMU's -hda */
        } else if (!rule) {
            /* Its arity is unknown: the element after it is checked as an option too. */
            allowance(&c, "not an option QEMU 7.2 knows");
        } else if (rule->has_arg && i + 1 >= argc) {
            allowance(&c, "its value is missing");
        } else {
            check_value(&c, rule, rule->has_arg ? argv[i + 1] : "");
            i += rule->has_arg;
        }
    }
    if (c.rc)
        qemuopts_report_free(r);
    return c.rc;
}

void qemuopts_report_free(struct qemuopts_report *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->f[i].path);
    free(r->f);
    memset(r, 0, sizeof(*r));
}

const char *qemuopts_access_name(enum qemuopts_access a)
{
    static const char *const names[] = {"reads", "writes", "reads and writes", "socket",
                                        "directory"};

    return names[a];
}

char *qemuopts_quote(const char *s)
{
    char *out = malloc(4 * strlen(s) + 3), *o = out;

    if (!out)
        return NULL;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *esc = *p == '\\'   ? "\\\\"
                          : *p == '"'  ? "\\\""
                          : *p == '\n' ? "\\n"
                          : *p == '\r' ? "\\r"
                          : *p == '\t' ? "\\t"
                                       : NULL;
        if (esc)
            o += sprintf(o, "%s", esc);
        else if (*p < 0x20 || *p >= 0x7f)
            o += sprintf(o, "\\x%02x", *p);
        else
            *o++ = (char)*p;
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

/* ---- reserved options and path maps ---- */

int qemuopts_is_opt(const char *arg, const char *name)
{
    return arg[0] == '-' && arg[1] && strcmp(arg + 1 + (arg[1] == '-'), name) == 0;
}

/* The options savefs sets itself on a restore ("-S -incoming defer", QEMU in the foreground of
 * its own session): the one list of them. A saved command line drops them all; a local
 * definition may not set those that would defeat the restore (-S is harmless: savefs adds it). */
static const struct {
    const char *name;
    int has_value, refused;
} reserved[] = {
    {"incoming", 1, 1},
    {"daemonize", 0, 1},
    {"S", 0, 0},
};

int qemuopts_reserved(const char *arg, int *has_value, int *refused)
{
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (qemuopts_is_opt(arg, reserved[i].name)) {
            *has_value = reserved[i].has_value;
            *refused = reserved[i].refused;
            return 1;
        }
    return 0;
}

int qemuopts_find_reserved(char *const *argv, int argc)
{
    int has_value, refused;

    for (int i = 0; i < argc; i++)
        if (qemuopts_reserved(argv[i], &has_value, &refused) && refused)
            return i;
    return -1;
}

/* The length of the longest FROM of MAP that P starts with (as a whole path prefix), and its
 * index in *WHICH; 0 if none. */
static size_t map_match(const char *p, const struct path_map *map, int *which)
{
    size_t best = 0;

    for (int i = 0; i < map->n; i++) {
        size_t len = strlen(map->from[i]);
        char after;

        if (len <= best || strncmp(p, map->from[i], len) != 0)
            continue;
        after = p[len]; /* P is at least LEN long: it starts with FROM */
        if (after == '/' || after == '\0' || after == ',' || map->from[i][len - 1] == '/') {
            best = len;
            *which = i;
        }
    }
    return best;
}

int qemuopts_map_arg(const char *arg, const struct path_map *map, char **out)
{
    size_t alen = strlen(arg), cap = alen + 1, n = 0; /* strlen once: args run to 64 KiB */
    char *s = malloc(cap);

    if (!s)
        return -ENOMEM;
    for (size_t i = 0; arg[i];) {
        int which = -1;
        int boundary = i == 0 || strchr("=:,", arg[i - 1]);
        size_t len = boundary && arg[i] == '/' ? map_match(arg + i, map, &which) : 0;
        const char *add = len ? map->to[which] : arg + i;
        size_t addlen = len ? strlen(add) : 1;

        if (n + addlen + (alen - i) + 1 > cap) {
            char *grown = realloc(s, cap = n + addlen + (alen - i) + 1);
            if (!grown) {
                free(s);
                return -ENOMEM;
            }
            s = grown;
        }
        memcpy(s + n, add, addlen);
        n += addlen;
        i += len ? len : 1;
    }
    s[n] = '\0';
    *out = s;
    return 0;
}

static int check_map_path(const char *p, char *err, size_t errlen)
{
    if (p[0] != '/' || strchr(p, ',') || strstr(p, "/../") ||
        (strlen(p) >= 3 && strcmp(p + strlen(p) - 3, "/..") == 0)) {
        snprintf(err, errlen, "path map entry '%s' must be an absolute path without ',' or '..'",
                 p);
        return -EINVAL;
    }
    return 0;
}

int qemuopts_check_map(const struct path_map *map, char *err, size_t errlen)
{
    int rc = 0;

    for (int i = 0; !rc && i < map->n; i++)
        if (!(rc = check_map_path(map->from[i], err, errlen)))
            rc = check_map_path(map->to[i], err, errlen);
    return rc;
}

void qemuopts_map_free(struct path_map *map)
{
    for (int i = 0; i < map->n; i++) {
        free(map->from[i]);
        free(map->to[i]);
    }
    free(map->from);
    free(map->to);
    memset(map, 0, sizeof(*map));
}
