"""What the benchmark scripts share: the control-channel call (one request on a DEALER or
REQ socket connected to circusd's endpoint, its reply checked) and a process's CPU time."""
import json
import os


def call(sock, command, timeout=120.0, **props):
    """Sends `command` with `props` and returns the reply; raises unless it is ok."""
    sock.send(json.dumps({"id": "b", "command": command, "properties": props}).encode())
    if not sock.poll(int(timeout * 1000)):
        raise RuntimeError(f"no reply to {command} within {timeout} s")
    reply = json.loads(sock.recv())
    if reply.get("status") != "ok":
        raise RuntimeError(f"{command}: {reply}")
    return reply


def cpu_sched_ns(pid):
    """CPU time of every thread of `pid` so far, in ns (/proc/PID/task/*/schedstat: ns
    precision, where /proc/PID/stat counts ticks)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total
