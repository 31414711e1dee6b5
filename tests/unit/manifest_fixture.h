/* manifest_fixture: snapshot S of vm1 as the unit tests of snap/ write it (test_trust,
 * test_facts): binary /bin/sh in /a/b, command line ARGV, 512 MiB, one channel; signed with SIGN
 * if not NULL; and the files beside it those tests write. Include after check.h. */
#ifndef SAVEFS_MANIFEST_FIXTURE_H
#define SAVEFS_MANIFEST_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "manifest.h"
#include "trust.h"

/* TEXT into PATH, mode MODE (a key, a local.json). */
static void write_text(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");

    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        perror(path);
    chmod(path, mode);
}

/* A store with a snapshot vm1/snapshots/S of binary /bin/sh, argv ARGV. */
static void make_manifest(const char *store, char **argv, int argc, const struct trust *sign)
{
    char path[512], cmd[1024], err[512];
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
    m.files[0] = (struct cp_file){"main", CP_MAIN, -1, 10, 1, 0, 0, 0, {0}};
    m.files[1] = (struct cp_file){"channel-0", CP_CHANNEL, 0, 20, 2, 0, 0, 0, {0}};
    snprintf(cmd, sizeof(cmd), "rm -rf %s/vm1 && mkdir -p %s/vm1/snapshots/S", store, store);
    if (system(cmd) != 0)
        check_failures++;
    if (sign)
        CHECK(trust_sign(sign, &m) == 0, "sign");
    snprintf(path, sizeof(path), "%s/vm1/snapshots/S/%s", store, MANIFEST_NAME);
    CHECK(manifest_write(path, &m, err, sizeof(err)) == 0, "write: %s", err);
}

#endif
