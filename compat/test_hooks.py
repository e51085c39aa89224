"""Hooks given at run time, against both daemons: `set` of `hooks.<name>` makes the
watcher call the new hook, and naming it again imports its module anew (Circus reloads
it), so an edited hook takes effect without a restart of circusd."""
from conftest import wait_until

GATE = "def check(watcher, arbiter, hook_name, **kwargs):\n    return %s\n"


def test_set_gives_a_watcher_a_python_hook_and_reloads_its_module(make_daemon, tmp_path, monkeypatch):
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "gate.py").write_text(GATE % "False")
    monkeypatch.setenv("PYTHONPATH", str(modules))
    d = make_daemon("""
[watcher:w]
cmd = sleep 3600
autostart = false
""")
    # With the unmodified Python circusctl, as a user types it.
    r = d.ctl("set", "w", "hooks.before_start", "gate.check", "--waiting")
    assert (r.returncode, r.stdout.strip()) == (0, "ok"), (r.stdout, r.stderr)
    # The hook says no: the watcher stays stopped (Circus answers the start with ok, ours
    # with the reason; both leave it stopped).
    d.cmd("start", name="w", waiting=True)
    assert d.cmd("list", name="w")["pids"] == []
    assert d.cmd("status", name="w")["status"] == "stopped"
    # The module is edited and the hook named again: imported anew, it says yes.
    (modules / "gate.py").write_text(GATE % "True")
    r = d.cmd("set", name="w", options={"hooks.before_start": "gate.check"}, waiting=True)
    assert r["status"] == "ok", r
    r = d.cmd("start", name="w", waiting=True)
    assert r["status"] == "ok", r
    wait_until(lambda: len(d.cmd("list", name="w")["pids"]) == 1, msg="w's process")
    assert d.cmd("status", name="w")["status"] == "active"
