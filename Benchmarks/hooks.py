#!/usr/bin/env python3
"""What a hook adds to a spawn.

One circusd runs three watchers of `sleep 3600` processes (autostart off), alike but for:
- `plain`: no hook;
- `chook`: `hooks.after_spawn = lib:quick`, a C hook with the fixed signature
  (`circus_hook_fn`) that returns CIRCUS_HOOK_ALLOW;
- `ffihook`: `hooks.after_spawn = lib:quick_typed(pid: int) -> bool`, a plain C function
  called through libffi with the new pid.
The hook library is Tests/CircusdIntegrationTests/Fixtures/testhooks.c, compiled here
with `cc -O2 -shared`; the hooked watchers have an `after_spawn` and a `before_signal`
hook of that kind. Reported, per watcher:

1. hook wait, no spawn in the way: `signal` commands (SIGCONT) to one process of each
   watcher, and how long the watcher waited for its before_signal hook, from the call to
   the answer on the loop thread, as circusd logs it at debug level (a second daemon,
   so that debug logging does not weigh on the other figures);
2. after_spawn during `start` of N processes: how long the hook ran. A watcher whose spawn
   hooks are native spawns in runs: its hook thread calls before_spawn, spawns, calls
   after_spawn and goes on with the next process, so there is no thread round trip per
   hook and this is the hook's own time;
3. the `signal` command's round trip, client to client (what a hooked signal adds);
4. respawn: a child is SIGKILLed and the time until the `spawn` event of its
   replacement is read on a SUB socket (8 processes per watcher, killed round-robin,
   never one younger than 1.2 s, so no crash backoff); the watchers take turns;
5. `start --waiting` of N processes (default 200), wall time / N, rotating order, and
   circusd's CPU time per spawn (every thread, from /proc/PID/task/*/schedstat);
6. bare: Benchmarks/bare/hook_handoff.c, the machine's cost of the same round trip
   (hand a call to a sleeping thread, get the answer back into a sleeping epoll loop),
   back to back; and Benchmarks/bare/respawn_base.c, a bare respawn (kill, reap, spawn)
   with kills 50 ms apart as in 4., the spawn made on the loop and then (HOOK_THREAD=1)
   on a worker thread that also calls an empty hook and answers through an eventfd: what
   this machine charges a respawn for taking its spawn and hook off the loop thread,
   which circusd must (a hook never runs on the loop).

    swift build -c release --scratch-path .build-release
    Benchmarks/hooks.py --circusd .build-release/release/circusd [--samples 150] [--processes 200] [--rounds 5]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
import benchvenv  # noqa: E402

benchvenv.require(__file__, "zmq")
import zmq  # noqa: E402

from benchctl import call, cpu_sched_ns  # noqa: E402

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time

WATCHERS = ["plain", "chook", "ffihook"]


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
    # Spawn events of the processes started before (those that reached the SUB socket at
    # all: it may have joined late) must not be taken for a replacement's.
    while sub.poll(0):
        sub.recv_multipart()
    for i in range(samples * len(names)):
        # The first kill after a pause finds the machine idle: rotate who comes first.
        cycle = i // len(names)
        name = names[(i + cycle) % len(names)]
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
            new = json.loads(payload)["process_pid"]
            if topic.decode() == f"watcher.{name}.spawn" and new not in spawned_at:
                results[name].append((time.perf_counter() - t0) * 1e6)
                spawned_at[new] = time.monotonic()
                break
        time.sleep(0.05)
    return results


class Daemon:
    """One circusd on ipc endpoints in `tmp`, with a DEALER and a SUB (spawn events)."""

    def __init__(self, binary, config, tmp, debug):
        self.log_path = os.path.join(tmp, "circusd-debug.log" if debug else "circusd.log")
        self.log = open(self.log_path, "w")
        argv = [binary] + (["--log-level", "debug"] if debug else []) + [config]
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(f"ipc://{tmp}/ctl.sock")
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.connect(f"ipc://{tmp}/pub.sock")
        for name in WATCHERS:
            self.sub.setsockopt(zmq.SUBSCRIBE, f"watcher.{name}.spawn".encode())
        deadline = time.time() + 30
        while True:
            try:
                call(self.sock, "list", timeout=1)
                return
            except RuntimeError:
                if time.time() > deadline or self.process.poll() is not None:
                    raise RuntimeError("circusd did not answer: " + open(self.log_path).read()[-2000:])

    def stop(self):
        try:
            call(self.sock, "quit", timeout=60)
        except Exception:
            pass
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.sock.close()
        self.sub.close()
        self.ctx.term()
        self.log.close()

    def hook_waits(self, hook):
        """The waits circusd logged (debug level) for `hook` of each watcher, in µs."""
        waits = {name: [] for name in WATCHERS}
        for line in open(self.log_path, encoding="utf-8"):
            for name in WATCHERS:
                for suffix in ("", "_start"):
                    marker = f" {name}{suffix} {hook} hook answered in "
                    if marker in line:
                        waits[name].append(int(line.split(marker)[1].split()[0]))
        return waits


def signal_loop(daemon, signals):
    """`signal` (SIGCONT, harmless) to one process of each watcher, round-robin; µs."""
    rtt = {name: [] for name in WATCHERS}
    for name in WATCHERS:
        call(daemon.sock, "start", name=name, waiting=True)
    target = {name: call(daemon.sock, "list", name=name)["pids"][0] for name in WATCHERS}
    for i in range(signals * len(WATCHERS)):
        name = WATCHERS[i % len(WATCHERS)]
        t0 = time.perf_counter()
        call(daemon.sock, "signal", name=name, pid=target[name], signum=18)
        rtt[name].append((time.perf_counter() - t0) * 1e6)
    return rtt


def start_rounds(daemon, processes, rounds, cpu=None):
    """`start --waiting` of each `<name>_start` watcher, rotating; per-spawn µs (and, in
    `cpu`, circusd's CPU µs per spawn)."""
    per_spawn = {name: [] for name in WATCHERS}
    # One warm-up round, not counted.
    for round_number in range(rounds + 1):
        order = WATCHERS[round_number % 3:] + WATCHERS[:round_number % 3]
        for name in order:
            c0 = cpu_sched_ns(daemon.process.pid) / 1e9
            t0 = time.perf_counter()
            reply = call(daemon.sock, "start", name=name + "_start", waiting=True)
            elapsed = time.perf_counter() - t0
            used = cpu_sched_ns(daemon.process.pid) / 1e9 - c0
            started = len(reply.get("info", {}).get("started", []))
            if started != processes:
                raise RuntimeError(f"{name}: started {started} of {processes}: {reply}")
            call(daemon.sock, "stop", name=name + "_start", waiting=True)
            if round_number > 0:
                per_spawn[name].append(elapsed / processes * 1e6)
                if cpu is not None:
                    cpu.setdefault(name, []).append(used / processes * 1e6)
        if round_number > 0:
            print(f"start round {round_number}: " + ", ".join(
                f"{n} {per_spawn[n][-1]:.0f} µs" for n in WATCHERS), file=sys.stderr)
    return per_spawn


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--circusd", default=os.path.join(ROOT, ".build-release", "release", "circusd"))
    parser.add_argument("--samples", type=int, default=150, help="respawns per watcher")
    parser.add_argument("--processes", type=int, default=200, help="processes per start")
    parser.add_argument("--rounds", type=int, default=25, help="starts per watcher")
    parser.add_argument("--signals", type=int, default=500, help="signal commands per watcher")
    args = parser.parse_args()
    if not os.path.exists(args.circusd):
        sys.exit(f"no circusd at {args.circusd}: build it with swift build -c release --scratch-path .build-release")

    tmp = tempfile.mkdtemp(prefix="hookbench-")
    lib = os.path.join(tmp, "libbenchhooks.so")
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-I", os.path.join(ROOT, "include"), "-o", lib,
                    os.path.join(ROOT, "Tests", "CircusdIntegrationTests", "Fixtures", "testhooks.c")], check=True)
    handoff = os.path.join(tmp, "hook_handoff")
    subprocess.run(["cc", "-O2", "-pthread", "-o", handoff, os.path.join(HERE, "bare", "hook_handoff.c")], check=True)
    respawn_base = os.path.join(tmp, "respawn_base")
    subprocess.run(["cc", "-O2", "-pthread", "-I", os.path.join(HERE, "bare"), "-o", respawn_base,
                    os.path.join(HERE, "bare", "respawn_base.c")], check=True)
    sleep = shutil.which("sleep")
    hooks = {"plain": "",
             "chook": f"hooks.after_spawn = {lib}:quick\nhooks.before_signal = {lib}:quick\n",
             "ffihook": f"hooks.after_spawn = {lib}:quick_typed(pid: int) -> bool\n"
                        f"hooks.before_signal = {lib}:quick_typed(pid: int) -> bool\n"}
    config = os.path.join(tmp, "circus.ini")
    with open(config, "w") as f:
        f.write(f"[circus]\nendpoint = ipc://{tmp}/ctl.sock\npubsub_endpoint = ipc://{tmp}/pub.sock\n")
        for name in WATCHERS:
            for suffix, n in (("", 8), ("_start", args.processes)):
                f.write(f"\n[watcher:{name}{suffix}]\ncmd = {sleep} 3600\nnumprocesses = {n}\n"
                        f"autostart = false\ngraceful_timeout = 5\ncheck_flapping = false\n{hooks[name]}")
    try:
        # Timings, with circusd at its usual log level.
        daemon = Daemon(args.circusd, config, tmp, debug=False)
        try:
            for name in WATCHERS:
                call(daemon.sock, "start", name=name, waiting=True)
            time.sleep(1.5)  # the slow-joiner SUB socket connects; the first processes age past 1.2 s
            respawn = respawn_samples(daemon.sock, daemon.sub, WATCHERS, args.samples)
            signal_rtt = signal_loop(daemon, args.signals)
            for name in WATCHERS:
                call(daemon.sock, "stop", name=name, waiting=True)
            start_cpu = {}
            per_spawn = start_rounds(daemon, args.processes, args.rounds, start_cpu)
        finally:
            daemon.stop()
        # The hooks' own waits, which circusd logs at debug level.
        daemon = Daemon(args.circusd, config, tmp, debug=True)
        try:
            signal_loop(daemon, args.signals)
            start_rounds(daemon, args.processes, max(1, min(3, args.rounds // 2)))
        finally:
            daemon.stop()
        spawn_waits = daemon.hook_waits("after_spawn")
        signal_waits = daemon.hook_waits("before_signal")
        bare = json.loads(subprocess.run([handoff, "2000"], check=True, capture_output=True, text=True).stdout)
        # Alternated, twice: the machine drifts between runs by as much as the difference.
        bare_respawn = {"loop": [], "thread": []}
        for _ in range(2):
            for mode, extra in (("loop", {}), ("thread", {"HOOK_THREAD": "1"})):
                env = dict(os.environ, PAUSE_MS="50", **extra)
                out = subprocess.run([respawn_base, str(args.samples), sleep, "3600"], env=env, check=True,
                                     capture_output=True, text=True).stdout
                bare_respawn[mode].append(json.loads(out)["p50_us"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    targets = {"plain": "", "chook": "< 20", "ffihook": "< 30"}

    def table(title, values, target_column=True, paired=False):
        """`paired`: the samples are rounds in which every watcher ran once; what a hook
        adds is then the median of the per-round differences, which leaves out the drift
        of the machine from one round to the next."""
        print(f"\n{title}\n")
        added_title = "added, median of per-round differences (µs)" if paired else "added to p50 (µs)"
        print(f"| watcher | samples | p50 (µs) | p90 (µs) | mean (µs) | {added_title} |"
              + (" target |" if target_column else ""))
        print("|---|---|---|---|---|---|" + ("---|" if target_column else ""))
        base = statistics.median(values["plain"]) if values["plain"] else None
        for name in WATCHERS:
            v = values[name]
            if not v:
                continue
            median = statistics.median(v)
            if name == "plain" or base is None:
                added = ""
            elif paired:
                added = f"{statistics.median(a - b for a, b in zip(v, values['plain'])):+.0f}"
            else:
                added = f"{median - base:+.0f}"
            row = f"| {name} | {len(v)} | {median:.0f} | {percentile(v, 0.9):.0f} | {statistics.mean(v):.0f} | {added} |"
            print(row + (f" {targets[name]} |" if target_column else ""))

    table("hook wait, no spawn in the way: the before_signal hook of a `signal` command, call to answer on the "
          "loop (circusd's debug log; a thread round trip per hook)", signal_waits, target_column=False)
    table("after_spawn during `start`: the hook's own time on the watcher's hook thread, which spawns "
          "in runs (circusd's debug log)", spawn_waits)
    table("`signal` command round trip, client to client", signal_rtt, target_column=False)
    table("respawn: SIGKILL to the replacement's `spawn` event", respawn, target_column=False)
    table(f"`start --waiting` of {args.processes}, per spawn (what a hook adds to a spawn)", per_spawn,
          paired=True)
    table(f"`start --waiting` of {args.processes}: circusd's CPU per spawn (every thread)", start_cpu,
          target_column=False, paired=True)
    print(f"\nbare thread round trip (Benchmarks/bare/hook_handoff.c, {bare['count']} samples): "
          f"p50 {bare['p50_us']} µs, p99 {bare['p99_us']} µs, mean {bare['mean_us']} µs")
    pairs = list(zip(bare_respawn["loop"], bare_respawn["thread"]))
    print(f"bare respawn (Benchmarks/bare/respawn_base.c, {args.samples} kills 50 ms apart, two runs), p50: "
          + ", ".join(f"{a:.0f}" for a, _ in pairs) + " µs with the spawn on the loop; "
          + ", ".join(f"{b:.0f}" for _, b in pairs) + " µs with the spawn and an empty hook on a worker thread: "
          + ", ".join(f"{b - a:+.0f}" for a, b in pairs) + " µs, the machine's price of doing them off the loop")
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
