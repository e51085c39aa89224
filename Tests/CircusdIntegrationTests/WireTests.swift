// Bad input on the control socket, casts, framing, and how concurrent commands are ordered.

import CircusBus
import CircusProtocol
import Foundation
import Testing

@Suite("Wire") struct WireTests {
    @Test func malformedRequestsGetCircusErrors() async throws {
        try await withDaemon(sleeperINI) { h in
            let notJSON = try await h.raw(Array("not json".utf8))
            let reply = try JSONParser.parse(notJSON ?? [])
            expectError(reply, errno: 1, reason: "json invalid")
            #expect(reply["id"] == .null)
            #expect(reply["tb"] == .null)
            // Python's json.dumps separators.
            #expect(String(decoding: notJSON ?? [], as: UTF8.self).hasPrefix(#"{"status": "error", "reason": "json invalid", "tb": null, "time": "#))

            let unknown = try await h.call("nope", id: "a3")
            expectError(unknown, errno: 2, reason: "unknown command: 'nope'")
            #expect(unknown["id"] == "a3")

            expectError(try await h.call("get", ["name": "sleeper"]), errno: 3, reason: "message invalid 'keys' is missing")
            // Wrong property types.
            expectError(try await h.call("set", ["name": "sleeper", "options": ["numprocesses": "3"]], id: "t2"),
                        errno: 3, reason: "'numprocesses' isn't an integer")
            expectError(try await h.call("set", ["name": "sleeper", "options": ["numprocesses": 1.5]]),
                        errno: 3, reason: "'numprocesses' isn't an integer")

            // Padding around the JSON is stripped.
            let padded = try await h.raw(Array("  {\"id\":\"p\",\"command\":\"numwatchers\"}\n ".utf8))
            #expect(try JSONParser.parse(padded ?? [])["numwatchers"] == 1)
        }
    }

    @Test func silentInputsGetNoReply() async throws {
        try await withDaemon(sleeperINI) { h in
            try await h.waitPids("sleeper", count: 2)
            func probeAnswersFirst(_ messages: [[[UInt8]]], _ what: String) async throws {
                let first = try await h.firstReply(after: messages)
                #expect(first["id"] == "probe", "\(what) got a reply: \(first)")
                #expect(first["numwatchers"] == 1, "\(first)")
            }
            // A cast runs but is never answered.
            try await probeAnswersFirst([[DaemonHarness.castRequest("incr", ["name": "sleeper"])]], "a cast")
            try await h.waitPids("sleeper", count: 3)
            // A cast of a failing command: still no reply.
            try await probeAnswersFirst([[DaemonHarness.castRequest("nope")]], "a failing cast")
            // JSON without a command, JSON that is not an object, an empty body.
            try await probeAnswersFirst([[Array(#"{"id":"a9"}"#.utf8)]], "JSON without a command")
            try await probeAnswersFirst([[Array("[1,2]".utf8)]], "a JSON array")
            try await probeAnswersFirst([[[]]], "an empty body")
            try await probeAnswersFirst([[Array("   ".utf8)]], "a blank body")
            // Three frames from a DEALER: dropped; so is what a REQ socket sends (an empty
            // delimiter frame, then the request). All in a row on one connection.
            let list = Array(#"{"id":"r","command":"list"}"#.utf8)
            try await probeAnswersFirst([[Array("a".utf8), Array("b".utf8), list], [[], list]], "multipart requests")
            // The daemon is still fine and the cast's incr took effect.
            #expect(try await h.call("numprocesses", ["name": "sleeper"])["numprocesses"] == 3)
        }
    }

    @Test func tenMegabytesOfGarbage() async throws {
        try await withDaemon(sleeperINI) { h in
            var state: UInt64 = 0x1234_5678
            var garbage = [UInt8](repeating: 0, count: 10 * 1024 * 1024)
            for i in garbage.indices {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                garbage[i] = UInt8(truncatingIfNeeded: state >> 56)
            }
            garbage[0] = UInt8(ascii: "{")
            let reply = try await h.raw(garbage, timeout: .seconds(10))
            let parsed = try JSONParser.parse(reply ?? [])
            expectError(parsed, errno: 1, reason: "json invalid")
            expectOK(try await h.call("list"), keys: ["watchers"])
            // A million nested arrays must not overflow the daemon's stack. Circus's json.loads
            // raises RecursionError, not ValueError, so it answers nothing: neither do we.
            let deep = [UInt8](repeating: UInt8(ascii: "["), count: 1_000_000)
            let first = try await h.firstReply(after: [[deep]])
            #expect(first["id"] == "probe", "deep nesting got a reply: \(first)")
            expectOK(try await h.call("list"), keys: ["watchers"])
        }
    }

    /// A 3 s graceful stop on one watcher: a command on another watcher completes at once,
    /// one on the same watcher waits its turn; both succeed (Circus answers errno 5
    /// "arbiter is already running watcher_stop command" to both).
    @Test func commandsQueueInsteadOfFailing() async throws {
        try await withDaemon("""
            [watcher:stubborn]
            cmd = sh -c 'trap "" TERM; sleep 100'
            graceful_timeout = 60

            [watcher:sleeper]
            cmd = sleep 984
            """) { h in
            let stubborn = try await h.waitPids("stubborn", count: 1)[0]
            try await h.waitPids("sleeper", count: 1)
            let mark = h.mark
            async let slowStop = h.call("stop", ["name": "stubborn", "waiting": true], id: "slow")
            try await h.waitEvent("watcher.stubborn.kill", pid: stubborn, since: mark)

            let other = try await h.call("incr", ["name": "sleeper", "waiting": true], id: "v3")
            expectOK(other, keys: ["numprocesses"])
            #expect(other["numprocesses"] == 2)
            let list = try await h.call("list", ["name": "stubborn"])
            expectOK(list, keys: ["pids"])

            // The stop runs until the test ends it: SIGTERM is ignored and the escalation is
            // a minute away, so the incr above finished while it ran, whatever the load.
            async let queued = h.call("start", ["name": "stubborn", "waiting": true], id: "same")
            #expect(h.trackedStat(stubborn) != nil)
            kill(-stubborn, SIGKILL)
            let same = try await queued
            expectOK(same, keys: ["info"])
            #expect(same["info"]?["started"]?.pids.count == 1)
            // One PUB socket publishes in order: the incr on the other watcher spawned
            // before the slow stop ended, the start on the same watcher after it.
            let restarted = try #require(same["info"]?["started"]?.pids.first)
            try await h.waitEvent("watcher.stubborn.spawn", pid: restarted, since: mark)
            let order = h.events(since: mark).filter { $0.name == "spawn" || $0.topic == "watcher.stubborn.stop" }
            #expect(order.map(\.topic) == ["watcher.sleeper.spawn", "watcher.stubborn.stop", "watcher.stubborn.spawn"],
                    "\(order)")

            let stop = try await slowStop
            expectOK(stop, keys: ["info"])
            #expect(try await h.status("stubborn") == "active")
            // Let the escalation of the next stop at teardown be short.
            expectOK(try await h.call("set", ["name": "stubborn", "options": ["graceful_timeout": 0.5],
                                              "waiting": true]))
        }
    }
}
