#!/usr/bin/env python3
"""What checking the sender costs on a `status` round trip.

Runs two circusd binaries alternately (A B A B ...) on a loopback tcp endpoint and an
ipc endpoint, and measures with pyzmq:
- `status` round trips on one long-lived DEALER (the per-message cost of the check);
- `status` on a fresh DEALER each time (adds the one lookup per connection: the owner
  of the peer socket, asked of the kernel over NETLINK_SOCK_DIAG for tcp).

    Benchmarks/access_rtt.py --with PATH --without PATH [--requests N] [--rounds R]

`--without` is a circusd built without the check (e.g. the commit before it).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
VENV_PY = os.path.join(os.path.dirname(HERE), ".venv", "bin", "python")
try:
    import zmq
except ImportError:
    if os.path.exists(VENV_PY) and not os.environ.get("CBENCH_REEXEC"):
        os.environ["CBENCH_REEXEC"] = "1"
        os.execv(VENV_PY, [VENV_PY, os.path.abspath(__file__)] + sys.argv[1:])
    raise

import argparse
import json
import socket
import statistics
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(sock, request):
    sock.send(request)
    if not sock.poll(5000):
        raise RuntimeError("no reply")
    return sock.recv()


def run(binary, endpoint, requests, tmp):
    ini = os.path.join(tmp, "circus.ini")
    with open(ini, "w") as f:
        f.write("[circus]\nendpoint = %s\npubsub_endpoint = tcp://127.0.0.1:%d\n"
                "[watcher:app]\ncmd = sleep 600\n" % (endpoint, free_port()))
    daemon = subprocess.Popen([binary, ini], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = zmq.Context()
    try:
        request = json.dumps({"id": "b", "command": "status", "properties": {}}).encode()
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(endpoint)
        deadline = time.time() + 10
        while True:
            sock.send(request)
            if sock.poll(200):
                sock.recv()
                break
            if time.time() > deadline:
                raise RuntimeError("daemon not ready")
        for _ in range(200):
            call(sock, request)
        persistent = []
        for _ in range(requests):
            t = time.perf_counter()
            call(sock, request)
            persistent.append((time.perf_counter() - t) * 1e6)
        sock.close()
        fresh = []
        for _ in range(max(1, requests // 10)):
            t = time.perf_counter()
            s = ctx.socket(zmq.DEALER)
            s.linger = 0
            s.connect(endpoint)
            call(s, request)
            s.close()
            fresh.append((time.perf_counter() - t) * 1e6)
        return persistent, fresh
    finally:
        ctx.destroy(linger=0)
        daemon.terminate()
        daemon.wait(10)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--with", dest="checked", required=True)
    parser.add_argument("--without", dest="unchecked", required=True)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = {}
    for _ in range(args.rounds):
        for name, binary in (("with check", args.checked), ("without", args.unchecked)):
            for transport in ("tcp", "ipc"):
                with tempfile.TemporaryDirectory(prefix="acc-") as tmp:
                    endpoint = ("tcp://127.0.0.1:%d" % free_port()) if transport == "tcp" else "ipc://%s/c.sock" % tmp
                    persistent, fresh = run(binary, endpoint, args.requests, tmp)
                    entry = results.setdefault((transport, name), ([], []))
                    entry[0].extend(persistent)
                    entry[1].extend(fresh)
    print("| transport | circusd | status RTT, one connection (median / p99 µs) | new connection + status (median µs) |")
    print("|---|---|---|---|")
    for (transport, name), (persistent, fresh) in sorted(results.items()):
        persistent.sort()
        print("| %s | %s | %.1f / %.1f | %.0f |" % (
            transport, name, statistics.median(persistent), persistent[int(len(persistent) * 0.99)],
            statistics.median(fresh)))


if __name__ == "__main__":
    main()
