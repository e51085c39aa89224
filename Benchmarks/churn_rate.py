#!/usr/bin/env python3
"""Respawns per second of a watcher whose processes are short-lived by design.

A watcher of 50 processes that each exit after a few milliseconds (`sleep 0.005`), with
`check_flapping = false`: the user has said this is how they run, so nothing may
throttle their respawn. The script counts `spawn` events on the pub/sub socket over a
window once the churn has started, and reports respawns/s, for each daemon given
(alternating A B A B ... so drift of the machine hits all alike):

    Benchmarks/churn_rate.py --daemon ours=.build-release/release/circusd \\
        [--daemon base=/path/to/older/circusd] [--python] [--seconds 10] [--rounds 3]

`--python` adds Python Circus 0.19 from .venv (it reaps on its check_delay tick; the
window then spans several ticks). Every daemon gets a fresh temp dir with ipc endpoints;
it is stopped with `quit` and SIGKILLed by pid if it has not exited 30 s later.
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
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

CONFIG = """[circus]
endpoint = ipc://{dir}/ctl.sock
pubsub_endpoint = ipc://{dir}/pub.sock
check_delay = 5.0
statsd = false

[watcher:churn]
cmd = {sleep} 0.005
numprocesses = 50
check_flapping = false
"""


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


def measure(binary, seconds):
    """Spawn events per second of the churning watcher under `binary`."""
    directory = tempfile.mkdtemp(prefix="churn-")
    config = os.path.join(directory, "circus.ini")
    with open(config, "w") as f:
        f.write(CONFIG.format(dir=directory, sleep=shutil.which("sleep")))
    endpoint = "ipc://%s/ctl.sock" % directory
    log = open(os.path.join(directory, "circusd.log"), "w")
    daemon = subprocess.Popen([binary, config], cwd=directory, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while call(endpoint, "status", timeout=0.5) is None:
            if time.time() > deadline or daemon.poll() is not None:
                raise RuntimeError("%s did not answer status (see %s)" % (binary, directory))
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"watcher.churn.spawn")
        sub.connect("ipc://%s/pub.sock" % directory)
        # Warm-up: let the churn settle (and the SUB connect) before counting.
        warm_end = time.time() + 2.0
        while time.time() < warm_end:
            if sub.poll(100):
                sub.recv_multipart()
        count = 0
        start = time.time()
        end = start + seconds
        while True:
            left = end - time.time()
            if left <= 0:
                break
            if sub.poll(int(left * 1000) + 1):
                sub.recv_multipart()
                count += 1
        elapsed = time.time() - start
        sub.close()
        status = (call(endpoint, "status", {"name": "churn"}) or {}).get("status")
        return count / elapsed, status
    finally:
        call(endpoint, "quit", timeout=5)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", action="append", default=[], help="LABEL=PATH of a circusd (repeatable)")
    ap.add_argument("--python", action="store_true", help="also Python Circus from .venv")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    daemons = [tuple(d.split("=", 1)) for d in args.daemon]
    if args.python:
        daemons.append(("python", os.path.join(os.path.dirname(HERE), ".venv", "bin", "circusd")))
    if not daemons:
        ap.error("give at least one --daemon LABEL=PATH or --python")
    results = {label: [] for label, _ in daemons}
    for round_ in range(args.rounds):
        for label, path in daemons:
            rate, status = measure(path, args.seconds)
            print("round %d %s: %.1f respawns/s (watcher %s)" % (round_ + 1, label, rate, status), file=sys.stderr)
            results[label].append(rate)
    print("| daemon | respawns/s (median of %d × %.0f s) | runs |" % (args.rounds, args.seconds))
    print("|---|---|---|")
    for label, _ in daemons:
        print("| %s | %.1f | %s |" % (label, statistics.median(results[label]),
                                      ", ".join("%.1f" % r for r in results[label])))


if __name__ == "__main__":
    main()
