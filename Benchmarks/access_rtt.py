#!/usr/bin/env python3
"""What checking the sender costs on a `status` round trip.

Starts circusd with `readonly_users = nobody` on a loopback tcp endpoint and on an ipc
endpoint, and measures with a small libzmq client compiled with cc, run as root and
(when this runs as root) as nobody through runuser:
- `status` round trips on one long-lived DEALER: the per-message cost of the check
  (root needs no grant; nobody's uid is looked up in the grants);
- `status` on a fresh DEALER each time: adds the one owner lookup per connection (for
  tcp, the peer's socket asked of the kernel over NETLINK_SOCK_DIAG; for ipc, the
  credentials libzmq took with SO_PEERCRED).

    Benchmarks/access_rtt.py --with PATH [--without PATH] [--requests N] [--rounds R]

`--without` is an optional second circusd (e.g. one built before the check) measured
alternately with the first (A B A B ...) the same way.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
import benchvenv  # noqa: E402

benchvenv.require(__file__, "zmq")
import zmq  # noqa: E402

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

REQUEST = json.dumps({"id": "b", "command": "status", "properties": {}}).encode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The measuring client, in C so that it runs as nobody too (and adds no interpreter
# time): `client ENDPOINT N` prints [persistent RTTs], [fresh-connection RTTs] in µs.
CLIENT_C = r"""
#include <zmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static const char *request = "{\"id\": \"b\", \"command\": \"status\", \"properties\": {}}";
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3; }
static void *open_dealer(void *ctx, const char *endpoint) {
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, timeout = 5000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    if (zmq_connect(s, endpoint) != 0) exit(3);
    return s;
}
static void call(void *s) {
    static char buffer[65536];
    zmq_send(s, request, strlen(request), 0);
    int n = zmq_recv(s, buffer, sizeof buffer - 1, 0);
    if (n < 0) { fprintf(stderr, "no reply\n"); exit(4); }
    buffer[n < (int)sizeof buffer - 1 ? n : (int)sizeof buffer - 1] = 0;
    if (!strstr(buffer, "\"status\": \"ok\"")) { fprintf(stderr, "refused: %s\n", buffer); exit(5); }
}
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    int n = atoi(argv[2]);
    void *ctx = zmq_ctx_new();
    void *s = open_dealer(ctx, argv[1]);
    for (int i = 0; i < 200; i++) call(s);
    printf("[[");
    for (int i = 0; i < n; i++) { double t = now(); call(s); printf(i ? ",%.2f" : "%.2f", now() - t); }
    zmq_close(s);
    printf("],[");
    for (int i = 0; i < (n / 10 > 0 ? n / 10 : 1); i++) {
        double t = now();
        void *f = open_dealer(ctx, argv[1]);
        call(f);
        zmq_close(f);
        printf(i ? ",%.2f" : "%.2f", now() - t);
    }
    printf("]]\n");
    zmq_ctx_term(ctx);
    return 0;
}
"""


def compile_client(directory):
    source = os.path.join(directory, "client.c")
    binary = os.path.join(directory, "client")
    with open(source, "w") as f:
        f.write(CLIENT_C)
    subprocess.run(["cc", "-O2", source, "-o", binary, "-lzmq"], check=True)
    os.chmod(directory, 0o755)
    return binary


def run(binary, client, endpoint, requests, tmp, users):
    ini = os.path.join(tmp, "circus.ini")
    with open(ini, "w") as f:
        f.write("[circus]\nendpoint = %s\npubsub_endpoint = tcp://127.0.0.1:%d\n"
                "readonly_users = nobody\n"
                "[watcher:app]\ncmd = sleep 600\n" % (endpoint, free_port()))
    daemon = subprocess.Popen([binary, ini], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(endpoint)
        deadline = time.time() + 10
        while True:
            sock.send(REQUEST)
            if sock.poll(200):
                sock.recv()
                break
            if time.time() > deadline:
                raise RuntimeError("daemon not ready")
        ctx.destroy(linger=0)
        results = {}
        for user in users:
            command = [client, endpoint, str(requests)]
            if user != "root":
                command = ["runuser", "-u", user, "--"] + command
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[user] = tuple(json.loads(out))
        return results
    finally:
        daemon.terminate()
        daemon.wait(10)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--with", dest="checked")
    parser.add_argument("--without", dest="unchecked")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not args.checked:
        parser.error("--with is required")
    users = ["root", "nobody"] if os.geteuid() == 0 and shutil.which("runuser") else ["root"]
    binaries = [("circusd", args.checked)]
    if args.unchecked:
        binaries.append(("without", args.unchecked))
    results = {}
    client_dir = tempfile.mkdtemp(prefix="acc-client-")
    client = compile_client(client_dir)
    for round_number in range(args.rounds):
        # Who measures first alternates: the machine's load drifts.
        order = users if round_number % 2 == 0 else users[::-1]
        for name, binary in binaries:
            for transport in ("tcp", "ipc"):
                tmp = tempfile.mkdtemp(prefix="acc-")
                os.chmod(tmp, 0o755)  # nobody reaches the ipc socket
                try:
                    endpoint = ("tcp://127.0.0.1:%d" % free_port()) if transport == "tcp" else "ipc://%s/c.sock" % tmp
                    for user, (persistent, fresh) in run(binary, client, endpoint, args.requests, tmp, order).items():
                        entry = results.setdefault((transport, name, user), ([], []))
                        entry[0].extend(persistent)
                        entry[1].extend(fresh)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(client_dir, ignore_errors=True)
    print("| transport | circusd | client | status RTT, one connection (median / p99 µs) | new connection + status (median µs) |")
    print("|---|---|---|---|---|")
    for (transport, name, user), (persistent, fresh) in sorted(results.items()):
        persistent.sort()
        print("| %s | %s | %s | %.1f / %.1f | %.0f |" % (
            transport, name, user, statistics.median(persistent), persistent[int(len(persistent) * 0.99)],
            statistics.median(fresh)))


if __name__ == "__main__":
    main()
