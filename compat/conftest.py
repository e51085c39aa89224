"""Compatibility test harness for Circus-for-Swift.

The same suite runs against the real Python circusd (default) and against our
Swift daemon: set CIRCUSD to the daemon command line (the config path is
appended).  The client is always the unmodified Python `circusctl`.
"""
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("CIRCUS_VENV", ROOT / ".venv"))
PY_CIRCUSD = str(VENV / "bin" / "circusd")
CIRCUSCTL = os.environ.get("CIRCUSCTL", str(VENV / "bin" / "circusctl"))
CIRCUSD = shlex.split(os.environ.get("CIRCUSD") or PY_CIRCUSD)

# Python executable for helper scripts run as watchers (absolute path, so the
# children find it even with an empty environment).
PYTHON = sys.executable


def _is_python_impl(argv):
    forced = os.environ.get("CIRCUS_IMPL", "").lower()
    if forced in ("python", "swift"):
        return forced == "python"
    exe = shutil.which(argv[0]) or argv[0]
    if "python" in os.path.basename(exe):
        return True
    try:
        with open(exe, "rb") as f:
            first = f.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


IS_PYTHON = _is_python_impl(CIRCUSD)

TIMEOUT_MSG = """\

A time out usually happens in one of those cases:

#1 The Circus daemon could not be reached.
#2 The Circus daemon took too long to perform the operation

For #1, make sure you are hitting the right place
by checking your --endpoint option.

For #2, if you are not expecting a result to
come back, increase your timeout option value
(particularly with waiting switches)
"""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "swift_only: our deliberate deviation from Python Circus "
        "(Policy); skipped against the Python circusd")
    config.addinivalue_line(
        "markers", "python_only: a Python Circus quirk we do not copy; "
        "skipped against our daemon")


def pytest_report_header(config):
    return "circusd under test: %s (%s)" % (
        " ".join(CIRCUSD), "python" if IS_PYTHON else "swift")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if IS_PYTHON and item.get_closest_marker("swift_only"):
            item.add_marker(pytest.mark.skip(
                reason="swift_only: deliberate deviation from Python Circus"))
        if not IS_PYTHON and item.get_closest_marker("python_only"):
            item.add_marker(pytest.mark.skip(
                reason="python_only: Circus quirk we do not copy"))


# --------------------------------------------------------------------------
# polling helpers


def wait_until(pred, timeout=5.0, interval=0.05, msg="condition"):
    """Poll `pred` until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s "
                                 "(last value %r)" % (timeout, msg, last))
        time.sleep(interval)


def _proc_key(pid):
    """(pid, create_time) of a live process, or None."""
    try:
        p = psutil.Process(int(pid))
        return (p.pid, p.create_time())
    except (psutil.Error, ValueError):
        return None


def _still_running(key):
    pid, ctime = key
    try:
        p = psutil.Process(pid)
        if p.create_time() != ctime:
            return False
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# --------------------------------------------------------------------------
# pub/sub listener


class Listener:
    """SUB socket on the pub/sub endpoint collecting (topic, payload) pairs."""

    def __init__(self, daemon, topics):
        self.daemon = daemon
        self.topics = list(topics) if topics else [""]
        self.events = []   # list of (topic:str, payload:dict|str, recv_time)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise AssertionError("listener could not connect: %r"
                                 % (self._error,))
        if self._error:
            raise AssertionError("listener failed: %r" % (self._error,))
        # The subscription leaves right after the handshake; the daemon's one
        # I/O thread reads it before a request sent now, so once the reply is
        # here every event published later reaches this listener.
        if self.daemon.call({"command": "list"}, timeout=5) is None:
            raise AssertionError("no reply to list after subscribing")

    def _run(self):
        sock = self.daemon.ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        mon = None
        try:
            for t in self.topics:
                sock.setsockopt(zmq.SUBSCRIBE, t.encode())
            mon = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
            sock.connect(self.daemon.pubsub)
            if not mon.poll(5000):
                raise AssertionError("no handshake with %s within 5s"
                                     % self.daemon.pubsub)
            recv_monitor_message(mon)
        except Exception as e:   # pragma: no cover
            self._error = e
        finally:
            self._ready.set()
        try:
            while not self._stop.is_set():
                if not sock.poll(50):
                    continue
                frames = sock.recv_multipart()
                topic = frames[0].decode()
                raw = frames[1] if len(frames) > 1 else b""
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = raw
                if (topic.endswith(".spawn") and isinstance(payload, dict)
                        and "process_pid" in payload):
                    self.daemon.track(payload["process_pid"])
                with self._cond:
                    self.events.append((topic, payload, time.monotonic(),
                                        frames))
                    self._cond.notify_all()
        finally:
            if mon is not None:
                try:
                    sock.disable_monitor()
                except zmq.ZMQError:
                    pass
                mon.close(0)
            sock.close(0)

    def snapshot(self):
        with self._cond:
            return [(t, p) for t, p, _, _ in self.events]

    def topics_seen(self):
        return [t for t, _ in self.snapshot()]

    def clear(self):
        with self._cond:
            self.events.clear()

    def wait_for(self, match, count=1, timeout=5.0):
        """Wait until `count` events match; return all matching (topic, payload).

        `match` is a topic string (exact) or a predicate(topic, payload).
        """
        if isinstance(match, str):
            want = match
            match = lambda t, p: t == want   # noqa: E731
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [(t, p) for t, p, _, _ in self.events if match(t, p)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        "timed out waiting for %d event(s); got %r"
                        % (count, [(t, p) for t, p, _, _ in self.events]))
                self._cond.wait(left)

    def close(self):
        self._stop.set()
        self._thread.join(2)


# --------------------------------------------------------------------------
# the daemon under test


DEFAULT_WATCHERS = """
[watcher:sleeper]
cmd = sleep 3600
numprocesses = 2
"""


class Daemon:
    def __init__(self, workdir, watchers=DEFAULT_WATCHERS, circus_extra="",
                 check_delay=1):
        self.workdir = Path(workdir)
        self._sockdir_owned = None
        sockdir = self.workdir
        if len("ipc://%s/pubsub.sock" % sockdir) >= 100:
            sockdir = Path(tempfile.mkdtemp(prefix="cx", dir="/tmp"))
            self._sockdir_owned = sockdir
        self.sockdir = sockdir
        self.endpoint = "ipc://%s/ctl.sock" % sockdir
        self.pubsub = "ipc://%s/pubsub.sock" % sockdir
        assert len(self.pubsub.encode()) < 100
        self.config = self.workdir / "circus.ini"
        self.logfile = self.workdir / "circusd.log"
        self.outfile = self.workdir / "circusd.out"
        self.ctx = zmq.Context()
        self.proc = None
        self.returncode = None
        self.tracked = set()       # {(pid, create_time)}
        self.listeners = []
        self.popens = []
        self.write_config(watchers, circus_extra, check_delay)

    # -- config ------------------------------------------------------------
    def config_text(self, watchers, circus_extra="", check_delay=1):
        head = ["[circus]",
                "endpoint = %s" % self.endpoint,
                "pubsub_endpoint = %s" % self.pubsub,
                "multicast_endpoint =",
                "statsd = false"]
        if check_delay is not None:
            head.append("check_delay = %s" % check_delay)
        if circus_extra:
            head.append(circus_extra.strip("\n"))
        return "\n".join(head) + "\n" + watchers.lstrip("\n")

    def write_config(self, watchers, circus_extra="", check_delay=1):
        self.config.write_text(
            self.config_text(watchers, circus_extra, check_delay))

    # -- process management ------------------------------------------------
    def start(self, wait_ready=True):
        self._err = open(self.logfile, "ab")
        self._out = open(self.outfile, "ab")
        self.proc = subprocess.Popen(
            CIRCUSD + [str(self.config)], cwd=str(self.workdir),
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("circusd exited with %s:\n%s" % (
                    self.proc.returncode, self.log()))
            # the same request `circusctl list` sends (raw, to save the
            # Python start-up time of circusctl on every test)
            r = self.call({"command": "list", "properties": {}}, timeout=0.5)
            if r is not None and r.get("status") == "ok":
                break
            if time.monotonic() > deadline:
                raise AssertionError("circusd did not answer `list` in 15s:"
                                     "\n%s" % self.log())
        if wait_ready:
            self.wait_settled()
        return self

    def log(self):
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_settled(self, timeout=10):
        """Wait until no watcher is `starting`/`stopping` and every active
        watcher runs its numprocesses."""
        def settled():
            st = self.call({"command": "status"}, timeout=2)
            if not st or "statuses" not in st:
                return False
            for name, status in st["statuses"].items():
                if status in ("starting", "stopping"):
                    return False
                if status == "active":
                    n = self.call({"command": "get", "properties": {
                        "name": name, "keys": ["numprocesses"]}}, timeout=2)
                    pids = self.pids(name)
                    if not n or n.get("status") != "ok":
                        return False
                    if len(pids) != n["options"]["numprocesses"]:
                        return False
            return True
        wait_until(settled, timeout, 0.1, "watchers to settle")
        # Python Circus releases the arbiter lock of the start sequence one
        # loop turn later: wait for it with a command that takes the lock and
        # changes nothing (start of an active watcher, stop of a stopped one),
        # retried while the lock is held. Its `waiting` reply comes after its
        # own lock is released.
        st = self.call({"command": "status"}, timeout=2) or {}
        for name, status in sorted(st.get("statuses", {}).items()):
            if status in ("active", "stopped"):
                probe = "start" if status == "active" else "stop"
                r = self.cmd_retry(probe, name=name, waiting=True)
                assert r and r.get("status") == "ok", r
                break

    def track(self, *pids):
        for pid in pids:
            key = _proc_key(pid)
            if key:
                self.tracked.add(key)

    def pids(self, name):
        r = self.call({"command": "list", "properties": {"name": name}},
                      timeout=3)
        if not r or "pids" not in r:
            return []
        self.track(*r["pids"])
        return r["pids"]

    def watchers(self):
        r = self.call({"command": "list"}, timeout=3)
        return r["watchers"] if r and "watchers" in r else []

    def stop(self):
        """Teardown: quit, wait, and check that no child outlived circusd."""
        problems = []
        for lst in self.listeners:
            lst.close()
        for p in self.popens:
            if p.poll() is None:
                p.kill()
                p.wait()
        if self.alive():
            try:
                for w in self.watchers():
                    self.pids(w)
                for c in psutil.Process(self.proc.pid).children():
                    self.track(c.pid)
            except psutil.Error:
                pass
            # Python refuses commands while an async one holds the arbiter
            # lock (e.g. an unwaited `rm` still stopping): retry
            self.cmd_retry("quit")
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                problems.append("circusd did not exit within 10s of quit")
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.returncode = self.proc.returncode
            self._err.close()
            self._out.close()
        # anything still running in our work dir was started by this daemon
        # (the default working_dir), even if we never saw its pid
        for p in psutil.process_iter(["pid", "cwd"]):
            cwd = p.info.get("cwd") or ""
            if cwd == str(self.workdir) or cwd.startswith(
                    str(self.workdir) + "/"):
                self.track(p.info["pid"])
        leftovers = []
        if self.tracked:
            # stop procedure may still be finishing in children of children
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                leftovers = [k for k in self.tracked if _still_running(k)]
                if not leftovers:
                    break
                time.sleep(0.05)
        for pid, _ in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if leftovers:
            problems.append("processes still alive after circusd exit: %s"
                            % sorted(p for p, _ in leftovers))
        self.ctx.destroy(0)
        if self._sockdir_owned:
            shutil.rmtree(self._sockdir_owned, ignore_errors=True)
        return problems

    # -- clients -----------------------------------------------------------
    def ctl(self, *args, timeout=5, endpoint=None, env=None):
        """Run the Python circusctl against this daemon."""
        cmd = [CIRCUSCTL, "--endpoint", endpoint or self.endpoint,
               "--timeout", str(int(timeout))] + [str(a) for a in args]
        e = dict(os.environ, PYTHONUNBUFFERED="1")
        if env:
            e.update(env)
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout + 20, env=e)
        non_flag = [a for a in args if not str(a).startswith("-")]
        if (r.returncode == 0 and len(non_flag) == 2 and non_flag[0] == "list"
                and r.stdout.strip()):
            try:
                self.track(*[int(x) for x in r.stdout.strip().split(",")])
            except ValueError:
                pass
        return r

    def ctl_popen(self, *args, endpoint=None):
        """Start a long-running circusctl (e.g. listen); killed at teardown."""
        cmd = [CIRCUSCTL, "--endpoint", endpoint or self.endpoint] + \
            [str(a) for a in args]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.popens.append(p)
        return p

    def call(self, msg, timeout=5.0, sock_type=zmq.DEALER, raw=False):
        """Send one frame (dict -> JSON) and return the parsed reply frame,
        or None when nothing comes back within `timeout` seconds."""
        if isinstance(msg, (dict, list)):
            data = json.dumps(msg).encode()
        elif isinstance(msg, str):
            data = msg.encode()
        else:
            data = msg
        s = self.ctx.socket(sock_type)
        try:
            s.setsockopt(zmq.LINGER, 0)
            if sock_type == zmq.DEALER:
                s.setsockopt(zmq.IDENTITY, uuid.uuid4().hex.encode())
            s.connect(self.endpoint)
            s.send(data)
            if not s.poll(int(timeout * 1000)):
                return None
            frames = s.recv_multipart()
        finally:
            s.close(0)
        if raw:
            return frames
        assert len(frames) == 1, "expected exactly one reply frame: %r" % (
            frames,)
        return json.loads(frames[0])

    def cmd(self, command, timeout=5.0, **props):
        """Convenience: raw call with an id; returns the reply dict."""
        msg = {"id": uuid.uuid4().hex, "command": command,
               "properties": props}
        return self.call(msg, timeout=timeout)

    def cmd_retry(self, command, timeout=5.0, deadline=5.0, **props):
        """Like cmd(), but retries while Python Circus refuses the command
        because a previous asynchronous one still holds the arbiter lock
        (errno 5 `arbiter is already running ...`).  Our daemon queues."""
        end = time.monotonic() + deadline
        while True:
            r = self.cmd(command, timeout=timeout, **props)
            if not (r and r.get("errno") == 5 and
                    "already running" in r.get("reason", "")):
                return r
            if time.monotonic() > end:
                return r
            time.sleep(0.05)

    def listen(self, topics=("",)):
        lst = Listener(self, topics)
        self.listeners.append(lst)
        return lst


class _Manager:
    def __init__(self, basedir):
        self.basedir = Path(basedir)
        self.daemons = []

    def __call__(self, watchers=DEFAULT_WATCHERS, circus_extra="",
                 check_delay=1, start=True, wait_ready=True):
        wd = self.basedir / ("d%d" % (len(self.daemons) + 1))
        wd.mkdir()
        d = Daemon(wd, watchers, circus_extra, check_delay)
        self.daemons.append(d)
        if start:
            d.start(wait_ready=wait_ready)
        return d

    def finish(self):
        problems = []
        for d in self.daemons:
            problems += d.stop()
        assert not problems, "\n".join(problems)


@pytest.fixture
def make_daemon(tmp_path, request):
    """Factory: make_daemon(watchers_ini, circus_extra='', check_delay=1,
    start=True) -> started Daemon.  All daemons are stopped at teardown,
    which fails if any of their processes outlived them."""
    mgr = _Manager(tmp_path)
    request.node._circus_daemons = mgr.daemons
    try:
        yield mgr
    finally:
        mgr.finish()


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory):
    """One daemon (watcher `sleeper`, 2 processes) for a whole module of
    tests that leave its state unchanged."""
    mgr = _Manager(tmp_path_factory.mktemp("shared"))
    try:
        yield mgr()
    finally:
        mgr.finish()


@pytest.fixture
def daemon(make_daemon):
    """A daemon running watcher `sleeper` (2 x sleep 3600)."""
    return make_daemon()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for i, d in enumerate(getattr(item, "_circus_daemons", [])):
            rep.sections.append(("circusd log #%d (%s)" % (i + 1, d.logfile),
                                 d.log()[-6000:]))
