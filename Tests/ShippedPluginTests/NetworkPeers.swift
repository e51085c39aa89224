// Real network peers for the observer plugins' tests: a small HTTP server on 127.0.0.1
// (any free port) that answers with a chosen status or never answers, a loopback port
// that refuses connections, and a redis-server started in a temporary directory.

import Foundation
import Glibc
import Synchronization

/// A TCP socket bound on 127.0.0.1 at a free port chosen by the kernel.
private func boundLoopbackSocket() throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else {
        close(fd)
        throw TestFailure("bind: errno \(errno)")
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, UInt16(bigEndian: address.sin_port))
}

/// A loopback port that refuses every connection: bound, never listening.
final class RefusingPort {
    let fd: Int32
    let port: UInt16

    init() throws { (fd, port) = try boundLoopbackSocket() }

    deinit { close(fd) }
}

/// An HTTP/1.1 server on 127.0.0.1 answering every request with `status`, or never
/// answering (`hang`), on a thread of its own; `stop()` ends it and closes everything.
final class HTTPPeer: Sendable {
    enum Behaviour: Sendable {
        case status(Int)
        case hang
    }

    private struct State {
        var behaviour: Behaviour
        var requests: [String] = []
        var held: [Int32] = []
    }

    let port: UInt16
    private let listener: Int32
    private let state: Mutex<State>
    private let finished = Slot<Bool>()

    init(_ behaviour: Behaviour) throws {
        (listener, port) = try boundLoopbackSocket()
        state = Mutex(State(behaviour: behaviour))
        guard listen(listener, 16) == 0 else { throw TestFailure("listen: errno \(errno)") }
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    /// The request lines received so far ("GET /health HTTP/1.1").
    var requests: [String] { state.withLock { $0.requests } }

    /// Answers from now on with `behaviour`.
    func behave(_ behaviour: Behaviour) { state.withLock { $0.behaviour = behaviour } }

    private func serve() {
        while true {
            let connection = accept(listener, nil, nil)
            if connection < 0 {
                if errno == EINTR { continue }
                break  // shut down by stop()
            }
            let request = readRequest(connection)
            let behaviour = state.withLock { s in
                s.requests.append(request)
                return s.behaviour
            }
            switch behaviour {
            case .status(let status):
                let body = "ok\n"
                let response = "HTTP/1.1 \(status) Status\r\nContent-Length: \(body.utf8.count)\r\n"
                    + "Connection: close\r\n\r\n\(body)"
                _ = response.withCString { send(connection, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
                close(connection)
            case .hang:
                state.withLock { $0.held.append(connection) }
            }
        }
        finished.put(true)
    }

    /// Reads the request head and returns its first line.
    private func readRequest(_ fd: Int32) -> String {
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !head.ends(with: Array("\r\n\r\n".utf8)) {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 10_000) == 1 else { break }
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { break }
            head += buffer[0..<n]
        }
        let text = String(decoding: head, as: UTF8.self)
        return String(text.split(separator: "\r\n", omittingEmptySubsequences: false).first ?? "")
    }

    func stop() throws {
        shutdown(listener, Int32(SHUT_RDWR))
        _ = try waitUntil("the HTTP server's thread to end") { finished.get }
        close(listener)
        for fd in state.withLock({ $0.held }) { close(fd) }
    }
}

extension Array where Element: Equatable {
    fileprivate func ends(with suffix: [Element]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}

/// A redis-server on 127.0.0.1 at a free port, with its files in a temporary directory;
/// `stop()` kills it and removes them.
final class RedisPeer {
    let port: UInt16
    let directory: String
    private let process = Process()

    /// Fails when `redis-server` is not installed (scripts/setup.sh installs it).
    init(password: String? = nil) throws {
        let candidates: [String] = ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"]
        guard let server = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw TestFailure("redis-server is not installed: run scripts/setup.sh (Debian package redis-server)")
        }
        directory = NSTemporaryDirectory() + "circus-redis-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // A port the kernel just handed out and took back: free unless someone takes it
        // in the next instant, in which case redis-server exits and the test says why.
        let probe = try boundLoopbackSocket()
        port = probe.port
        close(probe.fd)
        process.executableURL = URL(fileURLWithPath: server)
        process.arguments = [
            "--port", "\(port)", "--bind", "127.0.0.1", "--dir", directory, "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--loglevel", "warning", "--logfile", "\(directory)/redis.log",
        ] + (password.map { ["--requirepass", $0] } ?? [])
        try process.run()
        _ = try waitUntil("redis-server to listen on 127.0.0.1:\(port)") { () -> Bool? in
            if !process.isRunning {
                return nil
            }
            return Self.accepts(port) ? true : nil
        }
    }

    private static func accepts(_ port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
