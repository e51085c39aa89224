// Reply envelopes: key order and Python's dict.update semantics.

import CircusProtocol
import OrderedCollections
import Testing

@Suite("Reply envelopes")
struct ReplyTests {
    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    @Test("ok: status, time, payload keys, id")
    func okOrder() {
        #expect(Self.text(Reply.ok(id: "x", time: 2.0)) == #"{"status": "ok", "time": 2.0, "id": "x"}"#)
        #expect(
            Self.text(Reply.ok(id: .null, time: 1795976022.1376016, payload: ["b": 1, "a": [true]]))
                == #"{"status": "ok", "time": 1795976022.1376016, "b": 1, "a": [true], "id": null}"#
        )
    }

    @Test("payload keys already in the envelope are replaced in place")
    func inPlaceUpdate() {
        #expect(
            Self.text(Reply.ok(id: "s2", time: 3.5, payload: ["status": "active"]))
                == #"{"status": "active", "time": 3.5, "id": "s2"}"#
        )
        #expect(
            Self.text(Reply.ok(id: 7, time: 3.5, payload: ["x": 1, "id": "ignored", "time": 9]))
                == #"{"status": "ok", "time": 9, "x": 1, "id": 7}"#
        )
    }

    @Test("list payloads are wrapped in results")
    func results() {
        #expect(
            Self.text(Reply.ok(id: "r", time: 1.0, results: [1, "a"]))
                == #"{"status": "ok", "time": 1.0, "results": [1, "a"], "id": "r"}"#
        )
    }

    @Test("error: status, reason, tb, time, errno, id")
    func errorOrder() {
        let error = CommandError(code: .commandError, reason: "boom", traceback: "Traceback\n")
        #expect(
            Self.text(Reply.error(id: "e", time: 1e-05, error: error))
                == #"{"status": "error", "reason": "boom", "tb": "Traceback\n", "time": 1e-05, "errno": 5, "id": "e"}"#
        )
        #expect(Reply.errorEnvelope(id: .null, time: 0, error: .serverError).keys.elements
            == ["status", "reason", "tb", "time", "errno", "id"])
    }
}
