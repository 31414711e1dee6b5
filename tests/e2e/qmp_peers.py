#!/usr/bin/env python3
"""Hostile or odd peers in a QMP directory, for test_hostile_peers.sh. Runs until killed.

  qmp_peers.py flood PATH       greets, then streams events without pause to every client
  qmp_peers.py endless PATH     greets, then sends one line that never ends
  qmp_peers.py many DIR N       N listening sockets DIR/many0000.qmp ... (no answer)
  qmp_peers.py listen DIR NAME [SEE]
                                one listening socket bound to NAME from inside DIR, so that
                                /proc/net/unix shows NAME as given (a relative NAME stays relative);
                                then prints "ready", and whether path SEE exists the moment after
                                the socket listens ("seen" or "unseen")
"""
import os
import resource
import socket
import sys
import threading

GREETING = b'{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}\n'
EVENTS = b'{"event": "X", "data": {}}\n' * 4096
ENDLESS = b"a" * 65536
SO_SNDBUFFORCE = 32  # not in Python's socket module


def listener(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(64)
    return s


def serve(conn, head, body):
    try:
        # Megabytes queued (root may exceed wmem_max): the client never drains the socket before
        # this thread is scheduled again, however loaded the machine.
        conn.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 8 << 20)
        conn.sendall(head)
        while True:
            conn.sendall(body)
    except OSError:
        pass  # the client gave up: what the test wants
    finally:
        conn.close()


def serve_forever(path, head, body):
    s = listener(path)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn, head, body), daemon=True).start()


def main():
    mode = sys.argv[1]
    if mode == "flood":
        serve_forever(sys.argv[2], GREETING, EVENTS)
    elif mode == "endless":
        serve_forever(sys.argv[2], GREETING + b'{"event": "', ENDLESS)
    elif mode == "many":
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        keep = [listener(os.path.join(sys.argv[2], "many%04d.qmp" % i)) for i in range(int(sys.argv[3]))]
        print("ready", len(keep), flush=True)
        threading.Event().wait()
    elif mode == "listen":
        os.chdir(sys.argv[2])
        keep = listener(sys.argv[3])
        seen = "" if len(sys.argv) < 5 else " seen" if os.path.exists(sys.argv[4]) else " unseen"
        print("ready" + seen, keep.fileno(), flush=True)
        threading.Event().wait()
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
