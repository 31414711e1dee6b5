/* fuzz_words: libFuzzer target for the save-word parser. Any input must be either parsed into
 * values within their ranges or refused with a message. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "words.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct save_words w;
    char err[256] = "";
    int rc = words_parse((const char *)data, size, &w, err, sizeof(err));

    if (rc != 0 && (rc != -EINVAL || err[0] == '\0'))
        abort();
    if (rc == 0 &&
        (w.parallel < 1 || w.parallel > PARALLEL_MAX || (w.name[0] && !store_valid_name(w.name))))
        abort();
    return 0;
}
