// Watcher options against a real daemon: queued `set`/`incr` against a slow job, what
// `add`/`set` report, refusals, misspelled options, and a real virtualenv.

import CircusProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One process that ignores SIGTERM (the ignore survives `exec`), so that stopping it takes
/// the whole graceful_timeout: a `restart` is a slow job.
let stubbornINI = """
    [watcher:slow]
    cmd = sh -c 'trap "" TERM; exec sleep 1000'
    graceful_timeout = 2
    """

@Suite("Options") struct OptionsTests {
    /// Sends `restart slow` without waiting and checks that its job is still running (the
    /// old process is alive) after the requests sent by `during` were answered.
    func duringSlowRestart(_ h: DaemonHarness, _ during: () async throws -> Void) async throws {
        let old = try await h.waitPids("slow", count: 1)
        expectOK(try await h.call("restart", ["name": "slow"]))
        try await during()
        #expect(Proc.isAlive(old[0]), "the restart finished before the queued requests arrived")
        // A waiting command queues behind them all: when it answers, they are done.
        expectOK(try await h.call("start", ["name": "slow", "waiting": true], timeout: .seconds(20)), keys: ["info"])
        #expect(!Proc.isAlive(old[0]))
    }

    @Test func queuedIncrIsNotUndoneByQueuedSet() async throws {
        try await withDaemon(stubbornINI) { h in
            try await duringSlowRestart(h) {
                expectOK(try await h.call("incr", ["name": "slow"]))
                expectOK(try await h.call("set", ["name": "slow", "options": ["graceful_timeout": 1]]))
            }
            let options = try await h.call("get", ["name": "slow", "keys": ["numprocesses", "graceful_timeout"]])["options"]
            #expect(options?["numprocesses"] == 2)
            #expect(options?["graceful_timeout"] == .double(1.0))
            try await h.waitPids("slow", count: 2)
        }
    }

    @Test func queuedSetIsNotUndoneByQueuedIncr() async throws {
        try await withDaemon(stubbornINI) { h in
            try await duringSlowRestart(h) {
                expectOK(try await h.call("set", ["name": "slow", "options": ["numprocesses": 3]]))
                expectOK(try await h.call("decr", ["name": "slow", "nb": 1]))
                expectOK(try await h.call("set", ["name": "slow", "options": ["max_age_variance": 7]]))
            }
            let options = try await h.call("get", ["name": "slow", "keys": ["numprocesses", "max_age_variance"]])["options"]
            #expect(options?["numprocesses"] == 2)
            #expect(options?["max_age_variance"] == 7)
        }
    }

    @Test func queuedIncrSeesQueuedSingleton() async throws {
        try await withDaemon(stubbornINI) { h in
            try await duringSlowRestart(h) {
                expectOK(try await h.call("set", ["name": "slow", "options": ["singleton": true]]))
                expectOK(try await h.call("incr", ["name": "slow", "nb": 3]))
            }
            #expect(try await h.call("get", ["name": "slow", "keys": ["numprocesses"]])["options"]?["numprocesses"] == 1)
        }
    }

    @Test func setErrorsAreAnsweredAtArrival() async throws {
        try await withDaemon(stubbornINI + "\nsingleton = true\n") { h in
            try await duringSlowRestart(h) {
                expectError(try await h.call("set", ["name": "slow", "options": ["numprocesses": 2]]), errno: 5,
                            reasonContains: "Singleton watcher has a single process")
                expectError(try await h.call("set", ["name": "slow", "options": ["graceful_timeout": "x"]]), errno: 3,
                            reason: "'graceful_timeout' isn't a number")
            }
        }
    }

    @Test func numbersComeBackAsCircusFormatsThem() async throws {
        try await withDaemon(sleeperINI) { h in
            let before = try await h.call("get", ["name": "sleeper", "keys": ["warmup_delay", "graceful_timeout"]])
            #expect(before["options"]?["warmup_delay"] == 0)
            #expect(before["options"]?["graceful_timeout"] == .double(2.0))
            expectOK(try await h.call("set", ["name": "sleeper", "waiting": true,
                                              "options": ["warmup_delay": 0, "graceful_timeout": 3, "max_age": true]]))
            let after = try await h.call("get", ["name": "sleeper", "keys": ["warmup_delay", "graceful_timeout", "max_age"]])
            #expect(JSONWriter.string(after["options"]!) == #"{"warmup_delay": 0.0, "graceful_timeout": 3.0, "max_age": 1}"#)
        }
    }

    @Test func addReportsWhatCircusReports() async throws {
        try await withDaemon(sleeperINI) { h in
            expectOK(try await h.call("add", ["name": "bare", "cmd": "sleep 1000"]))
            let bare = try await h.call("options", ["name": "bare"])["options"]
            #expect(bare?["env"] == .null)
            #expect(bare?["args"] == .null)
            #expect(bare?["stdout_stream_conf"] == .null)
            #expect(bare?["stderr_stream_conf"] == .null)
            #expect(bare?["warmup_delay"] == .double(0))
            expectOK(try await h.call("add", ["name": "full", "cmd": "sleep 1000", "args": ["1"],
                                              "options": ["env": ["A": "1"], "warmup_delay": 0, "graceful_timeout": 3]]))
            let full = try await h.call("options", ["name": "full"])["options"]
            #expect(full?["env"] == ["A": "1"])
            #expect(full?["args"] == ["1"])
            #expect(full?["warmup_delay"] == 0)
            #expect(full?["graceful_timeout"] == .double(3))
        }
    }

    @Test func iniOnlyOptionsAreUnknownKeysForAddAndSet() async throws {
        try await withDaemon(sleeperINI) { h in
            expectError(try await h.call("add", ["name": "x", "cmd": "true", "options": ["copy_path": true]]),
                        errno: 3, reason: "unknown key 'copy_path'")
            expectError(try await h.call("set", ["name": "sleeper", "options": ["copy_path": true]]),
                        errno: 3, reason: "unknown key 'copy_path'")
            #expect(try await h.call("list")["watchers"] == ["sleeper"])
        }
    }

    @Test func misspelledOptionIsWarnedAtLoad() async throws {
        try await withDaemon("""
            [watcher:typo]
            cmd = sleep 1000
            numproceses = 2
            """) { h in
            let reply = try await h.call("get", ["name": "typo", "keys": ["numproceses", "numprocesses"]])
            #expect(reply["options"]?["numproceses"] == "2")
            #expect(reply["options"]?["numprocesses"] == 1)
            let warnings = h.log.split(separator: "\n").filter { $0.contains("numproceses") }
            #expect(warnings.count == 1)
            #expect(warnings.first?.contains(
                "circus.ini:7: [watcher:typo] unknown option 'numproceses' is kept as a free-form option: did you mean numprocesses?")
                == true, "\(h.log)")
        }
    }

    @Test func virtualenvChildUsesTheVenv() async throws {
        let venvDir = try DaemonHarness.makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: venvDir) }
        let venv = venvDir + "/venv"
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        make.arguments = ["-m", "venv", "--without-pip", venv]
        try make.run()
        make.waitUntilExit()
        try #require(make.terminationStatus == 0)
        let sites = try FileManager.default.contentsOfDirectory(atPath: venv + "/lib")
        let site = venv + "/lib/" + sites[0] + "/site-packages"
        try "WORD = 'only-in-the-venv'\n".write(toFile: site + "/onlyhere.py", atomically: true, encoding: .utf8)

        try await withDaemon("""
            [watcher:py]
            cmd = python3 %DIR%/probe.py
            copy_env = true
            virtualenv = \(venv)
            """, files: ["probe.py": """
                import os, sys, time, onlyhere
                with open('%DIR%/probe.out', 'w') as f:
                    f.write('\\n'.join([onlyhere.WORD, sys.prefix, os.environ['PATH'].split(':')[0], os.environ['PYTHONPATH']]))
                time.sleep(1000)
                """]) { h in
            let out = try await h.waitFile(h.dir + "/probe.out") { $0.split(separator: "\n").count == 4 }
            let lines = out.split(separator: "\n").map(String.init)
            #expect(lines[0] == "only-in-the-venv")
            #expect(lines[1] == venv)
            #expect(lines[2] == venv + "/bin")
            #expect(lines[3].split(separator: ":").last.map(String.init) == site)
        }
    }

    @Test func missingVirtualenvStopsCircusdWithAClearError() async throws {
        let h = try await DaemonHarness.launch("""
            [watcher:py]
            cmd = python3 -c pass
            copy_env = true
            virtualenv = /nonexistent/venv
            """, waitReady: false)
        #expect(await h.waitExit(timeout: 10))
        #expect(h.log.contains(
            "circus.ini:8: [watcher:py] virtualenv: /nonexistent/venv/lib/python<version>/site-packages,"
                + "/nonexistent/venv/lib/pypy<version>/site-packages does not exist: '/nonexistent/venv' is not a virtualenv"),
            "\(h.log)")
        await h.teardown()
    }
}
