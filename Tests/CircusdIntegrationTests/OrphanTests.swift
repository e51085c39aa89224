// No orphans: circusd is a child subreaper, a stop ends each worker's whole process group
// and waits for it, what a killed worker leaves behind is ended, and a program that
// daemonizes (leaves its session) is left alone and reaped when it exits.
//
// The scripts write the pids they fork to a file; every check is on those pids in /proc,
// with their start time, so a recycled pid is never taken for a survivor.

import CircusProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A process as first seen: pid and start time (a pid that names another process later is gone).
private struct Seen: CustomStringConvertible {
    let pid: Int32
    let start: UInt64

    /// Whether this very process still exists: running, or a zombie nobody reaped.
    var exists: Bool { ProcStat.read(pid)?.startTime == start }
    var isZombie: Bool { exists && ProcStat.read(pid)?.isZombie == true }
    var description: String { "\(pid) (\(Proc.cmdline(pid)?.joined(separator: " ") ?? "gone"))" }

    static func of(_ pid: Int32) throws -> Seen {
        guard let stat = ProcStat.read(pid) else { throw HarnessError("pid \(pid) is not running") }
        return Seen(pid: pid, start: stat.startTime)
    }
}

/// The process group of `pid` (field 5 of /proc/<pid>/stat), nil when it is gone.
private func processGroup(_ pid: Int32) -> Int32? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")")
    else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    return fields.count > 2 ? Int32(fields[2]) : nil
}

/// The children of `pid` from /proc (its main thread's `children` file).
private func childrenOf(_ pid: Int32) -> [Int32] {
    let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
    return text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
}

/// Waits until `path` lists `count` pids (one per line; more words per line are read too).
private func waitPidsFile(_ h: DaemonHarness, _ path: String, count: Int, timeout: Double = 10) async throws -> [Int32] {
    let text = try await h.waitFile(path, timeout: timeout) { text in
        text.split(whereSeparator: { $0 == "\n" || $0 == " " }).count >= count
    }
    return text.split(whereSeparator: { $0 == "\n" || $0 == " " }).compactMap { Int32($0) }
}

@Suite("Orphans") struct OrphanTests {
    @Test func stoppingAShellWatcherLeavesNothingOfItsTree() async throws {
        // `sh -c` runs the script in a child (a command follows it), the script forks a
        // sleep and a subshell, and the subshell forks a sleep of its own.
        try await withDaemon("""
            [watcher:tree]
            cmd = %DIR%/tree.sh; echo never
            shell = true
            graceful_timeout = 30
            """, files: ["tree.sh": """
                #!/bin/sh
                sleep 921 &
                echo $! >> %DIR%/pids
                ( sleep 922 & echo $! >> %DIR%/pids; wait ) &
                echo $! >> %DIR%/pids
                echo $$ >> %DIR%/pids
                wait
                """]) { h in
            let leader = try await h.waitPids("tree", count: 1)[0]
            let forked = try await waitPidsFile(h, h.dir + "/pids", count: 4)
            let tree = try ([leader] + forked).map(Seen.of)
            #expect(Set(forked).count == 4 && !forked.contains(leader))
            let started = ContinuousClock.now
            expectOK(try await h.call("stop", ["name": "tree", "waiting": true]), keys: ["info"])
            // The reply means the whole group is gone and reaped: checked at once, no wait.
            // SIGTERM ends every one of them, so the SIGKILL escalation (30 s) played no part.
            #expect(ContinuousClock.now - started < .seconds(10))
            let left = tree.filter(\.exists)
            #expect(left.isEmpty, "still there after the stop: \(left) (zombies: \(left.filter(\.isZombie)))")
            #expect(try await h.status("tree") == "stopped")
        }
    }

    @Test func grandchildIgnoringSigtermIsKilledAfterGracefulTimeout() async throws {
        try await withDaemon("""
            [watcher:stubborn]
            cmd = %DIR%/stubborn.sh
            graceful_timeout = 1.5
            """, files: ["stubborn.sh": """
                #!/bin/sh
                (trap '' TERM; exec sleep 931) &
                echo $! >> %DIR%/pids
                wait
                """]) { h in
            let leader = try await h.waitPids("stubborn", count: 1)[0]
            let grandchild = try Seen.of(try await waitPidsFile(h, h.dir + "/pids", count: 1)[0])
            let mark = h.mark
            expectOK(try await h.call("stop", ["name": "stubborn", "waiting": true]), keys: ["info"])
            #expect(!grandchild.exists, "the grandchild ignoring SIGTERM survived the stop")
            // Events travel on their own socket: wait for them to arrive.
            let events = try await h.waitEvents(since: mark, count: 4, "kill, kill, reap, stop") { $0.watcher == "stubborn" }
            // SIGTERM, then SIGKILL 1.5 s later; the shell died of the first, its exit is
            // reported only once the group is gone.
            #expect(events.map(\.name) == ["kill", "kill", "reap", "stop"], "\(events)")
            let kills = events.filter { $0.name == "kill" }
            #expect(kills.allSatisfy { $0.pid == leader })
            if kills.count == 2 {
                let gap = kills[1].at - kills[0].at
                #expect(gap > .milliseconds(1300) && gap < .milliseconds(3000), "SIGKILL came \(gap) after SIGTERM")
            }
            #expect(events.first { $0.name == "reap" }?.payload["exit_code"] == -15)
        }
    }

    @Test func killedWorkerTakesItsChildAlongAndIsRespawned() async throws {
        try await withDaemon("""
            [circus]
            loglevel = debug

            [watcher:forker]
            cmd = %DIR%/fork.sh
            graceful_timeout = 30
            """, files: ["fork.sh": """
                #!/bin/sh
                sleep 941 &
                echo $$ $! >> %DIR%/pids
                wait
                """]) { h in
            let first = try await h.waitPids("forker", count: 1)[0]
            let pair = try await waitPidsFile(h, h.dir + "/pids", count: 2)
            #expect(pair[0] == first)
            let child = try Seen.of(pair[1])
            let mark = h.mark
            kill(first, SIGKILL)
            let respawn = try await h.waitEvent(since: mark, timeout: 5, "respawn") {
                $0.topic == "watcher.forker.spawn" && $0.pid != first
            }
            // The child got the stop signal (SIGTERM; the SIGKILL escalation is 30 s away),
            // and was reaped by circusd, its parent since the worker died.
            try await h.waitUntil("the killed worker's child ended and reaped", timeout: 10) { !child.exists }
            try await h.waitLog("forker: pid \(first) exited and left processes running in its process group; sending them SIGTERM")
            try await h.waitLog("reaped pid \(child.pid), left by pid \(first) (killed by signal 15)")
            // The replacement runs, with a child of its own.
            let pids = try await waitPidsFile(h, h.dir + "/pids", count: 4)
            #expect(pids[2] == respawn.pid)
            #expect(try Seen.of(pids[3]).exists)
            #expect(try await h.childPids("forker") == [respawn.pid!])
        }
    }

    /// `timeout` puts itself and its child in a process group of their own (still in the
    /// worker's session): `kill(-pgid)` of the worker's group does not reach them.
    private static let timeoutScript = """
        #!/bin/sh
        timeout 100 sleep 971 &
        echo $! >> %DIR%/pids
        wait
        """

    /// The `timeout` and its `sleep`, once both run in their own group.
    private func timeoutPair(_ h: DaemonHarness, worker: Int32, line: Int = 0) async throws -> [Seen] {
        let timeoutPid = try await waitPidsFile(h, h.dir + "/pids", count: line + 1)[line]
        var sleeper: Int32 = 0
        try await h.waitUntil("timeout's own group and child") {
            sleeper = childrenOf(timeoutPid).first ?? 0
            return sleeper != 0 && processGroup(timeoutPid) == timeoutPid && processGroup(sleeper) == timeoutPid
        }
        #expect(processGroup(timeoutPid) != worker)
        return [try Seen.of(timeoutPid), try Seen.of(sleeper)]
    }

    /// A watcher whose worker runs `timeout`, which puts itself in a group of its own.
    static let timeoutsINI = """
        [watcher:timeouts]
        cmd = %DIR%/timeout.sh
        graceful_timeout = 30
        """

    @Test func stopEndsTheOtherProcessGroupsOfTheSession() async throws {
        try await withDaemon(Self.timeoutsINI, files: ["timeout.sh": Self.timeoutScript]) { h in
            let worker = try await h.waitPids("timeouts", count: 1)[0]
            let pair = try await timeoutPair(h, worker: worker)
            let started = ContinuousClock.now
            expectOK(try await h.call("stop", ["name": "timeouts", "waiting": true]), keys: ["info"])
            #expect(ContinuousClock.now - started < .seconds(10), "ended by SIGTERM, not by the 30 s escalation")
            let left = pair.filter(\.exists)
            #expect(left.isEmpty, "still there after the stop: \(left)")
        }
    }

    @Test func killedWorkerTakesTheOtherGroupsOfItsSessionAlong() async throws {
        try await withDaemon(Self.timeoutsINI, files: ["timeout.sh": Self.timeoutScript]) { h in
            let worker = try await h.waitPids("timeouts", count: 1)[0]
            let pair = try await timeoutPair(h, worker: worker)
            let mark = h.mark
            kill(worker, SIGKILL)
            try await h.waitEvent(since: mark, timeout: 5, "respawn") {
                $0.topic == "watcher.timeouts.spawn" && $0.pid != worker
            }
            try await h.waitUntil("timeout and its sleep ended and reaped", timeout: 10) { !pair.contains(where: \.exists) }
            try await h.waitLog("\(pair[0].pid)); sending them SIGTERM")
        }
    }

    @Test func theSearchForWhatAWorkerLeftRunsOffTheLoop() async throws {
        // circusd reads /proc for the groups a dead worker left on a worker thread: held
        // there (CIRCUSD_TEST_LEFTOVER_GATE), the loop respawns the worker and answers
        // commands, and the groups get the session's signal once the search goes on.
        let h = try await DaemonHarness.launch(
            Self.timeoutsINI, files: ["timeout.sh": Self.timeoutScript],
            environment: ["CIRCUSD_TEST_LEFTOVER_GATE": "%DIR%/leftover-gate"])
        do {
            let worker = try await h.waitPids("timeouts", count: 1)[0]
            let pair = try await timeoutPair(h, worker: worker)
            guard mkfifo(h.dir + "/leftover-gate", 0o600) == 0 else { throw HarnessError("mkfifo: errno \(errno)") }
            let mark = h.mark
            kill(worker, SIGKILL)
            let gate = try #require(
                try await LoopResponsivenessTests.openWhenSamplingWaits(h.dir + "/leftover-gate"),
                "the search never reached the gate")
            try await h.waitEvent(since: mark, timeout: 5, "respawn") {
                $0.topic == "watcher.timeouts.spawn" && $0.pid != worker
            }
            #expect(try await h.status("timeouts") == "active")
            let alive = pair.filter(\.exists)
            #expect(alive.count == 2, "the other group was signalled before the search was over")
            // Later searches (the stop at teardown) go through: the gate is only held while
            // its FIFO exists.
            unlink(h.dir + "/leftover-gate")
            var byte: UInt8 = 1
            #expect(write(gate, &byte, 1) == 1)
            close(gate)
            try await h.waitUntil("timeout and its sleep ended and reaped", timeout: 10) { !pair.contains(where: \.exists) }
            try await h.waitLog("\(pair[0].pid)); sending them SIGTERM")
        } catch {
            await h.teardown()
            throw error
        }
        await h.teardown()
    }

    @Test func reparentedGrandchildHasCircusdAsParentAndGoesWithTheStop() async throws {
        // The subshell forks a sleep and exits: the sleep is orphaned while the worker lives.
        try await withDaemon("""
            [watcher:orphaning]
            cmd = %DIR%/orphaning.sh
            graceful_timeout = 30
            """, files: ["orphaning.sh": """
                #!/bin/sh
                ( sleep 951 & echo $! >> %DIR%/pids )
                exec sleep 952
                """]) { h in
            let leader = try await h.waitPids("orphaning", count: 1)[0]
            let grandchild = try Seen.of(try await waitPidsFile(h, h.dir + "/pids", count: 1)[0])
            try await h.waitUntil("the grandchild re-parented") { ProcStat.read(grandchild.pid)?.ppid != leader }
            #expect(ProcStat.read(grandchild.pid)?.ppid == h.pid, "a re-parented grandchild goes to circusd, the subreaper")
            expectOK(try await h.call("stop", ["name": "orphaning", "waiting": true]), keys: ["info"])
            #expect(!grandchild.exists, "the orphaned grandchild survived the stop")
        }
    }

    @Test func daemonizingProgramIsLeftRunningAndReapedWhenItExits() async throws {
        // A double fork with setsid: the daemon leaves the worker's session and group.
        try await withDaemon("""
            [watcher:daemonizer]
            cmd = %DIR%/daemonize.sh
            graceful_timeout = 30
            """, files: ["daemonize.sh": """
                #!/bin/sh
                ( setsid sh -c 'echo $$ >> %DIR%/daemon; exec sleep 961' & )
                exec sleep 962
                """]) { h in
            try await h.waitPids("daemonizer", count: 1)
            let daemon = try Seen.of(try await waitPidsFile(h, h.dir + "/daemon", count: 1)[0])
            try await h.waitUntil("the daemon re-parented to circusd") { ProcStat.read(daemon.pid)?.ppid == h.pid }
            expectOK(try await h.call("stop", ["name": "daemonizer", "waiting": true]), keys: ["info"])
            // It left the group on purpose: the stop does not end it ...
            #expect(daemon.exists && !daemon.isZombie, "the daemonized program was ended by the stop")
            // ... and when it exits, circusd reaps it and says so.
            kill(daemon.pid, SIGTERM)
            try await h.waitUntil("the daemonized program reaped", timeout: 10) { !daemon.exists }
            try await h.waitUntil("its reap logged") {
                h.log.contains("reaped pid \(daemon.pid) (killed by signal 15): a process that had left its watcher's session, as a program that daemonizes does")
            }
        }
    }
}
