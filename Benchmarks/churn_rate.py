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
  the statsd emitter sending the metric of every event over UDP to a socket this script
  reads (the metrics of a batch of events share a datagram);
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
import resource
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


def cpu_seconds(pid, tid=None, children=False):
    """CPU seconds (user + system) of a process, or of one of its threads; with
    `children`, those of its reaped children instead (cutime + cstime)."""
    path = "/proc/%d/stat" % pid if tid is None else "/proc/%d/task/%d/stat" % (pid, tid)
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / TICKS


def rusage_seconds(who):
    """User + system CPU seconds of this process (RUSAGE_SELF) or of its reaped children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class DatagramCounter(threading.Thread):
    """Counts the statsd metrics sent to a UDP socket on 127.0.0.1 (one per line: the
    plugin sends the metrics of a batch of events in one datagram)."""

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
                self.count += self.sock.recv(65536).count(b"\n") + 1
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


def measure_daemon(binary, seconds, plugins, example, check_delay, subscriber):
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
                # The directory goes with the run: say what the daemon said (a circusd
                # copied away from .build-release finds no shipped plugin, for one).
                log.flush()
                with open(os.path.join(directory, "circusd.log"), errors="replace") as said:
                    tail = said.read()[-2000:]
                raise RuntimeError("%s did not answer status; its log:\n%s" % (binary, tail))
        # The spawn events are counted by a small C subscriber: a Python one took 50 µs of
        # CPU per event from the two cores the churn runs on (the bare loop pays none).
        # libzmq filters by topic on the daemon's side, so only `spawn` events reach it.
        counter = subprocess.Popen([subscriber, "ipc://%s/pub.sock" % directory, "watcher.churn.spawn",
                                    "2.0", str(seconds)], stdout=subprocess.PIPE, text=True)
        try:
            if counter.stdout.readline().strip() != "start":
                raise RuntimeError("sub_count did not start")
            before = counts(endpoint, statsd) if plugins else None
            cpu0 = cpu_seconds(daemon.pid)
            loop0 = cpu_seconds(daemon.pid, daemon.pid)
            kids0 = cpu_seconds(daemon.pid, children=True)
            self0 = rusage_seconds(resource.RUSAGE_SELF)
            start = time.time()
            counted = json.loads(counter.stdout.readline())
            elapsed = time.time() - start
            cpu1 = cpu_seconds(daemon.pid)
            loop1 = cpu_seconds(daemon.pid, daemon.pid)
            kids1 = cpu_seconds(daemon.pid, children=True)
            self1 = rusage_seconds(resource.RUSAGE_SELF)
        finally:
            counter.wait()
        result["respawns"] = counted["count"] / counted["elapsed_s"]
        result["cpu"] = (cpu1 - cpu0) / elapsed
        result["loop_cpu"] = (loop1 - loop0) / elapsed
        result["children_cpu"] = (kids1 - kids0) / elapsed
        # What the measuring takes from the same two cores, and the bare run does not pay:
        # the subscriber, and this script (its UDP counter, with plugins).
        result["client_cpu"] = (counted["cpu_s"] + self1 - self0) / elapsed
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
    subscriber = os.path.join(directory, "sub_count")
    for cmd in ([cc, "-O2", "-shared", "-fPIC", "-I", os.path.join(ROOT, "include"), "-o", example,
                 os.path.join(ROOT, "Plugins", "example-c", "example.c")],
                [cc, "-O2", "-Wall", "-o", bare, os.path.join(HERE, "bare", "churn_loop.c")],
                [cc, "-O2", "-Wall", "-o", subscriber, os.path.join(HERE, "bare", "sub_count.c"), "-lzmq"]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("build failed: %s\n%s" % (" ".join(cmd), r.stderr))
    return example, bare, subscriber


def measure_bare(bare, seconds):
    before = rusage_seconds(resource.RUSAGE_CHILDREN)
    started = time.time()
    out = subprocess.run([bare, shutil.which("sleep"), "0.005", "50", str(seconds)],
                         capture_output=True, text=True, check=True).stdout
    elapsed = time.time() - started
    after = rusage_seconds(resource.RUSAGE_CHILDREN)
    # The loop's own CPU and its children's together (the loop reaps them all), over the
    # whole run: the loop's share is small, so all of it is counted as the children's.
    used = after - before
    reported = json.loads(out)
    return {"respawns": reported["spawns_per_second"], "children_cpu": used / elapsed,
            "loop_us": reported["loop_cpu_per_spawn_us"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--circusd", default=os.path.join(ROOT, ".build-release", "release", "circusd"))
    ap.add_argument("--python", action="store_true", help="also Python Circus from .venv")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--check-delay", type=float, default=5.0,
                    help="[circus] check_delay (Circus reaps and respawns on this tick; ours does not use it)")
    args = ap.parse_args()
    # The daemons run in their temp dirs: a relative path would not name the binary there.
    args.circusd = os.path.abspath(args.circusd)
    work = tempfile.mkdtemp(prefix="churn-build-")
    example, bare, subscriber = build(work)
    setups = [
        ("ours", lambda: measure_daemon(args.circusd, args.seconds, False, example, args.check_delay, subscriber)),
        ("ours+3", lambda: measure_daemon(args.circusd, args.seconds, True, example, args.check_delay, subscriber)),
        ("bare", lambda: measure_bare(bare, args.seconds)),
    ]
    if args.python:
        circusd = os.path.join(ROOT, ".venv", "bin", "circusd")
        setups.insert(2, ("python", lambda: measure_daemon(circusd, args.seconds, None, example, args.check_delay, subscriber)))
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
    print("| setup | respawns/s | of bare | daemon CPU (s/s) | of which the loop thread | daemon CPU per respawn | children's CPU per respawn | events/s reaching each plugin | dropped |")
    print("|---|---|---|---|---|---|---|---|---|")
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
        kids = med(label, "children_cpu")
        print("| %s | %.1f | %.2f | %s | %s | %s | %s | %s | %s |" % (
            label, rate, rate / bare_rate, "%.3f" % cpu if cpu is not None else "",
            "%.3f" % loop if loop is not None else "",
            "%.0f µs" % (cpu / rate * 1e6) if cpu is not None
            else "%.0f µs (the loop)" % med(label, "loop_us") if label == "bare" else "",
            "%.0f µs" % (kids / rate * 1e6) if kids is not None else "",
            per_plugin, dropped))
    print("\n(median of %d rounds of %.0f s; runs: %s)" % (args.rounds, args.seconds, "; ".join(
        "%s %s" % (label, ", ".join("%.0f" % r["respawns"] for r in results[label])) for label, _ in setups)))


if __name__ == "__main__":
    main()
