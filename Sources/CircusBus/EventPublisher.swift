// circusd's pub/sub channel (and the stats stream): a PUB socket that never blocks.

/// A PUB socket publishing two-frame `[topic, payload]` events, as Circus does.
///
/// PUB never receives, so there is no descriptor to watch: libzmq applies subscribers'
/// (un)subscriptions while publishing. Subscribers filter by topic prefix on their side.
/// Events are fire-and-forget: a subscriber that connects late misses earlier events,
/// and one that reads too slowly loses events once its queue (`ZMQ_SNDHWM`, 1000
/// messages) is full, without ever slowing the daemon.
///
/// - Important: Not thread-safe; owned by the daemon's loop thread.
public final class EventPublisher {
    /// The endpoint as requested.
    public let endpoint: String
    /// The endpoint actually bound (`ZMQ_LAST_ENDPOINT`), with a `*` port resolved.
    public let boundEndpoint: String

    private let socket: ZMQSocket

    /// Creates a PUB socket and binds it.
    ///
    /// - Throws: `BusError` `.bindFailed` naming the endpoint and the reason.
    public init(context: ZMQContext, endpoint: String) throws(BusError) {
        let socket = try ZMQSocket(context: context, kind: .pub)
        self.boundEndpoint = try socket.bind(endpoint)
        self.endpoint = endpoint
        self.socket = socket
    }

    /// Publishes `[topic, payload]` without blocking.
    ///
    /// - Parameters:
    ///   - topic: e.g. `watcher.web.spawn`; sent as UTF-8 and matched by prefix.
    ///   - payload: The event body (Circus sends JSON).
    /// - Throws: `BusError` `.closed` or `.sendFailed`. A subscriber with a full queue is
    ///   not an error: PUB drops that subscriber's copy silently.
    public func publish(topic: String, payload: [UInt8]) throws(BusError) {
        try socket.trySend([Array(topic.utf8), payload], what: "event \(topic)")
    }

    /// Whether ``close()`` has been called.
    public var isClosed: Bool { socket.isClosed }

    /// Closes the socket; pending events are discarded. Idempotent.
    public func close() {
        socket.close()
    }
}
