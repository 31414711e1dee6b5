/* fuzz_manifest: libFuzzer target for the manifest reader, which takes manifests from other hosts.
 * Whatever it accepts must pass manifest_check and name only files a snapshot may hold. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct manifest m;
    char err[512] = "";

    if (manifest_parse((const char *)data, size, "fuzz", &m, err, sizeof(err)) != 0) {
        if (err[0] == '\0')
            abort();
        return 0;
    }
    if (manifest_check(&m, err, sizeof(err)) != 0)
        abort();
    for (int i = 0; i < m.nfiles; i++)
        if (strchr(m.files[i].name, '/') || m.files[i].name[0] == '.')
            abort();
    manifest_free(&m);
    return 0;
}
