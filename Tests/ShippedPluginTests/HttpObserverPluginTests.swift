// The http_observer plugin, loaded through the real plugin host, fetching from a real
// HTTP server on 127.0.0.1; its statsd metrics are read from a real UDP socket and its
// `restart` is recorded by the test playing circusd.

import CircusPluginHost
import CircusProtocol
import Foundation
import OrderedCollections
import Testing

@Suite struct HttpObserverPluginTests {
    static func config(_ statsd: UDPReceiver, _ options: JSONObject) -> JSONObject {
        var config: JSONObject = [
            "use": "circus.plugins.http_observer.HttpObserver", "host": "127.0.0.1",
            "port": .string("\(statsd.port)"), "loop_rate": "0.1",
        ]
        for (key, value) in options { config[key] = value }
        return config
    }

    static let prefix = "circus.http_observer.watcher."

    @Test func aSuccessfulFetchSendsItsTimeInMilliseconds() throws {
        let server = try HTTPPeer(.status(200))
        defer { try? server.stop() }
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.httpObserver)
        defer { plugin.close() }
        try plugin.start("http", Self.config(statsd, ["check_url": .string("http://127.0.0.1:\(server.port)/health")]))

        let datagram = try statsd.receive()
        let timing = try #require(datagram.wholeMatch(of: /circus\.http_observer\.watcher\.http_stats\.request_time:(\d+)\|ms/))
        #expect(Int(timing.1) != nil)
        #expect(server.requests.first == "GET /health HTTP/1.1")
        #expect(!plugin.bus.calls.contains { $0.name == "restart" })
    }

    @Test func anErrorStatusIsCountedAndRestartsTheNamedWatcher() throws {
        let server = try HTTPPeer(.status(503))
        defer { try? server.stop() }
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.httpObserver)
        defer { plugin.close() }
        plugin.bus.answer { name, arguments in
            name == "restart" && arguments == ["name": "web"] ? .success([:]) : .failure(.unknownCommand(name))
        }
        try plugin.start("http", Self.config(statsd, [
            "check_url": .string("http://127.0.0.1:\(server.port)/"), "restart_on_error": "web",
            "application_name": "site",
        ]))

        #expect(try statsd.receive(until: { $0.contains("restart_on_error") }) == [
            "circus.site.watcher.http_stats.error:1|c",
            "circus.site.watcher.http_stats.error.503:1|c",
            "circus.site.watcher.http_stats.restart_on_error:1|c",
        ])
        try plugin.bus.waitForCalls("the restart", count: 1) { $0.name == "restart" && $0.arguments == ["name": "web"] }
        #expect(plugin.bus.logs.contains("http://127.0.0.1:\(server.port)/ answered with status 503"))

        // The server recovers: the next rounds are timed again.
        server.behave(.status(204))
        _ = try statsd.receive(until: { $0.hasSuffix("|ms") })
        #expect(plugin.bus.logs.contains("http://127.0.0.1:\(server.port)/ answers again"))
    }

    @Test func aRefusedConnectionIsError599() throws {
        let closed = try RefusingPort()
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.httpObserver)
        defer { plugin.close() }
        try plugin.start("http", Self.config(statsd, ["check_url": .string("http://127.0.0.1:\(closed.port)/")]))
        #expect(try statsd.receive() == Self.prefix + "http_stats.error:1|c")
        #expect(try statsd.receive() == Self.prefix + "http_stats.error.599:1|c")
        #expect(plugin.bus.logs.contains { $0.hasPrefix("http://127.0.0.1:\(closed.port)/ did not answer: ") })
    }

    @Test func aServerThatNeverAnswersTimesOutAs599() throws {
        let server = try HTTPPeer(.hang)
        defer { try? server.stop() }
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.httpObserver)
        defer { plugin.close() }
        try plugin.start("http", Self.config(statsd, [
            "check_url": .string("http://127.0.0.1:\(server.port)/slow"), "timeout": "0.3",
        ]))
        #expect(try statsd.receive() == Self.prefix + "http_stats.error:1|c")
        #expect(try statsd.receive() == Self.prefix + "http_stats.error.599:1|c")
        #expect(server.requests.first == "GET /slow HTTP/1.1")
    }

    @Test func stoppingAbortsARequestUnderWay() throws {
        let server = try HTTPPeer(.hang)
        defer { try? server.stop() }
        let statsd = try UDPReceiver()
        let plugin = try LoadedPlugin(.httpObserver)
        defer { plugin.close() }
        // A request that would wait 10 minutes for its answer.
        try plugin.start("http", Self.config(statsd, [
            "check_url": .string("http://127.0.0.1:\(server.port)/"), "timeout": "600",
        ]))
        _ = try waitUntil("the request") { server.requests.first }
        let stopped = Slot<Bool>()
        plugin.host.stopInstance("http") { stopped.put(true) }
        _ = try waitUntil("the instance to stop while its request hangs") { stopped.get }
    }

    @Test func badOptionsAreRefusedByName() throws {
        let plugin = try LoadedPlugin(.httpObserver)
        defer { plugin.close() }
        #expect(try plugin.startFailure("h1", ["check_url": "ftp://example.org/"])
            == "option check_url = \"ftp://example.org/\": must be an http:// or https:// URL")
        #expect(try plugin.startFailure("h2", ["timeout": "soon"]) == "option timeout = \"soon\": not a number")
        #expect(try plugin.startFailure("h3", ["loop_rate": "-1"]) == "option loop_rate = \"-1\": must be at least 0.001")
    }
}
