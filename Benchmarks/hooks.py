#!/usr/bin/env python3
"""What a hook adds to a spawn.

One circusd runs three watchers of `sleep 3600` processes (autostart off), alike but for:
- `plain`: no hook;
- `chook`: `hooks.after_spawn = lib:quick`, a C hook with the fixed signature
  (`circus_hook_fn`) that returns CIRCUS_HOOK_ALLOW;
- `ffihook`: `hooks.after_spawn = lib:quick_typed(pid: int) -> bool`, a plain C function
  called through libffi with the new pid.
The hook library is Tests/CircusdIntegrationTests/Fixtures/testhooks.c, compiled here
with `cc -O2 -shared`. after_spawn runs between the spawn and its `spawn` event, on the
watcher's hook thread, so what it adds to a spawn is:

1. respawn: a child is SIGKILLed and the time until the `spawn` event of its replacement
   is read on a SUB socket (8 processes per watcher, killed round-robin, never one younger
   than 1.2 s, so no crash backoff); the three watchers take turns sample by sample.
   Median and p90 per watcher, and the median's difference with `plain`.
2. start: `start --waiting` of N processes (default 200), wall time / N, the watchers in
   rotating order, median over rounds. On a busy 2-core machine this also counts the
   spawned children's start-up work that runs while the loop waits for each hook.
3. wait: how long each watcher waited for its hook, from the call to the answer on the
   loop thread, as circusd logs it at debug level (the daemon runs with --log-level debug)
   for every spawn of 1 and 2: the hook's own cost, without the noise of the rest.
4. bare: Benchmarks/bare/hook_handoff.c, the machine's cost of the same round trip
   (hand a call to a sleeping thread, get the answer back into a sleeping epoll loop).

    swift build -c release --scratch-path .build-release
    Benchmarks/hooks.py --circusd .build-release/release/circusd [--samples 150] [--processes 200] [--rounds 5]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")
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
import statistics
import subprocess
import tempfile
import time

WATCHERS = ["plain", "chook", "ffihook"]


def call(sock, command, timeout=120.0, **props):
    sock.send(json.dumps({"id": "b", "command": command, "properties": props}).encode())
    if not sock.poll(int(timeout * 1000)):
        raise RuntimeError(f"no reply to {command} within {timeout} s")
    reply = json.loads(sock.recv())
    if reply.get("status") != "ok":
        raise RuntimeError(f"{command}: {reply}")
    return reply


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def respawn_samples(sock, sub, names, samples):
    """Kills children round-robin and times each replacement's spawn event (µs)."""
    results = {name: [] for name in names}
    spawned_at = {}
    for name in names:
        for pid in call(sock, "list", name=name)["pids"]:
            spawned_at[pid] = 0.0
    cursor = {name: 0 for name in names}
    for i in range(samples * len(names)):
        name = names[i % len(names)]
        pids = sorted(call(sock, "list", name=name)["pids"])
        pid = pids[cursor[name] % len(pids)]
        cursor[name] += 1
        # Never kill a process younger than 1.2 s: quick exits are respawned with backoff.
        wait = spawned_at.get(pid, 0.0) + 1.2 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        t0 = time.perf_counter()
        os.kill(pid, 9)
        while True:
            if not sub.poll(10000):
                raise RuntimeError(f"{name}: no spawn event within 10 s of killing {pid}")
            topic, payload = sub.recv_multipart()
            if topic.decode() == f"watcher.{name}.spawn":
                new = json.loads(payload)["process_pid"]
                results[name].append((time.perf_counter() - t0) * 1e6)
                spawned_at[new] = time.monotonic()
                break
        time.sleep(0.05)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--circusd", default=os.path.join(ROOT, ".build-release", "release", "circusd"))
    parser.add_argument("--samples", type=int, default=150, help="respawns per watcher")
    parser.add_argument("--processes", type=int, default=200, help="processes per start")
    parser.add_argument("--rounds", type=int, default=5, help="starts per watcher")
    args = parser.parse_args()
    if not os.path.exists(args.circusd):
        sys.exit(f"no circusd at {args.circusd}: build it with swift build -c release --scratch-path .build-release")

    tmp = tempfile.mkdtemp(prefix="hookbench-")
    lib = os.path.join(tmp, "libbenchhooks.so")
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-I", os.path.join(ROOT, "include"), "-o", lib,
                    os.path.join(ROOT, "Tests", "CircusdIntegrationTests", "Fixtures", "testhooks.c")], check=True)
    handoff = os.path.join(tmp, "hook_handoff")
    subprocess.run(["cc", "-O2", "-pthread", "-o", handoff, os.path.join(HERE, "bare", "hook_handoff.c")], check=True)
    sleep = shutil.which("sleep")
    hooks = {"plain": "", "chook": f"hooks.after_spawn = {lib}:quick\n",
             "ffihook": f"hooks.after_spawn = {lib}:quick_typed(pid: int) -> bool\n"}
    config = os.path.join(tmp, "circus.ini")
    with open(config, "w") as f:
        f.write(f"[circus]\nendpoint = ipc://{tmp}/ctl.sock\npubsub_endpoint = ipc://{tmp}/pub.sock\n")
        for name in WATCHERS:
            for suffix, n in (("", 8), ("_start", args.processes)):
                f.write(f"\n[watcher:{name}{suffix}]\ncmd = {sleep} 3600\nnumprocesses = {n}\n"
                        f"autostart = false\ngraceful_timeout = 5\ncheck_flapping = false\n{hooks[name]}")
    log = open(os.path.join(tmp, "circusd.log"), "w")
    daemon = subprocess.Popen([args.circusd, "--log-level", "debug", config], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"ipc://{tmp}/ctl.sock")
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"ipc://{tmp}/pub.sock")
    for name in WATCHERS:
        sub.setsockopt(zmq.SUBSCRIBE, f"watcher.{name}.spawn".encode())
    per_spawn = {name: [] for name in WATCHERS}
    try:
        deadline = time.time() + 30
        while True:
            try:
                call(sock, "list", timeout=1)
                break
            except RuntimeError:
                if time.time() > deadline or daemon.poll() is not None:
                    raise RuntimeError("circusd did not answer: " + open(log.name).read()[-2000:])

        for name in WATCHERS:
            call(sock, "start", name=name, waiting=True)
        time.sleep(1.5)  # the slow-joiner SUB socket connects; the first processes age past 1.2 s
        respawn = respawn_samples(sock, sub, WATCHERS, args.samples)
        for name in WATCHERS:
            call(sock, "stop", name=name, waiting=True)
        print("respawn medians: " + ", ".join(f"{n} {statistics.median(respawn[n]):.0f} µs" for n in WATCHERS),
              file=sys.stderr)

        # One warm-up round, not counted.
        for round_number in range(args.rounds + 1):
            order = WATCHERS[round_number % 3:] + WATCHERS[:round_number % 3]
            for name in order:
                t0 = time.perf_counter()
                reply = call(sock, "start", name=name + "_start", waiting=True)
                elapsed = time.perf_counter() - t0
                started = len(reply.get("info", {}).get("started", []))
                if started != args.processes:
                    raise RuntimeError(f"{name}: started {started} of {args.processes}: {reply}")
                call(sock, "stop", name=name + "_start", waiting=True)
                if round_number > 0:
                    per_spawn[name].append(elapsed / args.processes * 1e6)
            if round_number > 0:
                print(f"start round {round_number}: " + ", ".join(
                    f"{n} {per_spawn[n][-1]:.0f} µs" for n in WATCHERS), file=sys.stderr)
        bare = json.loads(subprocess.run([handoff, "2000"], check=True, capture_output=True, text=True).stdout)
    finally:
        try:
            call(sock, "quit", timeout=60)
        except Exception:
            pass
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        sock.close()
        sub.close()
        ctx.term()
        log.close()
        waits = {name: [] for name in WATCHERS}
        for line in open(log.name, encoding="utf-8"):
            for name in WATCHERS:
                for suffix in ("", "_start"):
                    marker = f" {name}{suffix} after_spawn hook answered in "
                    if marker in line:
                        waits[name].append(int(line.split(marker)[1].split()[0]))
        shutil.rmtree(tmp, ignore_errors=True)

    targets = {"plain": "", "chook": "< 20", "ffihook": "< 30"}
    base = statistics.median(respawn["plain"])
    print(f"\nrespawn: SIGKILL to the replacement's spawn event, {args.samples} samples per watcher\n")
    print("| watcher | p50 (µs) | p90 (µs) | added to p50 by the hook (µs) | target |")
    print("|---|---|---|---|---|")
    for name in WATCHERS:
        median = statistics.median(respawn[name])
        added = "" if name == "plain" else f"{median - base:+.0f}"
        print(f"| {name} | {median:.0f} | {percentile(respawn[name], 0.9):.0f} | {added} | {targets[name]} |")
    base = statistics.median(per_spawn["plain"])
    print(f"\nstart: {args.processes} processes per start --waiting, {args.rounds} rounds, median per spawn\n")
    print("| watcher | per spawn (µs) | added by the hook (µs) |")
    print("|---|---|---|")
    for name in WATCHERS:
        median = statistics.median(per_spawn[name])
        added = "" if name == "plain" else f"{median - base:+.0f}"
        print(f"| {name} | {median:.0f} | {added} |")
    print("\nwait: the watcher's wait for its after_spawn hook, call to answer on the loop (circusd's debug log)\n")
    print("| watcher | calls | p50 (µs) | p90 (µs) | mean (µs) | target |")
    print("|---|---|---|---|---|---|")
    for name in WATCHERS[1:]:
        w = waits[name]
        print(f"| {name} | {len(w)} | {statistics.median(w):.0f} | {percentile(w, 0.9):.0f} | "
              f"{statistics.mean(w):.0f} | {targets[name]} |")
    print(f"\nbare thread round trip (Benchmarks/bare/hook_handoff.c, {bare['count']} samples): "
          f"p50 {bare['p50_us']} µs, p99 {bare['p99_us']} µs, mean {bare['mean_us']} µs")
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
