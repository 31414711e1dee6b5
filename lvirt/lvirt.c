/* lvirt: libvirt's QEMU domains through its C API. One connection (virConnectPtr is thread-safe)
 * under a lock that only guards the pointer and the cached list; libvirt calls run outside it. */
#include "lvirt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <limits.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "copier.h"
#include "qmp.h"

#define LIST_TTL_MS  200  /* one listing serves the lookups of an `ls -l` */
#define RECONNECT_MS 1000 /* an absent libvirtd is asked again at most this often */
#define CMDLINE_MAX  (1 << 20)

struct lv {
    char *uri;
    void (*log)(const char *msg);
    pthread_mutex_t lock;
    /* guarded by lock */
    virConnectPtr conn; /* NULL while libvirtd does not answer */
    long long tried_ms; /* the last attempt to connect */
    char **names;       /* the running domains, read at listed_ms */
    long long listed_ms;
};

static long long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* libvirt prints every error on stderr unless told otherwise: savefs reports its own. */
static void quiet(void *opaque, virErrorPtr e)
{
    (void)opaque;
    (void)e;
}

static const char *last_error(void)
{
    const char *m = virGetLastErrorMessage();

    return m ? m : "unknown libvirt error";
}

static void names_free(char **names)
{
    for (size_t i = 0; names && names[i]; i++)
        free(names[i]);
    free(names);
}

static char **names_copy(char *const *names)
{
    size_t n = 0;
    char **copy;

    while (names && names[n])
        n++;
    copy = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; copy && i < n; i++)
        if (!(copy[i] = strdup(names[i]))) {
            names_free(copy);
            return NULL;
        }
    return copy;
}

int lv_built(void)
{
    return 1;
}

int lv_open(struct lv **out, const char *uri, void (*log)(const char *msg))
{
    struct lv *lv = calloc(1, sizeof(*lv));

    *out = NULL;
    if (!lv || !(lv->uri = strdup(uri))) {
        free(lv);
        return -ENOMEM;
    }
    if (virInitialize() < 0) {
        free(lv->uri);
        free(lv);
        return -EIO;
    }
    virSetErrorFunc(NULL, quiet);
    lv->log = log;
    pthread_mutex_init(&lv->lock, NULL);
    *out = lv;
    return 0;
}

void lv_close(struct lv *lv)
{
    if (!lv)
        return;
    if (lv->conn)
        virConnectClose(lv->conn);
    names_free(lv->names);
    pthread_mutex_destroy(&lv->lock);
    free(lv->uri);
    free(lv);
}

static void say(const struct lv *lv, const char *fmt, const char *what)
{
    char msg[1024];

    if (!lv->log)
        return;
    snprintf(msg, sizeof(msg), fmt, lv->uri, what);
    lv->log(msg);
}

/* The connection, with a reference for the caller (virConnectClose it), or NULL while libvirtd
 * does not answer. A dead connection is dropped and made again. */
static virConnectPtr conn_get(struct lv *lv)
{
    virConnectPtr c;

    pthread_mutex_lock(&lv->lock);
    if (lv->conn && virConnectIsAlive(lv->conn) != 1) {
        say(lv, "libvirt %s: connection lost%s", "");
        virConnectClose(lv->conn);
        lv->conn = NULL;
    }
    if (!lv->conn && mono_ms() - lv->tried_ms >= RECONNECT_MS) {
        lv->tried_ms = mono_ms();
        virResetLastError();
        lv->conn = virConnectOpen(lv->uri);
        if (lv->conn)
            say(lv, "libvirt %s: connected%s", "");
    }
    c = lv->conn;
    if (c)
        virConnectRef(c);
    pthread_mutex_unlock(&lv->lock);
    return c;
}

/* Reads the running domains' names: a new list, or NULL without memory. */
static char **read_names(struct lv *lv)
{
    virConnectPtr c = conn_get(lv);
    virDomainPtr *doms = NULL;
    char **names;
    int n = c ? virConnectListAllDomains(c, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE) : 0;

    if (n < 0)
        n = 0;
    names = calloc((size_t)n + 1, sizeof(char *));
    for (int i = 0, k = 0; i < n; i++) {
        const char *name = virDomainGetName(doms[i]);

        if (names && name && !(names[k++] = strdup(name))) {
            names_free(names);
            names = NULL;
        }
        virDomainFree(doms[i]);
    }
    free(doms);
    if (c)
        virConnectClose(c);
    return names;
}

char **lv_list(struct lv *lv)
{
    char **names, **fresh = NULL;
    int stale;

    pthread_mutex_lock(&lv->lock);
    stale = !lv->names || mono_ms() - lv->listed_ms >= LIST_TTL_MS;
    pthread_mutex_unlock(&lv->lock);
    if (stale && (fresh = read_names(lv))) {
        pthread_mutex_lock(&lv->lock);
        names_free(lv->names);
        lv->names = fresh;
        lv->listed_ms = mono_ms();
        pthread_mutex_unlock(&lv->lock);
    }
    pthread_mutex_lock(&lv->lock);
    names = lv->names ? names_copy(lv->names) : calloc(1, sizeof(char *));
    pthread_mutex_unlock(&lv->lock);
    return names;
}

static virDomainPtr domain(struct lv *lv, const char *name, int *rc, char *err, size_t errlen);

/* Asked of libvirt itself, not of the listing's cache: a restore right after a save must not
 * see the domain the save has just destroyed as running. */
int lv_running(struct lv *lv, const char *name)
{
    char err[256];
    int rc = 0, active;
    virDomainPtr d = domain(lv, name, &rc, err, sizeof(err));

    if (!d)
        return 0;
    active = virDomainIsActive(d) == 1;
    virDomainFree(d);
    return active;
}

/* Domain NAME, or NULL with the reason in ERR (-ESRCH in *RC when it does not exist). */
static virDomainPtr domain(struct lv *lv, const char *name, int *rc, char *err, size_t errlen)
{
    virConnectPtr c = conn_get(lv);
    virDomainPtr d;

    if (!c) {
        snprintf(err, errlen, "libvirt %s: %s", lv->uri, last_error());
        *rc = -ECONNREFUSED;
        return NULL;
    }
    d = virDomainLookupByName(c, name);
    if (!d) {
        snprintf(err, errlen, "libvirt %s: domain %s: %s", lv->uri, name, last_error());
        *rc = virGetLastErrorCode() == VIR_ERR_NO_DOMAIN ? -ESRCH : -EIO;
    }
    virConnectClose(c);
    return d;
}

/* ---- the monitor, through libvirt ---- */

/* One monitor command, run on a thread of its own: libvirt has no timeout for it (a QEMU that
 * does not answer holds virDomainQemuMonitorCommand, and the domain's job, until it answers).
 * The caller waits until its deadline; a call it gave up on goes on alone and the last of the
 * two to let go frees it. libvirt's errors are per thread: the worker keeps its own here. */
struct mon_call {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    int refs;            /* the caller and the worker */
    int done;
    virDomainPtr d; /* a reference of the call's own */
    char *text, *result;
    int failed, code; /* libvirt's error code when it failed */
    char msg[512];
};

static void mon_call_put(struct mon_call *c)
{
    int last;

    pthread_mutex_lock(&c->lock);
    last = --c->refs == 0;
    pthread_mutex_unlock(&c->lock);
    if (!last)
        return;
    virDomainFree(c->d);
    free(c->text);
    free(c->result);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static void *mon_call_run(void *arg)
{
    struct mon_call *c = arg;
    char *result = NULL;
    int rc = virDomainQemuMonitorCommand(c->d, c->text, &result,
                                         VIR_DOMAIN_QEMU_MONITOR_COMMAND_DEFAULT);

    pthread_mutex_lock(&c->lock);
    c->result = result;
    if (rc < 0) {
        c->failed = 1;
        c->code = virGetLastErrorCode();
        snprintf(c->msg, sizeof(c->msg), "%s", last_error());
    }
    c->done = 1;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
    mon_call_put(c);
    return NULL;
}

static struct mon_call *mon_call_new(virDomainPtr d, json_t *req)
{
    struct mon_call *c = calloc(1, sizeof(*c));
    pthread_condattr_t attr;

    if (!c || !(c->text = json_dumps(req, JSON_COMPACT))) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &attr);
    pthread_condattr_destroy(&attr);
    virDomainRef(d);
    c->d = d;
    c->refs = 2;
    return c;
}

/* Waits for C's end until TIMEOUT_MS passed (negative: no limit): 1 if it ended. */
static int mon_call_wait(struct mon_call *c, int timeout_ms)
{
    struct timespec until;
    long long ns;
    int done, rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &until);
    ns = until.tv_nsec + (long long)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
    until.tv_sec += (time_t)(ns / 1000000000);
    until.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&c->lock);
    while (!c->done && rc != ETIMEDOUT)
        rc = timeout_ms < 0 ? pthread_cond_wait(&c->cond, &c->lock)
                            : pthread_cond_timedwait(&c->cond, &c->lock, &until);
    done = c->done;
    pthread_mutex_unlock(&c->lock);
    return done;
}

static int monitor_exec(void *opaque, json_t *req, json_t **answer, int timeout_ms, char *err,
                        size_t errlen)
{
    virDomainPtr d = opaque;
    const char *cmd = json_string_value(json_object_get(req, "execute"));
    struct mon_call *c = mon_call_new(d, req);
    json_error_t jerr;
    pthread_t t;
    int rc = 0;

    *answer = NULL;
    if (!c)
        return -ENOMEM;
    if ((rc = cp_thread_start(&t, mon_call_run, c))) {
        c->refs = 1;
        mon_call_put(c);
        snprintf(err, errlen, "QMP %s: %s: no thread for it: %s", virDomainGetName(d),
                 cmd ? cmd : "?", strerror(-rc));
        return rc;
    }
    pthread_detach(t);
    if (!mon_call_wait(c, timeout_ms)) {
        snprintf(err, errlen,
                 "QMP %s: %s: no answer through libvirt within %d ms (QEMU or libvirtd does not "
                 "answer)",
                 virDomainGetName(d), cmd ? cmd : "?", timeout_ms);
        rc = -ETIMEDOUT;
    } else if (c->failed) {
        snprintf(err, errlen, "QMP %s: %s", virDomainGetName(d), c->msg);
        /* libvirt's own timeout: its job lock, held by an earlier call that waits for QEMU. */
        rc = c->code == VIR_ERR_OPERATION_INVALID   ? -ESRCH
             : c->code == VIR_ERR_OPERATION_TIMEOUT ? -ETIMEDOUT
                                                    : -ECONNRESET;
    } else if (!(*answer = json_loads(c->result ? c->result : "", 0, &jerr))) {
        snprintf(err, errlen, "QMP %s: libvirt's answer is no JSON: %s", virDomainGetName(d),
                 jerr.text);
        rc = -EPROTO;
    }
    mon_call_put(c);
    return rc;
}

static void monitor_close(void *opaque)
{
    virDomainFree(opaque);
}

static const struct qmp_transport monitor = {monitor_exec, monitor_close};

/* Is /proc/PID/cmdline a QEMU's with "-uuid UUID"? libvirt's API does not say its QEMU's pid;
 * libvirt gives every QEMU the domain's -uuid. */
static int proc_has_uuid(const char *pid, const char *uuid, char *buf, size_t size)
{
    char path[300]; /* a d_name is 255 bytes at most */
    ssize_t n = 0, r;
    int fd;

    snprintf(path, sizeof(path), "/proc/%s/cmdline", pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    while ((size_t)n < size - 1 && (r = read(fd, buf + n, size - 1 - (size_t)n)) > 0)
        n += r;
    close(fd);
    if (n <= 0 || !strstr(buf, "qemu"))
        return 0;
    for (ssize_t i = 0; i + 1 < n; i += (ssize_t)strlen(buf + i) + 1)
        if (strcmp(buf + i, "-uuid") == 0 && i + 6 < n && strcmp(buf + i + 6, uuid) == 0)
            return 1;
    return 0;
}

static pid_t qemu_pid_of(virDomainPtr d)
{
    char uuid[VIR_UUID_STRING_BUFLEN], *buf;
    DIR *dir;
    struct dirent *e;
    pid_t pid = 0;

    if (virDomainGetUUIDString(d, uuid) < 0 || !(buf = malloc(CMDLINE_MAX)))
        return 0;
    if ((dir = opendir("/proc"))) {
        while (!pid && (e = readdir(dir)))
            if (e->d_name[0] >= '1' && e->d_name[0] <= '9' &&
                proc_has_uuid(e->d_name, uuid, buf, CMDLINE_MAX))
                pid = (pid_t)atoi(e->d_name);
        closedir(dir);
    }
    free(buf);
    return pid;
}

int lv_qmp_open(struct lv *lv, const char *name, struct qmp **out, char *err, size_t errlen)
{
    int rc = 0;
    virDomainPtr d = domain(lv, name, &rc, err, errlen);
    pid_t pid;

    *out = NULL;
    if (!d)
        return rc;
    if (virDomainIsActive(d) != 1) {
        snprintf(err, errlen, "libvirt %s: domain %s is not running", lv->uri, name);
        virDomainFree(d);
        return -ESRCH;
    }
    if (!(pid = qemu_pid_of(d))) {
        snprintf(err, errlen, "libvirt %s: domain %s: no QEMU process with its -uuid on this host",
                 lv->uri, name);
        virDomainFree(d);
        return -ESRCH;
    }
    return qmp_open_transport(out, name, pid, &monitor, d);
}

int lv_domain_xml(struct lv *lv, const char *name, char **xml, int *persistent, char *err,
                  size_t errlen)
{
    int rc = 0;
    virDomainPtr d = domain(lv, name, &rc, err, errlen);

    *xml = NULL;
    if (!d)
        return rc;
    *xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_MIGRATABLE | VIR_DOMAIN_XML_SECURE);
    *persistent = virDomainIsPersistent(d) == 1;
    if (!*xml) {
        snprintf(err, errlen, "libvirt %s: domain %s: XML: %s", lv->uri, name, last_error());
        rc = -EIO;
    }
    virDomainFree(d);
    return rc;
}

/* XML attribute text: the few characters that may not stand in one. */
static void xml_attr(char *out, size_t size, const char *in)
{
    size_t o = 0;

    for (; *in && o + 7 < size; in++) {
        const char *rep = *in == '&' ? "&amp;" : *in == '<' ? "&lt;" : *in == '"' ? "&quot;" : NULL;

        if (rep)
            o += (size_t)snprintf(out + o, size - o, "%s", rep);
        else
            out[o++] = *in;
    }
    out[o] = '\0';
}

int lv_mark_saved(struct lv *lv, const char *name, const char *snapshot, const char *store,
                  const char *at, char *err, size_t errlen)
{
    char elem[PATH_MAX * 6 + 256], s[PATH_MAX * 6];
    int rc = 0;
    virDomainPtr d = domain(lv, name, &rc, err, errlen);

    if (!d)
        return rc;
    xml_attr(s, sizeof(s), store);
    snprintf(elem, sizeof(elem), "<saved snapshot=\"%s\" store=\"%s\" at=\"%s\"/>", snapshot, s,
             at);
    if (virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, elem, LV_META_PREFIX, LV_META_URI,
                             VIR_DOMAIN_AFFECT_LIVE | VIR_DOMAIN_AFFECT_CONFIG) < 0) {
        snprintf(err, errlen, "libvirt %s: domain %s: set metadata: %s", lv->uri, name,
                 last_error());
        rc = -EIO;
    }
    virDomainFree(d);
    return rc;
}

int lv_saved_mark(struct lv *lv, const char *name, char *snap, size_t size)
{
    char err[256];
    int rc = 0;
    virDomainPtr d = domain(lv, name, &rc, err, sizeof(err));
    char *m, *at, *end;

    if (!d)
        return 0;
    m = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, LV_META_URI, VIR_DOMAIN_AFFECT_CONFIG);
    virDomainFree(d);
    if (!m)
        return 0;
    at = strstr(m, "snapshot=\"");
    end = at ? strchr(at + 10, '"') : NULL;
    rc = at && end;
    if (rc)
        snprintf(snap, size, "%.*s", (int)(end - at - 10), at + 10);
    free(m);
    return rc;
}

int lv_clear_mark(struct lv *lv, const char *name, char *err, size_t errlen)
{
    int rc = 0;
    virDomainPtr d = domain(lv, name, &rc, err, errlen);

    if (!d)
        return rc;
    if (virDomainSetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, NULL, NULL, LV_META_URI,
                             VIR_DOMAIN_AFFECT_CONFIG) < 0) {
        snprintf(err, errlen, "libvirt %s: domain %s: remove metadata: %s", lv->uri, name,
                 last_error());
        rc = -EIO;
    }
    virDomainFree(d);
    return rc;
}

/* CALL (virDomainDestroy, virDomainResume, ...) on domain NAME, its failure worded as WHAT. */
static int domain_call(struct lv *lv, const char *name, int (*call)(virDomainPtr), const char *what,
                       char *err, size_t errlen)
{
    int rc = 0;
    virDomainPtr d = domain(lv, name, &rc, err, errlen);

    if (!d)
        return rc;
    if (call(d) < 0) {
        snprintf(err, errlen, "libvirt %s: domain %s: %s: %s", lv->uri, name, what, last_error());
        rc = -EIO;
    }
    virDomainFree(d);
    return rc;
}

int lv_destroy(struct lv *lv, const char *name, char *err, size_t errlen)
{
    int rc = domain_call(lv, name, virDomainDestroy, "destroy", err, errlen);

    /* The next listing asks libvirt again: the domain is gone from the running ones. */
    pthread_mutex_lock(&lv->lock);
    lv->listed_ms = 0;
    pthread_mutex_unlock(&lv->lock);
    return rc;
}

#define QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"

/* XML with QEMU's -incoming defer added through libvirt's qemu namespace: libvirt starts QEMU
 * waiting for a migration that savefs then feeds through the monitor. libvirt formats that
 * namespace with the prefix "qemu": a domain restored by savefs has its -incoming in its live
 * XML already (and a save of it keeps that XML), one with arguments of its own gets ours
 * among them. */
static char *incoming_xml(const char *xml)
{
    static const char args[] = "<qemu:arg value='-incoming'/><qemu:arg value='defer'/>";
    static const char cmdline[] = "<qemu:commandline>";
    const char *ns = strstr(xml, "xmlns:qemu='" QEMU_NS "'"), *at, *extra = "", *tail = "";
    size_t size = strlen(xml) + sizeof(args) + sizeof(cmdline) * 2 + sizeof(QEMU_NS) + 32;
    char *out;

    if (strstr(xml, "<qemu:arg value='-incoming'/>") && ns)
        return strdup(xml);
    if (ns && (at = strstr(xml, cmdline)))
        at += strlen(cmdline);
    else if (ns && (at = strstr(xml, "</domain>")))
        extra = cmdline, tail = "</qemu:commandline>";
    else if (!ns && !strstr(xml, QEMU_NS) && strstr(xml, "<domain") &&
             (at = strstr(xml, "</domain>")))
        extra = cmdline, tail = "</qemu:commandline>";
    else
        return NULL;
    if (!(out = malloc(size)))
        return NULL;
    if (ns) {
        snprintf(out, size, "%.*s%s%s%s%s", (int)(at - xml), xml, extra, args, tail, at);
    } else {
        const char *open = strstr(xml, "<domain") + strlen("<domain");

        snprintf(out, size, "%.*s xmlns:qemu='%s'%.*s%s%s%s%s", (int)(open - xml), xml, QEMU_NS,
                 (int)(at - open), open, extra, args, tail, at);
    }
    return out;
}

int lv_start_incoming(struct lv *lv, const char *name, const char *xml, char *err, size_t errlen)
{
    virConnectPtr c = conn_get(lv);
    char *live = incoming_xml(xml);
    virDomainPtr d = NULL;
    int rc = 0;

    if (!c)
        snprintf(err, errlen, "libvirt %s: %s", lv->uri, last_error());
    else if (!live)
        snprintf(err, errlen,
                 "domain %s: its XML has no <domain> element, or a qemu namespace "
                 "under another prefix than qemu",
                 name);
    else if (!(d = virDomainCreateXML(c, live, VIR_DOMAIN_START_PAUSED)))
        snprintf(err, errlen, "libvirt %s: start domain %s: %s", lv->uri, name, last_error());
    if (!c)
        rc = -ECONNREFUSED;
    else if (!live)
        rc = -EINVAL;
    else if (!d)
        rc = -EIO;
    else if (strcmp(virDomainGetName(d), name) != 0) {
        snprintf(err, errlen, "libvirt started domain %s, not %s", virDomainGetName(d), name);
        virDomainDestroy(d);
        rc = -EPERM;
    }
    if (d)
        virDomainFree(d);
    if (c)
        virConnectClose(c);
    free(live);
    return rc;
}

int lv_resume(struct lv *lv, const char *name, char *err, size_t errlen)
{
    return domain_call(lv, name, virDomainResume, "resume", err, errlen);
}
