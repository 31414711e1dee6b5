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

#include "adopt.h"
#include "cli.h"
#include "follow.h"
#include "import.h"
#include "manifest.h"
#include "job.h"
#include "localdef.h"
#include "preflight.h"
#include "sfs.h"
#include "sfs_io.h"
#include "sfs_log.h"
#include "store.h"
#include "trust.h"

#include <fuse_lowlevel.h>

#define WATCHDOG_DEFAULT_S 20
/* Shorter than the time the bricks take to let a cut-off host's locks go (docs/fleet.md). */
#define FENCE_DEFAULT_S 15

#define QEMU_MAX 16

/* FUSE workers kept waiting for requests: tar and cp keep a few busy, jobs one per VM. */
#define IDLE_THREADS 16
/* FUSE workers at most, besides those that readers of progress files hold (follow.h). */
#define WORKERS 64
/* libvirt's system instance, where its QEMU domains are. */
#define LIBVIRT_DEFAULT_URI "qemu:///system"

struct options {
    char *store;
    char *qmp_dir;
    char *trust_key;
    char *path_map;
    char *host;
    char *pager;
    char *libvirt;    /* --libvirt URI: "none" for none */
    char *mountpoint; /* the last argument that is no option, as fuse_parse_cmdline takes it */
    char *qemu[QEMU_MAX];
    int nqemu;
    int qmp_dir_given; /* --qmp-dir given: it must exist (preflight.h) */
    int watchdog_s;
    int fence_s;
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
    OPT("--host=%s", host),
    OPT("--host %s", host),
    OPT("--fence=%d", fence_s),
    OPT("--fence %d", fence_s),
    OPT("--pager=%s", pager),
    OPT("--pager %s", pager),
    OPT("--libvirt=%s", libvirt),
    OPT("--libvirt %s", libvirt),
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
           "    --host NAME       this host's name in a store shared by a fleet and in its\n"
           "                      VMs' leases (default: the hostname; see docs/fleet.md)\n"
           "    --fence SEC       stop the QEMUs savefs started when the store has not answered\n"
           "                      this long (default %d; see docs/fleet.md)\n"
           "    --pager PATH      the page server of lazy restores (default\n"
           "                      " SAVEFS_PAGER ")\n"
           "    --libvirt URI     libvirt's QEMU domains are VMs too (default qemu:///system;\n"
           "                      none: no libvirt; see docs/libvirt.md)\n"
           "    -f                stay in the foreground\n"
           "    -o OPT[,OPT...]   FUSE mount options\n"
           "    -h, --help        this help\n"
           "    -V, --version     the version\n\n"
           "Unmount with: fusermount3 -u MOUNTPOINT\n\n"
           "%s accept [--store DIR] [--qmp-dir DIR] [--host NAME] [--] VM SNAPSHOT [DIGEST]\n"
           "    shows what snapshot SNAPSHOT of VM would run (without DIGEST), or accepts it\n"
           "    for this host (with the digest that was shown): see docs/trust.md\n\n"
           "%s adopt [--store DIR] [--trust-key FILE] [--host NAME] FROM SNAPSHOT TO [NEWNAME]\n"
           "    copies snapshot SNAPSHOT of VM FROM to VM TO (as NEWNAME), its manifest naming\n"
           "    TO and signed: the one way a snapshot goes to another VM\n\n",
           prog, WATCHDOG_DEFAULT_S, FENCE_DEFAULT_S, prog, prog);
    cli_usage(stdout);
    putchar('\n');
    preflight_usage();
    putchar('\n');
}

/* --qemu PATH, repeatable: fuse_opt hands over "--qemu=PATH" or "--qemuPATH". The mountpoint is
 * noted for the checks before the mount (fuse_parse_cmdline refuses a missing one with its own
 * words and status) and kept in the arguments. */
static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    struct options *o = data;
    const char *path = arg + strlen("--qemu") + (arg[strlen("--qemu")] == '=');

    (void)outargs;
    if (key == FUSE_OPT_KEY_NONOPT) {
        free(o->mountpoint);
        return (o->mountpoint = strdup(arg)) ? 1 : -1;
    }
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
                              .path_map_file = o->path_map,
                              .qmp_dir = o->qmp_dir};
    struct job_config cfg = {.store = o->store,
                             .qmp_dir = o->qmp_dir,
                             .watchdog_ms = o->watchdog_s * 1000,
                             .host = store_host(),
                             .fence_ms = o->fence_s * 1000,
                             .pager = o->pager,
                             .libvirt_uri = LIBVIRT_DEFAULT_URI,
                             .libvirt_required = o->libvirt != NULL};
    int rc;

    d->sfs.store_fd = -1;
    if ((rc = trust_new(&d->trust, &tc, err, errlen)))
        return rc;
    cfg.trust = d->trust;
    if (o->libvirt)
        cfg.libvirt_uri = strcmp(o->libvirt, "none") == 0 ? NULL : o->libvirt;
    if ((rc = job_ctx_new(&d->job, &cfg, sfs_log, err, errlen)))
        return rc;
    job_recover(d->job, sfs_log);
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
    /* Readers of progress files wait for their next line in a worker each: they get threads of
     * their own on top of those that serve everything else. */
    fuse_loop_cfg_set_max_threads(cfg, WORKERS + FOLLOW_READERS_MAX);
    /* Idle workers wait for the next request instead of ending: a stream of small requests
     * (tar's 10 KiB writes) must not make and end a thread for each. */
    fuse_loop_cfg_set_idle_threads(cfg, cl->max_idle_threads == 0 || cl->max_idle_threads > WORKERS
                                            ? IDLE_THREADS
                                            : cl->max_idle_threads);
    rc = fuse_loop_mt(fuse, cfg) ? 1 : 0;
    fuse_loop_cfg_destroy(cfg);
    return rc;
}

static int run(struct fuse_args *args, struct options *o)
{
    struct fuse_cmdline_opts cl = {0};
    struct preflight pf = {o->mountpoint, o->store, o->qmp_dir, o->qmp_dir_given};
    struct daemon d = {0};
    struct fuse *fuse = NULL;
    char err[1024];
    int lock_fd = -1, rc = PREFLIGHT_USAGE;

    if (!o->mountpoint) {
        fprintf(stderr, "savefs: no mountpoint (see --help)\n");
        return rc;
    }
    if (o->host && !store_host_set(o->host)) {
        fprintf(stderr, "savefs: --host %s: 1 to 64 of A-Za-z0-9._-, not starting with '.'\n",
                o->host);
        return rc;
    }
    if ((rc = preflight_check(&pf, &lock_fd, err, sizeof(err)))) {
        fprintf(stderr, "savefs: %s\n", err);
        goto out;
    }
    rc = PREFLIGHT_USAGE;
    if (fuse_parse_cmdline(args, &cl) != 0 || !cl.mountpoint)
        goto out;
    rc = 1;
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
    if (sfs_io_install(fuse) != 0) {
        fprintf(stderr, "savefs: cannot set up the mount's I/O\n");
        fuse_unmount(fuse);
        goto out;
    }
    /* The leases' and the versions' threads start in the daemon: a fork keeps none. */
    if (fuse_daemonize(cl.foreground) == 0 &&
        set_signal_handlers(fuse_get_session(fuse), d.job) == 0 && job_leases_start(d.job) == 0) {
        job_recover_pushes(d.job, sfs_log);
        job_versions_warm(d.job);
        rc = loop(fuse, &cl);
    }
    fuse_unmount(fuse);
out:
    if (fuse)
        fuse_destroy(fuse);
    daemon_close(&d);
    if (lock_fd >= 0)
        close(lock_fd);
    free(cl.mountpoint);
    return rc;
}

/* savefs accept [--store DIR] [--qmp-dir DIR] [--host NAME] [--] VM SNAPSHOT [DIGEST] */
static int accept_args(int argc, char **argv, struct options *o, char **pos)
{
    int n = 0, names = 0;

    for (int i = 0; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        size_t len = eq ? (size_t)(eq - argv[i]) : strlen(argv[i]);
        char **dir = len == 7 && strncmp(argv[i], "--store", 7) == 0     ? &o->store
                     : len == 9 && strncmp(argv[i], "--qmp-dir", 9) == 0 ? &o->qmp_dir
                     : len == 6 && strncmp(argv[i], "--host", 6) == 0    ? &o->host
                                                                         : NULL;

        if (!names && dir && (eq || i + 1 < argc)) {
            free(*dir);
            *dir = strdup(eq ? eq + 1 : argv[++i]);
        } else if (!names && strcmp(argv[i], "--") == 0) {
            names = 1; /* what follows are names, even "-rf" */
        } else if ((!names && argv[i][0] == '-') || n == 3) {
            return -EINVAL;
        } else {
            pos[n++] = argv[i];
        }
    }
    return n < 2 ? -EINVAL : 0;
}

/* S quoted and escaped: a manifest's strings reach the terminal only this way, so that no \r or
 * ESC sequence in them can hide what precedes it. */
static void put_quoted(const char *s)
{
    char *q = qemuopts_quote(s);

    fputs(q ? q : "(out of memory)", stdout);
    free(q);
}

/* An error of accept, which may hold text of the manifest: bytes that are not printable ASCII
 * are written as \xHH, as in put_quoted. */
static void accept_error(const char *err)
{
    fputs("savefs: ", stderr);
    for (const unsigned char *p = (const unsigned char *)err; *p; p++)
        fprintf(stderr, *p >= 0x20 && *p < 0x7f ? "%c" : "\\x%02x", *p);
    fputc('\n', stderr);
}

/* The host paths of RV, one a line; the number of them that are refused. */
static int show_paths(const struct trust_review *rv)
{
    int n = 0, refused = 0;

    printf("host paths QEMU would open (each also in argv above):\n");
    for (int i = 0; i < rv->rep.n; i++) {
        const struct qemuopts_finding *f = &rv->rep.f[i];

        if (f->kind != QEMUOPTS_PATH)
            continue;
        n++;
        refused += rv->note[i].refused != 0;
        printf("  %-8s%-17s", rv->note[i].refused ? "REFUSED" : "",
               qemuopts_access_name(f->access));
        put_quoted(rv->note[i].abs);
        printf("  (argv[%d] ", f->opt);
        put_quoted(rv->m.argv[f->opt]);
        printf("%s%s)%s%s\n", f->why[0] ? " " : "", f->why, rv->note[i].refused ? ": " : "",
               rv->note[i].why);
    }
    printf("%s\n", n ? "" : "  (none)\n");
    return refused;
}

/* This host's local definition of a VM (localdef.h), in a static buffer. */
static const char *own_localdef(void)
{
    static char name[LOCALDEF_NAME_MAX];

    localdef_own_name(name, sizeof(name));
    return name;
}

/* --host of the accept and adopt commands: the host whose local definitions they read and write
 * (the mount's --host). 0, or -EINVAL for a bad name. */
static int set_host(const char *host)
{
    return host && !store_host_set(host) ? -EINVAL : 0;
}

static void show_allowances(const struct trust_review *rv, const char *store, const char *vm)
{
    int n = 0;

    printf("options that need a local allowance (\"allow\" in %s/%s/%s):\n", store, vm,
           own_localdef());
    for (int i = 0; i < rv->rep.n; i++) {
        const struct qemuopts_finding *f = &rv->rep.f[i];

        if (f->kind != QEMUOPTS_ALLOWANCE)
            continue;
        n++;
        printf("  argv[%d] ", f->opt);
        put_quoted(rv->m.argv[f->opt]);
        if (f->opt + 1 < rv->m.argc) {
            putchar(' ');
            put_quoted(rv->m.argv[f->opt + 1]);
        }
        printf(": %s%s\n", rv->note[i].refused ? "" : "(allowed) ", f->why);
    }
    printf("%s\n", n ? "" : "  (none)\n");
}

/* Shows what the snapshot would run, for a review before accepting it. */
static int show_snapshot(const struct trust *t, const struct trust_subject *s)
{
    struct trust_review rv;
    char err[1024];
    int refused;

    if (trust_review(t, s, &rv, err, sizeof(err))) {
        accept_error(err);
        return 1;
    }
    printf("binary: ");
    put_quoted(rv.m.binary);
    printf("\ncwd:    ");
    put_quoted(rv.m.cwd);
    printf("\nargv:\n");
    for (int i = 0; i < rv.m.argc; i++) {
        printf("  [%d] ", i);
        put_quoted(rv.m.argv[i]);
        putchar('\n');
    }
    printf("\n");
    refused = show_paths(&rv);
    show_allowances(&rv, s->store, s->vm);
    printf("digest: %s\n\n", rv.digest);
    if (refused)
        printf("It cannot be accepted on this host: %d path%s above %s refused.\n", refused,
               refused == 1 ? "" : "s", refused == 1 ? "is" : "are");
    else
        printf("To accept it for this host: savefs accept --store %s --host %s -- %s %s %s\n",
               s->store, store_host(), s->vm, s->snap, rv.digest);
    trust_review_free(&rv);
    return 0;
}

static int run_accept(int argc, char **argv)
{
    struct options o = {0};
    char *pos[3] = {NULL, NULL, NULL}, err[1024];
    struct trust *t = NULL;
    struct trust_config tc = {0};
    int rc = 1;

    if (accept_args(argc, argv, &o, pos) || set_host(o.host) || default_dirs(&o) ||
        make_absolute(&o.store) || make_absolute(&o.qmp_dir) || !store_valid_name(pos[0]) ||
        !store_valid_name(pos[1])) {
        fprintf(stderr, "usage: savefs accept [--store DIR] [--qmp-dir DIR] [--host NAME] [--] VM "
                        "SNAPSHOT [DIGEST]\n");
        goto out;
    }
    tc.store = o.store;
    tc.qmp_dir = o.qmp_dir;
    if (trust_new(&t, &tc, err, sizeof(err))) {
        accept_error(err);
        goto out;
    }
    struct trust_subject s = {o.store, pos[0], pos[1]};
    if (!pos[2]) {
        rc = show_snapshot(t, &s);
        goto out;
    }
    if (trust_accept(t, &s, pos[2], err, sizeof(err))) {
        accept_error(err);
        goto out;
    }
    printf("accepted %s of %s (%s) in %s/%s/%s\n", pos[1], pos[0], pos[2], o.store, pos[0],
           own_localdef());
    rc = 0;
out:
    trust_free(t);
    free(o.store);
    free(o.qmp_dir);
    free(o.host);
    return rc;
}

/* savefs adopt [--store DIR] [--trust-key FILE] [--host NAME] FROM SNAPSHOT TO [NEWNAME] */
static int adopt_args(int argc, char **argv, struct options *o, char **pos)
{
    int n = 0;

    for (int i = 0; i < argc; i++) {
        char **opt = strcmp(argv[i], "--store") == 0       ? &o->store
                     : strcmp(argv[i], "--trust-key") == 0 ? &o->trust_key
                     : strcmp(argv[i], "--host") == 0      ? &o->host
                                                           : NULL;

        if (opt && i + 1 < argc && !*opt)
            *opt = strdup(argv[++i]);
        else if (argv[i][0] == '-' || n == 4)
            return -EINVAL;
        else
            pos[n++] = argv[i];
    }
    if (n == 3)
        pos[3] = pos[1];
    return n < 3 ? -EINVAL : 0;
}

static int run_adopt(int argc, char **argv)
{
    struct options o = {0};
    char *pos[4] = {NULL}, err[1024];
    struct trust *t = NULL;
    int rc = 1;

    if (adopt_args(argc, argv, &o, pos) || set_host(o.host) || default_dirs(&o) ||
        !store_valid_name(pos[0]) || !store_valid_name(pos[1]) || !store_valid_name(pos[2]) ||
        !store_valid_name(pos[3])) {
        fprintf(stderr, "usage: savefs adopt [--store DIR] [--trust-key FILE] [--host NAME] FROM "
                        "SNAPSHOT TO [NEWNAME]\n");
        goto out;
    }
    struct trust_config tc = {.store = o.store, .key_file = o.trust_key};
    struct adoption a = {o.store, pos[0], pos[1], pos[2], pos[3]};
    if (trust_new(&t, &tc, err, sizeof(err)) || adopt_snapshot(t, &a, err, sizeof(err))) {
        fprintf(stderr, "savefs: %s\n", err);
        goto out;
    }
    printf("adopted %s of %s as %s of %s (signed); it runs %s's command line unless "
           "%s/%s/%s gives %s its own\n",
           pos[1], pos[0], pos[3], pos[2], pos[0], o.store, pos[2], own_localdef(), pos[2]);
    rc = 0;
out:
    trust_free(t);
    free(o.store);
    free(o.qmp_dir);
    free(o.trust_key);
    free(o.host);
    return rc;
}

/* The installed page server, else (a build tree) the one built beside this savefs. */
static int default_pager(struct options *o)
{
    char self[PATH_MAX], *slash;
    ssize_t n;

    if (o->pager)
        return make_absolute(&o->pager);
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (access(SAVEFS_PAGER, X_OK) < 0 && n > 0) {
        self[n] = '\0';
        if ((slash = strrchr(self, '/')))
            *slash = '\0';
        if (asprintf(&o->pager, "%s/../pager/savefs-pager", self) < 0)
            return -ENOMEM;
        if (access(o->pager, X_OK) == 0)
            return 0;
        free(o->pager);
    }
    o->pager = strdup(SAVEFS_PAGER);
    return o->pager ? 0 : -ENOMEM;
}

static void options_free(struct fuse_args *args, struct options *o)
{
    fuse_opt_free_args(args);
    free(o->store);
    free(o->qmp_dir);
    free(o->trust_key);
    free(o->path_map);
    free(o->host);
    free(o->pager);
    free(o->libvirt);
    free(o->mountpoint);
    for (int i = 0; i < o->nqemu; i++)
        free(o->qemu[i]);
}

int main(int argc, char *argv[])
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct options o = {.watchdog_s = WATCHDOG_DEFAULT_S, .fence_s = FENCE_DEFAULT_S};
    int rc = PREFLIGHT_USAGE;

    if (argc > 1 && strcmp(argv[1], "accept") == 0)
        return run_accept(argc - 2, argv + 2);
    if (argc > 1 && strcmp(argv[1], "adopt") == 0)
        return run_adopt(argc - 2, argv + 2);
    if (argc > 1 && (strcmp(argv[1], "save") == 0 || strcmp(argv[1], "restore") == 0))
        return cli_main(argc - 1, argv + 1);
    if (fuse_opt_parse(&args, &o, option_spec, opt_proc) == -1)
        goto out;
    o.qmp_dir_given = o.qmp_dir != NULL;
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
    if (o.watchdog_s < 1 || o.fence_s < 1 || default_dirs(&o) || make_absolute(&o.store) ||
        make_absolute(&o.qmp_dir) || default_pager(&o)) {
        fprintf(stderr, "savefs: bad --store, --qmp-dir, --watchdog or --fence\n");
        goto out;
    }
    openlog("savefs", LOG_PID, LOG_DAEMON);
    sfs_log_init();
    signal(SIGPIPE, SIG_IGN);
    rc = run(&args, &o);
out:
    options_free(&args, &o);
    return rc;
}
