/* qemudisk: a VM's disk images seen from outside QEMU: a command line's disk images swapped for
 * others (a checkpoint's overlays, the block graph a VM really runs on), and qemu-img run for an
 * overlay or a rebase. Pure functions and a child process, any thread. */
#ifndef SAVEFS_QEMUDISK_H
#define SAVEFS_QEMUDISK_H

#include <stddef.h>
#include <stdint.h>

/* The image FROM (absolute) replaced by TO, opened with driver FORMAT. */
struct qemudisk_swap {
    const char *from;
    const char *to;
    const char *format;
    int matched; /* out: how many options of the command line named FROM */
};

/* ARGV (ARGC strings, relative paths from CWD) with every -drive file= and -blockdev filename
 * that names SW[i].from pointing at SW[i].to instead, and the format driver that reads it set to
 * SW[i].format (-drive format=, the -blockdev that holds or references the file node's
 * driver=). New NULL-terminated array of new strings in *OUT (qemu_argv_free). */
int qemudisk_argv_swap(char *const *argv, int argc, const char *cwd, struct qemudisk_swap *sw,
                       int n, char ***out);

/* Runs "qemu-img create -f qcow2 -b BACKING -F FORMAT OVERLAY [-u SIZE]": a new qcow2 over
 * BACKING, made by QEMU_BINARY's qemu-img (beside it, else /usr/bin's); with a SIZE (not 0)
 * without opening BACKING, else of BACKING's size. */
int qemudisk_overlay(const char *qemu_binary, const char *overlay, const char *backing,
                     const char *format, uint64_t size, char *err, size_t errlen);

/* Runs "qemu-img rebase -u -b BACKING -F FORMAT IMAGE": the qcow2 IMAGE names BACKING (relative
 * to IMAGE's directory when not absolute) as its backing file. */
int qemudisk_rebase(const char *qemu_binary, const char *image, const char *backing,
                    const char *format, char *err, size_t errlen);

/* The backing file name that the qcow2 header of the open FD records into OUT ("" if none).
 * -EINVAL if FD is no qcow2. */
int qemudisk_qcow2_backing(int fd, char *out, size_t len);

#endif
