/* fake_qemu: a process that savefs takes for QEMU, so that the orchestration runs without one.
 * The test binary becomes it when started with a QEMU command line (-qmp unix:PATH,... or
 * -version): the test starts it to be saved, and savefs starts it from a snapshot's manifest to
 * restore into. It serves QMP at PATH (fake_qmp.h) with just enough of QEMU's answers for a save,
 * a restore and recovery; on migrate it sends synthetic multifd streams (fake_stream.h) to the
 * URI, on migrate-incoming it reads them. Where its own threads meet it is one process: no
 * locks beyond an atomic status.
 *
 * What it does is set by the environment, inherited through savefs's spawn:
 *   FAKE_QEMU_LOG    a file: every command it receives is appended as a line ("quit" lines say
 *                    how many snapshots SNAPSHOTS held when it came)
 *   FAKE_QEMU_SNAPS  a directory whose entries "quit" counts (the VM's published snapshots)
 *   FAKE_QEMU_MODE   "ok" (default); "fail": the migration fails (a save's after its handshakes,
 *                    a restore's once it read every byte), with an error-desc; "stall": a save's
 *                    never ends until migrate_cancel, a restore's never reads; "vanish:CMD:N": when
 *                    command CMD arrives the Nth time, the monitor closes without an answer and
 *                    the process exits a moment later, as QEMU's does when it dies
 *   FAKE_QEMU_TAKE_NAMES  if set, "migrate" first makes FAKE_QEMU_SNAPS/STAMP for the default
 *                    names (UTC YYYYMMDD-HHMMSS) of the last 5 seconds: another host's saves that
 *                    published those names while this save ran */
#ifndef SAVEFS_FAKE_QEMU_H
#define SAVEFS_FAKE_QEMU_H

#define FAKE_QEMU_ERROR_DESC "Unable to write to socket: fake QEMU's disk of fake bytes is full"

/* 1 if ARGV is a QEMU command line that the test binary must serve as the fake QEMU. */
int fake_qemu_wanted(int argc, char **argv);
/* Runs as the fake QEMU until "quit" or a kill; the process's exit status. */
int fake_qemu_main(int argc, char **argv);

#endif
