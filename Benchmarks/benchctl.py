"""The control-channel call the benchmark scripts share: one request on a DEALER or REQ
socket connected to circusd's endpoint, its reply checked."""
import json


def call(sock, command, timeout=120.0, **props):
    """Sends `command` with `props` and returns the reply; raises unless it is ok."""
    sock.send(json.dumps({"id": "b", "command": command, "properties": props}).encode())
    if not sock.poll(int(timeout * 1000)):
        raise RuntimeError(f"no reply to {command} within {timeout} s")
    reply = json.loads(sock.recv())
    if reply.get("status") != "ok":
        raise RuntimeError(f"{command}: {reply}")
    return reply
