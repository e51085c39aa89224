// Who is at the other end of a loopback TCP connection, from the kernel's socket table.

import CCircusSys
import Glibc

/// Both ends of an accepted TCP connection, read from its descriptor: what the owner
/// lookup needs, with the descriptor no longer involved (it may be closed and its number
/// reused by the time a lookup runs on another thread).
public struct TCPConnection: @unchecked Sendable {
    fileprivate let tuple: circus_tcp_tuple
    /// The peer as `127.0.0.1:40312` or `[::1]:40312`.
    public let peerAddress: String
    /// Whether the peer address is 127.0.0.0/8 or ::1.
    public let peerIsLoopback: Bool

    /// Reads the addresses of the connected TCP socket `fd` (two system calls that never
    /// block).
    ///
    /// - Returns: the failure's reason when `fd` is not a connected TCP socket.
    public static func of(socket fd: Int32) -> Result<TCPConnection, TCPPeer.LookupFailure> {
        var tuple = circus_tcp_tuple()
        var loopback: Int32 = 0
        var text = [CChar](repeating: 0, count: 64)
        let rc = circus_tcp_tuple_of(fd, &tuple, &loopback, &text, text.count)
        if rc < 0 { return .failure(TCPPeer.LookupFailure(reason: errnoDescription(-rc))) }
        let address = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return .success(TCPConnection(tuple: tuple, peerAddress: address, peerIsLoopback: loopback != 0))
    }
}

/// Finds the owner of the peer socket of an accepted TCP connection, as identd does.
///
/// The peer's socket, when it lives on this host, is in the kernel's TCP table with the
/// connection's addresses swapped, and the table records the uid that created it.
/// ``ownerFromNetlink(_:)`` asks NETLINK_SOCK_DIAG for exactly that socket (one round trip
/// to the kernel, about 10 µs, never waiting: the event loop may call it).
/// ``ownerFromProc(_:)`` reads `/proc/net/tcp` or `tcp6`, the whole table as text: the
/// fallback when netlink is not available, too slow for the loop with many sockets.
public enum TCPPeer {
    /// What the table says about a connection's peer.
    public enum Owner: Hashable, Sendable {
        /// A socket of this host, created by `uid`; `address` is the peer (`127.0.0.1:40312`).
        case user(uid: UInt32, address: String)
        /// No socket of this host has the peer's address and port: it is on another host
        /// (or in another network namespace).
        case elsewhere(address: String, isLoopback: Bool)
        /// The peer's socket is in the table, but no process holds it: its owner closed it
        /// (the kernel keeps FIN_WAIT2 and TIME_WAIT remnants, shown as uid 0, which names
        /// nobody).
        case closed(address: String)
        /// The table could not be read.
        case failed(reason: String)
    }

    /// Why a connection's addresses could not be read.
    public struct LookupFailure: Error, Hashable, Sendable {
        /// `Bad file descriptor`, `Transport endpoint is not connected`, ...
        public let reason: String
    }

    /// Asks NETLINK_SOCK_DIAG; nil when netlink is not available (ask ``ownerFromProc(_:)``).
    public static func ownerFromNetlink(_ connection: TCPConnection) -> Owner? {
        var tuple = connection.tuple
        var uid: UInt32 = 0
        let rc = circus_tcp_owner_netlink(&tuple, &uid)
        if rc < 0 { return nil }
        return owner(rc, uid, connection)
    }

    /// Reads `/proc/net/tcp` or `tcp6` (blocking on the size of the table: a worker's job).
    public static func ownerFromProc(_ connection: TCPConnection) -> Owner {
        var tuple = connection.tuple
        var uid: UInt32 = 0
        let rc = circus_tcp_owner_proc(&tuple, &uid)
        if rc < 0 { return .failed(reason: "cannot read the TCP table: \(errnoDescription(-rc))") }
        return owner(rc, uid, connection)
    }

    private static func owner(_ rc: Int32, _ uid: UInt32, _ connection: TCPConnection) -> Owner {
        if rc == 0 { return .user(uid: uid, address: connection.peerAddress) }
        if rc == 2 { return .closed(address: connection.peerAddress) }
        return .elsewhere(address: connection.peerAddress, isLoopback: connection.peerIsLoopback)
    }
}
