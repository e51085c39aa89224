"""Where our daemon deliberately differs from Python Circus (the README's compatibility notes).

`swift_only` tests describe OUR behaviour (skipped against Python circusd);
`python_only` tests pin the Circus quirk we do not copy (skipped against ours).
"""
import os
import signal
import time

import psutil
import pytest

from conftest import PYTHON, wait_until

CONF = """
[watcher:sleeper]
cmd = sleep 3600
numprocesses = 2

[watcher:mark]
cmd = sleep 3601
"""

STUBBORN = CONF + """
[watcher:stubborn]
cmd = %s -c "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(3600)"
graceful_timeout = 2
""" % PYTHON


def ev(lst, watcher="sleeper"):
    pre = "watcher.%s." % watcher
    return [(t[len(pre):], p) for t, p in lst.snapshot() if t.startswith(pre)]


def marker(d, lst):
    n = len([1 for t in lst.topics_seen() if t == "watcher.mark.updated"])
    r = d.cmd_retry("set", name="mark", options={"graceful_timeout": 30.0})
    assert r["status"] == "ok"
    lst.wait_for("watcher.mark.updated", count=n + 1)


def dead(pids):
    return all(not psutil.pid_exists(p) or
               psutil.Process(p).status() == psutil.STATUS_ZOMBIE
               for p in pids)


# ------------------------------------------------ event-driven reap/respawn

@pytest.mark.swift_only
def test_killed_child_respawned_at_once(make_daemon):
    d = make_daemon(CONF, check_delay=30)
    lst = d.listen(["watcher.sleeper."])
    pid = d.pids("sleeper")[0]
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    reap = lst.wait_for("watcher.sleeper.reap", timeout=3)[0][1]
    assert (reap["process_pid"], reap["exit_code"]) == (pid, -9)
    lst.wait_for("watcher.sleeper.spawn", timeout=3)
    assert time.monotonic() - t0 < 3      # not after check_delay (30 s)
    wait_until(lambda: len(d.pids("sleeper")) == 2, timeout=2)


@pytest.mark.python_only
def test_killed_child_waits_for_check_delay_tick(make_daemon):
    d = make_daemon(CONF, check_delay=30)
    pid = d.pids("sleeper")[0]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: pid not in d.pids("sleeper"), timeout=2)
    time.sleep(1.0)
    # dead but not reaped: `list` drops it, `numprocesses` still counts it
    assert len(d.pids("sleeper")) == 1
    assert d.cmd("numprocesses", name="sleeper")["numprocesses"] == 2
    assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


# ------------------------------------------------ reap for every process end

@pytest.mark.swift_only
def test_decr_publishes_reap(make_daemon):
    d = make_daemon(CONF)
    lst = d.listen(["watcher."])
    old = d.pids("sleeper")
    d.cmd("decr", name="sleeper", waiting=True)
    reap = lst.wait_for("watcher.sleeper.reap")[0][1]
    assert reap["process_pid"] == old[0]
    assert reap["exit_code"] == -15


@pytest.mark.python_only
def test_decr_publishes_no_reap(make_daemon):
    d = make_daemon(CONF)
    lst = d.listen(["watcher."])
    d.cmd("decr", name="sleeper", waiting=True)
    lst.wait_for("watcher.sleeper.kill")
    time.sleep(1.2)                    # let a check_delay tick pass
    marker(d, lst)
    assert [k for k, _ in ev(lst)] == ["kill"]


@pytest.mark.swift_only
def test_kill_command_publishes_reap_and_respawns(make_daemon):
    d = make_daemon(CONF, check_delay=30)
    lst = d.listen(["watcher."])
    pid = d.pids("sleeper")[0]
    d.cmd("kill", name="sleeper", pid=pid, waiting=True)
    reap = lst.wait_for(lambda t, p: t == "watcher.sleeper.reap" and
                        p["process_pid"] == pid, timeout=3)[0][1]
    assert reap["exit_code"] == -15
    lst.wait_for("watcher.sleeper.spawn", timeout=3)
    seq = [k for k, _ in ev(lst)]
    assert seq[:3] == ["kill", "reap", "spawn"]


@pytest.mark.python_only
def test_kill_command_no_reap_respawn_on_tick(make_daemon):
    d = make_daemon(CONF)
    lst = d.listen(["watcher."])
    pid = d.pids("sleeper")[0]
    d.cmd("kill", name="sleeper", pid=pid, waiting=True)
    lst.wait_for("watcher.sleeper.spawn", timeout=5)
    marker(d, lst)
    assert [k for k, _ in ev(lst)] == ["kill", "spawn"]


@pytest.mark.swift_only
def test_graceful_reload_publishes_reap_for_old(make_daemon):
    d = make_daemon(CONF)
    lst = d.listen(["watcher."])
    old = d.pids("sleeper")
    d.cmd("reload", name="sleeper", waiting=True)
    lst.wait_for("watcher.sleeper.reload")
    reaps = lst.wait_for("watcher.sleeper.reap", count=2)
    assert sorted(p["process_pid"] for _, p in reaps) == sorted(old)


@pytest.mark.python_only
def test_graceful_reload_publishes_no_reap(make_daemon):
    d = make_daemon(CONF)
    lst = d.listen(["watcher."])
    d.cmd("reload", name="sleeper", waiting=True)
    lst.wait_for("watcher.sleeper.reload")
    time.sleep(1.2)
    marker(d, lst)
    assert "reap" not in [k for k, _ in ev(lst)]


# ------------------------------------------------ command queueing

def _stubborn_stop(d):
    wait_until(lambda: "ready" in d.outfile.read_text())
    pid = d.pids("stubborn")
    r = d.cmd("stop", name="stubborn")       # takes ~graceful_timeout (2 s)
    assert r["status"] == "ok"
    return pid


@pytest.mark.swift_only
def test_commands_are_queued_not_refused(make_daemon):
    d = make_daemon(STUBBORN)
    pid = _stubborn_stop(d)
    r = d.ctl("incr", "sleeper", "--waiting", timeout=10)
    assert (r.returncode, r.stderr, r.stdout) == (0, "", "3\n")
    assert len(d.pids("sleeper")) == 3
    # (whether incr waited for the unrelated stop is up to the daemon)
    wait_until(lambda: d.cmd("status", name="stubborn")["status"] ==
               "stopped", timeout=5)
    assert dead(pid)


@pytest.mark.python_only
def test_concurrent_command_refused(make_daemon):
    d = make_daemon(STUBBORN)
    pid = _stubborn_stop(d)
    r = d.ctl("incr", "sleeper")
    assert (r.returncode, r.stdout, r.stderr) == (
        3, "", "error: arbiter is already running watcher_stop command\n")
    raw = d.cmd("incr", name="sleeper")
    assert (raw["errno"], raw["tb"]) == (5, None)
    wait_until(lambda: dead(pid), timeout=5)


# ------------------------------------------------ SIGUSR1

@pytest.mark.swift_only
def test_sigusr1_does_not_kill_daemon(daemon):
    pids = daemon.pids("sleeper")
    daemon.proc.send_signal(signal.SIGUSR1)
    time.sleep(0.5)
    assert daemon.alive()
    r = daemon.ctl("list", "sleeper")
    assert r.returncode == 0
    assert sorted(int(p) for p in r.stdout.split(",")) == sorted(pids)


@pytest.mark.python_only
def test_sigusr1_kills_python_daemon(daemon):
    pids = daemon.pids("sleeper")
    daemon.proc.send_signal(signal.SIGUSR1)
    daemon.proc.wait(5)
    assert daemon.proc.returncode == -signal.SIGUSR1
    # children are orphaned: clean them up ourselves
    assert not dead(pids)
    for p in pids:
        os.kill(p, signal.SIGKILL)


# ------------------------------------------------ shell = true

SHELL = """
[watcher:sh]
cmd = printf '%%s' "$FOO" > %s && exec sleep 3600
shell = true
respawn = false

[env:sh]
FOO = shell-ok
"""


@pytest.mark.swift_only
def test_shell_true_uses_the_shell(make_daemon, tmp_path):
    out = tmp_path / "sh.out"
    d = make_daemon(SHELL % out)
    wait_until(lambda: out.exists() and out.read_text() == "shell-ok")
    (pid,) = wait_until(lambda: d.pids("sh"))
    assert psutil.Process(pid).cmdline() == ["sleep", "3600"]


@pytest.mark.python_only
def test_shell_true_quotes_every_token(make_daemon, tmp_path):
    out = tmp_path / "sh.out"
    d = make_daemon(SHELL % out, wait_ready=False)
    # each token is shlex-quoted: printf gets '$FOO' '>' PATH '&&' 'exec'
    # ... as literal arguments, prints them to the inherited stdout and
    # exits; no expansion, nothing is redirected
    wait_until(lambda: "$FOO>%s&&execsleep3600" % out
               in d.outfile.read_text())
    assert not out.exists()


# ------------------------------------------------ the __name__ artefact

ENVCONF = """
[watcher:sleeper]
cmd = sleep 3600

[env]
FOO = bar
"""


@pytest.mark.swift_only
def test_no_name_artefact(make_daemon):
    d = make_daemon(ENVCONF)
    opts = d.cmd("options", name="sleeper")["options"]
    assert "__name__" not in opts
    assert opts["env"] == {"FOO": "bar"}
    (pid,) = d.pids("sleeper")
    assert psutil.Process(pid).environ() == {"FOO": "bar"}


@pytest.mark.python_only
def test_name_artefact(make_daemon):
    d = make_daemon(ENVCONF)
    opts = d.cmd("options", name="sleeper")["options"]
    assert opts["__name__"] == "watcher:sleeper"
    assert opts["env"] == {"__name__": "env", "FOO": "bar"}
    r = d.ctl("get", "sleeper", "env")
    assert r.stdout == "env: FOO=bar,__name__=env\n"
    (pid,) = d.pids("sleeper")
    assert psutil.Process(pid).environ() == {"__name__": "env", "FOO": "bar"}
