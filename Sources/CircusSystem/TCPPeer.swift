// Who is at the other end of a loopback TCP connection, from the kernel's socket table.

import CCircusSys
import Glibc

/// Finds the owner of the peer socket of an accepted TCP connection, as identd does.
///
/// The peer's socket, when it lives on this host, is in the kernel's TCP table with the
/// connection's addresses swapped, and the table records the uid that created it. The
/// lookup asks NETLINK_SOCK_DIAG for exactly that socket (one round trip to the kernel,
/// about 10 µs) and falls back to reading `/proc/net/tcp` or `tcp6` when netlink is not
/// available. It never waits on anything but the kernel, so the event loop may call it.
public enum TCPPeer {
    /// What the table says about a connection's peer.
    public enum Owner: Hashable, Sendable {
        /// A socket of this host, created by `uid`; `address` is the peer (`127.0.0.1:40312`).
        case user(uid: UInt32, address: String)
        /// No socket of this host has the peer's address and port: it is on another host
        /// (or in another network namespace).
        case elsewhere(address: String, isLoopback: Bool)
        /// The descriptor is not a connected TCP socket, or the table could not be read.
        case failed(reason: String)
    }

    /// Looks up the owner of the peer of the connected TCP socket `fd`.
    ///
    /// - Parameter useNetlink: false skips netlink and reads `/proc` (tests compare both).
    public static func owner(ofConnection fd: Int32, useNetlink: Bool = true) -> Owner {
        var uid: UInt32 = 0
        var loopback: Int32 = 0
        var text = [CChar](repeating: 0, count: 64)
        let rc = circus_tcp_peer_owner(fd, useNetlink ? 1 : 0, &uid, &loopback, &text, text.count)
        if rc < 0 { return .failed(reason: errnoDescription(-rc)) }
        let address = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if rc == 0 { return .user(uid: uid, address: address) }
        return .elsewhere(address: address, isLoopback: loopback != 0)
    }
}
