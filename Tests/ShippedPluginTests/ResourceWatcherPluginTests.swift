// The resource_watcher plugin, loaded through the real plugin host, looking after real
// processes: the test answers `stats` with /proc figures of a child that burns CPU, holds
// memory or idles (see ProcessPeers.swift), records the plugin's `restart` and `signal`,
// and reads its statsd counters from a real UDP socket.

import CircusPluginHost
import CircusProtocol
import CircusSystem
import Glibc
import OrderedCollections
import Testing

@Suite struct ResourceWatcherPluginTests {
    /// Plays circusd for one watcher named `name` whose processes are `pids`.
    static func daemon(_ name: String, pids: [Int32], peer: StatsPeer = StatsPeer()) -> DaemonBus.Answer {
        { command, arguments in
            switch command {
            case "stats" where arguments["name"] == .string(name):
                return .success(peer.stats(name: name, pids: pids))
            case "restart", "signal":
                return .success([:])
            default:
                return .failure(.programNotFound(arguments["name"]?.stringValue ?? ""))
            }
        }
    }

    static func config(_ statsd: UDPReceiver, _ options: JSONObject) -> JSONObject {
        var config: JSONObject = [
            "use": "circus.plugins.resource_watcher.ResourceWatcher", "host": "127.0.0.1",
            "port": .string("\(statsd.port)"), "loop_rate": "0.2",
        ]
        for (key, value) in options { config[key] = value }
        return config
    }

    @Test func restartsAWatcherThatBurnsCPUForMoreThanMaxCountRounds() throws {
        let burner = try Hog(.cpu)
        defer { burner.stop() }
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.resourceWatcher)
        defer { plugin.close() }
        plugin.bus.answer(Self.daemon("burner", pids: [burner.pid]))
        // A busy loop shows ~100 % (the first sample of a pid is 0.0), far over 5 % even on
        // a loaded machine; memory and health stay under their defaults.
        try plugin.start("rw", Self.config(statsd, ["watcher": "burner", "max_cpu": "5", "max_count": "1"]))

        let sent = try statsd.receive(until: { $0.hasSuffix(".restarting:1|c") })
        #expect(sent == [
            "circus.app.watcher._resource_watcher.burner.over_cpu:1|c",
            "circus.app.watcher._resource_watcher.burner.over_cpu:1|c",
            "circus.app.watcher._resource_watcher.burner.restarting:1|c",
        ])
        let restart = try plugin.bus.waitForCalls("the restart", count: 1) { $0.name == "restart" }[0]
        #expect(restart.arguments == ["name": "burner"])
        #expect(plugin.bus.actions.allSatisfy { $0.name == "stats" || $0.name == "restart" })
    }

    @Test func anAbsoluteMaxMemIsComparedWithResidentBytes() throws {
        let holder = try Hog(.memory(megabytes: 64))
        defer { holder.stop() }
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.resourceWatcher)
        defer { plugin.close() }
        plugin.bus.answer(Self.daemon("holder", pids: [holder.pid]))
        // Only the memory limit is on: max_cpu and health_threshold 0 turn theirs off.
        try plugin.start("rw", Self.config(statsd, [
            "watcher": "holder", "max_mem": "32M", "max_cpu": "0", "health_threshold": "0", "max_count": "0",
            "application_name": "mine",
        ]))

        // A round under the limit (before the 64 MiB are written) sends nothing; the first
        // over it restarts the watcher (max_count 0).
        #expect(try statsd.receive(until: { $0.hasSuffix(".restarting:1|c") }) == [
            "circus.mine.watcher._resource_watcher.holder.over_memory:1|c",
            "circus.mine.watcher._resource_watcher.holder.restarting:1|c",
        ])
        try plugin.bus.waitForCalls("the restart", count: 1) { $0.name == "restart" && $0.arguments == ["name": "holder"] }
    }

    @Test func minimumsCountAnIdleProcessAndAnAbsoluteMinMemIsInBytes() throws {
        let idler = try Hog(.idle)
        defer { idler.stop() }
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.resourceWatcher)
        defer { plugin.close() }
        plugin.bus.answer(Self.daemon("idler", pids: [idler.pid]))
        // An idle process: 0.0 % CPU is under min_cpu; its resident size is far above 1K
        // (Circus would compare 1024 with the memory percentage and count it under).
        try plugin.start("rw", Self.config(statsd, [
            "watcher": "idler", "min_cpu": "5", "min_mem": "1K", "max_count": "1",
        ]))

        #expect(try statsd.receive(until: { $0.hasSuffix(".restarting:1|c") }) == [
            "circus.app.watcher._resource_watcher.idler.under_cpu:1|c",
            "circus.app.watcher._resource_watcher.idler.under_cpu:1|c",
            "circus.app.watcher._resource_watcher.idler.restarting:1|c",
        ])
        try plugin.bus.waitForCalls("the restart", count: 1) { $0.name == "restart" }
    }

    @Test func withProcessChildrenABurningChildAloneGetsTheSignal() throws {
        let parent = try Hog(.parentOfBurner)
        defer { parent.stop() }
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.resourceWatcher)
        defer { plugin.close() }
        plugin.bus.answer(Self.daemon("family", pids: [parent.pid]))
        try plugin.start("rw", Self.config(statsd, [
            "watcher": "family", "max_cpu": "5", "max_count": "1", "process_children": "true", "child_signal": "10",
        ]))

        let signal = try plugin.bus.waitForCalls("the child's signal", count: 1) { $0.name == "signal" }[0]
        let child = try #require(signal.arguments["childpid"]?.intValue)
        #expect(ProcessTree.parent(of: Int32(child)) == parent.pid)
        #expect(signal.arguments == [
            "name": "family", "pid": .int(Int64(parent.pid)), "childpid": .int(child), "signum": 10,
        ])
        // The parent idles: it is never over, so the watcher is not restarted.
        #expect(try statsd.receive(until: { $0.hasSuffix(".restarting:1|c") }) == [
            "circus.app.watcher._resource_watcher.family.over_cpu:1|c",
            "circus.app.watcher._resource_watcher.family.over_cpu:1|c",
            "circus.app.watcher._resource_watcher.family.restarting:1|c",
        ])
        #expect(!plugin.bus.actions.contains { $0.name == "restart" })
    }

    @Test func aFailedStatsIsCounted() throws {
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.resourceWatcher)
        defer { plugin.close() }
        plugin.bus.answer(Self.daemon("other", pids: []))
        try plugin.start("rw", Self.config(statsd, ["watcher": "missing"]))
        #expect(try statsd.receive() == "circus.app.watcher._resource_watcher.missing.error:1|c")
        #expect(plugin.bus.calls.first?.name == "stats")
        #expect(plugin.bus.calls.first?.arguments == ["name": "missing"])
    }

    @Test func serviceIsTheDeprecatedNameOfWatcher() throws {
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.resourceWatcher)
        defer { plugin.close() }
        try plugin.start("rw", Self.config(statsd, ["service": "old"]))
        #expect(try statsd.receive() == "circus.app.watcher._resource_watcher.old.error:1|c")
        #expect(plugin.bus.logs.contains("option service is deprecated: use watcher = old"))
    }

    @Test func badOptionsAreRefusedByName() throws {
        let plugin = try LoadedPlugin(.resourceWatcher)
        defer { plugin.close() }
        #expect(try plugin.startFailure("r1", [:])
            == "option watcher: required (the name of the watcher to look after)")
        #expect(try plugin.startFailure("r2", ["watcher": "w", "max_mem": "lots"])
            == "option max_mem = \"lots\": neither a percentage (90) nor a size (250M, 1.5G, 512K)")
        #expect(try plugin.startFailure("r3", ["watcher": "w", "min_mem": "12Q"])
            == "option min_mem = \"12Q\": neither a percentage (90) nor a size (250M, 1.5G, 512K)")
        #expect(try plugin.startFailure("r4", ["watcher": "w", "max_count": "three"])
            == "option max_count = \"three\": not an integer")
        #expect(try plugin.startFailure("r5", ["watcher": "w", "max_cpu": "-1"])
            == "option max_cpu = \"-1\": must be at least 0.0")
        #expect(try plugin.startFailure("r6", ["watcher": "w", "child_signal": "SIGTERM"])
            == "option child_signal = \"SIGTERM\": not an integer")
    }
}
