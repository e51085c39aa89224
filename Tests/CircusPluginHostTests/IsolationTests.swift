// Isolated instances under supervision: a plugin that segfaults or blocks forever in a
// callback costs only its circus-plugin-host process, which is restarted; the requests it
// had not answered fail at once with CIRCUS_E_CANCELLED. (Loading in the host process is
// tested with the in-process loader, in LoaderTests.)

import CircusPluginHost
import CircusProtocol
import CircusSystem
import Foundation
import Glibc
import Logging
import OrderedCollections
import Synchronization
import Testing

@Suite struct IsolationTests {
    typealias Probe = PluginHostTests.Probe

    /// Supervision that notices a hang within a fraction of a second and restarts at once.
    static func quick(_ configuration: inout PluginHost.Configuration) {
        configuration.isolation.pingInterval = .milliseconds(20)
        configuration.isolation.pingTimeout = .milliseconds(300)
        configuration.isolation.restartDelay = .milliseconds(10)
    }

    /// Waits until the instance runs again in a new host process, and returns its info.
    static func restarted(_ probe: Probe, from pid: Int32?) throws -> PluginInstanceInfo {
        try waitUntil("the probe to be restarted") {
            guard let info = probe.host.instance("probe"), info.restarts == 1, info.state == .started,
                  info.pid != nil, info.pid != pid,
                  probe.bus.record.withLock({ $0.commands["probe.count"] }) != nil
            else { return nil }
            return info
        }
    }

    @Test func aPluginThatSegfaultsIsRestartedAndItsPendingRequestsFailCleanly() throws {
        let probe = try Probe(.isolated, configure: Self.quick)
        defer { probe.close() }
        let before = try #require(probe.host.instance("probe"))
        let pid = try #require(before.pid)

        // A request the plugin holds unanswered, then the crash.
        let held = Outcomes<Result<JSONObject, PluginRequestError>>()
        probe.host.invokeCommand(named: "probe.never", arguments: [:], deadline: .seconds(600)) { held.put($0) }
        let crash = try probe.host.call("probe.crash", deadline: .seconds(600))

        guard case .failure(let error) = crash else { throw TestFailure("the crash was answered: \(crash)") }
        #expect(error.code == .cancelled)
        #expect(error.reason.hasPrefix("plugin probe's host process (pid \(pid)) killed by signal 11"))
        #expect(error.reason.hasSuffix("before it answered"))
        let first = try held.first("the held request's failure")
        #expect(first == .failure(error))

        let info = try Self.restarted(probe, from: pid)
        #expect(info.isolated)
        #expect(probe.bus.record.withLock { r in
            r.logs.contains { $0.level == .error && $0.message.hasPrefix("plugin probe: its host process (pid \(pid)) killed by signal 11") }
        })
        // A new instance: created and started again, with its own state.
        #expect(try probe.host.call("probe.count").get() == ["count": 0])
        #expect(probe.journal == "create,start,create,start")
        #expect(held.all.count == 1)
    }

    /// The process embedding the host keeps SIGPIPE's default action (this test process
    /// does; circusd ignores it): frames written to a host that has died must be an error
    /// the host handles, never a signal that ends the embedding process.
    @Test func framesQueuedForADeadHostNeverRaiseSIGPIPE() throws {
        var action = sigaction()
        sigaction(SIGPIPE, nil, &action)
        #expect(action.__sigaction_handler.sa_handler == nil, "this test needs SIGPIPE at its default action")
        let probe = try Probe(.isolated, configure: Self.quick)
        defer { probe.close() }
        let pid = try #require(probe.host.instance("probe")?.pid)
        kill(pid, SIGKILL)
        // Events for the dead host until its replacement runs: those delivered between its
        // death and the loop noticing it are written to a socket whose peer is gone.
        var delivered = 0
        while probe.host.instance("probe").map({ $0.restarts == 1 && $0.state == .started }) != true {
            probe.host.deliver(EventMessage(topic: "watcher.web.spawn", payload: ["pid": .int(Int64(delivered))]))
            delivered += 1
            if delivered % 64 == 0 { usleep(100) }
        }
        _ = try Self.restarted(probe, from: pid)
        #expect(delivered > 0)
        // The new host answers (what it counted depends on when it subscribed).
        #expect(try probe.host.call("probe.count").get()["count"] != nil)
    }

    @Test func aPluginThatBlocksForeverIsKilledAsHungAndRestarted() throws {
        let probe = try Probe(.isolated, configure: Self.quick)
        defer { probe.close() }
        let pid = try #require(probe.host.instance("probe")?.pid)

        let hook = try #require(probe.bus.record.withLock { $0.hooks.first })
        let hang = Outcomes<Result<JSONObject, PluginRequestError>>()
        probe.host.invokeCommand(named: "probe.hang", arguments: [:], deadline: .seconds(600)) { hang.put($0) }
        // A watcher's hook queued behind the hung callback: it fails too, so the watcher
        // goes on (as its ignore_hook_failure says) instead of waiting.
        let hooked = Outcomes<Result<Bool, PluginRequestError>>()
        probe.host.invokeHook(hook.id, request: ["watcher": "web", "hook": "before_start"], deadline: .seconds(600)) {
            hooked.put($0)
        }
        let reason = "plugin probe's host process (pid \(pid)) was hung and was killed before it answered"
        #expect(try hang.first("the hung command's failure") == .failure(PluginRequestError(.cancelled, reason)))
        #expect(try hooked.first("the hook's failure") == .failure(PluginRequestError(.cancelled, reason)))
        #expect(probe.bus.record.withLock { r in
            r.logs.contains { $0.message == "plugin probe did not answer a ping within 0.3 s: its host process (pid \(pid)) is hung; killing it" }
        })
        _ = try Self.restarted(probe, from: pid)
        #expect(try probe.host.call("probe.count").get() == ["count": 0])
    }

    @Test func whatTheDeadHostRegisteredIsWithdrawnAndRegisteredAgainByTheNewOne() throws {
        let probe = try Probe(.isolated, configure: Self.quick)
        defer { probe.close() }
        let pid = try #require(probe.host.instance("probe")?.pid)
        let hook = try #require(probe.bus.record.withLock { $0.hooks.first })
        _ = try probe.host.call("probe.crash")
        let info = try Self.restarted(probe, from: pid)
        let record = probe.bus.record.withLock { $0 }
        #expect(record.unregisteredCommands.count == 12)
        #expect(record.unregisteredHooks == [hook.id])
        // The new host's hook has a new id; the old one is unknown.
        let newHook = try #require(record.hooks.first)
        #expect(newHook.id != hook.id && newHook.hookName == "before_start")
        let old = Outcomes<Result<Bool, PluginRequestError>>()
        probe.host.invokeHook(hook.id, request: ["watcher": "web", "hook": "before_start"], deadline: .seconds(10)) { old.put($0) }
        #expect(try old.first("the old hook's answer") == .failure(PluginRequestError(.notFound, "no plugin hook \(hook.id)")))
        let current = Outcomes<Result<Bool, PluginRequestError>>()
        probe.host.invokeHook(newHook.id, request: ["watcher": "web", "hook": "before_start"], deadline: .seconds(10)) { current.put($0) }
        #expect(try current.first("the new hook's answer") == .success(true))
        #expect(info.restarts == 1)
    }

    @Test func aLargeFloodIsDroppedAndCountedWithoutStallingTheCaller() throws {
        let directory = try TemporaryDirectory()
        let fifo = try FIFO(in: directory.path, named: "block")
        defer { fifo.close() }
        let probe = try Probe(.isolated, capacity: 16, config: ["block_path": .string(fifo.path)], directory: directory)
        defer { probe.close() }
        probe.host.deliver(EventMessage(topic: "watcher.test.block", payload: [:]))
        _ = try probe.bus.wait(for: "the probe to block") { r in r.events.first { $0.topic == "plugin.probe.blocked" } }

        let host = probe.host
        let delivered = Outcomes<Bool>()
        let deliverer = try OSThread.start(name: "test") {
            for i in 1...5000 { host.deliver(EventMessage(topic: "watcher.test.e\(i)", payload: ["i": .int(Int64(i))])) }
            delivered.put(true)
        }
        _ = try delivered.first("5000 deliveries to return while the plugin is blocked", timeout: 30)
        deliverer.join()
        // Whether dropped in the daemon (the host's socket full) or in the host (its queue
        // full), every event but the sixteen newest is dropped and counted.
        _ = try waitUntil("4984 events dropped") { host.instance("probe")?.droppedEvents == 4984 ? true : nil }
        fifo.write(1)
        _ = try probe.bus.wait(for: "the last event to be handled") { r in
            r.events.last { $0.topic == "plugin.probe.seen" && $0.payload["topic"] == "watcher.test.e5000" }
        }
        #expect(try host.call("probe.count").get() == ["count": 17])
        let seen = probe.bus.events("plugin.probe.seen").compactMap { $0.payload["topic"]?.stringValue }
        #expect(seen == (4985...5000).map { "watcher.test.e\($0)" })
    }

    @Test func aPluginThatRequiresIsolationRunsIsolatedEvenWhenNotAskedTo() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try Build.plugin(Build.probe, into: directory.path, as: "probe.so", defines: ["-DPROBE_ISOLATED"])
        let host = try PluginHost(bus: RecordingBus())
        defer { host.shutdown() }
        let library = try host.load(path)
        #expect(library.requiresIsolation)
        try host.startAndWait("probe", of: library, stateDirectory: directory.path)
        let info = try #require(host.instance("probe"))
        #expect(info.isolated && info.pid != nil && info.pid != getpid())
        #expect(try host.call("probe.count").get() == ["count": 0])
        try host.stopAndWait("probe")
    }

    @Test func aMissingHostExecutableIsReportedByName() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try Build.plugin(Build.probe, into: directory.path, as: "probe.so")
        var configuration = PluginHost.Configuration()
        configuration.pluginHostExecutable = "/nonexistent/circus-plugin-host"
        let host = try PluginHost(bus: RecordingBus(), configuration: configuration)
        defer { host.shutdown() }
        let refused = #expect(throws: PluginLoadError.self) { try host.load(path, isolated: true) }
        #expect(refused?.message.hasPrefix(
            "cannot load plugin \(path): cannot run the plugin host /nonexistent/circus-plugin-host: ") == true)
        // Loaded here, it cannot start isolated either.
        let library = try host.load(path)
        let outcome = Outcomes<Result<Void, PluginInstanceError>>()
        try host.startInstance("probe", of: library, config: [:], stateDirectory: directory.path, isolate: true) {
            outcome.put($0)
        }
        guard case .failure(let error) = try outcome.first("the start to fail") else {
            throw TestFailure("the probe started without its host")
        }
        #expect(error.message.hasPrefix("cannot run the plugin host /nonexistent/circus-plugin-host: "))
        #expect(host.instance("probe")?.state == .failed)
    }

    @Test func theHostProcessCarriesNoSwiftRuntime() throws {
        // What a Swift plugin built with another toolchain needs: it brings its own
        // runtime, and none is there to clash with it.
        let probe = try Probe(.isolated)
        defer { probe.close() }
        let pid = try #require(probe.host.instance("probe")?.pid)
        let maps = try String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)
        #expect(maps.contains("/probe.so"))
        #expect(maps.contains("/circus-plugin-host"))
        #expect(!maps.contains("libswift"), "a Swift runtime is mapped in the plugin host")
    }

    /// The Swift example plugin's package, when this tree has it.
    static let swiftExample = Build.root + "/Plugins/example-swift"
    static let hasSwiftExample = access(swiftExample + "/Package.swift", R_OK) == 0

    /// A Swift plugin brings its Swift runtime into circus-plugin-host, which has none of
    /// its own: it loads and runs there.
    @Test(.enabled(if: hasSwiftExample, "Plugins/example-swift is not in this tree"))
    func aSwiftPluginLoadsAndRunsIsolated() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try Build.run("swift", ["build", "--package-path", Self.swiftExample, "--scratch-path", directory.path + "/build"])
        let path = directory.path + "/build/debug/libexample_swift.so"
        let bus = RecordingBus()
        let host = try PluginHost(bus: bus)
        defer { host.shutdown() }
        let library = try host.load(path, isolated: true)
        #expect(library.name == "example_swift")
        try host.startAndWait("counter", of: library, stateDirectory: directory.path, mode: .isolated)
        for pid in 1...3 { host.deliver(EventMessage(topic: "watcher.web.spawn", payload: ["pid": .int(Int64(pid))])) }
        #expect(try host.call("counter.count").get() == ["count": 3])
        #expect(host.instance("counter")?.pid != nil)
        try host.stopAndWait("counter")
    }

    @Test func whatAnIsolatedPluginWritesToItsOutputIsLogged() throws {
        let probe = try Probe(.isolated)
        defer { probe.close() }
        #expect(try probe.host.call("probe.print").get() == ["printed": 2])
        let lines = try probe.bus.wait(for: "both lines in the log") { r -> [String]? in
            let found = r.logs.filter { $0.message.hasPrefix("plugin probe wrote to its output: ") }.map(\.message)
            return found.count == 2 ? found : nil
        }
        #expect(Set(lines) == ["plugin probe wrote to its output: the probe on stdout",
                               "plugin probe wrote to its output: the probe on stderr"])
    }
}
