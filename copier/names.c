/* names: the names of the files the copier writes into a snapshot directory, spelled here only
 * (the save names its files with them, the manifest checks what it lists against them, the mount
 * lets only these be made in a snapshot). Pure functions, any thread. */
#include <stdio.h>
#include <string.h>

#include "copier.h"

#define CHANNEL_PREFIX "channel-"
#define INDEX_SUFFIX   ".idx"

int cp_file_name(enum cp_kind kind, int channel, char *name, size_t len)
{
    int n = -1;

    switch (kind) {
    case CP_MAIN:
        n = snprintf(name, len, "main");
        break;
    case CP_CHANNEL:
        n = snprintf(name, len, CHANNEL_PREFIX "%d", channel);
        break;
    case CP_INDEX:
        n = snprintf(name, len, CHANNEL_PREFIX "%d" INDEX_SUFFIX, channel);
        break;
    }
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int cp_file_name_valid(const char *name)
{
    size_t pre = strlen(CHANNEL_PREFIX), digits;

    if (strcmp(name, "main") == 0)
        return 1;
    if (strncmp(name, CHANNEL_PREFIX, pre) != 0)
        return 0;
    digits = strspn(name + pre, "0123456789");
    return digits > 0 &&
           (name[pre + digits] == '\0' || strcmp(name + pre + digits, INDEX_SUFFIX) == 0);
}
