/* savefs: shows every QEMU VM as a directory; `echo 4 > VM/save` saves it, moving a snapshot into
 * VM/restore/ restores it. main() parses options, sets up the store and mounts. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "import.h"
#include "manifest.h"
#include "job.h"
#include "sfs.h"
#include "trust.h"
#include "words.h"

#include <fuse_lowlevel.h>

#define WATCHDOG_DEFAULT_S 20

#define QEMU_MAX 16

/* FUSE workers kept waiting for requests: tar and cp keep a few busy, jobs one per VM. */
#define IDLE_THREADS 16

struct options {
    char *store;
    char *qmp_dir;
    char *trust_key;
    char *path_map;
    char *qemu[QEMU_MAX];
    int nqemu;
    int watchdog_s;
    int help;
    int version;
};

enum { KEY_QEMU };

#define OPT(t, f)                                                                                  \
    {                                                                                              \
        t, offsetof(struct options, f), 1                                                          \
    }
static const struct fuse_opt option_spec[] = {
    OPT("--store=%s", store),
    OPT("--store %s", store),
    OPT("--qmp-dir=%s", qmp_dir),
    OPT("--qmp-dir %s", qmp_dir),
    OPT("--watchdog=%d", watchdog_s),
    OPT("--watchdog %d", watchdog_s),
    OPT("--trust-key=%s", trust_key),
    OPT("--trust-key %s", trust_key),
    OPT("--path-map=%s", path_map),
    OPT("--path-map %s", path_map),
    FUSE_OPT_KEY("--qemu=", KEY_QEMU),
    FUSE_OPT_KEY("--qemu ", KEY_QEMU),
    OPT("-h", help),
    OPT("--help", help),
    OPT("-V", version),
    OPT("--version", version),
    FUSE_OPT_END,
};

static void usage(const char *prog)
{
    printf("usage: %s [options] MOUNTPOINT\n\n"
           "Shows every QEMU VM as a directory: `echo 4 > MOUNTPOINT/VM/save` saves it,\n"
           "`mv MOUNTPOINT/VM/snapshots/S MOUNTPOINT/VM/restore/` restores it.\n\n"
           "savefs options:\n"
           "    --store DIR       where snapshots live (root: /var/lib/savefs,\n"
           "                      others: $XDG_DATA_HOME/savefs)\n"
           "    --qmp-dir DIR     where VMs' QMP sockets are: a VM NAME is a QEMU started with\n"
           "                      -qmp unix:DIR/NAME.qmp,server=on,wait=off (root: /run/savefs,\n"
           "                      others: $XDG_RUNTIME_DIR/savefs)\n"
           "    --watchdog SEC    kill a restoring QEMU whose stream stalls this long (default "
           "%d)\n"
           "    --trust-key FILE  the fleet's shared key: sign saves with it, restore what it\n"
           "                      signed as it is (16+ random bytes, mode 0600)\n"
           "    --qemu PATH       a QEMU binary that restores may start (repeatable; default\n"
           "                      every /usr/bin/qemu-system-*)\n"
           "    --path-map FILE   this host's path map, {\"/from\": \"/to\"} (see docs/trust.md)\n"
           "    -f                stay in the foreground\n"
           "    -o OPT[,OPT...]   FUSE mount options\n"
           "    -h, --help        this help\n"
           "    -V, --version     the version\n\n"
           "Unmount with: fusermount3 -u MOUNTPOINT\n\n"
           "%s accept [--store DIR] VM SNAPSHOT [DIGEST]\n"
           "    shows what snapshot SNAPSHOT of VM would run (without DIGEST), or accepts it\n"
           "    for this host (with the digest that was shown): see docs/trust.md\n",
           prog, WATCHDOG_DEFAULT_S, prog);
}

/* --qemu PATH, repeatable: fuse_opt hands over "--qemu=PATH" or "--qemuPATH". */
static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    struct options *o = data;
    const char *path = arg + strlen("--qemu") + (arg[strlen("--qemu")] == '=');

    (void)outargs;
    if (key != KEY_QEMU)
        return 1;
    if (o->nqemu == QEMU_MAX) {
        fprintf(stderr, "savefs: at most %d --qemu\n", QEMU_MAX);
        return -1;
    }
    o->qemu[o->nqemu] = strdup(path);
    return o->qemu[o->nqemu++] ? 0 : -1;
}

/* $VAR/savefs, or HOME/FALLBACK/savefs when VAR is unset. */
static char *user_dir(const char *var, const char *fallback)
{
    const char *base = getenv(var), *home = getenv("HOME");
    char *dir = NULL;

    if (base && base[0] == '/')
        return asprintf(&dir, "%s/savefs", base) < 0 ? NULL : dir;
    if (fallback && home)
        return asprintf(&dir, "%s/%s/savefs", home, fallback) < 0 ? NULL : dir;
    return asprintf(&dir, "/tmp/savefs-%d", (int)getuid()) < 0 ? NULL : dir;
}

static int default_dirs(struct options *o)
{
    int root = geteuid() == 0;

    if (!o->store)
        o->store = root ? strdup("/var/lib/savefs") : user_dir("XDG_DATA_HOME", ".local/share");
    if (!o->qmp_dir)
        o->qmp_dir = root ? strdup("/run/savefs") : user_dir("XDG_RUNTIME_DIR", NULL);
    return o->store && o->qmp_dir ? 0 : -ENOMEM;
}

/* An absolute path: the daemon changes its directory to /. */
static int make_absolute(char **path)
{
    char cwd[PATH_MAX], *abs;

    if ((*path)[0] == '/')
        return 0;
    if (!getcwd(cwd, sizeof(cwd)) || asprintf(&abs, "%s/%s", cwd, *path) < 0)
        return -errno;
    free(*path);
    *path = abs;
    return 0;
}

static struct fuse_session *signal_session;
static struct job_ctx *signal_ctx;

/* SIGTERM, SIGINT, SIGHUP: cancel running jobs (each leaves its VM as it was) and leave the loop.
 * libfuse's own handler would only leave the loop, which then waits for every job to end. */
static void on_exit_signal(int sig)
{
    (void)sig;
    job_shutdown_signal(signal_ctx);
    fuse_session_exit(signal_session);
}

static int set_signal_handlers(struct fuse_session *se, struct job_ctx *ctx)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    struct sigaction sa = {.sa_handler = on_exit_signal};

    signal_session = se;
    signal_ctx = ctx;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (sigaction(sigs[i], &sa, NULL) < 0)
            return -errno;
    return 0;
}

static void log_msg(const char *msg)
{
    syslog(LOG_INFO, "%s", msg);
    fprintf(stderr, "savefs: %s\n", msg);
}

/* What a mounted savefs holds, made in this order and freed in the reverse one. */
struct daemon {
    struct trust *trust;
    struct job_ctx *job;
    struct import *imp;
    struct sfs_ctx sfs;
};

static int daemon_open(struct daemon *d, const struct options *o, char *err, size_t errlen)
{
    struct trust_config tc = {.store = o->store,
                              .key_file = o->trust_key,
                              .qemu = o->qemu,
                              .nqemu = o->nqemu,
                              .path_map_file = o->path_map};
    struct job_config cfg = {
        .store = o->store, .qmp_dir = o->qmp_dir, .watchdog_ms = o->watchdog_s * 1000};
    int rc;

    d->sfs.store_fd = -1;
    if ((rc = trust_new(&d->trust, &tc, err, errlen)))
        return rc;
    cfg.trust = d->trust;
    if ((rc = job_ctx_new(&d->job, &cfg, log_msg, err, errlen)))
        return rc;
    if ((rc = import_new(&d->imp, d->job, d->trust)) ||
        (rc = sfs_ctx_init(&d->sfs, d->job, d->imp)))
        snprintf(err, errlen, "cannot open the store %s: %s", o->store, strerror(-rc));
    return rc;
}

/* Imports first: they may wait for a restore job, which the job context then ends. */
static void daemon_close(struct daemon *d)
{
    if (d->imp)
        import_free(d->imp);
    if (d->job)
        job_ctx_free(d->job);
    trust_free(d->trust);
    sfs_ctx_close(&d->sfs);
}

static int loop(struct fuse *fuse, const struct fuse_cmdline_opts *cl)
{
    struct fuse_loop_config *cfg = fuse_loop_cfg_create();
    int rc;

    fuse_loop_cfg_set_clone_fd(cfg, cl->clone_fd);
    fuse_loop_cfg_set_max_threads(cfg, 64);
    /* Idle workers wait for the next request instead of ending: a stream of small requests
     * (tar's 10 KiB writes) must not make and end a thread for each. */
    fuse_loop_cfg_set_idle_threads(cfg, cl->max_idle_threads == 0 || cl->max_idle_threads > 64
                                            ? IDLE_THREADS
                                            : cl->max_idle_threads);
    rc = fuse_loop_mt(fuse, cfg) ? 1 : 0;
    fuse_loop_cfg_destroy(cfg);
    return rc;
}

static int run(struct fuse_args *args, struct options *o)
{
    struct fuse_cmdline_opts cl;
    struct daemon d = {0};
    struct fuse *fuse = NULL;
    char err[1024];
    int rc = 1;

    if (fuse_parse_cmdline(args, &cl) != 0)
        return 1;
    if (!cl.mountpoint) {
        fprintf(stderr, "savefs: no mountpoint (see --help)\n");
        goto out;
    }
    if (daemon_open(&d, o, err, sizeof(err))) {
        fprintf(stderr, "savefs: %s\n", err);
        goto out;
    }
    /* The kernel checks every mode: with -o allow_other, others see only what the modes allow
     * (snapshots are 0600 in 0700 directories). */
    fuse_opt_add_arg(args, "-odefault_permissions");
    fuse = fuse_new(args, &sfs_ops, sizeof(sfs_ops), &d.sfs);
    if (!fuse || fuse_mount(fuse, cl.mountpoint) != 0)
        goto out;
    if (fuse_daemonize(cl.foreground) == 0 &&
        set_signal_handlers(fuse_get_session(fuse), d.job) == 0)
        rc = loop(fuse, &cl);
    fuse_unmount(fuse);
out:
    if (fuse)
        fuse_destroy(fuse);
    daemon_close(&d);
    free(cl.mountpoint);
    return rc;
}

/* savefs accept [--store DIR] VM SNAPSHOT [DIGEST] */
static int accept_args(int argc, char **argv, struct options *o, char **pos)
{
    int n = 0;

    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--store=", 8) == 0)
            o->store = strdup(argv[i] + 8);
        else if (strcmp(argv[i], "--store") == 0 && i + 1 < argc)
            o->store = strdup(argv[++i]);
        else if (argv[i][0] == '-' || n == 3)
            return -EINVAL;
        else
            pos[n++] = argv[i];
    }
    return n < 2 ? -EINVAL : 0;
}

/* Shows what the snapshot would run, for a review before accepting it. */
static int show_snapshot(const char *store, const char *vm, const char *snap)
{
    char path[PATH_MAX], err[1024], digest[TRUST_DIGEST_MAX];
    struct manifest m;

    snprintf(path, sizeof(path), "%s/%s/snapshots/%s/%s", store, vm, snap, MANIFEST_NAME);
    if (manifest_read(path, &m, err, sizeof(err))) {
        fprintf(stderr, "savefs: %s\n", err);
        return 1;
    }
    trust_digest(&m, digest, sizeof(digest));
    printf("binary: %s\ncwd: %s\nargv:\n", m.binary, m.cwd ? m.cwd : "/");
    for (int i = 0; i < m.argc; i++)
        printf("  %s\n", m.argv[i]);
    printf("digest: %s\n\nTo accept it for this host: savefs accept --store %s %s %s %s\n", digest,
           store, vm, snap, digest);
    manifest_free(&m);
    return 0;
}

static int run_accept(int argc, char **argv)
{
    struct options o = {0};
    char *pos[3] = {NULL, NULL, NULL}, err[1024];
    int rc = 1;

    if (accept_args(argc, argv, &o, pos) || default_dirs(&o) || !words_valid_name(pos[0]) ||
        !words_valid_name(pos[1])) {
        fprintf(stderr, "usage: savefs accept [--store DIR] VM SNAPSHOT [DIGEST]\n");
        goto out;
    }
    if (!pos[2]) {
        rc = show_snapshot(o.store, pos[0], pos[1]);
        goto out;
    }
    struct trust_subject s = {o.store, pos[0], pos[1]};
    if (trust_accept(NULL, &s, pos[2], err, sizeof(err))) {
        fprintf(stderr, "savefs: %s\n", err);
        goto out;
    }
    printf("accepted %s of %s (%s) in %s/%s/local.json\n", pos[1], pos[0], pos[2], o.store, pos[0]);
    rc = 0;
out:
    free(o.store);
    free(o.qmp_dir);
    return rc;
}

static void options_free(struct fuse_args *args, struct options *o)
{
    fuse_opt_free_args(args);
    free(o->store);
    free(o->qmp_dir);
    free(o->trust_key);
    free(o->path_map);
    for (int i = 0; i < o->nqemu; i++)
        free(o->qemu[i]);
}

int main(int argc, char *argv[])
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct options o = {.watchdog_s = WATCHDOG_DEFAULT_S};
    int rc = 1;

    if (argc > 1 && strcmp(argv[1], "accept") == 0)
        return run_accept(argc - 2, argv + 2);
    if (fuse_opt_parse(&args, &o, option_spec, opt_proc) == -1)
        goto out;
    if (o.help || o.version) {
        if (o.help) {
            usage(argv[0]);
            fuse_lib_help(&args);
        } else {
            printf("savefs %s (FUSE %s)\n", SAVEFS_VERSION, fuse_pkgversion());
        }
        rc = 0;
        goto out;
    }
    if (o.watchdog_s < 1 || default_dirs(&o) || make_absolute(&o.store) ||
        make_absolute(&o.qmp_dir)) {
        fprintf(stderr, "savefs: bad --store, --qmp-dir or --watchdog\n");
        goto out;
    }
    openlog("savefs", LOG_PID, LOG_DAEMON);
    signal(SIGPIPE, SIG_IGN);
    rc = run(&args, &o);
out:
    options_free(&args, &o);
    return rc;
}
