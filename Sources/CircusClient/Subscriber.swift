// A blocking consumer of circusd's pub/sub (or stats) stream: a SUB socket.

public import CircusBus

/// A SUB socket receiving Circus's two-frame `[topic, payload]` events.
///
/// - Important: Not thread-safe: use one subscriber per thread. ZeroMQ subscriptions
///   take effect asynchronously, so events published right after `init` may be missed
///   (the "slow joiner"); Circus clients live with the same.
public final class Subscriber {
    /// The publisher's endpoint (the daemon's `pubsub_endpoint` or `stats_endpoint`).
    public let endpoint: String
    /// The topic prefixes subscribed to; `""` means every topic.
    public let topics: [String]

    private let socket: ZMQSocket

    /// Creates a SUB socket, subscribes to each prefix, and connects.
    ///
    /// - Parameters:
    ///   - endpoint: Where the PUB socket is bound.
    ///   - topics: Prefixes such as `watcher.` or `watcher.web.`; `[""]` (the default)
    ///     receives everything, `[]` receives nothing.
    ///   - context: The ZeroMQ context; the process-wide one by default.
    /// - Throws: `CircusClientError` `.connectionFailed`.
    public init(endpoint: String, topics: [String] = [""], context: ZMQContext = .shared) throws(CircusClientError) {
        self.endpoint = endpoint
        self.topics = topics
        do {
            socket = try ZMQSocket(context: context, kind: .sub)
            for topic in topics {
                try socket.subscribe(prefix: Array(topic.utf8))
            }
            try socket.connect(endpoint)
        } catch {
            throw CircusClientError(error, default: .connectionFailed)
        }
    }

    /// Waits up to `timeout` for the next event.
    ///
    /// Messages that are not exactly two frames are not Circus events; they are skipped
    /// (the wait continues within the same deadline).
    /// - Returns: The topic (decoded as UTF-8) and payload, or `nil` on timeout.
    /// - Throws: `CircusClientError` `.receiveFailed` or `.closed`.
    public func next(timeout: Duration) throws(CircusClientError) -> (topic: String, payload: [UInt8])? {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            let frames: [[UInt8]]?
            do {
                frames = try socket.receive(timeout: clock.now.duration(to: deadline))
            } catch {
                throw CircusClientError(error, default: .receiveFailed)
            }
            guard let frames else { return nil }
            if frames.count == 2 {
                return (String(decoding: frames[0], as: UTF8.self), frames[1])
            }
        }
    }

    /// Closes the socket. Idempotent.
    public func close() {
        socket.close()
    }
}
