/* save: QEMU's source connects to our socket with its main stream and N multifd channels, in
 * any order. An accept thread gives every connection a thread of its own, which tells the
 * stream by its first bytes and copies it into its file, verbatim or as zstd frames, indexing
 * channels on the way. A failure does not cut QEMU off: every stream is then read to its end
 * and dropped, and connections are still accepted, until the caller stops the save (free).
 * The cp_save_* functions are called from the caller's thread; cancel and the progress
 * counters from any thread. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "copier.h"
#include "cp_main.h"
#include "indexer.h"
#include "latest.h"
#include "stream.h"
#include "worker.h"
#include "zframe.h"

#define CP_MAIN_MAGIC 0x5145564du /* "QEVM" */
/* Descriptors a save holds per channel (socket, chunk file, index) and besides (the listener,
 * main's socket and file, the directory's fsync, and some room for the rest of savefs). */
#define CP_FDS_PER_CHANNEL 3
#define CP_FDS_BESIDES     8
/* Out of descriptors after a failure: drained streams give theirs back as they end. */
#define CP_ACCEPT_RETRY_NS (10 * 1000 * 1000)
#define CP_DRAIN_BUF       (16u << 10) /* on the stream thread's stack */

/* One accepted connection. */
struct cp_save_conn {
    /* set by the accept thread before the connection's thread starts */
    struct cp_save *s;
    int num; /* in accept order, from 1, for messages */
    int fd;
    int started; /* its thread runs and must be joined */
    pthread_t thread;
    /* owned by the connection's thread; read by others after joining it */
    int channel; /* -1 for main */
    char name[CP_NAME_MAX];
    uint64_t size, xxh3;
    int indexed;
    uint64_t idx_size, idx_xxh3;
    struct cp_index_key *keys; /* of the index's records (latest.h) */
    size_t nkeys;
    uint64_t stream_size, stream_xxh3; /* when compressed */
    int eof;                           /* the peer ended the stream */
};

struct cp_save {
    /* set before any thread starts */
    char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char dir[PATH_MAX];
    int nchannels;
    size_t buf_size;        /* the file writer's, or with zstd the frame's */
    struct cp_zpool *zpool; /* NULL: no compression */
    int direct_io;
    int fail_accept; /* debug: accept number N fails as if out of descriptors; 0: never */
    int listen_fd;
    int bound; /* sock_path is ours to remove */
    pthread_t accept_thread;
    int joined; /* caller's thread only */
    /* written by the accept thread; read by others after joining it */
    int nconns;
    struct cp_save_conn conns[CP_MAX_CHANNELS + 1];
    /* any thread */
    atomic_int claimed[CP_MAX_CHANNELS + 1]; /* [0] main, [1 + K] channel K */
    atomic_uint_fast64_t bytes;
    atomic_int failed;   /* the save failed: streams are read to their end and dropped */
    atomic_int stopped;  /* the caller stops the save: sockets are shut down, threads end */
    struct cp_live live; /* the accept thread and every connection's */
    struct cp_fail fail; /* the first error; no socket: a failure must not cut QEMU off */
    struct cp_fail stop; /* sockets shut down at stop: [0] the listener, [1 + i] connection i */
};

/* Records the save's first error. QEMU 7.2 must not see a stream cut while its migration lives:
 * a channel that fails while QEMU sets up, or a connection refused, leaves its migration in
 * "setup" for good or aborts QEMU (multifd.c). So the sockets stay open, and the streams are
 * drained until QEMU closes them. */
static void cp_save_fail(struct cp_save *s, int code, const char *msg)
{
    cp_fail(&s->fail, code, msg);
    atomic_store(&s->failed, 1);
}

/* Reads from C until BUF holds LEN bytes or the peer ends the stream; *HAVE counts what BUF
 * holds. */
static int cp_recv_upto(struct cp_save_conn *c, uint8_t *buf, size_t len, size_t *have, char *why,
                        size_t whylen)
{
    while (*have < len) {
        ssize_t n = recv(c->fd, buf + *have, len - *have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cp_errno_msg(why, whylen, -errno, "read socket");
        c->eof = n == 0;
        if (n == 0)
            break;
        *have += (size_t)n;
    }
    return 0;
}

/* Claims slot I of the streams a save expects: 0, or -EPROTO if another connection has it. */
static int cp_save_claim(struct cp_save *s, int i)
{
    int expected = 0;
    return atomic_compare_exchange_strong(&s->claimed[i], &expected, 1) ? 0 : -EPROTO;
}

/* Tells the stream by its first bytes (kept in HEAD, *HAVE of them) and names it. */
static int cp_save_identify(struct cp_save_conn *c, uint8_t *head, size_t *have, char *why,
                            size_t whylen)
{
    struct cp_save *s = c->s;
    int r = cp_recv_upto(c, head, 4, have, why, whylen);
    if (r < 0)
        return r;
    if (*have < 4)
        return cp_msg(why, whylen, -EPROTO, "stream ends after %zu bytes, before its magic", *have);
    uint32_t magic = cp_get_be32(head);
    if (magic == CP_MAIN_MAGIC) {
        if (cp_save_claim(s, 0) < 0)
            return cp_msg(why, whylen, -EPROTO, "a second main stream");
        cp_file_name(CP_MAIN, -1, c->name, sizeof(c->name));
        return 0;
    }
    if (magic != CP_MULTIFD_MAGIC)
        return cp_msg(why, whylen, -EPROTO, "unknown stream magic 0x%08x", magic);
    r = cp_recv_upto(c, head, CP_MULTIFD_HANDSHAKE_LEN, have, why, whylen);
    if (r < 0)
        return r;
    if (*have < CP_MULTIFD_HANDSHAKE_LEN)
        return cp_msg(why, whylen, -EPROTO,
                      "stream ends inside its multifd handshake (%zu of %d bytes)", *have,
                      CP_MULTIFD_HANDSHAKE_LEN);
    int id = head[CP_MULTIFD_ID_OFFSET];
    if (id >= s->nchannels)
        return cp_msg(why, whylen, -EPROTO, "channel id %d, but the save has %d channels", id,
                      s->nchannels);
    if (cp_save_claim(s, 1 + id) < 0)
        return cp_msg(why, whylen, -EPROTO, "duplicate channel id %d", id);
    c->channel = id;
    cp_file_name(CP_CHANNEL, id, c->name, sizeof(c->name));
    return 0;
}

/* Bytes of the stream, in order, before they enter the write path: the indexer (if any) and
 * the progress counter see them. */
static int cp_save_seen(struct cp_save_conn *c, struct cp_indexer *m, const uint8_t *p, size_t n,
                        char *why, size_t whylen)
{
    atomic_fetch_add(&c->s->bytes, n);
    return m ? cp_indexer_feed(m, p, n, why, whylen) : 0;
}

/* Copies the stream to its end: the HAVE bytes of HEAD, then the socket until EOF, reading
 * straight into the write path's buffer. */
static int cp_save_pump(struct cp_save_conn *c, struct cp_stage *st, struct cp_indexer *m,
                        const uint8_t *head, size_t have, char *why, size_t whylen)
{
    int r = cp_save_seen(c, m, head, have, why, whylen);
    if (r == 0)
        r = cp_stage_put(st, head, have, why, whylen);
    while (r == 0) {
        size_t room;
        uint8_t *p = st->room(st, &room);
        if (atomic_load(&c->s->failed))
            return cp_msg(why, whylen, -ECANCELED, "save cancelled");
        ssize_t n = recv(c->fd, p, room, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cp_errno_msg(why, whylen, -errno, "read socket");
        c->eof = n == 0;
        if (n == 0)
            break;
        r = cp_save_seen(c, m, p, (size_t)n, why, whylen);
        if (r == 0)
            r = st->commit(st, (size_t)n, why, whylen);
    }
    if (r == 0)
        r = st->finish(st, why, whylen);
    if (r == 0 && m)
        r = cp_indexer_finish(m, &c->indexed, why, whylen);
    return r;
}

/* The whole life of one connection; the reason of a failure goes to WHY. */
static int cp_save_stream(struct cp_save_conn *c, char *why, size_t whylen)
{
    struct cp_save *s = c->s;
    uint8_t head[CP_MULTIFD_HANDSHAKE_LEN];
    size_t have = 0;
    struct cp_fwriter *w = NULL;
    struct cp_zwriter *z = NULL;
    struct cp_indexer *m = NULL;
    char idx_name[CP_NAME_MAX];
    int r = cp_save_identify(c, head, &have, why, whylen);
    if (r < 0)
        goto out;
    size_t wbuf = s->zpool ? cp_zwriter_buf_size(s->buf_size) : s->buf_size;
    r = cp_fwriter_open(&w, s->dir, c->name, wbuf, s->direct_io, why, whylen);
    if (r < 0)
        goto out;
    struct cp_stage *st = cp_fwriter_stage(w);
    if (s->zpool) {
        r = cp_zwriter_open(&z, s->zpool, w, s->buf_size, why, whylen);
        if (r < 0)
            goto out;
        st = cp_zwriter_stage(z);
    }
    if (c->channel >= 0) {
        cp_file_name(CP_INDEX, c->channel, idx_name, sizeof(idx_name));
        r = cp_indexer_open(&m, s->dir, idx_name, why, whylen);
        if (r < 0)
            goto out;
    }
    r = cp_save_pump(c, st, m, head, have, why, whylen);
    if (r < 0)
        goto out;
    c->size = cp_fwriter_size(w);
    c->xxh3 = cp_fwriter_xxh3(w);
    if (z) {
        c->stream_size = cp_zwriter_size(z);
        c->stream_xxh3 = cp_zwriter_xxh3(z);
    }
    if (c->indexed) {
        c->idx_size = cp_indexer_size(m);
        c->idx_xxh3 = cp_indexer_xxh3(m);
        cp_indexer_take_keys(m, &c->keys, &c->nkeys);
    }
out:
    cp_indexer_free(m);
    cp_zwriter_free(z);
    cp_fwriter_free(w);
    return r;
}

/* Reads the rest of a failed stream and drops it, so that QEMU's writes go on until QEMU itself
 * closes the stream (or the caller stops the save). */
static void cp_save_drain(struct cp_save_conn *c)
{
    uint8_t sink[CP_DRAIN_BUF];
    ssize_t n;

    while (!c->eof && ((n = recv(c->fd, sink, sizeof(sink), 0)) > 0 || (n < 0 && errno == EINTR)))
        atomic_fetch_add(&c->s->bytes, n > 0 ? (uint64_t)n : 0);
}

static void *cp_save_conn_main(void *arg)
{
    struct cp_save_conn *c = arg;
    char why[CP_ERR_MAX], msg[CP_ERR_MAX];
    int r = cp_save_stream(c, why, sizeof(why));
    if (r < 0 && c->name[0] != '\0')
        cp_save_fail(c->s, cp_msg(msg, sizeof(msg), r, "%s: %s", c->name, why), msg);
    else if (r < 0)
        cp_save_fail(c->s, cp_msg(msg, sizeof(msg), r, "connection %d: %s", c->num, why), msg);
    if (r < 0)
        cp_save_drain(c);
    cp_live_end(&c->s->live, 1);
    return NULL;
}

/* Starts a thread for connection FD; the connection is kept (and closed at free) either way. */
static int cp_save_add_conn(struct cp_save *s, int fd, char *why, size_t whylen)
{
    struct cp_save_conn *c = &s->conns[s->nconns];
    c->s = s;
    c->num = ++s->nconns;
    c->fd = fd;
    c->channel = -1;
    cp_fail_add_sock(&s->stop, c->num, fd);
    cp_live_add(&s->live, 1);
    int r = cp_thread_start(&c->thread, cp_save_conn_main, c);
    if (r < 0) {
        cp_live_end(&s->live, 1);
        return cp_errno_msg(why, whylen, r, "connection %d: thread", c->num);
    }
    c->started = 1;
    return 0;
}

/* The next connection, or -1 after a failure (recorded; a short pause, so that an error that
 * lasts, as running out of descriptors until drained streams end, is not a busy loop). */
static int cp_save_accept(struct cp_save *s)
{
    char why[CP_ERR_MAX];
    struct timespec pause = {0, CP_ACCEPT_RETRY_NS};
    int fd;
    if (s->nconns + 1 == s->fail_accept && !atomic_load(&s->failed)) {
        fd = -1;
        errno = EMFILE; /* the debug fault: as if out of descriptors, once */
    } else {
        fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    }
    if (fd >= 0 || errno == EINTR || errno == ECONNABORTED || atomic_load(&s->stopped))
        return fd;
    cp_save_fail(s, cp_errno_msg(why, sizeof(why), -errno, "accept on %s", s->sock_path), why);
    nanosleep(&pause, NULL);
    return -1;
}

/* Accepts main and the channels, then ends; after a failure too, so that every connect of QEMU
 * succeeds. Stop shuts the listener down, which makes accept fail at once (Linux). */
static void *cp_save_accept_main(void *arg)
{
    struct cp_save *s = arg;
    char why[CP_ERR_MAX];
    while (s->nconns < s->nchannels + 1 && !atomic_load(&s->stopped)) {
        int fd = cp_save_accept(s);
        /* Without a thread, that one stream is not drained: QEMU's writes to it may block until
         * the caller stops the save. */
        if (fd >= 0 && cp_save_add_conn(s, fd, why, sizeof(why)) < 0)
            cp_save_fail(s, -EAGAIN, why);
    }
    cp_live_end(&s->live, 1);
    return NULL;
}

static int cp_save_listen(struct cp_save *s, char *err, size_t errlen)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    memcpy(a.sun_path, s->sock_path, sizeof(a.sun_path));
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0)
        return cp_errno_msg(err, errlen, -errno, "socket");
    /* Linux gives the socket file the mode of the socket's inode (less the umask): set before
     * bind, there is no moment where the file is open to others. */
    if (fchmod(s->listen_fd, 0600) < 0)
        return cp_errno_msg(err, errlen, -errno, "fchmod socket %s", s->sock_path);
    if (bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        return cp_errno_msg(err, errlen, -errno, "bind %s", s->sock_path);
    s->bound = 1;
    if (listen(s->listen_fd, s->nchannels + 1) < 0)
        return cp_errno_msg(err, errlen, -errno, "listen %s", s->sock_path);
    cp_fail_add_sock(&s->stop, 0, s->listen_fd);
    return 0;
}

/* Enough descriptors for every stream, before QEMU connects: running out midway fails the save
 * and leaves connections that cannot even be accepted to drain. Raises the soft limit up to the
 * hard one if needed. */
static int cp_save_fd_room(int nchannels, char *err, size_t errlen)
{
    struct rlimit lim;
    rlim_t used = 0, need;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return cp_errno_msg(err, errlen, -errno, "open /proc/self/fd");
    while (readdir(d) != NULL)
        used++;
    closedir(d);
    used -= 2; /* "." and ".."; the directory's own descriptor stands for the one fsync needs */
    if (getrlimit(RLIMIT_NOFILE, &lim) < 0)
        return cp_errno_msg(err, errlen, -errno, "getrlimit");
    need = used + (rlim_t)nchannels * CP_FDS_PER_CHANNEL + CP_FDS_BESIDES;
    if (need <= lim.rlim_cur)
        return 0;
    if (need <= lim.rlim_max) {
        lim.rlim_cur = need;
        if (setrlimit(RLIMIT_NOFILE, &lim) == 0)
            return 0;
    }
    return cp_msg(err, errlen, -EMFILE,
                  "a save of %d channels needs %llu open files and savefs may have %llu (%llu in "
                  "use; ulimit -n): save with fewer channels, or raise the limit",
                  nchannels, (unsigned long long)need, (unsigned long long)lim.rlim_max,
                  (unsigned long long)used);
}

static int cp_save_init(struct cp_save *s, const char *sock_path, const char *dir, int nchannels,
                        const struct cp_opts *opts, char *err, size_t errlen)
{
    s->listen_fd = -1;
    s->joined = 1; /* no thread yet */
    cp_fail_init(&s->fail);
    cp_fail_init(&s->stop);
    if (cp_live_init(&s->live, 1) < 0) /* the accept thread */
        return cp_errno_msg(err, errlen, -errno, "save: eventfd");
    if (nchannels < 1 || nchannels > CP_MAX_CHANNELS)
        return cp_msg(err, errlen, -EINVAL, "%d channels: 1 to %d are supported", nchannels,
                      CP_MAX_CHANNELS);
    s->nchannels = nchannels;
    /* Each stream holds its file writer's buffers, and with zstd a frame being filled. */
    int level = opts->zstd_level;
    s->buf_size =
        opts->buf_size ? opts->buf_size : cp_buf_share(nchannels + 1, CP_IO_BUFS + (level ? 1 : 0));
    int r = cp_buf_size(&s->buf_size, err, errlen);
    if (r < 0)
        return r;
    if (level && s->buf_size > CP_ZFRAME_SIZE)
        s->buf_size = CP_ZFRAME_SIZE;
    if (level && (r = cp_zpool_new(&s->zpool, level, s->buf_size, nchannels + 1, err, errlen)))
        return r;
    s->direct_io = opts->direct_io;
    s->fail_accept = opts->debug_fail_accept;
    if ((r = cp_save_fd_room(nchannels, err, errlen)) < 0)
        return r;
    if (strlen(sock_path) >= sizeof(s->sock_path))
        return cp_msg(err, errlen, -ENAMETOOLONG, "socket path too long: %s", sock_path);
    if (strlen(dir) >= sizeof(s->dir))
        return cp_msg(err, errlen, -ENAMETOOLONG, "directory path too long: %s", dir);
    strcpy(s->sock_path, sock_path);
    strcpy(s->dir, dir);
    return 0;
}

int cp_save_start(struct cp_save **out, const char *sock_path, const char *dir, int nchannels,
                  const struct cp_opts *opts, char *err, size_t errlen)
{
    struct cp_save *s = calloc(1, sizeof(*s));
    int r = -ENOMEM;
    if (s == NULL) {
        cp_msg(err, errlen, r, "save: out of memory");
        goto out;
    }
    r = cp_save_init(s, sock_path, dir, nchannels, opts, err, errlen);
    if (r < 0)
        goto out;
    r = cp_save_listen(s, err, errlen);
    if (r < 0)
        goto out;
    r = cp_thread_start(&s->accept_thread, cp_save_accept_main, s);
    if (r < 0)
        cp_errno_msg(err, errlen, r, "save: accept thread");
    else
        s->joined = 0;
out:
    if (r < 0) {
        cp_save_free(s);
        s = NULL;
    }
    *out = s;
    return r;
}

uint64_t cp_save_bytes(struct cp_save *s)
{
    return atomic_load(&s->bytes);
}

int cp_save_done(struct cp_save *s)
{
    return cp_live_done(&s->live);
}

int cp_save_done_fd(struct cp_save *s)
{
    return s->live.efd;
}

int cp_save_failed(struct cp_save *s, char *err, size_t errlen)
{
    return cp_fail_get(&s->fail, err, errlen);
}

void cp_save_cancel(struct cp_save *s)
{
    cp_save_fail(s, -ECANCELED, "save cancelled");
}

/* Ends the save for good: blocked accepts and reads wake up at once. */
static void cp_save_stop(struct cp_save *s)
{
    cp_save_cancel(s);
    atomic_store(&s->stopped, 1);
    cp_fail(&s->stop, -ECANCELED, "save stopped");
}

static void cp_save_join(struct cp_save *s)
{
    if (s->joined)
        return;
    pthread_join(s->accept_thread, NULL);
    for (int i = 0; i < s->nconns; i++) {
        if (s->conns[i].started)
            pthread_join(s->conns[i].thread, NULL);
    }
    s->joined = 1;
}

static void cp_save_entry(struct cp_file *f, enum cp_kind kind, int channel, uint64_t size,
                          uint64_t xxh3)
{
    f->kind = kind;
    f->channel = channel;
    f->size = size;
    f->xxh3 = xxh3;
    f->zstd = 0;
    f->stream_size = f->stream_xxh3 = 0;
    memset(&f->layout, 0, sizeof(f->layout));
}

/* FILES: main, the channels by id, then their indexes. Every slot is claimed once no error. */
static int cp_save_list(struct cp_save *s, struct cp_file *files)
{
    struct cp_save_conn *by_slot[CP_MAX_CHANNELS + 1];
    int n = 0;
    for (int i = 0; i < s->nconns; i++)
        by_slot[1 + s->conns[i].channel] = &s->conns[i];
    for (int i = 0; i <= s->nchannels; i++) {
        struct cp_save_conn *c = by_slot[i];
        memcpy(files[n].name, c->name, sizeof(files[n].name));
        cp_save_entry(&files[n], c->channel < 0 ? CP_MAIN : CP_CHANNEL, c->channel, c->size,
                      c->xxh3);
        if (s->zpool) {
            files[n].zstd = 1;
            files[n].stream_size = c->stream_size;
            files[n].stream_xxh3 = c->stream_xxh3;
        }
        n++;
    }
    for (int i = 1; i <= s->nchannels; i++) {
        struct cp_save_conn *c = by_slot[i];
        if (!c->indexed)
            continue;
        cp_file_name(CP_INDEX, c->channel, files[n].name, sizeof(files[n].name));
        cp_save_entry(&files[n++], CP_INDEX, c->channel, c->idx_size, c->idx_xxh3);
    }
    return n;
}

/* A running VM's pages come several times: each index keeps only a page's last copy, when every
 * channel has an index (a page's last copy may be in any). */
static int cp_save_latest(struct cp_save *s, char *err, size_t errlen)
{
    struct cp_latest_chan ch[CP_MAX_CHANNELS];
    char names[CP_MAX_CHANNELS][CP_NAME_MAX];
    uint64_t dropped;
    int n = 0;
    for (int i = 0; i < s->nconns; i++) {
        struct cp_save_conn *c = &s->conns[i];
        if (c->channel < 0)
            continue;
        if (!c->indexed)
            return 0;
        cp_file_name(CP_INDEX, c->channel, names[n], sizeof(names[n]));
        ch[n] = (struct cp_latest_chan){.name = names[n],
                                        .keys = c->keys,
                                        .nkeys = c->nkeys,
                                        .size = &c->idx_size,
                                        .xxh3 = &c->idx_xxh3};
        n++;
    }
    return n ? cp_latest_resolve(s->dir, ch, n, &dropped, err, errlen) : 0;
}

/* Main's layout (cp_main.h), so that a lazy restore reads main's head and device state alone:
 * where a lazy restore can serve the snapshot at all (main not compressed, every channel
 * indexed). A main it cannot tell is left without one, and a lazy restore reads it whole: no
 * failure of the save. */
static void cp_save_layout(struct cp_save *s, struct cp_file *files, int nfiles)
{
    char path[PATH_MAX + CP_NAME_MAX], why[CP_ERR_MAX];
    int fd, indexes = 0;

    for (int i = 0; i < nfiles; i++)
        indexes += files[i].kind == CP_INDEX;
    if (s->zpool || indexes != s->nchannels || files[0].kind != CP_MAIN)
        return;
    snprintf(path, sizeof(path), "%s/%s", s->dir, files[0].name);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return;
    cp_main_layout_read(fd, files[0].size, &files[0].layout, why, sizeof(why));
    close(fd);
}

int cp_save_finish(struct cp_save *s, struct cp_file *files, int *nfiles, char *err, size_t errlen)
{
    *nfiles = 0;
    if (atomic_load(&s->failed))
        cp_save_stop(s); /* the drain ends here: the caller is done with QEMU */
    cp_save_join(s);
    int r = cp_fail_get(&s->fail, err, errlen);
    if (r < 0)
        goto out;
    r = cp_save_latest(s, err, errlen);
    if (r < 0)
        goto out;
    r = cp_fsync_dir(s->dir, err, errlen);
    if (r < 0)
        goto out;
    *nfiles = cp_save_list(s, files);
    cp_save_layout(s, files, *nfiles);
out:
    return r;
}

void cp_save_free(struct cp_save *s)
{
    if (s == NULL)
        return;
    if (!s->joined) {
        cp_save_stop(s);
        cp_save_join(s);
    }
    for (int i = 0; i < s->nconns; i++) {
        close(s->conns[i].fd);
        free(s->conns[i].keys);
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->bound)
        unlink(s->sock_path); /* a stale socket file is harmless */
    cp_zpool_free(s->zpool);
    cp_live_destroy(&s->live);
    cp_fail_destroy(&s->fail);
    cp_fail_destroy(&s->stop);
    free(s);
}
