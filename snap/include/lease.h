/* lease: "VM runs on host H since T", on the store that every host of a fleet shares.
 *   STORE/.leases/VM   an open file description's (OFD) write lock on byte 0 is the lease; the
 *                      file's text says who holds it (JSON: host, since, pid, how)
 * The lock, not the text, decides: a text whose lock is free is a lease that ended. An OFD lock
 * belongs to the open file description, so a QEMU that inherits the descriptor keeps it after
 * savefs closes its own, exits or is killed, and it goes when the last descriptor closes (the
 * QEMU exits). Pure file operations, any thread. */
#ifndef SAVEFS_LEASE_H
#define SAVEFS_LEASE_H

#include <stddef.h>
#include <sys/types.h>

#define LEASE_DIR      ".leases"
#define LEASE_HOST_MAX 64

/* Who holds a lease, as its file says. */
struct lease_holder {
    char host[LEASE_HOST_MAX + 1];
    char since[32]; /* RFC 3339, UTC */
    int pid;        /* the QEMU on HOST */
    char how[16];   /* "restored": the QEMU holds it; "seen": a savefs holds it for a QEMU
                       started by hand */
};

/* 1 if NAME may name a host in a lease: 1..64 of A-Za-z0-9._- */
int lease_valid_host(const char *name);

/* Takes VM's lease: opens STORE/.leases/VM (made if missing) close-on-exec and locks it without
 * waiting. 0 with *FD holding it; -EBUSY if another open file description holds it, anywhere in
 * the fleet (HOLDER then says whom, as far as its text tells: empty fields if unreadable); else
 * -errno with ERR. */
int lease_take(const char *store, const char *vm, int *fd, struct lease_holder *holder, char *err,
               size_t errlen);

/* Locks again the lease FD took: 0 if FD still holds it (or holds it again: nobody took it in
 * between), -EBUSY if another holds it now (HOLDER says whom), -errno if the store does not
 * answer (a GlusterFS client cut off from its bricks: ENOTCONN). */
int lease_renew(int fd, struct lease_holder *holder);

/* Writes H as the text of the lease FD holds (not fsync'd: the lock is what counts). */
int lease_write(int fd, const struct lease_holder *h);

/* Whether VM's lease is held (1, HOLDER filled as far as its text tells) or free (0); -errno if
 * it cannot be told. Reads only: no file is made, no lock taken. */
int lease_query(const char *store, const char *vm, struct lease_holder *holder);

/* H as a file of its own at PATH (this host's note of the QEMU it started), and back. */
int lease_save(const char *path, const struct lease_holder *h);
int lease_load(const char *path, struct lease_holder *h);

/* "runs on host H since T (pid P)" into BUF. */
void lease_describe(const struct lease_holder *h, char *buf, size_t len);

#endif
