// Commands over several watchers (start, restart and reload without a name, a glob,
// reloadconfig) answer the failure of any of them, naming the watcher, where Circus
// answers ok.

import CircusProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Failures of commands over several watchers") struct MultiWatcherFailureTests {
    static let oneMissingINI = """
        [watcher:good]
        cmd = sleep 1020

        [watcher:bad]
        cmd = /nonexistent/binary
        """

    static let badReason = "bad: exec '/nonexistent/binary': No such file or directory"

    @Test func startAllAnswersTheFailureOfTheWatcherThatCouldNotStart() async throws {
        try await withDaemon(Self.oneMissingINI) { h in
            let good = try await h.waitPids("good", count: 1)
            expectError(try await h.call("start", ["waiting": true]), errno: 6, reason: Self.badReason)
            // The others are started all the same.
            #expect(try await h.status("good") == "active")
            #expect(try await h.childPids("good") == good)
            #expect(try await h.status("bad") == "stopped")
            // Without waiting the answer is ok at once, as in Circus: nothing was tried yet.
            expectOK(try await h.call("start"))
        }
    }

    @Test func restartAllAnswersTheFailureOfTheWatcherThatCouldNotStart() async throws {
        try await withDaemon(Self.oneMissingINI) { h in
            let before = try await h.waitPids("good", count: 1)
            expectError(try await h.call("restart", ["waiting": true]), errno: 6, reason: Self.badReason)
            let after = try await h.waitPids("good", count: 1)
            #expect(after != before)
            #expect(try await h.status("good") == "active")
        }
    }

    @Test func globStartAndRestartAnswerTheFailure() async throws {
        try await withDaemon(Self.oneMissingINI) { h in
            try await h.waitPids("good", count: 1)
            expectError(try await h.call("start", ["name": "*", "waiting": true]), errno: 6, reason: Self.badReason)
            expectError(try await h.call("restart", ["name": "*", "waiting": true]), errno: 6, reason: Self.badReason)
            #expect(try await h.status("good") == "active")
            // A stop cannot fail.
            expectOK(try await h.call("stop", ["name": "*", "waiting": true]))
        }
    }

    @Test func everyFailingWatcherIsNamedInStartOrder() async throws {
        try await withDaemon("""
            [watcher:one]
            cmd = /nonexistent/one

            [watcher:two]
            cmd = /nonexistent/two
            priority = 5

            [watcher:three]
            cmd = sleep 1022
            """) { h in
            try await h.waitPids("three", count: 1)
            expectError(
                try await h.call("start", ["waiting": true]), errno: 6,
                reason: "two: exec '/nonexistent/two': No such file or directory; "
                    + "one: exec '/nonexistent/one': No such file or directory")
        }
    }

    /// A running watcher whose program has gone: its reload cannot spawn.
    @Test func reloadAllAnswersTheFailureOfTheWatcherThatCouldNotSpawn() async throws {
        try await withDaemon("""
            [watcher:script]
            cmd = %DIR%/prog

            [watcher:sleeper]
            cmd = sleep 1023
            """, files: ["prog": "#!/bin/sh\nexec sleep 1024\n"]) { h in
            try await h.waitPids("script", count: 1)
            try await h.waitPids("sleeper", count: 1)
            try FileManager.default.removeItem(atPath: h.dir + "/prog")
            expectError(
                try await h.call("reload", ["waiting": true]), errno: 6,
                reason: "script: exec '\(h.dir)/prog': No such file or directory")
            #expect(try await h.status("sleeper") == "active")
        }
    }

    /// reloadconfig answers the failure of a watcher it added (Circus answers ok).
    @Test func reloadconfigAnswersTheFailureOfAnAddedWatcher() async throws {
        try await withDaemon("""
            [watcher:sleeper]
            cmd = sleep 1025
            """) { h in
            try await h.waitPids("sleeper", count: 1)
            try h.rewriteConfig("""
                [watcher:sleeper]
                cmd = sleep 1025

                [watcher:bad]
                cmd = /nonexistent/binary
                """)
            expectError(try await h.call("reloadconfig", ["waiting": true]), errno: 6, reason: Self.badReason)
            #expect(try await h.status("bad") == "stopped")
            #expect(try await h.status("sleeper") == "active")
        }
    }
}
