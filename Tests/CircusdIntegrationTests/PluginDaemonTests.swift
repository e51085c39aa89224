// Native plugins in a real circusd: the command registry lists them, the control socket
// reaches their commands, `plugins` lists the instances, a plugin stuck in a callback
// leaves the daemon serving, the shipped flapping plugin stops a crash loop (in circusd
// and isolated), an isolated plugin's crash is survived and repaired, and
// `check_flapping = false` lifts every throttle.

import CircusProtocol
import Foundation
import OrderedCollections
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Builds the test fixture plugins with `cc`, from include/circus/plugin.h alone.
enum FixturePlugin {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// Compiles Fixtures/<name>.c into `<directory>/lib<name>.so` and returns its path.
    static func build(_ name: String, into directory: String) throws -> String {
        let output = directory + "/lib\(name).so"
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cc.arguments = ["cc", "-std=c99", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Werror", "-I", root + "/include",
                        "-fvisibility=hidden", "-fPIC", "-shared", "-o", output,
                        root + "/Tests/CircusdIntegrationTests/Fixtures/\(name).c"]
        try cc.run()
        cc.waitUntilExit()
        guard cc.terminationStatus == 0 else { throw HarnessError("cc could not build the \(name) fixture plugin") }
        return output
    }

    /// A fresh directory for a fixture, removed by the caller.
    static func directory() throws -> String { try DaemonHarness.makeTempDir() }
}

@Suite("Plugins in the daemon") struct PluginDaemonTests {
    /// A daemon running the blocker fixture as `[plugin:blk]`, in circusd or isolated.
    func withBlocker(isolated: Bool = false, _ body: (DaemonHarness) async throws -> Void) async throws {
        let fixtures = try FixturePlugin.directory()
        defer { try? FileManager.default.removeItem(atPath: fixtures) }
        let library = try FixturePlugin.build("blocker", into: fixtures)
        try await withDaemon("""
            [watcher:w]
            cmd = sleep 100

            [plugin:blk]
            use = \(library)
            isolate = \(isolated)
            """, body)
    }

    /// The shipped plugins are C: what `swift build` makes of them next to circusd must
    /// not pull in a Swift runtime, which would clash in circus-plugin-host with the one
    /// a Swift plugin built by another toolchain brings, and load a second one into a
    /// circusd built with the runtime linked in.
    @Test(arguments: ["flapping", "statsd", "watchdog", "resource_watcher", "command_reloader",
                      "http_observer", "redis_observer"])
    func aShippedPluginLibraryNeedsNoSwiftRuntime(_ name: String) throws {
        let directory = URL(fileURLWithPath: DaemonHarness.binary).deletingLastPathComponent().path
        let library = "\(directory)/lib\(name).so"
        let readelf = Process()
        let output = Pipe()
        readelf.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        readelf.arguments = ["readelf", "--dynamic", library]
        readelf.standardOutput = output
        try readelf.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        readelf.waitUntilExit()
        try #require(readelf.terminationStatus == 0, "readelf could not read \(library)")
        let needed = text.split(separator: "\n").filter { $0.contains("(NEEDED)") }
        #expect(needed.contains { $0.contains("[libc.so.6]") }, "\(library) needs: \(needed)")
        #expect(!needed.contains { $0.contains("swift") }, "\(library) needs: \(needed)")
    }

    @Test func commandsListsCoreAndPluginCommandsWithTheirSchema() async throws {
        try await withBlocker { h in
            let reply = try await h.call("commands")
            expectOK(reply, keys: ["commands"])
            let commands = reply["commands"]
            #expect(commands?["status"] == [
                "help": "Get the status of a watcher, or of all",
                "args": ["name": ["type": "string", "required": false, "help": "a watcher's name (all watchers when absent)"]],
                "access": "read-only", "origin": "core",
            ])
            #expect(commands?["add"]?["access"] == "control")
            #expect(commands?["commands"]?["origin"] == "core")
            #expect(commands?["plugins"]?["access"] == "read-only")
            #expect(commands?["blk.echo"] == [
                "help": "answers its arguments",
                "args": ["text": ["type": "string", "required": true, "help": "what to echo"]],
                "access": "read-only", "origin": "plugin:blk",
            ])
            #expect(commands?["blk.hang"]?["access"] == "control")
            // Every one of Circus's commands is there, and nothing else of the core's.
            let core = commands?.objectValue?.filter { $0.value["origin"] == "core" }.map(\.key).sorted()
            #expect(core == (CommandName.allCases.map(\.rawValue) + ["commands", "plugins", "tail"]).sorted())
        }
    }

    @Test func aPluginCommandAnswersThroughTheControlSocket() async throws {
        try await withBlocker { h in
            let reply = try await h.call("blk.echo", ["text": "hi"], id: "e1")
            #expect(reply["status"] == "ok", "\(reply)")
            #expect(reply["echo"] == ["text": "hi"])
            #expect(reply["id"] == "e1")
            // The schema's required argument is checked before the plugin is asked.
            expectError(try await h.call("blk.echo", ["other": 1]), errno: 3, reason: "message invalid 'text' is missing")
        }
    }

    @Test func pluginsListsEveryInstance() async throws {
        try await withBlocker { h in
            let reply = try await h.call("plugins")
            expectOK(reply, keys: ["plugins"])
            let blk = reply["plugins"]?["blk"]
            #expect(blk?["plugin"] == "blocker")
            #expect(blk?["version"] == "0.1.0")
            #expect(blk?["library"]?.stringValue?.hasSuffix("/libblocker.so") == true)
            #expect(blk?["abi"] == "1.0")
            #expect(blk?["state"] == "started")
            #expect(blk?["queue_depth"] == 0)
            #expect(blk?["dropped_events"] == 0)
            #expect(blk?["failure"] == .null)
            #expect(blk?["default"] == false)
            // No section uses flapping: circusd runs its own instance, with Circus's defaults.
            let flapping = reply["plugins"]?["flapping"]
            #expect(flapping?["plugin"] == "flapping")
            #expect(flapping?["state"] == "started")
            #expect(flapping?["default"] == true)
        }
    }

    @Test func aPluginBlockedInACallbackLeavesTheDaemonServing() async throws {
        try await withBlocker { h in
            let mark = h.mark
            async let hung = h.call("blk.hang", id: "hang", timeout: .seconds(30))
            try await h.waitEvent("plugin.blk.hanging", since: mark)
            // The plugin's thread is stuck; the loop is not.
            let status = try await h.call("status", ["name": "w"])
            #expect(status["status"] == "active", "\(status)")
            let stop = try await h.call("stop", ["name": "w", "waiting": true])
            #expect(stop["status"] == "ok", "\(stop)")
            let start = try await h.call("start", ["name": "w", "waiting": true])
            #expect(start["status"] == "ok", "\(start)")
            // The stuck request itself gets the host's timeout as an error reply.
            expectError(try await hung, errno: 5, reasonContains: "plugin blk did not answer blk.hang within")
        }
    }

    @Test(arguments: [false, true])
    func flappingStopsACrashLoopAndStartsItAgainAfterRetryIn(isolated: Bool) async throws {
        try await withDaemon("""
            [watcher:crash]
            cmd = sh -c 'exit 3'
            autostart = false

            [plugin:flapping]
            use = circus.plugins.flapping.Flapping
            attempts = 2
            window = 1
            retry_in = 0.5
            max_retry = 1
            isolate = \(isolated)
            """) { h in
            // Started once the SUB socket listens, so that every event is seen.
            let mark = h.mark
            expectOK(try await h.call("start", ["name": "crash"]))
            // Our start, the plugin's stop, its start retry_in later (nobody else starts
            // it), and with max_retry = 1 the second detection stops it for good.
            try await h.waitEvents(since: mark, count: 2, timeout: 30, "two stops") { $0.topic == "watcher.crash.stop" }
            let sequence = h.events(since: mark).map(\.name).filter { $0 == "start" || $0 == "stop" }
            #expect(sequence == ["start", "stop", "start", "stop"])
            try await h.waitUntil("the max retry log line", timeout: 10) {
                h.log.contains("crash: flapping detected: reached max retry limit")
            }
            #expect(h.log.contains("crash: flapping detected: retry in"))
            #expect(try await h.status("crash") == "stopped")
        }
    }

    @Test func flappingNeverRestartsAWatcherAnOperatorStopped() async throws {
        try await withDaemon("""
            [watcher:a]
            cmd = sh -c 'exit 3'
            autostart = false

            [watcher:b]
            cmd = sh -c 'exit 3'
            autostart = false

            [plugin:flapping]
            use = circus.plugins.flapping.Flapping
            attempts = 2
            window = 1
            retry_in = 1
            max_retry = 5
            """) { h in
            let mark = h.mark
            expectOK(try await h.call("start", ["name": "a"]))
            try await h.waitEvent("watcher.a.stop", since: mark, timeout: 30)
            // The plugin starts it again retry_in (1 s) after its stop, if it still means to.
            let flapped = h.mark
            // The operator stops the watcher the plugin stopped: Circus publishes nothing for
            // a stopped watcher; we publish `stop`, and the plugin drops its retry.
            let operatorMark = h.mark
            expectOK(try await h.call("stop", ["name": "a", "waiting": true]), keys: ["info"])
            try await h.waitEvent("watcher.a.stop", since: operatorMark)
            // b flaps after a, so its retry is due after a's would have been: once b is
            // started again, a's retry time has passed.
            expectOK(try await h.call("start", ["name": "b"]))
            try await h.waitEvent("watcher.b.stop", since: operatorMark, timeout: 30)
            let bStopped = h.mark
            try await h.waitEvent("watcher.b.start", since: bStopped, timeout: 30)
            let afterFlap = h.events(since: flapped)
            #expect(!afterFlap.contains { $0.topic == "watcher.a.start" }, "\(afterFlap.map(\.description))")
            #expect(try await h.status("a") == "stopped")
        }
    }

    @Test func checkFlappingFalseRespawnsShortLivedProcessesWithoutBackoff() async throws {
        // `fast` says its processes are short-lived by design; `control` does not, so the
        // supervisor spaces its respawns (and logs it) and the default flapping instance
        // stops it: the same log line is what `fast` must never get.
        try await withDaemon("""
            [watcher:fast]
            cmd = true
            numprocesses = 5
            check_flapping = false

            [watcher:control]
            cmd = true
            """) { h in
            try await h.waitUntil("control's backoff log line", timeout: 10) {
                h.log.contains("control: process exited within")
            }
            let reaps = try await h.waitEvents(count: 100, timeout: 60, "reaps of fast") {
                $0.topic == "watcher.fast.reap"
            }
            #expect(reaps.count >= 100)
            let barrier = try await h.eventBarrier(on: "fast")
            let fastEvents = h.events(since: 0, before: barrier).filter { $0.topic.hasPrefix("watcher.fast.") }
            // Neither throttled nor stopped: no backoff, no flapping stop.
            #expect(!h.log.contains("fast: process exited within"), "\(h.log.suffix(2000))")
            #expect(!fastEvents.contains { $0.name == "stop" })
            #expect(try await h.status("fast") == "active")
        }
    }

    @Test func reloadconfigStartsAddedSectionsAndStopsRemovedOnes() async throws {
        let fixtures = try FixturePlugin.directory()
        defer { try? FileManager.default.removeItem(atPath: fixtures) }
        let library = try FixturePlugin.build("blocker", into: fixtures)
        let base = "[watcher:w]\ncmd = sleep 100\n"
        try await withDaemon(base) { h in
            #expect(try await h.call("plugins")["plugins"]?["blk"] == nil)
            try h.rewriteConfig(base + "\n[plugin:blk]\nuse = \(library)\n\n[plugin:off]\nuse = \(library)\nactive = false\n")
            expectOK(try await h.call("reloadconfig", ["waiting": true]))
            // The instance starts on its own thread: its command appears once it has.
            try await h.waitUntil("blk.echo registered") {
                try await h.call("blk.echo", ["text": "x"])["status"] == "ok"
            }
            var plugins = try await h.call("plugins")["plugins"]
            #expect(plugins?["blk"]?["state"] == "started")
            #expect(plugins?["off"]?["state"] == "inactive")
            #expect(plugins?["off"]?["plugin"] == "blocker")
            try h.rewriteConfig(base)
            expectOK(try await h.call("reloadconfig", ["waiting": true]))
            try await h.waitUntil("blk.echo gone") {
                try await h.call("blk.echo", ["text": "x"])["errno"] == 2
            }
            plugins = try await h.call("plugins")["plugins"]
            #expect(plugins?["blk"] == nil)
            #expect(plugins?["flapping"]?["state"] == "started")
        }
    }

    @Test func reloadconfigAnswersWhyAPluginRefusedItsOptions() async throws {
        let base = "[watcher:w]\ncmd = sleep 100\n"
        try await withDaemon(base) { h in
            try h.rewriteConfig(base + "\n[plugin:stats]\nuse = circus.plugins.statsd.StatsdEmitter\nport = notaport\n")
            expectError(try await h.call("reloadconfig", ["waiting": true]), errno: 6,
                        reason: "plugin:stats: option port = \"notaport\": not an integer")
            #expect(try await h.status("w") == "active")
            // Mended, it starts.
            try h.rewriteConfig(base + "\n[plugin:stats]\nuse = circus.plugins.statsd.StatsdEmitter\nport = 18125\n")
            let mended = try await h.call("reloadconfig", ["waiting": true])
            expectOK(mended)
            #expect(try await h.call("plugins")["plugins"]?["stats"]?["state"] == "started")
        }
    }

    @Test func anIsolatedPluginThatCrashesIsRestartedAndTheDaemonServesThroughout() async throws {
        try await withBlocker(isolated: true) { h in
            let before = try await h.call("plugins")["plugins"]?["blk"]
            #expect(before?["isolated"] == true)
            #expect(before?["state"] == "started")
            #expect(before?["restarts"] == 0)
            let pid = try #require(before?["pid"]?.intValue.map { Int32($0) })
            #expect(pid != h.pid)
            let echo = try await h.call("blk.echo", ["text": "hi"])
            #expect(echo["echo"] == ["text": "hi"], "\(echo)")

            // A crash of its host process: the daemon goes on, the instance comes back.
            #expect(kill(pid, SIGSEGV) == 0)
            try await h.waitUntil("blk to run again in a new host", timeout: 30) {
                let now = try await h.call("plugins")["plugins"]?["blk"]
                return now?["restarts"] == 1 && now?["state"] == "started" && now?["pid"] != .int(Int64(pid))
            }
            #expect(try await h.status("w") == "active")
            let again = try await h.call("blk.echo", ["text": "again"])
            #expect(again["echo"] == ["text": "again"], "\(again)")
            try await h.waitLog("plugin blk: its host process (pid \(pid)) killed by signal 11")
        }
    }

    @Test func aMissingPluginLibraryIsRefusedAtStartWithFileAndLine() async throws {
        try await withDaemon(markerINI + """


            [plugin:gone]
            use = %DIR%/nope.so
            """, waitReady: false) { h in
            #expect(await h.waitExit(timeout: 10), "circusd kept running with a missing plugin")
            #expect(h.process.terminationStatus != 0)
            let lines = readFile(h.configPath).components(separatedBy: "\n")
            let number = (lines.firstIndex(of: "use = \(h.dir)/nope.so") ?? -1) + 1
            #expect(h.log.contains("circus.ini:\(number): [plugin:gone] use: cannot load plugin \(h.dir)/nope.so"),
                    "stderr: \(h.log)")
            #expect(!FileManager.default.fileExists(atPath: "\(h.dir)/spawned"), "a process was spawned")
        }
    }
}
