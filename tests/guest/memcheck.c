/* memcheck: the test guest's workload. Fills N MiB with known data, then re-verifies it
 * about once a second, printing one line per pass to stdout:
 *
 *   SAVEFS-MEMCHECK ready mib=192 seed=0123abcd uptime=3.1
 *   SAVEFS-MEMCHECK pass=17 ok seed=0123abcd uptime=23.4 verify_ms=85
 *   SAVEFS-MEMCHECK pass=18 FAIL mib=42 bad=1 seed=0123abcd uptime=24.5 verify_ms=86
 *
 * The first half of the area is pseudo-random (incompressible), the second half is
 * text-like (compressible). verify_ms is how long the pass took. The pass counter lives in
 * ordinary memory, so across a save/restore of the VM it continues from where it was, with the
 * same seed.
 *
 * With disk devices after MIB (seqdisk=1 in init), a second process counts too: many times a
 * second it writes its sequence number to the first sector of every disk (O_DIRECT, then
 * fdatasync), keeping in RAM the number it is writing and the last one flushed. Before each write
 * it reads the disks back: after a restore of a checkpoint, RAM and disks must agree (a disk
 * holds the number RAM says was flushed, or the one being written when the VM was paused).
 *
 *   SAVEFS-SEQ n=1234 ok uptime=41.2            (about once a second)
 *   SAVEFS-SEQ MISMATCH disk=/dev/vda holds 1300 ram flushed=1234 writing=1235
 *
 * With a rate after MIB, memcheck MIB DIRTY_MBPS [DISK...], it also rewrites pages of a separate 64
 * MiB area at that rate between slices of its verification (a guest that dirties memory, as under a
 * live checkpoint), and adds to each pass line: dirty_mib=D      MiB written since the start
 *   gap_ms=G         the largest gap between two slices its own clock saw in the pass
 *   lost_ms=L        the largest time the host's clock ran ahead of its own between two RTC
 *                    second edges: the VM's pause, which the guest's clocks do not see (QEMU
 *                    stops them with the VM), measured against the RTC, which follows the
 *                    host's clock; the least pause that what the guest saw allows, so that its
 *                    own descheduling (it sees an edge late) never counts as a pause
 * Each dirty page holds its write sequence and a hash of it, and a table (other pages) holds the
 * sequence last written to each: a pass also verifies that every page is the last one written,
 * so a restore that brings back an older copy of a page fails it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/rtc.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB       (1024 * 1024)
#define MIB_WORDS (MIB / sizeof(uint64_t))
#define TAG       "SAVEFS-MEMCHECK"

static uint64_t *area;
static uint64_t *table;
static size_t mibs;
static uint32_t seed;
static unsigned long pass;

#define DIRTY_MIB   64
#define DIRTY_PAGES (DIRTY_MIB * MIB / 4096)
#define PAGE_WORDS  (4096 / sizeof(uint64_t))

/* Dirty mode: the area, the sequence last written to each of its pages, the rate and the
 * measures of the current pass. */
static struct {
    uint64_t *area, *table;
    double mbps, start, last;
    uint64_t written; /* pages */
    double gap, lost, edge_from;
    int rtc;
    long rtc_s; /* the RTC's second of the day last seen, -1 before */
} dirty;

static double uptime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t pick_seed(void)
{
    uint32_t s = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, &s, sizeof(s)) != (ssize_t)sizeof(s)) {
        s = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
    }
    if (fd >= 0) {
        close(fd);
    }
    return s;
}

/* xorshift64, seeded through splitmix64 so any 32-bit seed gives a good nonzero state */
static uint64_t rng_state;

static uint64_t xorshift64(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void rng_init(uint32_t s)
{
    uint64_t z = (uint64_t)s + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    rng_state = (z ^ (z >> 31)) | 1;
}

/* Text-like fill: lines of "<word> <counter>\n" until the region is full. */
static void fill_text(char *p, size_t len)
{
    static const char *const words[] = {"guest",     "memory",  "savefs", "multifd",
                                        "migration", "restore", "page",   "checksum"};
    size_t off = 0;
    for (unsigned long n = 0; off < len; n++) {
        char line[48];
        size_t l = strlen(words[n % 8]);
        memcpy(line, words[n % 8], l);
        line[l++] = ' ';
        char digits[24];
        size_t d = 0;
        unsigned long v = n;
        do {
            digits[d++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        while (d) {
            line[l++] = digits[--d];
        }
        line[l++] = '\n';
        if (l > len - off) {
            l = len - off;
        }
        memcpy(p + off, line, l);
        off += l;
    }
}

static uint64_t checksum_mib(const uint64_t *w)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < MIB_WORDS; i++) {
        h = (h ^ w[i]) * 0x100000001b3ULL;
    }
    return h ^ (h >> 32);
}

static void fill(void)
{
    size_t random_mibs = mibs / 2;
    rng_init(seed);
    for (size_t i = 0; i < random_mibs * MIB_WORDS; i++) {
        area[i] = xorshift64();
    }
    fill_text((char *)(area + random_mibs * MIB_WORDS), (mibs - random_mibs) * MIB);
    for (size_t m = 0; m < mibs; m++) {
        table[m] = checksum_mib(area + m * MIB_WORDS);
    }
}

static uint64_t dirty_mix(uint64_t page, uint64_t seq)
{
    uint64_t z = (page << 40) ^ seq ^ ((uint64_t)seed << 20);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    return z ^ (z >> 27);
}

/* Catches up with the dirty rate, and measures: called between slices of work (about a
 * millisecond each). */
static void dirty_tick(void)
{
    double now = uptime(), prev = dirty.last;
    if (now - dirty.last > dirty.gap) {
        dirty.gap = now - dirty.last;
    }
    dirty.last = now;
    uint64_t due = (uint64_t)((now - dirty.start) * dirty.mbps * (MIB / 4096));
    /* Behind by more than the area (a long pause, a clock that jumped): rewriting it once is
     * all the catching up there is to do. */
    if (due - dirty.written > DIRTY_PAGES) {
        dirty.written = due - DIRTY_PAGES;
    }
    for (; dirty.written < due; dirty.written++) {
        uint64_t page = dirty.written % DIRTY_PAGES, seq = dirty.written + 1;
        uint64_t *p = dirty.area + page * PAGE_WORDS;
        p[0] = seq;
        p[1] = dirty_mix(page, seq);
        dirty.table[page] = seq;
    }
    struct rtc_time t;
    if (dirty.rtc >= 0 && ioctl(dirty.rtc, RTC_RD_TIME, &t) == 0) {
        long s = t.tm_hour * 3600L + t.tm_min * 60L + t.tm_sec;
        if (s != dirty.rtc_s) {
            /* The edge fell between the previous look (PREV) and this one, in the guest's clock;
             * between two edges the host's clock ran whole seconds. The guest's clock ran at most
             * NOW - (the previous edge's PREV) of them: the rest is time it did not see. */
            if (dirty.rtc_s >= 0) {
                double lost = (double)((s - dirty.rtc_s + 86400) % 86400) - (now - dirty.edge_from);
                if (lost > dirty.lost) {
                    dirty.lost = lost;
                }
            }
            dirty.rtc_s = s;
            dirty.edge_from = prev;
        }
    }
}

/* Pages of the dirty area that are not the last written: a count. */
static size_t dirty_verify(void)
{
    size_t bad = 0;
    for (uint64_t page = 0; page < DIRTY_PAGES; page++) {
        const uint64_t *p = dirty.area + page * PAGE_WORDS;
        uint64_t seq = dirty.table[page];
        if (seq && (p[0] != seq || p[1] != dirty_mix(page, seq))) {
            bad++;
        }
    }
    return bad;
}

/* One verification pass: returns the number of bad MiBs, first one in *first_bad. */
static size_t verify(size_t *first_bad)
{
    size_t bad = 0;
    for (size_t m = 0; m < mibs; m++) {
        if (dirty.area) {
            dirty_tick();
        }
        if (checksum_mib(area + m * MIB_WORDS) != table[m]) {
            if (bad++ == 0) {
                *first_bad = m;
            }
        }
    }
    return bad;
}

/* Dirty mode: no sleep, but ticks until the deadline, a millisecond apart. */
static void dirty_until(double deadline)
{
    struct timespec ms = {.tv_nsec = 1000000};
    while (uptime() < deadline) {
        dirty_tick();
        nanosleep(&ms, NULL);
    }
}

static void sleep_until(double deadline)
{
    if (dirty.area) {
        dirty_until(deadline);
        return;
    }
    double left = deadline - uptime();
    if (left <= 0) {
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)left,
                          .tv_nsec = (long)((left - (double)(time_t)left) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

#define SEQ_TAG   "SAVEFS-SEQ"
#define SEQ_DISKS 4
#define SECTOR    4096
#define SEQ_HZ    50

/* The number in the first sector of DISK (opened O_DIRECT), or -1. */
static long seq_read(int fd, char *buf)
{
    unsigned long v;

    if (pread(fd, buf, SECTOR, 0) != SECTOR || sscanf(buf, SEQ_TAG " %lu", &v) != 1) {
        return -1;
    }
    return (long)v;
}

static int seq_write(int fd, char *buf, unsigned long v)
{
    memset(buf, 0, SECTOR);
    snprintf(buf, SECTOR, SEQ_TAG " %lu\n", v);
    return pwrite(fd, buf, SECTOR, 0) == SECTOR && fdatasync(fd) == 0 ? 0 : -1;
}

/* The sequence: RAM (these two) and the disks move together. */
static volatile unsigned long seq_flushed, seq_writing;

static void seq_loop(int ndisks, char **disks)
{
    int fd[SEQ_DISKS];
    char *buf;
    double next_report = 0;

    if (posix_memalign((void **)&buf, SECTOR, SECTOR) != 0) {
        _exit(1);
    }
    for (int i = 0; i < ndisks; i++) {
        fd[i] = open(disks[i], O_RDWR | O_DIRECT | O_CLOEXEC);
        if (fd[i] < 0) {
            printf(SEQ_TAG " cannot open %s: %s\n", disks[i], strerror(errno));
            fflush(stdout);
            _exit(1);
        }
    }
    for (;;) {
        for (int i = 0; i < ndisks; i++) {
            long v = seq_read(fd[i], buf);
            /* A fresh disk holds no number yet; afterwards it must be where RAM says. */
            if (!(seq_writing == 0 && v < 0) && v != (long)seq_flushed && v != (long)seq_writing) {
                printf(SEQ_TAG " MISMATCH disk=%s holds %ld ram flushed=%lu writing=%lu\n",
                       disks[i], v, seq_flushed, seq_writing);
                fflush(stdout);
            }
        }
        seq_writing = seq_flushed + 1;
        for (int i = 0; i < ndisks; i++) {
            if (seq_write(fd[i], buf, seq_writing) < 0) {
                printf(SEQ_TAG " write %s failed: %s\n", disks[i], strerror(errno));
                fflush(stdout);
            }
        }
        seq_flushed = seq_writing;
        if (uptime() >= next_report) {
            printf(SEQ_TAG " n=%lu ok uptime=%.1f\n", seq_flushed, uptime());
            fflush(stdout);
            next_report = uptime() + 1.0;
        }
        sleep_until(uptime() + 1.0 / SEQ_HZ);
    }
}

static int dirty_start(const char *arg)
{
    char *end;
    double mbps = strtod(arg, &end);
    if (*end != '\0' || !(mbps > 0 && mbps <= 100000)) {
        return -1;
    }
    dirty.area = mmap(NULL, DIRTY_MIB * MIB, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    dirty.table = calloc(DIRTY_PAGES, sizeof(*dirty.table));
    if (dirty.area == MAP_FAILED || dirty.table == NULL) {
        return -1;
    }
    dirty.mbps = mbps;
    dirty.rtc = open("/dev/rtc0", O_RDONLY | O_CLOEXEC);
    dirty.rtc_s = -1;
    dirty.start = dirty.last = uptime();
    return 0;
}

/* The dirty mode's fields of a pass line (empty without it), and a new pass's measures. */
static const char *dirty_fields(char *buf, size_t len, size_t bad_pages)
{
    buf[0] = '\0';
    if (dirty.area) {
        snprintf(buf, len, " dirty_mib=%" PRIu64 " gap_ms=%d lost_ms=%d%s",
                 dirty.written * 4096 / MIB, (int)(dirty.gap * 1000), (int)(dirty.lost * 1000),
                 bad_pages ? " STALE" : "");
        dirty.gap = dirty.lost = 0;
    }
    return buf;
}

int main(int argc, char **argv)
{
    char *end, fields[128];
    unsigned long n = argc >= 2 ? strtoul(argv[1], &end, 10) : 0;
    /* After MIB: a dirty rate (a number), then disk devices (paths). */
    int ndirty = argc >= 3 && argv[2][0] != '/';
    int first_disk = 2 + ndirty;
    if (argc < 2 || argc > first_disk + SEQ_DISKS || *end != '\0' || n < 1 || n > 65536) {
        fprintf(stderr, "usage: memcheck MIB (1..65536) [DIRTY_MBPS] [DISK...]\n");
        return 2;
    }
    if (argc > first_disk && fork() == 0) {
        seq_loop(argc - first_disk, argv + first_disk);
    }
    mibs = n;
    area = mmap(NULL, mibs * MIB, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    table = calloc(mibs, sizeof(*table));
    if (area == MAP_FAILED || table == NULL) {
        fprintf(stderr, "memcheck: cannot allocate %zu MiB: %s\n", mibs, strerror(errno));
        return 1;
    }
    if (mlock(area, mibs * MIB) < 0) {
        fprintf(stderr, "memcheck: mlock failed (continuing): %s\n", strerror(errno));
    }
    seed = pick_seed();
    fill();
    if (ndirty && dirty_start(argv[2]) < 0) {
        fprintf(stderr, "memcheck: bad dirty rate '%s' or no memory for it\n", argv[2]);
        return 2;
    }
    printf(TAG " ready mib=%zu seed=%08" PRIx32 " uptime=%.1f\n", mibs, seed, uptime());
    fflush(stdout);

    for (;;) {
        double start = uptime();
        size_t first_bad = 0;
        size_t bad = verify(&first_bad);
        /* A dirty page not as last written counts as one bad MiB. */
        size_t stale = dirty.area ? dirty_verify() : 0;
        double now = uptime();
        int ms = (int)((now - start) * 1000);
        pass++;
        dirty_fields(fields, sizeof(fields), stale);
        if (bad == 0 && stale == 0) {
            printf(TAG " pass=%lu ok seed=%08" PRIx32 " uptime=%.1f verify_ms=%d%s\n", pass, seed,
                   now, ms, fields);
        } else {
            printf(TAG " pass=%lu FAIL mib=%zu bad=%zu seed=%08" PRIx32
                       " uptime=%.1f verify_ms=%d%s\n",
                   pass, bad ? first_bad : mibs, bad + (stale != 0), seed, now, ms, fields);
        }
        fflush(stdout);
        sleep_until(start + 1.0);
    }
}
