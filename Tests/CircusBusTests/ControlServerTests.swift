// ROUTER/DEALER behaviour of the control channel, driven the way circusd drives it.

import CircusBus
import CircusClient
import Glibc
import Testing

/// Serialized: the tests spin real threads and measure latency on a small machine.
@Suite(.serialized) struct BusTests {}

extension BusTests {
    @Suite struct ControlServerTests {
        @Test func roundTripOverIPC() throws {
            try withTemporaryDirectory { directory in
                let context = ZMQContext()
                let endpoint = "ipc://\(directory)/control.sock"
                let server = try EpollServer(context: context, endpoint: endpoint, mode: .echoInline)
                #expect(server.endpoint == endpoint)
                #expect(fileExists("\(directory)/control.sock"))
                server.start()
                let client = try CircusConnection(endpoint: endpoint, timeout: .seconds(5), context: context)
                let reply = try client.call(Array(#"{"command": "list"}"#.utf8))
                #expect(reply == Array(#"{"command": "list"}"#.utf8))
                client.close()
                server.stop()

                // One frame from a DEALER, under the client's uuid4-hex identity.
                #expect(server.received.count == 1)
                #expect(server.received.first?.frames.count == 1)
                #expect(server.received.first?.identity == client.identity)
                #expect(server.replyFailures.isEmpty)
                #expect(server.loopError == nil)
            }
        }

        @Test func roundTripOverTCPWithWildcardPort() throws {
            let context = ZMQContext()
            let server = try EpollServer(context: context, endpoint: "tcp://127.0.0.1:*", mode: .echoInline)
            #expect(server.endpoint.hasPrefix("tcp://127.0.0.1:"))
            #expect(!server.endpoint.hasSuffix(":*"))
            #expect(server.server.endpoint == "tcp://127.0.0.1:*")
            server.start()
            defer { server.stop() }
            let client = try CircusConnection(endpoint: server.endpoint, context: context)
            defer { client.close() }
            #expect(try client.call([1, 2, 3]) == [1, 2, 3])
            #expect(try client.call([]) == [])
        }

        @Test func clientIdentityLooksLikePythonUUID4Hex() throws {
            let client = try CircusConnection(endpoint: "tcp://127.0.0.1:1", context: ZMQContext())
            defer { client.close() }
            let text = String(decoding: client.identity, as: UTF8.self)
            #expect(text.count == 32)
            #expect(text.allSatisfy { "0123456789abcdef".contains($0) })
            #expect(Array(text)[12] == "4")
            #expect("89ab".contains(Array(text)[16]))
            let other = try CircusConnection(endpoint: "tcp://127.0.0.1:1", context: ZMQContext())
            #expect(other.identity != client.identity)
        }

        @Test func bindFailureNamesEndpointAndReason() throws {
            let context = ZMQContext()
            let first = try ControlServer(context: context, endpoint: "tcp://127.0.0.1:*")
            defer { first.close() }
            let taken = first.boundEndpoint
            let error = try #require(throws: BusError.self) {
                try ControlServer(context: context, endpoint: taken)
            }
            #expect(error.code == .bindFailed)
            #expect(error.errorNumber == EADDRINUSE)
            #expect(error.message == "cannot bind \(taken): Address already in use (another process listens on that port)")

            try withTemporaryDirectory { directory in
                let endpoint = "ipc://\(directory)/missing/control.sock"
                let error = try #require(throws: BusError.self) {
                    try ControlServer(context: context, endpoint: endpoint)
                }
                #expect(error.code == .bindFailed)
                #expect(
                    error.message.hasPrefix("cannot bind \(endpoint): directory \(directory)/missing does not exist"))
            }

            let bad = try #require(throws: BusError.self) {
                try EventPublisher(context: context, endpoint: "carrier-pigeon://home")
            }
            #expect(bad.code == .bindFailed)
            #expect(bad.message == "cannot bind carrier-pigeon://home: Protocol not supported")
        }

        /// 2000 sequential calls, all answered correctly; reports the echo latency.
        @Test(arguments: [true, false])
        func sequentialCallsOverIPC(edgeTriggered: Bool) throws {
            try withTemporaryDirectory { directory in
                let context = ZMQContext()
                let server = try EpollServer(
                    context: context, endpoint: "ipc://\(directory)/c.sock", mode: .echoInline,
                    edgeTriggered: edgeTriggered)
                server.start()
                defer { server.stop() }
                let client = try CircusConnection(endpoint: server.endpoint, timeout: .seconds(5), context: context)
                defer { client.close() }
                _ = try client.call(Array("warm-up".utf8))

                let clock = ContinuousClock()
                var samples: [Duration] = []
                samples.reserveCapacity(2000)
                for index in 0..<2000 {
                    let request = Array(#"{"id": "\#(index)", "command": "status"}"#.utf8)
                    let start = clock.now
                    let reply = try client.call(request)
                    samples.append(start.duration(to: clock.now))
                    #expect(reply == request)
                }
                samples.sort()
                let trigger = edgeTriggered ? "edge" : "level"
                print(
                    "ipc echo, \(trigger)-triggered, 2000 sequential calls: "
                        + "p50 \(Int(percentileMicroseconds(samples, 0.50))) µs, "
                        + "p90 \(Int(percentileMicroseconds(samples, 0.90))) µs, "
                        + "p99 \(Int(percentileMicroseconds(samples, 0.99))) µs")
            }
        }

        /// Four threads call at once while the server replies: nothing may stall (each
        /// call times out after 5 s, so a lost wake-up fails the test instead of hanging).
        @Test(arguments: [
            (ServerMode.echoInline, true), (ServerMode.echoDeferred, true), (ServerMode.echoDeferred, false),
            (ServerMode.echoLate, true), (ServerMode.echoLate, false),
        ])
        func concurrentClients(mode: ServerMode, edgeTriggered: Bool) throws {
            let context = ZMQContext()
            let server = try EpollServer(
                context: context, endpoint: "tcp://127.0.0.1:*", mode: mode, edgeTriggered: edgeTriggered)
            server.start()
            let endpoint = server.endpoint
            let failures = Failures()
            let calls = mode == .echoLate ? 150 : 500  // late replies cost 2 ms a batch
            runConcurrently(4) { client in
                do {
                    let connection = try CircusConnection(endpoint: endpoint, timeout: .seconds(5), context: context)
                    defer { connection.close() }
                    for index in 0..<calls {
                        let request = Array("client \(client) request \(index)".utf8)
                        let reply = try connection.call(request)
                        if reply != request { failures.record("client \(client) #\(index): wrong reply") }
                    }
                } catch {
                    failures.record("client \(client): \(error)")
                }
            }
            server.stop()
            #expect(failures.all == [])
            #expect(server.received.count == 4 * calls)
            #expect(server.replyFailures.isEmpty)
            #expect(server.loopError == nil)
        }

        /// Requests pour in while replies go out: each client pipelines 200 requests
        /// before reading any reply, so the ROUTER receives during its own sends.
        @Test(arguments: [ServerMode.echoInline, ServerMode.echoDeferred, ServerMode.echoLate])
        func pipelinedRequestsWhileReplying(mode: ServerMode) throws {
            try withTemporaryDirectory { directory in
                let context = ZMQContext()
                let server = try EpollServer(context: context, endpoint: "ipc://\(directory)/p.sock", mode: mode)
                server.start()
                let endpoint = server.endpoint
                let failures = Failures()
                runConcurrently(4) { client in
                    do {
                        let connection = try CircusConnection(
                            endpoint: endpoint, timeout: .seconds(5), context: context)
                        defer { connection.close() }
                        for round in 0..<5 {
                            let requests = (0..<200).map { Array("c\(client) r\(round) #\($0)".utf8) }
                            for request in requests { try connection.send(request) }
                            for request in requests where try connection.receive() != request {
                                failures.record("client \(client) round \(round): reply out of order")
                            }
                        }
                    } catch {
                        failures.record("client \(client): \(error)")
                    }
                }
                server.stop()
                #expect(failures.all == [])
                #expect(server.received.count == 4 * 5 * 200)
                #expect(server.loopError == nil)
            }
        }

        /// The classic ZMQ_FD bug, made deterministic: a request lands while the loop is
        /// busy, then a reply (sent more than libzmq's ~1 ms command-throttle later)
        /// processes the mailbox and swallows the descriptor's signal. The descriptor
        /// stays silent though a request waits; only the post-reply `drain` finds it.
        @Test func replyOutsideDrainCanSwallowTheWakeup() throws {
            let context = ZMQContext()
            let server = try ControlServer(context: context, endpoint: "tcp://127.0.0.1:*")
            defer { server.close() }
            let first = try CircusConnection(endpoint: server.boundEndpoint, context: context)
            defer { first.close() }
            let second = try CircusConnection(endpoint: server.boundEndpoint, context: context)
            defer { second.close() }

            try first.send(Array("async command".utf8))
            let pending = try #require(try receiveMessages(server, count: 1).first)
            try second.send(Array("next command".utf8))
            #expect(descriptorBecomesReadable(server.fileDescriptor, within: 5000), "the request must signal")
            usleep(10_000)  // the async command runs; libzmq's throttle window passes

            try server.reply(to: pending.identity, Array("done".utf8))
            // What libzmq 4.3 does (why the rule exists): the signal is gone, the request is not.
            #expect(!descriptorBecomesReadable(server.fileDescriptor, within: 100))
            #expect(try server.hasPendingMessages)
            // The rule: drain after every reply made outside a drain handler.
            var late: [ControlMessage] = []
            try server.drain { late.append($0) }
            #expect(late.map(\.frames) == [[Array("next command".utf8)]])
            #expect(try first.receive() == Array("done".utf8))
        }

        @Test func reqClientArrivesWithEmptyDelimiter() throws {
            try withTemporaryDirectory { directory in
                let context = ZMQContext()
                let server = try ControlServer(context: context, endpoint: "ipc://\(directory)/r.sock")
                defer { server.close() }
                let req = try ZMQSocket(context: context, kind: .req)
                defer { req.close() }
                try req.connect(server.boundEndpoint)
                let request = Array(#"{"command": "list"}"#.utf8)
                try req.send([request], timeout: .seconds(1))

                let messages = try receiveMessages(server, count: 1)
                #expect(messages.count == 1)
                #expect(messages.first?.frames == [[], request])
            }
        }

        @Test func tenMegabyteFrameArrivesIntact() throws {
            try withTemporaryDirectory { directory in
                let context = ZMQContext()
                let server = try EpollServer(
                    context: context, endpoint: "ipc://\(directory)/big.sock", mode: .echoInline)
                server.start()
                let client = try CircusConnection(endpoint: server.endpoint, timeout: .seconds(20), context: context)
                var generator = SplitMix64(seed: 42)
                let payload = (0..<10 * 1024 * 1024).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                let clock = ContinuousClock()
                let start = clock.now
                let reply = try client.call(payload)
                print("10 MB echo over ipc: \(start.duration(to: clock.now))")
                client.close()
                server.stop()
                #expect(reply.count == payload.count)
                #expect(reply == payload)
                #expect(server.received.first?.frames.first == payload)
            }
        }

        @Test func clientThatLeavesBeforeTheReplyDoesNotBreakTheServer() throws {
            try withTemporaryDirectory { directory in
                let context = ZMQContext()
                let server = try ControlServer(context: context, endpoint: "ipc://\(directory)/gone.sock")
                defer { server.close() }
                let leaving = try CircusConnection(endpoint: server.boundEndpoint, context: context)
                try leaving.send(Array("slow command".utf8))
                let request = try #require(try receiveMessages(server, count: 1).first)
                leaving.close()

                // Default (as Circus): the reply to a departed client is dropped silently.
                try server.reply(to: request.identity, Array("too late".utf8))
                try server.reply(to: Array("never-connected".utf8), Array("nobody".utf8))

                // The next client is served normally.
                let next = try CircusConnection(endpoint: server.boundEndpoint, context: context)
                defer { next.close() }
                try next.send(Array("ping".utf8))
                let ping = try #require(try receiveMessages(server, count: 1).first)
                #expect(ping.identity == next.identity)
                try server.reply(to: ping.identity, ping.frames[0])
                #expect(try next.receive() == Array("ping".utf8))
            }
        }

        @Test func unroutableRepliesAreReportedWhenAskedFor() throws {
            let context = ZMQContext()
            let server = try ControlServer(
                context: context, endpoint: "tcp://127.0.0.1:*", reportUnroutableReplies: true)
            defer { server.close() }
            let error = try #require(throws: BusError.self) {
                try server.reply(to: Array("never-connected".utf8), [1])
            }
            #expect(error.code == .peerUnreachable)
            #expect(error.message == "reply to client never-connected dropped: the peer is gone")

            let leaving = try CircusConnection(endpoint: server.boundEndpoint, context: context)
            try leaving.send([1])
            let request = try #require(try receiveMessages(server, count: 1).first)
            leaving.close()
            // The ROUTER learns of the disconnect asynchronously; within a second the
            // reply must be refused rather than queued for a ghost.
            var refused: BusError?
            for _ in 0..<1000 where refused == nil {
                do { try server.reply(to: request.identity, [2]) } catch { refused = error }
                if refused == nil { usleep(1000) }
            }
            #expect(refused?.code == .peerUnreachable)
        }

        @Test func drainStopsAtMaxMessagesAndResumes() throws {
            // inproc: a send returns once the message is in the ROUTER's queue, so all five
            // are waiting before the first drain (over tcp or ipc they trickle in).
            let context = ZMQContext()
            let server = try ControlServer(context: context, endpoint: "inproc://drain-\(getpid())")
            defer { server.close() }
            let client = try CircusConnection(endpoint: server.boundEndpoint, context: context)
            defer { client.close() }
            for index in 0..<5 { try client.send([UInt8(index)]) }
            var seen: [[UInt8]] = []
            #expect(try server.drain(maxMessages: 2) { seen.append($0.frames[0]) } == 2)
            #expect(seen == [[0], [1]])
            #expect(try server.hasPendingMessages)
            #expect(try server.drain { seen.append($0.frames[0]) } == 3)
            #expect(seen == (0..<5).map { [UInt8($0)] })
            #expect(try server.hasPendingMessages == false)
        }

        @Test func closedSocketsSayClosed() throws {
            let context = ZMQContext()
            let server = try ControlServer(context: context, endpoint: "tcp://127.0.0.1:*")
            server.close()
            server.close()
            #expect(server.isClosed)
            #expect(throws: BusError.self) { try server.drain { _ in } }
            #expect((try? server.reply(to: [1], [2])) == nil)

            let client = try CircusConnection(endpoint: "tcp://127.0.0.1:1", context: context)
            client.close()
            let error = try #require(throws: CircusClientError.self) { try client.call([1]) }
            #expect(error.code == .closed)
        }
    }
}

/// A tiny deterministic generator for test payloads.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
