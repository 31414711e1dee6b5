/* test_qemuargv: a restore's command line from a table of recorded ones: the machine type pinned
 * whichever way -machine was given, serial files appended to, a console on stdio moved to a
 * socket, savefs's own options at the end. And a command line's disk images swapped for others
 * (qemudisk.h): -drive file= (relative and absolute, escaped commas, with and without format=),
 * -blockdev with an inline file (QemuOpts and JSON), and a protocol node whose reader declared
 * after it gets the new driver; images not swapped stay as they were. And which RAM a lazy
 * restore must not map: a tmpfs file with data mapped privately (QemuOpts, JSON, -mem-path), or
 * any file on a file system userfaultfd cannot serve; not a shared tmpfs file, a directory, an
 * empty file or one that does not exist yet. And when a process has quit: a zombie has, a running
 * one has not. And binaries' versions: asked once each (several binaries remembered side by side),
 * asked ahead by the warm-up thread, asked again once a binary's file changed. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/magic.h>

#include "check.h"
#include "qemu.h"
#include "qemudisk.h"
#include "qemuopts.h"

#define TAIL " -qmp unix:/q/vm.qmp,server=on,wait=off -S -incoming defer"
#define CON  "-chardev socket,id=savefs-console,path=/r/vm.console,server=on,wait=off"

static const struct {
    const char *in, *machine, *want;
    int console;
} cases[] = {
    {"qemu -m 512", "pc-i440fx-7.2", "qemu -m 512 -machine pc-i440fx-7.2" TAIL, 0},
    {"qemu -machine pc", "pc-i440fx-7.2", "qemu -machine pc-i440fx-7.2" TAIL, 0},
    {"qemu -M q35,accel=tcg", "pc-q35-7.2", "qemu -M pc-q35-7.2,accel=tcg" TAIL, 0},
    {"qemu --machine type=pc,usb=off", "pc-i440fx-7.2",
     "qemu --machine type=pc-i440fx-7.2,usb=off" TAIL, 0},
    {"qemu -machine accel=tcg", "pc-i440fx-7.2",
     "qemu -machine accel=tcg -machine pc-i440fx-7.2" TAIL, 0},
    {"qemu -machine pc", "", "qemu -machine pc" TAIL, 0},
    {"qemu -serial file:/l/a,b.log -serial file:x", "",
     "qemu -chardev file,id=savefs-serial0,path=/l/a,,b.log,append=on -serial "
     "chardev:savefs-serial0"
     " -chardev file,id=savefs-serial1,path=x,append=on -serial chardev:savefs-serial1" TAIL,
     0},
    {"qemu -chardev file,id=c,path=/l", "", "qemu -chardev file,id=c,path=/l,append=on" TAIL, 0},
    {"qemu -chardev file,id=c,path=/l,append=off", "",
     "qemu -chardev file,id=c,path=/l,append=off" TAIL, 0},
    {"qemu -serial mon:stdio", "",
     "qemu " CON ",mux=on -serial chardev:savefs-console -mon "
     "chardev=savefs-console,mode=readline" TAIL,
     1},
    {"qemu -serial stdio -serial stdio", "",
     "qemu " CON " -serial chardev:savefs-console -serial stdio" TAIL, 1},
    {"qemu -nographic", "", "qemu -nographic " CON " -serial chardev:savefs-console" TAIL, 1},
    {"qemu -nographic -nodefaults", "", "qemu -nographic -nodefaults" TAIL, 0},
    {"qemu -nographic -serial file:/l", "",
     "qemu -nographic -chardev file,id=savefs-serial0,path=/l,append=on -serial "
     "chardev:savefs-serial0" TAIL,
     0},
};

static const struct {
    const char *in, *want;
    int matched; /* options that named one of the swapped images */
} swaps[] = {
    {"qemu -drive file=d.raw,format=raw,if=virtio",
     "qemu -drive file=/l/0.qcow2,format=qcow2,if=virtio", 1},
    {"qemu -drive if=virtio,file=/vm/d.raw", "qemu -drive if=virtio,file=/l/0.qcow2,format=qcow2",
     1},
    {"qemu -drive file=/vm/other.raw,format=raw -m 64",
     "qemu -drive file=/vm/other.raw,format=raw -m 64", 0},
    {"qemu -drive file=/vm/a,,b.raw,format=raw", "qemu -drive file=/l/x,,y.qcow2,format=qcow2", 1},
    {"qemu -blockdev driver=file,node-name=f1,filename=/vm/e.qcow2 -blockdev "
     "driver=qcow2,node-name=d1,file=f1 -device virtio-blk-pci,drive=d1",
     "qemu -blockdev driver=file,node-name=f1,filename=/l/1.qcow2 -blockdev "
     "driver=qcow2,node-name=d1,file=f1 -device virtio-blk-pci,drive=d1",
     1},
    {"qemu -blockdev driver=raw,node-name=d0,file.driver=file,file.filename=d.raw",
     "qemu -blockdev driver=qcow2,node-name=d0,file.driver=file,file.filename=/l/0.qcow2", 1},
    {"qemu -blockdev "
     "{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"/vm/d.raw\"}}",
     "qemu -blockdev "
     "{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"/l/0.qcow2\"}}",
     1},
    {"qemu -blockdev {\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"d.raw\"} -blockdev "
     "driver=raw,node-name=d,file=f -blockdev driver=raw,node-name=o,file=g",
     "qemu -blockdev {\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"/l/0.qcow2\"} "
     "-blockdev driver=qcow2,node-name=d,file=f -blockdev driver=raw,node-name=o,file=g",
     1},
};

/* Splits S at spaces into a NULL-terminated argv (strings point into S). */
static int split(char *s, char **argv)
{
    int n = 0;

    for (char *t = strtok(s, " "); t; t = strtok(NULL, " "))
        argv[n++] = t;
    argv[n] = NULL;
    return n;
}

static void join(char **argv, char *out, size_t len)
{
    out[0] = '\0';
    for (int i = 0; argv[i]; i++)
        snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? " " : "", argv[i]);
}

static void test_swap(void)
{
    for (size_t c = 0; c < sizeof(swaps) / sizeof(swaps[0]); c++) {
        struct qemudisk_swap sw[] = {
            {"/vm/d.raw", "/l/0.qcow2", "qcow2", 0},
            {"/vm/e.qcow2", "/l/1.qcow2", "qcow2", 0},
            {"/vm/a,b.raw", "/l/x,y.qcow2", "qcow2", 0},
        };
        char in[1024], got[1024], *argv[32], **out = NULL;
        int argc, matched = 0;

        snprintf(in, sizeof(in), "%s", swaps[c].in);
        argc = split(in, argv);
        CHECK(qemudisk_argv_swap(argv, argc, "/vm", sw, 3, &out) == 0, "%s: failed", swaps[c].in);
        if (!out)
            continue;
        join(out, got, sizeof(got));
        CHECK(strcmp(got, swaps[c].want) == 0, "%s:\n got  %s\n want %s", swaps[c].in, got,
              swaps[c].want);
        for (int i = 0; i < 3; i++)
            matched += sw[i].matched;
        CHECK(matched == swaps[c].matched, "%s: %d matched", swaps[c].in, matched);
        qemu_argv_free(out);
    }
}

static void test_ram_file(void)
{
    static const struct {
        const char *args;
        int want;
    } ram[] = {
        {"-m 1G", 0},
        {"-object memory-backend-file,id=r,mem-path=data,size=1G", 1},
        {"-object memory-backend-file,id=r,mem-path=DIR/data,size=1G,share=off", 1},
        {"-object memory-backend-file,id=r,mem-path=data,size=1G,share=on", 0},
        {"-object {\"qom-type\":\"memory-backend-file\",\"id\":\"r\",\"mem-path\":\"data\"}", 1},
        {"-object {\"qom-type\":\"memory-backend-file\",\"mem-path\":\"data\",\"share\":true}", 0},
        {"-object memory-backend-ram,id=r,size=1G", 0},
        {"-object memory-backend-file,id=r,mem-path=DIR,size=1G", 0},
        {"-object memory-backend-file,id=r,mem-path=empty,size=1G", 0},
        {"-object memory-backend-file,id=r,mem-path=none,size=1G", 0},
        {"-mem-path data", 1},
        {"-mem-path DIR", 0},
    };
    char dir[] = "/dev/shm/test_qemuargv.XXXXXX", path[4200], cwd[4096], why[400] = "";
    struct statfs fs;
    FILE *f;

    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof(path), "%s/data", dir);
    f = fopen(path, "w");
    CHECK(f && fputs("RAM", f) >= 0 && fclose(f) == 0, "write %s", path);
    snprintf(path, sizeof(path), "%s/empty", dir);
    f = fopen(path, "w");
    CHECK(f && fclose(f) == 0, "write %s", path);
    for (size_t c = 0; c < sizeof(ram) / sizeof(ram[0]); c++) {
        char in[1024], *argv[32];
        const char *a = ram[c].args, *d = strstr(a, "DIR");
        int argc;

        /* DIR: the directory, in place. */
        if (d)
            snprintf(in, sizeof(in), "qemu %.*s%s%s", (int)(d - a), a, dir, d + 3);
        else
            snprintf(in, sizeof(in), "qemu %s", a);
        argc = split(in, argv);
        CHECK(qemuopts_ram_obstacle(argv, argc, dir, why, sizeof(why)) == ram[c].want,
              "%s: want %d", ram[c].args, ram[c].want);
    }
    /* A file on the working directory's file system, where that is not tmpfs (the build tree). */
    if (getcwd(cwd, sizeof(cwd)) && statfs(cwd, &fs) == 0 && fs.f_type != TMPFS_MAGIC) {
        char *argv[] = {"qemu", "-object", "memory-backend-file,id=r,mem-path=ram,share=on", NULL};

        CHECK(qemuopts_ram_obstacle(argv, 3, cwd, why, sizeof(why)) == 1 &&
                  strstr(why, "userfaultfd cannot serve"),
              "a shared file on %s: %s", cwd, why);
    }
    snprintf(path, sizeof(path), "rm -rf %s", dir);
    CHECK(system(path) == 0, "%s", path);
}

static void test_pid_quit(void)
{
    pid_t child = fork();

    if (child == 0)
        _exit(0);
    CHECK(child > 0, "fork");
    CHECK(!qemu_pid_quit(getpid()), "this process taken for quit");
    for (int i = 0; i < 500 && !qemu_pid_quit(child); i++)
        usleep(10000);
    CHECK(qemu_pid_quit(child), "a zombie taken for running");
    waitpid(child, NULL, 0);
    CHECK(qemu_pid_quit(child), "a reaped process taken for running");
}

/* A stand-in binary at DIR/NAME that prints QEMU's version line VERSION and counts its runs in
 * DIR/NAME.runs. */
static void version_script(const char *dir, const char *name, const char *version)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    CHECK(f != NULL, "create %s", path);
    if (!f)
        return;
    fprintf(f, "#!/bin/sh\necho x >> %s.runs\necho 'QEMU emulator version %s (stand-in)'\n", path,
            version);
    fclose(f);
    chmod(path, 0755);
}

static int runs(const char *dir, const char *name)
{
    char path[256], line[16];
    int n = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s.runs", dir, name);
    if (!(f = fopen(path, "r")))
        return 0;
    while (fgets(line, sizeof(line), f))
        n++;
    fclose(f);
    return n;
}

static void test_versions(void)
{
    char dir[] = "/tmp/savefs-versions-XXXXXX", a[256], b[256], v[32];
    const char *both[2] = {a, b};

    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    version_script(dir, "qa", "7.2.22");
    version_script(dir, "qb", "10.0.3");
    snprintf(a, sizeof(a), "%s/qa", dir);
    snprintf(b, sizeof(b), "%s/qb", dir);
    qemu_versions_warm(both, 2);
    for (int i = 0; i < 500 && runs(dir, "qb") < 1; i++)
        usleep(10 * 1000);
    usleep(20 * 1000); /* the warm-up's cache entry after its run's output */
    CHECK(runs(dir, "qa") == 1 && runs(dir, "qb") == 1, "the warm-up asked %d and %d times",
          runs(dir, "qa"), runs(dir, "qb"));
    for (int i = 0; i < 3; i++) {
        CHECK(qemu_binary_version(a, v, sizeof(v)) == 0 && strcmp(v, "7.2.22") == 0, "qa: %s", v);
        CHECK(qemu_binary_version(b, v, sizeof(v)) == 0 && strcmp(v, "10.0.3") == 0, "qb: %s", v);
    }
    CHECK(runs(dir, "qa") == 1 && runs(dir, "qb") == 1, "asked %d and %d times, once each wanted",
          runs(dir, "qa"), runs(dir, "qb"));
    /* An upgrade replaces the file: asked again. */
    unlink(a);
    version_script(dir, "qa", "8.0.1");
    CHECK(qemu_binary_version(a, v, sizeof(v)) == 0 && strcmp(v, "8.0.1") == 0, "qa again: %s", v);
    CHECK(runs(dir, "qa") == 2, "qa asked %d times after its upgrade", runs(dir, "qa"));
    for (const char *n = "qa"; n; n = strcmp(n, "qa") == 0 ? "qb" : NULL) {
        char p[300];
        snprintf(p, sizeof(p), "%s/%s", dir, n);
        unlink(p);
        snprintf(p, sizeof(p), "%s/%s.runs", dir, n);
        unlink(p);
    }
    rmdir(dir);
}

int main(void)
{
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char in[512], got[1024], *argv[32], **out = NULL;
        int made = -1, argc;
        struct qemu_restore_opts o = {"/q/vm.qmp", cases[c].machine, "/r/vm.console", &made};

        snprintf(in, sizeof(in), "%s", cases[c].in);
        argc = split(in, argv);
        CHECK(qemu_argv_restore(argv, argc, &o, &out) == 0, "%s: failed", cases[c].in);
        if (!out)
            continue;
        join(out, got, sizeof(got));
        CHECK(strcmp(got, cases[c].want) == 0, "%s:\n got  %s\n want %s", cases[c].in, got,
              cases[c].want);
        CHECK(made == cases[c].console, "%s: console %d", cases[c].in, made);
        qemu_argv_free(out);
    }
    CHECK(qemu_version_cmp("7.2.22", "7.2.3") > 0 && qemu_version_cmp("7.2.0", "8.0.0") < 0 &&
              qemu_version_cmp("10.0.0", "9.2.1") > 0 && qemu_version_cmp("7.2.1", "7.2.1") == 0,
          "version order");
    test_swap();
    test_ram_file();
    test_pid_quit();
    test_versions();
    return check_result("test_qemuargv");
}
