// Events inside the daemon: the supervisor publishes, subscribers (the pub/sub socket,
// the plugin host, the daemon's own parts) receive what their topic prefix selects.

public import CircusProtocol

/// Publish and subscribe by topic prefix, synchronously, on the owner's thread.
///
/// - Important: Not thread-safe: owned by the daemon's loop thread (other threads
///   publish through ``MessageBus/Remote``). Handlers run inside ``publish(_:)`` and must
///   not block.
public final class EventBus {
    /// A subscription, for ``unsubscribe(_:)``.
    public struct Subscription: Hashable, Sendable {
        let token: UInt64
    }

    private struct Subscriber {
        let token: UInt64
        let prefix: [UInt8]
        let handler: (EventMessage) -> Void
    }

    private var subscribers: [Subscriber] = []
    private var nextToken: UInt64 = 1

    /// An event bus with no subscriber.
    public init() {}

    /// Calls `handler` with every event whose topic starts with `prefix` (`""`: every
    /// event), in publishing order, until ``unsubscribe(_:)``.
    public func subscribe(prefix: String, _ handler: @escaping (EventMessage) -> Void) -> Subscription {
        let token = nextToken
        nextToken += 1
        subscribers.append(Subscriber(token: token, prefix: Array(prefix.utf8), handler: handler))
        return Subscription(token: token)
    }

    /// Ends a subscription; unknown or ended ones are ignored.
    public func unsubscribe(_ subscription: Subscription) {
        subscribers.removeAll { $0.token == subscription.token }
    }

    /// Hands `event` to every matching subscriber, in subscription order. A handler may
    /// publish, subscribe or unsubscribe: the subscribers are those of the moment
    /// `publish` was called.
    public func publish(_ event: EventMessage) {
        let current = subscribers
        guard !current.isEmpty else { return }
        let topic = event.topic.utf8
        func reaches(_ subscriber: Subscriber) -> Bool { subscriber.prefix.isEmpty || topic.starts(with: subscriber.prefix) }
        // The pub/sub socket and the plugins each want the payload's JSON: made once. (No
        // array of the matching subscribers: this runs for every event.)
        var matching = 0
        for subscriber in current where reaches(subscriber) { matching += 1 }
        let event = matching > 1 ? event.encodingPayload() : event
        for subscriber in current where reaches(subscriber) { subscriber.handler(event) }
    }

    /// How many subscriptions are active.
    public var subscriberCount: Int { subscribers.count }
}
