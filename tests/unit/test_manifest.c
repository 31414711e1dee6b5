/* test_manifest: manifest.json written and read back, and a table of damaged or hostile
 * manifests, each refused with a reason; the disks a manifest records, compared with the files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "check.h"
#include "disks.h"
#include "manifest.h"
#include "store.h"

static char dir[] = "/tmp/test_manifest.XXXXXX";

static void sample(struct manifest *m, char **argv)
{
    memset(m, 0, sizeof(*m));
    m->version = MANIFEST_VERSION;
    strcpy(m->vm, "vm1");
    strcpy(m->snapshot, "20261126-134501");
    strcpy(m->created, "2026-11-26T13:45:01Z");
    strcpy(m->qemu_version, "7.2.22");
    strcpy(m->machine, "pc-i440fx-7.2");
    strcpy(m->uuid, "00000000-0000-0000-0000-000000000000");
    m->binary = "/usr/bin/qemu-system-x86_64";
    m->cwd = "/var/lib/vms";
    m->argv = argv;
    m->argc = 3;
    m->ram_size = 512ULL << 20;
    m->was_running = 1;
    m->channels = 2;
    strcpy(m->compression, "none");
    m->duration_s = 1.5;
    m->nfiles = 5;
    m->files[0] = (struct cp_file){"main",
                                   CP_MAIN,
                                   -1,
                                   1234,
                                   0x0123456789abcdefULL,
                                   0,
                                   0,
                                   0,
                                   {100, 200, 1000, 0x11, 0xfedcba9876543210ULL}};
    m->files[1] =
        (struct cp_file){"channel-0", CP_CHANNEL, 0, 1 << 20, 0xffffffffffffffffULL, 0, 0, 0, {0}};
    m->files[2] = (struct cp_file){"channel-1", CP_CHANNEL, 1, 0, 0, 0, 0, 0, {0}};
    m->files[3] = (struct cp_file){"channel-0.idx", CP_INDEX, 0, 64, 42, 0, 0, 0, {0}};
    m->files[4] = (struct cp_file){"channel-1.idx", CP_INDEX, 1, 64, 43, 0, 0, 0, {0}};
}

static void test_roundtrip(void)
{
    char *argv[] = {"qemu-system-x86_64", "-m", "512", NULL};
    char path[256], err[512] = "";
    struct manifest m, r;
    int rc;

    sample(&m, argv);
    snprintf(path, sizeof(path), "%s/roundtrip.json", dir);
    rc = manifest_write(path, &m, err, sizeof(err));
    CHECK(rc == 0, "write: %s", err);
    CHECK(manifest_write(path, &m, err, sizeof(err)) == -EEXIST, "overwrote an existing file");
    rc = manifest_read(path, &r, err, sizeof(err));
    CHECK(rc == 0, "read: %s", err);
    if (rc)
        return;
    CHECK(strcmp(r.vm, "vm1") == 0 && strcmp(r.snapshot, m.snapshot) == 0, "names");
    CHECK(r.argc == 3 && strcmp(r.argv[2], "512") == 0 && r.argv[3] == NULL, "argv");
    CHECK(strcmp(r.binary, m.binary) == 0 && strcmp(r.cwd, m.cwd) == 0, "binary, cwd");
    CHECK(r.ram_size == m.ram_size && r.was_running == 1 && r.channels == 2, "numbers");
    CHECK(r.nfiles == 5, "nfiles %d", r.nfiles);
    for (int i = 0; i < r.nfiles && i < 5; i++)
        CHECK(memcmp(&r.files[i], &m.files[i], sizeof(r.files[i])) == 0, "file %d differs", i);
    CHECK(manifest_find(&r, CP_CHANNEL, 1) == &r.files[2], "find channel 1");
    CHECK(manifest_find(&r, CP_MAIN, -1) == &r.files[0], "find main");
    manifest_free(&r);
}

struct bad_case {
    const char *what;
    const char *from; /* replaced in the good manifest text ... */
    const char *to;   /* ... by this */
    int rc;
};

static const struct bad_case bad[] = {
    {"other format version", "\"version\": 1", "\"version\": 2", -EPROTONOSUPPORT},
    {"not savefs", "savefs-snapshot", "other", -EINVAL},
    {"channel out of range", "\"channel\": 1,", "\"channel\": 7,", -EINVAL},
    {"path in a file name", "\"name\": \"channel-1\"", "\"name\": \"../../etc/passwd\"", -EINVAL},
    {"file listed twice",
     "\"name\": \"channel-1\",\n      \"role\": \"channel\",\n      \"channel\": 1",
     "\"name\": \"channel-0\",\n      \"role\": \"channel\",\n      \"channel\": 0", -EINVAL},
    {"unknown role", "\"role\": \"index\"", "\"role\": \"exec\"", -EINVAL},
    {"negative size", "\"size\": 1234", "\"size\": -1", -EINVAL},
    {"bad checksum", "0123456789abcdef", "0123456789abcdeg", -EINVAL},
    {"short checksum", "0123456789abcdef", "01234", -EINVAL},
    {"relative binary", "\"/usr/bin/qemu-system-x86_64\"", "\"qemu\"", -EINVAL},
    {"relative cwd", "\"/var/lib/vms\"", "\"vms\"", -EINVAL},
    {"argv not strings", "\"-m\"", "7", -EINVAL},
    {"no channels", "\"channels\": 2", "\"channels\": 0", -EINVAL},
    {"too many channels", "\"channels\": 2", "\"channels\": 65", -EINVAL},
    {"bad vm name", "\"vm\": \"vm1\"", "\"vm\": \"../x\"", -EINVAL},
    {"ram size a string", "\"ram_size\": 536870912", "\"ram_size\": \"big\"", -EINVAL},
    {"unknown compression", "\"compression\": \"none\"", "\"compression\": \"lz4\"", -EINVAL},
    {"duplicate key", "\"channels\": 2", "\"channels\": 2, \"channels\": 2", -EINVAL},
    {"truncated", "\"files\"", "", -EINVAL},
    {"layout without a head", "\"head\": 100", "\"head\": 0", -EINVAL},
    {"layout's devices before its head", "\"devices\": 200", "\"devices\": 50", -EINVAL},
    {"layout's eof past the file", "\"eof\": 1000", "\"eof\": 1234", -EINVAL},
    {"layout's sum not hex", "fedcba9876543210", "fedcba987654321x", -EINVAL},
    {"layout not an object", "\"layout\": {", "\"layout\": 7, \"x\": {", -EINVAL},
};

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = calloc(1, 1 << 16);

    if (f && text)
        fread(text, 1, (1 << 16) - 1, f);
    if (f)
        fclose(f);
    return text;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* TEXT with the first FROM replaced by TO; truncated there when TO is empty. */
static char *replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    char *out = calloc(1, strlen(text) + strlen(to) + 1);

    if (!at || !out) {
        free(out);
        return NULL;
    }
    memcpy(out, text, (size_t)(at - text));
    if (to[0])
        sprintf(out + (at - text), "%s%s", to, at + strlen(from));
    return out;
}

static void test_bad(void)
{
    char good[256], path[256], err[512];
    char *text;
    struct manifest m;

    snprintf(good, sizeof(good), "%s/roundtrip.json", dir);
    snprintf(path, sizeof(path), "%s/bad.json", dir);
    text = read_all(good);
    for (size_t i = 0; text && i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *mutated = replace(text, bad[i].from, bad[i].to);
        int rc;

        CHECK(mutated, "%s: '%s' not in the manifest", bad[i].what, bad[i].from);
        if (!mutated)
            continue;
        write_text(path, mutated);
        err[0] = '\0';
        rc = manifest_read(path, &m, err, sizeof(err));
        CHECK(rc == bad[i].rc, "%s: rc %d, want %d (%s)", bad[i].what, rc, bad[i].rc, err);
        CHECK(strstr(err, path) != NULL, "%s: the reason does not name the file: %s", bad[i].what,
              err);
        if (rc == 0)
            manifest_free(&m);
        free(mutated);
    }
    free(text);
    write_text(path, "\x01\x02garbage");
    CHECK(manifest_read(path, &m, err, sizeof(err)) == -EINVAL, "garbage accepted");
    unlink(path);
    CHECK(manifest_read(path, &m, err, sizeof(err)) == -ENOENT, "absent manifest: not ENOENT");
}

/* compression "zstd": main and channels carry the stream's size and checksum, indexes do not,
 * and anything else is refused. */
static void test_zstd(void)
{
    char *argv[] = {"qemu-system-x86_64", "-m", "512", NULL};
    static const struct {
        const char *what, *from, *to;
    } bad[] = {
        {"level 0", "\"compression_level\": 7", "\"compression_level\": 0"},
        {"level 20", "\"compression_level\": 7", "\"compression_level\": 20"},
        {"none with a level", "\"compression\": \"zstd\"", "\"compression\": \"none\""},
        {"a channel without its stream", "\"stream_size\": 3000,", ""},
        {"a stream size alone", "\"stream_xxh3\": \"00000000000000aa\"", "\"x\": 1"},
        {"bad stream checksum", "00000000000000aa", "0000000000000aag"},
        {"negative stream size", "\"stream_size\": 3000", "\"stream_size\": -3"},
    };
    char path[256], err[512] = "";
    struct manifest m, r;
    int rc;

    sample(&m, argv);
    strcpy(m.compression, "zstd");
    m.compression_level = 7;
    for (int i = 0; i < 3; i++)
        m.files[i] = (struct cp_file){"", m.files[i].kind, m.files[i].channel, 100 + i, 7,
                                      1,  3000 + i,        0xaa + i,           {0}};
    strcpy(m.files[0].name, "main");
    strcpy(m.files[1].name, "channel-0");
    strcpy(m.files[2].name, "channel-1");
    snprintf(path, sizeof(path), "%s/zstd.json", dir);
    rc = manifest_write(path, &m, err, sizeof(err));
    CHECK(rc == 0, "write zstd: %s", err);
    rc = manifest_read(path, &r, err, sizeof(err));
    CHECK(rc == 0, "read zstd: %s", err);
    if (rc)
        return;
    CHECK(strcmp(r.compression, "zstd") == 0 && r.compression_level == 7, "zstd:7 read back");
    for (int i = 0; i < r.nfiles && i < 5; i++)
        CHECK(memcmp(&r.files[i], &m.files[i], sizeof(r.files[i])) == 0, "zstd file %d differs", i);
    manifest_free(&r);

    char *text = read_all(path), bad_path[300];
    snprintf(bad_path, sizeof(bad_path), "%s/zstd-bad.json", dir);
    for (size_t i = 0; text && i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *mutated = replace(text, bad[i].from, bad[i].to);

        CHECK(mutated, "%s: '%s' not in the manifest", bad[i].what, bad[i].from);
        if (!mutated)
            continue;
        write_text(bad_path, mutated);
        rc = manifest_read(bad_path, &r, err, sizeof(err));
        CHECK(rc == -EINVAL, "%s: rc %d (%s)", bad[i].what, rc, err);
        if (rc == 0)
            manifest_free(&r);
        free(mutated);
    }
    free(text);
    /* An index that claims a stream, and a plain snapshot whose channel does. */
    m.files[3].zstd = 1;
    CHECK(manifest_write(bad_path, &m, err, sizeof(err)) == -EINVAL, "zstd index written");
    sample(&m, argv);
    m.files[1].zstd = 1;
    CHECK(manifest_write(bad_path, &m, err, sizeof(err)) == -EINVAL, "zstd file in a plain one");
}

/* Disks and keep_running go through a write and a read, into the signed text; a manifest of an
 * older savefs has neither, and its signed text stays as it was. */
static void test_disks_roundtrip(void)
{
    char *argv[] = {"qemu-system-x86_64", "-m", "512", NULL};
    char path[256], err[512] = "", *canonical = NULL;
    struct manifest m, r;
    int rc;

    sample(&m, argv);
    m.disks_recorded = 1;
    m.keep_running = 1;
    m.ndisks = 2;
    m.disks[0] = (struct manifest_disk){.path = "/vm/a,b.raw",
                                        .format = "raw",
                                        .size = 1 << 30,
                                        .mtime_ns = 1764160000123456789LL,
                                        .inode = 42,
                                        .fingerprint = "xxh3:0123456789abcdef"};
    m.disks[1] = (struct manifest_disk){.path = "/vm/c.qcow2",
                                        .format = "qcow2",
                                        .mtime_ns = -5,
                                        .fingerprint = "xxh3:0",
                                        .device = "virtio1",
                                        .method = "reflink",
                                        .nlayers = 2};
    m.disks[1].layers[0] =
        (struct manifest_layer){"disks/1.0.qcow2", "qcow2", 196608, 0xfedcba9876543210ULL};
    m.disks[1].layers[1] = (struct manifest_layer){"disks/1.1.raw", "raw", 67108864, 7};
    m.checkpoint = 1;
    snprintf(m.checkpoint_at, sizeof(m.checkpoint_at), "2026-12-02T18:00:01.234Z");
    m.checkpoint_pause_ms = 12.5;
    snprintf(path, sizeof(path), "%s/disks.json", dir);
    rc = manifest_write(path, &m, err, sizeof(err));
    CHECK(rc == 0, "write: %s", err);
    rc = manifest_read(path, &r, err, sizeof(err));
    CHECK(rc == 0, "read: %s", err);
    if (rc)
        return;
    CHECK(r.disks_recorded && r.keep_running && r.ndisks == 2, "disks read back: %d", r.ndisks);
    for (int i = 0; i < r.ndisks && i < 2; i++)
        CHECK(strcmp(r.disks[i].path, m.disks[i].path) == 0 &&
                  strcmp(r.disks[i].format, m.disks[i].format) == 0 &&
                  r.disks[i].size == m.disks[i].size &&
                  r.disks[i].mtime_ns == m.disks[i].mtime_ns &&
                  r.disks[i].inode == m.disks[i].inode &&
                  strcmp(r.disks[i].fingerprint, m.disks[i].fingerprint) == 0,
              "disk %d differs", i);
    CHECK(r.disks[0].nlayers == 0 && r.disks[1].nlayers == 2 &&
              strcmp(r.disks[1].device, "virtio1") == 0 &&
              strcmp(r.disks[1].method, "reflink") == 0,
          "captured disk read back: %d layers", r.disks[1].nlayers);
    for (int l = 0; l < r.disks[1].nlayers && l < 2; l++)
        CHECK(strcmp(r.disks[1].layers[l].file, m.disks[1].layers[l].file) == 0 &&
                  strcmp(r.disks[1].layers[l].format, m.disks[1].layers[l].format) == 0 &&
                  r.disks[1].layers[l].size == m.disks[1].layers[l].size &&
                  r.disks[1].layers[l].xxh3 == m.disks[1].layers[l].xxh3,
              "layer %d differs", l);
    CHECK(r.checkpoint && strcmp(r.checkpoint_at, m.checkpoint_at) == 0 &&
              r.checkpoint_pause_ms == 12.5,
          "checkpoint read back: %d %s %f", r.checkpoint, r.checkpoint_at, r.checkpoint_pause_ms);
    CHECK(manifest_canonical(&m, &canonical) == 0 && strcmp(canonical, r.canonical) == 0,
          "what is signed differs from what is read:\n %s\n %s", canonical, r.canonical);
    CHECK(strstr(r.canonical, "\"keep_running\":true") && strstr(r.canonical, "a,b.raw"),
          "the signed text lacks the disks: %s", r.canonical);
    free(canonical);
    manifest_free(&r);

    snprintf(path, sizeof(path), "%s/roundtrip.json", dir);
    rc = manifest_read(path, &r, err, sizeof(err));
    CHECK(rc == 0 && !r.disks_recorded && r.ndisks == 0 && !strstr(r.canonical, "disks") &&
              !strstr(r.canonical, "keep_running") && !r.checkpoint &&
              !strstr(r.canonical, "checkpoint"),
          "an older manifest: %s", err);
    if (!rc)
        manifest_free(&r);
}

static const struct bad_case bad_disks[] = {
    {"relative disk", "\"/vm/c.qcow2\"", "\"c.qcow2\"", -EINVAL},
    {"disks without keep_running", "\"keep_running\": true", "\"x\": true", -EINVAL},
    {"keep_running not a boolean", "\"keep_running\": true", "\"keep_running\": 1", -EINVAL},
    {"negative disk size", "\"size\": 1073741824", "\"size\": -1", -EINVAL},
    {"disk without fingerprint", "\"fingerprint\": \"xxh3:0\"", "\"f\": \"\"", -EINVAL},
    {"captured image outside disks/", "\"disks/1.1.raw\"", "\"disks/../1.1.raw\"", -EINVAL},
    {"captured image by absolute path", "\"disks/1.1.raw\"", "\"/etc/passwd\"", -EINVAL},
    {"captured image hidden", "\"disks/1.1.raw\"", "\"disks/.x\"", -EINVAL},
    {"captured image of a vmdk", "\"disks/1.1.raw\",\n            \"format\": \"raw\"",
     "\"disks/1.1.raw\",\n            \"format\": \"vmdk\"", -EINVAL},
    {"captured by an unknown method", "\"reflink\"", "\"copy\"", -EINVAL},
    {"captured checksum not hex", "\"fedcba9876543210\"", "\"fedcba987654321x\"", -EINVAL},
    {"captured without layers", "\"method\"", "\"layers\": [], \"m\"", -EINVAL},
    {"checkpoint of another instant", "\"completion\"", "\"start\"", -EINVAL},
    {"checkpoint pause negative", "\"pause_ms\": 12.5", "\"pause_ms\": -1.0", -EINVAL},
    {"checkpoint without a time", "\"at\":", "\"when\":", -EINVAL},
};

static void test_disks_bad(void)
{
    char good[256], path[256], err[512];
    char *text;
    struct manifest m;

    snprintf(good, sizeof(good), "%s/disks.json", dir);
    snprintf(path, sizeof(path), "%s/disks-bad.json", dir);
    text = read_all(good);
    for (size_t i = 0; text && i < sizeof(bad_disks) / sizeof(bad_disks[0]); i++) {
        char *mutated = replace(text, bad_disks[i].from, bad_disks[i].to);
        int rc;

        CHECK(mutated, "%s: '%s' not in the manifest", bad_disks[i].what, bad_disks[i].from);
        if (!mutated)
            continue;
        write_text(path, mutated);
        rc = manifest_read(path, &m, err, sizeof(err));
        CHECK(rc == bad_disks[i].rc, "%s: rc %d (%s)", bad_disks[i].what, rc, err);
        if (rc == 0)
            manifest_free(&m);
        free(mutated);
    }
    free(text);
}

static void put(const char *path, off_t off, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT, 0600);

    CHECK(fd >= 0 && pwrite(fd, buf, len, off) == (ssize_t)len, "write %s", path);
    if (fd >= 0)
        close(fd);
}

static void fingerprint(const char *path, char *out)
{
    int fd = open(path, O_RDONLY);

    CHECK(fd >= 0 && disks_fingerprint(fd, out, 24) == 0, "fingerprint %s", path);
    if (fd >= 0)
        close(fd);
}

/* A disk recorded as it is compares equal; a write (mtime), a rewrite that kept mtime (the
 * fingerprint) and a qcow2 that allocated a cluster (its L1 table) do not; a copy with the same
 * content and times (another inode) does. */
static void test_disks_compare(void)
{
    static const unsigned char qcow2[48] = {'Q', 'F', 'I', 0xfb, [39] = 1, [45] = 0x10};
    char path[256], copy[300], why[512] = "", fp[24], fp2[24];
    struct manifest m = {.disks_recorded = 1, .ndisks = 1};
    struct stat st;

    snprintf(path, sizeof(path), "%s/disk.qcow2", dir);
    snprintf(copy, sizeof(copy), "%s.copy", path);
    put(path, 0, qcow2, sizeof(qcow2)); /* L1: 1 entry at 0x100000 */
    put(path, (64 << 20) - 1, "", 1);
    fingerprint(path, fp);
    CHECK(strncmp(fp, "xxh3:", 5) == 0 && strlen(fp) == 21, "fingerprint '%s'", fp);
    put(path, 0x100000, "\x80", 1);
    fingerprint(path, fp2);
    CHECK(strcmp(fp, fp2) != 0, "an L1 entry changed, the fingerprint did not");

    CHECK(stat(path, &st) == 0, "stat");
    m.disks[0] =
        (struct manifest_disk){.path = path,
                               .format = "qcow2",
                               .size = (uint64_t)st.st_size,
                               .mtime_ns = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
                               .inode = st.st_ino};
    strcpy(m.disks[0].fingerprint, fp2);
    CHECK(disks_compare(&m, why, sizeof(why)) == 0, "unchanged disk: %s", why);

    /* A copy with the same content and times: another inode, the same disk. */
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "cp -p %s %s && mv %s %s", path, copy, copy, path);
    CHECK(system(cmd) == 0, "%s", cmd);
    CHECK(stat(path, &st) == 0 && st.st_ino != m.disks[0].inode, "the copy kept the inode");
    CHECK(disks_compare(&m, why, sizeof(why)) == 0, "a copy with the same times: %s", why);

    put(path, 100, "x", 1); /* in the first 64 KiB: sampled */
    CHECK(disks_compare(&m, why, sizeof(why)) == -ESTALE && strstr(why, path) &&
              strstr(why, "modified"),
          "a write: %s", why);
    CHECK(utimensat(AT_FDCWD, path, (struct timespec[2]){st.st_atim, st.st_mtim}, 0) == 0,
          "utimensat");
    CHECK(disks_compare(&m, why, sizeof(why)) == -ESTALE && strstr(why, "content"),
          "a write with the mtime put back: %s", why);
    unlink(path);
    CHECK(disks_compare(&m, why, sizeof(why)) == -ESTALE && strstr(why, path), "gone: %s", why);
    /* A manifest from elsewhere may name a FIFO: refused at once, not waited on. */
    CHECK(mkfifo(path, 0600) == 0, "mkfifo");
    CHECK(disks_compare(&m, why, sizeof(why)) == -ESTALE && strstr(why, path), "a FIFO: %s", why);
    unlink(path);
}

/* The store's paths and the chunk files' names, each spelled in one place. */
static void test_layout(void)
{
    static const struct {
        const char *snap, *file, *want;
    } rel[] = {
        {NULL, NULL, "vm1/snapshots"},
        {"S", NULL, "vm1/snapshots/S"},
        {"S", "manifest.json", "vm1/snapshots/S/manifest.json"},
    };
    static const struct {
        enum cp_kind kind;
        int channel;
        const char *want;
    } names[] = {
        {CP_MAIN, -1, "main"}, {CP_CHANNEL, 3, "channel-3"}, {CP_INDEX, 12, "channel-12.idx"}};
    static const char *const not_names[] = {"channel-", "channel-x",     "channel-1.id",
                                            "main.idx", "manifest.json", "channel-1.idx.tmp"};
    char buf[PATH_MAX], small[8];

    for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
        CHECK(store_snapshot_rel(buf, sizeof(buf), "vm1", rel[i].snap, rel[i].file) == 0 &&
                  strcmp(buf, rel[i].want) == 0,
              "rel %s: %s", rel[i].want, buf);
        CHECK(store_snapshot_path(buf, "/st", "vm1", rel[i].snap, rel[i].file) == 0 &&
                  strncmp(buf, "/st/", 4) == 0 && strcmp(buf + 4, rel[i].want) == 0,
              "path %s: %s", rel[i].want, buf);
    }
    CHECK(store_snapshot_rel(small, sizeof(small), "vm1", "S", NULL) == -ENAMETOOLONG, "too long");
    CHECK(store_vm_path(buf, "/st", "vm1", NULL) == 0 && strcmp(buf, "/st/vm1") == 0, "%s", buf);
    CHECK(store_vm_path(buf, "/st", "vm1", STORE_TMP) == 0 && strcmp(buf, "/st/vm1/.tmp") == 0,
          "%s", buf);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        CHECK(cp_file_name(names[i].kind, names[i].channel, buf, CP_NAME_MAX) == 0 &&
                  strcmp(buf, names[i].want) == 0,
              "name %s: %s", names[i].want, buf);
        CHECK(cp_file_name_valid(names[i].want), "%s not valid", names[i].want);
    }
    for (size_t i = 0; i < sizeof(not_names) / sizeof(not_names[0]); i++)
        CHECK(!cp_file_name_valid(not_names[i]), "%s valid", not_names[i]);
}

/* A libvirt domain's XML goes along, is signed with the rest, and a bad one is refused. */
static void test_libvirt(void)
{
    char *argv[] = {"qemu-system-x86_64", "-m", "512", NULL};
    char path[256], err[512] = "", *canon = NULL, *text;
    struct manifest m, r;
    int rc;

    sample(&m, argv);
    m.libvirt_xml = "<domain type='qemu'><name>vm1</name>\n</domain>";
    snprintf(path, sizeof(path), "%s/libvirt.json", dir);
    rc = manifest_write(path, &m, err, sizeof(err));
    CHECK(rc == 0, "write: %s", err);
    rc = manifest_read(path, &r, err, sizeof(err));
    CHECK(rc == 0, "read: %s", err);
    CHECK(rc || (r.libvirt_xml && strcmp(r.libvirt_xml, m.libvirt_xml) == 0), "xml changed");
    CHECK(manifest_canonical(&m, &canon) == 0 && !rc && strcmp(canon, r.canonical) == 0 &&
              strstr(canon, "<name>vm1</name>"),
          "the XML is not in the signed text");
    free(canon);
    if (!rc)
        manifest_free(&r);
    text = read_all(path);
    for (int i = 0; text && i < 3; i++) {
        static const char *to[] = {"\"libvirt\": {\"xml\": 7}", "\"libvirt\": {\"xml\": \"\"}",
                                   "\"libvirt\": \"x\""};
        char *start = strstr(text, "\"libvirt\""), *end = start ? strchr(start, '}') : NULL;
        char *mutated = malloc(strlen(text) + 64);

        if (!start || !end || !mutated) {
            CHECK(0, "no libvirt member in %s", path);
            free(mutated);
            break;
        }
        sprintf(mutated, "%.*s%s%s", (int)(start - text), text, to[i], end + 1);
        write_text(path, mutated);
        rc = manifest_read(path, &r, err, sizeof(err));
        CHECK(rc == -EINVAL && strstr(err, "libvirt.xml"), "%s accepted: %d %s", to[i], rc, err);
        if (!rc)
            manifest_free(&r);
        free(mutated);
    }
    free(text);
}

int main(void)
{
    char cmd[300];

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_roundtrip();
    test_bad();
    test_zstd();
    test_disks_roundtrip();
    test_disks_bad();
    test_disks_compare();
    test_layout();
    test_libvirt();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        check_failures++;
    return check_result("test_manifest");
}
