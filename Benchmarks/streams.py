#!/usr/bin/env python3
"""Output through a FileStream: throughput, daemon CPU, and the control channel meanwhile.

The writers are Tests/CircusdIntegrationTests/Fixtures/streamwriter.c (compiled here with
`cc -O2`): each writes its share of the bytes to stdout as 100-byte lines, 4000 bytes per
write(2). In the same run, alternating between them:

1. this circusd, a watcher of W writers (`numprocesses = W`, `$(circus.wid)` as the
   writer's id) whose stdout is a FileStream; time from the `start` request to the file
   holding every byte, and the daemon's CPU seconds over that time (utime + stime of
   /proc/PID/stat: every thread of the daemon, the stream writers included);
2. Python circusd 0.19 (.venv/bin/circusd) with the same configuration;
3. the bare limit: the same writers each piped into `cat >> file` (GNU cat: read/write,
   the copy a pipe-to-file redirection costs without a supervisor); CPU is the cats';
4. the bare splice: the same into Benchmarks/bare/splice_copy.c, which splices its stdin
   to the file as our FileStream does: the kernel's own cost of putting the bytes in the
   page cache, the floor for any daemon that writes the file.
   Every run's file is checked byte for byte by the fixture's verifier (Python Circus's
   lines from several writers cut into each other; the script says so).

Then the `status` round trip (one DEALER, back to back) of this circusd while idle and
while 8 writers stream a larger total, p50/p99.

    swift build -c release --static-swift-stdlib --scratch-path .build-release
    Benchmarks/streams.py [--circusd .build-release/release/circusd] [--mb 200] [--rounds 3]
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
import benchvenv  # noqa: E402

benchvenv.require(__file__, "zmq")
import zmq  # noqa: E402

from benchctl import call  # noqa: E402

import argparse
import shutil
import statistics
import subprocess
import tempfile
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")
FIXTURE = os.path.join(ROOT, "Tests", "CircusdIntegrationTests", "Fixtures", "streamwriter.c")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_size(path, size, timeout=600.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.path.getsize(path) >= size:
                return time.monotonic()
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not reach {size} bytes")
        time.sleep(0.002)


def verify(writer, path, writers, each):
    out = subprocess.run([writer, "verify", path, str(writers), str(each)], capture_output=True, text=True).stdout
    if not out.startswith("ok "):
        raise RuntimeError(f"{path}: {out.strip()}")


class Daemon:
    """A circusd (ours or Python's) on ipc endpoints in `tmp` with one stream watcher."""

    def __init__(self, binary, tmp, writer, writers, each, name):
        self.tmp = tmp
        self.out = os.path.join(tmp, f"{name}.out")
        self.config = os.path.join(tmp, f"{name}.ini")
        endpoint = f"ipc://{tmp}/{name}-ctl.sock"
        with open(self.config, "w") as f:
            f.write(f"""[circus]
endpoint = {endpoint}
pubsub_endpoint = ipc://{tmp}/{name}-pub.sock
check_delay = 1

[watcher:writers]
cmd = {writer} write $(circus.wid) {each}
numprocesses = {writers}
autostart = false
respawn = false
stdout_stream.class = FileStream
stdout_stream.filename = {self.out}
""")
        self.log = open(os.path.join(tmp, f"{name}.log"), "w")
        self.process = subprocess.Popen([binary, self.config], stdout=self.log, stderr=self.log,
                                        stdin=subprocess.DEVNULL)
        self.context = zmq.Context.instance()
        self.sock = self.context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        deadline = time.monotonic() + 20
        while True:
            try:
                call(self.sock, "list", timeout=0.5)
                break
            except RuntimeError:
                self.sock.close()
                self.sock = self.context.socket(zmq.DEALER)
                self.sock.setsockopt(zmq.LINGER, 0)
                self.sock.connect(endpoint)
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"{binary} did not answer")

    def run(self, total):
        """Streams `total` bytes once; returns (seconds, daemon CPU seconds)."""
        # Emptied, not removed: Python Circus keeps its FileStream open from its start on
        # and would go on writing to a removed file.
        if os.path.exists(self.out):
            os.truncate(self.out, 0)
        cpu0 = cpu_seconds(self.process.pid)
        t0 = time.monotonic()
        call(self.sock, "start", name="writers")
        t1 = wait_size(self.out, total)
        cpu = cpu_seconds(self.process.pid) - cpu0
        call(self.sock, "stop", name="writers", waiting=True)
        return t1 - t0, cpu

    def close(self):
        try:
            call(self.sock, "quit", waiting=True, timeout=30)
        except RuntimeError:
            pass
        self.sock.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def bare(writer, tmp, writers, each, copier):
    """The same writers piped into `copier` (`cat >> file`, or splice_copy): (seconds,
    the copiers' and writers' CPU seconds, the file)."""
    out = os.path.join(tmp, "bare.out")
    if os.path.exists(out):
        os.unlink(out)
    open(out, "w").close()
    before = os.times()
    t0 = time.monotonic()
    script = " ".join(f"{writer} write {i} {each} | {copier} {out} &" for i in range(1, writers + 1)) + " wait"
    subprocess.run(["sh", "-c", script], check=True)
    t1 = time.monotonic()
    after = os.times()
    # The cats' and writers' CPU are both children's time; the writers' own is measured
    # alone below and taken out.
    return t1 - t0, (after.children_user + after.children_system) - (before.children_user + before.children_system), out


def writers_cpu(writer, writers, each):
    before = os.times()
    script = " ".join(f"{writer} write {i} {each} > /dev/null &" for i in range(1, writers + 1)) + " wait"
    subprocess.run(["sh", "-c", script], check=True)
    after = os.times()
    return (after.children_user + after.children_system) - (before.children_user + before.children_system)


def rtt(sock, samples):
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        call(sock, "status")
        times.append((time.perf_counter() - t0) * 1e6)
    return times


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--circusd", default=os.path.join(ROOT, ".build-release", "release", "circusd"))
    parser.add_argument("--python", default=os.path.join(ROOT, ".venv", "bin", "circusd"))
    parser.add_argument("--mb", type=int, default=200, help="MB per run (10^6 bytes)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rtt-samples", type=int, default=3000)
    parser.add_argument("--writers", default="1,8", help="writer counts to run, comma-separated")
    args = parser.parse_args()
    if not os.path.exists(args.circusd):
        sys.exit(f"no circusd at {args.circusd}: build it with "
                 "swift build -c release --static-swift-stdlib --scratch-path .build-release")
    tmp = tempfile.mkdtemp(prefix="cstream-", dir="/tmp")
    try:
        writer = os.path.join(tmp, "streamwriter")
        subprocess.run(["cc", "-O2", "-o", writer, FIXTURE], check=True)
        splice_copy = os.path.join(tmp, "splice_copy")
        subprocess.run(["cc", "-O2", "-o", splice_copy, os.path.join(HERE, "bare", "splice_copy.c")], check=True)
        total = args.mb * 1000 * 1000
        print(f"{args.mb} MB per run, {args.rounds} rounds, median of the rounds; load average "
              f"{os.getloadavg()[0]:.2f} at the start")
        results = {}
        for writers in [int(w) for w in args.writers.split(",")]:
            each = total // writers // 100 * 100
            size = each * writers
            ours = Daemon(args.circusd, tmp, writer, writers, each, "ours")
            python = Daemon(args.python, tmp, writer, writers, each, "python")
            rows = {"ours": [], "python": [], "bare": [], "splice": []}
            split_lines = {}
            try:
                for _ in range(args.rounds):
                    for name, daemon in (("ours", ours), ("python", python)):
                        seconds, cpu = daemon.run(size)
                        try:
                            verify(writer, daemon.out, writers, each)
                        except RuntimeError as error:
                            # Circus reads 1024 bytes at a time, so the lines of several
                            # writers end up cut into each other's: say so, once.
                            if name == "ours":
                                raise
                            split_lines.setdefault(name, str(error))
                        rows[name].append((size / seconds / 1e6, cpu))
                        os.truncate(daemon.out, 0)
                    # Several splice_copy processes cannot share one file (each writes at
                    # the end it saw): the floor is measured with one writer.
                    copiers = [("bare", "cat >>")] + ([("splice", splice_copy)] if writers == 1 else [])
                    for name, copier in copiers:
                        seconds, cpu, out = bare(writer, tmp, writers, each, copier)
                        verify(writer, out, writers, each)
                        os.unlink(out)
                        rows[name].append((size / seconds / 1e6, cpu - writers_cpu(writer, writers, each)))
            finally:
                ours.close()
                python.close()
            results[writers] = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
                                for k, v in rows.items() if v}
            print(f"\n{writers} writer(s), {size / 1e6:.1f} MB")
            print(f"  {'':8} {'MB/s':>8} {'CPU s':>8}  (per run; CPU: the daemon's, or the copiers')")
            for name in ("ours", "python", "bare", "splice"):
                if name not in results[writers]:
                    continue
                mbs, cpu = results[writers][name]
                print(f"  {name:8} {mbs:8.1f} {cpu:8.3f}")
            print(f"  ours / bare throughput: {results[writers]['ours'][0] / results[writers]['bare'][0]:.2f}")
            for name, error in split_lines.items():
                print(f"  {name}'s file has every byte but not every line whole: {error}")

        # The control channel while 8 writers stream (4x the total, so that it lasts).
        each = 4 * total // 8 // 100 * 100
        ours = Daemon(args.circusd, tmp, writer, 8, each, "rtt")
        try:
            idle = rtt(ours.sock, args.rtt_samples)
            busy = []
            done = threading.Event()
            control = ours.context.socket(zmq.DEALER)
            control.setsockopt(zmq.LINGER, 0)
            control.connect(f"ipc://{tmp}/rtt-ctl.sock")
            call(control, "start", name="writers")

            def watch():
                wait_size(ours.out, each * 8)
                done.set()
            threading.Thread(target=watch, daemon=True).start()
            while not done.is_set():
                busy += rtt(ours.sock, 50)
            control.close()
            verify(writer, ours.out, 8, each)
        finally:
            ours.close()
        q = lambda v, p: sorted(v)[min(len(v) - 1, int(len(v) * p))]
        print(f"\nstatus round trip (µs), this circusd: idle p50 {q(idle, 0.5):.0f} p99 {q(idle, 0.99):.0f} "
              f"({len(idle)} samples); while 8 writers stream {each * 8 / 1e6:.0f} MB: "
              f"p50 {q(busy, 0.5):.0f} p99 {q(busy, 0.99):.0f} ({len(busy)} samples)")
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
