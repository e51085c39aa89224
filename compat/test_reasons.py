"""Failure reasons in replies, reload of stopped watchers, reloadconfig of a
broken file: what circusctl prints."""
import signal

import pytest

from conftest import wait_until

MISSING = """
[watcher:missing]
cmd = /nonexistent/binary
autostart = false
"""

EXEC_REASON = "exec '/nonexistent/binary': No such file or directory"

# Three stopped watchers first in the reload order (higher priority), a
# running one last.
KEEP_STOPPED = """
[watcher:opstopped]
cmd = sleep 3610
priority = 10

[watcher:manual]
cmd = sleep 3611
autostart = false
priority = 10

[watcher:oneshot]
cmd = true
respawn = false
priority = 10

[watcher:running]
cmd = sleep 3612
numprocesses = 2
"""

STOPPED = ("opstopped", "manual", "oneshot")


def ok(r, stdout="ok\n"):
    assert (r.returncode, r.stderr, r.stdout) == (0, "", stdout)


def err(r, stderr, rc=3):
    assert (r.returncode, r.stdout, r.stderr) == (rc, "", stderr)


def status(d, name):
    return d.cmd("status", name=name)["status"]


def kinds(lst, watcher):
    prefix = "watcher.%s." % watcher
    return [t[len(prefix):] for t in lst.topics_seen() if t.startswith(prefix)]


# ------------------------------------------------------ reload of a stopped watcher

def test_reload_stopped_watcher_publishes_spawn_start_reload(make_daemon):
    d = make_daemon("""
[watcher:lazy]
cmd = sleep 3613
numprocesses = 2
autostart = false
""")
    lst = d.listen(["watcher.lazy."])
    ok(d.ctl("reload", "lazy"))
    lst.wait_for("watcher.lazy.reload")
    assert kinds(lst, "lazy") == ["spawn", "spawn", "start", "reload"]
    assert status(d, "lazy") == "active"


# ---------------------------------------------------------------- reasons

@pytest.mark.swift_only
def test_start_waiting_of_missing_binary_prints_the_exec_error(make_daemon):
    # Circus answers ok (the failure only reaches its log); we answer errno 6
    # with the cause, which circusctl prints as it is.
    d = make_daemon(MISSING)
    err(d.ctl("start", "missing", "--waiting"), "error: %s\n" % EXEC_REASON)
    r = d.cmd("start", name="missing", waiting=True)
    assert (r["status"], r["errno"], r["reason"]) == ("error", 6, EXEC_REASON)
    err(d.ctl("restart", "missing", "--waiting"), "error: %s\n" % EXEC_REASON)
    err(d.ctl("reload", "missing", "--waiting"), "error: %s\n" % EXEC_REASON)
    assert status(d, "missing") == "stopped"


@pytest.mark.python_only
def test_start_waiting_of_missing_binary_answers_ok(make_daemon):
    d = make_daemon(MISSING)
    ok(d.ctl("start", "missing", "--waiting"))
    assert status(d, "missing") == "stopped"


def _break_config(d):
    """Appends a watcher with a bad value; returns its file:line reason."""
    text = d.config.read_text()
    if not text.endswith("\n"):
        text += "\n"
    text += "\n[watcher:bad]\ncmd = sleep 3614\nnumprocesses = many\n"
    d.config.write_text(text)
    line = text.splitlines().index("numprocesses = many") + 1
    return "%s:%d: [watcher:bad] numprocesses: 'many' is not an integer" % (
        d.config, line)


@pytest.mark.swift_only
@pytest.mark.parametrize("waiting", [False, True])
def test_reloadconfig_of_broken_file_prints_file_line_reason(make_daemon,
                                                             waiting):
    # Circus answers ok without waiting and a bare `server error` with it.
    d = make_daemon()
    before = d.pids("sleeper")
    reason = _break_config(d)
    args = ["reloadconfig"] + (["--waiting"] if waiting else [])
    err(d.ctl(*args), "error: %s\n" % reason)
    r = d.cmd("reloadconfig", waiting=waiting)
    assert (r["status"], r["errno"], r["reason"]) == ("error", 6, reason)
    # a later job over every watcher runs after anything reloadconfig queued
    ok(d.ctl("start", "--waiting"))
    ok(d.ctl("list"), "sleeper\n")
    assert d.pids("sleeper") == before


# ------------------------------------------ reload-all and SIGHUP keep a stop

def _prepare(d):
    """opstopped stopped by the operator, manual never started, oneshot
    finished, running active; returns the pids of running."""
    running = wait_until(lambda: (lambda p: p if len(p) == 2 else None)(
        d.pids("running")), msg="running's 2 pids")
    wait_until(lambda: status(d, "oneshot") == "stopped", msg="oneshot done")
    ok(d.ctl("stop", "opstopped", "--waiting"))
    return running


@pytest.mark.swift_only
def test_reload_all_keeps_stopped_watchers_stopped(make_daemon):
    d = make_daemon(KEEP_STOPPED)
    old = _prepare(d)
    lst = d.listen([""])
    ok(d.ctl("reload", "--waiting"))
    lst.wait_for("watcher.running.reload")
    new = d.pids("running")
    assert len(new) == 2 and not set(new) & set(old)
    for name in STOPPED:
        assert status(d, name) == "stopped", name
        assert kinds(lst, name) == [], name


@pytest.mark.swift_only
def test_sighup_keeps_stopped_watchers_stopped(make_daemon):
    d = make_daemon(KEEP_STOPPED)
    old = _prepare(d)
    lst = d.listen([""])
    d.proc.send_signal(signal.SIGHUP)
    # running is last in the reload order: its reload event ends the pass
    lst.wait_for("watcher.running.reload")
    new = wait_until(lambda: (lambda p: p if len(p) == 2 and
                              not set(p) & set(old) else None)(
        d.pids("running")), msg="running's new pids")
    assert len(new) == 2
    for name in STOPPED:
        assert status(d, name) == "stopped", name
        assert kinds(lst, name) == [], name


@pytest.mark.python_only
def test_reload_all_starts_stopped_watchers(make_daemon):
    # Circus reloads every watcher, and reloading a stopped one starts it,
    # even one with autostart = false.
    d = make_daemon(KEEP_STOPPED)
    _prepare(d)
    ok(d.ctl("reload", "--waiting"))
    assert status(d, "opstopped") == "active"
    assert status(d, "manual") == "active"
