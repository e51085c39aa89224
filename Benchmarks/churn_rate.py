#!/usr/bin/env python3
"""Respawns per second of a churning watcher, and event delivery to plugins.

A watcher of 50 processes that each exit after a few milliseconds (`sleep 0.005`), with
`check_flapping = false`: the user has said this is how they run, so nothing may
throttle their respawn. For each setup the script counts `spawn` events on the pub/sub
socket over a window once the churn has started, and reads circusd's CPU time over the
same window from /proc. Setups (run in turn, round after round, so that drift of the
machine hits all alike):

- `ours`: our circusd with no plugin at all (the default flapping instance is turned
  off with `[plugin:flapping] active = false`);
- `ours+3`: the same with three plugins: two instances of the C example plugin (it
  counts the `watcher.` events it receives, read with its `<name>.count` command) and
  the statsd emitter sending one UDP datagram per event to a socket this script reads;
  for each plugin the events it received per second, and the events the host dropped
  (the `plugins` command's `dropped_events`);
- `python` (`--python`): Python Circus 0.19 from .venv, no plugin. It reaps and
  respawns only on its check_delay tick, so its rate is about 50 / check_delay: run
  once with Circus's default (5 s) and once with `--check-delay 0.1` for its best;
- `bare`: the machine's limit, `bare/churn_loop.c` keeping 50 such children and
  replacing each the moment it is reaped.

    Benchmarks/churn_rate.py --circusd .build-release/release/circusd [--python] \\
        [--seconds 10] [--rounds 3] [--check-delay 5.0]

The daemon's CPU is read from /proc/PID/stat (all threads: the loop and the plugins'
executors) and /proc/PID/task/PID/stat (the loop thread alone).

Every daemon gets a fresh temp dir with ipc endpoints; it is stopped with `quit` and
SIGKILLed by pid if it has not exited 30 s later.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
import benchvenv  # noqa: E402

benchvenv.require(__file__, "zmq")
import zmq  # noqa: E402

import argparse
import json
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time

WATCHER = """[circus]
endpoint = ipc://{dir}/ctl.sock
pubsub_endpoint = ipc://{dir}/pub.sock
check_delay = {check_delay}
statsd = false

[watcher:churn]
cmd = {sleep} 0.005
numprocesses = 50
check_flapping = false
"""

NO_PLUGIN = """
[plugin:flapping]
use = flapping
active = false
"""

THREE_PLUGINS = NO_PLUGIN + """
[plugin:counter_a]
use = {example}

[plugin:counter_b]
use = {example}

[plugin:statsd]
use = circus.plugins.statsd.StatsdEmitter
host = 127.0.0.1
port = {port}
"""

TICKS = os.sysconf("SC_CLK_TCK")


def call(endpoint, command, properties=None, timeout=5.0):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    try:
        s.send(json.dumps({"id": "c", "command": command, "properties": properties or {}}).encode())
        if s.poll(int(timeout * 1000)):
            return json.loads(s.recv())
        return None
    finally:
        s.close()


def cpu_seconds(pid, tid=None):
    """CPU seconds (user + system) of a process, or of one of its threads."""
    path = "/proc/%d/stat" % pid if tid is None else "/proc/%d/task/%d/stat" % (pid, tid)
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class DatagramCounter(threading.Thread):
    """Counts the datagrams sent to a UDP socket on 127.0.0.1."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.running = True

    def run(self):
        while self.running:
            try:
                self.sock.recv(65536)
                self.count += 1
            except socket.timeout:
                pass

    def stop(self):
        self.running = False
        self.join()
        self.sock.close()


def counts(endpoint, statsd):
    out = {}
    for name in ("counter_a", "counter_b"):
        reply = call(endpoint, name + ".count") or {}
        out[name] = reply.get("count", 0)
    out["statsd"] = statsd.count
    return out


def measure_daemon(binary, seconds, plugins, example, check_delay):
    """Respawns/s, daemon CPU s per s, and with plugins the events/s each one received."""
    directory = tempfile.mkdtemp(prefix="churn-")
    config = os.path.join(directory, "circus.ini")
    statsd = DatagramCounter() if plugins else None
    with open(config, "w") as f:
        f.write(WATCHER.format(dir=directory, sleep=shutil.which("sleep"), check_delay=check_delay))
        if plugins:
            f.write(THREE_PLUGINS.format(example=example, port=statsd.port))
        elif plugins is False:
            f.write(NO_PLUGIN)
    endpoint = "ipc://%s/ctl.sock" % directory
    log = open(os.path.join(directory, "circusd.log"), "w")
    if statsd:
        statsd.start()
    daemon = subprocess.Popen([binary, config], cwd=directory, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    result = {}
    try:
        deadline = time.time() + 30
        while call(endpoint, "status", timeout=0.5) is None:
            if time.time() > deadline or daemon.poll() is not None:
                raise RuntimeError("%s did not answer status (see %s)" % (binary, directory))
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        # Only the spawn events: libzmq filters on the daemon's side, so this client's own CPU
        # (taken from the same two cores the churn runs on) stays small.
        sub.setsockopt(zmq.SUBSCRIBE, b"watcher.churn.spawn")
        sub.connect("ipc://%s/pub.sock" % directory)
        # Warm-up: let the churn settle (and the SUB connect) before counting.
        warm_end = time.time() + 2.0
        while time.time() < warm_end:
            if sub.poll(100):
                sub.recv_multipart()
        before = counts(endpoint, statsd) if plugins else None
        cpu0 = cpu_seconds(daemon.pid)
        loop0 = cpu_seconds(daemon.pid, daemon.pid)
        spawns = 0
        start = time.time()
        end = start + seconds
        while True:
            left = end - time.time()
            if left <= 0:
                break
            if sub.poll(int(left * 1000) + 1):
                sub.recv_multipart()
                spawns += 1
        elapsed = time.time() - start
        cpu1 = cpu_seconds(daemon.pid)
        loop1 = cpu_seconds(daemon.pid, daemon.pid)
        sub.close()
        result["respawns"] = spawns / elapsed
        result["cpu"] = (cpu1 - cpu0) / elapsed
        result["loop_cpu"] = (loop1 - loop0) / elapsed
        if plugins:
            after = counts(endpoint, statsd)
            result["plugins"] = dict((k, (after[k] - before[k]) / elapsed) for k in after)
            listed = (call(endpoint, "plugins") or {}).get("plugins", {})
            result["dropped"] = sum(p.get("dropped_events", 0) for p in listed.values())
        result["status"] = (call(endpoint, "status", {"name": "churn"}) or {}).get("status")
        return result
    finally:
        call(endpoint, "quit", timeout=5)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
        log.close()
        if statsd:
            statsd.stop()
        shutil.rmtree(directory, ignore_errors=True)


def build(directory):
    cc = os.environ.get("CC", "cc")
    example = os.path.join(directory, "libexample.so")
    bare = os.path.join(directory, "churn_loop")
    for cmd in ([cc, "-O2", "-shared", "-fPIC", "-I", os.path.join(ROOT, "include"), "-o", example,
                 os.path.join(ROOT, "Plugins", "example-c", "example.c")],
                [cc, "-O2", "-Wall", "-o", bare, os.path.join(HERE, "bare", "churn_loop.c")]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("build failed: %s\n%s" % (" ".join(cmd), r.stderr))
    return example, bare


def measure_bare(bare, seconds):
    out = subprocess.run([bare, shutil.which("sleep"), "0.005", "50", str(seconds)],
                         capture_output=True, text=True, check=True).stdout
    return {"respawns": json.loads(out)["spawns_per_second"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--circusd", default=os.path.join(ROOT, ".build-release", "release", "circusd"))
    ap.add_argument("--python", action="store_true", help="also Python Circus from .venv")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--check-delay", type=float, default=5.0,
                    help="[circus] check_delay (Circus reaps and respawns on this tick; ours does not use it)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="churn-build-")
    example, bare = build(work)
    setups = [
        ("ours", lambda: measure_daemon(args.circusd, args.seconds, False, example, args.check_delay)),
        ("ours+3", lambda: measure_daemon(args.circusd, args.seconds, True, example, args.check_delay)),
        ("bare", lambda: measure_bare(bare, args.seconds)),
    ]
    if args.python:
        circusd = os.path.join(ROOT, ".venv", "bin", "circusd")
        setups.insert(2, ("python", lambda: measure_daemon(circusd, args.seconds, None, example, args.check_delay)))
    results = dict((label, []) for label, _ in setups)
    try:
        for round_ in range(args.rounds):
            for label, run in setups:
                r = run()
                print("round %d %s: %s" % (round_ + 1, label, json.dumps(r)), file=sys.stderr)
                results[label].append(r)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(label, key):
        values = [r[key] for r in results[label] if key in r]
        return statistics.median(values) if values else None

    bare_rate = med("bare", "respawns")
    print("| setup | respawns/s | of bare | daemon CPU (s/s) | of which the loop thread | daemon CPU per respawn | events/s reaching each plugin | dropped |")
    print("|---|---|---|---|---|---|---|---|")
    for label, _ in setups:
        rate = med(label, "respawns")
        cpu = med(label, "cpu")
        per_plugin = ""
        dropped = ""
        if label == "ours+3":
            per_plugin = ", ".join("%s %.0f" % (k, statistics.median(r["plugins"][k] for r in results[label]))
                                   for k in results[label][0]["plugins"])
            dropped = str(max(r["dropped"] for r in results[label]))
        loop = med(label, "loop_cpu")
        print("| %s | %.1f | %.2f | %s | %s | %s | %s | %s |" % (
            label, rate, rate / bare_rate, "%.3f" % cpu if cpu is not None else "",
            "%.3f" % loop if loop is not None else "",
            "%.0f µs" % (cpu / rate * 1e6) if cpu is not None else "",
            per_plugin, dropped))
    print("\n(median of %d rounds of %.0f s; runs: %s)" % (args.rounds, args.seconds, "; ".join(
        "%s %s" % (label, ", ".join("%.0f" % r["respawns"] for r in results[label])) for label, _ in setups)))


if __name__ == "__main__":
    main()
