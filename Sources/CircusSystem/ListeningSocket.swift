// A listening socket shared with child processes (Circus's `CircusSocket`): created
// close-on-exec (the spawner clears the flag on the descriptors a child keeps), with
// SO_REUSEADDR, bound and listening before any child starts.

import Glibc

/// What a socket is asked to be, resolved by the caller from a `[socket:NAME]` section.
public struct SocketSpec: Hashable, Sendable {
    public enum Family: Hashable, Sendable {
        case inet, inet6, unix
        var number: Int32 {
            switch self {
            case .inet: return AF_INET
            case .inet6: return AF_INET6
            case .unix: return AF_UNIX
            }
        }
    }

    public var name: String
    public var family: Family
    /// `SOCK_STREAM`, `SOCK_DGRAM`, ...
    public var type: Int32
    public var proto: Int32
    public var host: String
    public var port: Int
    /// A Unix socket's path.
    public var path: String?
    /// `listen()` backlog; nil for types that do not listen.
    public var backlog: Int32?
    /// The umask in force while a Unix socket is bound (it decides the file's mode).
    public var umask: UInt32
    /// Remove an existing file at `path` first.
    public var replace: Bool
    /// `SO_BINDTODEVICE`.
    public var interface: String?
    public var reusePort: Bool
    public var blocking: Bool

    public init(name: String, family: Family, type: Int32, proto: Int32, host: String, port: Int, path: String?,
                backlog: Int32?, umask: UInt32, replace: Bool, interface: String?, reusePort: Bool, blocking: Bool) {
        self.name = name
        self.family = family
        self.type = type
        self.proto = proto
        self.host = host
        self.port = port
        self.path = path
        self.backlog = backlog
        self.umask = umask
        self.replace = replace
        self.interface = interface
        self.reusePort = reusePort
        self.blocking = blocking
    }

    /// Where the socket listens, as Circus writes it in its messages: `host:port`, or the
    /// path quoted as Python's `repr` quotes it.
    public var location: String {
        if family == .unix { return "'\(path ?? "")'" }
        return "\(host):\(port)"
    }
}

/// A socket that could not be made, with the address and the reason.
public struct SocketError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// An address getaddrinfo gave for a socket's host and port.
public struct ResolvedAddress: Hashable, Sendable {
    fileprivate let bytes: [UInt8]
    /// The numeric host (`127.0.0.1`, `::1`).
    public let host: String

    /// Resolves `spec`'s host and port in its family (getaddrinfo: may read files and ask a
    /// name server; never call it on the loop thread once the loop runs). Unix sockets have
    /// no address: nil.
    ///
    /// - Throws: `SocketError` naming the host and the resolver's reason.
    public static func resolve(_ spec: SocketSpec) throws(SocketError) -> ResolvedAddress? {
        guard spec.family != .unix else { return nil }
        var hints = addrinfo()
        hints.ai_family = spec.family.number
        hints.ai_socktype = spec.type
        hints.ai_flags = AI_PASSIVE
        var list: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(spec.host, String(spec.port), &hints, &list)
        guard rc == 0, let first = list else {
            let reason = rc == EAI_SYSTEM ? errnoDescription(errno) : String(cString: gai_strerror(rc))
            throw SocketError("cannot resolve \(spec.host):\(spec.port): \(reason)")
        }
        defer { freeaddrinfo(list) }
        let length = Int(first.pointee.ai_addrlen)
        let bytes = [UInt8](UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: length))
        return ResolvedAddress(bytes: bytes, host: Self.numericHost(bytes) ?? spec.host)
    }

    /// The numeric host and port of a sockaddr_in / sockaddr_in6.
    static func numericHostAndPort(_ bytes: [UInt8]) -> (String, Int)? {
        bytes.withUnsafeBytes { raw -> (String, Int)? in
            guard raw.count >= MemoryLayout<sa_family_t>.size else { return nil }
            let family = Int32(raw.loadUnaligned(as: sa_family_t.self))
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            if family == AF_INET, raw.count >= MemoryLayout<sockaddr_in>.size {
                var address = raw.loadUnaligned(as: sockaddr_in.self)
                guard inet_ntop(AF_INET, &address.sin_addr, &text, socklen_t(text.count)) != nil else { return nil }
                return (String(cString: text), Int(UInt16(bigEndian: address.sin_port)))
            }
            if family == AF_INET6, raw.count >= MemoryLayout<sockaddr_in6>.size {
                var address = raw.loadUnaligned(as: sockaddr_in6.self)
                guard inet_ntop(AF_INET6, &address.sin6_addr, &text, socklen_t(text.count)) != nil else { return nil }
                return (String(cString: text), Int(UInt16(bigEndian: address.sin6_port)))
            }
            return nil
        }
    }

    static func numericHost(_ bytes: [UInt8]) -> String? { numericHostAndPort(bytes)?.0 }
}

/// A socket made from a `SocketSpec`. The owner closes it (which also removes the file of
/// a Unix socket it bound).
public final class ListeningSocket {
    public let spec: SocketSpec
    /// The descriptor, close-on-exec in circusd.
    public let fd: Int32
    /// The numeric host: resolved, then as bound (nil for Unix sockets).
    public private(set) var host: String?
    /// The port: as configured, then as bound (0 becomes the ephemeral port).
    public private(set) var port: Int
    public private(set) var isBound = false
    private let address: ResolvedAddress?
    /// The inode of the socket file this socket bound: only that file is removed on close.
    private var boundInode: ino_t?
    private var closed = false

    /// Creates the socket (not bound yet), with SO_REUSEADDR, and SO_REUSEPORT when asked.
    ///
    /// - Parameter address: the address `ResolvedAddress.resolve(spec)` gave (nil for Unix).
    /// - Throws: `SocketError` when the socket cannot be created.
    public init(spec: SocketSpec, address: ResolvedAddress?) throws(SocketError) {
        self.spec = spec
        self.address = address
        self.host = address?.host
        self.port = spec.port
        let fd = socket(spec.family.number, spec.type | Int32(SOCK_CLOEXEC.rawValue), spec.proto)
        guard fd >= 0 else {
            throw SocketError("socket '\(spec.name)': cannot create the socket: \(errnoDescription(errno))")
        }
        self.fd = fd
        var on: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, size)
        if spec.reusePort, setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, size) != 0 {
            let reason = errnoDescription(errno)
            Glibc.close(fd)
            throw SocketError("socket '\(spec.name)': cannot set SO_REUSEPORT: \(reason)")
        }
    }

    deinit { close() }

    /// Binds and (for stream and seqpacket sockets) listens, as Circus does: a Unix socket
    /// is bound under its umask, after removing an existing file when `replace` says so;
    /// an interface is bound with SO_BINDTODEVICE; the bound port is read back.
    ///
    /// - Throws: `SocketError` `Could not bind <location>: <reason>`.
    public func bindAndListen() throws(SocketError) {
        func failure(_ reason: String) -> SocketError {
            SocketError("socket '\(spec.name)': could not bind \(location): \(reason)")
        }
        if spec.family == .unix {
            let path = spec.path ?? ""
            var info = stat()
            if lstat(path, &info) == 0 {
                guard spec.replace else {
                    throw failure("'\(path)' already exists. You might want to remove it. If it's a stalled socket "
                        + "file, just restart Circus (or set replace = true)")
                }
                if unlink(path) != 0 { throw failure("cannot remove the existing file: \(errnoDescription(errno))") }
            }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let capacity = MemoryLayout.size(ofValue: address.sun_path)
            guard path.utf8.count < capacity else { throw failure("the path is longer than \(capacity - 1) bytes") }
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
            }
            // The umask is the process's: the loop thread owns it (see the control socket).
            let saved = umask(mode_t(spec.umask))
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            let code = errno
            umask(saved)
            if rc != 0 { throw failure(errnoDescription(code)) }
            if lstat(path, &info) == 0 { boundInode = info.st_ino }
        } else {
            if let interface = spec.interface {
                let rc = interface.withCString { name in
                    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, socklen_t(strlen(name) + 1))
                }
                if rc != 0 { throw failure("SO_BINDTODEVICE \(interface): \(errnoDescription(errno))") }
            }
            guard let address else { throw failure("no address") }
            let rc = address.bytes.withUnsafeBytes { raw in
                bind(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
            }
            if rc != 0 { throw failure(errnoDescription(errno)) }
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, spec.blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK)
        if let backlog = spec.backlog, listen(fd, backlog) != 0 {
            throw failure("listen: \(errnoDescription(errno))")
        }
        if spec.family != .unix {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let rc = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            if rc == 0 {
                let bytes = withUnsafeBytes(of: &storage) { [UInt8]($0.prefix(Int(length))) }
                if let (boundHost, boundPort) = ResolvedAddress.numericHostAndPort(bytes) {
                    host = boundHost
                    port = boundPort
                }
            }
        }
        isBound = true
    }

    /// A new socket with the same spec and address, bound and listening: what each process
    /// of a watcher gets for a `so_reuseport` socket (the kernel spreads connections
    /// between them). Close it once the process is spawned.
    public func boundSibling() throws(SocketError) -> ListeningSocket {
        let sibling = try ListeningSocket(spec: spec, address: address)
        try sibling.bindAndListen()
        return sibling
    }

    /// `host:port` as bound (as resolved before), or the quoted path.
    public var location: String {
        spec.family == .unix ? spec.location : "\(host ?? spec.host):\(port)"
    }

    /// Closes the descriptor and removes the socket file this socket bound (if it is
    /// still that file). Closing twice is harmless.
    public func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
        if let boundInode, let path = spec.path {
            var info = stat()
            if lstat(path, &info) == 0, info.st_ino == boundInode, info.st_mode & S_IFMT == S_IFSOCK { unlink(path) }
        }
    }
}
