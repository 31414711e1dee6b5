/* test_words: the save-word parser, table-driven: every accepted form and every bad input the
 * issues name. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "words.h"

struct good_case {
    const char *in;
    int parallel;
    const char *name;
    int keep_running;
    int direct_io;
    int zstd_level;
};

static const struct good_case good[] = {
    {"4", 4, "", 0, 1, 0},
    {"4\n", 4, "", 0, 1, 0},
    {"", 4, "", 0, 1, 0},
    {"\n", 4, "", 0, 1, 0},
    {"1", 1, "", 0, 1, 0},
    {"64", 64, "", 0, 1, 0},
    {"parallel=8", 8, "", 0, 1, 0},
    {"parallel=2 name=nightly keep-running", 2, "nightly", 1, 1, 0},
    {"  keep-running\tname=a.b_c-9  16 \n", 16, "a.b_c-9", 1, 1, 0},
    {"name=x direct-io=off", 4, "x", 0, 0, 0},
    {"direct-io=on", 4, "", 0, 1, 0},
    {"name="
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     4, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0, 1, 0},
    {"compress=none", 4, "", 0, 1, 0},
    {"compress=zstd", 4, "", 0, 1, 1},
    {"compress=zstd:1", 4, "", 0, 1, 1},
    {"compress=zstd:3 8", 8, "", 0, 1, 3},
    {"compress=zstd:19 direct-io=off", 4, "", 0, 0, 19},
    {"parallel=2 compress=zstd:07 name=z", 2, "z", 0, 1, 7},
};

static const char *const bad[] = {
    "0",
    "65",
    "-1",
    "1e9",
    "4x",
    "parallel=",
    "parallel=0",
    "parallel=65",
    "parallel=-3",
    "parallel=99999999999999999999",
    "4 4",
    "4 parallel=4",
    "name=a name=b",
    "keep-running keep-running",
    "bogus",
    "size=3",
    "name=",
    "name=.hidden",
    "name=a/b",
    "name=..",
    "name=a b",
    ("name="
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), /* one word: 65 bytes */
    "direct-io=maybe",
    "=4",
    "keep-running=1",
    "parallel=+4",
    "parallel= 4",
    "compress",
    "compress=",
    "compress=zstd:",
    "compress=zstd:0",
    "compress=zstd:20",
    "compress=zstd:-1",
    "compress=zstd:+3",
    "compress=zstd:3x",
    "compress=zstd3",
    "compress=ZSTD",
    "compress=lz4",
    "compress=gzip:1",
    "compress=none:1",
    "compress=zstd compress=none",
    "compress=zstd:99999999999999999999",
};

static void test_good(void)
{
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct save_words w;
        char err[256] = "";
        int rc = words_parse(good[i].in, strlen(good[i].in), &w, err, sizeof(err));

        CHECK(rc == 0, "'%s' refused: %s", good[i].in, err);
        if (rc)
            continue;
        CHECK(w.parallel == good[i].parallel, "'%s': parallel %d", good[i].in, w.parallel);
        CHECK(strcmp(w.name, good[i].name) == 0, "'%s': name '%s'", good[i].in, w.name);
        CHECK(w.keep_running == good[i].keep_running, "'%s': keep-running", good[i].in);
        CHECK(w.direct_io == good[i].direct_io, "'%s': direct-io", good[i].in);
        CHECK(w.zstd_level == good[i].zstd_level, "'%s': zstd level %d", good[i].in, w.zstd_level);
    }
}

static void test_bad(void)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct save_words w;
        char err[256] = "";
        int rc = words_parse(bad[i], strlen(bad[i]), &w, err, sizeof(err));

        CHECK(rc == -EINVAL, "'%s' accepted (rc %d)", bad[i], rc);
        CHECK(err[0] != '\0', "'%s' refused without a message", bad[i]);
    }
}

static void test_nul_and_garbage(void)
{
    static const char with_nul[] = {'4', '\0', '\n'};
    char garbage[4096], err[256];
    struct save_words w;

    CHECK(words_parse(with_nul, sizeof(with_nul), &w, err, sizeof(err)) == -EINVAL,
          "a NUL byte accepted");
    for (size_t i = 0; i < sizeof(garbage); i++)
        garbage[i] = (char)(33 + (i * 7919) % 90);
    CHECK(words_parse(garbage, sizeof(garbage), &w, err, sizeof(err)) == -EINVAL,
          "4 KiB of garbage accepted");
}

static void test_names(void)
{
    CHECK(words_valid_name("vm1"), "vm1");
    CHECK(words_valid_name("20261126-134501-2"), "time stamp");
    CHECK(!words_valid_name(""), "empty");
    CHECK(!words_valid_name("."), ".");
    CHECK(!words_valid_name(".."), "..");
    CHECK(!words_valid_name("a/b"), "slash");
    CHECK(!words_valid_name("é"), "non-ASCII");
}

int main(void)
{
    test_good();
    test_bad();
    test_nul_and_garbage();
    test_names();
    return check_result("test_words");
}
