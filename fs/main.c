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

#include "job.h"
#include "sfs.h"

#include <fuse_lowlevel.h>

#define WATCHDOG_DEFAULT_S 20

struct options {
    char *store;
    char *qmp_dir;
    int watchdog_s;
    int help;
    int version;
};

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
           "    -f                stay in the foreground\n"
           "    -o OPT[,OPT...]   FUSE mount options\n"
           "    -h, --help        this help\n"
           "    -V, --version     the version\n\n"
           "Unmount with: fusermount3 -u MOUNTPOINT\n",
           prog, WATCHDOG_DEFAULT_S);
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

static int run(struct fuse_args *args, struct options *o)
{
    struct job_config cfg = {
        .store = o->store, .qmp_dir = o->qmp_dir, .watchdog_ms = o->watchdog_s * 1000};
    struct fuse_cmdline_opts cl;
    struct job_ctx *ctx = NULL;
    struct fuse *fuse = NULL;
    char err[1024];
    int rc = 1;

    if (fuse_parse_cmdline(args, &cl) != 0)
        return 1;
    if (!cl.mountpoint) {
        fprintf(stderr, "savefs: no mountpoint (see --help)\n");
        goto out;
    }
    if (job_ctx_new(&ctx, &cfg, log_msg, err, sizeof(err))) {
        fprintf(stderr, "savefs: %s\n", err);
        goto out;
    }
    fuse = fuse_new(args, &sfs_ops, sizeof(sfs_ops), ctx);
    if (!fuse || fuse_mount(fuse, cl.mountpoint) != 0)
        goto out;
    if (fuse_daemonize(cl.foreground) != 0 || set_signal_handlers(fuse_get_session(fuse), ctx))
        goto unmount;
    {
        struct fuse_loop_config *loop = fuse_loop_cfg_create();
        fuse_loop_cfg_set_clone_fd(loop, cl.clone_fd);
        fuse_loop_cfg_set_max_threads(loop, 64);
        rc = fuse_loop_mt(fuse, loop) ? 1 : 0;
        fuse_loop_cfg_destroy(loop);
    }
unmount:
    fuse_unmount(fuse);
out:
    if (fuse)
        fuse_destroy(fuse);
    if (ctx)
        job_ctx_free(ctx);
    free(cl.mountpoint);
    return rc;
}

int main(int argc, char *argv[])
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct options o = {.watchdog_s = WATCHDOG_DEFAULT_S};
    int rc;

    if (fuse_opt_parse(&args, &o, option_spec, NULL) == -1)
        return 1;
    if (o.help) {
        usage(argv[0]);
        fuse_lib_help(&args);
        return 0;
    }
    if (o.version) {
        printf("savefs %s (FUSE %s)\n", SAVEFS_VERSION, fuse_pkgversion());
        return 0;
    }
    if (o.watchdog_s < 1 || default_dirs(&o) || make_absolute(&o.store) ||
        make_absolute(&o.qmp_dir)) {
        fprintf(stderr, "savefs: bad --store, --qmp-dir or --watchdog\n");
        return 1;
    }
    openlog("savefs", LOG_PID, LOG_DAEMON);
    signal(SIGPIPE, SIG_IGN);
    rc = run(&args, &o);
    fuse_opt_free_args(&args);
    free(o.store);
    free(o.qmp_dir);
    return rc;
}
