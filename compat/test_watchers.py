"""add / rm / incr / decr / set / signal / kill through circusctl (and raw)."""
import os
import signal
from pathlib import Path

import psutil
import pytest

from conftest import IS_PYTHON, PYTHON, wait_until

SIGTRAP = Path(__file__).resolve().parent / "scripts" / "sigtrap.py"


def ok(r, stdout="ok\n"):
    assert (r.returncode, r.stderr, r.stdout) == (0, "", stdout)


def err(r, stderr, rc=3):
    assert (r.returncode, r.stdout, r.stderr) == (rc, "", stderr)


def status(d, name):
    return d.cmd("status", name=name)["status"]


def dead(pids):
    return all(not psutil.pid_exists(p) or
               psutil.Process(p).status() == psutil.STATUS_ZOMBIE
               for p in pids)


def nonexistent_pid():
    pid = int(Path("/proc/sys/kernel/pid_max").read_text()) - 7
    while psutil.pid_exists(pid):
        pid -= 1
    return pid


# ---------------------------------------------------------------- add

def test_add(daemon):
    ok(daemon.ctl("add", "dyn", "sleep", "3605"))
    ok(daemon.ctl("list"), "dyn,sleeper\n")
    ok(daemon.ctl("status", "dyn"), "stopped\n")
    ok(daemon.ctl("list", "dyn"), "\n")
    ok(daemon.ctl("get", "dyn", "cmd", "numprocesses"),
       "cmd: sleep 3605\nnumprocesses: 1\n")
    ok(daemon.ctl("start", "dyn", "--waiting"))
    assert len(daemon.pids("dyn")) == 1


def test_add_start(daemon):
    ok(daemon.ctl("add", "--start", "Dyn2", "sleep", "3606"))
    wait_until(lambda: len(daemon.pids("dyn2")) == 1, msg="dyn2 running")
    ok(daemon.ctl("status", "dyn2"), "active\n")
    # status (all) keeps the case as given to add
    assert "Dyn2: active\n" in daemon.ctl("status").stdout


def test_add_duplicate_is_case_insensitive(daemon):
    r = daemon.ctl("add", "SLEEPER", "sleep", "1")
    assert r.returncode == 3 and r.stdout == ""
    assert r.stderr.startswith("error: ")
    assert r.stderr.endswith("'SLEEPER' already exist\n")
    raw = daemon.cmd("add", name="Sleeper", cmd="sleep 1")
    assert (raw["status"], raw["errno"]) == ("error", 5)
    assert raw["reason"].endswith("'Sleeper' already exist")


def test_add_argument_errors(daemon):
    err(daemon.ctl("add", "x"), "Invalid number of arguments\n", 1)
    r = daemon.cmd("add", name="x")
    assert (r["errno"], r["reason"]) == (3, "message invalid 'cmd' is missing")
    r = daemon.cmd("add", cmd="sleep 1")
    assert (r["errno"], r["reason"]) == (3, "message invalid 'name' is missing")


def test_add_raw_start_waiting_unwrapped(daemon):
    r = daemon.cmd("add", name="dyn2", cmd="sleep 3607",
                   options={"numprocesses": 2}, start=True, waiting=True)
    assert r["status"] == "ok"
    assert list(r) == ["status", "time", "started", "kept", "id"]
    assert len(r["started"]) == 2 and r["kept"] == []
    daemon.track(*r["started"])
    assert sorted(daemon.pids("dyn2")) == sorted(r["started"])


def test_add_raw_args_and_env(daemon, tmp_path):
    out = tmp_path / "out.txt"
    r = daemon.cmd("add", name="dyn", cmd="/bin/sh",
                   args=["-c", "echo $FOO > %s; exec sleep 3608" % out],
                   options={"env": {"FOO": "bar"}}, start=True, waiting=True)
    assert r["status"] == "ok"
    daemon.track(*r["started"])
    wait_until(lambda: out.exists() and out.read_text() == "bar\n")


@pytest.mark.parametrize("options,reason", [
    ({"priority": 3}, "unknown key 'priority'"),
    ({"autostart": False}, "unknown key 'autostart'"),
    ({"numprocesses": "2"}, "'numprocesses' isn't an integer"),
    ({"graceful_timeout": "x"}, "'graceful_timeout' isn't a number"),
    ({"shell": "yes"}, "'shell' isn't a valid boolean"),
    ({"env": {"A": 1}}, "'A' isn't a string"),
    ({"env": "A=1"}, "'env' isn't a valid object"),
    ({"stdout_stream": {"filename": "x"}},
     "'stdout_stream' must have a 'class' key"),
    ({"rlimit_bogus": None}, "'rlimit_bogus' isn't a valid rlimit setting"),
    ({"hooks": {"bogus": "x"}}, "Unknown hook {'bogus': 'x'}"),
])
def test_add_option_validation(daemon, options, reason):
    r = daemon.cmd("add", name="o", cmd="sleep 1", options=options)
    assert (r["status"], r["errno"], r["reason"], r["tb"]) == (
        "error", 3, reason, None)
    ok(daemon.ctl("list"), "sleeper\n")


def test_add_options_not_object(daemon):
    r = daemon.cmd("add", name="o", cmd="sleep 1", options="x")
    assert (r["errno"], r["reason"]) == (
        3, "'options' property should be an object")


# ---------------------------------------------------------------- rm

def test_rm(daemon):
    pids = daemon.pids("sleeper")
    ok(daemon.ctl("rm", "sleeper"))
    ok(daemon.ctl("list"), "\n")
    wait_until(lambda: dead(pids), msg="removed watcher's processes gone")
    ok(daemon.ctl("numwatchers"), "0\n")


def test_rm_waiting_flag_accepted(daemon):
    # --waiting/--nostop are parsed by circusctl but never sent
    pids = daemon.pids("sleeper")
    ok(daemon.ctl("rm", "sleeper", "--waiting"))
    wait_until(lambda: dead(pids))


def test_rm_errors(daemon):
    err(daemon.ctl("rm", "nope"), "error: program nope not found\n")
    err(daemon.ctl("rm"), "Invalid number of arguments\n", 1)
    r = daemon.cmd("rm")
    assert (r["errno"], r["reason"]) == (3, "message invalid 'name' is missing")


def test_rm_raw_waiting(daemon):
    pids = daemon.pids("sleeper")
    r = daemon.cmd("rm", name="SLEEPER", waiting=True)
    assert r["status"] == "ok" and list(r) == ["status", "time", "id"]
    assert daemon.watchers() == []
    wait_until(lambda: dead(pids), timeout=2)


def test_rm_nostop_leaves_processes(daemon):
    pids = daemon.pids("sleeper")
    r = daemon.cmd("rm", name="sleeper", nostop=True, waiting=True)
    assert r["status"] == "ok"
    assert daemon.watchers() == []
    try:
        assert not dead(pids)
    finally:
        for p in pids:          # our own orphans: clean them up
            os.kill(p, signal.SIGKILL)


# ---------------------------------------------------------------- incr/decr

def test_incr_decr_without_waiting_prints_ok(daemon):
    ok(daemon.ctl("incr", "sleeper"))
    wait_until(lambda: len(daemon.pids("sleeper")) == 3)
    ok(daemon.ctl("decr", "sleeper"))
    wait_until(lambda: len(daemon.pids("sleeper")) == 2)


def test_incr_decr_waiting(daemon):
    ok(daemon.ctl("incr", "sleeper", "--waiting"), "3\n")
    assert len(daemon.pids("sleeper")) == 3
    ok(daemon.ctl("incr", "sleeper", "2", "--waiting"), "5\n")
    before = daemon.pids("sleeper")
    assert len(before) == 5
    ok(daemon.ctl("decr", "sleeper", "3", "--waiting"), "2\n")
    # the oldest processes are the ones removed
    after = wait_until(lambda: (lambda p: p if len(p) == 2 else None)(
        daemon.pids("sleeper")))
    assert sorted(after) == sorted(before[-2:])
    ok(daemon.ctl("numprocesses", "sleeper"), "2\n")


def test_decr_clamps_at_zero(daemon):
    ok(daemon.ctl("decr", "sleeper", "5", "--waiting"), "0\n")
    wait_until(lambda: daemon.pids("sleeper") == [])
    assert status(daemon, "sleeper") == "active"
    ok(daemon.ctl("incr", "sleeper", "--waiting"), "1\n")


def test_incr_raw_replies(daemon):
    r = daemon.cmd("incr", name="sleeper")
    assert list(r) == ["status", "time", "id"]
    wait_until(lambda: len(daemon.pids("sleeper")) == 3)
    # the first (unwaited) incr may still hold Python's arbiter lock
    r = daemon.cmd_retry("incr", name="sleeper", nb=2, waiting=True)
    assert r["numprocesses"] == 5
    r = daemon.cmd("decr", name="sleeper", nb=3, waiting=True)
    assert r["numprocesses"] == 2


def test_incr_stopped_watcher_changes_count_only(daemon):
    ok(daemon.ctl("stop", "sleeper", "--waiting"))
    ok(daemon.ctl("incr", "sleeper", "--waiting"), "3\n")
    ok(daemon.ctl("list", "sleeper"), "\n")
    ok(daemon.ctl("start", "sleeper", "--waiting"))
    assert len(daemon.pids("sleeper")) == 3


def test_singleton(make_daemon):
    d = make_daemon("""
[watcher:single]
cmd = sleep 3600
singleton = true
""")
    msg = "This watcher is a Singleton - not changing the number of processes\n"
    ok(d.ctl("incr", "single"), msg)
    ok(d.ctl("incr", "single", "--waiting"), msg)
    ok(d.ctl("decr", "single", "--waiting"), msg)
    r = d.cmd("incr", name="single")
    assert r["status"] == "ok"
    assert (r["numprocesses"], r["singleton"]) == (1, True)
    assert list(r) == ["status", "time", "numprocesses", "singleton", "id"]
    assert len(d.pids("single")) == 1


def test_incr_errors(daemon):
    err(daemon.ctl("incr", "nope"), "error: program nope not found\n")
    err(daemon.ctl("decr"), "Invalid number of arguments\n", 1)
    r = daemon.cmd("incr")
    assert (r["errno"], r["reason"]) == (3, "message invalid 'name' is missing")


# ---------------------------------------------------------------- set

def test_set_numprocesses(daemon):
    ok(daemon.ctl("set", "sleeper", "numprocesses", "3"))
    wait_until(lambda: len(daemon.pids("sleeper")) == 3)
    ok(daemon.ctl("set", "sleeper", "numprocesses", "1", "--waiting"))
    wait_until(lambda: len(daemon.pids("sleeper")) == 1, timeout=2)
    ok(daemon.ctl("get", "sleeper", "numprocesses"), "numprocesses: 1\n")


def test_set_several_keys(daemon):
    ok(daemon.ctl("set", "sleeper", "graceful_timeout", "5",
                  "stop_signal", "INT", "--waiting"))
    ok(daemon.ctl("get", "sleeper", "graceful_timeout", "stop_signal"),
       "graceful_timeout: 5.0\nstop_signal: 2\n")


def test_set_cmd_reloads(daemon):
    old = daemon.pids("sleeper")
    ok(daemon.ctl("set", "sleeper", "cmd", "sleep 3609", "--waiting"))
    new = wait_until(lambda: (lambda p: p if len(p) == 2 and
                              not set(p) & set(old) else None)(
        daemon.pids("sleeper")))
    for p in new:
        assert psutil.Process(p).cmdline() == ["sleep", "3609"]


def test_set_env_via_raw_call(daemon):
    old = daemon.pids("sleeper")
    r = daemon.cmd("set", name="sleeper", options={"env": {"FOO": "bar"}},
                   waiting=True)
    assert r["status"] == "ok" and list(r) == ["status", "time", "id"]
    ok(daemon.ctl("get", "sleeper", "env"), "env: FOO=bar\n")
    new = wait_until(lambda: (lambda p: p if len(p) == 2 and
                              not set(p) & set(old) else None)(
        daemon.pids("sleeper")))
    for p in new:
        assert psutil.Process(p).environ().get("FOO") == "bar"


def test_set_cli_errors(daemon):
    err(daemon.ctl("set", "sleeper", "numprocesses"),
        "Invalid number of arguments\n", 1)
    err(daemon.ctl("set", "sleeper", "numprocesses", "1", "cmd"),
        "List of key/values is invalid\n", 1)
    err(daemon.ctl("set", "sleeper", "bogus", "1"), "unknown key 'bogus'\n", 1)
    err(daemon.ctl("set", "nope", "numprocesses", "1"),
        "error: program nope not found\n")


@pytest.mark.parametrize("props,reason", [
    ({"options": {"numprocesses": "3"}}, "'numprocesses' isn't an integer"),
    ({"options": {"bogus": 1}}, "unknown key 'bogus'"),
    ({"options": "x"}, "'options' property should be an object"),
    ({}, "message invalid 'options' is missing"),
    ({"options": {"stop_signal": "TERM"}}, "'stop_signal' isn't an integer"),
    ({"options": {"respawn": 1}}, "'respawn' isn't a valid boolean"),
])
def test_set_raw_errors(daemon, props, reason):
    r = daemon.cmd("set", name="sleeper", **props)
    assert (r["status"], r["errno"], r["reason"]) == ("error", 3, reason)


def test_set_singleton_numprocesses(make_daemon):
    d = make_daemon("""
[watcher:single]
cmd = sleep 3600
singleton = true
""")
    r = d.cmd("set", name="single", options={"numprocesses": 2},
              waiting=True)
    assert r["status"] == "error"
    assert r["errno"] == 5
    assert "Singleton watcher has a single process" in r["reason"]
    assert len(d.pids("single")) == 1


# ---------------------------------------------------------------- signal

SIGWATCHER = """
[watcher:sig]
cmd = %s %s %s %d
numprocesses = %d
"""


def sig_daemon(make_daemon, tmp_path, kids=0, n=1):
    out = tmp_path / "sig.log"
    d = make_daemon(SIGWATCHER % (PYTHON, SIGTRAP, out, kids, n))
    wait_until(lambda: out.exists() and
               out.read_text().count("READY") == n * (1 + kids),
               msg="sigtrap ready")
    return d, out


def lines(out):
    return [l.split() for l in out.read_text().splitlines()
            if not l.endswith("READY")]


def test_signal_pid(make_daemon, tmp_path):
    d, out = sig_daemon(make_daemon, tmp_path, n=2)
    p1, p2 = d.pids("sig")
    ok(d.ctl("signal", "sig", p1, "USR1"))
    wait_until(lambda: lines(out) == [[str(p1), "SIGUSR1"]])
    ok(d.ctl("signal", "sig", p2, "SIGUSR2"))
    ok(d.ctl("signal", "sig", p2, "1"))
    wait_until(lambda: len(lines(out)) == 3)
    assert lines(out)[1:] == [[str(p2), "SIGUSR2"], [str(p2), "SIGHUP"]]
    assert d.pids("sig") == [p1, p2]


def test_signal_all(make_daemon, tmp_path):
    d, out = sig_daemon(make_daemon, tmp_path, n=2)
    pids = d.pids("sig")
    ok(d.ctl("signal", "sig", "hup"))
    wait_until(lambda: len(lines(out)) == 2)
    assert sorted(lines(out)) == sorted([[str(p), "SIGHUP"] for p in pids])


def test_signal_children(make_daemon, tmp_path):
    d, out = sig_daemon(make_daemon, tmp_path, kids=2)
    (pid,) = d.pids("sig")
    kids = [c.pid for c in psutil.Process(pid).children()]
    assert len(kids) == 2
    # circusctl's argparse needs the flags after the positional words
    ok(d.ctl("signal", "sig", pid, "USR1", "--children"))
    wait_until(lambda: len(lines(out)) == 2)
    assert sorted(lines(out)) == sorted([[str(k), "SIGUSR1"] for k in kids])


def test_signal_recursive(make_daemon, tmp_path):
    d, out = sig_daemon(make_daemon, tmp_path, kids=1)
    (pid,) = d.pids("sig")
    (kid,) = [c.pid for c in psutil.Process(pid).children()]
    ok(d.ctl("signal", "sig", pid, "USR2", "--recursive"))
    wait_until(lambda: len(lines(out)) == 2)
    assert sorted(lines(out)) == sorted([[str(pid), "SIGUSR2"],
                                         [str(kid), "SIGUSR2"]])


def test_signal_raw(make_daemon, tmp_path):
    d, out = sig_daemon(make_daemon, tmp_path, kids=1)
    (pid,) = d.pids("sig")
    (kid,) = [c.pid for c in psutil.Process(pid).children()]
    r = d.cmd("signal", name="sig", signum=10, pid=pid)
    assert r["status"] == "ok" and list(r) == ["status", "time", "id"]
    r = d.cmd("signal", name="sig", signum="USR2", pid=pid, childpid=kid)
    assert r["status"] == "ok"
    wait_until(lambda: len(lines(out)) == 2)
    assert sorted(lines(out)) == sorted([[str(pid), "SIGUSR1"],
                                         [str(kid), "SIGUSR2"]])


def test_signal_unknown_pid_is_ignored(daemon):
    r = daemon.cmd("signal", name="sleeper", signum="USR1",
                   pid=nonexistent_pid())
    assert r["status"] == "ok"
    assert len(daemon.pids("sleeper")) == 2


def test_signal_errors(daemon):
    err(daemon.ctl("signal", "sleeper"), "Invalid number of arguments\n", 1)
    err(daemon.ctl("signal", "nope", "HUP"), "error: program nope not found\n")
    r = daemon.cmd("signal", name="sleeper")
    assert (r["errno"], r["reason"]) == (3, "message invalid 'signum' is missing")
    # childpid without pid, bad signal names, --children on an unmanaged pid:
    # unexpected exceptions -> errno 5 (reason text is implementation's own)
    r = daemon.cmd("signal", name="sleeper", signum="USR1", childpid=5)
    assert (r["status"], r["errno"]) == ("error", 5)
    assert "cannot specify childpid without pid" in r["reason"]
    r = daemon.cmd("signal", name="sleeper", signum="SIGBOGUS")
    # Circus answers errno 5 (a Python AttributeError); we answer the errno 3
    # `signal invalid` it meant to (README compatibility notes).
    if IS_PYTHON:
        assert (r["status"], r["errno"]) == ("error", 5)
    else:
        assert (r["status"], r["errno"], r["reason"]) == ("error", 3, "signal invalid")
    r = daemon.cmd("signal", name="sleeper", signum="USR1",
                   pid=nonexistent_pid(), children=True)
    assert (r["status"], r["errno"]) == ("error", 5)
    c = daemon.ctl("signal", "sleeper", "BOGUS")
    assert c.returncode == 3 and c.stdout == ""
    assert c.stderr.startswith("error: ")
    assert len(daemon.pids("sleeper")) == 2


# ---------------------------------------------------------------- kill

def test_kill_all(make_daemon):
    # two deaths within a second: keep a default-on flapping detector out
    # of the way (check_flapping is the documented per-watcher switch)
    daemon = make_daemon("""
[watcher:sleeper]
cmd = sleep 3600
numprocesses = 2
check_flapping = false
""")
    old = daemon.pids("sleeper")
    ok(daemon.ctl("kill", "sleeper"))
    wait_until(lambda: dead(old), msg="killed")
    # respawned (Python: at the next check_delay tick)
    new = wait_until(lambda: (lambda p: p if len(p) == 2 else None)(
        daemon.pids("sleeper")), timeout=5, msg="respawn")
    assert not set(new) & set(old)
    assert status(daemon, "sleeper") == "active"


def test_kill_one_pid_with_signum(daemon):
    p1, p2 = daemon.pids("sleeper")
    proc = psutil.Process(p1)
    ok(daemon.ctl("kill", "sleeper", p1, "--signum", "INT"))
    wait_until(lambda: dead([p1]))
    assert psutil.Process(p2).is_running()
    new = wait_until(lambda: (lambda p: p if len(p) == 2 else None)(
        daemon.pids("sleeper")), timeout=5, msg="respawn")
    assert p2 in new and p1 not in new
    del proc


def test_kill_raw_waiting(daemon):
    p1, p2 = daemon.pids("sleeper")
    r = daemon.cmd("kill", name="sleeper", pid=str(p1), signum="SIGINT",
                   waiting=True)
    assert r["status"] == "ok" and list(r) == ["status", "time", "id"]
    assert dead([p1])
    assert psutil.Process(p2).is_running()


def test_signal_flag_before_signum_is_rejected_by_circusctl(daemon):
    # the documented order `signal <name> <pid> --children <signum>` does
    # not parse (client-side argparse error)
    pid = daemon.pids("sleeper")[0]
    r = daemon.ctl("signal", "sleeper", pid, "--children", "USR1")
    assert r.returncode == 2
    assert r.stderr.endswith("error: unrecognized arguments: USR1\n")


@pytest.mark.python_only
def test_kill_unknown_watcher(daemon):
    # `kill` resolves the watcher inside its coroutine: without waiting the
    # reply is a plain ok; with waiting the failure surfaces as errno 6.
    ok(daemon.ctl("kill", "nope"))
    r = daemon.cmd("kill", name="nope", waiting=True)
    assert (r["status"], r["errno"], r["reason"]) == (
        "error", 6, "server error")


@pytest.mark.swift_only
def test_kill_unknown_watcher_is_not_found(daemon):
    # We check the name up front, like every other command (README).
    err(daemon.ctl("kill", "nope"), "error: program nope not found\n")
    r = daemon.cmd("kill", name="nope", waiting=True)
    assert (r["status"], r["errno"], r["reason"]) == (
        "error", 3, "program nope not found")


def test_kill_errors(daemon):
    err(daemon.ctl("kill"), "Invalid number of arguments\n", 1)
    r = daemon.cmd("kill", name="sleeper", pid="abc")
    assert (r["status"], r["errno"]) == ("error", 5)
    c = daemon.ctl("kill", "sleeper", "abc")
    assert c.returncode == 3 and c.stderr.startswith("error: ")
    assert len(daemon.pids("sleeper")) == 2
