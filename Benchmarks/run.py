#!/usr/bin/env python3
"""Circus for Swift benchmark harness.

Runs the same scenarios against our Swift circusd and Python circusd 0.19
(alternating daemons between repetitions: A B A B ...), measures the bare system
limits with small C programs in the same run, and prints a markdown table.

    Benchmarks/run.py [--quick] [--ours PATH] [--python PATH] [--idle-seconds S]

See Benchmarks/README.md for what every number means.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
VENV_PY = os.path.join(REPO, ".venv", "bin", "python")

import benchvenv  # noqa: E402

benchvenv.require(__file__, "zmq", "psutil")
import zmq  # noqa: E402,F401
import psutil  # noqa: E402,F401
from benchctl import cpu_sched_ns  # noqa: E402

import argparse
import array
import ctypes
import datetime
import json
import platform
import random
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import traceback
import uuid

import psutil
import zmq

RUN_TAG = "cbench-" + uuid.uuid4().hex[:12]
CLK_TCK = os.sysconf("SC_CLK_TCK")
SLEEP = shutil.which("sleep") or "/bin/sleep"
LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

CTX = zmq.Context.instance()
LIVE_POPEN = {}        # pid -> Popen of everything we launched and have not waited for
LIVE_DAEMONS = []      # Daemon objects still running (for emergency cleanup)
INSTANCE_COUNTER = [0]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _pdeathsig():
    # the launched process gets SIGKILL if the harness dies
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def popen(argv, **kw):
    p = subprocess.Popen(argv, preexec_fn=_pdeathsig, **kw)
    LIVE_POPEN[p.pid] = p
    return p


def popen_done(p):
    LIVE_POPEN.pop(p.pid, None)


# ---------------------------------------------------------------- cleanup helpers

def tagged_pids(tag):
    """Pids of live processes whose environment holds BENCH_TAG=<tag> (set via [env])."""
    needle = b"\0BENCH_TAG=" + tag.encode() + b"\0"
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = b"\0" + f.read() + b"\0"
        except OSError:
            continue
        if needle in env:
            out.append(int(d))
    return out


def reap_orphans():
    """We are a child subreaper: reap zombie children that are not our own Popen objects."""
    try:
        kids = psutil.Process().children()
    except psutil.Error:
        return
    for c in kids:
        if c.pid in LIVE_POPEN:
            continue
        try:
            if c.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(c.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError, OSError):
            pass


def kill_tagged(tag, timeout=5.0):
    """SIGKILL every leftover process carrying our tag (only processes we caused to exist)."""
    left = 0
    deadline = time.monotonic() + timeout
    while True:
        pids = tagged_pids(tag)
        if not pids:
            break
        left = max(left, len(pids))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reap_orphans()
        if time.monotonic() > deadline:
            log(f"WARNING: {len(pids)} tagged processes still alive: {pids[:10]}")
            break
        time.sleep(0.02)
    reap_orphans()
    return left


# ---------------------------------------------------------------- daemon control

class Ctl:
    """DEALER client speaking circusd's JSON protocol (one frame each way)."""

    def __init__(self, endpoint):
        self.sock = CTX.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.n = 0

    def call(self, command, timeout=30.0, **props):
        self.n += 1
        mid = f"h{self.n}"
        self.sock.send(json.dumps({"id": mid, "command": command, "properties": props}).encode())
        deadline = time.monotonic() + timeout
        while True:
            rem = deadline - time.monotonic()
            if rem <= 0:
                raise TimeoutError(f"no reply to {command} {props} within {timeout}s")
            if self.sock.poll(rem * 1000):
                reply = json.loads(self.sock.recv())
                if reply.get("id") == mid:
                    return reply

    def close(self):
        self.sock.close(0)


class Watcher:
    def __init__(self, name, n, autostart=True, **opts):
        self.name, self.n, self.autostart, self.opts = name, n, autostart, opts


class Daemon:
    """One circusd instance in a fresh temp dir with ipc:// endpoints."""

    def __init__(self, label, binary, keep_temp=False):
        self.label, self.binary, self.keep_temp = label, binary, keep_temp
        self.proc = None
        self.ctl = None
        self.notes = []

    def launch(self, watchers, check_delay=5.0, ready_timeout=30.0):
        INSTANCE_COUNTER[0] += 1
        self.tag = f"{RUN_TAG}-{INSTANCE_COUNTER[0]}"
        self.tmp = tempfile.mkdtemp(prefix="cbench-")
        self.endpoint = f"ipc://{self.tmp}/ctl.sock"
        self.pubsub = f"ipc://{self.tmp}/pub.sock"
        lines = ["[circus]",
                 f"endpoint = {self.endpoint}",
                 f"pubsub_endpoint = {self.pubsub}",
                 "multicast_endpoint =",
                 f"check_delay = {check_delay}",
                 "",
                 "[env]",
                 f"BENCH_TAG = {self.tag}",
                 ""]
        for w in watchers:
            lines += [f"[watcher:{w.name}]",
                      f"cmd = {SLEEP} 3600",
                      f"numprocesses = {w.n}",
                      f"autostart = {'true' if w.autostart else 'false'}"]
            lines += [f"{k} = {v}" for k, v in w.opts.items()]
            lines.append("")
        self.config = os.path.join(self.tmp, "circus.ini")
        with open(self.config, "w") as f:
            f.write("\n".join(lines))
        self.logpath = os.path.join(self.tmp, "daemon.log")
        env = {k: v for k, v in os.environ.items() if k != "BENCH_TAG"}
        with open(self.logpath, "wb") as logf:
            self.proc = popen([self.binary, self.config], cwd=self.tmp, env=env,
                              stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        LIVE_DAEMONS.append(self)
        self.ctl = Ctl(self.endpoint)
        deadline = time.monotonic() + ready_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.proc.returncode} at start-up:\n"
                                   + self.log_tail())
            try:
                r = self.ctl.call("status", timeout=0.25)
                if r.get("status") == "ok":
                    return self
            except TimeoutError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.label} not answering on {self.endpoint}:\n" + self.log_tail())

    def log_tail(self, n=20):
        try:
            with open(self.logpath, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def call(self, command, timeout=30.0, **props):
        r = self.ctl.call(command, timeout=timeout, **props)
        if r.get("status") == "error":
            raise RuntimeError(f"{self.label}: {command} {props} -> {r}")
        return r

    def pids(self, name):
        return self.call("list", name=name)["pids"]

    def wait_pids(self, name, n, timeout=120.0, poll=0.002):
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids(name)
            if len(pids) >= n:
                return pids
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.label}: {name} has {len(pids)}/{n} pids after {timeout}s")
            time.sleep(poll)

    def stop(self, quit_timeout=60.0):
        if self.proc is None:
            if getattr(self, "tmp", None) and not self.keep_temp:
                shutil.rmtree(self.tmp, ignore_errors=True)
            return
        try:
            snapshot = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            snapshot = []
        if self.proc.poll() is None:
            try:
                self.ctl.call("quit", timeout=5.0)
            except Exception as e:  # noqa: BLE001
                self.notes.append(f"quit failed: {e}")
            try:
                self.proc.wait(timeout=quit_timeout)
            except subprocess.TimeoutExpired:
                self.notes.append("did not exit after quit; SIGKILLed")
                log(f"{self.label}: did not exit {quit_timeout}s after quit, killing pid {self.proc.pid}")
                self.proc.kill()
                self.proc.wait()
        popen_done(self.proc)
        for p in snapshot:
            try:
                if p.is_running():
                    p.kill()
            except psutil.Error:
                pass
        leftover = kill_tagged(self.tag)
        if leftover:
            self.notes.append(f"{leftover} child processes survived quit (killed)")
            log(f"{self.label}: {leftover} children survived quit; killed")
        self.ctl.close()
        if self in LIVE_DAEMONS:
            LIVE_DAEMONS.remove(self)
        if not self.keep_temp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.proc = None


def emergency_cleanup():
    for d in list(LIVE_DAEMONS):
        try:
            if d.proc and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
            kill_tagged(d.tag, timeout=2.0)
        except Exception:  # noqa: BLE001
            pass
    for p in list(LIVE_POPEN.values()):
        try:
            if p.poll() is None:
                p.kill()
                p.wait()
        except Exception:  # noqa: BLE001
            pass
    kill_tagged(RUN_TAG + "-bare", timeout=2.0)


# ---------------------------------------------------------------- bare C programs

BARE_SOURCES = {
    "rtt_client": ("rtt_client.c", ["-lzmq"]),
    "echo_server": ("echo_server.c", ["-lzmq"]),
    "spawn_loop": ("spawn_loop.c", []),
    "respawn_base": ("respawn_base.c", []),
}


def build_bare(builddir):
    cc = os.environ.get("CC", "cc")
    out = {}
    for name, (src, libs) in BARE_SOURCES.items():
        exe = os.path.join(builddir, name)
        cmd = [cc, "-O2", "-Wall", "-o", exe, os.path.join(HERE, "bare", src)] + libs
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"build failed: {' '.join(cmd)}\n{r.stderr}")
        out[name] = exe
    return out


def run_json(argv, timeout=300, extra_env=None):
    env = dict(os.environ)
    env["BENCH_TAG"] = RUN_TAG + "-bare"
    if extra_env:
        env.update(extra_env)
    p = popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        popen_done(p)
    if p.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({p.returncode}): {err.strip()}")
    return json.loads(out.strip().splitlines()[-1])


class EchoServer:
    def __init__(self, exe):
        self.tmp = tempfile.mkdtemp(prefix="cbench-echo-")
        self.endpoint = f"ipc://{self.tmp}/echo.sock"
        self.proc = popen([exe, self.endpoint], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError("echo_server failed: " + self.proc.stderr.read())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        popen_done(self.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)


def rtt(exe, endpoint, count, conc, duration, want_samples):
    lat = []
    with tempfile.NamedTemporaryFile(prefix="cbench-lat-", delete=False) as f:
        path = f.name
    try:
        argv = [exe, endpoint, str(count), str(conc), str(duration)] + ([path] if want_samples else [])
        summary = run_json(argv, timeout=120)
        if want_samples:
            a = array.array("Q")
            with open(path, "rb") as f:
                a.frombytes(f.read())
            lat = [x / 1e3 for x in a]  # µs
    finally:
        os.unlink(path)
    return summary, lat


# ---------------------------------------------------------------- /proc helpers

def cpu_ticks_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / CLK_TCK




def memory_mib(pid):
    """(anonymous, USS) in MiB: RssAnon from /proc/PID/status (heap, stacks, private
    mappings: what the process really allocated) and Private_Clean + Private_Dirty from
    /proc/PID/smaps_rollup (pages no other process maps; file pages of the binary that
    only this process maps count too)."""
    anon = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                anon = int(line.split()[1]) / 1024
    private = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                private += int(line.split()[1])
    return anon, private / 1024


def percentile(xs, p):
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p * (len(s) - 1))))]


# ---------------------------------------------------------------- scenarios
# Each scenario records into R[key][runner] a list of values (one per repetition)
# or, for latency keys, a list of samples pooled over repetitions.

R = {}
NOTES = []


def rec(key, runner, value):
    R.setdefault(key, {}).setdefault(runner, [])
    if isinstance(value, list):
        R[key][runner].extend(value)
    else:
        R[key][runner].append(value)


def scenario_spawn(args, runners, bare):
    sizes = [200] if args.quick else [200, 1000]
    for n in sizes:
        key = f"spawn{n}"
        for rep in range(args.reps):
            for label, binary in runners:
                if binary is None:
                    r = run_json([bare["spawn_loop"], str(n), SLEEP, "3600"])
                    rec(key, label, r["spawn_s"])
                    log(f"spawn {n} rep {rep + 1}: bare posix_spawn loop {r['spawn_s']:.3f}s")
                    continue
                d = Daemon(label, binary, args.keep_temp)
                try:
                    d.launch([Watcher("w", n, autostart=False)])
                    t0 = time.perf_counter()
                    d.call("start", timeout=600, name="w", waiting=True)
                    d.wait_pids("w", n, timeout=600)
                    dt = time.perf_counter() - t0
                finally:
                    d.stop()
                rec(key, label, dt)
                log(f"spawn {n} rep {rep + 1}: {label} {dt:.3f}s")


MIN_VICTIM_AGE = 1.2


def scenario_respawn(args, runners, bare):
    batches = args.reps_respawn
    ours_per = max(1, args.respawn_samples // batches)
    py_per = max(1, args.python_respawn_samples // batches)
    timeouts = {}
    for b in range(batches):
        for label, binary in runners:
            if binary is None:
                with tempfile.NamedTemporaryFile(prefix="cbench-lat-", delete=False) as f:
                    path = f.name
                try:
                    r = run_json([bare["respawn_base"], str(args.respawn_samples), SLEEP, "3600"],
                                 extra_env={"LAT_OUT": path})
                    a = array.array("Q")
                    with open(path, "rb") as f:
                        a.frombytes(f.read())
                finally:
                    os.unlink(path)
                rec("respawn", label, [x / 1e6 for x in a])  # ms
                log(f"respawn batch {b + 1}: bare n={r['count']} p50 {r['p50_us']:.0f} us "
                    f"(reap {r['reap_p50_us']:.0f} + posix_spawn {r['spawn_p50_us']:.0f})")
                continue
            per = py_per if label == "python" else ours_per
            d = Daemon(label, binary, args.keep_temp)
            samples = []
            try:
                d.launch([Watcher("w", 4, autostart=True,
                                  check_flapping="false", **{"flapping.active": "false"})])
                pids = d.wait_pids("w", 4, timeout=60)
                sub = CTX.socket(zmq.SUB)
                sub.setsockopt(zmq.LINGER, 0)
                sub.connect(d.pubsub)
                sub.setsockopt(zmq.SUBSCRIBE, b"watcher.w.spawn")
                time.sleep(0.3)  # slow joiner
                # pid -> perf_counter() when its spawn event arrived (for the first
                # processes: when they were listed, an upper bound of their age)
                born = {pid: time.perf_counter() for pid in pids}
                for k in range(per):
                    # Random phase: Python reaps on a 5 s tick, so a kill right after
                    # the previous respawn (= right after a tick) would always measure
                    # ~5 s.  Ours gets a short random pause only.
                    time.sleep(random.uniform(0, 5.0) if label == "python" else random.uniform(0.01, 0.05))
                    pids = d.wait_pids("w", 4, timeout=30)
                    victim = pids[k % len(pids)]
                    proc = psutil.Process(victim)
                    if proc.ppid() != d.proc.pid:
                        raise RuntimeError(f"{victim} is not a child of {d.label}")
                    # A process that dies less than 1 s after its spawn counts as a
                    # crash-loop exit for our daemon (respawned with backoff); measure
                    # the respawn of a process that was running normally.  Ages come
                    # from when we saw the spawn event (psutil's create_time is only
                    # accurate to the second: /proc/stat's btime is an integer).
                    age = time.perf_counter() - born.get(victim, float("-inf"))
                    if age < MIN_VICTIM_AGE:
                        time.sleep(MIN_VICTIM_AGE - age)
                    while sub.poll(0):
                        sub.recv_multipart()
                    known = set(pids)
                    t0 = time.perf_counter()
                    os.kill(victim, signal.SIGKILL)
                    deadline = t0 + args.respawn_timeout
                    got = None
                    while True:
                        rem = deadline - time.perf_counter()
                        if rem <= 0 or not sub.poll(rem * 1000):
                            break
                        topic, payload = sub.recv_multipart()
                        spawned = json.loads(payload).get("process_pid")
                        if spawned not in known:
                            got = time.perf_counter() - t0
                            born[spawned] = t0 + got
                            break
                    if got is None:
                        timeouts[label] = timeouts.get(label, 0) + 1
                        log(f"respawn: {label} no spawn event within {args.respawn_timeout}s")
                        continue
                    samples.append(got * 1e3)
                sub.close(0)
            finally:
                d.stop()
            rec("respawn", label, samples)
            log(f"respawn batch {b + 1}: {label} n={len(samples)} "
                f"median {statistics.median(samples) if samples else float('nan'):.3f} ms")
    for label, n in timeouts.items():
        NOTES.append(f"respawn: {label} missed the spawn event {n} time(s) (>{args.respawn_timeout}s).")


def scenario_rtt(args, runners, bare):
    for rep in range(args.reps):
        for label, binary in runners:
            if binary is None:
                srv = EchoServer(bare["echo_server"])
                endpoint, stop = srv.endpoint, srv.stop
            else:
                d = Daemon(label, binary, args.keep_temp)
                d.launch([Watcher("w", 1, autostart=True)])
                d.wait_pids("w", 1)
                endpoint, stop = d.endpoint, d.stop
            try:
                s1, lat = rtt(bare["rtt_client"], endpoint, args.rtt_count, 1, 0, True)
                s4, _ = rtt(bare["rtt_client"], endpoint, 0, args.clients, args.rtt_seconds, False)
            finally:
                stop()
            rec("rtt", label, lat)
            rec("rps", label, s4["req_s"])
            log(f"status rep {rep + 1}: {label} p50 {s1['p50_us']:.1f}us p99 {s1['p99_us']:.1f}us, "
                f"{args.clients} clients {s4['req_s']:.0f} req/s")


STATS_CLIENT = r"""
import json, signal, sys, time, zmq
endpoint, name = sys.argv[1], sys.argv[2]
ctx = zmq.Context()
sock = ctx.socket(zmq.DEALER)
sock.setsockopt(zmq.LINGER, 0)
sock.connect(endpoint)
durations = []
stop = [False]
def _term(signum, frame):
    stop[0] = True
signal.signal(signal.SIGTERM, _term)
n = 0
while not stop[0]:
    n += 1
    t0 = time.monotonic()
    sock.send(json.dumps({"id": "s%d" % n, "command": "stats", "properties": {"name": name}}).encode())
    while not stop[0]:
        if sock.poll(100):
            sock.recv()
            durations.append(time.monotonic() - t0)
            if len(durations) == 1:
                print("ready", flush=True)
            break
print(json.dumps({"count": len(durations), "durations_s": durations}), flush=True)
"""


def scenario_statsload(args, runners, bare):
    """status round trips on a daemon with a 1000-process watcher, quiet and while another
    client runs `stats` of that watcher in a loop."""
    n = args.stats_processes
    for rep in range(args.reps_stats):
        for label, binary in runners:
            if binary is None:
                continue
            d = Daemon(label, binary, args.keep_temp)
            try:
                d.launch([Watcher("big", n, autostart=True), Watcher("w", 1, autostart=True)])
                d.wait_pids("big", n, timeout=600, poll=0.2)
                d.wait_pids("w", 1)
                env = {"RTT_WARMUP": "20", "RTT_TIMEOUT_MS": "300000"}
                s0, quiet = rtt_timed(bare["rtt_client"], d.endpoint, args.stats_seconds, env)
                client = popen([VENV_PY, "-c", STATS_CLIENT, d.endpoint, "big"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                try:
                    if client.stdout.readline().strip() != "ready":
                        raise RuntimeError("stats client failed: " + client.stderr.read())
                    s1, loaded = rtt_timed(bare["rtt_client"], d.endpoint, args.stats_seconds, env)
                finally:
                    client.terminate()
                    out, _ = client.communicate(timeout=300)
                    popen_done(client)
                stats = json.loads(out.strip().splitlines()[-1])
            finally:
                d.stop()
            rec("rtt_big_quiet", label, quiet)
            rec("rtt_big_stats", label, loaded)
            rec("stats_rtt", label, [x * 1e3 for x in stats["durations_s"]])
            log(f"statsload rep {rep + 1}: {label} status p99 quiet {percentile(quiet, 0.99):.0f}us "
                f"({len(quiet)} calls), with stats loop {percentile(loaded, 0.99):.0f}us ({len(loaded)} calls, "
                f"{stats['count']} stats, median {statistics.median(stats['durations_s']) * 1e3:.0f} ms)")


def rtt_timed(exe, endpoint, seconds, env):
    """Sequential `status` calls for `seconds`; (summary, latencies in µs)."""
    with tempfile.NamedTemporaryFile(prefix="cbench-lat-", delete=False) as f:
        path = f.name
    try:
        summary = run_json([exe, endpoint, "0", "1", str(seconds), path], timeout=seconds + 600, extra_env=env)
        a = array.array("Q")
        with open(path, "rb") as f:
            a.frombytes(f.read())
        return summary, [x / 1e3 for x in a]
    finally:
        os.unlink(path)


def scenario_idle(args, runners, bare):
    for rep in range(args.reps_idle):
        for label, binary in runners:
            if binary is None:
                continue
            d = Daemon(label, binary, args.keep_temp)
            try:
                d.launch([Watcher(f"w{i:02d}", 5, autostart=True) for i in range(20)])
                for i in range(20):
                    d.wait_pids(f"w{i:02d}", 5, timeout=120, poll=0.05)
                time.sleep(args.idle_settle)
                pid = d.proc.pid
                c0, s0 = cpu_ticks_ms(pid), cpu_sched_ns(pid)
                time.sleep(args.idle_seconds)
                c1, s1 = cpu_ticks_ms(pid), cpu_sched_ns(pid)
                anon_idle, uss_idle = memory_mib(pid)
                nthreads = psutil.Process(pid).num_threads()
                # A few commands, as an operator's session would send them.
                for _ in range(1000):
                    d.call("status")
                d.call("stats", timeout=120)
                d.call("incr", name="w00", waiting=True)
                d.call("decr", name="w00", waiting=True)
                d.wait_pids("w00", 5, timeout=60, poll=0.05)
                anon_cmd, uss_cmd = memory_mib(pid)
            finally:
                d.stop()
            rec("idle_sched", label, (s1 - s0) / 1e6)
            rec("idle_ticks", label, c1 - c0)
            rec("anon_idle", label, anon_idle)
            rec("uss_idle", label, uss_idle)
            rec("anon_cmd", label, anon_cmd)
            rec("uss_cmd", label, uss_cmd)
            rec("threads", label, nthreads)
            log(f"idle rep {rep + 1}: {label} cpu {(s1 - s0) / 1e6:.2f} ms (ticks {c1 - c0:.0f} ms), "
                f"idle anon {anon_idle:.2f} MiB uss {uss_idle:.2f} MiB, after commands anon {anon_cmd:.2f} MiB "
                f"uss {uss_cmd:.2f} MiB, {nthreads} threads")


# ---------------------------------------------------------------- report

def fmt(v):
    if v is None:
        return "—"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}x"


def aggregate(key, runner, how):
    xs = R.get(key, {}).get(runner)
    if not xs:
        return None
    if how == "median":
        return statistics.median(xs)
    if how == "p50":
        return percentile(xs, 0.50)
    if how == "p99":
        return percentile(xs, 0.99)
    raise ValueError(how)


def report(args, ours_label, machine):
    window = f"{args.idle_seconds:g} s"
    rows = [
        ("start 200 `sleep` (s) — `start` → `list` shows 200", "spawn200", "median", "median"),
        ("start 1000 `sleep` (s) — `start` → `list` shows 1000", "spawn1000", "median", "median"),
        ("respawn p50 (ms) — SIGKILL → replacement `spawn` event", "respawn", "p50", "p50"),
        ("respawn p99 (ms)", "respawn", "p99", "p99"),
        ("`status` round trip p50 (µs), 1 client", "rtt", "p50", "p50"),
        ("`status` round trip p99 (µs), 1 client", "rtt", "p99", "p99"),
        (f"`status` req/s, {args.clients} concurrent clients", "rps", "median", "median"),
        (f"idle CPU (ms in {window}, schedstat ns)", "idle_sched", "median", None),
        (f"idle CPU (ms in {window}, utime+stime ticks)", "idle_ticks", "median", None),
        (f"`status` round trip p50 (µs), {args.stats_processes}-process watcher, no other client",
         "rtt_big_quiet", "p50", None),
        (f"`status` round trip p99 (µs), {args.stats_processes}-process watcher, no other client",
         "rtt_big_quiet", "p99", None),
        (f"`status` round trip p50 (µs), while another client loops `stats` of the {args.stats_processes}",
         "rtt_big_stats", "p50", None),
        (f"`status` round trip p99 (µs), while another client loops `stats` of the {args.stats_processes}",
         "rtt_big_stats", "p99", None),
        (f"`stats` of {args.stats_processes} processes, round trip p50 (ms)", "stats_rtt", "p50", None),
        ("anonymous memory, idle (MiB, RssAnon), 20×5 sleeps", "anon_idle", "median", None),
        ("USS, idle (MiB, private clean+dirty), 20×5 sleeps", "uss_idle", "median", None),
        ("anonymous memory after 1000 `status` + `stats` + `incr`/`decr` (MiB)", "anon_cmd", "median", None),
        ("USS after 1000 `status` + `stats` + `incr`/`decr` (MiB)", "uss_cmd", "median", None),
    ]
    out = []
    out.append("## Circus for Swift benchmarks")
    out.append("")
    out.append(f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M:%S %Z')}")
    out.append(f"- machine: nproc {machine['nproc']}, kernel {machine['kernel']}, {machine['cpu']}, "
               f"{machine['mem_gib']:.1f} GiB RAM; load average at start {machine['load_start']}, "
               f"at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    out.append(f"- mode: {'quick' if args.quick else 'full'}; reps {args.reps} (spawn, status), "
               f"respawn batches {args.reps_respawn}, idle reps {args.reps_idle}; daemons alternate A B A B")
    out.append(f"- ours: {args.ours if ours_label else 'SKIPPED — binary not found at ' + args.ours}")
    out.append(f"- python: {args.python} (circusd 0.19.0); check_delay 5.0 everywhere")
    out.append("")
    out.append("| scenario | ours | Python circusd | ratio (Python/ours) | bare system limit | ours/limit |")
    out.append("|---|---|---|---|---|---|")
    for title, key, how, bare_how in rows:
        if key not in R:
            continue
        o = aggregate(key, "ours", how)
        p = aggregate(key, "python", how)
        b = aggregate(key, "bare", bare_how) if bare_how else None
        out.append(f"| {title} | {fmt(o)} | {fmt(p)} | {ratio(p, o)} | {fmt(b)} | {ratio(o, b)} |")
    out.append("")
    n_o = len(R.get("respawn", {}).get("ours", []))
    n_p = len(R.get("respawn", {}).get("python", []))
    n_b = len(R.get("respawn", {}).get("bare", []))
    notes = [
        f"respawn samples: ours {n_o}, Python {n_p} (Python capped: it reaps only on its "
        f"check_delay=5 s tick; kills are spaced by a random 0–5 s pause so they hit a random tick phase; ours: 10–50 ms pause), bare {n_b} "
        f"(samples pooled over batches; bare excludes the PUB/SUB event hop).",
        f"status: {args.rtt_count} sequential calls per rep (pooled), {args.clients} clients × "
        f"{args.rtt_seconds:g} s per rep; C client `bare/rtt_client.c`; bare = libzmq ROUTER echo.",
        "ratio (Python/ours) > 1 means ours is better for times/CPU/memory; for req/s < 1 means ours is better. "
        "ours/limit is the cost over the bare limit (req/s: fraction of the bare throughput).",
        f"idle: window starts {args.idle_settle:g} s after all 100 processes are listed; daemon pid only "
        f"(threads: ours {aggregate('threads', 'ours', 'median') or '—'}, "
        f"Python {aggregate('threads', 'python', 'median') or '—'}).",
        "memory: RssAnon from /proc/PID/status; USS = Private_Clean + Private_Dirty from "
        "/proc/PID/smaps_rollup; read at the end of the idle window, then after 1000 sequential `status`, "
        "one `stats` of all 100 processes, `incr w00` and `decr w00` (waiting).",
        f"stats load: {args.stats_seconds:g} s of sequential `status` calls (C client, 20 warm-up calls) on a daemon "
        f"with a {args.stats_processes}-process watcher, first alone, then while a second client (Python, its own "
        f"process) sends `stats name=big` back to back; samples pooled over {args.reps_stats} rep(s) "
        f"(ours {len(R.get('rtt_big_stats', {}).get('ours', []))} calls, "
        f"Python {len(R.get('rtt_big_stats', {}).get('python', []))} calls under load; "
        f"`stats` replies: ours {len(R.get('stats_rtt', {}).get('ours', []))}, "
        f"Python {len(R.get('stats_rtt', {}).get('python', []))}).",
    ]
    if args.quick:
        notes.append("quick mode: fewer repetitions, 1000-process start skipped, short idle window.")
    notes += NOTES
    out += [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def machine_info():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "kernel": platform.release(), "cpu": cpu,
            "mem_gib": psutil.virtual_memory().total / 2**30}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", default=os.path.join(REPO, ".build", "release", "circusd"))
    ap.add_argument("--python", default=os.path.join(REPO, ".venv", "bin", "circusd"))
    ap.add_argument("--quick", action="store_true", help="smoke run: fewer reps, idle 5 s, skip 1000")
    ap.add_argument("--idle-seconds", type=float, default=None, help="idle window (default 30, quick 5)")
    ap.add_argument("--scenarios", default="spawn,respawn,status,statsload,idle",
                    help="comma-separated subset of spawn,respawn,status,statsload,idle")
    ap.add_argument("--out", default=None, help="also write the markdown here "
                    "(default Benchmarks/results/<timestamp>.md, plus .json with raw values)")
    ap.add_argument("--keep-temp", action="store_true", help="keep daemon temp dirs (logs, configs)")
    args = ap.parse_args()
    args.ours = os.path.abspath(args.ours)
    args.python = os.path.abspath(args.python)

    q = args.quick
    args.reps = 2 if q else 3
    args.reps_respawn = 2 if q else 5
    args.reps_idle = 1 if q else 2
    args.respawn_samples = 20 if q else 50
    args.python_respawn_samples = 4 if q else 10
    args.respawn_timeout = 15.0
    args.rtt_count = 2000
    args.rtt_seconds = 3.0
    args.clients = 4
    args.idle_settle = 1.0
    args.stats_processes = 200 if q else 1000
    args.stats_seconds = 3.0 if q else 10.0
    args.reps_stats = 1
    if args.idle_seconds is None:
        args.idle_seconds = 5.0 if q else 30.0

    LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    runners = []
    ours_label = None
    if os.access(args.ours, os.X_OK):
        runners.append(("ours", args.ours))
        ours_label = "ours"
    else:
        log(f"ours not found at {args.ours}: skipped")
    if not os.access(args.python, os.X_OK):
        sys.exit(f"Python circusd not found at {args.python}")
    runners.append(("python", args.python))
    runners.append(("bare", None))

    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    builddir = tempfile.mkdtemp(prefix="cbench-build-")
    t_start = time.monotonic()
    try:
        bare = build_bare(builddir)
        chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        table = {"spawn": scenario_spawn, "respawn": scenario_respawn,
                 "status": scenario_rtt, "statsload": scenario_statsload, "idle": scenario_idle}
        for s in chosen:
            if s not in table:
                sys.exit(f"unknown scenario {s}")
            log(f"=== scenario {s}")
            try:
                table[s](args, runners, bare)
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                NOTES.append(f"scenario {s} FAILED: {e}")
        machine = machine_info()
        machine["load_start"] = load_start
        md = report(args, ours_label, machine)
        md += f"- harness wall time: {time.monotonic() - t_start:.0f} s\n"
        print(md)
        out = args.out
        if out is None:
            resdir = os.path.join(HERE, "results")
            os.makedirs(resdir, exist_ok=True)
            out = os.path.join(resdir, time.strftime("%Y%m%d-%H%M%S") + ("-quick" if q else "") + ".md")
        with open(out, "w") as f:
            f.write(md)
        with open(os.path.splitext(out)[0] + ".json", "w") as f:
            json.dump({"machine": machine, "args": vars(args), "raw": R, "notes": NOTES}, f, indent=1)
        log(f"written {out}")
    finally:
        emergency_cleanup()
        shutil.rmtree(builddir, ignore_errors=True)
        reap_orphans()


if __name__ == "__main__":
    def _term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, _term)
    main()
