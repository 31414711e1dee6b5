/* words: the save-word parser. Every word must be understood; anything else is EINVAL so that a
 * typo never starts a save with settings the user did not ask for. */
#include "words.h"

#include "copier.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORD_MAX 128

/* A decimal number from MIN to MAX into *OUT, or -EINVAL: no sign, no space, nothing after it. */
static int parse_number(const char *value, long min, long max, long *out)
{
    char *end;
    long n;

    if (value[0] < '0' || value[0] > '9')
        return -EINVAL;
    errno = 0;
    n = strtol(value, &end, 10);
    if (errno || *end || n < min || n > max)
        return -EINVAL;
    *out = n;
    return 0;
}

/* KEY=N (or a bare N for parallel) with N from 1 to MAX into *OUT. */
static int parse_count(const char *key, const char *value, long max, int *out, char *err,
                       size_t errlen)
{
    long n;

    if (parse_number(value, 1, max, &n)) {
        snprintf(err, errlen, "%s: '%s' is not a number from 1 to %ld", key, value, max);
        return -EINVAL;
    }
    *out = (int)n;
    return 0;
}

static int parse_name(const char *value, struct save_words *out, char *err, size_t errlen)
{
    if (!store_valid_name(value)) {
        snprintf(err, errlen,
                 "name: '%s' must be 1 to %d of A-Z a-z 0-9 . _ - and not start with '.'", value,
                 SNAPSHOT_NAME_MAX);
        return -EINVAL;
    }
    strcpy(out->name, value);
    return 0;
}

static int parse_onoff(const char *key, const char *value, int *out, char *err, size_t errlen)
{
    if (strcmp(value, "on") == 0)
        *out = 1;
    else if (strcmp(value, "off") == 0)
        *out = 0;
    else {
        snprintf(err, errlen, "%s: '%s' must be on or off", key, value);
        return -EINVAL;
    }
    return 0;
}

/* none, zstd, or zstd:N with N from 1 to CP_ZSTD_LEVEL_MAX. */
static int parse_compress(const char *value, struct save_words *out, char *err, size_t errlen)
{
    const char *level = value + 5;
    long n;

    if (strcmp(value, "none") == 0) {
        out->zstd_level = 0;
        return 0;
    }
    if (strcmp(value, "zstd") == 0) {
        out->zstd_level = ZSTD_LEVEL_PLAIN;
        return 0;
    }
    if (strncmp(value, "zstd:", 5) != 0 || level[0] < '0' || level[0] > '9') {
        snprintf(err, errlen, "compress: '%s' must be none, zstd or zstd:N (N from 1 to %d)", value,
                 CP_ZSTD_LEVEL_MAX);
        return -EINVAL;
    }
    if (parse_number(level, 1, CP_ZSTD_LEVEL_MAX, &n)) {
        snprintf(err, errlen, "compress: level '%s' is not a number from 1 to %d", level,
                 CP_ZSTD_LEVEL_MAX);
        return -EINVAL;
    }
    out->zstd_level = (int)n;
    return 0;
}

static int parse_disks(const char *value, struct save_words *out, char *err, size_t errlen)
{
    static const char *const names[] = {
        [WORDS_DISKS_NONE] = "none",
        [WORDS_DISKS_AUTO] = "auto",
        [WORDS_DISKS_REFLINK] = "reflink",
        [WORDS_DISKS_OVERLAY] = "overlay",
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(value, names[i]) == 0) {
            out->disks = (enum words_disks)i;
            return 0;
        }
    snprintf(err, errlen, "disks: '%s' must be auto, reflink, overlay or none", value);
    return -EINVAL;
}

/* Which keys were given, to refuse duplicates. */
enum {
    SEEN_PARALLEL = 1,
    SEEN_NAME = 2,
    SEEN_KEEP_RUNNING = 4,
    SEEN_DIRECT = 8,
    SEEN_COMPRESS = 16,
    SEEN_KEEP = 32,
    SEEN_RATE = 64,
    SEEN_DISKS = 128,
    SEEN_LIVE = 256,
};

static int mark_seen(unsigned *seen, unsigned bit, const char *key, char *err, size_t errlen)
{
    if (*seen & bit) {
        snprintf(err, errlen, "%s given twice", key);
        return -EINVAL;
    }
    *seen |= bit;
    return 0;
}

static int parse_word(char *word, struct save_words *out, unsigned *seen, char *err, size_t errlen)
{
    char *value = strchr(word, '=');
    int rc;

    if (!value) {
        if (strcmp(word, "keep-running") == 0) {
            rc = mark_seen(seen, SEEN_KEEP_RUNNING, word, err, errlen);
            out->keep_running = 1;
            return rc;
        }
        if (word[0] >= '0' && word[0] <= '9') {
            rc = mark_seen(seen, SEEN_PARALLEL, "parallel", err, errlen);
            return rc ? rc
                      : parse_count("parallel", word, PARALLEL_MAX, &out->parallel, err, errlen);
        }
        snprintf(err, errlen,
                 "unknown word '%s' (expected N, parallel=N, name=S, keep-running, live=on|off, "
                 "keep=N, direct-io=on|off, compress=none|zstd|zstd:N, rate=MB/s, "
                 "disks=auto|reflink|overlay|none)",
                 word);
        return -EINVAL;
    }
    *value++ = '\0';
    if (strcmp(word, "parallel") == 0) {
        rc = mark_seen(seen, SEEN_PARALLEL, word, err, errlen);
        return rc ? rc : parse_count(word, value, PARALLEL_MAX, &out->parallel, err, errlen);
    }
    if (strcmp(word, "name") == 0) {
        rc = mark_seen(seen, SEEN_NAME, word, err, errlen);
        return rc ? rc : parse_name(value, out, err, errlen);
    }
    if (strcmp(word, "keep") == 0) {
        rc = mark_seen(seen, SEEN_KEEP, word, err, errlen);
        return rc ? rc : parse_count(word, value, KEEP_MAX, &out->keep, err, errlen);
    }
    if (strcmp(word, "direct-io") == 0) {
        rc = mark_seen(seen, SEEN_DIRECT, word, err, errlen);
        return rc ? rc : parse_onoff(word, value, &out->direct_io, err, errlen);
    }
    if (strcmp(word, "live") == 0) {
        rc = mark_seen(seen, SEEN_LIVE, word, err, errlen);
        return rc ? rc : parse_onoff(word, value, &out->live, err, errlen);
    }
    if (strcmp(word, "compress") == 0) {
        rc = mark_seen(seen, SEEN_COMPRESS, word, err, errlen);
        return rc ? rc : parse_compress(value, out, err, errlen);
    }
    if (strcmp(word, "rate") == 0) {
        rc = mark_seen(seen, SEEN_RATE, word, err, errlen);
        return rc ? rc : parse_count(word, value, RATE_MAX_MBS, &out->rate_mbs, err, errlen);
    }
    if (strcmp(word, "disks") == 0) {
        rc = mark_seen(seen, SEEN_DISKS, word, err, errlen);
        return rc ? rc : parse_disks(value, out, err, errlen);
    }
    snprintf(err, errlen, "unknown key '%s'", word);
    return -EINVAL;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int words_parse(const char *buf, size_t len, struct save_words *out, char *err, size_t errlen)
{
    char word[WORD_MAX + 1];
    unsigned seen = 0;
    size_t i = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    out->parallel = PARALLEL_DEFAULT;
    out->direct_io = 1;
    out->live = 1;
    if (len > WORDS_INPUT_MAX) {
        snprintf(err, errlen, "the words are longer than %d bytes", WORDS_INPUT_MAX);
        return -EINVAL;
    }
    if (memchr(buf, '\0', len)) {
        snprintf(err, errlen, "a NUL byte is not a word");
        return -EINVAL;
    }
    while (i < len) {
        size_t start, n;

        while (i < len && is_space(buf[i]))
            i++;
        start = i;
        while (i < len && !is_space(buf[i]))
            i++;
        n = i - start;
        if (n == 0)
            break;
        if (n > WORD_MAX) {
            snprintf(err, errlen, "a word of %zu bytes is too long", n);
            return -EINVAL;
        }
        memcpy(word, buf + start, n);
        word[n] = '\0';
        rc = parse_word(word, out, &seen, err, errlen);
        if (rc)
            return rc;
    }
    /* A VM that quits after its save leaves its disks as they are: nothing to capture. */
    if (!(seen & SEEN_DISKS))
        out->disks = out->keep_running ? WORDS_DISKS_AUTO : WORDS_DISKS_NONE;
    /* A save that quits the VM pauses it for good: there is nothing to keep live. */
    if ((seen & SEEN_LIVE) && !out->keep_running) {
        snprintf(err, errlen, "live= goes with keep-running");
        return -EINVAL;
    }
    return 0;
}

/* Past WORDS_INPUT_MAX: keep one byte more than words_parse takes, so that the save is refused
 * with its reason, and drop the rest of the line. */
static int input_overflow(struct words_input *in, const char *data, size_t size, int newline)
{
    size_t room = sizeof(in->buf) - in->len;

    memcpy(in->buf + in->len, data, room < size ? room : size);
    in->len = sizeof(in->buf);
    in->ready = in->len;
    in->skipping = !newline;
    return 1;
}

int words_input_add(struct words_input *in, const char *data, size_t size)
{
    const char *nl = size ? memrchr(data, '\n', size) : NULL;

    if (in->skipping) {
        const char *end = nl ? memchr(data, '\n', size) : NULL;

        if (!end)
            return 0;
        in->skipping = 0;
        size -= (size_t)(end + 1 - data);
        data = end + 1;
        nl = nl == end ? NULL : nl;
    }
    if (in->len + size > WORDS_INPUT_MAX)
        return input_overflow(in, data, size, nl != NULL);
    memcpy(in->buf + in->len, data, size);
    in->len += size;
    if (!nl)
        return 0;
    in->ready = in->len - (size - (size_t)(nl + 1 - data));
    return 1;
}

int words_input_close(struct words_input *in)
{
    in->skipping = 0;
    in->ready = in->len;
    return in->len > 0;
}

void words_input_consume(struct words_input *in)
{
    /* After an overflow nothing that followed is kept: ready == len. */
    memmove(in->buf, in->buf + in->ready, in->len - in->ready);
    in->len -= in->ready;
    in->ready = 0;
}
