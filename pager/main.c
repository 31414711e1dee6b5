/* savefs-pager: serves one lazy restore (pager.h) from a snapshot directory to a QEMU waiting
 * with -incoming defer -S, postcopy-ram on and migrate-incoming on SOCKET. main only calls the
 * steps: the manifest, opening the snapshot (every refusal happens there, before QEMU is
 * touched), serving, the figures, and the progress lines of --events (events.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "events.h"
#include "hot.h"
#include "pager.h"
#include "trust.h"

enum { PG_EXIT_OK = 0, PG_EXIT_FAILED = 1, PG_EXIT_REFUSED = 2, PG_EXIT_USAGE = 64 };

/* The descriptor FD given to --events, checked open; -1 if it is not a number or not open. */
static int events_fd(const char *arg)
{
    char *end;
    long fd = strtol(arg, &end, 10);

    if (*arg == '\0' || *end || fd < 0 || fd > 65535 || fcntl((int)fd, F_GETFD) < 0)
        return -1;
    return (int)fd;
}

static int usage(void)
{
    fprintf(stderr, "usage: savefs-pager [--readers N] [--events FD] [--resume] [--digest DIGEST] "
                    "SNAPSHOT_DIR SOCKET\n");
    return PG_EXIT_USAGE;
}

/* Opens the snapshot in DIR; with DIGEST, only if its manifest is the one whose digest the job
 * decided to run (what savefs checked is what is served, whatever changed since). */
static int open_snapshot(const char *dir, const char *digest, struct pg_snap **s, char *err,
                         size_t errlen)
{
    char path[4096], ours[TRUST_DIGEST_MAX] = "";
    struct manifest m;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", dir, MANIFEST_NAME);
    if ((rc = manifest_read(path, &m, err, errlen)))
        return rc;
    if (digest && (trust_digest(&m, ours, sizeof(ours)) || strcmp(ours, digest))) {
        snprintf(err, errlen, "its manifest's digest is %s, not %s as decided", ours, digest);
        manifest_free(&m);
        return -EPERM;
    }
    rc = pg_snap_open(s, dir, m.files, m.nfiles, err, errlen);
    manifest_free(&m);
    return rc;
}

/* The prefetch order from a previous restore's fault log HOT, and this restore's log FLOG: both
 * help, neither is needed (a first restore has no log), so a failure is only said. */
static void prefetch_setup(struct pg_opts *o, const struct pg_snap *s, const char *hot,
                           struct pg_hot *list, const char *flog)
{
    char err[512];
    int rc = hot ? pg_hot_load(list, hot, s, err, sizeof(err)) : -ENOENT;

    if (rc == 0)
        o->hot = list;
    else if (rc != -ENOENT)
        fprintf(stderr, "savefs-pager: no hot pages first: %s\n", err);
    if (flog && !(o->fault_log = fopen(flog, "we")))
        fprintf(stderr, "savefs-pager: no fault log: %s: %s\n", flog, strerror(errno));
}

static void report(double opened, const struct pg_snap *s, const struct pg_stats *st)
{
    printf("savefs-pager: snapshot opened %.3f s (main read %.3f s: %zu bytes, %s; channels "
           "%.3f s, map %.3f s); from then: connected %.3f s, devices sent %.3f s, running %.3f "
           "s, last page %.3f s, done %.3f s; the writer waited %.3f s for pages to send, %.3f s "
           "in send\n",
           opened, s->t_main, s->main_read, s->main_parts ? "its head and device state" : "whole",
           s->t_channels, s->t_map, st->t_connected, st->t_devices_sent, st->t_running,
           st->t_last_page, st->t_shut, st->t_waited, st->t_send);
    printf("savefs-pager: %llu data pages, %llu zero pages (%llu in QEMU before, %llu hot first), "
           "%.1f MiB written; %llu requests (%llu pages): median %.3f ms, p99 %.3f ms, max %.3f "
           "ms\n",
           (unsigned long long)st->data_pages, (unsigned long long)st->zero_pages,
           (unsigned long long)st->had_pages, (unsigned long long)st->hot_pages,
           (double)st->bytes / (1 << 20), (unsigned long long)st->requests,
           (unsigned long long)st->requested_pages, st->req_median_ms, st->req_p99_ms,
           st->req_max_ms);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"readers", required_argument, NULL, 'r'},
                                             {"events", required_argument, NULL, 'e'},
                                             {"resume", no_argument, NULL, 'R'},
                                             {"digest", required_argument, NULL, 'd'},
                                             {"hot", required_argument, NULL, 'h'},
                                             {"fault-log", required_argument, NULL, 'f'},
                                             {NULL, 0, NULL, 0}};
    /* The job starts the pager beside QEMU: QEMU's start (seconds on a loaded host) is waited
     * for here. */
    struct pg_opts o = {.readers = 4, .connect_ms = 60000};
    struct pg_events ev;
    const char *digest = NULL, *hot = NULL, *flog = NULL;
    struct pg_hot hotlist = {0};
    int evfd = -1;
    double t0 = pg_now(), opened;
    struct pg_snap *s = NULL;
    struct pg_stats st;
    char err[1024] = "";
    int c, rc;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'e' && (evfd = events_fd(optarg)) >= 0)
            continue;
        if (c == 'R' && (o.resume = 1))
            continue;
        if (c == 'd' && (digest = optarg))
            continue;
        if (c == 'h' && (hot = optarg))
            continue;
        if (c == 'f' && (flog = optarg))
            continue;
        if (c != 'r' || (o.readers = atoi(optarg)) < 1 || o.readers > PG_MAX_READERS)
            return usage();
    }
    if (argc - optind != 2)
        return usage();
    /* A job that stopped reading the events must not end the restore it no longer watches. */
    signal(SIGPIPE, SIG_IGN);
    pg_events_init(&ev, evfd);
    o.ev = &ev;
    if ((rc = open_snapshot(argv[optind], digest, &s, err, sizeof(err)))) {
        fprintf(stderr, "savefs-pager: cannot serve %s lazily: %s\n", argv[optind], err);
        pg_events_fail(&ev, err);
        pg_events_destroy(&ev);
        return PG_EXIT_REFUSED;
    }
    prefetch_setup(&o, s, hot, &hotlist, flog);
    opened = pg_now() - t0;
    rc = pg_serve(s, argv[optind + 1], &o, &st, err, sizeof(err));
    if (o.fault_log && fclose(o.fault_log))
        fprintf(stderr, "savefs-pager: %s: %s\n", flog, strerror(errno));
    pg_hot_free(&hotlist);
    report(opened, s, &st);
    /* The figures before the reason: a reader of the log's last lines (the job) gets the why. */
    fflush(stdout);
    if (rc) {
        fprintf(stderr, "savefs-pager: %s\n", err);
        pg_events_fail(&ev, err);
    } else {
        pg_events_done(&ev, pg_now() - t0);
    }
    pg_snap_free(s);
    pg_events_destroy(&ev);
    return rc ? PG_EXIT_FAILED : PG_EXIT_OK;
}
