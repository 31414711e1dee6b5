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
      environment, PAGER gets --events on a descriptor writing FILE
  qmp_lazy.py status QMP_SOCKET
      prints the migration's status ("none" before any stream arrived) and the VM's
"""
import json
import os
import socket
import subprocess
import sys
import time


class Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
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
    wait_for(q, "running", lambda q: q.cmd("query-status")["status"] == "running", deadline, 0.002)
    running = time.time() - t0
    status = wait_for(q, "the end", lambda q: mig(q) in ("completed", "failed") and mig(q),
                      deadline, 0.02)
    completed = time.time() - t0
    q.cmd("migrate-set-capabilities", capabilities=[{"capability": "postcopy-ram", "state": False}])
    rc = proc.wait(max(deadline - time.time(), 1))
    if status != "completed":
        raise SystemExit(f"migration {status}")
    print(f"running_s={running:.3f} completed_s={completed:.3f}")
    return rc


def main():
    q = Qmp(sys.argv[2])
    if sys.argv[1] == "incoming":
        q.cmd("migrate-set-capabilities",
              capabilities=[{"capability": "postcopy-ram", "state": True}])
        q.cmd("migrate-incoming", uri="unix:" + sys.argv[3])
    elif sys.argv[1] == "status":
        print(q.cmd("query-migrate").get("status", "none"), q.cmd("query-status")["status"])
    else:
        sys.exit(serve(q, float(sys.argv[3]), sys.argv[4:]))


main()
