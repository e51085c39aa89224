// The owner of a loopback TCP peer, from netlink and from /proc: the same answer, and no
// answer at all once the peer closed its socket (the kernel's remnant shows uid 0).

import CircusSystem
import Glibc
import Testing

extension CircusSystemTests {
    @Suite struct TCPPeerTests {
        /// A listener on 127.0.0.1, a client connected to it, and the accepted socket.
        private static func connectedPair() throws -> (listener: Int32, client: Int32, accepted: Int32) {
            let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let listening = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    bind(listener, pointer, length) == 0 && getsockname(listener, pointer, &length) == 0
                        && listen(listener, 1) == 0
                }
            }
            try #require(listening, "bind/listen: errno \(errno)")
            let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let connected = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, length) == 0 }
            }
            try #require(connected, "connect: errno \(errno)")
            let accepted = accept(listener, nil, nil)
            try #require(accepted >= 0, "accept: errno \(errno)")
            _ = fcntl(accepted, F_SETFD, FD_CLOEXEC)
            return (listener, client, accepted)
        }

        @Test func netlinkAndProcNameTheSameOwnerAndNobodyOnceThePeerClosed() throws {
            let (listener, client, accepted) = try Self.connectedPair()
            defer {
                close(accepted)
                close(listener)
            }
            let connection = try TCPConnection.of(socket: accepted).get()
            #expect(connection.peerIsLoopback)
            #expect(connection.peerAddress.hasPrefix("127.0.0.1:"))
            let owner = TCPPeer.Owner.user(uid: geteuid(), address: connection.peerAddress)
            #expect(TCPPeer.ownerFromNetlink(connection) == owner)
            #expect(TCPPeer.ownerFromProc(connection) == owner)

            // The client closes; the accepted socket stays open. The client's socket turns
            // into a FIN_WAIT2 remnant that the kernel lists with uid 0.
            close(client)
            let closed = TCPPeer.Owner.closed(address: connection.peerAddress)
            #expect(TCPPeer.ownerFromNetlink(connection) == closed)
            #expect(TCPPeer.ownerFromProc(connection) == closed)
        }

        @Test func aDescriptorThatIsNotATCPConnectionIsAFailure() {
            let (read, write) = Support.pipe()
            defer {
                close(read)
                close(write)
            }
            guard case .failure = TCPConnection.of(socket: read) else {
                Issue.record("a pipe was taken for a TCP connection")
                return
            }
        }
    }
}
