// Which connection sent a TCP request, when all libzmq gives is a descriptor number.
//
// libzmq tells each message's descriptor (ZMQ_SRCFD), and the kernel tells who owns the
// peer of a descriptor. The trap is timing: a message can wait in the queue after its
// connection has closed, and by then the kernel may have handed the same number to a new
// connection, perhaps another user's. Asking about the descriptor would then name the
// wrong sender. The socket monitor closes that gap: libzmq reports DISCONNECTED(fd)
// before it closes a descriptor, and every message of a connection is queued before its
// DISCONNECTED. So after a message is read and the monitor drained:
// - a connection on that number that closed since the queue was last empty may still
//   have messages waiting; the message may be its, or the current connection's;
// - once the queue has been found empty after a DISCONNECTED was read, that closed
//   connection has no message left.
// The sender is therefore known when every connection that may have sent the message
// had the same owner; otherwise the request is refused as unidentified (the client can
// send it again). That takes two different users' connections reusing one descriptor
// number within one turn of the loop; a sender is never misnamed.
//
// A connection's owner is looked up once, at its first message. The lookup reads the
// connection's addresses from the descriptor at once (then drains the monitor: a
// DISCONNECTED read now means the descriptor may already have been the next
// connection's, and the answer is discarded), and may answer later, from another thread,
// when the kernel's table must be read as text. Until it answers, that connection's
// messages wait here in arrival order; other connections' messages go on.
//
// libzmq emits ACCEPTED and DISCONNECTED from its I/O thread, in order with the messages
// it queues, as long as the context has one I/O thread (circusd's has).

/// Names the sender of each message received on a TCP ROUTER, one lookup per connection.
/// Used on the thread that drains the server only.
final class ConnectionTracker {
    /// One connection seen on a descriptor.
    private final class Connection {
        enum State {
            /// No message yet: not looked up.
            case new
            /// Looked up; the answer comes later.
            case lookingUp
            /// The answer; nil when the connection cannot be named.
            case known(ControlSender?)
        }

        var state: State
        /// Messages that arrived while a connection that may have sent them was being
        /// looked up, oldest first.
        var waiting: [Waiting] = []

        init(_ state: State = .new) { self.state = state }

        var isResolved: Bool {
            if case .known = state { return true }
            return false
        }

        var sender: ControlSender? {
            if case .known(let sender) = state { return sender }
            return nil
        }
    }

    /// A message held until every connection that may have sent it is looked up.
    private struct Waiting {
        let identity: [UInt8]
        let frames: [[UInt8]]
        let descriptor: Int32
        let candidates: [Connection]
    }

    /// What a descriptor number carried since the queue was last found empty.
    private struct Slot {
        var open: Connection?
        /// Connections closed since then; they may still have messages queued.
        var closed: [Connection] = []
    }

    private let monitor: ZMQSocket
    private let lookUp: TCPPeerLookup
    private let whenReleased: () -> Void
    private var slots: [Int32: Slot] = [:]
    /// Connections with waiting messages, in the order they began to hold some.
    private var holding: [Connection] = []
    /// Messages whose senders became known, to hand out in this order.
    private var released: [ControlMessage] = []
    private var releasedHead = 0

    /// Starts monitoring `socket` (call before it binds).
    ///
    /// - Parameters:
    ///   - lookUp: Names the owner of a connection's peer from its descriptor (see
    ///     ``TCPPeerLookup``).
    ///   - whenReleased: Called when messages that waited for a lookup are ready (take
    ///     them with ``nextReleased()``).
    init(socket: ZMQSocket, context: ZMQContext, lookUp: @escaping TCPPeerLookup,
         whenReleased: @escaping () -> Void) throws(BusError) {
        // One inproc name per live socket in the process (tests run several servers).
        let endpoint = "inproc://circus-control-monitor-\(UInt(bitPattern: ObjectIdentifier(socket).hashValue))"
        try socket.monitor(endpoint, events: ZMQSocket.eventAccepted | ZMQSocket.eventDisconnected)
        let monitor = try ZMQSocket(context: context, kind: .pair)
        try monitor.connect(endpoint)
        self.monitor = monitor
        self.lookUp = lookUp
        self.whenReleased = whenReleased
    }

    /// The monitor's `ZMQ_FD`: register it with the control socket's, so that closed
    /// connections are forgotten even when no request follows.
    var fileDescriptor: Int32 { monitor.fileDescriptor }

    /// Reads every pending connection event.
    func readEvents() {
        while let frames = try? monitor.tryReceive() {
            guard let header = frames.first, header.count >= 6 else { continue }
            let (event, fd) = header.withUnsafeBytes { bytes in
                (Int32(bytes.loadUnaligned(as: UInt16.self)), Int32(bitPattern: bytes.loadUnaligned(fromByteOffset: 2, as: UInt32.self)))
            }
            var slot = slots[fd] ?? Slot()
            if let open = slot.open { slot.closed.append(open) }
            switch event {
            case ZMQSocket.eventAccepted: slot.open = Connection()
            case ZMQSocket.eventDisconnected:
                // A disconnect without an accept seen: some connection we never looked at.
                if slot.open == nil { slot.closed.append(Connection(.known(nil))) }
                slot.open = nil
            default: continue
            }
            slots[fd] = slot
        }
    }

    /// The message that just arrived on descriptor `fd` with its sender, or nil when it
    /// waits for a lookup (it comes out of ``nextReleased()`` later, after
    /// `whenReleased`).
    func receive(identity: [UInt8], frames: [[UInt8]], descriptor fd: Int32) -> ControlMessage? {
        readEvents()
        if let open = slots[fd]?.open, case .new = open.state { startLookUp(open, fd) }
        guard let slot = slots[fd] else {
            let sender = ControlSender.unknown(peer: "descriptor \(fd)", reason: "no connection was seen on it")
            return ControlMessage(identity: identity, frames: frames, sender: sender)
        }
        // Every connection that may have sent it: the closed ones and the open one.
        var candidates = slot.closed
        if let open = slot.open { candidates.append(open) }
        let message = Waiting(identity: identity, frames: frames, descriptor: fd, candidates: candidates)
        guard let newest = candidates.last,
              !candidates.allSatisfy({ $0.isResolved && $0.waiting.isEmpty })
        else {
            return Self.named(message)
        }
        if newest.waiting.isEmpty { holding.append(newest) }
        newest.waiting.append(message)
        return nil
    }

    /// The next message whose sender became known, oldest first.
    func nextReleased() -> ControlMessage? {
        guard releasedHead < released.count else { return nil }
        let message = released[releasedHead]
        releasedHead += 1
        if releasedHead == released.count {
            released.removeAll(keepingCapacity: true)
            releasedHead = 0
        }
        return message
    }

    /// Call when the ROUTER reported no input: closed connections read before this have
    /// no message left.
    func queueIsEmpty() {
        for (fd, slot) in slots where !slot.closed.isEmpty || slot.open == nil {
            if slot.open == nil { slots[fd] = nil } else { slots[fd]?.closed = [] }
        }
    }

    func close() { monitor.close() }

    private func startLookUp(_ connection: Connection, _ fd: Int32) {
        connection.state = .lookingUp
        let answer = lookUp(fd) { [weak self, weak connection] sender in
            guard let self, let connection else { return }
            self.answered(connection, sender)
        }
        // A DISCONNECTED read now means the socket just looked at may already be the
        // next connection's: keep the answer only if this connection is still open.
        readEvents()
        if slots[fd]?.open !== connection {
            connection.state = .known(nil)
        } else if let answer {
            connection.state = .known(answer)
        }
    }

    private func answered(_ connection: Connection, _ sender: ControlSender) {
        guard case .lookingUp = connection.state else { return }
        connection.state = .known(sender)
        let before = released.count - releasedHead
        release()
        if released.count - releasedHead > before { whenReleased() }
    }

    /// Moves every held message whose candidates are all looked up to `released`, each
    /// connection's in arrival order.
    private func release() {
        var progress = true
        while progress {
            progress = false
            var index = 0
            while index < holding.count {
                let connection = holding[index]
                while let first = connection.waiting.first, first.candidates.allSatisfy({ candidate in
                    candidate.isResolved && (candidate === connection || candidate.waiting.isEmpty)
                }) {
                    released.append(Self.named(first))
                    connection.waiting.removeFirst()
                    progress = true
                }
                if connection.waiting.isEmpty { holding.remove(at: index) } else { index += 1 }
            }
        }
    }

    /// The message with its sender: known when every candidate had the same owner.
    private static func named(_ message: Waiting) -> ControlMessage {
        let senders = message.candidates.map(\.sender)
        let sender: ControlSender
        if senders.count == 1, let only = senders[0] {
            sender = only
        } else if let newest = senders.last, let known = newest,
           senders.allSatisfy({ $0?.hasSameAuthority(as: known) ?? false }) {
            sender = known
        } else if senders.isEmpty {
            sender = .unknown(peer: "descriptor \(message.descriptor)", reason: "no connection was seen on it")
        } else {
            sender = .unknown(
                peer: "descriptor \(message.descriptor)",
                reason: "its connection was replaced by another one before the request was read; send it again")
        }
        return ControlMessage(identity: message.identity, frames: message.frames, sender: sender)
    }
}

/// How a ``ControlServer`` names the sender of a tcp connection from its descriptor: the
/// sender now, or nil to answer later through the callback (exactly once, on the thread
/// that drains the server, never from inside this call). Read what the descriptor tells
/// before returning: by the time a later answer comes, the number may be another
/// connection's.
public typealias TCPPeerLookup = (_ descriptor: Int32, _ answerLater: @escaping (ControlSender) -> Void) -> ControlSender?
