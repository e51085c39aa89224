"""Pub/sub events: topics, payload keys and sequences; `circusctl listen`."""
import os
import re
import signal
import threading
import time

import pytest

from conftest import PYTHON, wait_until

CONF = """
[watcher:sleeper]
cmd = sleep 3600
numprocesses = 2

[watcher:mark]
cmd = sleep 3601
"""

CRASHER = """
[watcher:crash]
cmd = %s -c "import signal,sys,time; signal.signal(signal.SIGUSR1, lambda *a: sys.exit(3)); print('ready', flush=True); time.sleep(3600)"
""" % PYTHON


def catches_usr1(pid):
    """Whether `pid` has a handler for SIGUSR1 (SigCgt in /proc/PID/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return int(line.split()[1], 16) & (1 << (signal.SIGUSR1 - 1)) != 0
    return False


def ev(lst, watcher="sleeper"):
    """[(event, payload)] for one watcher, in arrival order."""
    pre = "watcher.%s." % watcher
    return [(t[len(pre):], p) for t, p in lst.snapshot() if t.startswith(pre)]


def kinds(lst, watcher="sleeper"):
    return [k for k, _ in ev(lst, watcher)]


def of(lst, kind, watcher="sleeper"):
    return [p for k, p in ev(lst, watcher) if k == kind]


def marker(d, lst):
    """Publish an `updated` event on watcher `mark` and wait for it: every
    event published before it has then been received."""
    n = len(of(lst, "updated", "mark"))
    r = d.cmd_retry("set", name="mark", options={"graceful_timeout": 30.0})
    assert r["status"] == "ok"
    lst.wait_for("watcher.mark.updated", count=n + 1)


def check_spawn(p, now=None):
    assert list(p) == ["process_pid", "time"]
    assert isinstance(p["process_pid"], int) and isinstance(p["time"], float)
    assert abs(p["time"] - (now or time.time())) < 30


def check_reap(p, exit_code):
    assert list(p) == ["process_pid", "time", "exit_code"]
    assert p["exit_code"] == exit_code


def check_time_only(p):
    assert list(p) == ["time"] and isinstance(p["time"], float)


@pytest.fixture
def ed(make_daemon):
    d = make_daemon(CONF)
    return d, d.listen(["watcher."])


# ---------------------------------------------------------------- framing

def test_two_frames_and_topic(ed):
    d, lst = ed
    d.cmd("incr", name="sleeper", waiting=True)
    lst.wait_for("watcher.sleeper.spawn")
    with lst._cond:
        frames = lst.events[0][3]
    assert len(frames) == 2
    assert frames[0] == b"watcher.sleeper.spawn"
    assert re.fullmatch(rb'\{"process_pid": \d+, "time": \d+\.\d+(e[+-]?\d+)?\}',
                        frames[1])


def test_topic_uses_lowercased_name_with_underscores(make_daemon):
    d = make_daemon("""
[watcher:Web App]
cmd = sleep 3600
""")
    lst = d.listen(["watcher."])
    d.cmd("stop", name="Web App", waiting=True)
    lst.wait_for("watcher.web_app.stop")
    assert set(lst.topics_seen()) == {"watcher.web_app.kill",
                                      "watcher.web_app.reap",
                                      "watcher.web_app.stop"}


def test_prefix_subscription(ed):
    d, _ = ed
    only_mark = d.listen(["watcher.mark."])
    d.cmd("restart", name="sleeper", waiting=True)
    d.cmd("restart", name="mark", waiting=True)
    only_mark.wait_for("watcher.mark.start")
    assert all(t.startswith("watcher.mark.") for t in only_mark.topics_seen())


# ---------------------------------------------------------------- sequences

def test_stop_sequence(ed):
    d, lst = ed
    pids = d.pids("sleeper")
    d.cmd("stop", name="sleeper", waiting=True)
    lst.wait_for("watcher.sleeper.stop")
    seq = ev(lst)
    assert sorted(k for k, _ in seq) == ["kill", "kill", "reap", "reap",
                                        "stop"]
    assert seq[-1][0] == "stop"
    check_time_only(seq[-1][1])
    for pid in pids:
        kill_i = [i for i, (k, p) in enumerate(seq)
                  if k == "kill" and p["process_pid"] == pid]
        reap_i = [i for i, (k, p) in enumerate(seq)
                  if k == "reap" and p["process_pid"] == pid]
        assert len(kill_i) == 1 and len(reap_i) == 1 and kill_i < reap_i
        check_spawn(seq[kill_i[0]][1])       # kill has spawn's shape
        check_reap(seq[reap_i[0]][1], -15)


def test_start_sequence(ed):
    d, lst = ed
    d.cmd("stop", name="sleeper", waiting=True)
    lst.wait_for("watcher.sleeper.stop")
    lst.clear()
    r = d.cmd("start", name="sleeper", waiting=True)
    lst.wait_for("watcher.sleeper.start")
    assert kinds(lst) == ["spawn", "spawn", "start"]
    assert [p["process_pid"] for p in of(lst, "spawn")] == r["info"]["started"]
    for p in of(lst, "spawn"):
        check_spawn(p)
    check_time_only(of(lst, "start")[0])


def test_restart_sequence(ed):
    d, lst = ed
    d.cmd("restart", name="sleeper", waiting=True)
    lst.wait_for("watcher.sleeper.start")
    k = kinds(lst)
    assert k.index("stop") < k.index("spawn")
    assert sorted(k) == sorted(["kill", "kill", "reap", "reap", "stop",
                                "spawn", "spawn", "start"])
    assert k[-1] == "start"


def test_graceful_reload_sequence(ed):
    d, lst = ed
    old = d.pids("sleeper")
    d.cmd("reload", name="sleeper", waiting=True)
    lst.wait_for("watcher.sleeper.reload")
    marker(d, lst)
    seq = [(k, p) for k, p in ev(lst) if k != "reap"]
    assert [k for k, _ in seq] == ["spawn", "spawn", "kill", "kill", "reload"]
    assert sorted(p["process_pid"] for k, p in seq if k == "kill") == \
        sorted(old)
    assert not {p["process_pid"] for k, p in seq if k == "spawn"} & set(old)


def test_sequential_reload_sequence(ed):
    d, lst = ed
    old = d.pids("sleeper")
    d.cmd("reload", name="sleeper", sequential=True, waiting=True)
    lst.wait_for("watcher.sleeper.reload")
    seq = ev(lst)
    assert [k for k, _ in seq] == ["kill", "reap", "spawn",
                                   "kill", "reap", "spawn", "reload"]
    assert [p["process_pid"] for k, p in seq if k == "kill"] == \
        [p["process_pid"] for k, p in seq if k == "reap"]
    assert sorted(p["process_pid"] for k, p in seq if k == "kill") == \
        sorted(old)
    for _, p in seq[1::3][:2]:
        check_reap(p, -15)


def test_reload_terminate_has_no_reload_event(ed):
    d, lst = ed
    d.cmd("reload", name="sleeper", graceful=False, waiting=True)
    lst.wait_for("watcher.sleeper.start")
    marker(d, lst)
    k = kinds(lst)
    assert "reload" not in k
    assert sorted(k) == sorted(["kill", "kill", "reap", "reap", "stop",
                                "spawn", "spawn", "start"])


def test_send_hup_reload_sends_no_kill(make_daemon, tmp_path):
    from test_watchers import SIGTRAP
    out = tmp_path / "hup.out"
    d = make_daemon(CONF + """
[watcher:hup]
cmd = %s %s %s
send_hup = true
""" % (PYTHON, SIGTRAP, out))
    wait_until(lambda: out.exists() and "READY" in out.read_text())
    lst = d.listen(["watcher."])
    d.cmd("reload", name="hup", waiting=True)
    lst.wait_for("watcher.hup.reload")
    marker(d, lst)
    assert kinds(lst, "hup") == ["reload"]
    wait_until(lambda: "SIGHUP" in out.read_text())


def test_crash_is_reaped_with_exit_code_and_respawned(make_daemon):
    d = make_daemon(CRASHER)
    lst = d.listen(["watcher."])
    (pid,) = d.pids("crash")
    # Python installs its USR1 handler after it starts: until then USR1 kills it.
    wait_until(lambda: catches_usr1(pid))
    d.cmd("signal", name="crash", signum="USR1")
    reap = lst.wait_for("watcher.crash.reap", timeout=5)[0][1]
    check_reap(reap, 3)
    assert reap["process_pid"] == pid
    spawn = lst.wait_for("watcher.crash.spawn", timeout=5)[0][1]
    check_spawn(spawn)
    assert spawn["process_pid"] != pid
    assert kinds(lst, "crash") == ["reap", "spawn"]


def test_external_sigkill_exit_code(ed):
    d, lst = ed
    pid = d.pids("sleeper")[0]
    os.kill(pid, signal.SIGKILL)      # our own child
    reap = lst.wait_for("watcher.sleeper.reap", timeout=5)[0][1]
    assert reap["process_pid"] == pid
    check_reap(reap, -9)
    lst.wait_for("watcher.sleeper.spawn", timeout=5)
    wait_until(lambda: len(d.pids("sleeper")) == 2)


def test_incr_spawn(ed):
    d, lst = ed
    r = d.cmd("incr", name="sleeper", waiting=True)
    assert r["numprocesses"] == 3
    (p,) = [p for _, p in lst.wait_for("watcher.sleeper.spawn")]
    assert p["process_pid"] in d.pids("sleeper")
    marker(d, lst)
    assert kinds(lst) == ["spawn"]


def test_decr_kills_oldest(ed):
    d, lst = ed
    old = d.pids("sleeper")
    d.cmd("decr", name="sleeper", waiting=True)
    (k,) = [p for _, p in lst.wait_for("watcher.sleeper.kill")]
    assert k["process_pid"] == old[0]


def test_set_events(ed):
    d, lst = ed
    d.cmd("set", name="sleeper", options={"numprocesses": 3}, waiting=True)
    lst.wait_for("watcher.sleeper.spawn")
    assert kinds(lst)[:2] == ["updated", "spawn"]
    check_time_only(of(lst, "updated")[0])
    lst.clear()
    d.cmd("set", name="sleeper",
          options={"graceful_timeout": 3.0, "max_retry": 3}, waiting=True)
    marker(d, lst)
    assert kinds(lst) == ["updated", "updated"]


def test_add_and_rm_events(ed):
    d, lst = ed
    d.cmd("add", name="dyn", cmd="sleep 3602")
    p = lst.wait_for("watcher.dyn.add")[0][1]
    check_time_only(p)
    d.cmd("add", name="dyn2", cmd="sleep 3603", start=True, waiting=True)
    lst.wait_for("watcher.dyn2.start")
    assert kinds(lst, "dyn2") == ["add", "spawn", "start"]
    d.pids("dyn2")
    d.cmd("rm", name="dyn2", waiting=True)
    lst.wait_for("watcher.dyn2.stop")
    assert kinds(lst, "dyn2")[3:] == ["remove", "kill", "reap", "stop"]
    check_time_only(of(lst, "remove", "dyn2")[0])
    d.cmd("rm", name="dyn", waiting=True)
    lst.wait_for("watcher.dyn.remove")


def test_reloadconfig_has_no_add_remove_events(ed):
    d, lst = ed
    text = d.config.read_text()
    text = text.replace("[watcher:mark]", "[watcher:fresh]\ncmd = sleep 3604"
                        "\n\n[watcher:mark]")
    text = text.replace("[watcher:sleeper]\ncmd = sleep 3600\n"
                        "numprocesses = 2\n", "")
    d.config.write_text(text)
    d.cmd("reloadconfig", waiting=True)
    lst.wait_for("watcher.fresh.spawn")
    lst.wait_for("watcher.sleeper.stop")
    marker(d, lst)
    kinds_all = {t.rsplit(".", 1)[1] for t in lst.topics_seen()}
    assert "add" not in kinds_all and "remove" not in kinds_all


# ---------------------------------------------------------------- circusctl listen

class Reader:
    def __init__(self, popen):
        self.lines = []
        self.p = popen
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        for line in self.p.stdout:
            self.lines.append(line)


def poke_until_output(d, reader, watcher="mark"):
    """circusctl listen has a slow-joiner window: publish harmless `updated`
    events until it prints something."""
    def poke():
        d.cmd_retry("set", name=watcher, options={"graceful_timeout": 30.0})
        return reader.lines
    wait_until(poke, timeout=10, interval=0.3, msg="listen output")


def test_listen_cli(ed):
    d, _ = ed
    p = d.ctl_popen("listen", endpoint=d.pubsub)
    reader = Reader(p)
    poke_until_output(d, reader)
    n = len(reader.lines)
    d.cmd("incr", name="sleeper", waiting=True)
    wait_until(lambda: any("sleeper.spawn" in l for l in reader.lines[n:]))
    for line in reader.lines:
        assert re.fullmatch(
            r"b'watcher\.(mark\.updated|sleeper\.spawn)': "
            r"b'\{(\"process_pid\": \d+, )?\"time\": [\d.e+-]+\}'\n", line), line
    spawn = [l for l in reader.lines if "spawn" in l][0]
    pid = int(re.search(r'"process_pid": (\d+)', spawn).group(1))
    assert pid in d.pids("sleeper")


def test_listen_cli_topic_filter(ed):
    d, _ = ed
    p = d.ctl_popen("listen", "watcher.mark.", endpoint=d.pubsub)
    reader = Reader(p)
    poke_until_output(d, reader)
    d.cmd("incr", name="sleeper", waiting=True)
    d.cmd("incr", name="mark", waiting=True)
    wait_until(lambda: any("mark.spawn" in l for l in reader.lines))
    assert all(l.startswith("b'watcher.mark.") for l in reader.lines)
