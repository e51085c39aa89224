"""Raw ZeroMQ control protocol (DEALER client, one frame each way)."""
import json
import time
import uuid

import pytest
import zmq

from conftest import wait_until

ERROR_KEYS = ["status", "reason", "tb", "time", "errno", "id"]


def still_answers(d):
    r = d.cmd("list")
    assert r is not None, "daemon stopped answering"
    assert r["status"] == "ok" and r["watchers"] == ["sleeper"]


# ---------------------------------------------------------------- envelope

def test_ok_envelope(shared_daemon):
    r = shared_daemon.call({"id": "a1", "command": "list"})
    assert list(r) == ["status", "time", "watchers", "id"]
    assert r["status"] == "ok" and r["id"] == "a1"
    assert isinstance(r["time"], float)
    assert abs(r["time"] - time.time()) < 60


def test_reply_is_a_single_frame_without_delimiter(shared_daemon):
    frames = shared_daemon.call({"id": "f", "command": "numwatchers"},
                                raw=True)
    assert len(frames) == 1
    assert json.loads(frames[0])["numwatchers"] == 1


def test_missing_id_echoed_as_null(shared_daemon):
    r = shared_daemon.call({"command": "list"})
    assert r["id"] is None and r["status"] == "ok"


@pytest.mark.parametrize("rid", [42, {"a": [1]}, "é"])
def test_any_json_id_is_echoed(shared_daemon, rid):
    r = shared_daemon.call({"id": rid, "command": "numwatchers"})
    assert r["id"] == rid


def test_command_is_case_insensitive(shared_daemon):
    r = shared_daemon.call({"id": "a2", "command": "LIST",
                            "properties": {"name": "SLEEPER"}})
    assert r["status"] == "ok" and len(r["pids"]) == 2


def test_request_is_stripped(shared_daemon):
    r = shared_daemon.call(b'  \n{"id": "s", "command": "numwatchers"}\n  ')
    assert r["status"] == "ok" and r["numwatchers"] == 1


def test_status_overrides_envelope_status(shared_daemon):
    r = shared_daemon.call({"id": "s2", "command": "status",
                            "properties": {"name": "sleeper"}})
    assert r == {"status": "active", "time": r["time"], "id": "s2"}
    assert list(r) == ["status", "time", "id"]


def test_status_all_payload(shared_daemon):
    r = shared_daemon.cmd("status")
    assert r["status"] == "ok" and r["statuses"] == {"sleeper": "active"}


# ---------------------------------------------------------------- errors

def test_invalid_json(shared_daemon):
    r = shared_daemon.call(b"not json")
    assert list(r) == ERROR_KEYS
    assert (r["status"], r["reason"], r["tb"], r["errno"], r["id"]) == (
        "error", "json invalid", None, 1, None)


def test_invalid_utf8_is_invalid_json(shared_daemon):
    r = shared_daemon.call(b'{"id": "\xe9", "command": "numwatchers"}')
    assert (r["errno"], r["reason"], r["id"]) == (1, "json invalid", None)


def test_unknown_command(shared_daemon):
    r = shared_daemon.call({"id": "a3", "command": "nope"})
    assert list(r) == ERROR_KEYS
    assert (r["status"], r["reason"], r["tb"], r["errno"], r["id"]) == (
        "error", "unknown command: 'nope'", None, 2, "a3")


def test_missing_property(shared_daemon):
    r = shared_daemon.call({"id": "a4", "command": "get",
                            "properties": {"name": "sleeper"}})
    assert (r["status"], r["reason"], r["tb"], r["errno"], r["id"]) == (
        "error", "message invalid 'keys' is missing", None, 3, "a4")


def test_program_not_found(shared_daemon):
    r = shared_daemon.call({"id": "a7", "command": "status",
                            "properties": {"name": "ghost"}})
    assert (r["status"], r["reason"], r["errno"], r["id"]) == (
        "error", "program ghost not found", 3, "a7")


def test_listen_on_control_socket(shared_daemon):
    r = shared_daemon.cmd("listen")
    assert (r["status"], r["errno"], r["reason"]) == (
        "error", 3, "invalid message. use a pub/sub socket")


# ---------------------------------------------------------------- no reply

@pytest.mark.parametrize("body", [
    b"",
    b"   ",
    b'{"id": "a9"}',
    b"[1, 2]",
    b'"list"',
    b"42",
    b'{"id": "c5", "command": 5}',
], ids=["empty", "blank", "no-command", "array", "string", "number",
        "command-not-string"])
def test_no_reply(shared_daemon, body):
    assert shared_daemon.call(body, timeout=1) is None
    still_answers(shared_daemon)


def test_cast_gets_no_reply(shared_daemon):
    assert shared_daemon.call({"id": "a8", "command": "list",
                               "msg_type": "cast"}, timeout=1) is None
    # not even for errors
    assert shared_daemon.call({"id": "a8", "command": "nope",
                               "msg_type": "cast"}, timeout=1) is None
    still_answers(shared_daemon)


def test_cast_is_executed(daemon):
    assert daemon.call({"command": "incr", "properties": {"name": "sleeper"},
                        "msg_type": "cast"}, timeout=1) is None
    wait_until(lambda: len(daemon.pids("sleeper")) == 3)


def test_req_socket_gets_no_reply(shared_daemon):
    assert shared_daemon.call({"id": "r", "command": "list"}, timeout=1,
                              sock_type=zmq.REQ) is None
    still_answers(shared_daemon)


def test_two_frame_message_gets_no_reply(shared_daemon):
    s = shared_daemon.ctx.socket(zmq.DEALER)
    try:
        s.setsockopt(zmq.LINGER, 0)
        s.connect(shared_daemon.endpoint)
        s.send_multipart([b'{"id": "m", "command": "list"}', b"extra"])
        assert s.poll(1000) == 0
    finally:
        s.close(0)
    still_answers(shared_daemon)


def test_ten_megabyte_message(shared_daemon):
    # Python circusd parses and answers it
    big = json.dumps({"id": "big", "command": "list",
                      "properties": {"pad": "x" * (10 * 1024 * 1024)}})
    r = shared_daemon.call(big, timeout=10)
    assert r is not None and r["status"] == "ok" and r["id"] == "big"
    assert r["watchers"] == ["sleeper"]
    still_answers(shared_daemon)


# ---------------------------------------------------------------- concurrency

def test_pipelined_requests_on_one_dealer(shared_daemon):
    s = shared_daemon.ctx.socket(zmq.DEALER)
    try:
        s.setsockopt(zmq.LINGER, 0)
        s.connect(shared_daemon.endpoint)
        ids = [uuid.uuid4().hex for _ in range(5)]
        for i in ids:
            s.send(json.dumps({"id": i, "command": "numwatchers"}).encode())
        got = []
        while len(got) < 5:
            assert s.poll(5000), "missing replies"
            frames = s.recv_multipart()
            assert len(frames) == 1
            got.append(json.loads(frames[0])["id"])
        assert sorted(got) == sorted(ids)
    finally:
        s.close(0)


def test_waiting_replies_may_overtake(daemon):
    """A quick command sent after a slow `waiting` one is answered first."""
    s = daemon.ctx.socket(zmq.DEALER)
    try:
        s.setsockopt(zmq.LINGER, 0)
        s.connect(daemon.endpoint)
        s.send(json.dumps({"id": "slow", "command": "restart", "properties": {
            "name": "sleeper", "waiting": True}}).encode())
        s.send(json.dumps({"id": "fast", "command": "numwatchers"}).encode())
        order = []
        while len(order) < 2:
            assert s.poll(10000)
            order.append(json.loads(s.recv())["id"])
        assert order == ["fast", "slow"]
    finally:
        s.close(0)
    wait_until(lambda: len(daemon.pids("sleeper")) == 2)

