#!/usr/bin/env python3
"""Orphan count under random SIGKILLs.

Runs a circusd whose watchers' processes fork children of their own, SIGKILLs random
watcher processes from outside for a while, then counts the processes those trees left:

- strays: tagged processes still running after the kills stopped and the daemon had
  `--settle` seconds (graceful_timeout + 1 by default) to end what the killed workers
  left, that are neither a current worker nor in a current worker's process group;
- left after quit: tagged processes still running once `quit` returned and the daemon
  exited.

Every process of the run carries `ORPHAN_TAG=<unique id>` in its environment (an
`[env:<watcher>]` section; children inherit it), which is how they are found in /proc.
Whatever is found is SIGKILLed afterwards, so nothing outlives the run.

    swift build -c release --static-swift-stdlib --scratch-path .build-release
    Benchmarks/orphans.py                      # ours: .build-release/release/circusd
    Benchmarks/orphans.py --python             # also Python circusd 0.19 (.venv/bin/circusd)
    Benchmarks/orphans.py --seconds 10 --ours PATH

Re-executes itself under .venv/bin/python (needs pyzmq).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
VENV_PY = os.path.join(REPO, ".venv", "bin", "python")

try:
    import zmq
except ImportError:  # re-run under the project's virtualenv
    if os.path.exists(VENV_PY) and not os.environ.get("ORPHANS_REEXEC"):
        os.environ["ORPHANS_REEXEC"] = "1"
        os.execv(VENV_PY, [VENV_PY, os.path.abspath(__file__)] + sys.argv[1:])
    raise

import argparse
import json
import random
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

SLEEP = shutil.which("sleep") or "/bin/sleep"
PYTHON = sys.executable

# A worker that forks a child, which forks a grandchild; all three sleep.
PY_WORKER = "import os, time\nif os.fork() == 0:\n    os.fork()\ntime.sleep(1000)\n"

CONFIG = """[circus]
endpoint = ipc://{dir}/ctl.sock
pubsub_endpoint = ipc://{dir}/pub.sock
multicast_endpoint =
check_delay = 1
loglevel = info

[watcher:shell]
cmd = /bin/sh -c '{sleep} 1000 & exec {sleep} 1000'
numprocesses = 4
graceful_timeout = {grace}
copy_env = true
check_flapping = false
flapping.active = false

[env:shell]
ORPHAN_TAG = {tag}

[watcher:pyfork]
cmd = {python} {dir}/worker.py
numprocesses = 4
graceful_timeout = {grace}
copy_env = true
check_flapping = false
flapping.active = false

[env:pyfork]
ORPHAN_TAG = {tag}
"""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Client:
    def __init__(self, endpoint):
        self.endpoint = endpoint

    def call(self, command, timeout=10.0, **props):
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        try:
            sock.send(json.dumps({"id": uuid.uuid4().hex, "command": command, "properties": props}).encode())
            if not sock.poll(int(timeout * 1000)):
                return None
            return json.loads(sock.recv())
        finally:
            sock.close()


def tagged(tag):
    """pid -> (state, pgid, cmdline) of every process whose environment holds the tag."""
    needle = ("ORPHAN_TAG=" + tag).encode()
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2:].split()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            found[pid] = (fields[0], int(fields[2]), cmd)
        except (OSError, ValueError):
            continue
    return found


def running(procs):
    return {pid: info for pid, info in procs.items() if info[0] not in ("Z", "X")}


def workers(client):
    pids = []
    for name in ("shell", "pyfork"):
        reply = client.call("list", name=name) or {}
        pids += [int(p) for p in reply.get("pids", [])]
    return pids


def run_one(label, binary, seconds, interval, grace, settle, seed):
    rng = random.Random(seed)
    tag = "orph-" + uuid.uuid4().hex[:12]
    tmp = tempfile.mkdtemp(prefix="orph-")
    with open(os.path.join(tmp, "worker.py"), "w") as f:
        f.write(PY_WORKER)
    config = os.path.join(tmp, "circus.ini")
    with open(config, "w") as f:
        f.write(CONFIG.format(dir=tmp, sleep=SLEEP, python=PYTHON, tag=tag, grace=grace))
    logfile = open(os.path.join(tmp, "circusd.log"), "w")
    daemon = subprocess.Popen([binary, config], stdout=logfile, stderr=subprocess.STDOUT, cwd=tmp)
    client = Client(f"ipc://{tmp}/ctl.sock")
    result = {"daemon": label, "tag": tag}
    try:
        deadline = time.monotonic() + 15
        while len(workers(client)) < 8:
            if daemon.poll() is not None or time.monotonic() > deadline:
                logfile.flush()
                with open(os.path.join(tmp, "circusd.log")) as f:
                    tail = f.read()[-3000:]
                raise RuntimeError(f"{label}: 8 workers did not come up; circusd said:\n{tail}")
            time.sleep(0.05)
        kills = 0
        end = time.monotonic() + seconds
        log(f"{label}: killing random workers for {seconds} s")
        while time.monotonic() < end:
            pids = workers(client)
            if pids:
                victim = rng.choice(pids)
                try:
                    # Only a child of the daemon: never a recycled pid.
                    with open(f"/proc/{victim}/stat") as f:
                        stat = f.read()
                    if int(stat[stat.rindex(")") + 2:].split()[1]) == daemon.pid:
                        os.kill(victim, signal.SIGKILL)
                        kills += 1
                except (OSError, ValueError):
                    pass
            time.sleep(rng.uniform(0.5, 1.5) * interval)
        result["kills"] = kills
        log(f"{label}: {kills} kills; settling {settle} s")
        time.sleep(settle)
        current = set(workers(client))
        groups = current  # each worker leads its own process group
        procs = running(tagged(tag))
        strays = {pid: info for pid, info in procs.items() if pid not in current and info[1] not in groups}
        result["running_before_quit"] = len(procs)
        result["strays_before_quit"] = len(strays)
        t0 = time.monotonic()
        client.call("quit", timeout=120, waiting=True)
        try:
            daemon.wait(timeout=120)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        result["quit_seconds"] = round(time.monotonic() - t0, 2)
        time.sleep(0.5)  # let init reap what it inherited
        left = tagged(tag)
        result["left_after_quit"] = len(running(left))
        result["zombies_after_quit"] = len(left) - len(running(left))
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        for pid in tagged(tag):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        logfile.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ours", default=os.path.join(REPO, ".build-release", "release", "circusd"))
    parser.add_argument("--python", action="store_true", help="also run Python circusd (.venv/bin/circusd)")
    parser.add_argument("--python-binary", default=os.path.join(REPO, ".venv", "bin", "circusd"))
    parser.add_argument("--seconds", type=float, default=40.0, help="how long to kill (default 40)")
    parser.add_argument("--interval", type=float, default=0.25, help="mean seconds between kills (default 0.25)")
    parser.add_argument("--grace", type=float, default=2.0, help="graceful_timeout of the watchers (default 2)")
    parser.add_argument("--settle", type=float, default=None, help="seconds between the last kill and the count "
                        "(default graceful_timeout + 1)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    settle = args.settle if args.settle is not None else args.grace + 1
    runs = [("ours", args.ours)]
    if args.python:
        runs.append(("python", args.python_binary))
    results = []
    for label, binary in runs:
        if not os.path.exists(binary):
            log(f"{label}: {binary} not found; skipped")
            continue
        results.append(run_one(label, binary, args.seconds, args.interval, args.grace, settle, args.seed))
    print(f"| daemon | kills in {args.seconds:g} s | running before quit | strays before quit | "
          "left after quit | zombies after quit | quit took (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['daemon']} | {r['kills']} | {r['running_before_quit']} | {r['strays_before_quit']} | "
              f"{r['left_after_quit']} | {r['zombies_after_quit']} | {r['quit_seconds']} |")


if __name__ == "__main__":
    main()
