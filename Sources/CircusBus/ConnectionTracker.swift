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
// libzmq emits ACCEPTED and DISCONNECTED from its I/O thread, in order with the messages
// it queues, as long as the context has one I/O thread (circusd's has).

/// Names the sender of each message received on a TCP ROUTER, one lookup per connection.
final class ConnectionTracker {
    /// One connection seen on a descriptor: its sender once looked up.
    private struct Connection {
        var sender: ControlSender?
    }

    /// What a descriptor number carried since the queue was last found empty.
    private struct Slot {
        var open: Connection?
        /// Connections closed since then; they may still have messages queued.
        var closed: [ControlSender?] = []
    }

    private let monitor: ZMQSocket
    private let lookUp: (Int32) -> ControlSender
    private var slots: [Int32: Slot] = [:]

    /// Starts monitoring `socket` (call before it binds).
    ///
    /// - Parameter lookUp: Names the owner of a connection's peer from its descriptor.
    init(socket: ZMQSocket, context: ZMQContext, lookUp: @escaping (Int32) -> ControlSender) throws(BusError) {
        // One inproc name per live socket in the process (tests run several servers).
        let endpoint = "inproc://circus-control-monitor-\(UInt(bitPattern: ObjectIdentifier(socket).hashValue))"
        try socket.monitor(endpoint, events: ZMQSocket.eventAccepted | ZMQSocket.eventDisconnected)
        let monitor = try ZMQSocket(context: context, kind: .pair)
        try monitor.connect(endpoint)
        self.monitor = monitor
        self.lookUp = lookUp
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
            if let open = slot.open { slot.closed.append(open.sender) }
            switch event {
            case ZMQSocket.eventAccepted: slot.open = Connection()
            case ZMQSocket.eventDisconnected:
                // A disconnect without an accept seen: some connection we never looked at.
                if slot.open == nil { slot.closed.append(nil) }
                slot.open = nil
            default: continue
            }
            slots[fd] = slot
        }
    }

    /// The sender of a message that just arrived on descriptor `fd`.
    func sender(of fd: Int32) -> ControlSender {
        readEvents()
        if let open = slots[fd]?.open, open.sender == nil {
            let found = lookUp(fd)
            // A DISCONNECTED read now means the socket just looked at may already be the
            // next connection's: keep the answer only if this connection is still open.
            readEvents()
            if slots[fd]?.open != nil { slots[fd]?.open?.sender = found }
        }
        guard let slot = slots[fd] else {
            return .unknown(peer: "descriptor \(fd)", reason: "no connection was seen on it")
        }
        // Every connection that may have sent it: the closed ones and the open one.
        var candidates = slot.closed
        if let open = slot.open { candidates.append(open.sender) }
        guard let newest = candidates.last, let sender = newest,
              candidates.allSatisfy({ $0?.hasSameAuthority(as: sender) ?? false })
        else {
            return .unknown(
                peer: "descriptor \(fd)",
                reason: "its connection was replaced by another one before the request was read; send it again")
        }
        return sender
    }

    /// Call when the ROUTER reported no input: closed connections read before this have
    /// no message left.
    func queueIsEmpty() {
        for (fd, slot) in slots where !slot.closed.isEmpty || slot.open == nil {
            if slot.open == nil { slots[fd] = nil } else { slots[fd]?.closed = [] }
        }
    }

    func close() { monitor.close() }
}
