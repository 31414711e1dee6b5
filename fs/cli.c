/* cli: `savefs save` and `savefs restore` (cli.h). One thread does the one blocking call the
 * mount's interface is (the write of the words, the rename into restore/) and receives Ctrl-C,
 * so that the kernel interrupts that call and savefs cancels the job; the main thread shows the
 * progress meanwhile. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "cli_mount.h"

#define CLI_MOUNT_DEFAULT "/mnt/savefs"
/* The kernel's FUSE_SUPER_MAGIC, which no uapi header exports. */
#define CLI_FUSE_MAGIC 0x65735546

/* Exit statuses: one per errno a save or restore answers, so that a script can tell them apart
 * without parsing words. Documented in savefs(1) and printed by --help from this table. */
static const struct cli_exit {
    int code;
    int err; /* 0: no errno of its own */
    const char *what;
} cli_exits[] = {
    {0, 0, "done: the snapshot is durable (save), the VM runs (restore)"},
    {1, 0, "failed otherwise: the errno and the reason are printed"},
    {2, 0, "usage: a bad command line"},
    {3, ENOTCONN, "no savefs is mounted on MOUNT, or it died"},
    {4, ENOENT, "no such VM, or no such snapshot"},
    {5, EBUSY, "busy: another job runs on the VM, or (restore) its QEMU runs"},
    {6, ESRCH, "no QEMU runs as the VM to save"},
    {7, EINVAL, "save words not understood; nothing changed"},
    {8, EEXIST, "the snapshot's name is taken"},
    {9, ENOSPC, "the store is full"},
    {9, EDQUOT, NULL},
    {10, EPERM, "not allowed: an untrusted snapshot, or not the mount's owner"},
    {10, EACCES, NULL},
    {11, ESTALE, "a disk changed since the save, or the store was replaced"},
    {12, EPROTONOSUPPORT, "the snapshot needs a newer QEMU than this host's"},
    {13, EXDEV, "the snapshot belongs to another VM"},
    {14, EIO, "QEMU refused or failed, or the store failed: the reason is printed"},
    {14, ETIMEDOUT, NULL},
    {130, EINTR, "interrupted (Ctrl-C): the job was cancelled, the VM is as it was"},
};

#define CLI_NEXITS (sizeof(cli_exits) / sizeof(cli_exits[0]))

static int exit_code(int err)
{
    for (size_t i = 0; i < CLI_NEXITS; i++)
        if (cli_exits[i].err == err && err)
            return cli_exits[i].code;
    return 1;
}

void cli_usage(FILE *out)
{
    fprintf(out, "savefs save [--mount DIR] [--] VM [WORDS...]\n"
                 "    saves VM as `echo WORDS > MOUNT/VM/save` does (e.g. 8 keep-running)\n"
                 "savefs restore [--mount DIR] [--] VM SNAPSHOT\n"
                 "    restores VM as `mv MOUNT/VM/snapshots/SNAPSHOT MOUNT/VM/restore/` does\n"
                 "  MOUNT is --mount DIR, else $SAVEFS_MOUNT, else " CLI_MOUNT_DEFAULT ".\n"
                 "  Progress goes to standard output (a bar on a terminal, else a line a\n"
                 "  second), then the outcome. Ctrl-C cancels the job (the VM is left as it\n"
                 "  was) and waits for it to end. Exit status:\n");
    for (size_t i = 0; i < CLI_NEXITS; i++) {
        if (!cli_exits[i].what)
            continue;
        fprintf(out, "    %3d  %s", cli_exits[i].code, cli_exits[i].what);
        for (size_t j = i, n = 0; j < CLI_NEXITS && cli_exits[j].code == cli_exits[i].code; j++)
            if (cli_exits[j].err)
                fprintf(out, "%s%s", n++ ? ", " : " (", strerrorname_np(cli_exits[j].err));
        fputs(cli_exits[i].err ? ")\n" : "\n", out);
    }
}

/* One command; the fields below "set by the worker" are written by the thread that makes the
 * call and read once it has signalled on DONE_FD. */
struct cli_cmd {
    const char *op; /* "save" or "restore" */
    const char *mount;
    const char *vm;
    const char *snap; /* restore */
    char *words;      /* save: the words and a newline */
    int done_fd;      /* the worker writes 'd' on it when its call returned */
    /* set by the worker */
    int err;
};

/* Ctrl-C: the signal handler writes 'c' on this pipe for the main thread. */
static int cancel_fd = -1;
static volatile sig_atomic_t cancel_requested;

static void on_cancel(int sig)
{
    int saved = errno;
    struct sigaction dfl = {.sa_handler = SIG_DFL};

    cancel_requested = 1;
    if (write(cancel_fd, "c", 1) < 0) {
        /* the main thread sees the flag at its next tick */
    }
    /* A second Ctrl-C ends the command at once (the job is being cancelled all the same). */
    sigaction(sig, &dfl, NULL);
    errno = saved;
}

/* What cancels a job: Ctrl-C, and a stop of the command by kill or a closed terminal. */
static const int cancel_sigs[] = {SIGINT, SIGTERM, SIGHUP};

static void cancel_signals(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < sizeof(cancel_sigs) / sizeof(cancel_sigs[0]); i++)
        sigaddset(set, cancel_sigs[i]);
}

/* A name the mount could have: no '/', no leading '.', not empty. */
static int plain_name(const char *s)
{
    return s && s[0] && s[0] != '.' && !strchr(s, '/');
}

/* save's words as one line: a newline inside one would start a save with half of them. */
static int join_words(struct cli_cmd *c, int n, char **words)
{
    size_t len = 2;
    char *p;

    for (int i = 0; i < n; i++) {
        if (strchr(words[i], '\n'))
            return -EINVAL;
        len += strlen(words[i]) + 1;
    }
    if (!(p = c->words = calloc(1, len)))
        return -ENOMEM;
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%s%s", i ? " " : "", words[i]);
    strcpy(p, "\n");
    return 0;
}

/* 1 for --help, 0, or -EINVAL. */
static int parse(int argc, char **argv, struct cli_cmd *c)
{
    int i = 1;

    c->op = argv[0];
    c->mount = getenv("SAVEFS_MOUNT") && *getenv("SAVEFS_MOUNT") ? getenv("SAVEFS_MOUNT")
                                                                 : CLI_MOUNT_DEFAULT;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
        if (strncmp(argv[i], "--mount=", 8) == 0)
            c->mount = argv[i] + 8;
        else if (strcmp(argv[i], "--mount") == 0 && i + 1 < argc)
            c->mount = argv[++i];
        else
            return -EINVAL;
    }
    if (i == argc || !plain_name(c->vm = argv[i++]))
        return -EINVAL;
    if (strcmp(c->op, "save") == 0)
        return join_words(c, argc - i, argv + i);
    c->snap = argv[i];
    return i + 1 == argc && plain_name(c->snap) ? 0 : -EINVAL;
}

/* 0, -ENOTCONN (a savefs that died), -ENODEV (no savefs there): every savefs mount has README. */
static int check_mount(const char *mount)
{
    char path[PATH_MAX];
    struct statfs fs;
    struct stat st;

    snprintf(path, sizeof(path), "%s/README", mount);
    if (statfs(mount, &fs) < 0 || stat(path, &st) < 0)
        return errno == ENOTCONN ? -ENOTCONN : -ENODEV;
    return fs.f_type == CLI_FUSE_MAGIC && S_ISREG(st.st_mode) ? 0 : -ENODEV;
}

/* The VM, and for a restore the snapshot, exist: ENOENT is told apart from the job's errors. */
static int check_names(const struct cli_cmd *c)
{
    char path[PATH_MAX];
    struct stat st;

    /* MOUNT/README is a file, not a VM. */
    snprintf(path, sizeof(path), "%s/%s", c->mount, c->vm);
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "savefs: no VM %s on %s\n", c->vm, c->mount);
        return -ENOENT;
    }
    if (!c->snap)
        return 0;
    snprintf(path, sizeof(path), "%s/%s/snapshots/%s", c->mount, c->vm, c->snap);
    if (stat(path, &st) < 0) {
        fprintf(stderr, "savefs: no snapshot %s of %s on %s\n", c->snap, c->vm, c->mount);
        return -ENOENT;
    }
    return 0;
}

/* -EBUSY while a job runs on the VM. The mount answers EBUSY itself, except to a second write of
 * save words: the kernel holds the save file's lock for the whole of the first write, and the
 * second would wait for the first save to end and then save again. */
static int check_idle(const struct cli_cmd *c)
{
    char op[16];

    if (cli_job_running(c->mount, c->vm, op, sizeof(op)) == 1) {
        fprintf(stderr, "savefs: %s %s: busy: a %s runs on %s (EBUSY)\n", c->op, c->vm, op, c->vm);
        return -EBUSY;
    }
    return 0;
}

static int write_words(const struct cli_cmd *c)
{
    char path[PATH_MAX];
    size_t len = strlen(c->words);
    ssize_t n;
    int fd, rc = 0;

    snprintf(path, sizeof(path), "%s/%s/save", c->mount, c->vm);
    if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
        return -errno;
    /* Ctrl-C before the write reached savefs: there is nothing to cancel yet, so start nothing. */
    n = cancel_requested ? (errno = EINTR, -1) : write(fd, c->words, len);
    if (n < 0)
        rc = -errno;
    else if ((size_t)n != len)
        rc = -EIO;
    if (close(fd) < 0 && !rc)
        rc = -errno;
    return rc;
}

static int rename_into_restore(const struct cli_cmd *c)
{
    char from[PATH_MAX], to[PATH_MAX];

    snprintf(from, sizeof(from), "%s/%s/snapshots/%s", c->mount, c->vm, c->snap);
    snprintf(to, sizeof(to), "%s/%s/restore/%s", c->mount, c->vm, c->snap);
    if (cancel_requested)
        return -EINTR;
    return rename(from, to) < 0 ? -errno : 0;
}

/* The worker: Ctrl-C is delivered to it (the main thread blocks it), so that it interrupts the
 * blocked call and the kernel asks savefs to cancel the job. */
static void *worker(void *arg)
{
    struct cli_cmd *c = arg;
    sigset_t set;

    cancel_signals(&set);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    c->err = strcmp(c->op, "save") == 0 ? write_words(c) : rename_into_restore(c);
    if (write(c->done_fd, "d", 1) < 0)
        c->err = c->err ? c->err : -errno;
    return NULL;
}

/* What Ctrl-C does to the job, in the mount's terms (savefs(1)). */
static void say_cancelling(const struct cli_cmd *c, int tty)
{
    fprintf(stderr,
            "%ssavefs: cancelling the %s of %s: %s; waiting for it to end "
            "(Ctrl-C again to stop waiting)\n",
            tty ? "\n" : "", c->op, c->vm,
            c->snap ? "a fresh QEMU is killed, the VM stays as it was"
                    : "the VM runs on as before, nothing partial is kept");
}

/* Columns of the terminal on standard output (80 where it does not say). */
static int term_width(void)
{
    struct winsize w;

    return ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col > 1 ? w.ws_col : 80;
}

/* Shows LINE, a progress line. On a terminal it is drawn over the last, with a bar, cut to the
 * width: a line that wrapped would leave its first row behind at each redraw. Elsewhere each is a
 * line of a log. */
static void show_line(const char *line, int tty)
{
    char barred[600];

    if (tty) {
        cli_progress_bar(line, barred, sizeof(barred));
        printf("\r%.*s\033[K", term_width() - 1, barred);
    } else {
        printf("%s\n", line);
    }
    fflush(stdout);
}

/* What the progress thread shares with the main thread: it prints only while SHOWING. */
struct shower {
    const struct cli_cmd *c;
    int tty;
    pthread_mutex_t lock;
    int showing; /* guarded by lock; the main thread ends it before the outcome */
};

/* Follows the progress file of the job (savefs(1)), a line at a time. Opened before the job has
 * started, it gives the last job's outcome and ends: open it again, until lines of a job come or
 * the command's call has returned. */
static void follow_job(struct shower *sh)
{
    char *line = NULL;
    size_t cap = 0;
    size_t oplen = strlen(sh->c->op);
    int fd, followed = 0, showing = 1;
    FILE *in;

    while (!followed && showing) {
        if ((fd = cli_progress_open(sh->c->mount, sh->c->vm)) < 0 || !(in = fdopen(fd, "r"))) {
            if (fd >= 0)
                close(fd);
            break;
        }
        /* Lines of this command's job only: "OP VM  ..." (not a copy's "import VM"). */
        while (getline(&line, &cap, in) > 0 && cli_is_progress(line) &&
               strncmp(line, sh->c->op, oplen) == 0 && line[oplen] == ' ') {
            line[strcspn(line, "\n")] = '\0';
            followed = 1;
            pthread_mutex_lock(&sh->lock);
            if ((showing = sh->showing))
                show_line(line, sh->tty);
            pthread_mutex_unlock(&sh->lock);
        }
        fclose(in);
        if (!followed) {
            usleep(100 * 1000);
            pthread_mutex_lock(&sh->lock);
            showing = sh->showing;
            pthread_mutex_unlock(&sh->lock);
        }
    }
    free(line);
}

static void *shower_thread(void *arg)
{
    follow_job(arg);
    return NULL;
}

/* Shows the progress until the worker's call returned (a thread of its own follows the progress
 * file, whose reads block), and the news of a Ctrl-C at once. */
#define CLI_PUSH_POLL_MS 250

static void watch(const struct cli_cmd *c, int fd)
{
    static struct shower sh = {.lock = PTHREAD_MUTEX_INITIALIZER, .showing = 1};
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    pthread_t t;
    int told = 0;
    char b = 0;

    sh.c = c;
    sh.tty = isatty(STDOUT_FILENO);
    /* Detached: at the end it may still wait for a line of the file, which the exit cuts short. */
    if (pthread_create(&t, NULL, shower_thread, &sh) == 0)
        pthread_detach(t);
    while (b != 'd') {
        if (poll(&pfd, 1, -1) <= 0)
            continue;
        if (read(fd, &b, 1) == 1 && b == 'c' && !told++)
            say_cancelling(c, sh.tty);
    }
    /* A lazy restore's rename returns once the guest runs: the push is shown to its end, unless
     * Ctrl-C says not to wait for it (it goes on all the same). */
    while (!c->err && strcmp(c->op, "restore") == 0 && !told && cli_job_runs(c->mount, c->vm))
        if (poll(&pfd, 1, CLI_PUSH_POLL_MS) == 1 && read(fd, &b, 1) == 1 && b == 'c')
            told++;
    pthread_mutex_lock(&sh.lock);
    sh.showing = 0;
    if (sh.tty)
        fputs("\r\033[K", stdout);
    pthread_mutex_unlock(&sh.lock);
}

/* The outcome: the job's own words where status has them, else the errno's. */
static int report(const struct cli_cmd *c, time_t since)
{
    char out[2048];
    int ours = cli_outcome(c->mount, c->vm, c->op, since, out, sizeof(out));

    if (!c->err) {
        fputs(ours == 1 ? out : "ok\n", stdout);
        return 0;
    }
    if (ours == 1)
        fprintf(stderr, "savefs: %s %s: %s", c->op, c->vm, out);
    else
        fprintf(stderr, "savefs: %s %s: %s\n", c->op, c->vm, strerror(-c->err));
    return exit_code(-c->err);
}

static int run(struct cli_cmd *c)
{
    struct sigaction sa = {.sa_handler = on_cancel};
    time_t since = time(NULL);
    sigset_t set;
    pthread_t t;
    int fds[2], rc;

    if (pipe2(fds, O_CLOEXEC) < 0) {
        fprintf(stderr, "savefs: pipe: %s\n", strerror(errno));
        return 1;
    }
    cancel_fd = c->done_fd = fds[1];
    cancel_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(cancel_sigs) / sizeof(cancel_sigs[0]); i++)
        sigaction(cancel_sigs[i], &sa, NULL);
    if ((rc = pthread_create(&t, NULL, worker, c))) {
        fprintf(stderr, "savefs: %s\n", strerror(rc));
        rc = 1;
        goto out;
    }
    watch(c, fds[0]);
    pthread_join(t, NULL);
    rc = report(c, since);
out:
    close(fds[0]);
    close(fds[1]);
    return rc;
}

int cli_main(int argc, char **argv)
{
    struct cli_cmd c = {0};
    int rc = parse(argc, argv, &c);

    if (rc) {
        cli_usage(rc > 0 ? stdout : stderr);
        rc = rc > 0 ? 0 : 2;
        goto out;
    }
    if ((rc = check_mount(c.mount))) {
        if (rc == -ENOTCONN)
            fprintf(stderr,
                    "savefs: the savefs mounted on %s died: fusermount3 -u it, then start "
                    "savefs again\n",
                    c.mount);
        else
            fprintf(stderr, "savefs: no savefs is mounted on %s (see --mount)\n", c.mount);
        rc = exit_code(ENOTCONN);
        goto out;
    }
    if ((rc = check_names(&c) ?: check_idle(&c)))
        rc = exit_code(-rc);
    else
        rc = run(&c);
out:
    free(c.words);
    return rc;
}
