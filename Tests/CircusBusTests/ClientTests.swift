// Client-side behaviour: timeouts, and pub/sub framing and filtering.

import CircusBus
import CircusClient
import Glibc
import Testing

extension BusTests {
    @Suite struct ClientTests {
        @Test func callTimesOutWhenTheDaemonStaysSilent() throws {
            try withTemporaryDirectory { directory in
                let context = ZMQContext()
                let server = try EpollServer(context: context, endpoint: "ipc://\(directory)/s.sock", mode: .silent)
                server.start()
                defer { server.stop() }
                let client = try CircusConnection(
                    endpoint: server.endpoint, timeout: .milliseconds(200), context: context)
                defer { client.close() }
                let clock = ContinuousClock()
                let start = clock.now
                let error = try #require(throws: CircusClientError.self) { try client.call(Array("cast me".utf8)) }
                let elapsed = start.duration(to: clock.now)
                #expect(error.code == .timedOut)
                #expect(error.message == "timed out after 0.2 seconds waiting for a reply from \(server.endpoint)")
                #expect(elapsed >= .milliseconds(200))
                #expect(elapsed < .seconds(2))
            }
        }

        @Test func callTimesOutWhenNobodyListens() throws {
            try withTemporaryDirectory { directory in
                let client = try CircusConnection(
                    endpoint: "ipc://\(directory)/nobody.sock", timeout: .milliseconds(100), context: ZMQContext())
                defer { client.close() }
                let error = try #require(throws: CircusClientError.self) { try client.call([1]) }
                #expect(error.code == .timedOut)
                #expect(throws: CircusClientError.self) { try client.receive(timeout: .zero) }
            }
        }

        @Test func malformedEndpointIsAConnectionError() throws {
            let error = try #require(throws: CircusClientError.self) {
                try CircusConnection(endpoint: "tcp://", context: ZMQContext())
            }
            #expect(error.code == .connectionFailed)
            #expect(error.message.hasPrefix("cannot connect to tcp://: "))
        }

        @Test func eventsAreTwoFramesFilteredByPrefix() throws {
            try withTemporaryDirectory { directory in
                let context = ZMQContext()
                let publisher = try EventPublisher(context: context, endpoint: "ipc://\(directory)/pubsub.sock")
                defer { publisher.close() }
                let web = try Subscriber(endpoint: publisher.boundEndpoint, topics: ["watcher.web."], context: context)
                defer { web.close() }
                let everything = try Subscriber(endpoint: publisher.boundEndpoint, context: context)
                defer { everything.close() }
                try waitUntilSubscribed(publisher, [web, everything], probe: "watcher.web.probe")

                try publisher.publish(topic: "watcher.web.spawn", payload: Array(#"{"process_pid": 1}"#.utf8))
                try publisher.publish(topic: "watcher.db.spawn", payload: Array(#"{"process_pid": 2}"#.utf8))
                try publisher.publish(topic: "watcher.webapp.spawn", payload: [])
                try publisher.publish(topic: "watcher.web.reap", payload: Array(#"{"exit_code": 0}"#.utf8))

                // A last event both subscribers receive: what came before it has arrived.
                try publisher.publish(topic: "watcher.web.end", payload: [])

                let webEvents = try eventsUntil("watcher.web.end", web)
                #expect(webEvents.map(\.topic) == ["watcher.web.spawn", "watcher.web.reap"])
                #expect(webEvents.first?.payload == Array(#"{"process_pid": 1}"#.utf8))
                let all = try eventsUntil("watcher.web.end", everything)
                #expect(
                    all.map(\.topic) == [
                        "watcher.web.spawn", "watcher.db.spawn", "watcher.webapp.spawn", "watcher.web.reap",
                    ])
            }
        }

        @Test func subscriberSkipsMessagesThatAreNotTwoFrames() throws {
            let context = ZMQContext()
            let publisher = try ZMQSocket(context: context, kind: .pub)
            defer { publisher.close() }
            let endpoint = try publisher.bind("tcp://127.0.0.1:*")
            let subscriber = try Subscriber(endpoint: endpoint, topics: ["watcher."], context: context)
            defer { subscriber.close() }
            // Probe until the subscription has reached the publisher (slow joiner).
            var joined = false
            for _ in 0..<500 where !joined {
                try publisher.trySend([Array("watcher.probe".utf8), []])
                joined = try subscriber.next(timeout: .milliseconds(10)) != nil
            }
            #expect(joined)
            // Skip the probes still in flight: a marker sent after them comes after them.
            try publisher.trySend([Array("watcher.synced".utf8), []])
            _ = try eventsUntil("watcher.synced", subscriber)

            try publisher.trySend([Array("watcher.one-frame".utf8)])
            try publisher.trySend([Array("watcher.three".utf8), [1], [2]])
            try publisher.trySend([Array("watcher.web.stop".utf8), [3]])
            let event = try #require(try subscriber.next(timeout: .seconds(2)))
            #expect(event.topic == "watcher.web.stop")
            #expect(event.payload == [3])
        }

        /// Publishes `probe` until every subscriber has received one, then discards probes.
        private func waitUntilSubscribed(_ publisher: EventPublisher, _ subscribers: [Subscriber], probe: String) throws
        {
            var pending = subscribers.indices.map { _ in true }
            for _ in 0..<500 where pending.contains(true) {
                try publisher.publish(topic: probe, payload: [])
                for index in subscribers.indices where pending[index] {
                    if try subscribers[index].next(timeout: .milliseconds(10)) != nil { pending[index] = false }
                }
            }
            #expect(!pending.contains(true), "subscribers never joined")
            // Probes may still be in flight; a marker published after them arrives after them.
            try publisher.publish(topic: "watcher.web.synced", payload: [])
            for subscriber in subscribers { _ = try eventsUntil("watcher.web.synced", subscriber) }
        }

        /// The events before the first one with `topic`; fails (throws) if it does not come.
        private func eventsUntil(_ topic: String, _ subscriber: Subscriber) throws -> [(topic: String, payload: [UInt8])] {
            var events: [(topic: String, payload: [UInt8])] = []
            while true {
                guard let event = try subscriber.next(timeout: .seconds(5)) else {
                    throw TestFailure("no \(topic) event within 5 s after \(events.map(\.topic))")
                }
                if event.topic == topic { return events }
                events.append(event)
            }
        }
    }
}
