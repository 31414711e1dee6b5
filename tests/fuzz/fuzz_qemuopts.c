/* fuzz_qemuopts: libFuzzer target for the check of a QEMU command line from another host. The
 * input is argv after the program, NUL-separated. Every finding must name an option of argv
 * with a reason or a path, and every argument must quote to printable ASCII that reads back as
 * the argument. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qemuopts.h"

#define ARGS_MAX 64

/* Q read back: the inverse of qemuopts_quote. 1 if it gives S. */
static int unquotes_to(const char *q, const char *s)
{
    size_t n = strlen(q);

    if (n < 2 || q[0] != '"' || q[n - 1] != '"')
        return 0;
    for (size_t i = 1; i < n - 1; i++, s++) {
        unsigned c = (unsigned char)q[i];

        if (c < 0x20 || c >= 0x7f || c == '"')
            return 0;
        if (c == '\\') {
            char e = q[++i];
            c = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : (unsigned char)e;
            if (e == 'x') {
                char hex[3] = {q[i + 1], q[i + 2], 0};
                c = (unsigned)strtoul(hex, NULL, 16);
                i += 2;
            }
        }
        if ((unsigned char)*s != c)
            return 0;
    }
    return *s == '\0';
}

static void check_report(const struct qemuopts_report *r, int argc)
{
    for (int i = 0; i < r->n; i++) {
        const struct qemuopts_finding *f = &r->f[i];

        if (f->opt < 1 || f->opt >= argc)
            abort();
        if (f->kind == QEMUOPTS_ALLOWANCE && !f->why[0])
            abort();
        if (f->kind == QEMUOPTS_PATH && (!f->path || !f->path[0] || f->access > QEMUOPTS_DIRECTORY))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1), *argv[ARGS_MAX + 1] = {"qemu-system-x86_64"};
    struct qemuopts_report r;
    int argc = 1;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    for (char *p = buf; p < buf + size && argc < ARGS_MAX; p += strlen(p) + 1)
        argv[argc++] = p;
    if (qemuopts_check(argv, argc, &r) == 0) {
        check_report(&r, argc);
        qemuopts_report_free(&r);
    }
    for (int i = 1; i < argc; i++) {
        char *q = qemuopts_quote(argv[i]);
        if (q && !unquotes_to(q, argv[i]))
            abort();
        free(q);
    }
    free(buf);
    return 0;
}
