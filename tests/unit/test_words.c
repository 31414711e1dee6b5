/* test_words: the save-word parser, table-driven: every accepted form and every bad input the
 * issues name. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "store.h"
#include "words.h"

struct good_case {
    const char *in;
    int parallel;
    const char *name;
    int keep_running;
    int direct_io;
    int zstd_level;
    int keep;
    int rate_mbs;
    enum words_disks disks; /* 0 (none) unless given, or keep-running's auto */
};

static const struct good_case good[] = {
    {"4", 4, "", 0, 1, 0, 0, 0, WORDS_DISKS_NONE},
    {"4\n", 4, "", 0, 1, 0, 0, 0, WORDS_DISKS_NONE},
    {"", 4, "", 0, 1, 0, 0, 0, WORDS_DISKS_NONE},
    {"\n", 4, "", 0, 1, 0, 0, 0, WORDS_DISKS_NONE},
    {"1", 1, "", 0, 1, 0, 0, 0, WORDS_DISKS_NONE},
    {"64", 64, "", 0, 1, 0, 0, 0, WORDS_DISKS_NONE},
    {"parallel=8", 8, "", 0, 1, 0, 0, 0, WORDS_DISKS_NONE},
    {"parallel=2 name=nightly keep-running", 2, "nightly", 1, 1, 0, 0, 0, WORDS_DISKS_AUTO},
    {"  keep-running\tname=a.b_c-9  16 \n", 16, "a.b_c-9", 1, 1, 0, 0, 0, WORDS_DISKS_AUTO},
    {"name=x direct-io=off", 4, "x", 0, 0, 0, 0, 0, WORDS_DISKS_NONE},
    {"direct-io=on", 4, "", 0, 1, 0, 0, 0, WORDS_DISKS_NONE},
    {"name="
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     4, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0, 1, 0, 0, 0,
     WORDS_DISKS_NONE},
    {"compress=none", 4, "", 0, 1, 0, 0, 0, WORDS_DISKS_NONE},
    {"compress=zstd", 4, "", 0, 1, 1, 0, 0, WORDS_DISKS_NONE},
    {"compress=zstd:1", 4, "", 0, 1, 1, 0, 0, WORDS_DISKS_NONE},
    {"compress=zstd:3 8", 8, "", 0, 1, 3, 0, 0, WORDS_DISKS_NONE},
    {"compress=zstd:19 direct-io=off", 4, "", 0, 0, 19, 0, 0, WORDS_DISKS_NONE},
    {"parallel=2 compress=zstd:07 name=z", 2, "z", 0, 1, 7, 0, 0, WORDS_DISKS_NONE},
    {"keep=2", 4, "", 0, 1, 0, 2, 0, WORDS_DISKS_NONE},
    {"4 keep=1 keep-running", 4, "", 1, 1, 0, 1, 0, WORDS_DISKS_AUTO},
    {"keep-running disks=none", 4, "", 1, 1, 0, 0, 0, WORDS_DISKS_NONE},
    {"disks=reflink keep-running", 4, "", 1, 1, 0, 0, 0, WORDS_DISKS_REFLINK},
    {"keep-running disks=overlay", 4, "", 1, 1, 0, 0, 0, WORDS_DISKS_OVERLAY},
    {"keep-running disks=auto", 4, "", 1, 1, 0, 0, 0, WORDS_DISKS_AUTO},
    {"disks=auto", 4, "", 0, 1, 0, 0, 0, WORDS_DISKS_AUTO},
    {"keep=100000 name=k", 4, "k", 0, 1, 0, 100000, 0, WORDS_DISKS_NONE},
    {"rate=200", 4, "", 0, 1, 0, 0, 200, WORDS_DISKS_NONE},
    {"8 rate=1 compress=zstd", 8, "", 0, 1, 1, 0, 1, WORDS_DISKS_NONE},
    {"rate=1000000", 4, "", 0, 1, 0, 0, 1000000, WORDS_DISKS_NONE},
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
    "live=off",
    "live=on 4",
    "keep-running live=maybe",
    "keep-running live=on live=off",
    "keep-running live",
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
    "keep=0",
    "keep=x",
    "keep=",
    "keep",
    "keep=-1",
    "keep=+2",
    "keep=2x",
    "keep=100001",
    "keep=99999999999999999999",
    "keep=2 keep=3",
    "compress=lz4",
    "compress=gzip:1",
    "compress=none:1",
    "compress=zstd compress=none",
    "compress=zstd:99999999999999999999",
    "rate=0",
    "rate=",
    "rate",
    "rate=-5",
    "rate=1.5",
    "rate=10M",
    "rate=1000001",
    "rate=1 rate=2",
    "disks=",
    "disks",
    "disks=yes",
    "disks=Auto",
    "disks=none disks=auto",
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
        CHECK(w.keep == good[i].keep, "'%s': keep %d", good[i].in, w.keep);
        CHECK(w.direct_io == good[i].direct_io, "'%s': direct-io", good[i].in);
        CHECK(w.zstd_level == good[i].zstd_level, "'%s': zstd level %d", good[i].in, w.zstd_level);
        CHECK(w.rate_mbs == good[i].rate_mbs, "'%s': rate %d", good[i].in, w.rate_mbs);
        CHECK(w.disks == good[i].disks, "'%s': disks %d", good[i].in, (int)w.disks);
    }
}

/* keep-running is a live checkpoint unless live=off; a save without keep-running keeps the
 * default, which it does not use. */
static void test_live(void)
{
    static const struct {
        const char *in;
        int live;
    } cases[] = {
        {"4", 1}, {"keep-running", 1}, {"keep-running live=on", 1}, {"live=off keep-running 2", 0}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct save_words w;
        char err[256] = "";
        int rc = words_parse(cases[i].in, strlen(cases[i].in), &w, err, sizeof(err));

        CHECK(rc == 0 && w.live == cases[i].live, "'%s': rc %d live %d: %s", cases[i].in, rc,
              w.live, err);
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
    CHECK(store_valid_name("vm1"), "vm1");
    CHECK(store_valid_name("20261126-134501-2"), "time stamp");
    CHECK(!store_valid_name(""), "empty");
    CHECK(!store_valid_name("."), ".");
    CHECK(!store_valid_name(".."), "..");
    CHECK(!store_valid_name("a/b"), "slash");
    CHECK(!store_valid_name("é"), "non-ASCII");
}

/* Words written in pieces: the saves that start (their words, '|' after each) as the pieces
 * arrive and at close. */
struct input_case {
    const char *pieces[8];
    const char *saves;
};

static const struct input_case inputs[] = {
    {{"2", " ", "k", "eep-running", "\n"}, "2 keep-running\n|"},
    {{"4"}, "4|"},
    {{"keep-running", " name=b"}, "keep-running name=b|"},
    {{"4\n8\n"}, "4\n8\n|"},
    {{"4\nname=x"}, "4\n|name=x|"},
    {{"4\n", "\n"}, "4\n|\n|"},
    {{"4\n", "keep-", "running"}, "4\n|keep-running|"},
    {{""}, ""},
    {{NULL}, ""},
};

static void feed(struct words_input *in, const char *data, size_t size, char *out, size_t outlen)
{
    size_t n = strlen(out);

    if (!words_input_add(in, data, size))
        return;
    snprintf(out + n, outlen - n, "%.*s|", (int)in->ready, in->buf);
    words_input_consume(in);
}

static void test_input(void)
{
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        static struct words_input in;
        char saves[256] = "";

        memset(&in, 0, sizeof(in));
        for (int p = 0; p < 8 && inputs[i].pieces[p]; p++)
            feed(&in, inputs[i].pieces[p], strlen(inputs[i].pieces[p]), saves, sizeof(saves));
        if (words_input_close(&in))
            snprintf(saves + strlen(saves), sizeof(saves) - strlen(saves), "%.*s|", (int)in.ready,
                     in.buf);
        CHECK(strcmp(saves, inputs[i].saves) == 0, "case %zu: saves '%s', expected '%s'", i, saves,
              inputs[i].saves);
    }
}

/* More than WORDS_INPUT_MAX bytes: one save that words_parse refuses, and the rest of that line
 * starts nothing. */
static void test_input_too_long(void)
{
    static struct words_input in;
    static char big[WORDS_INPUT_MAX + 100];
    char err[256], saves[256] = "";
    struct save_words w;

    memset(big, ' ', sizeof(big));
    CHECK(words_input_add(&in, big, sizeof(big)) == 1, "too long: no refusal");
    CHECK(in.ready == WORDS_INPUT_MAX + 1, "too long: %zu bytes handed over", in.ready);
    CHECK(words_parse(in.buf, in.ready, &w, err, sizeof(err)) == -EINVAL, "too long: parsed");
    words_input_consume(&in);
    feed(&in, "4 name=x", 8, saves, sizeof(saves));
    feed(&in, "\n8\n", 3, saves, sizeof(saves));
    feed(&in, "keep-running\n", 13, saves, sizeof(saves));
    CHECK(strcmp(saves, "8\n|keep-running\n|") == 0, "after too long: saves '%s'", saves);
    CHECK(!words_input_close(&in), "after too long: a save at close");
}

int main(void)
{
    test_good();
    test_live();
    test_bad();
    test_nul_and_garbage();
    test_names();
    test_input();
    test_input_too_long();
    return check_result("test_words");
}
