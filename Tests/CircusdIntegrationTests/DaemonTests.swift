// circusd as a process: configuration errors, the pidfile, signals and --daemon.

import CircusProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A watcher that leaves a mark if it is ever spawned.
let markerINI = """
    [watcher:marker]
    cmd = sh -c 'touch %DIR%/spawned; exec sleep 100'
    """

struct BadConfig: Sendable, CustomTestStringConvertible {
    let name: String
    let ini: String
    /// The text of the line the error must point at.
    let line: String
    let option: String
    var testDescription: String { name }
}

@Suite("Daemon") struct DaemonTests {
    static let badConfigs: [BadConfig] = [
        BadConfig(name: "negative numprocesses", ini: markerINI + "\n\n[watcher:bad]\ncmd = sleep 1\nnumprocesses = -1\n",
                  line: "numprocesses = -1", option: "numprocesses"),
        BadConfig(name: "unknown stop_signal", ini: markerINI + "\n\n[watcher:bad]\ncmd = sleep 1\nstop_signal = SIGFOO\n",
                  line: "stop_signal = SIGFOO", option: "stop_signal"),
        BadConfig(name: "missing cmd", ini: markerINI + "\n\n[watcher:bad]\nnumprocesses = 1\n",
                  line: "[watcher:bad]", option: "cmd"),
        BadConfig(name: "bad umask", ini: "[circus]\numask = 9z\n\n" + markerINI,
                  line: "umask = 9z", option: "umask"),
        // Refused by the plugin itself when it starts (before any watcher): its section.
        BadConfig(name: "plugin option", ini: markerINI + "\n\n[plugin:stats]\nuse = statsd\nport = notaport\n",
                  line: "[plugin:stats]", option: "option port = \"notaport\": not an integer"),
    ]

    @Test(arguments: badConfigs)
    func configErrorExitsNonZeroWithLocationAndSpawnsNothing(_ bad: BadConfig) async throws {
        try await withDaemon(bad.ini, waitReady: false) { h in
            #expect(await h.waitExit(timeout: 10), "circusd kept running with a bad config")
            #expect(h.process.terminationStatus != 0)
            let lines = readFile(h.configPath).components(separatedBy: "\n")
            let number = (lines.firstIndex(of: bad.line) ?? -1) + 1
            let stderr = h.log
            #expect(stderr.contains("circus.ini:\(number)"), "stderr: \(stderr)")
            #expect(stderr.contains(bad.option), "stderr: \(stderr)")
            #expect(!FileManager.default.fileExists(atPath: "\(h.dir)/spawned"), "a process was spawned")
        }
    }

    /// Runs the binary to completion (for the command-line basics that start no daemon).
    func runBinary(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        let dir = try DaemonHarness.makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DaemonHarness.binary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: dir)
        _ = FileManager.default.createFile(atPath: dir + "/out", contents: nil)
        _ = FileManager.default.createFile(atPath: dir + "/err", contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: dir + "/out")
        process.standardError = FileHandle(forWritingAtPath: dir + "/err")
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + .seconds(10)
        while process.isRunning {
            if ContinuousClock.now > deadline {
                process.terminate()
                throw HarnessError("circusd \(arguments) did not exit within 10 s")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return (process.terminationStatus, readFile(dir + "/out"), readFile(dir + "/err"))
    }

    @Test func commandLineBasics() async throws {
        let version = try await runBinary(["--version"])
        #expect(version.status == 0)
        #expect(version.stdout == "0.19.0 (circus-swift 0.2.0)\n")
        // No configuration: the usage, exit 0.
        let usage = try await runBinary([])
        #expect(usage.status == 0)
        #expect((usage.stdout + usage.stderr).contains("circusd"))
        #expect((usage.stdout + usage.stderr).contains("--pidfile"))
        // A missing file: exit 1, naming the path.
        let missing = try await runBinary(["/nonexistent/circus.ini"])
        #expect(missing.status == 1)
        #expect((missing.stdout + missing.stderr).contains("/nonexistent/circus.ini"))
    }

    @Test func pidfileWrittenAndRemoved() async throws {
        try await withDaemon(sleeperINI, arguments: ["--pidfile", "%DIR%/circusd.pid"]) { h in
            let path = "\(h.dir)/circusd.pid"
            #expect(readFile(path) == "\(h.pid)\n")
            let mode = (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0
            #expect(mode == 0o644)
            expectOK(try await h.call("quit", ["waiting": true]))
            #expect(await h.waitExit(timeout: 10))
            #expect(h.process.terminationStatus == 0)
            #expect(!FileManager.default.fileExists(atPath: path), "pidfile left behind")
        }
    }

    @Test func stalePidfileOfALiveProcessRefusesToStart() async throws {
        // The pid of this test process: alive, and not the daemon's.
        let mine = getpid()
        try await withDaemon(markerINI, arguments: ["--pidfile", "%DIR%/stale.pid"],
                                               files: ["stale.pid": "\(mine)\n"], waitReady: false) { h in
            #expect(await h.waitExit(timeout: 10))
            #expect(h.process.terminationStatus == 1)
            let path = "\(h.dir)/stale.pid"
            #expect(h.stdout.contains("pid file '\(path)' is in use: it names pid \(mine), which is running"),
                    "stdout: \(h.stdout) stderr: \(h.log)")
            #expect(readFile(path) == "\(mine)\n")
            #expect(!FileManager.default.fileExists(atPath: "\(h.dir)/spawned"))
        }
    }

    @Test func deadPidInPidfileIsOverwritten() async throws {
        try await withDaemon(sleeperINI, arguments: ["--pidfile", "%DIR%/old.pid"],
                                               files: ["old.pid": "99999999\n"]) { h in
            #expect(readFile("\(h.dir)/old.pid") == "\(h.pid)\n")
        }
    }

    @Test(arguments: [SIGTERM, SIGINT, SIGQUIT])
    func terminatingSignalStopsEveryChildAndExitsZero(_ signo: Int32) async throws {
        try await withDaemon(sleeperINI + "\n\n[watcher:other]\ncmd = sleep 1001\n") { h in
            let pids = try await h.waitPids("sleeper", count: 2) + h.waitPids("other", count: 1)
            let mark = h.mark
            kill(h.pid, signo)
            #expect(await h.waitExit(timeout: 10))
            #expect(h.process.terminationReason == .exit)
            #expect(h.process.terminationStatus == 0)
            #expect(pids.allSatisfy { h.trackedStat($0) == nil }, "children left after SIGTERM")
            // Every child was stopped through the stop procedure.
            let stops = h.events(since: mark).filter { $0.name == "stop" }.map(\.watcher)
            #expect(Set(stops) == ["sleeper", "other"])
        }
    }

    /// SIGTERM is not held up by a slow start: the warmup sleep is interrupted, the
    /// watchers not started yet never start, and the daemon exits with no child left.
    @Test func sigtermDuringASlowStartExitsPromptly() async throws {
        try await withDaemon("""
            [circus]
            warmup_delay = 60

            [watcher:aaa]
            cmd = sleep 1003
            numprocesses = 3
            warmup_delay = 60

            [watcher:zzz]
            cmd = sleep 1004
            """) { h in
            let first = try await h.waitPids("aaa", count: 1)
            #expect(try await h.call("status", ["name": "aaa"])["status"] == "starting")
            kill(h.pid, SIGTERM)
            #expect(await h.waitExit(timeout: 10), "a 60 s warmup must not delay SIGTERM")
            #expect(h.process.terminationStatus == 0)
            #expect(first.allSatisfy { h.trackedStat($0) == nil }, "children left after SIGTERM")
            #expect(!h.events().contains { $0.watcher == "zzz" }, "zzz was never started")
        }
    }

    @Test func sighupReloadsWithNewPids() async throws {
        try await withDaemon(sleeperINI) { h in
            let old = try await h.waitPids("sleeper", count: 2)
            let mark = h.mark
            kill(h.pid, SIGHUP)
            try await h.waitEvent("watcher.sleeper.reload", since: mark)
            try await h.waitPids("sleeper", count: 2) { Set($0).isDisjoint(with: old) }
            #expect(h.process.isRunning)
        }
    }

    @Test func sighupReadsTheConfigurationAgain() async throws {
        try await withDaemon(sleeperINI + "\n\n[watcher:steady]\ncmd = sleep 1001\n") { h in
            let old = try await h.waitPids("sleeper", count: 2)
            let steady = try await h.waitPids("steady", count: 1)
            try h.rewriteConfig("""
                [watcher:sleeper]
                cmd = sleep 1000
                numprocesses = 3
                graceful_timeout = 2

                [watcher:steady]
                cmd = sleep 1001

                [watcher:fresh]
                cmd = sleep 1002
                """)
            let mark = h.mark
            kill(h.pid, SIGHUP)
            // The new watcher starts, the resized one grows, and every watcher that the
            // diff did not restart is reloaded gracefully (new pids). The file is read on
            // a worker thread: `fresh` exists once that read came back.
            try await h.waitUntil("fresh added") { try await h.call("list")["watchers"]?.arrayValue?.contains("fresh") == true }
            try await h.waitPids("fresh", count: 1)
            try await h.waitEvent("watcher.steady.reload", since: mark)
            try await h.waitPids("sleeper", count: 3) { Set($0).isDisjoint(with: old) }
            try await h.waitPids("steady", count: 1) { Set($0).isDisjoint(with: steady) }
            #expect(h.process.isRunning)
        }
    }

    @Test func sigusr1KeepsTheDaemonAliveAndReopensTheLog() async throws {
        try await withDaemon(sleeperINI, arguments: ["--log-output", "%DIR%/out.log"]) { h in
            let pids = try await h.waitPids("sleeper", count: 2)
            let log = "\(h.dir)/out.log"
            try await h.waitFile(log) { $0.contains("sleeper started") }
            try FileManager.default.moveItem(atPath: log, toPath: log + ".1")
            // Each signal is handled: the log is opened again at its path (a killed daemon
            // would not).
            kill(h.pid, SIGUSR1)
            try await h.waitUntil("log reopened") { FileManager.default.fileExists(atPath: log) }
            try FileManager.default.moveItem(atPath: log, toPath: log + ".2")
            kill(h.pid, SIGUSR1)
            try await h.waitUntil("log reopened again") { FileManager.default.fileExists(atPath: log) }
            // The daemon still answers afterwards.
            expectOK(try await h.call("list"), keys: ["watchers"])
            #expect(h.process.isRunning)
            #expect(try await h.childPids("sleeper") == pids)
            // The log was reopened: new lines go to a fresh file at the configured path.
            expectOK(try await h.call("stop", ["name": "sleeper", "waiting": true]), keys: ["info"])
            try await h.waitFile(log) { $0.contains("sleeper stopped") }
            #expect(!readFile(log + ".1").contains("sleeper stopped"))
            #expect(!readFile(log + ".2").contains("sleeper stopped"))
        }
    }

    @Test func daemonFlagDetaches() async throws {
        try await withDaemon(sleeperINI, arguments: ["--daemon", "--pidfile", "%DIR%/d.pid"],
                                               waitReady: false) { h in
            #expect(await h.waitExit(timeout: 10), "the launched process must exit once detached")
            #expect(h.process.terminationStatus == 0)
            let text = try await h.waitFile("\(h.dir)/d.pid") { $0.hasSuffix("\n") }
            let detached = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            #expect(detached > 0 && detached != h.pid)
            h.detachedPid.withLock { $0 = detached }
            #expect(Proc.isAlive(detached))
            try await h.waitUntil("detached daemon answers") {
                (try? await h.call("list", timeout: .milliseconds(500)))?["status"] == "ok"
            }
            let pids = try await h.waitPids("sleeper", count: 2)
            for pid in pids { #expect(ProcStat.read(pid)?.ppid == detached) }
            // A session leader of its own, not in our session.
            expectOK(try await h.call("quit", ["waiting": true]))
            try await h.waitUntil("detached daemon gone", timeout: 10) { !Proc.isAlive(detached) }
            try await h.waitUntil("pidfile removed") { !FileManager.default.fileExists(atPath: "\(h.dir)/d.pid") }
        }
    }
}
