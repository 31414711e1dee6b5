/* qemu: process plumbing for QEMU. Spawning uses a double fork so that the VM is a child of init,
 * not of savefs: killing or unmounting savefs must never take a VM along. */
#include "qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SO_ACCEPTCON_FLAG 0x10000 /* __SO_ACCEPTCON in /proc/net/unix: a listening socket */

int qemu_listening(const char *path)
{
    FILE *f = fopen("/proc/net/unix", "re");
    char line[PATH_MAX + 128];
    int found = 0;

    if (!f)
        return 0;
    while (!found && fgets(line, sizeof(line), f)) {
        unsigned long flags;
        int off = 0;

        line[strcspn(line, "\n")] = '\0';
        if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %n", &flags, &off) != 1 || off == 0)
            continue;
        found = (flags & SO_ACCEPTCON_FLAG) && strcmp(line + off, path) == 0;
    }
    fclose(f);
    return found;
}

void qemu_argv_free(char **argv)
{
    for (char **a = argv; a && *a; a++)
        free(*a);
    free(argv);
}

static int read_file(const char *path, char *buf, size_t len, size_t *got)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t n = 0;

    if (fd < 0)
        return -errno;
    while (n < len) {
        ssize_t r = read(fd, buf + n, len - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *got = n;
    return n == len ? -E2BIG : 0;
}

static int split_nul(const char *buf, size_t n, char ***argv, int *argc)
{
    int count = 0, i = 0;
    size_t pos;

    for (pos = 0; pos < n; pos++)
        count += buf[pos] == '\0';
    *argv = calloc((size_t)count + 1, sizeof(char *));
    if (!*argv)
        return -ENOMEM;
    for (pos = 0; pos < n && i < count; pos += strlen(buf + pos) + 1)
        if (!((*argv)[i++] = strdup(buf + pos)))
            return -ENOMEM;
    *argc = count;
    return 0;
}

int qemu_read_cmdline(pid_t pid, char ***argv, int *argc, char *binary, size_t binlen, char *err,
                      size_t errlen)
{
    static const size_t max = 1 << 20;
    char path[64], *buf = malloc(max);
    size_t n = 0;
    ssize_t len;
    int rc;

    *argv = NULL;
    if (!buf)
        return -ENOMEM;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    rc = read_file(path, buf, max, &n);
    if (!rc && (n == 0 || buf[n - 1] != '\0'))
        rc = -EINVAL;
    if (!rc)
        rc = split_nul(buf, n, argv, argc);
    if (rc) {
        snprintf(err, errlen, "read %s: %s", path, strerror(-rc));
        goto out;
    }
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
    len = readlink(path, binary, binlen - 1);
    if (len < 0) {
        rc = -errno;
        snprintf(err, errlen, "readlink %s: %s", path, strerror(errno));
        goto out;
    }
    binary[len] = '\0';
    /* An upgraded package leaves the running binary unlinked; the new one is at the old path. */
    if (len > 10 && strcmp(binary + len - 10, " (deleted)") == 0)
        binary[len - 10] = '\0';
out:
    if (rc) {
        qemu_argv_free(*argv);
        *argv = NULL;
    }
    free(buf);
    return rc;
}

int qemu_read_cwd(pid_t pid, char *cwd, size_t len)
{
    char path[64];
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/%d/cwd", (int)pid);
    n = readlink(path, cwd, len - 1);
    if (n < 0)
        return -errno;
    cwd[n] = '\0';
    return 0;
}

/* "-incoming" and "--incoming" are the same option to QEMU. */
static int is_opt(const char *arg, const char *name)
{
    if (arg[0] != '-')
        return 0;
    arg += arg[1] == '-' ? 2 : 1;
    return strcmp(arg, name) == 0;
}

/* The -qmp of NAME.qmp is savefs's to set; other monitors belong to the user and stay. */
static int is_own_qmp(const char *value, const char *qmp_name)
{
    const char *end = strchr(value, ',');
    size_t len = end ? (size_t)(end - value) : strlen(value);
    size_t nlen = strlen(qmp_name);

    if (strncmp(value, "unix:", 5) != 0 || len < nlen + 1)
        return 0;
    return value[len - nlen - 1] == '/'
               ? strncmp(value + len - nlen, qmp_name, nlen) == 0
               : len - 5 == nlen && strncmp(value + 5, qmp_name, nlen) == 0;
}

int qemu_argv_portable(char *const *argv, int argc, const char *qmp_name, char ***out, int *outc)
{
    char **v = calloc((size_t)argc + 1, sizeof(char *));
    int i, n = 0;

    if (!v)
        return -ENOMEM;
    for (i = 0; i < argc; i++) {
        int has_value = i + 1 < argc;

        if (is_opt(argv[i], "daemonize") || is_opt(argv[i], "S"))
            continue;
        if (has_value && (is_opt(argv[i], "incoming") ||
                          (is_opt(argv[i], "qmp") && is_own_qmp(argv[i + 1], qmp_name)))) {
            i++;
            continue;
        }
        v[n++] = argv[i];
    }
    *out = v;
    *outc = n;
    return 0;
}

int qemu_argv_restore(char *const *portable, int argc, const char *qmp_path, char ***out)
{
    char qmp[PATH_MAX + 64];
    const char *extra[] = {"-qmp", qmp, "-S", "-incoming", "defer"};
    int nextra = (int)(sizeof(extra) / sizeof(extra[0]));
    char **v = calloc((size_t)(argc + nextra) + 1, sizeof(char *));
    int i;

    if (!v)
        return -ENOMEM;
    snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", qmp_path);
    for (i = 0; i < argc + nextra; i++) {
        v[i] = strdup(i < argc ? portable[i] : extra[i - argc]);
        if (!v[i]) {
            qemu_argv_free(v);
            return -ENOMEM;
        }
    }
    *out = v;
    return 0;
}

/* In the forked children: only async-signal-safe calls until exec. */
static void child_exec(const char *binary, char *const *argv, const char *cwd, const char *log,
                       int report_fd)
{
    pid_t self = getpid();
    sigset_t none;
    int err, fd;

    /* Only this process writes to REPORT_FD: first its pid, then an errno if exec fails. */
    if (write(report_fd, &self, sizeof(self)) < 0)
        _exit(127);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    fd = open("/dev/null", O_RDONLY);
    if (fd >= 0 && fd != STDIN_FILENO)
        dup2(fd, STDIN_FILENO);
    fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
    }
    if (chdir(cwd) == 0)
        execv(binary, argv);
    err = errno;
    if (write(report_fd, &err, sizeof(err)) < 0)
        _exit(127);
    _exit(127);
}

static void middle_fork(const char *binary, char *const *argv, const char *cwd, const char *log,
                        int report_fd)
{
    setsid();
    if (fork() == 0)
        child_exec(binary, argv, cwd, log, report_fd);
    _exit(0);
}

static int read_full(int fd, void *buf, size_t len)
{
    ssize_t n;

    do
        n = read(fd, buf, len);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)len ? 0 : n == 0 ? -ENODATA : -EIO;
}

int qemu_spawn(const char *binary, char *const *argv, const char *cwd, const char *log, pid_t *pid,
               int *pidfd, char *err, size_t errlen)
{
    int pipefd[2], exec_errno = 0, rc, status;
    pid_t middle;

    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -errno;
    middle = fork();
    if (middle == 0) {
        close(pipefd[0]);
        middle_fork(binary, argv, cwd, log, pipefd[1]);
    }
    close(pipefd[1]);
    if (middle < 0) {
        rc = -errno;
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(pipefd[0]);
        return rc;
    }
    waitpid(middle, &status, 0);
    rc = read_full(pipefd[0], pid, sizeof(*pid));
    if (!rc && *pid < 0)
        rc = -EAGAIN;
    /* The pipe closes on a successful exec; an errno arrives if exec failed. */
    if (!rc && read_full(pipefd[0], &exec_errno, sizeof(exec_errno)) == 0)
        rc = -exec_errno;
    close(pipefd[0]);
    if (rc) {
        snprintf(err, errlen, "start %s in %s: %s", binary, cwd, strerror(-rc));
        return rc;
    }
    *pidfd = (int)syscall(SYS_pidfd_open, *pid, 0);
    if (*pidfd < 0) {
        rc = -errno;
        snprintf(err, errlen, "pidfd_open %d: %s", (int)*pid, strerror(errno));
        kill(*pid, SIGKILL);
    }
    return rc;
}

int qemu_pid_is_incoming(pid_t pid)
{
    char binary[PATH_MAX], err[128], **argv = NULL;
    int argc = 0, found = 0;

    if (qemu_read_cmdline(pid, &argv, &argc, binary, sizeof(binary), err, sizeof(err)))
        return 0;
    for (int i = 0; i < argc; i++)
        found |= is_opt(argv[i], "incoming");
    qemu_argv_free(argv);
    return found && strstr(binary, "qemu") != NULL;
}

int qemu_wait_exit(int pidfd, int timeout_ms)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    int n;

    while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
        ;
    return n == 1;
}

int qemu_exited(int pidfd)
{
    return qemu_wait_exit(pidfd, 0);
}

void qemu_kill(int pidfd, int timeout_ms)
{
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    qemu_wait_exit(pidfd, timeout_ms);
}

void qemu_log_tail(const char *log, char *out, size_t len)
{
    int fd = open(log, O_RDONLY | O_CLOEXEC);
    off_t size;
    ssize_t n;
    char *p;

    out[0] = '\0';
    if (fd < 0)
        return;
    size = lseek(fd, 0, SEEK_END);
    if (size > (off_t)(len - 1))
        lseek(fd, size - (off_t)(len - 1), SEEK_SET);
    else
        lseek(fd, 0, SEEK_SET);
    n = read(fd, out, len - 1);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
    /* Whole lines only: a line cut at the front would read as QEMU's words but is not. */
    p = strchr(out, '\n');
    if (size > (off_t)(len - 1) && p)
        memmove(out, p + 1, strlen(p + 1) + 1);
    for (p = out; *p; p++)
        if (*p == '\n')
            *p = ';';
}
