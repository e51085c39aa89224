// The redis_observer plugin, loaded through the real plugin host, reading INFO from a
// real redis-server started by the test on a free loopback port; its statsd gauges are
// read from a real UDP socket.

import CircusPluginHost
import CircusProtocol
import OrderedCollections
import Testing

@Suite(.serialized) struct RedisObserverPluginTests {
    static func config(_ statsd: UDPReceiver, _ options: JSONObject) -> JSONObject {
        var config: JSONObject = [
            "use": "circus.plugins.redis_observer.RedisObserver", "host": "127.0.0.1",
            "port": .string("\(statsd.port)"), "loop_rate": "0.1",
        ]
        for (key, value) in options { config[key] = value }
        return config
    }

    /// Circus's keys that Redis 7 reports (client_biggest_input_buf and
    /// client_longest_output_list were renamed in Redis 5), in Circus's order.
    static let reported = [
        "pubsub_channels", "connected_slaves", "lru_clock", "connected_clients", "keyspace_misses", "used_memory",
        "used_memory_peak", "total_commands_processed", "used_memory_rss", "total_connections_received",
        "pubsub_patterns", "used_cpu_sys", "used_cpu_sys_children", "blocked_clients", "used_cpu_user",
        "mem_fragmentation_ratio", "expired_keys", "evicted_keys", "uptime_in_seconds", "keyspace_hits",
    ]

    @Test func sendsCircusGaugesFromInfoWithAuthAndADatabase() throws {
        let redis = try RedisPeer(password: "s3cret")
        defer { redis.stop() }
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.redisObserver)
        defer { plugin.close() }
        try plugin.start("redis", Self.config(statsd, ["redis_url": .string("redis://:s3cret@127.0.0.1:\(redis.port)/3")]))

        let round = try statsd.receive(until: { $0.contains(".keyspace_hits:") })
        let parsed = try round.map { datagram in
            let match = try #require(datagram.wholeMatch(
                of: /circus\.redis_observer\.watcher\.redis_stats\.([a-z_]+):([0-9]+(\.[0-9]+)?)\|g/))
            return (key: String(match.1), value: String(match.2))
        }
        #expect(parsed.map(\.key) == Self.reported)
        // Integers stay integers; Redis's "0.012000" is written as Python's repr, 0.012.
        let values = Dictionary(uniqueKeysWithValues: parsed.map { ($0.key, $0.value) })
        #expect(values["connected_slaves"] == "0")
        for key in ["used_cpu_sys", "used_cpu_user", "mem_fragmentation_ratio"] {
            let value = try #require(values[key])
            #expect(value.wholeMatch(of: /[0-9]+\.([0-9]*[1-9]|0)/) != nil, "\(key) = \(value)")
        }
        #expect(!plugin.bus.logs.contains { $0.hasPrefix("redis at") })
    }

    @Test func anUnreachableServerIsCountedAndRestartsTheNamedWatcher() throws {
        let closed = try RefusingPort()
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.redisObserver)
        defer { plugin.close() }
        plugin.bus.answer { name, arguments in
            name == "restart" && arguments == ["name": "cache"] ? .success([:]) : .failure(.unknownCommand(name))
        }
        try plugin.start("redis", Self.config(statsd, [
            "redis_url": .string("redis://127.0.0.1:\(closed.port)"), "restart_on_timeout": "cache",
        ]))
        #expect(try statsd.receive(until: { $0.contains("restart_on_error") }) == [
            "circus.redis_observer.watcher.redis_stats.error:1|c",
            "circus.redis_observer.watcher.redis_stats.restart_on_error:1|c",
        ])
        try plugin.bus.waitForCalls("the restart", count: 1) { $0.name == "restart" && $0.arguments == ["name": "cache"] }
        #expect(plugin.bus.logs.contains { $0.hasPrefix("redis at redis://127.0.0.1:\(closed.port): cannot connect: ") })
    }

    @Test func aRefusedPasswordIsAnError() throws {
        let redis = try RedisPeer(password: "right")
        defer { redis.stop() }
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.redisObserver)
        defer { plugin.close() }
        try plugin.start("redis", Self.config(statsd, [
            "redis_url": .string("redis://:wrong@127.0.0.1:\(redis.port)/0"), "application_name": "r",
        ]))
        #expect(try statsd.receive() == "circus.r.watcher.redis_stats.error:1|c")
        #expect(plugin.bus.logs.contains { $0.hasPrefix("redis at redis://:wrong@127.0.0.1:\(redis.port)/0: AUTH: ") })
    }

    @Test func badOptionsAreRefusedByName() throws {
        let plugin = try LoadedPlugin(.redisObserver)
        defer { plugin.close() }
        #expect(try plugin.startFailure("r1", ["redis_url": "http://localhost/"])
            == "option redis_url = \"http://localhost/\": must start with redis:// or unix://")
        #expect(try plugin.startFailure("r2", ["redis_url": "rediss://localhost/"])
            == "option redis_url = \"rediss://localhost/\": TLS (rediss://) is not supported: use redis:// or unix://")
        #expect(try plugin.startFailure("r3", ["redis_url": "redis://localhost:http/0"])
            == "option redis_url = \"redis://localhost:http/0\": the port must be a number from 1 to 65535")
        #expect(try plugin.startFailure("r4", ["redis_url": "redis://localhost/zero"])
            == "option redis_url = \"redis://localhost/zero\": the database (after the last /) must be a number")
        #expect(try plugin.startFailure("r5", ["timeout": "never"]) == "option timeout = \"never\": not a number")
    }
}
