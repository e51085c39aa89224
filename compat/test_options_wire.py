"""Watcher options on the wire: what `options`/`get` report for watchers made by
`add` and after `set`, with Circus's types (null, int or float), against both daemons."""
import pytest

from conftest import IS_PYTHON

SLEEPER = """
[watcher:sleeper]
cmd = sleep 3600
"""


def ok(r):
    assert r is not None and r.get("status") == "ok", r
    return r


def options(d, name):
    return ok(d.cmd("options", name=name))["options"]


def typed(value):
    """The value with its JSON type, so that 0 and 0.0 differ."""
    return (type(value).__name__, value)


def test_add_without_options_reports_nulls(make_daemon):
    d = make_daemon(SLEEPER)
    ok(d.cmd_retry("add", name="bare", cmd="sleep 3600"))
    opts = options(d, "bare")
    assert opts == {
        "args": None, "close_child_stderr": False, "close_child_stdin": True,
        "close_child_stdout": False, "cmd": "sleep 3600", "copy_env": False,
        "env": None, "executable": None, "gid": None,
        "graceful_timeout": 30.0, "max_age": 0, "max_age_variance": 30,
        "max_retry": 5, "numprocesses": 1, "on_demand": False, "priority": 0,
        "respawn": True, "send_hup": False, "shell": False,
        "shell_args": None, "singleton": False, "stderr_stream_conf": None,
        "stdout_stream_conf": None, "stop_children": False, "stop_signal": 15,
        "uid": None, "use_sockets": False, "warmup_delay": 0.0,
        "working_dir": str(d.workdir)}
    assert typed(opts["warmup_delay"]) == ("float", 0.0)
    assert typed(opts["graceful_timeout"]) == ("float", 30.0)


def test_add_with_options_keeps_what_was_sent(make_daemon):
    d = make_daemon(SLEEPER)
    ok(d.cmd_retry("add", name="full", cmd="sleep 3600", args=["1"],
                   options={"env": {"A": "1"}, "warmup_delay": 0,
                            "graceful_timeout": 3}))
    opts = options(d, "full")
    assert opts["env"] == {"A": "1"}
    assert opts["args"] == ["1"]
    assert opts["stdout_stream_conf"] is None
    assert opts["stderr_stream_conf"] is None
    # `add` keeps an int warmup_delay as sent; graceful_timeout is float()-ed.
    assert typed(opts["warmup_delay"]) == ("int", 0)
    assert typed(opts["graceful_timeout"]) == ("float", 3.0)


def test_ini_watcher_reports_empty_objects_and_ini_types(make_daemon):
    d = make_daemon(SLEEPER)
    opts = options(d, "sleeper")
    assert opts["env"] == {}
    assert opts["stdout_stream_conf"] == {}
    assert opts["stderr_stream_conf"] == {}
    assert opts["args"] == ""
    assert typed(opts["warmup_delay"]) == ("int", 0)
    assert typed(opts["graceful_timeout"]) == ("float", 30.0)


@pytest.mark.parametrize("key, sent, expected", [
    ("warmup_delay", 0, ("float", 0.0)),
    ("warmup_delay", 1, ("float", 1.0)),
    ("warmup_delay", 0.5, ("float", 0.5)),
    ("graceful_timeout", 2, ("float", 2.0)),
    ("graceful_timeout", 2.5, ("float", 2.5)),
    ("max_age", True, ("int", 1)),
    ("max_age_variance", 7, ("int", 7)),
    ("stop_signal", 9, ("int", 9)),
])
def test_set_values_come_back_as_circus_converts_them(make_daemon, key, sent,
                                                      expected):
    d = make_daemon(SLEEPER)
    ok(d.cmd_retry("set", name="sleeper", options={key: sent}))
    got = ok(d.cmd("get", name="sleeper", keys=[key]))["options"][key]
    assert typed(got) == expected


@pytest.mark.swift_only  # Circus answers ok and keeps the old value
@pytest.mark.parametrize("key, sent", [("max_retry", 3), ("respawn", False),
                                       ("close_child_stdout", True)])
def test_set_applies_options_circus_ignores(make_daemon, key, sent):
    d = make_daemon(SLEEPER)
    ok(d.cmd("set", name="sleeper", options={key: sent}))
    assert ok(d.cmd("get", name="sleeper", keys=[key]))["options"][key] == sent


@pytest.mark.parametrize("key", ["copy_path", "virtualenv",
                                 "virtualenv_py_ver", "use_sockets",
                                 "on_demand", "stdin_socket", "priority"])
def test_ini_only_options_are_unknown_keys_for_add_and_set(make_daemon, key):
    d = make_daemon(SLEEPER)
    for r in (d.cmd_retry("add", name="x", cmd="sleep 3600",
                          options={key: True}),
              d.cmd_retry("set", name="sleeper", options={key: True})):
        assert (r["status"], r["errno"], r["reason"]) == (
            "error", 3, "unknown key '%s'" % key)


def test_misspelled_option_is_a_free_form_option(make_daemon):
    d = make_daemon(SLEEPER + "numproceses = 2\n")
    opts = options(d, "sleeper")
    assert (opts["numproceses"], opts["numprocesses"]) == ("2", 1)
    if not IS_PYTHON:
        assert d.log().count("did you mean numprocesses?") == 1, d.log()
