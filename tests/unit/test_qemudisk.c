/* test_qemudisk: a command line's disk images swapped for others, from a table: -drive file=
 * (relative and absolute, escaped commas, with and without format=), -blockdev with an inline
 * file (QemuOpts and JSON), and a protocol node whose reader declared after it gets the new
 * driver; images not swapped stay as they were. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "qemu.h"
#include "qemudisk.h"

static const struct {
    const char *in, *want;
    int matched; /* options that named one of the swapped images */
} cases[] = {
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

int main(void)
{
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct qemudisk_swap sw[] = {
            {"/vm/d.raw", "/l/0.qcow2", "qcow2", 0},
            {"/vm/e.qcow2", "/l/1.qcow2", "qcow2", 0},
            {"/vm/a,b.raw", "/l/x,y.qcow2", "qcow2", 0},
        };
        char in[1024], got[1024], *argv[32], **out = NULL;
        int argc, matched = 0;

        snprintf(in, sizeof(in), "%s", cases[c].in);
        argc = split(in, argv);
        CHECK(qemudisk_argv_swap(argv, argc, "/vm", sw, 3, &out) == 0, "%s: failed", cases[c].in);
        if (!out)
            continue;
        join(out, got, sizeof(got));
        CHECK(strcmp(got, cases[c].want) == 0, "%s:\n got  %s\n want %s", cases[c].in, got,
              cases[c].want);
        for (int i = 0; i < 3; i++)
            matched += sw[i].matched;
        CHECK(matched == cases[c].matched, "%s: %d matched", cases[c].in, matched);
        qemu_argv_free(out);
    }
    return check_result("test_qemudisk");
}
