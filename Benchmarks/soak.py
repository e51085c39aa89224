#!/usr/bin/env python3
"""Chaos soak for circusd.

For a number of seconds, four clients send random `incr`, `decr`, `reload`,
`reloadconfig`, `add`, `rm`, `status` and `stats` commands while a killer SIGKILLs
random children and grandchildren of the daemon's watchers. The configuration has a
watcher whose processes fork a child, a `shell = true` watcher that backgrounds a job,
plain workers, a crash-looping watcher and a one-shot (`respawn = false`) watcher.

At the end the chaos stops, the state of the start is restored (temporary watchers
removed, the first configuration reloaded, `workers` set back), and the run fails
unless:
  - every steady watcher runs exactly its `numprocesses` processes;
  - no descendant of circusd is a zombie;
  - no orphan: every process carrying this run's tag belongs to a watcher process's
    tree, and none is left once circusd has quit;
  - the daemon's descriptors, less one pidfd per child, are what they were at the start;
  - its anonymous memory (RssAnon) grew by less than --max-growth-kib since warm-up.

    Benchmarks/soak.py [--seconds 600] [--circusd PATH] [--seed N]

Prints one line per check and a summary; exits 1 when a check fails. Uses only ipc://
endpoints in a temp dir and signals only processes this run caused to exist.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import Ctl, LIBC, PR_SET_CHILD_SUBREAPER, kill_tagged, log, popen, popen_done, tagged_pids  # noqa: E402

import argparse  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import psutil  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLEEP = shutil.which("sleep") or "/bin/sleep"
# Watchers whose process count must be exactly numprocesses once the chaos is over.
STEADY = ["workers", "forkers", "shelljob"]


def config_text(tmp, tag, variant):
    """The configuration; variant "b" changes forkers and adds a watcher (reloadconfig)."""
    forkers = 3 if variant == "a" else 4
    text = f"""[circus]
endpoint = ipc://{tmp}/ctl.sock
pubsub_endpoint = ipc://{tmp}/pub.sock
multicast_endpoint =

[env]
SOAK_TAG = {tag}

[watcher:workers]
cmd = {SLEEP} 3600
numprocesses = 4
graceful_timeout = 2

[watcher:forkers]
cmd = /bin/sh -c "{SLEEP} 3600 & {SLEEP} 3600; wait"
numprocesses = {forkers}
graceful_timeout = 2

[watcher:shelljob]
cmd = {SLEEP} 3600 & exec {SLEEP} 3600
shell = true
numprocesses = 2
graceful_timeout = 2

[watcher:crasher]
cmd = /bin/sh -c "exit 3"
numprocesses = 1
max_retry = -1

[watcher:oneshot]
cmd = /bin/sh -c "exit 0"
numprocesses = 2
respawn = false
"""
    if variant == "b":
        text += f"""
[watcher:extra]
cmd = {SLEEP} 3600
numprocesses = 2
graceful_timeout = 2
"""
    return text


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.tag = "soak-" + uuid.uuid4().hex[:12]
        self.tmp = tempfile.mkdtemp(prefix="csoak-")
        self.config = os.path.join(self.tmp, "circus.ini")
        self.endpoint = f"ipc://{self.tmp}/ctl.sock"
        self.stop = threading.Event()
        self.lock = threading.RLock()
        self.counts = {}
        self.errors = []
        self.failures = []

    # ------------------------------------------------------------ helpers

    def write_config(self, variant):
        path = self.config + ".new"
        with open(path, "w") as f:
            f.write(config_text(self.tmp, self.tag, variant))
        os.replace(path, self.config)

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def check(self, ok, what):
        log(("ok   " if ok else "FAIL ") + what)
        if not ok:
            self.failures.append(what)

    def call(self, ctl, command, timeout=60.0, **props):
        reply = ctl.call(command, timeout=timeout, **props)
        self.count(command)
        if reply.get("status") != "ok":
            # Commands racing each other may name a watcher that reloadconfig just removed
            # (errno 3, "program ... not found"; errno 6, "... was removed" when it went
            # while the command waited its turn), or add a watcher whose `rm` is still
            # queued ("... already exist"); anything else is a daemon error.
            reason = str(reply.get("reason", ""))
            expected = (reply.get("errno") == 3
                        or (reply.get("errno") == 6 and reason.endswith("was removed"))
                        or (command == "add" and reason.endswith("already exist")))
            if not expected:
                with self.lock:
                    self.errors.append(f"{command} {props}: {reply}")
        return reply

    def daemon_fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_anon_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        raise RuntimeError("no RssAnon")

    def direct_children(self):
        return psutil.Process(self.proc.pid).children()

    def descriptor_baseline(self):
        # One pidfd per child the daemon watches; the rest (sockets, epoll, eventfd,
        # signalfd, log) must not grow.
        return self.daemon_fds() - len(self.direct_children())

    # ------------------------------------------------------------ chaos

    def client(self, index):
        ctl = Ctl(self.endpoint)
        rng = random.Random(self.args.seed * 10 + index)
        temp = f"tmp{index}"
        try:
            while not self.stop.is_set():
                op = rng.choice(["incr", "decr", "reload", "reloadconfig", "add", "rm", "status", "stats",
                                 "incr", "decr", "status"])
                waiting = rng.random() < 0.5
                if op == "incr":
                    self.call(ctl, "incr", name="workers", nb=1, waiting=waiting)
                elif op == "decr":
                    n = ctl.call("numprocesses", name="workers").get("numprocesses", 0)
                    if n > 1:
                        self.call(ctl, "decr", name="workers", nb=1, waiting=waiting)
                elif op == "reload":
                    self.call(ctl, "reload", name=rng.choice(["forkers", "shelljob", "workers"]), waiting=waiting)
                elif op == "reloadconfig":
                    with self.lock:
                        self.write_config(rng.choice("ab"))
                        self.call(ctl, "reloadconfig", waiting=True)
                elif op == "add":
                    self.call(ctl, "add", name=temp, cmd=f"{SLEEP} 3600", start=True, waiting=waiting,
                              options={"env": {"SOAK_TAG": self.tag}, "numprocesses": 2})
                elif op == "rm":
                    self.call(ctl, "rm", name=temp, waiting=waiting)
                elif op == "stats":
                    self.call(ctl, "stats", name="forkers")
                else:
                    self.call(ctl, "status")
                time.sleep(rng.uniform(0.005, 0.05))
        except Exception as e:  # noqa: BLE001
            with self.lock:
                self.errors.append(f"client {index}: {e!r}")
        finally:
            ctl.close()

    def killer(self):
        rng = random.Random(self.args.seed + 7)
        while not self.stop.is_set():
            victims = [p for p in tagged_pids(self.tag) if p != self.proc.pid]
            if victims:
                try:
                    os.kill(rng.choice(victims), signal.SIGKILL)
                    self.count("SIGKILL")
                except ProcessLookupError:
                    pass
            time.sleep(rng.uniform(0.02, 0.1))

    # ------------------------------------------------------------ checks

    def owned_pids(self, ctl):
        """Pids of every watcher process and of their descendants."""
        owned = set()
        for name in ctl.call("list")["watchers"]:
            for pid in ctl.call("list", name=name).get("pids", []):
                owned.add(pid)
                try:
                    owned.update(c.pid for c in psutil.Process(pid).children(recursive=True))
                except psutil.Error:
                    pass
        return owned

    def wait_until(self, what, predicate, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value is True:
                self.check(True, what)
                return True
            if time.monotonic() > deadline:
                self.check(False, f"{what}: {value}")
                return False
            time.sleep(0.05)

    def steady_state(self, ctl):
        def at_target():
            wrong = []
            for name in STEADY:
                target = ctl.call("get", name=name, keys=["numprocesses"])["options"]["numprocesses"]
                pids = ctl.call("list", name=name)["pids"]
                if len(pids) != target:
                    wrong.append(f"{name} has {len(pids)} of {target}")
            return True if not wrong else ", ".join(wrong)
        return at_target

    def no_zombies(self):
        zombies = []
        for p in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                if p.status() == psutil.STATUS_ZOMBIE:
                    zombies.append(p.pid)
            except psutil.NoSuchProcess:
                pass
        return True if not zombies else f"zombies {zombies}"

    def no_orphans(self, ctl):
        def check():
            owned = self.owned_pids(ctl)
            orphans = [p for p in tagged_pids(self.tag) if p not in owned]
            return True if not orphans else f"orphans {orphans}"
        return check

    # ------------------------------------------------------------ run

    def run(self):
        self.write_config("a")
        self.logpath = os.path.join(self.tmp, "circusd.log")
        env = {k: v for k, v in os.environ.items() if k != "SOAK_TAG"}
        with open(self.logpath, "wb") as logf:
            self.proc = popen([self.args.circusd, self.config], cwd=self.tmp, env=env,
                              stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        ctl = Ctl(self.endpoint)
        try:
            self.wait_until("daemon answers", lambda: ctl.call("status", timeout=0.5).get("status") == "ok"
                            if self.proc.poll() is None else f"exited with {self.proc.returncode}")
            self.wait_until("start-up", self.steady_state(ctl))
            self.wait_until("no zombie at start", self.no_zombies)
            fds_start = self.descriptor_baseline()
            threads = [threading.Thread(target=self.client, args=(i,)) for i in range(4)]
            threads.append(threading.Thread(target=self.killer))
            for t in threads:
                t.start()
            warmup = min(10.0, self.args.seconds / 6)
            time.sleep(warmup)
            anon_start = self.rss_anon_kib()
            samples = [anon_start]
            end = time.monotonic() + self.args.seconds - warmup
            while time.monotonic() < end and self.proc.poll() is None:
                time.sleep(min(10.0, max(0.0, end - time.monotonic())))
                samples.append(self.rss_anon_kib())
            self.stop.set()
            for t in threads:
                t.join()
            self.check(self.proc.poll() is None, "circusd survived the chaos")
            if self.proc.poll() is not None:
                return

            # Restore the starting state, then check it.
            for i in range(4):
                ctl.call("rm", name=f"tmp{i}", waiting=True)
            self.write_config("a")
            self.check(ctl.call("reloadconfig", waiting=True).get("status") == "ok", "reloadconfig back to start")
            self.check(ctl.call("set", name="workers", options={"numprocesses": 4}, waiting=True)
                       .get("status") == "ok", "workers set back to 4")
            self.wait_until("every steady watcher at its numprocesses", self.steady_state(ctl))
            self.wait_until("no zombie among circusd's descendants", self.no_zombies)
            self.wait_until("no orphan while running", self.no_orphans(ctl))
            # The clients' connections close asynchronously in libzmq's I/O thread.
            self.wait_until(f"descriptors less pidfds back to {fds_start}",
                            lambda: True if self.descriptor_baseline() == fds_start
                            else f"{self.descriptor_baseline()} now", timeout=10.0)
            anon_end = self.rss_anon_kib()
            growth = anon_end - anon_start
            log(f"RssAnon KiB every 10 s: {samples + [anon_end]}")
            self.check(growth < self.args.max_growth_kib,
                       f"RssAnon {anon_start} KiB after warm-up, {anon_end} KiB at the end "
                       f"(growth {growth} KiB, bound {self.args.max_growth_kib})")
            self.check(not self.errors, f"no command failed ({len(self.errors)} failed: {self.errors[:5]})")
            log("operations: " + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())))

            ctl.call("quit", waiting=False)
            self.proc.wait(timeout=60)
            popen_done(self.proc)
            survivors = tagged_pids(self.tag)
            self.check(not survivors, f"nothing of the run left after quit ({survivors})")
        finally:
            ctl.close()
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            kill_tagged(self.tag)
            if self.failures:
                log(f"daemon log kept in {self.logpath}")
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--circusd", default=os.path.join(REPO, ".build", "release", "circusd"))
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--max-growth-kib", type=int, default=1024)
    args = parser.parse_args()
    args.circusd = os.path.abspath(args.circusd)
    # Orphans that leave circusd's tree come to us, not to init, so they can be counted
    # and reaped.
    LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    def interrupted(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupted)
    log(f"soak: {args.circusd}, {args.seconds:.0f} s, seed {args.seed}")
    soak = Soak(args)
    soak.run()
    if soak.failures:
        log(f"soak FAILED: {len(soak.failures)} check(s)")
        sys.exit(1)
    log("soak passed")


if __name__ == "__main__":
    main()
