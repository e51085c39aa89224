// Commands queued behind a running one take effect in the order they arrived: what they
// check and act on is the state when their turn comes, not when they arrived.
//
// A job is held by a slow stop: the watcher ignores SIGTERM and its graceful_timeout is a
// minute, so the stop lasts until the test SIGKILLs the process. Requests sent without
// `waiting` are answered when they arrive, so their answer proves they were queued
// behind the stop.

import CircusProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Queued commands act on the state of their turn") struct QueuedCommandOrderTests {
    static let stubbornINI = """
        [watcher:stubborn]
        cmd = sh -c 'trap "" TERM; sleep 100'
        graceful_timeout = 60
        """

    /// Circus runs `rm` then `add` of the same name one after the other, and both succeed.
    /// A command on that name queued after them acts on the watcher `add` created.
    @Test func rmThenAddOfTheSameNameBothSucceed() async throws {
        try await withDaemon(Self.stubbornINI) { h in
            let stubborn = try await h.waitPids("stubborn", count: 1)[0]
            let mark = h.mark
            async let slowStop = h.call("stop", ["name": "stubborn", "waiting": true], id: "slow")
            try await h.waitEvent("watcher.stubborn.kill", pid: stubborn, since: mark)

            expectOK(try await h.call("rm", ["name": "stubborn"]))
            expectOK(try await h.call("add", ["name": "stubborn", "cmd": "sleep 1040", "start": true]))
            expectOK(try await h.call("incr", ["name": "stubborn"]))
            // Still the old watcher until the stop ends.
            expectOK(try await h.call("get", ["name": "stubborn", "keys": ["cmd"]]), keys: ["options"])
            #expect(try await h.call("get", ["name": "stubborn", "keys": ["cmd"]])["options"]?["cmd"]
                    == "sh -c 'trap \"\" TERM; sleep 100'")

            kill(-stubborn, SIGKILL)
            expectOK(try await slowStop, keys: ["info"])
            // The new watcher, started, then incremented to two processes.
            let pids = try await h.waitPids("stubborn", count: 2)
            #expect(!pids.contains(stubborn))
            #expect(try await h.call("get", ["name": "stubborn", "keys": ["cmd", "numprocesses"]])["options"]
                    == ["cmd": "sleep 1040", "numprocesses": 2])
            // `remove` is published before `add`, so it has arrived once `add` has.
            try await h.waitEvent("watcher.stubborn.add", since: mark)
            let topics = h.events(since: mark).map(\.topic).filter { $0.hasSuffix(".remove") || $0.hasSuffix(".add") }
            #expect(topics == ["watcher.stubborn.remove", "watcher.stubborn.add"])
        }
    }

    /// A name in use is still refused at once when no `rm` of it is queued.
    @Test func addOfANameInUseIsRefusedAtOnce() async throws {
        try await withDaemon("[watcher:sleeper]\ncmd = sleep 1041\n") { h in
            try await h.waitPids("sleeper", count: 1)
            expectError(try await h.call("add", ["name": "Sleeper", "cmd": "sleep 1041"]), errno: 5,
                        reasonContains: "'Sleeper' already exist")
        }
    }

    /// Two `add`s of the name an `rm` frees: the first wins, the second is refused when
    /// its turn comes.
    @Test func secondQueuedAddOfTheSameNameFailsWhenItsTurnComes() async throws {
        try await withDaemon(Self.stubbornINI) { h in
            let stubborn = try await h.waitPids("stubborn", count: 1)[0]
            let mark = h.mark
            async let slowStop = h.call("stop", ["name": "stubborn", "waiting": true], id: "slow")
            try await h.waitEvent("watcher.stubborn.kill", pid: stubborn, since: mark)
            expectOK(try await h.call("rm", ["name": "stubborn"]))
            expectOK(try await h.call("add", ["name": "stubborn", "cmd": "sleep 1042"]))
            async let second = h.call("add", ["name": "stubborn", "cmd": "sleep 1043", "waiting": true], id: "second")
            // Queued or not (its answer only comes in its turn), the name is taken by then.
            kill(-stubborn, SIGKILL)
            expectOK(try await slowStop, keys: ["info"])
            expectError(try await second, errno: 5, reasonContains: "'stubborn' already exist")
            #expect(try await h.call("get", ["name": "stubborn", "keys": ["cmd"]])["options"] == ["cmd": "sleep 1042"])
        }
    }

    /// `set` of an option that needs a reload, queued behind a stop: the watcher is
    /// stopped when the set runs, and stays stopped (whether it runs is decided then).
    @Test func setQueuedBehindAStopLeavesTheWatcherStopped() async throws {
        try await withDaemon(Self.stubbornINI) { h in
            let stubborn = try await h.waitPids("stubborn", count: 1)[0]
            let mark = h.mark
            async let slowStop = h.call("stop", ["name": "stubborn", "waiting": true], id: "slow")
            try await h.waitEvent("watcher.stubborn.kill", pid: stubborn, since: mark)
            #expect(try await h.status("stubborn") == "stopping")
            async let set = h.call("set", ["name": "stubborn", "options": ["cmd": "sleep 1044"], "waiting": true],
                                   id: "set")
            // The set is queued: its `updated` event comes when it runs, after the stop.
            kill(-stubborn, SIGKILL)
            expectOK(try await slowStop, keys: ["info"])
            expectOK(try await set)
            try await h.waitEvent("watcher.stubborn.updated", since: mark)
            #expect(try await h.status("stubborn") == "stopped")
            #expect(try await h.childPids("stubborn") == [])
            // It starts with the new command when asked.
            let started = try await h.call("start", ["name": "stubborn", "waiting": true])
            let pid = try #require(started["info"]?["started"]?.pids.first)
            // The reply can come before exec has set the new program's arguments up.
            try await h.waitUntil("pid \(pid) runs sleep 1044") { Proc.cmdline(pid) == ["sleep", "1044"] }
            // A spawn by the set would have been published before this one.
            try await h.waitEvent("watcher.stubborn.spawn", pid: pid, since: mark)
            let spawns = h.events(since: mark).filter { $0.topic == "watcher.stubborn.spawn" }.compactMap(\.pid)
            #expect(spawns == [pid])
        }
    }

    /// Once quit began, commands that change watchers get Circus's answer:
    /// `arbiter is already running arbiter_stop command` (errno 5); `kill` and read-only
    /// commands are served. Nothing is started while the daemon stops.
    @Test func commandsAfterQuitGetCircusConflictAnswer() async throws {
        try await withDaemon(Self.stubbornINI) { h in
            let stubborn = try await h.waitPids("stubborn", count: 1)[0]
            let mark = h.mark
            expectOK(try await h.call("quit"))
            try await h.waitEvent("watcher.stubborn.kill", pid: stubborn, since: mark)
            let conflict = "arbiter is already running arbiter_stop command"
            let refused: [(String, JSON)] = [
                ("start", ["name": "stubborn", "waiting": true]),
                ("start", [:]),
                ("restart", ["name": "stubborn"]),
                ("reload", [:]),
                ("set", ["name": "stubborn", "options": ["cmd": "sleep 1045"], "waiting": true]),
                ("incr", ["name": "stubborn"]),
                ("stop", ["name": "stubborn"]),
                ("rm", ["name": "stubborn"]),
                ("add", ["name": "fresh", "cmd": "sleep 1046", "start": true]),
                ("reloadconfig", [:]),
            ]
            for (command, props) in refused {
                expectError(try await h.call(command, props), errno: 5, reason: conflict)
            }
            expectOK(try await h.call("kill", ["name": "stubborn"]))
            #expect(try await h.status("stubborn") == "stopping")
            #expect(try await h.call("list")["watchers"] == ["stubborn"])

            kill(-stubborn, SIGKILL)
            #expect(await h.waitExit(timeout: 10))
            #expect(h.process.terminationStatus == 0)
            #expect(h.events(since: mark).filter { $0.name == "spawn" || $0.name == "add" }.isEmpty,
                    "\(h.events(since: mark))")
        }
    }
}
