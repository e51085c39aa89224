// Reload of stopped watchers, failure reasons in replies, and reloadconfig reading its
// file off the loop thread, against a real daemon.

import CircusProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Reload and failure reasons") struct ReloadAndReasonTests {
    // MARK: reload of a stopped watcher

    /// Circus starts a stopped watcher on `reload <name>` and ends with its `reload` event.
    @Test func reloadOfAStoppedWatcherPublishesSpawnStartThenReload() async throws {
        try await withDaemon("""
            [watcher:lazy]
            cmd = sleep 1010
            numprocesses = 2
            autostart = false
            """) { h in
            let mark = h.mark
            let reply = try await h.call("reload", ["name": "lazy", "waiting": true])
            expectOK(reply, keys: ["info"])
            #expect(reply["info"]?["started"]?.pids.count == 2, "\(reply)")
            #expect(reply["info"]?["stopped"] == [] && reply["info"]?["kept"] == [], "\(reply)")
            try await h.waitEvent("watcher.lazy.reload", since: mark)
            let topics = h.events(since: mark).filter { $0.watcher == "lazy" }.map(\.name)
            #expect(topics == ["spawn", "spawn", "start", "reload"])
            #expect(try await h.status("lazy") == "active")
        }
    }

    // MARK: reasons

    @Test func startWaitingOfAMissingBinaryAnswersTheExecError() async throws {
        try await withDaemon("""
            [watcher:missing]
            cmd = /nonexistent/binary
            autostart = false
            """) { h in
            let reason = "exec '/nonexistent/binary': No such file or directory"
            expectError(try await h.call("start", ["name": "missing", "waiting": true]), errno: 6, reason: reason)
            #expect(try await h.status("missing") == "stopped")
            // The same cause for the other commands that start it.
            expectError(try await h.call("restart", ["name": "missing", "waiting": true]), errno: 6, reason: reason)
            expectError(try await h.call("reload", ["name": "missing", "waiting": true]), errno: 6, reason: reason)
            // Without waiting the answer is ok: the spawn has not been tried yet.
            expectOK(try await h.call("start", ["name": "missing"]))
        }
    }

    static let reloadableINI = """
        [watcher:sleeper]
        cmd = sleep 1011
        numprocesses = 2
        graceful_timeout = 2
        """

    @Test(arguments: [false, true])
    func reloadconfigOfABrokenFileAnswersItsFileLineReasonAndChangesNothing(waiting: Bool) async throws {
        try await withDaemon(Self.reloadableINI) { h in
            let pids = try await h.waitPids("sleeper", count: 2)
            try h.rewriteConfig("""
                [watcher:sleeper]
                cmd = sleep 1011
                numprocesses = 3
                graceful_timeout = 2

                [watcher:bad]
                cmd = sleep 1012
                numprocesses = many
                """)
            let lines = readFile(h.configPath).components(separatedBy: "\n")
            let line = try #require(lines.firstIndex(of: "numprocesses = many")) + 1
            let mark = h.mark
            let reply = try await h.call("reloadconfig", waiting ? ["waiting": true] : [:])
            expectError(reply, errno: 6,
                        reason: "\(h.configPath):\(line): [watcher:bad] numprocesses: 'many' is not an integer")
            // `start` with no name is a job over every watcher: once it answers, anything
            // the reloadconfig had queued would have run.
            expectOK(try await h.call("start", ["waiting": true]))
            #expect(try await h.call("list")["watchers"] == ["sleeper"])
            let options = try await h.call("options", ["name": "sleeper"])
            #expect(options["options"]?["numprocesses"] == 2, "\(options)")
            #expect(try await h.childPids("sleeper") == pids)
            #expect(!h.events(since: mark).contains { $0.name == "spawn" || $0.name == "kill" })
        }
    }

    @Test func twoReloadconfigsInARowApplyInOrder() async throws {
        try await withDaemon(Self.reloadableINI) { h in
            try await h.waitPids("sleeper", count: 2)
            try h.rewriteConfig(Self.reloadableINI.replacingOccurrences(of: "numprocesses = 2", with: "numprocesses = 4"))
            expectOK(try await h.call("reloadconfig"))
            try h.rewriteConfig(Self.reloadableINI.replacingOccurrences(of: "numprocesses = 2", with: "numprocesses = 1"))
            expectOK(try await h.call("reloadconfig", ["waiting": true]))
            #expect(try await h.call("options", ["name": "sleeper"])["options"]?["numprocesses"] == 1)
            try await h.waitPids("sleeper", count: 1)
        }
    }

    /// The file is read on a worker thread: a configuration that takes long to read (an
    /// include that is a FIFO nobody has written yet) does not stop the daemon answering.
    @Test func reloadconfigReadsTheFileWithoutBlockingTheDaemon() async throws {
        try await withDaemon(Self.reloadableINI) { h in
            try await h.waitPids("sleeper", count: 2)
            let fifo = h.dir + "/slow.ini"
            #expect(mkfifo(fifo, 0o600) == 0)
            try h.rewriteConfig("[circus]\ninclude = slow.ini\n\n" + Self.reloadableINI)
            async let reload = h.call("reloadconfig", ["waiting": true])
            // A writer's non-blocking open succeeds once the daemon opened the FIFO for
            // reading; the reader then blocks in read() until the writer closes.
            var writer: Int32 = -1
            try await h.waitUntil("circusd opening \(fifo)") {
                writer = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
                return writer >= 0
            }
            do {
                // A read on the loop thread would hold this answer until the FIFO is closed.
                let status = try await h.call("status", ["name": "sleeper"], timeout: .seconds(2))
                #expect(status["status"] == "active")
            } catch {
                close(writer)
                _ = try? await reload
                throw error
            }
            let text = Array("[watcher:fresh]\ncmd = sleep 1013\n".utf8)
            #expect(text.withUnsafeBytes { write(writer, $0.baseAddress, $0.count) } == text.count)
            close(writer)
            expectOK(try await reload)
            try await h.waitPids("fresh", count: 1)
        }
    }

    // MARK: reload-all and SIGHUP keep what is stopped

    /// Three stopped watchers that come first in the reload order (higher priority), and a
    /// running one last: its `reload` event comes after the others were passed over.
    static let keepStoppedINI = """
        [watcher:opstopped]
        cmd = sleep 1014
        priority = 10

        [watcher:manual]
        cmd = sleep 1015
        autostart = false
        priority = 10

        [watcher:oneshot]
        cmd = true
        respawn = false
        priority = 10

        [watcher:running]
        cmd = sleep 1016
        numprocesses = 2
        graceful_timeout = 2
        """

    /// Brings the daemon to: `opstopped` stopped by the operator, `manual` never started,
    /// `oneshot` finished, `running` active. Returns the pids of `running`.
    private func prepareStopped(_ h: DaemonHarness) async throws -> [Int32] {
        // Started one after the other: once `running` runs, `oneshot` was started, and
        // `stopped` means its process came and went (events this early may be missed by
        // a subscriber that is still connecting).
        let running = try await h.waitPids("running", count: 2)
        try await h.waitStatus("oneshot", "stopped")
        try await h.waitPids("opstopped", count: 1)
        expectOK(try await h.call("stop", ["name": "opstopped", "waiting": true]), keys: ["info"])
        for name in ["opstopped", "manual", "oneshot"] { #expect(try await h.status(name) == "stopped") }
        return running
    }

    private func expectStillStopped(_ h: DaemonHarness, since mark: Int) async throws {
        for name in ["opstopped", "manual", "oneshot"] {
            #expect(try await h.status(name) == "stopped", "\(name)")
            #expect(!h.events(since: mark).contains { $0.watcher == name }, "\(name): \(h.events(since: mark))")
        }
    }

    @Test func reloadAllReloadsWhatRunsAndLeavesStoppedWatchersStopped() async throws {
        try await withDaemon(Self.keepStoppedINI) { h in
            let old = try await prepareStopped(h)
            let mark = h.mark
            expectOK(try await h.call("reload", ["waiting": true]))
            try await h.waitEvent("watcher.running.reload", since: mark)
            let new = try await h.childPids("running")
            #expect(new.count == 2 && Set(new).isDisjoint(with: old), "\(old) -> \(new)")
            try await expectStillStopped(h, since: mark)
        }
    }

    @Test func sighupReloadsWhatRunsAndLeavesStoppedWatchersStopped() async throws {
        try await withDaemon(Self.keepStoppedINI) { h in
            let old = try await prepareStopped(h)
            let mark = h.mark
            kill(h.pid, SIGHUP)
            // `running` is last in the reload order: its reload event ends the pass.
            try await h.waitEvent("watcher.running.reload", since: mark)
            try await h.waitPids("running", count: 2) { Set($0).isDisjoint(with: old) }
            try await expectStillStopped(h, since: mark)
        }
    }

    @Test func reloadconfigStartsAnAddedAutostartWatcherOnly() async throws {
        try await withDaemon(Self.reloadableINI) { h in
            try await h.waitPids("sleeper", count: 2)
            try h.rewriteConfig(Self.reloadableINI + """


                [watcher:fresh]
                cmd = sleep 1017

                [watcher:later]
                cmd = sleep 1018
                autostart = false
                """)
            expectOK(try await h.call("reloadconfig", ["waiting": true]))
            #expect(try await h.call("list")["watchers"] == ["fresh", "later", "sleeper"])
            #expect(try await h.status("fresh") == "active")
            #expect(try await h.childPids("fresh").count == 1)
            #expect(try await h.status("later") == "stopped")
        }
    }

    @Test func reloadconfigKeepsAChangedStoppedWatcherStoppedAndRestartsAChangedRunningOne() async throws {
        let ini = """
            [watcher:running]
            cmd = sleep 1021
            graceful_timeout = 2

            [watcher:halted]
            cmd = sleep 1022
            graceful_timeout = 2
            """
        try await withDaemon(ini) { h in
            let before = try await h.waitPids("running", count: 1)
            _ = try await h.waitPids("halted", count: 1)
            expectOK(try await h.call("stop", ["name": "halted", "waiting": true]), keys: ["info"])
            try h.rewriteConfig(ini.replacing("sleep 1021", with: "sleep 1031").replacing("sleep 1022", with: "sleep 1032"))
            expectOK(try await h.call("reloadconfig", ["waiting": true]))
            let after = try await h.childPids("running")
            #expect(after.count == 1)
            #expect(Set(after).isDisjoint(with: before))
            #expect(try await h.status("halted") == "stopped")
            #expect(try await h.childPids("halted") == [])
            // The new configuration is in force for the next start.
            expectOK(try await h.call("start", ["name": "halted", "waiting": true]), keys: ["info"])
            #expect(try await h.call("get", ["name": "halted", "keys": ["cmd"]])["options"] == ["cmd": "sleep 1032"])
        }
    }
}
