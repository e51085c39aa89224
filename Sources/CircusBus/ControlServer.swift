// circusd's control endpoint: a ROUTER driven by the daemon's own epoll loop.
//
// The daemon has one loop thread that owns every ZeroMQ socket, so this type never
// blocks and never starts a thread. It hands the loop a descriptor to watch and two
// non-blocking calls, `drain` and `reply`. The subtle part is ZMQ_FD, explained on
// `fileDescriptor`: getting it wrong loses wake-ups and the control channel stalls.

internal import CZeroMQ

/// The ROUTER socket circusd binds on `endpoint`, used without ever blocking.
///
/// Each request comes with its ``ControlSender``, named from what the kernel says about
/// the connection (see ``init(context:endpoint:reportUnroutableReplies:identifyTCPPeer:whenIdentified:)``).
///
/// Typical loop (the owner's thread owns the server):
/// ```swift
/// let server = try ControlServer(context: context, endpoint: "ipc:///run/circus/ctl.sock")
/// epollAdd(server.fileDescriptor, EPOLLIN)               // level- or edge-triggered
/// while running {
///     epollWait()                                          // any event, not only this fd
///     try server.drain { message in handle(message) }      // may call reply(...) inside
///     flushFinishedAsyncCommands { try server.reply(to: $0, $1) }
///     try server.drain { message in handle(message) }      // required after replies
/// }
/// ```
///
/// - Important: Not thread-safe. Create it on, or hand it to, the loop thread only.
public final class ControlServer {
    /// The endpoint as requested (e.g. `tcp://127.0.0.1:*`).
    public let endpoint: String
    /// The endpoint actually bound (`ZMQ_LAST_ENDPOINT`), e.g. `tcp://127.0.0.1:40123`.
    /// Give this to clients when binding a wildcard port.
    public let boundEndpoint: String

    private let socket: ZMQSocket
    private var isDraining = false
    /// How senders are named: from ipc credentials, or by the tracker for tcp.
    private let senders: SenderSource

    private enum SenderSource {
        case ipc
        case tcp(ConnectionTracker)
        case none(reason: String)
    }

    /// The largest request frame accepted: 16 MiB (`ZMQ_MAXMSGSIZE`).
    ///
    /// Without a limit one client could make the daemon allocate whatever it announces.
    /// libzmq checks the size in the frame header, before reading the body, and drops the
    /// connection of a client that sends more: the request never reaches the daemon, no
    /// reply is sent, and the client sees no answer (its DEALER reconnects by itself).
    /// libzmq does not say why a connection ended, so the daemon cannot log the refusal
    /// itself. Other clients are not affected.
    public static let maximumRequestBytes = 16 << 20

    /// Creates a ROUTER socket and binds it.
    ///
    /// - Parameters:
    ///   - context: The process's context; retained until the server is closed.
    ///   - endpoint: `tcp://HOST:PORT` (port `*` picks a free one) or `ipc:///path`
    ///     (the directory must exist; a stale socket file is replaced, but a path another
    ///     process serves is refused, naming its pid).
    ///   - reportUnroutableReplies: Sets `ZMQ_ROUTER_MANDATORY`. Off (the default, as in
    ///     Circus), libzmq silently drops a reply whose client has gone or whose queue is
    ///     full. On, ``reply(to:_:)`` throws `.peerUnreachable` or `.wouldBlock` in those
    ///     cases instead. Either way the reply is dropped and nothing ever blocks, because
    ///     every send uses `ZMQ_DONTWAIT`.
    ///   - identifyTCPPeer: For `tcp://` endpoints, names the owner of a connection's peer
    ///     from the connection's descriptor (circusd passes a lookup in the kernel's TCP
    ///     table). It is called once per connection, at its first message, on the caller's
    ///     thread, and must not block: it answers at once or later (see ``TCPPeerLookup``).
    ///     A connection's messages wait, in order, until its answer; other connections'
    ///     messages do not. Without it, senders of tcp requests are
    ///     ``ControlSender/unknown(peer:reason:)``. `ipc://` senders are always named from
    ///     the credentials libzmq records.
    ///   - whenIdentified: Called on the draining thread when messages that waited for a
    ///     later answer are ready: call ``drain(maxMessages:_:)`` then.
    /// - Throws: `BusError` `.bindFailed` with a message such as
    ///   `cannot bind ipc:///run/circus/ctl.sock: pid 4242 is serving it (another circusd?)`.
    public init(
        context: ZMQContext, endpoint: String, reportUnroutableReplies: Bool = false,
        identifyTCPPeer: TCPPeerLookup? = nil, whenIdentified: @escaping () -> Void = {}
    ) throws(BusError) {
        let socket = try ZMQSocket(context: context, kind: .router)
        try socket.setOption(ZMQ_ROUTER_MANDATORY, reportUnroutableReplies ? 1 : 0, name: "ZMQ_ROUTER_MANDATORY")
        try socket.setOption(ZMQ_MAXMSGSIZE, int64: Int64(Self.maximumRequestBytes), name: "ZMQ_MAXMSGSIZE")
        if endpoint.hasPrefix("ipc://") {
            senders = .ipc
        } else if endpoint.hasPrefix("tcp://"), let identifyTCPPeer {
            // Monitoring starts before bind so that every connection's ACCEPTED is seen.
            senders = .tcp(try ConnectionTracker(
                socket: socket, context: context, lookUp: identifyTCPPeer, whenReleased: whenIdentified))
        } else {
            senders = .none(reason: "senders are not identified on this endpoint")
        }
        self.boundEndpoint = try socket.bind(endpoint)
        self.endpoint = endpoint
        self.socket = socket
    }

    /// The descriptor to register in the owner's epoll set for `EPOLLIN` (`ZMQ_FD`).
    ///
    /// It is not the network socket; it is libzmq's internal mailbox signal, and it only
    /// reports *transitions*: it becomes readable when the socket's state may have changed,
    /// and stops being readable as soon as libzmq processes its pending commands, which
    /// happens inside *any* call on this socket, including `reply`. So:
    /// - Register it level- or edge-triggered, for `EPOLLIN` only; never read it.
    /// - Call ``drain(maxMessages:_:)`` after every readable notification, and also after
    ///   every ``reply(to:_:)`` made outside a `drain` handler: the send may have consumed
    ///   the signal for a request that is now waiting, and no notification will follow.
    ///   (Replies made inside the handler are covered: `drain` keeps going until empty.)
    /// - A notification with nothing to read is normal.
    /// - Remove it from epoll before ``close()``.
    public var fileDescriptor: Int32 { socket.fileDescriptor }

    /// A second descriptor to register like ``fileDescriptor`` (and to remove before
    /// ``close()``) when the server identifies tcp senders: the connection monitor's
    /// `ZMQ_FD`. Call ``drain(maxMessages:_:)`` when it is readable. Nil otherwise.
    public var monitorFileDescriptor: Int32? {
        if case .tcp(let tracker) = senders { return tracker.fileDescriptor }
        return nil
    }

    /// Whether a request is waiting (`ZMQ_EVENTS & ZMQ_POLLIN`); also re-arms the descriptor.
    public var hasPendingMessages: Bool {
        get throws(BusError) { try socket.hasPendingInput }
    }

    /// Whether ``close()`` has been called.
    public var isClosed: Bool { socket.isClosed }

    /// Receives every request that is waiting, without blocking, and hands each to `handler`.
    ///
    /// Loops until libzmq reports no input (a receive returns `EAGAIN` and `ZMQ_EVENTS`
    /// agrees), which leaves the descriptor armed for the next arrival. The handler may
    /// call ``reply(to:_:)``. A nested call to `drain` from inside the handler returns 0
    /// at once; the outer call carries on.
    ///
    /// - Parameters:
    ///   - maxMessages: Stop after this many, to let other events on the loop run. If the
    ///     return value equals it, more may be waiting and the descriptor will *not* fire
    ///     for them: call `drain` again soon (for example on the next loop turn).
    ///   - handler: Called once per multipart message, in arrival order.
    /// - Returns: The number of messages handed to `handler`.
    /// - Throws: `BusError` `.closed` or `.receiveFailed` (context terminated).
    @discardableResult
    public func drain(maxMessages: Int = .max, _ handler: (ControlMessage) -> Void) throws(BusError) -> Int {
        if isDraining { return 0 }
        isDraining = true
        defer { isDraining = false }
        var count = 0
        if case .tcp(let tracker) = senders { tracker.readEvents() }
        while count < maxMessages {
            // Messages whose sender was named since go first: they arrived earlier.
            if case .tcp(let tracker) = senders, let message = tracker.nextReleased() {
                count += 1
                handler(message)
            } else if let (frames, source) = try socket.tryReceiveWithSource() {
                let identity = frames[0], body = Array(frames.dropFirst())
                let message: ControlMessage?
                switch senders {
                case .ipc:
                    message = ControlMessage(identity: identity, frames: body, sender: .ipc(peerAddress: source.peerAddress))
                case .tcp(let tracker):
                    message = tracker.receive(identity: identity, frames: body, descriptor: source.descriptor)
                case .none(let reason):
                    let sender = ControlSender.unknown(peer: source.peerAddress ?? "peer", reason: reason)
                    message = ControlMessage(identity: identity, frames: body, sender: sender)
                }
                guard let message else { continue }
                count += 1
                handler(message)
            } else if try !socket.hasPendingInput {
                if case .tcp(let tracker) = senders { tracker.queueIsEmpty() }
                break
            }
        }
        return count
    }

    /// Sends `[identity, payload]`, so the client's DEALER receives one frame: `payload`.
    ///
    /// Never blocks (`ZMQ_DONTWAIT`).
    ///
    /// - Important: Call ``drain(maxMessages:_:)`` afterwards unless you are inside its
    ///   handler; see ``fileDescriptor``.
    /// - Throws: `BusError` `.closed` or `.sendFailed`; with `reportUnroutableReplies`,
    ///   also `.peerUnreachable` (client gone) or `.wouldBlock` (client's queue full).
    ///   The reply is dropped in every error case; log it and carry on.
    public func reply(to identity: [UInt8], _ payload: [UInt8]) throws(BusError) {
        try socket.trySend([identity, payload], what: "reply to client \(describeIdentity(identity))")
    }

    /// Lets pending replies wait up to `milliseconds` at close (see `ZMQSocket.setLinger`).
    public func setLinger(milliseconds: Int32) {
        try? socket.setLinger(milliseconds: milliseconds)
    }

    /// Closes the socket. Idempotent.
    ///
    /// Remove ``fileDescriptor`` from epoll first. libzmq closes sockets asynchronously
    /// (the listener goes away on its reaper thread shortly after, at the latest when the
    /// context terminates). libzmq 4.3 leaves an `ipc://` socket file in place; the next
    /// bind to that path replaces it.
    public func close() {
        if case .tcp(let tracker) = senders { tracker.close() }
        socket.close()
    }
}
