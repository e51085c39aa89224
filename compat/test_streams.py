"""Output streams, against both daemons: the same configuration must write the same
bytes (file names are relative to the daemon's working directory, the test's dir)."""
import time

from conftest import wait_until


def ok(r):
    assert r is not None and r.get("status") == "ok", r
    return r


def pid_of(d, name):
    pids = []

    def listed():
        pids[:] = ok(d.cmd("list", name=name))["pids"]
        return len(pids) == 1
    wait_until(listed, msg="one process of %s" % name)
    return pids[0]


def content(path, expected, timeout=10.0):
    """Waits until the file holds exactly `expected` (bytes)."""
    seen = [b""]

    def matches():
        try:
            seen[0] = path.read_bytes()
        except OSError:
            return False
        return seen[0] == expected
    try:
        wait_until(matches, timeout=timeout, msg="%s == %r" % (path, expected))
    except AssertionError:
        raise AssertionError("%s holds %r, expected %r" % (path, seen[0], expected))


YEAR = time.strftime("%Y").encode()


def test_file_stream_with_time_format(make_daemon):
    # One write of "a\nb\n\n", then (once it is in the file) a partial line: the chunk's
    # trailing newlines are stripped and one added, the partial line gets its newline.
    d = make_daemon("""
[watcher:w]
cmd = sh -c 'printf "a\\nb\\n\\n"; until [ $(wc -l < out.log) -ge 2 ]; do sleep 0.01; done; printf c; exec sleep 3600'
stdout_stream.class = FileStream
stdout_stream.filename = out.log
stdout_stream.time_format = %Y
""")
    p = YEAR + b" [%d] | " % pid_of(d, "w")
    content(d.workdir / "out.log", p + b"a\n" + p + b"b\n" + p + b"c\n")
    # `options` shows the stream's keys without `class`, as Circus stores them.
    opts = ok(d.cmd("options", name="w"))["options"]
    assert opts["stdout_stream_conf"] == {"filename": "out.log", "time_format": "%Y"}
    assert opts["stderr_stream_conf"] == {}


def test_filename_alone_is_a_file_stream_and_stderr_too(make_daemon):
    d = make_daemon("""
[watcher:w]
cmd = sh -c 'printf "out\\n"; printf "err" >&2; exec sleep 3600'
stdout_stream.filename = out.log
stderr_stream.class = circus.stream.FileStream
stderr_stream.filename = err.log
""")
    content(d.workdir / "out.log", b"out\n")
    content(d.workdir / "err.log", b"err")


def test_fancy_and_plain_stdout_streams(make_daemon):
    d = make_daemon("""
[watcher:fancy]
cmd = sh -c 'printf "x\\n\\ny"; exec sleep 3600'
stdout_stream.class = FancyStdoutStream
stdout_stream.color = green
stdout_stream.time_format = %Y
""")
    pid = pid_of(d, "fancy")
    line = lambda text: b"\x1b[0;32;40m" + YEAR + b" [%d] | " % pid + text + b"\x1b[0m\n"
    content(d.outfile, line(b"x") + line(b"y"))


def test_size_rotation(make_daemon):
    # Each 30-byte line is written once the one before is in out.log: one chunk each.
    d = make_daemon("""
[watcher:w]
cmd = sh -c 'for i in 1 2 3 4 5 6 7; do printf "L%02d-%025d\\n" $i 0; until grep -qs "^L0$i-" out.log; do sleep 0.01; done; done; exec sleep 3600'
stdout_stream.class = FileStream
stdout_stream.filename = out.log
stdout_stream.max_bytes = 100
stdout_stream.backup_count = 1
""")
    lines = lambda *ns: b"".join(b"L%02d-%025d\n" % (n, 0) for n in ns)
    content(d.workdir / "out.log", lines(7))
    assert (d.workdir / "out.log.1").read_bytes() == lines(4, 5, 6)
    assert not (d.workdir / "out.log.2").exists()


JOURNAL_STREAM = '''
import json


class Journal(object):
    """A stream class as Circus users write one: keyword options, called with a dict
    per chunk, open() at watcher start and close() at stop."""

    def __init__(self, path, **kwargs):
        self.path = path
        self._log(call="init", options=sorted(kwargs.items()))

    def _log(self, **fields):
        with open(self.path, "a") as f:
            f.write(json.dumps(fields, sort_keys=True) + "\\n")

    def open(self):
        self._log(call="open")

    def __call__(self, data):
        self._log(call="data", keys=sorted(data), type=type(data["data"]).__name__,
                  name=data["name"], pid=data["pid"], text=data["data"].decode())

    def close(self):
        self._log(call="close")
'''


def test_a_python_stream_class_is_called_as_circus_calls_it(make_daemon, tmp_path, monkeypatch):
    import json
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "journalstream.py").write_text(JOURNAL_STREAM)
    monkeypatch.setenv("PYTHONPATH", str(modules))
    journal = tmp_path / "journal.log"
    d = make_daemon("""
[watcher:w]
cmd = sh -c 'printf "hello\\n"; exec sleep 3600'
stdout_stream.class = journalstream.Journal
stdout_stream.path = %s
stdout_stream.level = 3
""" % journal)
    pid = pid_of(d, "w")

    def calls():
        try:
            return [json.loads(line) for line in journal.read_text().splitlines()]
        except OSError:
            return []
    wait_until(lambda: any(c["call"] == "data" for c in calls()), msg="a chunk reached the class")
    ok(d.cmd("stop", name="w"))
    wait_until(lambda: calls()[-1]["call"] == "close", msg="close() at stop")
    ok(d.cmd("start", name="w"))
    second = pid_of(d, "w")
    wait_until(lambda: "".join(c.get("text", "") for c in calls() if c.get("pid") == second) == "hello\n",
               msg="the second process's chunk")
    seen = calls()
    assert seen[0] == {"call": "init", "options": [["level", "3"]]}
    # The first process's bytes came between open() and close(), the second's after open().
    assert [c["call"] if c["call"] != "data" else c["pid"] for c in seen] == [
        "init", "open", pid, "close", "open", second]
    assert all(c["keys"] == ["data", "name", "pid"] and c["type"] == "bytes" and c["name"] == "stdout"
               and c["text"] == "hello\n" for c in seen if c["call"] == "data"), seen


def numbers(path):
    """The N of each `line N` line of the file."""
    try:
        text = path.read_text()
    except OSError:
        return []
    return [int(line[5:]) for line in text.splitlines() if line.startswith("line ")]


def test_set_moves_a_running_watchers_output_to_the_new_file(make_daemon):
    # Circus swaps the stream object under the running process: what it writes next goes
    # to the new file, nothing is restarted, and every line lands in one file or the other.
    d = make_daemon("""
[watcher:w]
cmd = sh -c 'i=0; while :; do i=$((i+1)); echo "line $i"; sleep 0.02; done'
stdout_stream.class = FileStream
stdout_stream.filename = old.log
""")
    pid = pid_of(d, "w")
    wait_until(lambda: len(numbers(d.workdir / "old.log")) >= 3, msg="lines in old.log")
    # With the unmodified Python circusctl, as a user types it.
    r = d.ctl("set", "w", "stdout_stream.filename", "new.log", "--waiting")
    assert (r.returncode, r.stdout.strip()) == (0, "ok"), (r.stdout, r.stderr)
    wait_until(lambda: len(numbers(d.workdir / "new.log")) >= 3, msg="lines in new.log")
    assert ok(d.cmd("list", name="w"))["pids"] == [pid]
    old = numbers(d.workdir / "old.log")
    new = numbers(d.workdir / "new.log")
    assert old == list(range(1, len(old) + 1))
    assert new == list(range(len(old) + 1, len(old) + len(new) + 1))


def test_add_takes_a_whole_stream(make_daemon):
    d = make_daemon("""
[watcher:idle]
cmd = sleep 3600
""")
    ok(d.cmd("add", name="a", cmd="sh -c 'echo added; exec sleep 3600'", start=True,
             options={"stdout_stream": {"class": "FileStream", "filename": "added.log"}}))
    content(d.workdir / "added.log", b"added\n")
    assert ok(d.cmd("options", name="a"))["options"]["stdout_stream_conf"] == {
        "filename": "added.log"}
