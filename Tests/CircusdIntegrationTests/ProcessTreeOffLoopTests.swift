// The process trees that `signal` (childpid, children, recursive), stop_children and the
// SIGKILL escalation reach are read from /proc on a worker, never on the loop thread.
//
// The walk is held, not timed: circusd started with CIRCUSD_TEST_PROC_GATE=<fifo> opens
// that FIFO and reads one byte before each walk, so the test decides when it may finish.
// One PUB socket publishes in order: an event published while the walk was held comes
// before every event that follows the signal the walk was for.

import CircusProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Process trees read off the loop") struct ProcessTreeOffLoopTests {
    /// Launches circusd with the tree gate at `<dir>/proc-gate` and creates the FIFO.
    static func launch(_ ini: String) async throws -> DaemonHarness {
        let h = try await DaemonHarness.launch(ini, environment: ["CIRCUSD_TEST_PROC_GATE": "%DIR%/proc-gate"])
        guard mkfifo(h.dir + "/proc-gate", 0o600) == 0 else {
            await h.teardown()
            throw HarnessError("mkfifo: errno \(errno)")
        }
        return h
    }

    /// Opens the gate's write end once the worker waits at it; nil after 10 s.
    static func waitForTheWalk(_ h: DaemonHarness) async throws -> Int32? {
        try await LoopResponsivenessTests.openWhenSamplingWaits(h.dir + "/proc-gate")
    }

    /// Lets one walk go on.
    static func release(_ fd: Int32) {
        var byte: UInt8 = 1
        #expect(write(fd, &byte, 1) == 1)
        close(fd)
    }

    @Test func recursiveSignalIsAnsweredOnceTheTreeIsRead() async throws {
        let h = try await Self.launch("""
            [watcher:target]
            cmd = sleep 1032

            [watcher:other]
            cmd = sleep 1033
            """)
        do {
            let pid = try await h.waitPids("target", count: 1)[0]
            try await h.waitPids("other", count: 1)
            let mark = h.mark
            let answered = Locked(false)
            let signal = Task {
                defer { answered.withLock { $0 = true } }
                return try await h.call("signal", ["name": "target", "signum": "TERM", "recursive": true,
                                                   "pid": .int(Int64(pid))], timeout: .seconds(60))
            }
            let fd = try #require(try await Self.waitForTheWalk(h), "the tree walk never reached the gate")
            // The loop serves while the tree is read: a command is answered and acted on.
            #expect(try await h.status("target") == "active")
            let incr = try await h.call("incr", ["name": "other", "waiting": true])
            expectOK(incr, keys: ["numprocesses"])
            let spawned = try await h.waitEvent("watcher.other.spawn", since: mark)
            #expect(!answered.snapshot)

            Self.release(fd)
            expectOK(try await signal.value)
            // The signal went out after the walk: its reap follows the spawn above.
            let reap = try await h.waitEvent("watcher.target.reap", pid: pid, since: mark)
            let order = h.events(since: mark).map(\.topic)
            let spawnIndex = try #require(order.firstIndex(of: spawned.topic))
            let reapIndex = try #require(order.firstIndex(of: reap.topic))
            #expect(spawnIndex < reapIndex, "\(order)")
        } catch {
            await h.teardown()
            throw error
        }
        await h.teardown()
    }

    @Test func childpidNotFoundIsAnsweredAfterTheWalk() async throws {
        let h = try await Self.launch("""
            [watcher:target]
            cmd = sleep 1034
            """)
        do {
            let pid = try await h.waitPids("target", count: 1)[0]
            let signal = Task {
                try await h.call("signal", ["name": "target", "signum": "USR1", "pid": .int(Int64(pid)),
                                            "childpid": 1], timeout: .seconds(60))
            }
            let fd = try #require(try await Self.waitForTheWalk(h), "the tree walk never reached the gate")
            #expect(try await h.status("target") == "active")
            Self.release(fd)
            expectError(try await signal.value, errno: 5, reasonContains: "child 1 not found")
        } catch {
            await h.teardown()
            throw error
        }
        await h.teardown()
    }

    @Test func stopChildrenSignalsOnceTheTreeIsRead() async throws {
        let h = try await Self.launch("""
            [watcher:tree]
            cmd = sleep 1035
            stop_children = true

            [watcher:other]
            cmd = sleep 1036
            """)
        do {
            let pid = try await h.waitPids("tree", count: 1)[0]
            try await h.waitPids("other", count: 1)
            let mark = h.mark
            let stop = Task { try await h.call("stop", ["name": "tree", "waiting": true], timeout: .seconds(60)) }
            let fd = try #require(try await Self.waitForTheWalk(h), "the tree walk never reached the gate")
            #expect(try await h.status("tree") == "stopping")
            expectOK(try await h.call("incr", ["name": "other", "waiting": true]), keys: ["numprocesses"])
            let spawned = try await h.waitEvent("watcher.other.spawn", since: mark)

            Self.release(fd)
            expectOK(try await stop.value, keys: ["info"])
            #expect(try await h.status("tree") == "stopped")
            // The stop signal (its `kill` event) went out after the walk.
            let killed = try await h.waitEvent("watcher.tree.kill", pid: pid, since: mark)
            let order = h.events(since: mark).map(\.topic)
            let spawnIndex = try #require(order.firstIndex(of: spawned.topic))
            let killIndex = try #require(order.firstIndex(of: killed.topic))
            #expect(spawnIndex < killIndex, "\(order)")
        } catch {
            await h.teardown()
            throw error
        }
        await h.teardown()
    }
}
