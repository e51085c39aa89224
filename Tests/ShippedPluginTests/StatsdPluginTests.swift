// The statsd plugin (StatsdEmitter and FullStats), loaded through the real plugin host;
// what it sends is read from a real UDP socket on 127.0.0.1.

import CircusPluginHost
import CircusProtocol
import OrderedCollections
import Testing

@Suite struct StatsdPluginTests {
    @Test(arguments: [false, true]) func theEmitterCountsEveryWatcherEvent(isolated: Bool) throws {
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.statsd, isolated: isolated)
        defer { plugin.close() }
        try plugin.start("statsd", [
            "use": "circus.plugins.statsd.StatsdEmitter", "host": "127.0.0.1", "port": .string("\(statsd.port)"),
            "application_name": "myapp",
        ])

        plugin.event("web", "spawn", ["process_pid": 7662])
        plugin.event("web", "reap", ["process_pid": 7662, "exit_code": 3])
        plugin.event("my.dotted", "stop")
        plugin.host.deliver(EventMessage(topic: "plugin.other.tick", payload: [:]))  // not a watcher event
        plugin.event("web", "start")

        #expect(try statsd.receive(until: { $0.hasSuffix("web.start:1|c") }) == [
            "circus.myapp.watcher.web.spawn:1|c",
            "circus.myapp.watcher.web.reap:1|c",
            "circus.myapp.watcher.my.dotted.stop:1|c",
            "circus.myapp.watcher.web.start:1|c",
        ])
    }

    /// The events the host queues together leave in as few datagrams as they fit in (at
    /// most 1432 bytes, one metric per line), not one datagram each as Circus sends them:
    /// statsd reads each line as a metric.
    @Test func theMetricsOfOneBatchOfEventsShareDatagrams() throws {
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.statsd, isolated: false)
        defer { plugin.close() }
        try plugin.start("statsd", ["host": "127.0.0.1", "port": .string("\(statsd.port)")])

        // 60 events queued before the instance is woken: one batch. Each metric is 32
        // bytes and a newline, so 43 fit in a datagram (1418 bytes) and 44 do not.
        for pid in 1...60 {
            #expect(plugin.host.deliverDeferringWakeup(
                EventMessage(topic: "watcher.web.spawn", payload: ["process_pid": .int(Int64(pid))])) == (pid == 1))
        }
        plugin.host.wakeDeferred()
        let metric = "circus.app.watcher.web.spawn:1|c"
        #expect(metric.utf8.count == 32)
        let first = try statsd.receiveDatagram()
        #expect(first == Array(repeating: metric, count: 43).joined(separator: "\n"))
        #expect(first.utf8.count == 1418)
        #expect(try statsd.receiveDatagram() == Array(repeating: metric, count: 17).joined(separator: "\n"))

        // A lone event later is a batch of its own, sent without waiting for more.
        plugin.event("web", "reap", ["process_pid": 1])
        #expect(try statsd.receiveDatagram() == "circus.app.watcher.web.reap:1|c")
    }

    @Test(arguments: [false, true]) func aSampleRateIsAppendedAsCircusDoes(isolated: Bool) throws {
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.statsd, isolated: isolated)
        defer { plugin.close() }
        try plugin.start("statsd", ["host": "localhost", "port": .string("\(statsd.port)"), "sample_rate": "0.5"])

        plugin.event("web", "kill", ["process_pid": 1])
        #expect(try statsd.receive() == "circus.app.watcher.web.kill:1|c|@0.5")
    }

    /// A `stats` reply as circusd gives it: a plugin watcher, a watcher with two processes
    /// and one that has just ended, a watcher with none.
    static let stats: JSONObject = [
        "infos": [
            "plugin:ignored": ["1": ["cpu": 5.0, "mem": 1.0, "mem_info1": "1.00M", "pid": 1]],
            "web": [
                "101": ["mem_info1": "8.55M", "mem_info2": "12.21M", "cpu": 1.5, "mem": 0.035, "pid": 101],
                "102": ["mem_info1": "512.00K", "mem_info2": "2.00M", "cpu": 0.25, "mem": 0.125, "pid": 102],
                "103": "No such process (stopped?)",
            ],
            "idle": [:],
        ],
    ]

    @Test(arguments: [false, true]) func fullStatsSendsGaugesFromTheStatsCommand(isolated: Bool) throws {
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.statsd, isolated: isolated)
        defer { plugin.close() }
        plugin.bus.answer { name, _ in name == "stats" ? .success(Self.stats) : .failure(.unknownCommand(name)) }
        try plugin.start("full", [
            "use": "circus.plugins.statsd.FullStats", "host": "127.0.0.1", "port": .string("\(statsd.port)"),
            "application_name": "full", "loop_rate": "0.05",
        ])

        // One round, in the reply's order; the plugin watcher comes first and is skipped.
        let round = try statsd.receive(until: { $0.contains("idle.watchers_num") })
        #expect(round == [
            "circus.full.watcher._stats.web.watchers_num:2|g",
            "circus.full.watcher._stats.web.cpu_max:1.5|g",
            "circus.full.watcher._stats.web.cpu_sum:1.75|g",
            "circus.full.watcher._stats.web.mem_pct_max:0.125|g",
            "circus.full.watcher._stats.web.mem_pct_sum:0.16|g",
            "circus.full.watcher._stats.web.mem_max:8965324|g",  // int(8.55 * 1024**2)
            "circus.full.watcher._stats.web.mem_sum:9489612|g",  // + 512 * 1024
            "circus.full.watcher._stats.idle.watchers_num:0|g",
        ])
        #expect(plugin.bus.calls.first?.name == "stats")
        #expect(plugin.bus.calls.first?.arguments == [:])
    }

    @Test(arguments: [false, true]) func fullStatsCountsAFailedStatsCall(isolated: Bool) throws {
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.statsd, isolated: isolated)
        defer { plugin.close() }
        plugin.bus.answer { _, _ in .failure(.serverError) }
        try plugin.start("full", [
            "use": "circus.plugins.statsd.FullStats", "host": "127.0.0.1", "port": .string("\(statsd.port)"),
            "loop_rate": "0.05",
        ])
        #expect(try statsd.receive() == "circus.app.watcher._stats.error:1|c")
    }

    @Test(arguments: [false, true]) func aBadOptionIsRefusedByName(isolated: Bool) throws {
        let plugin = try LoadedPlugin(.statsd, isolated: isolated)
        defer { plugin.close() }
        #expect(try plugin.startFailure("s1", ["port": "eighty"]) == "option port = \"eighty\": not an integer")
        #expect(try plugin.startFailure("s2", ["port": "70000"]) == "option port = \"70000\": out of range (1 to 65535)")
        #expect(try plugin.startFailure("s3", ["sample_rate": "often"]) == "option sample_rate = \"often\": not a number")
        #expect(try plugin.startFailure("s4", ["kind": "gauges"])
            == "option kind = \"gauges\": must be emitter or full_stats")
        let unresolvable = try plugin.startFailure("s5", ["host": "no-such-host.invalid"])
        #expect(unresolvable.hasPrefix("option host = \"no-such-host.invalid\": cannot resolve it: "))
    }
}
