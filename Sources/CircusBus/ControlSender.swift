// Who sent a control request, as far as the kernel can tell.

/// The sender of one control request.
///
/// circusd decides what a request may do from this value alone, so it is only ever built
/// from what the kernel vouches for: the credentials of an ipc peer (taken by libzmq with
/// `SO_PEERCRED` when the connection was made) or the owner of a loopback TCP peer's
/// socket. Never from anything the client sends.
public enum ControlSender: Hashable, Sendable, CustomStringConvertible {
    /// A process of this host running as `uid`; `peer` says where from (`pid 4242` for
    /// ipc, `127.0.0.1:40312` for tcp).
    case local(uid: UInt32, peer: String)
    /// A peer on another host, through an endpoint that is not loopback. Its user cannot
    /// be known.
    case remote(peer: String)
    /// Nobody the kernel could name; `reason` says why.
    case unknown(peer: String, reason: String)

    /// `uid 0 (pid 4242)`, `127.0.0.1:40312 on another host`, ...
    public var description: String {
        switch self {
        case .local(let uid, let peer): return "uid \(uid) (\(peer))"
        case .remote(let peer): return "\(peer) (another host)"
        case .unknown(let peer, let reason): return "\(peer) (unidentified: \(reason))"
        }
    }

    /// Whether two senders carry the same authority (the same uid, or both remote): the
    /// peer part may differ.
    func hasSameAuthority(as other: ControlSender) -> Bool {
        switch (self, other) {
        case (.local(let a, _), .local(let b, _)): return a == b
        case (.remote, .remote): return true
        default: return false
        }
    }

    /// The credentials libzmq appends to an ipc peer's `Peer-Address` metadata on Linux:
    /// `<address>:<uid>:<gid>:<pid>` (read with `SO_PEERCRED` when the connection was
    /// accepted, and attached to every message of that connection).
    static func ipc(peerAddress: String?) -> ControlSender {
        guard let peerAddress else {
            return .unknown(peer: "ipc peer", reason: "libzmq gave no peer credentials")
        }
        let fields = peerAddress.split(separator: ":", omittingEmptySubsequences: false).suffix(3)
        guard fields.count == 3, let uid = UInt32(fields[fields.startIndex]),
              let pid = Int32(fields[fields.startIndex + 2])
        else {
            return .unknown(peer: "ipc peer", reason: "unexpected peer address \(peerAddress)")
        }
        return .local(uid: uid, peer: "pid \(pid)")
    }
}
