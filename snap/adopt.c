/* adopt: `savefs adopt`, the one way a snapshot goes to another VM name. It copies the snapshot
 * into the other VM's snapshots, publishes it the way a save does (a private directory renamed
 * into place) and re-signs its manifest under the new name. Runs in the savefs command, not in
 * the daemon; pure file operations. */
#include "adopt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "localdef.h"
#include "manifest.h"
#include "store.h"
#include "trust.h"

/* IN's bytes from its offset on to OUT: copy_file_range shares the blocks where the filesystem
 * can (reflinks, an NFS server's copy), plain reads and writes where it cannot. */
static int copy_bytes(int in, int out)
{
    char buf[1 << 16];
    ssize_t n;

    while ((n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0)) > 0)
        ;
    if (n == 0)
        return 0;
    if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
        return -errno;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)n) != n)
            return errno ? -errno : -EIO;
    return n < 0 ? -errno : 0;
}

/* Copies SRC to DST (new, 0600), then fsyncs and closes it: a failed close is a failed copy. */
static int copy_file(const char *src, const char *dst, char *err, size_t errlen)
{
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc;

    if (in < 0 || (out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
        rc = -errno;
    else if (!(rc = copy_bytes(in, out)) && fsync(out) < 0)
        rc = -errno;
    if (out >= 0 && close(out) < 0 && !rc)
        rc = -errno;
    if (in >= 0)
        close(in);
    if (rc)
        snprintf(err, errlen, "copy %s to %s: %s", src, dst, strerror(-rc));
    return rc;
}

/* Only a manifest this host runs as it is may be re-signed: one signed with a key it has, or
 * accepted for FROM by its digest. One whose command line only FROM's local.json makes
 * acceptable is not (the signature would vouch for what nobody reviewed). */
static int adopt_trusted(const struct trust *t, const struct trust_subject *s,
                         const struct manifest *m, char *err, size_t errlen)
{
    char keyid[64], digest[TRUST_DIGEST_MAX];
    enum trust_origin o = trust_origin(t, m, keyid, sizeof(keyid));
    struct localdef d;
    int accepted, rc;

    if (o == TRUST_HOST || o == TRUST_FLEET)
        return 0;
    if ((rc = trust_digest(m, digest, sizeof(digest))) ||
        (rc = localdef_read(s->store, s->vm, &d, err, errlen)))
        return rc;
    accepted = o != TRUST_BAD_HMAC && localdef_accepts(&d, digest);
    localdef_free(&d);
    if (accepted)
        return 0;
    snprintf(err, errlen,
             "%s of %s is neither signed with a key of this host nor accepted for %s: review it "
             "and accept it first (savefs accept --store %s %s %s)",
             s->snap, s->vm, s->vm, s->store, s->vm, s->snap);
    return -EPERM;
}

/* Copies every file M names from SRC to the fresh directory TMP, then M itself. */
static int adopt_files(const char *src, const char *tmp, const struct manifest *m, char *err,
                       size_t errlen)
{
    char from[PATH_MAX], to[PATH_MAX];
    int rc = 0;

    for (int i = 0; !rc && i < m->nfiles; i++) {
        if (store_path(from, "%s/%s", src, m->files[i].name) ||
            store_path(to, "%s/%s", tmp, m->files[i].name))
            return -ENAMETOOLONG;
        rc = copy_file(from, to, err, errlen);
    }
    if (!rc && !(rc = store_path(to, "%s/%s", tmp, MANIFEST_NAME)))
        rc = manifest_write(to, m, err, errlen);
    return rc;
}

int adopt_snapshot(const struct trust *t, const struct adoption *a, char *err, size_t errlen)
{
    struct trust_subject s = {a->store, a->from, a->snap};
    char src[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX] = "";
    struct manifest m;
    int rc;

    err[0] = '\0';
    if (store_snapshot_path(src, a->store, a->from, a->snap, NULL) ||
        store_path(path, "%s/%s", src, MANIFEST_NAME)) {
        snprintf(err, errlen, "%s: path too long", src);
        return -ENAMETOOLONG;
    }
    if ((rc = manifest_read(path, &m, err, errlen)))
        return rc;
    if ((rc = adopt_trusted(t, &s, &m, err, errlen)))
        goto out;
    snprintf(m.vm, sizeof(m.vm), "%s", a->to);
    snprintf(m.snapshot, sizeof(m.snapshot), "%s", a->newsnap);
    rc = store_vm_create(a->store, a->to, err, errlen);
    if (rc == -EEXIST)
        err[0] = '\0';
    if ((rc && rc != -EEXIST) || (rc = trust_sign(t, &m)) ||
        (rc = store_tmp_create(a->store, a->to, a->newsnap, tmp, err, errlen)) ||
        (rc = adopt_files(src, tmp, &m, err, errlen)))
        goto out;
    rc = store_publish(a->store, a->to, tmp, a->newsnap, err, errlen);
    if (!rc)
        tmp[0] = '\0';
out:
    if (tmp[0])
        store_remove_dir(tmp);
    if (rc && !err[0])
        snprintf(err, errlen, "adopt %s of %s as %s of %s: %s", a->snap, a->from, a->newsnap, a->to,
                 strerror(-rc));
    manifest_free(&m);
    return rc;
}
