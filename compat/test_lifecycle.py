"""start / stop / restart / reload / quit through circusctl."""

import psutil

from conftest import PYTHON, wait_until

MULTI = """
[watcher:web1]
cmd = sleep 3600

[watcher:web2]
cmd = sleep 3601

[watcher:other]
cmd = sleep 3602
numprocesses = 2

[watcher:manual]
cmd = sleep 3603
autostart = false
"""


def ok(r, stdout="ok\n"):
    assert (r.returncode, r.stderr, r.stdout) == (0, "", stdout)


def err(r, stderr, rc=3):
    assert (r.returncode, r.stdout, r.stderr) == (rc, "", stderr)


def status(d, name):
    return d.cmd("status", name=name)["status"]


def statuses(d):
    return d.cmd("status")["statuses"]


def dead(pids):
    return all(not psutil.pid_exists(p) or
               psutil.Process(p).status() == psutil.STATUS_ZOMBIE
               for p in pids)


# ---------------------------------------------------------------- stop/start

def test_stop_and_start_one(daemon):
    pids = daemon.pids("sleeper")
    ok(daemon.ctl("stop", "sleeper"))
    wait_until(lambda: status(daemon, "sleeper") == "stopped",
               msg="sleeper stopped")
    wait_until(lambda: dead(pids), msg="old processes gone")
    ok(daemon.ctl("list", "sleeper"), "\n")
    ok(daemon.ctl("start", "sleeper"))
    wait_until(lambda: len(daemon.pids("sleeper")) == 2, msg="2 pids")
    assert status(daemon, "sleeper") == "active"


def test_stop_start_waiting(daemon):
    old = daemon.pids("sleeper")
    ok(daemon.ctl("stop", "sleeper", "--waiting"))
    assert status(daemon, "sleeper") == "stopped"
    assert daemon.pids("sleeper") == []
    wait_until(lambda: dead(old), timeout=2)
    ok(daemon.ctl("start", "sleeper", "--waiting"))
    assert status(daemon, "sleeper") == "active"
    new = daemon.pids("sleeper")
    assert len(new) == 2 and not set(new) & set(old)


def test_start_stop_raw_payloads(daemon):
    r = daemon.cmd("stop", name="sleeper", waiting=True)
    assert r["status"] == "ok" and r["info"] is None
    assert list(r) == ["status", "time", "info", "id"]
    r = daemon.cmd("start", name="sleeper", waiting=True)
    assert r["status"] == "ok"
    assert sorted(r["info"]) == ["kept", "started"]
    assert r["info"]["kept"] == [] and len(r["info"]["started"]) == 2
    started = r["info"]["started"]
    r = daemon.cmd("start", name="sleeper", waiting=True)
    assert r["info"] == {"started": [], "kept": started}
    r = daemon.cmd("restart", name="sleeper", waiting=True)
    assert sorted(r["info"]["stopped"]) == sorted(started)
    assert len(r["info"]["started"]) == 2 and r["info"]["kept"] == []
    daemon.track(*r["info"]["started"])


def test_start_stop_without_waiting_reply_is_bare(daemon):
    r = daemon.cmd("stop", name="sleeper")
    assert list(r) == ["status", "time", "id"] and r["status"] == "ok"
    wait_until(lambda: status(daemon, "sleeper") == "stopped")
    r = daemon.cmd("start", name="sleeper")
    assert list(r) == ["status", "time", "id"] and r["status"] == "ok"
    wait_until(lambda: len(daemon.pids("sleeper")) == 2)


def test_stop_unknown(daemon):
    err(daemon.ctl("stop", "nope"), "error: program nope not found\n")
    err(daemon.ctl("start", "nope"), "error: program nope not found\n")
    err(daemon.ctl("restart", "nope"), "error: program nope not found\n")


def test_stop_glob(make_daemon):
    d = make_daemon(MULTI)
    ok(d.ctl("stop", "web*", "--waiting"))
    assert statuses(d) == {"web1": "stopped", "web2": "stopped",
                           "other": "active", "manual": "stopped"}
    # several matches -> arbiter path, empty payload
    r = d.cmd("start", name="WEB?", waiting=True, match="glob")
    assert list(r) == ["status", "time", "id"]
    assert statuses(d)["web1"] == "active" and statuses(d)["web2"] == "active"


def test_glob_single_match_uses_watcher_path(make_daemon):
    d = make_daemon(MULTI)
    r = d.cmd("stop", name="oth*", waiting=True)
    assert r["info"] is None
    r = d.cmd("start", name="oth*", waiting=True)
    assert len(r["info"]["started"]) == 2
    d.track(*r["info"]["started"])


def test_match_simple(make_daemon):
    d = make_daemon(MULTI)
    err(d.ctl("stop", "web*", "--match", "simple"),
        "error: program web* not found\n")
    ok(d.ctl("stop", "WEB1", "--match", "simple", "--waiting"))
    assert statuses(d)["web1"] == "stopped"
    assert statuses(d)["web2"] == "active"


def test_match_regex(make_daemon):
    d = make_daemon(MULTI)
    # anchored at the start only
    err(d.ctl("stop", "eb", "--match", "regex"), "error: program eb not found\n")
    ok(d.ctl("stop", "web[12]", "--match", "regex", "--waiting"))
    st = statuses(d)
    assert st["web1"] == st["web2"] == "stopped"
    assert st["other"] == "active"
    ok(d.ctl("start", "w", "--match", "regex", "--waiting"))
    st = statuses(d)
    assert st["web1"] == st["web2"] == "active"


def test_unknown_match_method(make_daemon):
    d = make_daemon(MULTI)
    err(d.ctl("stop", "web1", "--match", "fuzzy"),
        "error: unknown match method fuzzy\n")
    r = d.cmd("start", name="x", match="fuzzy")
    assert (r["status"], r["errno"], r["reason"]) == (
        "error", 3, "unknown match method fuzzy")
    err(d.ctl("start", "zzz*"), "error: program zzz* not found\n")


def test_stop_all_start_all_respects_autostart(make_daemon):
    d = make_daemon(MULTI)
    ok(d.ctl("stop", "--waiting"))
    assert set(statuses(d).values()) == {"stopped"}
    # the daemon itself keeps running
    ok(d.ctl("numwatchers"), "4\n")
    ok(d.ctl("start", "--waiting"))
    assert statuses(d) == {"web1": "active", "web2": "active",
                           "other": "active", "manual": "stopped"}


def test_start_exact_name_ignores_autostart(make_daemon):
    d = make_daemon(MULTI)
    ok(d.ctl("start", "manual", "--waiting"))
    assert status(d, "manual") == "active"
    assert len(d.pids("manual")) == 1


def test_multi_match_start_skips_autostart_false(make_daemon):
    d = make_daemon(MULTI + """
[watcher:mine]
cmd = sleep 3604
""")
    ok(d.ctl("stop", "mine", "--waiting"))
    ok(d.ctl("start", "m*", "--waiting"))
    assert status(d, "mine") == "active"
    assert status(d, "manual") == "stopped"


def test_restart_one(daemon):
    old = daemon.pids("sleeper")
    ok(daemon.ctl("restart", "sleeper", "--waiting"))
    new = daemon.pids("sleeper")
    assert len(new) == 2 and not set(new) & set(old)
    wait_until(lambda: dead(old), timeout=2)


def test_restart_glob(make_daemon):
    d = make_daemon(MULTI)
    old = d.pids("web1") + d.pids("web2")
    other = d.pids("other")
    ok(d.ctl("restart", "web*", "--waiting"))
    new = d.pids("web1") + d.pids("web2")
    assert len(new) == 2 and not set(new) & set(old)
    assert d.pids("other") == other


def test_restart_arbiter_rereads_config(make_daemon):
    d = make_daemon()
    old = d.pids("sleeper")
    d.config.write_text(d.config.read_text().replace(
        "numprocesses = 2", "numprocesses = 3"))
    ok(d.ctl("restart"))
    wait_until(lambda: len(d.pids("sleeper")) == 3, timeout=10,
               msg="arbiter restarted with 3 processes")
    assert d.alive()
    assert not set(d.pids("sleeper")) & set(old)
    wait_until(lambda: dead(old), timeout=2)
    # same daemon process
    assert d.cmd("dstats")["info"]["pid"] == d.proc.pid


# ---------------------------------------------------------------- reload

def test_reload_graceful(daemon):
    old = daemon.pids("sleeper")
    ok(daemon.ctl("reload", "sleeper", "--waiting"))
    new = daemon.pids("sleeper")
    assert len(new) == 2 and not set(new) & set(old)
    wait_until(lambda: dead(old), timeout=3)
    assert status(daemon, "sleeper") == "active"


def test_reload_raw_payload(daemon):
    old = daemon.pids("sleeper")
    r = daemon.cmd("reload", name="sleeper", waiting=True)
    assert r["status"] == "ok"
    info = r["info"]
    assert sorted(info["stopped"]) == sorted(old)
    assert len(info["started"]) == 2 and info["kept"] == []
    daemon.track(*info["started"])


def test_reload_without_waiting(daemon):
    old = daemon.pids("sleeper")
    ok(daemon.ctl("reload", "sleeper"))
    wait_until(lambda: (len(daemon.pids("sleeper")) == 2 and
                        not set(daemon.pids("sleeper")) & set(old)),
               msg="new processes")


def test_reload_sequential(daemon):
    old = daemon.pids("sleeper")
    ok(daemon.ctl("reload", "sleeper", "--sequential", "--waiting"))
    new = daemon.pids("sleeper")
    assert len(new) == 2 and not set(new) & set(old)
    wait_until(lambda: dead(old), timeout=2)


def test_reload_terminate(daemon):
    old = daemon.pids("sleeper")
    ok(daemon.ctl("reload", "sleeper", "--terminate", "--waiting"))
    new = daemon.pids("sleeper")
    assert len(new) == 2 and not set(new) & set(old)


def test_reload_all(make_daemon):
    d = make_daemon(MULTI)
    old = {w: d.pids(w) for w in ("web1", "web2", "other")}
    ok(d.ctl("reload", "--waiting"))
    for w, pids in old.items():
        new = wait_until(lambda: d.pids(w) if len(d.pids(w)) == len(pids)
                         else None)
        assert not set(new) & set(pids), w
    # what becomes of the stopped `manual`: see test_reasons.py (Circus
    # starts it, we leave it stopped)


def test_reload_stopped_watcher_starts_it(daemon):
    ok(daemon.ctl("stop", "sleeper", "--waiting"))
    ok(daemon.ctl("reload", "sleeper", "--waiting"))
    assert status(daemon, "sleeper") == "active"
    assert len(daemon.pids("sleeper")) == 2


def test_reload_send_hup(make_daemon, tmp_path):
    from test_watchers import SIGTRAP
    out = tmp_path / "hup.out"
    d = make_daemon("""
[watcher:hup]
cmd = %s %s %s
send_hup = true
""" % (PYTHON, SIGTRAP, out))
    pid = d.pids("hup")
    wait_until(lambda: out.exists() and "READY" in out.read_text(),
               msg="handlers installed")
    r = d.cmd("reload", name="hup", waiting=True)
    assert r["status"] == "ok"
    assert r["info"] == {"stopped": [], "started": [], "kept": pid}
    hups = lambda: out.read_text().count("%d SIGHUP" % pid[0])  # noqa: E731
    wait_until(lambda: hups() == 1, msg="child got SIGHUP")
    ok(d.ctl("reload", "hup", "--waiting"))
    wait_until(lambda: hups() == 2)
    assert d.pids("hup") == pid


def test_reload_unknown(daemon):
    err(daemon.ctl("reload", "nope"), "error: program nope not found\n")
    err(daemon.ctl("reload", "a", "b"), "invalid number of arguments\n", 1)


# ---------------------------------------------------------------- quit

def test_quit(daemon):
    pids = daemon.pids("sleeper")
    ok(daemon.ctl("quit"))
    daemon.proc.wait(10)
    assert daemon.proc.returncode == 0
    wait_until(lambda: dead(pids), timeout=2)


def test_quit_waiting(daemon):
    pids = daemon.pids("sleeper")
    ok(daemon.ctl("quit", "--waiting"))
    assert dead(pids)
    daemon.proc.wait(10)
    assert daemon.proc.returncode == 0


def test_quit_raw(daemon):
    r = daemon.cmd("quit")
    assert r["status"] == "ok" and list(r) == ["status", "time", "id"]
    daemon.proc.wait(10)
    assert daemon.proc.returncode == 0


def test_sigterm_quits(daemon):
    pids = daemon.pids("sleeper")
    daemon.proc.terminate()
    daemon.proc.wait(10)
    assert daemon.proc.returncode == 0
    wait_until(lambda: dead(pids), timeout=2)
