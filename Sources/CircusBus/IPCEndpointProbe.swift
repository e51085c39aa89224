// Binding an `ipc://` endpoint makes libzmq unlink whatever is at the path first: a
// stale socket file, but also the socket of a daemon that is running, which then
// silently stops receiving anything. So before a bind we knock on the path.

internal import Glibc

/// What is at an `ipc://` endpoint's path before we bind it.
enum IPCEndpointProbe {
    /// Why binding `endpoint` would take it away from someone, or nil when it would not.
    ///
    /// A plain `AF_UNIX` stream connection is tried: if it is accepted (or the listener's
    /// backlog is full), a process serves the path, and `SO_PEERCRED` names it. A refused
    /// connection means a stale file from a daemon that is gone, which libzmq may replace.
    /// A path that exists and is not a socket is refused as well: libzmq would delete it.
    /// The abstract namespace (`@name`) and generated paths (`*`) are left to libzmq,
    /// which refuses an abstract name in use.
    static func conflict(_ endpoint: String) -> (errno: Int32, text: String)? {
        guard endpoint.hasPrefix("ipc://") else { return nil }
        let path = String(endpoint.dropFirst("ipc://".count))
        guard !path.isEmpty, !path.hasPrefix("@"), path != "*" else { return nil }
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        if info.st_mode & S_IFMT != S_IFSOCK {
            return (EEXIST, "\(path) exists and is not a socket (binding would delete it)")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if connected != 0 {
            // EAGAIN: the listener's backlog is full, so someone listens.
            guard errno == EAGAIN else { return nil }
            return (EADDRINUSE, "another process is serving it")
        }
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (Glibc hides it behind _GNU_SOURCE).
        var credentials: [Int32] = [0, 0, 0]
        var size = socklen_t(MemoryLayout<Int32>.size * 3)
        let read = credentials.withUnsafeMutableBytes { getsockopt(fd, SOL_SOCKET, SO_PEERCRED, $0.baseAddress, &size) }
        if read == 0, credentials[0] > 0 {
            return (EADDRINUSE, "pid \(credentials[0]) is serving it (another circusd?)")
        }
        return (EADDRINUSE, "another process is serving it")
    }
}
