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
