"""reloadconfig: diffing the edited circus.ini against the running arbiter."""
import psutil
import pytest

from conftest import wait_until

BASE = """
[watcher:np]
cmd = sleep 3600
numprocesses = 2

[watcher:change]
cmd = sleep 3601

[watcher:gone]
cmd = sleep 3602
"""


def ok(r, stdout="ok\n"):
    assert (r.returncode, r.stderr, r.stdout) == (0, "", stdout)


def edit(d, old, new):
    text = d.config.read_text()
    assert old in text
    d.config.write_text(text.replace(old, new))


def dead(pids):
    return all(not psutil.pid_exists(p) or
               psutil.Process(p).status() == psutil.STATUS_ZOMBIE
               for p in pids)


def test_reloadconfig_diff(make_daemon):
    d = make_daemon(BASE)
    np_old = d.pids("np")
    change_old = d.pids("change")
    gone_old = d.pids("gone")
    text = d.config.read_text()
    text = text.replace("numprocesses = 2", "numprocesses = 3")
    text = text.replace("sleep 3601", "sleep 3611")
    text = text.replace("[watcher:gone]\ncmd = sleep 3602\n", "")
    text += "\n[watcher:new]\ncmd = sleep 3603\n"
    d.config.write_text(text)
    ok(d.ctl("reloadconfig", "--waiting"))
    # removed watcher disappears, new one appears (and is started)
    ok(d.ctl("list"), "change,new,np\n")
    wait_until(lambda: dead(gone_old), msg="removed watcher's process gone")
    wait_until(lambda: len(d.pids("new")) == 1, msg="new watcher started")
    ok(d.ctl("status", "new"), "active\n")
    # numprocesses-only change: resized in place, old pids kept
    np_new = wait_until(lambda: (lambda p: p if len(p) == 3 else None)(
        d.pids("np")))
    assert set(np_old) <= set(np_new)
    # cmd change: that watcher restarted with the new command
    change_new = d.pids("change")
    assert len(change_new) == 1 and change_new != change_old
    assert psutil.Process(change_new[0]).cmdline() == ["sleep", "3611"]
    ok(d.ctl("get", "change", "cmd"), "cmd: sleep 3611\n")


def test_reloadconfig_shrink_in_place(make_daemon):
    d = make_daemon(BASE)
    np_old = d.pids("np")
    others = d.pids("change") + d.pids("gone")
    edit(d, "numprocesses = 2", "numprocesses = 1")
    ok(d.ctl("reloadconfig", "--waiting"))
    np_new = wait_until(lambda: (lambda p: p if len(p) == 1 else None)(
        d.pids("np")))
    assert np_new[0] in np_old
    assert d.pids("change") + d.pids("gone") == others


def test_reloadconfig_unchanged_is_noop(make_daemon):
    d = make_daemon(BASE)
    before = {w: d.pids(w) for w in ("np", "change", "gone")}
    ok(d.ctl("reloadconfig", "--waiting"))
    assert {w: d.pids(w) for w in ("np", "change", "gone")} == before


def test_reloadconfig_without_waiting(make_daemon):
    d = make_daemon(BASE)
    edit(d, "[watcher:gone]\ncmd = sleep 3602\n", "")
    r = d.cmd("reloadconfig")
    assert r["status"] == "ok" and list(r) == ["status", "time", "id"]
    wait_until(lambda: d.watchers() == ["change", "np"])


def test_reloadconfig_env_change_restarts(make_daemon):
    d = make_daemon(BASE + "\n[env:change]\nFOO = 1\n")
    change_old = d.pids("change")
    np_old = d.pids("np")
    edit(d, "FOO = 1", "FOO = 2")
    ok(d.ctl("reloadconfig", "--waiting"))
    new = wait_until(lambda: (lambda p: p if p and p != change_old else None)(
        d.pids("change")))
    assert psutil.Process(new[0]).environ()["FOO"] == "2"
    assert d.pids("np") == np_old


@pytest.mark.python_only
def test_reloadconfig_broken_file(make_daemon):
    # Ours answers the file:line reason instead: test_reasons.py.
    d = make_daemon(BASE)
    before = {w: d.pids(w) for w in ("np", "change", "gone")}
    good = d.config.read_text()
    d.config.write_text(good + "\n[watcher:bad]\ncmd = sleep 1\n"
                        "numprocesses = many\n")
    r = d.cmd("reloadconfig", waiting=True)
    assert (r["status"], r["errno"], r["reason"]) == (
        "error", 6, "server error")
    c = d.ctl("reloadconfig", "--waiting")
    assert (c.returncode, c.stdout, c.stderr) == (3, "", "error: server error\n")
    # the daemon keeps running with the old configuration
    ok(d.ctl("list"), "change,gone,np\n")
    assert {w: d.pids(w) for w in ("np", "change", "gone")} == before


@pytest.mark.python_only
def test_reloadconfig_global_change_restarts_all_without_applying(make_daemon):
    # Circus quirk: a changed [circus] section stops and starts every
    # watcher but the new values are not applied.
    d = make_daemon(BASE)
    before = {w: d.pids(w) for w in ("np", "change", "gone")}
    edit(d, "check_delay = 1", "check_delay = 2")
    ok(d.ctl("reloadconfig", "--waiting"))
    wait_until(lambda: all(
        len(d.pids(w)) == len(p) and not set(d.pids(w)) & set(p)
        for w, p in before.items()), msg="all watchers restarted")
    ok(d.ctl("globaloptions", "check_delay"), "check_delay: 1.0\n")
