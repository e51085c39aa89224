// A thin, owning wrapper over one libzmq socket.
//
// This is the only file that touches frames and `zmq_msg_t`. The server half
// (`ControlServer`, `EventPublisher`) and the client half (CircusClient's connection
// and subscriber) are built from it, so no other module needs to import CZeroMQ.
//
// Copies: a received frame is copied once, from libzmq's message buffer straight into
// the `[UInt8]` it becomes (libzmq itself decodes large frames into a buffer of their
// own, without an extra copy). A sent frame is copied once, into the `zmq_msg_t` that
// `zmq_send` builds. A 10 MB reply therefore costs one memcpy on each side.

internal import CZeroMQ
internal import Glibc

/// One ZeroMQ socket, closed on `close()` or when released.
///
/// Every socket is created with `ZMQ_LINGER = 0`, so closing it (or terminating the
/// context) never waits for undelivered messages.
///
/// - Important: libzmq sockets are not thread-safe. A `ZMQSocket` belongs to one thread
///   at a time; it may move to another thread only across a full memory barrier (for
///   example, created before `pthread_create` and used only by the new thread). It is
///   deliberately not `Sendable`.
public final class ZMQSocket {
    /// The socket type (`ZMQ_ROUTER`, `ZMQ_DEALER`, ...).
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        let rawValue: Int32
        /// The ZeroMQ name, e.g. `"ROUTER"`.
        public let description: String

        private init(_ rawValue: Int32, _ name: String) {
            self.rawValue = rawValue
            self.description = name
        }

        /// circusd's control socket: prefixes each incoming message with the peer's identity.
        public static let router = Kind(ZMQ_ROUTER, "ROUTER")
        /// A client's control socket (what Python's `CircusClient` uses).
        public static let dealer = Kind(ZMQ_DEALER, "DEALER")
        /// Strict request/reply client; adds an empty delimiter frame (which circusd ignores).
        public static let req = Kind(ZMQ_REQ, "REQ")
        /// circusd's event and stats streams.
        public static let pub = Kind(ZMQ_PUB, "PUB")
        /// A consumer of events (circusctl listen, circus-top, plugins).
        public static let sub = Kind(ZMQ_SUB, "SUB")
        /// The reading end of a socket monitor (``ZMQSocket/monitor(_:events:)``).
        public static let pair = Kind(ZMQ_PAIR, "PAIR")
    }

    /// The socket type.
    public let kind: Kind
    /// `ZMQ_FD`: an eventfd-like descriptor that becomes readable when the socket's state
    /// *may* have changed. See ``ControlServer/fileDescriptor`` for the rules.
    ///
    /// Owned by libzmq: never read, write or close it. Remove it from any epoll set
    /// before `close()`; afterwards its number may be reused.
    public let fileDescriptor: Int32

    // Retained so the context is terminated only after this socket is closed.
    private let context: ZMQContext
    private var handle: UnsafeMutableRawPointer?
    // One reusable message for receiving; the socket is single-threaded, so is this.
    private let message: UnsafeMutablePointer<zmq_msg_t>
    // The ZMQ_SNDTIMEO currently set, to avoid a setsockopt per blocking send.
    private var sendTimeoutMilliseconds: Int32 = -1

    /// Creates a socket of the given type in `context`.
    ///
    /// - Throws: `BusError` with code `.socketCreationFailed` (for example `EMFILE`).
    public init(context: ZMQContext, kind: Kind) throws(BusError) {
        guard let handle = zmq_socket(context.handle, kind.rawValue) else {
            throw .fromErrno(.socketCreationFailed, "cannot create a \(kind) socket")
        }
        var fd: Int32 = -1
        var size = MemoryLayout<Int32>.size
        if zmq_getsockopt(handle, ZMQ_FD, &fd, &size) != 0 {
            let error = BusError.fromErrno(.optionFailed, "cannot read ZMQ_FD of a \(kind) socket")
            zmq_close(handle)
            throw error
        }
        self.kind = kind
        self.context = context
        self.handle = handle
        self.fileDescriptor = fd
        self.message = .allocate(capacity: 1)
        try setOption(ZMQ_LINGER, 0, name: "ZMQ_LINGER")
    }

    deinit {
        close()
        message.deallocate()
    }

    /// Whether `close()` has been called.
    public var isClosed: Bool { handle == nil }

    /// Closes the socket (idempotent). Pending outgoing messages are discarded.
    public func close() {
        if let handle {
            zmq_close(handle)
            self.handle = nil
        }
    }

    // MARK: Options

    /// How long unsent messages may wait at close or context termination (`ZMQ_LINGER`).
    /// Sockets start at 0; the daemon raises it just before it exits so that the reply
    /// to `quit` still leaves.
    public func setLinger(milliseconds: Int32) throws(BusError) {
        try setOption(ZMQ_LINGER, milliseconds, name: "ZMQ_LINGER")
    }

    /// Sets the identity (`ZMQ_ROUTING_ID`) the peer ROUTER will see. Call before `connect`.
    ///
    /// - Parameter identity: 1 to 255 bytes; must not start with a zero byte (reserved
    ///   by libzmq for generated identities).
    public func setIdentity(_ identity: [UInt8]) throws(BusError) {
        try setOption(ZMQ_ROUTING_ID, bytes: identity, name: "ZMQ_ROUTING_ID")
    }

    /// Subscribes a SUB socket to every topic starting with `prefix` (`""` means all).
    public func subscribe(prefix: [UInt8]) throws(BusError) {
        try setOption(ZMQ_SUBSCRIBE, bytes: prefix, name: "ZMQ_SUBSCRIBE")
    }

    /// The endpoint actually bound or connected last (`ZMQ_LAST_ENDPOINT`), with a
    /// wildcard port or path resolved, e.g. `tcp://127.0.0.1:40123`.
    public var lastEndpoint: String? {
        guard let handle else { return nil }
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        guard zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else { return nil }
        let endpoint = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return endpoint.isEmpty ? nil : endpoint
    }

    /// Whether a whole message can be received right now (`ZMQ_EVENTS & ZMQ_POLLIN`).
    ///
    /// Reading `ZMQ_EVENTS` also makes libzmq process its pending internal commands,
    /// which is what re-arms `fileDescriptor`.
    public var hasPendingInput: Bool {
        get throws(BusError) {
            let handle = try requireHandle()
            var events: Int32 = 0
            var size = MemoryLayout<Int32>.size
            while zmq_getsockopt(handle, ZMQ_EVENTS, &events, &size) != 0 {
                if zmq_errno() != EINTR { throw .fromErrno(.receiveFailed, "cannot read ZMQ_EVENTS") }
            }
            return events & ZMQ_POLLIN != 0
        }
    }

    func setOption(_ option: Int32, _ value: Int32, name: String) throws(BusError) {
        let handle = try requireHandle()
        var value = value
        if zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size) != 0 {
            throw .fromErrno(.optionFailed, "cannot set \(name) on a \(kind) socket")
        }
    }

    func setOption(_ option: Int32, int64 value: Int64, name: String) throws(BusError) {
        let handle = try requireHandle()
        var value = value
        if zmq_setsockopt(handle, option, &value, MemoryLayout<Int64>.size) != 0 {
            throw .fromErrno(.optionFailed, "cannot set \(name) on a \(kind) socket")
        }
    }

    func setOption(_ option: Int32, bytes: [UInt8], name: String) throws(BusError) {
        let handle = try requireHandle()
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        if rc != 0 { throw .fromErrno(.optionFailed, "cannot set \(name) on a \(kind) socket") }
    }

    /// Publishes this socket's connection events on the inproc `endpoint`, for a PAIR
    /// socket to read (`zmq_socket_monitor`). Start it before `bind` to see every event.
    ///
    /// Each event is two frames: 6 bytes (the event as a native `UInt16`, then its value,
    /// for ACCEPTED and DISCONNECTED the connection's descriptor, as a native `UInt32`),
    /// then the endpoint.
    public func monitor(_ endpoint: String, events: Int32) throws(BusError) {
        let handle = try requireHandle()
        if zmq_socket_monitor(handle, endpoint, events) != 0 {
            throw .fromErrno(.optionFailed, "cannot monitor a \(kind) socket on \(endpoint)")
        }
    }

    /// `ZMQ_EVENT_ACCEPTED`: a connection was accepted; the value is its descriptor.
    public static let eventAccepted = Int32(ZMQ_EVENT_ACCEPTED)
    /// `ZMQ_EVENT_DISCONNECTED`: a connection ended; the value is its (now closing) descriptor.
    public static let eventDisconnected = Int32(ZMQ_EVENT_DISCONNECTED)

    // MARK: Bind and connect

    /// Binds to `endpoint` (`tcp://HOST:PORT`, `tcp://HOST:*`, `ipc:///path`, ...).
    ///
    /// - Returns: The endpoint actually bound (a `*` port or path resolved).
    /// - Throws: `BusError` with code `.bindFailed` and a message naming the endpoint, e.g.
    ///   `cannot bind tcp://127.0.0.1:5555: Address already in use`. For `ipc://` the
    ///   socket file's directory must already exist. libzmq unlinks whatever is at the
    ///   path first, so a path that another process serves (a running daemon's socket),
    ///   or that is not a socket at all, is refused before libzmq sees it.
    @discardableResult
    public func bind(_ endpoint: String) throws(BusError) -> String {
        let handle = try requireHandle()
        if let problem = Self.ipcDirectoryProblem(endpoint) ?? IPCEndpointProbe.conflict(endpoint) {
            throw BusError(.bindFailed, errorNumber: problem.errno, message: "cannot bind \(endpoint): \(problem.text)")
        }
        if zmq_bind(handle, endpoint) != 0 {
            let error = zmq_errno()
            var text = "cannot bind \(endpoint): \(BusError.zmqDescription(error))"
            switch error {
            case EADDRINUSE where endpoint.hasPrefix("tcp://"): text += " (another process listens on that port)"
            case ENODEV: text += " (bind takes an IP address, a local interface name or *, not a host name)"
            default: break
            }
            throw BusError(.bindFailed, errorNumber: error, message: text)
        }
        return lastEndpoint ?? endpoint
    }

    /// Connects to `endpoint`. ZeroMQ connects in the background and reconnects by
    /// itself, so this only fails for a malformed or unsupported endpoint.
    public func connect(_ endpoint: String) throws(BusError) {
        let handle = try requireHandle()
        if zmq_connect(handle, endpoint) != 0 {
            throw .fromErrno(.connectFailed, "cannot connect to \(endpoint)")
        }
    }

    /// For `ipc:///dir/name`, a description of why `dir` cannot hold the socket file.
    static func ipcDirectoryProblem(_ endpoint: String) -> (errno: Int32, text: String)? {
        guard endpoint.hasPrefix("ipc://") else { return nil }
        let path = endpoint.dropFirst("ipc://".count)
        // "@name" is Linux's abstract namespace and "*" a generated path: no directory.
        guard !path.hasPrefix("@"), path != "*", let slash = path.lastIndex(of: "/") else { return nil }
        let directory = String(path[..<slash])
        guard !directory.isEmpty else { return nil }
        var info = stat()
        if stat(directory, &info) != 0 {
            let error = errno
            if error == ENOENT { return (error, "directory \(directory) does not exist") }
            return (error, "cannot use directory \(directory): \(BusError.zmqDescription(error))")
        }
        if info.st_mode & S_IFMT != S_IFDIR {
            return (ENOTDIR, "\(directory) is not a directory")
        }
        return nil
    }

    // MARK: Sending

    /// Sends a multipart message without ever blocking (`ZMQ_DONTWAIT`).
    ///
    /// - Parameters:
    ///   - frames: At least one frame; all but the last are sent with `ZMQ_SNDMORE`.
    ///   - what: Names the message in error messages (e.g. `reply to client 3f2a…`).
    /// - Throws: `BusError` `.wouldBlock` (high-water mark reached, message dropped),
    ///   `.peerUnreachable` (ROUTER with mandatory routing and no such peer), `.closed`,
    ///   or `.sendFailed`.
    ///
    /// `what` names the message in errors only; it is not evaluated on success (replies are
    /// on the hot path of every request).
    public func trySend(_ frames: [[UInt8]], what: @autoclosure () -> String = "message") throws(BusError) {
        try send(frames, flags: ZMQ_DONTWAIT, what: what, timeout: nil)
    }

    /// Sends a multipart message, waiting up to `timeout` for room in the queue.
    ///
    /// ZeroMQ queues messages even before the connection is up, so this normally
    /// returns at once; it waits only when the high-water mark has been reached.
    /// - Throws: `BusError` `.timedOut`, `.closed` or `.sendFailed`.
    public func send(_ frames: [[UInt8]], timeout: Duration, what: @autoclosure () -> String = "message") throws(BusError) {
        let milliseconds = Int32(timeout.zmqMilliseconds)
        if milliseconds != sendTimeoutMilliseconds {
            try setOption(ZMQ_SNDTIMEO, milliseconds, name: "ZMQ_SNDTIMEO")
            sendTimeoutMilliseconds = milliseconds
        }
        try send(frames, flags: 0, what: what, timeout: timeout)
    }

    private func send(_ frames: [[UInt8]], flags: Int32, what: () -> String, timeout: Duration?) throws(BusError) {
        let handle = try requireHandle()
        precondition(!frames.isEmpty, "a ZeroMQ message has at least one frame")
        let last = frames.count - 1
        for index in frames.indices {
            let frameFlags = flags | (index < last ? ZMQ_SNDMORE : 0)
            var rc: Int32
            repeat {
                // zmq_send copies the bytes into a fresh zmq_msg_t: the only copy made.
                rc = frames[index].withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, frameFlags) }
            } while rc < 0 && zmq_errno() == EINTR
            guard rc < 0 else { continue }
            let error = zmq_errno()
            switch error {
            case EAGAIN:
                if let timeout {
                    throw BusError(.timedOut, errorNumber: error, message: "\(what()) not sent: no room after \(timeout)")
                }
                throw BusError(.wouldBlock, errorNumber: error, message: "\(what()) dropped: the peer's queue is full")
            case EHOSTUNREACH:
                throw BusError(.peerUnreachable, errorNumber: error, message: "\(what()) dropped: the peer is gone")
            default:
                throw .fromErrno(.sendFailed, "cannot send \(what())", errno: error)
            }
        }
    }

    // MARK: Receiving

    /// Receives one whole multipart message if one is ready, without blocking.
    ///
    /// - Returns: The frames (for a ROUTER, the first is the peer's identity), or `nil`
    ///   when nothing is pending (`EAGAIN`).
    /// - Throws: `BusError` `.closed` or `.receiveFailed` (e.g. the context was terminated).
    public func tryReceive() throws(BusError) -> [[UInt8]]? {
        try tryReceive(origin: nil)
    }

    /// Where a received message came from, as libzmq recorded it on its last frame.
    public struct Source: Hashable, Sendable {
        /// The descriptor of the connection it arrived on (`ZMQ_SRCFD`). libzmq may have
        /// closed it since, and the kernel may have given the number to a new connection.
        public var descriptor: Int32
        /// The `Peer-Address` metadata: the peer's IP for tcp; for ipc on Linux,
        /// `<address>:<uid>:<gid>:<pid>` taken with `SO_PEERCRED` at connection time.
        public var peerAddress: String?
    }

    /// Like ``tryReceive()``, also telling where the message came from.
    public func tryReceiveWithSource() throws(BusError) -> (frames: [[UInt8]], source: Source)? {
        var source = Source(descriptor: -1, peerAddress: nil)
        guard let frames = try tryReceive(origin: &source) else { return nil }
        return (frames, source)
    }

    private func tryReceive(origin: UnsafeMutablePointer<Source>?) throws(BusError) -> [[UInt8]]? {
        let handle = try requireHandle()
        var frames: [[UInt8]] = []
        while true {
            zmq_msg_init(message)
            // ZeroMQ delivers multipart messages atomically: once the first frame is
            // here the rest are too, so DONTWAIT never splits a message.
            if zmq_msg_recv(message, handle, ZMQ_DONTWAIT) < 0 {
                let error = zmq_errno()
                zmq_msg_close(message)
                if error == EINTR { continue }
                if error == EAGAIN && frames.isEmpty { return nil }
                throw .fromErrno(.receiveFailed, "cannot receive on a \(kind) socket", errno: error)
            }
            let size = zmq_msg_size(message)
            let source = zmq_msg_data(message)
            frames.append(
                [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                    if size > 0, let base = buffer.baseAddress, let source {
                        memcpy(base, source, size)
                    }
                    count = size
                })
            let more = zmq_msg_more(message) != 0
            if !more, let origin {
                origin.pointee.descriptor = zmq_msg_get(message, ZMQ_SRCFD)
                origin.pointee.peerAddress = zmq_msg_gets(message, "Peer-Address").map { String(cString: $0) }
            }
            zmq_msg_close(message)
            if !more { return frames }
        }
    }

    /// Receives one whole multipart message, waiting up to `timeout` (uses `zmq_poll`).
    ///
    /// - Returns: The frames, or `nil` if nothing arrived in time.
    /// - Throws: `BusError` `.closed` or `.receiveFailed`.
    public func receive(timeout: Duration) throws(BusError) -> [[UInt8]]? {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            if let frames = try tryReceive() { return frames }
            let remaining = clock.now.duration(to: deadline)
            if remaining <= .zero { return nil }
            try waitUntilReadable(timeout: remaining)
        }
    }

    /// Blocks in `zmq_poll` until input may be ready or `timeout` passes (EINTR returns early).
    private func waitUntilReadable(timeout: Duration) throws(BusError) {
        let handle = try requireHandle()
        var item = zmq_pollitem_t(socket: handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
        if zmq_poll(&item, 1, timeout.zmqMilliseconds) < 0 {
            let error = zmq_errno()
            if error != EINTR { throw .fromErrno(.receiveFailed, "cannot poll a \(kind) socket", errno: error) }
        }
    }

    private func requireHandle() throws(BusError) -> UnsafeMutableRawPointer {
        guard let handle else { throw BusError(.closed, message: "the \(kind) socket is closed") }
        return handle
    }
}
