#!/usr/bin/env python3
"""QMP steps of a lazy restore driven by hand, for test_lazy_pager.sh (one QMP session each).

  qmp_lazy.py incoming QMP_SOCKET MIGRATION_SOCKET
      postcopy-ram on, migrate-incoming unix:MIGRATION_SOCKET
  qmp_lazy.py serve QMP_SOCKET TIMEOUT_S PAGER...
      starts the page server PAGER..., waits for postcopy-active, sends cont, waits for the guest
      to run and for the migration to complete (then turns postcopy-ram off again: a later save
      turns multifd on, which 7.2 refuses beside it), then for PAGER; prints "running_s=R
      completed_s=C" (seconds since PAGER started; Python's own start-up, a second on a loaded
      machine, is not counted) and exits with PAGER's status. With LAZY_EVENTS=FILE in the
      environment, PAGER gets --events on a descriptor writing FILE; with LAZY_SERIAL=FILE (the
      guest's serial log, new with this QEMU), also "first_pass_s=F": seconds from `cont` to
      the memcheck guest's first verification pass written there
  qmp_lazy.py recover QMP_SOCKET TIMEOUT_S RECOVER_SOCKET PAGER... SNAPDIR SOCKET
      serves as `serve` does, following PAGER's --events: once a quarter of the pages are in,
      SIGKILLs it, waits for postcopy-paused, sends migrate-recover unix:RECOVER_SOCKET and
      starts PAGER --resume SNAPDIR RECOVER_SOCKET; waits for it as `serve` does and prints
      "killed_at=DONE/TOTAL running_s=R completed_s=C" and the resumed pager's events
  qmp_lazy.py status QMP_SOCKET
      prints the migration's status ("none" before any stream arrived) and the VM's
"""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time


class Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        # QEMU 7.2 whose big lock a vCPU holds while it waits for a page never answers: fail, not
        # hang (docs/lazy.md, postcopy recovery).
        self.s.settimeout(30)
        self.f = self.s.makefile("rb")
        self.f.readline()  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.s.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = json.loads(self.f.readline())
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise SystemExit(f"{name}: {r['error']}")


def wait_for(q, what, test, deadline, pause):
    while time.time() < deadline:
        v = test(q)
        if v:
            return v
        time.sleep(pause)
    raise SystemExit(f"timed out waiting for {what}: {q.cmd('query-migrate')}")


def watch_pass(serial, t0, out):
    """out[0]: seconds from T0 to the first ok pass line in SERIAL (polled every 10 ms), unless
    out[1] says to give up first."""
    pat = re.compile(rb"SAVEFS-MEMCHECK pass=[0-9]+ ok")
    while not out[1]:
        try:
            with open(serial, "rb") as f:
                if pat.search(f.read()):
                    out[0] = time.time() - t0
                    return
        except OSError:
            pass
        time.sleep(0.01)


def serve(q, timeout, pager):
    fds = ()
    if os.environ.get("LAZY_EVENTS"):
        ev = open(os.environ["LAZY_EVENTS"], "w")
        fds = (ev.fileno(),)
        pager = [pager[0], "--events", str(ev.fileno())] + pager[1:]
    t0 = time.time()
    proc = subprocess.Popen(pager, pass_fds=fds)
    deadline = t0 + timeout
    mig = lambda q: q.cmd("query-migrate").get("status")
    wait_for(q, "postcopy-active", lambda q: mig(q) in ("postcopy-active", "completed"), deadline,
             0.002)
    q.cmd("cont")
    first = [None, False]
    watcher = None
    if os.environ.get("LAZY_SERIAL"):
        watcher = threading.Thread(target=watch_pass, args=(os.environ["LAZY_SERIAL"],
                                                             time.time(), first))
        watcher.start()
    wait_for(q, "running", lambda q: q.cmd("query-status")["status"] == "running", deadline, 0.002)
    running = time.time() - t0
    try:
        status = wait_for(q, "the end", lambda q: mig(q) in ("completed", "failed") and mig(q),
                          deadline, 0.02)
    except TimeoutError:
        proc.kill()
        raise SystemExit("QEMU's monitor does not answer (its main thread waits for a page)")
    completed = time.time() - t0
    q.cmd("migrate-set-capabilities", capabilities=[{"capability": "postcopy-ram", "state": False}])
    rc = proc.wait(max(deadline - time.time(), 1))
    if watcher:
        watcher.join(max(deadline - time.time(), 1))
        first[1] = True
        watcher.join()
    if status != "completed":
        raise SystemExit(f"migration {status}")
    print(f"running_s={running:.3f} completed_s={completed:.3f}" +
          (f" first_pass_s={first[0]:.3f}" if watcher and first[0] is not None else ""))
    return rc


def events(pager):
    """PAGER started with --events on a pipe: the process and the pipe's reading end."""
    r, w = os.pipe()
    proc = subprocess.Popen(pager[:1] + ["--events", str(w)] + pager[1:], pass_fds=(w,))
    os.close(w)
    return proc, os.fdopen(r)


def wait_line(ev, what, test):
    for line in ev:
        if test(line.split()):
            return line.split()
        if line.startswith("fail"):
            raise SystemExit(f"the pager failed waiting for {what}: {line}")
    raise SystemExit(f"the pager's events ended before {what}")


def recover(q, timeout, recover_sock, pager):
    t0 = time.time()
    deadline = t0 + timeout
    mig = lambda q: q.cmd("query-migrate").get("status")
    proc, ev = events(pager)
    wait_line(ev, "running", lambda f: f == ["running"])
    q.cmd("cont")
    done = wait_line(ev, "a quarter of the pages",
                     lambda f: f[0] == "push" and 4 * int(f[1]) >= int(f[2]))
    proc.kill()
    proc.wait()
    if done[1] == done[2]:
        raise SystemExit("every page was in before the pager was killed")
    proc = None
    try:
        wait_for(q, "postcopy-paused", lambda q: mig(q) == "postcopy-paused", deadline, 0.02)
        q.cmd("migrate-recover", uri="unix:" + recover_sock)
        proc, ev = events(pager[:1] + ["--resume", pager[-2], recover_sock])
        status = wait_for(q, "the end", lambda q: mig(q) in ("completed", "failed") and mig(q),
                          deadline, 0.02)
    except TimeoutError:
        if proc:
            proc.kill()
        raise SystemExit("QEMU's monitor does not answer (its main thread waits for a page)")
    completed = time.time() - t0
    q.cmd("migrate-set-capabilities", capabilities=[{"capability": "postcopy-ram", "state": False}])
    rc = proc.wait(max(deadline - time.time(), 1))
    lines = ev.read().split("\n")
    if status != "completed":
        raise SystemExit(f"migration {status}")
    print(f"killed_at={done[1]}/{done[2]} completed_s={completed:.3f}")
    print("resumed:", " ".join(l for l in lines if l and not l.startswith("push")),
          next((l for l in reversed(lines) if l.startswith("push")), ""))
    return rc


def main():
    q = Qmp(sys.argv[2])
    if sys.argv[1] == "incoming":
        q.cmd("migrate-set-capabilities",
              capabilities=[{"capability": "postcopy-ram", "state": True}])
        q.cmd("migrate-incoming", uri="unix:" + sys.argv[3])
    elif sys.argv[1] == "status":
        print(q.cmd("query-migrate").get("status", "none"), q.cmd("query-status")["status"])
    elif sys.argv[1] == "recover":
        sys.exit(recover(q, float(sys.argv[3]), sys.argv[4], sys.argv[5:]))
    else:
        sys.exit(serve(q, float(sys.argv[3]), sys.argv[4:]))


main()
