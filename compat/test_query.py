"""Read-only commands through the Python circusctl: exact stdout/stderr/rc.

list, status, numwatchers, numprocesses, get, options, globaloptions, stats,
dstats, listsockets, ipython, --json and the client time-out text.
"""
import json
import os
import re

import pytest

from conftest import TIMEOUT_MSG, wait_until

TWO = """
[watcher:sleeper]
cmd = sleep 3600
numprocesses = 2

[watcher:Web App]
cmd = sleep 3601

[watcher:manual]
cmd = sleep 3602
autostart = false
"""

# "<pid>  <cmdline> <username> <nice> <mem_info1> <mem_info2> <cpu> <mem> <ctime>"
MEM = r"(?:\d+B|\d+\.\d\d[KMGTPEZY]|N/A)"
NUM = r"(?:-?\d+(?:\.\d+)?(?:e-?\d+)?|N/A)"
INFOLINE = (r"(?P<pid>\d+)  (?P<cmdline>\S+) (?P<user>\S+) (?P<nice>-?\d+|Zombie|N/A) "
            r"%s %s %s %s (?P<ctime>\d+:\d\d\.\d+|N/A)" % (MEM, MEM, NUM, NUM))


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """Module-wide daemon with TWO (tests using it must not change it)."""
    from conftest import _Manager
    mgr = _Manager(tmp_path_factory.mktemp("two"))
    try:
        yield mgr(TWO)
    finally:
        mgr.finish()


def ok(r, stdout):
    assert (r.returncode, r.stderr, r.stdout) == (0, "", stdout)


def err(r, stderr, rc=3):
    assert (r.returncode, r.stdout, r.stderr) == (rc, "", stderr)


# ---------------------------------------------------------------- list

def test_list_all_sorted_lowercase(two):
    d = two
    ok(d.ctl("list"), "manual,sleeper,web app\n")


def test_list_one_watcher(two):
    r = two.ctl("list", "sleeper")
    assert r.returncode == 0 and r.stderr == ""
    assert re.fullmatch(r"\d+,\d+\n", r.stdout)
    pids = [int(p) for p in r.stdout.split(",")]
    assert len(set(pids)) == 2


def test_list_is_case_insensitive(two):
    assert two.ctl("list", "SLEEPER").stdout == two.ctl(
        "list", "sleeper").stdout


def test_list_stopped_watcher_is_empty(two):
    d = two
    ok(d.ctl("list", "manual"), "\n")


def test_list_unknown(two):
    err(two.ctl("list", "nope"), "error: program nope not found\n")


def test_list_too_many_args(two):
    err(two.ctl("list", "a", "b"), "Invalid number of arguments\n", rc=1)


# ---------------------------------------------------------------- status

def test_status_all(two):
    d = two
    # sorted by name with Python's str sort: upper case first
    ok(d.ctl("status"), "Web App: active\nmanual: stopped\nsleeper: active\n")


def test_status_one(two):
    d = two
    ok(d.ctl("status", "sleeper"), "active\n")
    ok(d.ctl("status", "MANUAL"), "stopped\n")
    ok(d.ctl("status", "web app"), "active\n")


def test_status_unknown(two):
    # circusctl's status.console_msg tests `"status" != "error"` (always
    # true) and prints the envelope status: the reason is NOT shown.
    err(two.ctl("status", "nope"), "error\n")
    reply = two.cmd("status", name="nope")
    assert reply["status"] == "error"
    assert reply["reason"] == "program nope not found"
    assert reply["errno"] == 3


# ---------------------------------------------------------------- counts

def test_numwatchers(two):
    d = two
    ok(d.ctl("numwatchers"), "3\n")


def test_numwatchers_rejects_args(two):
    err(two.ctl("numwatchers", "x"), "Invalid number of arguments\n", 1)


def test_numprocesses(two):
    d = two
    ok(d.ctl("numprocesses"), "3\n")
    ok(d.ctl("numprocesses", "sleeper"), "2\n")
    ok(d.ctl("numprocesses", "manual"), "0\n")
    err(d.ctl("numprocesses", "nope"), "error: program nope not found\n")


def test_numprocesses_reply_echoes_name(two):
    r = two.cmd("numprocesses", name="SLEEPER")
    assert r["status"] == "ok"
    assert r["numprocesses"] == 2
    assert r["watcher_name"] == "SLEEPER"
    assert list(r) == ["status", "time", "numprocesses", "watcher_name", "id"]


# ---------------------------------------------------------------- get

def test_get(two):
    ok(two.ctl("get", "sleeper", "numprocesses", "cmd"),
       "numprocesses: 2\ncmd: sleep 3600\n")
    ok(two.ctl("get", "sleeper", "stop_signal", "graceful_timeout",
                  "uid", "shell"),
       "stop_signal: 15\ngraceful_timeout: 30.0\nuid: \nshell: False\n")


def test_get_env_rendering(make_daemon):
    d = make_daemon("""
[watcher:sleeper]
cmd = sleep 3600

[env:sleeper]
ZED = last
ALPHA = first
""")
    r = d.ctl("get", "sleeper", "env")
    assert r.returncode == 0 and r.stderr == ""
    # env renders as K=V pairs sorted by key, comma-joined.  Python Circus
    # also injects the `__name__` parser artefact (see test_policy).
    line = r.stdout.rstrip("\n")
    assert line.startswith("env: ")
    pairs = [p for p in line[len("env: "):].split(",")
             if not p.startswith("__name__=")]
    assert pairs == ["ALPHA=first", "ZED=last"]


def test_get_empty_env(two):
    ok(two.ctl("get", "sleeper", "env"), "env: \n")


def test_get_errors(two):
    err(two.ctl("get", "sleeper", "bogus"),
        "error: 'bogus' option not found\n")
    err(two.ctl("get", "nope", "cmd"), "error: program nope not found\n")
    err(two.ctl("get", "sleeper"), "Invalid number of arguments\n", 1)


def test_get_raw_reply(two):
    r = two.cmd("get", name="sleeper",
                   keys=["numprocesses", "stop_signal", "graceful_timeout",
                         "env", "stdout_stream_conf", "cmd"])
    assert r["status"] == "ok"
    assert r["options"] == {"numprocesses": 2, "stop_signal": 15,
                            "graceful_timeout": 30.0, "env": {},
                            "stdout_stream_conf": {}, "cmd": "sleep 3600"}
    assert list(r["options"]) == ["numprocesses", "stop_signal",
                                  "graceful_timeout", "env",
                                  "stdout_stream_conf", "cmd"]
    r = two.cmd("get", name="sleeper")
    assert (r["status"], r["errno"], r["reason"]) == (
        "error", 3, "message invalid 'keys' is missing")


# ---------------------------------------------------------------- options

OPTNAMES = sorted("""numprocesses warmup_delay working_dir uid gid send_hup
stop_signal stop_children shell shell_args env max_retry cmd args respawn
graceful_timeout executable use_sockets priority copy_env singleton
stdout_stream_conf on_demand stderr_stream_conf max_age max_age_variance
close_child_stdin close_child_stdout close_child_stderr""".split())


def test_options(make_daemon):
    d = make_daemon("""
[watcher:sleeper]
cmd = sleep 3600
numprocesses = 2
priority = 5
""")
    r = d.ctl("options", "sleeper")
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.rstrip("\n").split("\n")
    opts = dict(line.split(": ", 1) if ": " in line else (line[:-1], "")
                for line in lines)
    keys = [line.split(":", 1)[0] for line in lines]
    keys = [k for k in keys if k != "__name__"]
    assert keys == OPTNAMES
    expect = {
        "numprocesses": "2", "cmd": "sleep 3600", "args": "",
        "shell": "False", "shell_args": "", "stop_signal": "15",
        "graceful_timeout": "30.0", "priority": "5", "respawn": "True",
        "close_child_stdin": "True", "close_child_stdout": "False",
        "close_child_stderr": "False", "max_age": "0",
        "max_age_variance": "30", "max_retry": "5", "singleton": "False",
        "use_sockets": "False", "on_demand": "False", "copy_env": "False",
        "send_hup": "False", "stop_children": "False", "warmup_delay": "0",
        "executable": "", "uid": "", "gid": "", "env": "",
        "stdout_stream_conf": "{}", "stderr_stream_conf": "{}",
        "working_dir": str(d.workdir),
    }
    for k, v in expect.items():
        assert opts[k] == v, k


def test_options_free_form_key(make_daemon):
    d = make_daemon("""
[watcher:sleeper]
cmd = sleep 3600
flapping.attempts = 3
""")
    r = d.cmd("options", name="sleeper")
    assert r["options"]["flapping.attempts"] == "3"
    assert "flapping.attempts: 3\n" in d.ctl("options", "sleeper").stdout


def test_options_errors(two):
    err(two.ctl("options", "nope"), "error: program nope not found\n")
    err(two.ctl("options"), "number of arguments invalid\n", 1)


# ---------------------------------------------------------------- globaloptions

def test_globaloptions_all(shared_daemon):
    ok(shared_daemon.ctl("globaloptions"),
       "endpoint: %s\nstats_endpoint: tcp://127.0.0.1:5557\n"
       "pubsub_endpoint: %s\ncheck_delay: 1.0\nmulticast_endpoint: \n"
       % (shared_daemon.endpoint, shared_daemon.pubsub))


def test_globaloptions_one(shared_daemon):
    ok(shared_daemon.ctl("globaloptions", "check_delay"), "check_delay: 1.0\n")
    ok(shared_daemon.ctl("globaloptions", "endpoint"),
       "endpoint: %s\n" % shared_daemon.endpoint)


def test_globaloptions_bad(shared_daemon):
    # on error globaloptions prints the bare reason (no "error: " prefix)
    err(shared_daemon.ctl("globaloptions", "umask"), "'umask' not an existing option\n")
    r = shared_daemon.cmd("globaloptions", option="umask")
    assert (r["status"], r["errno"]) == ("error", 3)


def test_globaloptions_default_check_delay(make_daemon):
    d = make_daemon(check_delay=None)
    ok(d.ctl("globaloptions", "check_delay"), "check_delay: 5.0\n")


# ---------------------------------------------------------------- stats

def test_stats_watcher(two):
    pids = two.pids("sleeper")
    r = two.ctl("stats", "sleeper")
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.rstrip("\n").split("\n")
    assert lines[0] == "sleeper:"
    seen = []
    for line in lines[1:]:
        m = re.fullmatch(r"(\d+): " + INFOLINE, line)
        assert m, line
        assert m.group(1) == m.group("pid")
        assert m.group("cmdline") == "sleep"
        seen.append(int(m.group(1)))
    assert sorted(seen) == sorted(pids)


def test_stats_all(two):
    d = two
    r = d.ctl("stats")
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.rstrip("\n").split("\n")
    headers = [l for l in lines if l.endswith(":") and " " not in l.replace(
        "Web App", "WebApp")]
    # watcher order = arbiter order (config watchers sorted by name)
    assert headers == ["Web App:", "manual:", "sleeper:"]
    body = [l for l in lines if l not in headers]
    assert len(body) == 3
    for line in body:
        assert re.fullmatch(r"(\d+): " + INFOLINE, line), line


def test_stats_process(two):
    pid = two.pids("sleeper")[0]
    r = two.ctl("stats", "sleeper", pid)
    assert r.returncode == 0 and r.stderr == ""
    # console_msg adds its own "\n", print another one
    assert r.stdout.endswith("\n\n")
    m = re.fullmatch(r"(\d+): " + INFOLINE + r"\n\n", r.stdout)
    assert m and int(m.group(1)) == pid


def test_stats_errors(two):
    err(two.ctl("stats", "sleeper", "1"),
        "error: process 1 not found in 'sleeper'\n")
    err(two.ctl("stats", "nope"), "error: program nope not found\n")


def test_stats_raw_fields(shared_daemon):
    pid = shared_daemon.pids("sleeper")[0]
    r = shared_daemon.cmd("stats", name="sleeper", process=pid)
    assert r["status"] == "ok" and r["process"] == pid
    info = r["info"]
    assert set(info) == {"mem_info1", "mem_info2", "cpu", "mem", "ctime",
                         "pid", "username", "nice", "create_time", "age",
                         "cmdline", "children", "started", "wid"}
    assert info["pid"] == pid and info["cmdline"] == "sleep"
    assert info["children"] == []
    # the two processes hold the two worker ids, whichever is listed first
    wids = [shared_daemon.cmd("stats", name="sleeper", process=p)["info"]["wid"]
            for p in shared_daemon.pids("sleeper")]
    assert sorted(wids) == [1, 2]
    r = shared_daemon.cmd("stats", name="sleeper")
    assert r["name"] == "sleeper"
    assert sorted(r["info"]) == sorted(str(p) for p in shared_daemon.pids("sleeper"))
    r = shared_daemon.cmd("stats")
    assert list(r["infos"]) == ["sleeper"]


def test_dstats(two):
    r = two.ctl("dstats")
    assert r.returncode == 0 and r.stderr == ""
    m = re.fullmatch(r"Main Process:\n    " + INFOLINE + r"\n", r.stdout)
    assert m, r.stdout
    assert int(m.group("pid")) == two.proc.pid
    err(two.ctl("dstats", "x"), "Invalid message\n", 1)
    raw = two.cmd("dstats")
    assert raw["info"]["pid"] == two.proc.pid
    assert raw["info"]["children"] == []
    assert "wid" not in raw["info"] and "started" not in raw["info"]


# ---------------------------------------------------------------- listsockets

def test_listsockets_none(shared_daemon):
    ok(shared_daemon.ctl("listsockets"), "\n")
    assert shared_daemon.cmd("listsockets")["sockets"] == []


def test_listsockets(make_daemon, tmp_path):
    path = "/tmp/cxs-%s.sock" % tmp_path.name[-12:]
    d = make_daemon("""
[watcher:sleeper]
cmd = sleep 3600

[socket:Web]
host = 127.0.0.1
port = 0

[socket:ux]
path = %s
""" % path)
    r = d.ctl("listsockets")
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.rstrip("\n").split("\n")
    assert len(lines) == 2
    # sorted by fd; sockets are bound in name order (ux before web)
    m2 = re.fullmatch(r"(\d+):socket 'ux' at (.*)", lines[0])
    m1 = re.fullmatch(r"(\d+):socket 'web' at 127\.0\.0\.1:(\d+)", lines[1])
    assert m1 and m2, lines
    assert int(m2.group(1)) < int(m1.group(1))
    assert int(m1.group(2)) > 0        # the bound ephemeral port
    assert m2.group(2) == path
    raw = d.cmd("listsockets")["sockets"]
    assert [s["name"] for s in raw] == ["ux", "web"]
    assert raw[1]["host"] == "127.0.0.1" and raw[1]["backlog"] == 2048
    assert raw[0]["path"] == path and "host" not in raw[0]


# ---------------------------------------------------------------- ipython

def test_ipython(two):
    # the reply has status "ok", so circusctl prints the error text on
    # STDOUT and exits 0
    ok(two.ctl("ipython"), "error: Could not start ipython kernel\n")
    r = two.cmd("ipython")
    assert r["status"] == "ok" and r["shell"] is False
    assert isinstance(r["msg"], str) and r["msg"]


# ---------------------------------------------------------------- --json

def test_json_output(shared_daemon):
    r = shared_daemon.ctl("--json", "list")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.endswith("}\n")
    obj = json.loads(r.stdout)
    assert list(obj) == ["status", "time", "watchers", "id"]
    assert obj["status"] == "ok" and obj["watchers"] == ["sleeper"]
    assert isinstance(obj["time"], float)
    assert re.fullmatch(r"[0-9a-f]{32}", obj["id"])
    # json.dumps default separators
    assert r.stdout.startswith('{"status": "ok", "time": ')


def test_json_error_exit_zero(two):
    r = two.ctl("--json", "status", "nope")
    assert r.returncode == 0 and r.stderr == ""
    obj = json.loads(r.stdout)
    assert list(obj) == ["status", "reason", "tb", "time", "errno", "id"]
    assert obj["reason"] == "program nope not found"
    assert obj["errno"] == 3 and obj["tb"] is None


def test_json_prettify(shared_daemon):
    r = shared_daemon.ctl("--json", "--prettify", "numwatchers")
    assert r.returncode == 0 and r.stderr == ""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout)   # pygments colours
    obj = json.loads(plain)
    assert obj["numwatchers"] == 1
    # indent=2, sort_keys=True
    assert list(obj) == ["id", "numwatchers", "status", "time"]
    assert '\n  "numwatchers": 1,\n' in plain


# ---------------------------------------------------------------- timeout

def test_timeout_wrong_endpoint(two):
    bad = "ipc://%s/nobody-here.sock" % two.sockdir
    r = two.ctl("list", endpoint=bad, timeout=1)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == "Timed out." + TIMEOUT_MSG


def test_unknown_cli_word(two):
    r = two.ctl("bogus")
    assert r.returncode == 2
    assert "circusctl: error: unrecognized arguments: bogus" in r.stderr


def test_socket_fd_substitution_and_inheritance(make_daemon, tmp_path):
    """$(circus.sockets.NAME) is the fd listsockets reports, and a use_sockets
    child holds circusd's very socket at that number."""
    out = tmp_path / "fd.txt"
    d = make_daemon("""
[socket:web]
host = 127.0.0.1
port = 0

[watcher:server]
cmd = sh -c 'echo $(circus.sockets.WEB) > %s; exec sleep 3600'
use_sockets = true
""" % out)
    fd = d.cmd("listsockets")["sockets"][0]["fd"]
    written = wait_until(lambda: out.exists() and out.read_text(), msg="fd.txt")
    assert written == "%d\n" % fd
    pid = d.pids("server")[0]
    ours = os.readlink("/proc/%d/fd/%d" % (d.proc.pid, fd))
    assert ours.startswith("socket:[")
    assert os.readlink("/proc/%d/fd/%d" % (pid, fd)) == ours
