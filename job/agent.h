/* agent: the QEMU guest agent (qemu-ga) of a VM, reached through the chardev socket its command
 * line gives it. A restored guest's wall clock is behind by the time it spent saved; the agent
 * can set it (what libvirt's SYNC_TIME does). Pure socket and argv functions, any thread. */
#ifndef SAVEFS_AGENT_H
#define SAVEFS_AGENT_H

#include <stddef.h>
#include <stdint.h>

#define AGENT_PORT_NAME "org.qemu.guest_agent.0"
/* As libvirt's: an agent that is not there costs a restore this long. */
#define AGENT_TIMEOUT_MS 5000

/* 1 and the absolute path of the unix socket in PATH if ARGV (run in CWD) has a guest agent
 * channel (a virtserialport named AGENT_PORT_NAME on a "-chardev socket,server=on" with a
 * path); else 0. */
int agent_socket(char *const *argv, int argc, const char *cwd, char *path, size_t len);

/* Connects to the agent at PATH, flushes stale replies with guest-sync, then sends
 * guest-set-time with NOW_NS (ns since the epoch). All within TIMEOUT_MS. 0, or -errno with the
 * reason in ERR (-ETIMEDOUT: no agent answered). */
int agent_set_time(const char *path, int64_t now_ns, int timeout_ms, char *err, size_t errlen);

/* After a restore (of a VM saved running, WAS_RUNNING) that runs ARGV in CWD: sets the guest's
 * clock to now through its agent, if the command line has one, and says how that went in NOTE
 * (empty if there is no agent). */
void agent_sync_clock(int was_running, char *const *argv, int argc, const char *cwd, char *note,
                      size_t len);

#endif
