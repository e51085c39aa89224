// circus-plugin against a real circusd, over its endpoints: the shipped flapping plugin,
// run outside the daemon, sees a crash-looping watcher's exits on the pub/sub endpoint,
// stops it through the control endpoint and starts it again after retry_in; a plugin that
// registers a command is refused, saying why; SIGTERM stops the plugin cleanly.

import CircusProtocol
import Foundation
import Glibc
import Testing

@Suite struct CircusPluginToolTests {
    /// circus-plugin, built next to circusd.
    static var binary: String {
        (DaemonHarness.binary as NSString).deletingLastPathComponent + "/circus-plugin"
    }

    /// The repository's root, found from this file's path.
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Starts circus-plugin against `daemon` with `arguments` before the plugin name.
    static func run(_ plugin: String, against daemon: DaemonHarness, _ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--endpoint", daemon.controlEndpoint, "--pubsub", daemon.pubsubEndpoint] + arguments + [plugin]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Stops circus-plugin with SIGTERM (as Circus's plugin stops on KeyboardInterrupt)
    /// and returns its exit status.
    static func stop(_ process: Process) -> Int32 {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    @Test func flappingRunByCircusPluginStopsACrashLoopingWatcherAndStartsItAfterRetryIn() async throws {
        // circusd's own flapping instance is switched off: the one circus-plugin runs acts.
        try await withDaemon("""
            [watcher:crashy]
            cmd = sh -c "exit 3"
            numprocesses = 1

            [plugin:flapping]
            use = flapping
            active = false
            """) { daemon in
            let log = daemon.dir + "/plugin.log"
            let plugin = try Self.run("circus.plugins.flapping.Flapping", against: daemon, [
                "--config", "attempts: 2 ::: window:30:::retry_in:1:::max_retry:-1", "--log-output", log,
            ])
            do {
                try await daemon.waitUntil("flapping to stop crashy", timeout: 30) {
                    try await daemon.status("crashy") == "stopped"
                }
                let stopped = daemon.mark
                let text = try String(contentsOfFile: log, encoding: .utf8)
                #expect(text.contains("crashy: flapping detected: retry in  1s (attempt number 1)"))
                // retry_in later, the plugin starts it again (and, still crashing, it flaps again).
                try await daemon.waitEvent("watcher.crashy.start", since: stopped, timeout: 30)
                #expect(Self.stop(plugin) == 0)
                let final = try String(contentsOfFile: log, encoding: .utf8)
                #expect(final.contains("Endpoint: '\(daemon.controlEndpoint)'"))
                #expect(final.contains("Stopping"))
            } catch {
                _ = Self.stop(plugin)
                throw error
            }
        }
    }

    @Test func aPluginThatRegistersACommandIsRefusedSayingWhy() async throws {
        try await withDaemon("""
            [watcher:sleeper]
            cmd = sleep 60
            """) { daemon in
            let source = Self.packageRoot + "/Plugins/example-c/example.c"
            let library = daemon.dir + "/example.so"
            let cc = Process()
            cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            cc.arguments = ["cc", "-std=c99", "-I", Self.packageRoot + "/include", "-fPIC", "-shared",
                            "-fvisibility=hidden", "-o", library, source]
            try cc.run()
            cc.waitUntilExit()
            #expect(cc.terminationStatus == 0)
            let log = daemon.dir + "/plugin.log"
            let plugin = try Self.run(library, against: daemon, ["--log-output", log])
            plugin.waitUntilExit()
            #expect(plugin.terminationStatus == 1)
            let text = try String(contentsOfFile: log, encoding: .utf8)
            #expect(text.contains("plugin example tried to register the command \"example.count\": circus-plugin runs "
                + "the plugin outside circusd, which cannot send it command or hook requests; configure it as a "
                + "[plugin:NAME] section of circusd to serve them"))
            #expect(text.contains("plugin example: could not register with the host"))
        }
    }

    /// Runs circus-plugin without a daemon; returns its exit status and stderr.
    static func refusal(_ arguments: [String]) throws -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    @Test func aPythonClassIsRefusedSayingWhatRunsIt() throws {
        let (status, text) = try Self.refusal(["mypackage.plugins.Thing"])
        #expect(status == 1)
        #expect(text.contains("mypackage.plugins.Thing is a Python class: circus-plugin runs native plugins"))
    }

    @Test func sshIsRefusedByName() throws {
        let (status, text) = try Self.refusal(["--ssh", "me@far", "flapping"])
        #expect(status == 64)
        #expect(text.contains("--ssh me@far: is not supported by circus-plugin"))
    }
}
