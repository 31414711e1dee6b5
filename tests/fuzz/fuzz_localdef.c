/* fuzz_localdef: libFuzzer target for the reader of local.json, which decides what this host
 * lets a snapshot run. Whatever it accepts must be what localdef.h describes: absolute binary
 * and cwd, NULL-terminated string lists of the sizes given, a non-empty argv, accepted digests
 * found by localdef_accepts, and a path map that passes its own check and maps each of its
 * prefixes to its target. A refusal says why and leaves nothing behind. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "localdef.h"

/* An empty list may be NULL or hold just its terminator ("allow": []). */
static void check_strings(char **v, int n)
{
    if (n < 0 || (v == NULL && n > 0) || (v && v[n] != NULL))
        abort();
    for (int i = 0; i < n; i++)
        if (v[i] == NULL)
            abort();
}

static void check_map(const struct path_map *m)
{
    char err[512];

    if (m->n == 0)
        return;
    if (qemuopts_check_map(m, err, sizeof(err)) != 0)
        abort();
    for (int i = 0; i < m->n; i++) {
        char *out = NULL;
        if (qemuopts_map_arg(m->from[i], m, &out) != 0 || strcmp(out, m->to[i]) != 0)
            abort();
        free(out);
    }
}

static void check_def(const struct localdef *d)
{
    if (!d->present || (d->binary && d->binary[0] != '/') || (d->cwd && d->cwd[0] != '/'))
        abort();
    if (d->argv && d->argc == 0)
        abort();
    check_strings(d->argv, d->argc);
    check_strings(d->allow, d->nallow);
    check_strings(d->accept, d->naccept);
    for (int i = 0; i < d->naccept; i++)
        if (!localdef_accepts(d, d->accept[i]))
            abort();
    for (int i = 0; i + 1 < d->nallow; i++)
        if (d->allow[i][0] == '-' && !localdef_has_option(d, d->allow[i], d->allow[i + 1]))
            abort();
    check_map(&d->paths);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct localdef empty;
    struct localdef d;
    char err[512] = "";

    if (localdef_parse((const char *)data, size, "fuzz", &d, err, sizeof(err)) != 0) {
        if (err[0] == '\0' || memcmp(&d, &empty, sizeof(d)) != 0)
            abort();
        return 0;
    }
    check_def(&d);
    localdef_free(&d);
    return 0;
}
