// Hooks named in the configuration, against the built circusd: a real library compiled
// here with `cc -shared` from Fixtures/testhooks.c and the plugin header alone, its calls
// logged to a file ($HOOK_LOG), and the events read from the pub/sub socket.

import CircusProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The hook fixture compiled into a fresh directory.
struct HookLibrary {
    let dir: String
    let path: String

    static func build() throws -> HookLibrary {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let dir = try DaemonHarness.makeTempDir()
        let library = HookLibrary(dir: dir, path: dir + "/libtesthooks.so")
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cc.arguments = ["cc", "-shared", "-fPIC", "-O2", "-I", root + "/include", "-o", library.path,
                        root + "/Tests/CircusdIntegrationTests/Fixtures/testhooks.c"]
        try cc.run()
        cc.waitUntilExit()
        guard cc.terminationStatus == 0 else {
            try? FileManager.default.removeItem(atPath: dir)
            throw HarnessError("cc could not build the hook fixture (status \(cc.terminationStatus))")
        }
        return library
    }
}

/// Runs `body` against circusd running `ini`, where `%LIB%` is the hook library and
/// `$HOOK_LOG` names `<dir>/hook.log`.
func withHookDaemon(_ ini: String, files: [String: String] = [:], waitReady: Bool = true,
                    sourceLocation: SourceLocation = #_sourceLocation,
                    _ body: (DaemonHarness, HookLibrary) async throws -> Void) async throws {
    let library = try HookLibrary.build()
    defer { try? FileManager.default.removeItem(atPath: library.dir) }
    let harness = try await DaemonHarness.launch(
        ini.replacingOccurrences(of: "%LIB%", with: library.path),
        files: files, environment: ["HOOK_LOG": "%DIR%/hook.log"], waitReady: waitReady)
    do {
        try await body(harness, library)
    } catch {
        await harness.teardown(sourceLocation: sourceLocation)
        throw error
    }
    await harness.teardown(sourceLocation: sourceLocation)
}

extension DaemonHarness {
    /// The events of `watcher` since `mark`, as `spawn`, `hook_success before_start`, ...
    func watcherEvents(_ watcher: String, since mark: Int) -> [String] {
        events(since: mark).filter { $0.watcher == watcher }.map { event in
            event.name.hasPrefix("hook_") ? "\(event.name) \(event.payload["name"]?.stringValue ?? "?")" : event.name
        }
    }

    /// Waits for `watcher`'s event rendered as `last` (see `watcherEvents`), then returns
    /// all of the watcher's events since `mark`.
    func waitWatcherEvents(_ watcher: String, since mark: Int, through last: String, timeout: Double = 5)
        async throws -> [String]
    {
        try await waitUntil("\(watcher): \(last)", timeout: timeout) {
            self.watcherEvents(watcher, since: mark).contains(last)
        }
        return watcherEvents(watcher, since: mark)
    }

    /// Starts `watcher` and waits for its `start` event, so that a mark taken next sees
    /// nothing of the start (the SUB reader may lag behind the control reply).
    func startAndSeeItStart(_ watcher: String) async throws {
        let mark = self.mark
        expectOK(try await call("start", ["name": .string(watcher), "waiting": true]), keys: ["info"])
        _ = try await waitWatcherEvents(watcher, since: mark, through: "start")
    }

    /// The hook log's lines: `symbol hook_name request-json`.
    var hookLog: [String] {
        ((try? String(contentsOfFile: dir + "/hook.log", encoding: .utf8)) ?? "")
            .split(separator: "\n").map(String.init)
    }

    /// The request a fixed-signature hook received for `hook`, the last time.
    func hookRequest(_ hook: String) throws -> JSON {
        guard let line = hookLog.last(where: { $0.split(separator: " ").dropFirst().first.map(String.init) == hook }),
              let brace = line.firstIndex(of: "{")
        else { throw HarnessError("no \(hook) call in the hook log: \(hookLog)") }
        return try JSONParser.parse(String(line[brace...]))
    }
}

private let allHooksINI = """
    [watcher:w]
    cmd = sleep 100
    autostart = false
    hooks.before_start = %LIB%:allow
    hooks.after_start = %LIB%:allow
    hooks.before_spawn = %LIB%:allow
    hooks.after_spawn = %LIB%:allow
    hooks.before_stop = %LIB%:allow
    hooks.after_stop = %LIB%:allow
    hooks.before_signal = %LIB%:allow
    hooks.after_signal = %LIB%:allow
    hooks.before_reap = %LIB%:allow
    hooks.after_reap = %LIB%:allow
    hooks.extended_stats = %LIB%:allow
    """

/// A second watcher that is started to put a known event after the ones under test.
let markerWatcher = """

    [watcher:marker]
    cmd = sleep 100
    autostart = false
    """

@Suite("Hooks") struct HookTests {
    @Test func everyHookFiresInCircusOrderWithItsArguments() async throws {
        try await withHookDaemon(allHooksINI) { h, _ in
            var mark = h.mark
            expectOK(try await h.call("start", ["name": "w", "waiting": true]), keys: ["info"])
            let start = try await h.waitWatcherEvents("w", since: mark, through: "start")
            #expect(start == [
                "hook_success before_start", "hook_success before_spawn", "hook_success after_spawn", "spawn",
                "hook_success after_start", "start",
            ])
            let pid = try #require(try await h.childPids("w").first)
            #expect(try h.hookRequest("after_spawn")["pid"] == .int(Int64(pid)))
            #expect(try h.hookRequest("before_start").keys == ["watcher", "hook", "time"])
            #expect(try h.hookRequest("before_start")["watcher"] == "w")

            // extended_stats is called once per process with its stats; Circus calls it
            // directly, so it publishes no hook event (the stop sequence below has none).
            mark = h.mark
            let stats = try await h.call("stats", ["name": "w", "extended": true])
            expectOK(stats, keys: ["name", "info"])
            let extended = try h.hookRequest("extended_stats")
            #expect(extended["pid"] == .int(Int64(pid)) && extended["stats"]?["pid"] == .int(Int64(pid)))
            #expect(extended["stats"]?["cmdline"] == stats["info"]?[String(pid)]?["cmdline"])
            expectOK(try await h.call("stop", ["name": "w", "waiting": true]), keys: ["info"])
            let stop = try await h.waitWatcherEvents("w", since: mark, through: "hook_success after_stop")
            #expect(stop == [
                "hook_success before_stop", "hook_success before_signal", "hook_success after_signal", "kill",
                "hook_success before_reap", "reap", "hook_success after_reap", "stop", "hook_success after_stop",
            ])
            let signal = try h.hookRequest("before_signal")
            #expect(signal["pid"] == .int(Int64(pid)) && signal["signum"] == 15)
            let reap = try h.hookRequest("after_reap")
            #expect(reap.keys == ["watcher", "hook", "time", "process_pid", "exit_code", "process_status"])
            #expect(reap["process_pid"] == .int(Int64(pid)) && reap["exit_code"] == -15 && reap["process_status"] == .null)
            // What a hook logs through the host goes to circusd's log.
            try await h.waitLog("w before_start hook: allow was called")
        }
    }

    @Test func beforeStartSayingNoLeavesTheWatcherStoppedWithNoSpawn() async throws {
        try await withHookDaemon("""
            [watcher:w]
            cmd = sleep 100
            autostart = false
            hooks.before_start = %LIB%:deny
            """ + markerWatcher) { h, _ in
            let mark = h.mark
            expectError(try await h.call("start", ["name": "w", "waiting": true]), errno: 6,
                        reasonContains: "the before_start hook of 'w' refused the start")
            #expect(try await h.status("w") == "stopped")
            // The marker's start comes after everything w published.
            expectOK(try await h.call("start", ["name": "marker", "waiting": true]), keys: ["info"])
            _ = try await h.waitWatcherEvents("marker", since: mark, through: "start")
            // Circus publishes hook_success for a hook that returned False.
            #expect(h.watcherEvents("w", since: mark) == ["hook_success before_start"])
            #expect(h.hookLog.count == 1)
        }
    }

    @Test func aFailingHookAbortsTheStartUnlessItsFailureIsIgnored() async throws {
        try await withHookDaemon("""
            [watcher:strict]
            cmd = sleep 100
            autostart = false
            hooks.before_start = %LIB%:fail

            [watcher:lenient]
            cmd = sleep 100
            autostart = false
            hooks.before_start = %LIB%:fail, true
            """ + markerWatcher) { h, _ in
            let mark = h.mark
            expectError(try await h.call("start", ["name": "strict", "waiting": true]), errno: 6,
                        reasonContains: "the before_start hook of 'strict' refused the start")
            expectOK(try await h.call("start", ["name": "lenient", "waiting": true]), keys: ["info"])
            #expect(try await h.waitWatcherEvents("lenient", since: mark, through: "start")
                == ["hook_failure before_start", "spawn", "start"])
            expectOK(try await h.call("start", ["name": "marker", "waiting": true]), keys: ["info"])
            _ = try await h.waitWatcherEvents("marker", since: mark, through: "start")
            #expect(h.watcherEvents("strict", since: mark) == ["hook_failure before_start"])
            #expect(try await h.status("strict") == "stopped")
            let failure = try #require(h.events(since: mark).first { $0.watcher == "strict" })
            #expect(failure.keys == ["name", "time", "error"])
            #expect(failure.payload["error"] == "hook before_start failed: the database is down")
            try await h.waitLog("Hook 'before_start' of strict failed: hook before_start failed: the database is down")
        }
    }

    @Test func aDeclaredSignatureGetsTheArgumentsItNamesThroughLibffi() async throws {
        try await withHookDaemon("""
            [watcher:w]
            cmd = sleep 100
            autostart = false
            hooks.before_signal = %LIB%:typed_signal(pid: long, signum: int, watcher: const char *) -> bool
            """) { h, _ in
            try await h.startAndSeeItStart("w")
            let pid = try #require(try await h.childPids("w").first)
            let mark = h.mark
            expectOK(try await h.call("stop", ["name": "w", "waiting": true]), keys: ["info"])
            #expect(try await h.waitWatcherEvents("w", since: mark, through: "stop")
                == ["hook_success before_signal", "kill", "reap", "stop"])
            #expect(h.hookLog == ["typed_signal pid=\(pid) signum=15 w"])
            let reap = try #require(h.events(since: mark).first { $0.name == "reap" })
            #expect(reap.payload["exit_code"] == -15)
        }
    }

    @Test func extendedStatsThroughLibffiGetsThePidAndTheStatsAsJSON() async throws {
        try await withHookDaemon("""
            [watcher:w]
            cmd = sleep 100
            numprocesses = 2
            autostart = false
            hooks.extended_stats = %LIB%:typed_stats(pid: int, stats: const char *, hook_name: const char *) -> void
            """) { h, _ in
            expectOK(try await h.call("start", ["name": "w", "waiting": true]), keys: ["info"])
            let pids = try await h.childPids("w").sorted()
            // A void hook counts as returning None: for extended_stats that changes nothing.
            let reply = try await h.call("stats", ["name": "w", "extended": true])
            expectOK(reply, keys: ["name", "info"])
            #expect(reply["info"]?.keys.sorted() == pids.map(String.init).sorted())
            let lines = h.hookLog
            #expect(lines.count == 2)
            for pid in pids {
                let line = try #require(lines.first { $0.hasPrefix("typed_stats pid=\(pid) extended_stats {") })
                let stats = try JSONParser.parse(String(line[line.firstIndex(of: "{")!...]))
                #expect(stats["pid"] == .int(Int64(pid)) && stats["cmdline"] == reply["info"]?[String(pid)]?["cmdline"])
            }
            // `stats <name> <pid>` asks about that process only.
            _ = try await h.call("stats", ["name": "w", "process": .int(Int64(pids[0])), "extended": true])
            #expect(h.hookLog.count == 3 && h.hookLog[2].hasPrefix("typed_stats pid=\(pids[0]) "))
        }
    }

    @Test func beforeSignalSayingNoKeepsTheStopSignalButNotSIGKILL() async throws {
        try await withHookDaemon("""
            [watcher:w]
            cmd = sleep 100
            autostart = false
            graceful_timeout = 1
            hooks.before_signal = %LIB%:veto_signal(signum: int) -> int
            """) { h, _ in
            try await h.startAndSeeItStart("w")
            let mark = h.mark
            // The signal command goes through before_signal too (and publishes no kill).
            expectOK(try await h.call("signal", ["name": "w", "signum": 15]))
            expectOK(try await h.call("stop", ["name": "w", "waiting": true]), keys: ["info"])
            // The kill event is published whatever the hook said (Circus does too); no TERM
            // was sent, so the graceful timeout ran out and SIGKILL ended the process.
            let events = try await h.waitWatcherEvents("w", since: mark, through: "stop")
            #expect(events == [
                "hook_success before_signal",
                "hook_success before_signal", "kill", "hook_success before_signal", "kill", "reap", "stop",
            ], "\(events)\n\(h.log)")
            let reap = try #require(h.events(since: mark).first { $0.name == "reap" })
            #expect(reap.payload["exit_code"] == -9)
            #expect(h.hookLog == ["veto_signal signum=15", "veto_signal signum=15", "veto_signal signum=9"])
        }
    }

    @Test func aHungHookFailsAtItsDeadlineWhileOtherWatchersAreServed() async throws {
        try await withHookDaemon("""
            [watcher:slow]
            cmd = sleep 100
            autostart = false
            hooks.before_start = %LIB%:hold
            """ + markerWatcher) { h, _ in
            let release = h.dir + "/hook.log.release"
            // Whatever happens, the held hook threads end with the test.
            defer { _ = FileManager.default.createFile(atPath: release, contents: nil) }
            // hook_timeout (30 s by default) is set at run time like any live option.
            let mark = h.mark
            expectError(try await h.call("set", ["name": "slow", "options": ["hook_timeout": 0]]), errno: 3,
                        reason: "'hook_timeout' must be more than 0 seconds")
            expectOK(try await h.call("start", ["name": "slow"]))
            try await h.waitUntil("the hold hook to be called") { h.hookLog.count == 1 }
            // While it is held: the control channel answers, another watcher starts and stops.
            #expect(try await h.status("slow") == "stopped")
            expectOK(try await h.call("start", ["name": "marker", "waiting": true]), keys: ["info"])
            expectOK(try await h.call("stop", ["name": "marker", "waiting": true]), keys: ["info"])
            #expect(try await h.waitWatcherEvents("marker", since: mark, through: "stop") == ["spawn", "start", "kill", "reap", "stop"])
            #expect(h.watcherEvents("slow", since: mark) == [])
            // Released, the hook says yes and the start goes on.
            _ = FileManager.default.createFile(atPath: release, contents: nil)
            #expect(try await h.waitWatcherEvents("slow", since: mark, through: "start") == ["hook_success before_start", "spawn", "start"])
            expectOK(try await h.call("stop", ["name": "slow", "waiting": true]), keys: ["info"])

            // Past hook_timeout the call is a failure, and before_start's failure aborts the start.
            try FileManager.default.removeItem(atPath: release)
            expectOK(try await h.call("set", ["name": "slow", "options": ["hook_timeout": 1]]))
            let timed = h.mark
            expectOK(try await h.call("start", ["name": "slow"]))
            let failure = try await h.waitEvent(since: timed, timeout: 5, "hook_failure of slow") {
                $0.watcher == "slow" && $0.name == "hook_failure"
            }
            #expect(failure.payload["error"] == "hold did not return within hook_timeout (1.0 s)")
            #expect(try await h.status("slow") == "stopped")
            // The watcher is not stuck behind the held call: its next hook runs on a new thread.
            let again = h.mark
            expectError(try await h.call("start", ["name": "slow", "waiting": true]), errno: 6,
                        reasonContains: "the before_start hook of 'slow' refused the start")
            #expect(h.hookLog.count == 3)
            #expect(try await h.waitWatcherEvents("slow", since: again, through: "hook_failure before_start")
                == ["hook_failure before_start"])
        }
    }

    @Test func reloadconfigOpensNewHooksAndRefusesABadOneBeforeChangingAnything() async throws {
        let ini = """
            [watcher:w]
            cmd = sleep 100
            autostart = false
            """
        try await withHookDaemon(ini) { h, library in
            // A hook whose symbol does not exist: reloadconfig answers its file:line, nothing changes.
            try h.rewriteConfig(ini + "\nhooks.before_start = \(library.path):nope\n")
            let lines = readFile(h.configPath).components(separatedBy: "\n")
            let line = try #require(lines.firstIndex(of: "hooks.before_start = \(library.path):nope")) + 1
            expectError(try await h.call("reloadconfig", ["waiting": true]), errno: 6,
                        reason: "\(h.configPath):\(line): [watcher:w] hooks.before_start: \(library.path) has no symbol nope")
            // A good one: the watcher gets it.
            try h.rewriteConfig(ini + "\nhooks.before_start = \(library.path):deny\n")
            expectOK(try await h.call("reloadconfig", ["waiting": true]))
            let mark = try await h.eventBarrier(on: "w") + 1  // past what the reload published
            expectError(try await h.call("start", ["name": "w", "waiting": true]), errno: 6,
                        reasonContains: "the before_start hook of 'w' refused the start")
            #expect(try await h.waitWatcherEvents("w", since: mark, through: "hook_success before_start")
                == ["hook_success before_start"])
            #expect(h.hookLog.count == 1)
        }
    }

    @Test func reloadconfigKeepsAWatcherWhoseLinesOnlyMoved() async throws {
        let ini = """
            [watcher:w]
            cmd = sleep 100
            hooks.after_spawn = %LIB%:allow
            graceful_timeout = 3
            """
        try await withHookDaemon(ini) { h, library in
            let pids = try await h.childPids("w")
            try #require(pids.count == 1)
            // The same options, each on another line (and the hook first).
            try h.rewriteConfig("""
                # moved
                [watcher:w]
                hooks.after_spawn = \(library.path):allow

                graceful_timeout = 3
                cmd = sleep 100
                """)
            let mark = h.mark
            expectOK(try await h.call("reloadconfig", ["waiting": true]))
            // A later spawn must follow anything the reload did: only it is seen.
            expectOK(try await h.call("incr", ["name": "w", "waiting": true]), keys: ["numprocesses"])
            _ = try await h.waitWatcherEvents("w", since: mark, through: "spawn")
            #expect(h.watcherEvents("w", since: mark).filter { !$0.hasPrefix("hook_") } == ["spawn"])
            #expect(try await h.childPids("w").contains(pids[0]))
        }
    }

    @Test func hooksAPluginRegisteredAreAskedAfterTheConfigurationsOwn() async throws {
        let fixtures = try FixturePlugin.directory()
        defer { try? FileManager.default.removeItem(atPath: fixtures) }
        let gatekeeper = try FixturePlugin.build("gatekeeper", into: fixtures)
        // gatekeeper: before_start of guarded* allows all but guarded_no; its after_start
        // answers without "allow", which is a failure.
        try await withHookDaemon("""
            [watcher:guarded_no]
            cmd = sleep 100
            autostart = false

            [watcher:guarded_strict]
            cmd = sleep 100
            autostart = false

            [watcher:guarded_lenient]
            cmd = sleep 100
            autostart = false
            hooks.after_start = %LIB%:allow, true

            [plugin:gate]
            use = \(gatekeeper)
            """) { h, _ in
            try await h.waitUntil("the gate plugin started") {
                try await h.call("plugins")["plugins"]?["gate"]?["state"] == "started"
            }
            let mark = h.mark
            expectError(try await h.call("start", ["name": "guarded_no", "waiting": true]), errno: 6,
                        reasonContains: "the before_start hook of 'guarded_no' refused the start")
            #expect(try await h.status("guarded_no") == "stopped")
            // A plugin's failing after_start aborts the start, as the watcher's own would.
            expectError(try await h.call("start", ["name": "guarded_strict", "waiting": true]), errno: 6,
                        reasonContains: "the after_start hook of 'guarded_strict' refused the start")
            #expect(try await h.waitWatcherEvents("guarded_strict", since: mark, through: "stop") == [
                "hook_success before_start", "spawn", "hook_failure after_start", "kill", "reap", "stop",
            ])
            let failure = try #require(h.events(since: mark).first { $0.watcher == "guarded_strict" && $0.name == "hook_failure" })
            #expect(failure.payload["error"]
                == "plugin gate: plugin gate answered the after_start hook without a boolean \"allow\"")
            // With `, true` on the watcher's own after_start, the plugin's failure is ignored
            // too; the watcher's hook is asked first.
            expectOK(try await h.call("start", ["name": "guarded_lenient", "waiting": true]), keys: ["info"])
            #expect(try await h.waitWatcherEvents("guarded_lenient", since: mark, through: "start") == [
                "hook_success before_start", "spawn", "hook_success after_start", "hook_failure after_start", "start",
            ])
            #expect(h.watcherEvents("guarded_no", since: mark) == ["hook_success before_start"])
        }
    }

    static let badHookConfigs: [BadConfig] = [
        BadConfig(name: "unknown type in a declared signature",
                  ini: markerINI + "\n\n[watcher:bad]\ncmd = sleep 1\nhooks.after_spawn = %LIB%:typed_signal(pid: pid_tt) -> bool\n",
                  line: "hooks.after_spawn = %LIB%:typed_signal(pid: pid_tt) -> bool",
                  option: "hooks.after_spawn: unknown type 'pid_tt' for pid"),
        BadConfig(name: "an argument the hook does not pass",
                  ini: markerINI + "\n\n[watcher:bad]\ncmd = sleep 1\nhooks.before_stop = %LIB%:veto_signal(signum: int) -> int\n",
                  line: "hooks.before_stop = %LIB%:veto_signal(signum: int) -> int",
                  option: "hooks.before_stop: before_stop passes no argument 'signum'"),
        BadConfig(name: "a symbol the library does not have",
                  ini: markerINI + "\n\n[watcher:bad]\ncmd = sleep 1\nhooks.before_start = %LIB%:nope\n",
                  line: "hooks.before_start = %LIB%:nope", option: "hooks.before_start: %LIB% has no symbol nope"),
        BadConfig(name: "a library that does not exist",
                  ini: markerINI + "\n\n[watcher:bad]\ncmd = sleep 1\nhooks.before_start = /nonexistent/hooks.so:allow\n",
                  line: "hooks.before_start = /nonexistent/hooks.so:allow",
                  option: "hooks.before_start: cannot open /nonexistent/hooks.so"),
    ]

    @Test(arguments: badHookConfigs)
    func aBadHookIsAConfigErrorWithFileLineAndOption(_ bad: BadConfig) async throws {
        try await withHookDaemon(bad.ini, waitReady: false) { h, library in
            #expect(await h.waitExit(timeout: 10), "circusd kept running with a bad hook")
            #expect(h.process.terminationStatus == 1)
            let lines = readFile(h.configPath).components(separatedBy: "\n")
            let line = bad.line.replacingOccurrences(of: "%LIB%", with: library.path)
            let number = try #require(lines.firstIndex(of: line)) + 1
            let option = bad.option.replacingOccurrences(of: "%LIB%", with: library.path)
            #expect(h.log.contains("circus.ini:\(number): [watcher:bad] \(option)"),
                    "stderr: \(h.log)")
            #expect(!FileManager.default.fileExists(atPath: "\(h.dir)/spawned"), "a process was spawned")
        }
    }
}
