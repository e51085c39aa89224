"""Sockets and on_demand through the Python circusctl."""
import socket
import sys

import pytest


ONE_SHOT = """
import os, socket, sys
s = socket.socket(fileno=int(sys.argv[1]))
s.setblocking(True)
c, _ = s.accept()
c.sendall(str(os.getpid()).encode())
c.close()
"""


@pytest.mark.swift_only  # Circus starts only the first on_demand watcher in start order
def test_on_demand_starts_every_waiting_watcher(make_daemon, tmp_path):
    script = tmp_path / "oneshot.py"
    script.write_text(ONE_SHOT)
    d = make_daemon("""
[socket:web]
host = 127.0.0.1
port = 0

[watcher:aaa]
cmd = %(py)s %(script)s $(circus.sockets.web)
use_sockets = true
on_demand = true

[watcher:bbb]
cmd = %(py)s %(script)s $(circus.sockets.web)
use_sockets = true
on_demand = true

[watcher:manual]
cmd = sleep 3600
""" % {"py": sys.executable, "script": script})
    assert d.ctl("status", "aaa").stdout == "stopped\n"
    assert d.ctl("status", "bbb").stdout == "stopped\n"
    assert d.ctl("stop", "manual", "--waiting").stdout == "ok\n"
    ev = d.listen(["watcher."])
    port = d.cmd("listsockets")["sockets"][0]["port"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        pid = int(c.recv(64))
    # Both watchers started on the one connection; one of them served it.
    spawns = ev.wait_for(lambda t, p: t in ("watcher.aaa.spawn", "watcher.bbb.spawn"), count=2)
    assert pid in [p["process_pid"] for _, p in spawns]
    assert sorted(t for t, _ in spawns) == ["watcher.aaa.spawn", "watcher.bbb.spawn"]
    # The operator's stop holds.
    assert d.ctl("status", "manual").stdout == "stopped\n"
    assert not [t for t in ev.topics_seen() if t.startswith("watcher.manual.")]
    ev.close()
