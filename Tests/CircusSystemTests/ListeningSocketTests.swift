// Circus sockets made by CircusSystem: resolution in the socket's family, the bound port
// read back, a Unix socket file that is removed on close only while it is still ours.

import CircusSystem
import Glibc
import Testing

extension CircusSystemTests {
    @Suite struct ListeningSocketTests {
        static func spec(_ name: String, family: SocketSpec.Family = .inet, host: String = "127.0.0.1",
                         path: String? = nil) -> SocketSpec {
            SocketSpec(name: name, family: family, type: Int32(SOCK_STREAM.rawValue), proto: 0, host: host, port: 0,
                       path: path, backlog: 16, umask: 0o077, replace: false, interface: nil, reusePort: false,
                       blocking: false)
        }

        @Test func resolvesInItsFamilyAndReadsTheBoundPortBack() throws {
            let v6 = try #require(try ResolvedAddress.resolve(Self.spec("v6", family: .inet6, host: "::1")))
            #expect(v6.host == "::1")
            // An IPv4 host has no address in AF_INET6 (Circus would hand the IPv6 socket an
            // IPv4 address, and its bind would fail).
            #expect(throws: SocketError.self) { try ResolvedAddress.resolve(Self.spec("v6", family: .inet6)) }
            let v4 = try #require(try ResolvedAddress.resolve(Self.spec("v4", host: "localhost")))
            #expect(v4.host == "127.0.0.1")
            let socket = try ListeningSocket(spec: Self.spec("v4"), address: v4)
            defer { socket.close() }
            #expect(!socket.isBound && socket.port == 0)
            try socket.bindAndListen()
            #expect(socket.isBound && socket.port > 0)
            #expect(socket.location == "127.0.0.1:\(socket.port)")
            #expect(fcntl(socket.fd, F_GETFD) & FD_CLOEXEC != 0, "circusd's copy is close-on-exec")
            #expect(fcntl(socket.fd, F_GETFL) & O_NONBLOCK != 0)
        }

        @Test func anUnknownHostIsAnErrorNamingIt() {
            #expect(throws: SocketError.self) { try ResolvedAddress.resolve(Self.spec("x", host: "no-such-host.invalid")) }
            do {
                _ = try ResolvedAddress.resolve(Self.spec("x", host: "no-such-host.invalid"))
            } catch {
                #expect(error.message.hasPrefix("cannot resolve no-such-host.invalid:0: "), "\(error)")
            }
        }

        @Test func aUnixSocketFileIsRemovedOnCloseOnlyWhileItIsOurs() throws {
            var template = Array("/tmp/ls-XXXXXX".utf8CString)
            let dir = String(cString: try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }))
            defer { rmdir(dir) }
            let path = dir + "/a.sock"
            let first = try ListeningSocket(spec: Self.spec("a", family: .unix, path: path), address: nil)
            try first.bindAndListen()
            var info = stat()
            #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o700, "bound under umask 077")
            first.close()
            #expect(access(path, F_OK) != 0, "its own file is removed")

            let second = try ListeningSocket(spec: Self.spec("b", family: .unix, path: path), address: nil)
            try second.bindAndListen()
            // Someone else's file at that path now: not ours to remove.
            unlink(path)
            let other = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
            close(other)
            second.close()
            #expect(access(path, F_OK) == 0)
            unlink(path)
        }
    }
}
