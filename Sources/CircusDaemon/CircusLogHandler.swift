// Log lines in Circus's format: to stderr, to a file that USR1/HUP reopen, or to syslog.
//
// Circus: `%(asctime)s %(name)s[%(process)d] [%(levelname)s] %(message)s` with the date
// as `%Y-%m-%d %H:%M:%S` (`%b %d %H:%M:%S` for syslog), written to stderr when the output
// is `-` or `stdout`; `syslog://host[:port]?facility` and `syslog:///path?facility` send
// datagrams the way Python's SysLogHandler does (`<PRI>line\0`).
//
// A log file on a slow disk, a full pipe or a stalled syslog must not stall the daemon:
// lines are formatted by the caller and written by a writer thread from a bounded queue.
// When the queue is full the line is dropped and counted, and a line saying how many were
// dropped is written where they would have been, once the writer has room again.

import CircusSystem
import Glibc
public import Logging
import Synchronization

/// Where log lines go, shared by every logger of the process.
public final class LogSink: @unchecked Sendable {
    private enum Destination {
        /// stderr (path nil) or an appended file.
        case stream(path: String?)
        /// A connected datagram socket to a syslog daemon, with the facility number.
        case syslog(facility: Int32)
    }

    private struct Queue {
        /// Jobs submitted to the writer and not finished yet (the running one included).
        var pending = 0
        /// Lines dropped since the last notice.
        var dropped = 0
        /// Lines dropped since the sink was created.
        var droppedTotal = 0
    }

    // `fd` is only touched by the writer's jobs (one at a time, in order) once `init`
    // returned; that is why the class can be @unchecked Sendable.
    private var fd: Int32 = 2
    private let destination: Destination
    private let writer = SerialWorker(name: "log")
    private let queue = Mutex(Queue())
    /// How many lines may wait for the writer before new ones are dropped.
    public let capacity: Int

    /// The log file path, or nil for stderr and syslog.
    public var path: String? {
        if case .stream(let path) = destination { return path }
        return nil
    }

    /// - Parameter output: `-`, `stdout` or `stderr` for stderr (as Circus);
    ///   `syslog://host[:port][?facility]` (UDP, port 514) or `syslog:///path[?facility]`
    ///   (a local socket such as /dev/log), facility `user` by default; else a file path.
    /// - Parameter capacity: lines that may wait for the writer (at least 2).
    /// - Throws: `DaemonError` when the file cannot be opened or syslog cannot be reached.
    public init(output: String?, capacity: Int = 4096) throws(DaemonError) {
        self.capacity = max(capacity, 2)
        switch output {
        case nil, "-", "stdout", "stderr":
            destination = .stream(path: nil)
        case let url? where url.hasPrefix("syslog://"):
            let (socket, facility) = try Self.connectSyslog(url)
            fd = socket
            destination = .syslog(facility: facility)
        case let file?:
            destination = .stream(path: file)
            fd = try Self.open(file)
        }
    }

    deinit {
        // Queued jobs hold the sink, so none is left that would still write to `fd`.
        if fd != 2 { _ = close(fd) }
    }

    private static func open(_ path: String) throws(DaemonError) -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DaemonError("cannot open log file '\(path)': \(errnoDescription(errno))") }
        return fd
    }

    /// Syslog facilities by name, as Python's SysLogHandler knows them.
    static let facilities: [String: Int32] = [
        "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
        "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "local0": 16, "local1": 17, "local2": 18,
        "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23, "security": 4,
    ]

    private static func connectSyslog(_ url: String) throws(DaemonError) -> (Int32, Int32) {
        let rest = url.dropFirst("syslog://".count)
        let parts = rest.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let address = String(parts.first ?? "")
        let facilityName = parts.count > 1 ? String(parts[1]).lowercased() : "user"
        guard let facility = facilities[facilityName] else {
            throw DaemonError("log output '\(url)': unknown syslog facility '\(facilityName)'")
        }
        if address.hasPrefix("/") {
            let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw DaemonError("log output '\(url)': \(errnoDescription(errno))") }
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            let capacity = MemoryLayout.size(ofValue: addr.sun_path)
            guard address.utf8.count < capacity else {
                close(fd)
                throw DaemonError("log output '\(url)': path too long")
            }
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                for (i, byte) in address.utf8.enumerated() { raw[i] = byte }
            }
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard rc == 0 else {
                let code = errno
                close(fd)
                throw DaemonError("log output '\(url)': cannot reach \(address): \(errnoDescription(code))")
            }
            return (fd, facility)
        }
        var host = address
        var port = "514"
        if let colon = address.lastIndex(of: ":") {
            host = String(address[..<colon])
            port = String(address[address.index(after: colon)...])
        }
        if host.isEmpty { host = "localhost" }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, port, &hints, &found)
        guard status == 0, let info = found else {
            throw DaemonError("log output '\(url)': cannot resolve \(host):\(port): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(found) }
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.pointee.ai_protocol)
        guard fd >= 0, connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let code = errno
            if fd >= 0 { close(fd) }
            throw DaemonError("log output '\(url)': \(errnoDescription(code))")
        }
        return (fd, facility)
    }

    /// Reopens the log file (after logrotate moved it away), in order with the lines
    /// logged before: the writer does it. A no-op for stderr and syslog.
    public func reopen() {
        guard let path else { return }
        // Never dropped: it does not count against the capacity.
        submit { [self] in
            if let fresh = try? Self.open(path) {
                close(fd)
                fd = fresh
            }
        }
    }

    /// Waits until everything logged so far is written (at exit).
    public func flush() {
        let done = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
        sem_init(done, 0, 0)
        defer {
            sem_destroy(done)
            done.deallocate()
        }
        let pointer = UnsafeSendablePointer(done)
        guard submit({ sem_post(pointer.raw) }) else { return }
        while sem_wait(done) != 0 && errno == EINTR {}
    }

    /// Lines dropped because the queue was full, since the sink was created.
    public var droppedCount: Int { queue.withLock { $0.droppedTotal } }

    /// Writes one record in Circus's format (queued for the writer).
    func write(level: Logger.Level, name: String, message: String) {
        let line = render(level: level, name: name, message: message)
        queue.withLock { q in
            // Submitting under the lock keeps the writer's order the callers' order.
            if q.dropped > 0 {
                guard q.pending + 2 <= capacity else {
                    q.dropped += 1
                    q.droppedTotal += 1
                    return
                }
                let notice = dropNotice(q.dropped)
                q.dropped = 0
                q.pending += 2
                submitLine(notice)
                submitLine(line)
            } else if q.pending < capacity {
                q.pending += 1
                submitLine(line)
            } else {
                q.dropped += 1
                q.droppedTotal += 1
            }
        }
    }

    private func dropNotice(_ count: Int) -> [UInt8] {
        render(level: .warning, name: "circus", message: "\(count) log line\(count == 1 ? "" : "s") dropped: the log output was too slow")
    }

    /// Queues the writing of `bytes`; counts it done afterwards and, when the writer
    /// caught up with lines dropped meanwhile, says how many.
    private func submitLine(_ bytes: [UInt8]) {
        submit { [self] in
            emit(bytes)
            let dropped = queue.withLock { q -> Int in
                q.pending -= 1
                guard q.pending == 0, q.dropped > 0 else { return 0 }
                defer { q.dropped = 0 }
                return q.dropped
            }
            if dropped > 0 { emit(dropNotice(dropped)) }
        }
    }

    /// Runs `job` on the writer; without a writer thread (none could be created), right
    /// here, so lines are late rather than lost. Returns false in that case.
    @discardableResult
    private func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        do {
            try writer.submit(job)
            return true
        } catch {
            job()
            return false
        }
    }

    /// The record as bytes for the destination.
    private func render(level: Logger.Level, name: String, message: String) -> [UInt8] {
        let levelName: String
        let severity: Int32
        switch level {
        case .trace, .debug: (levelName, severity) = ("DEBUG", 7)
        case .info, .notice: (levelName, severity) = ("INFO", 6)
        case .warning: (levelName, severity) = ("WARNING", 4)
        case .error: (levelName, severity) = ("ERROR", 3)
        case .critical: (levelName, severity) = ("CRITICAL", 2)
        }
        switch destination {
        case .stream:
            return Array("\(Self.timestamp("%Y-%m-%d %H:%M:%S")) \(name)[\(getpid())] [\(levelName)] \(message)\n".utf8)
        case .syslog(let facility):
            var bytes = Array("<\(facility * 8 + severity)>\(Self.timestamp("%b %d %H:%M:%S")) \(name)[\(getpid())] [\(levelName)] \(message)".utf8)
            bytes.append(0)
            return bytes
        }
    }

    /// Writes rendered bytes (the writer's side).
    private func emit(_ bytes: [UInt8]) {
        if case .syslog = destination {
            // One datagram per record; a syslog daemon that is away loses the line.
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            return
        }
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }

    static func timestamp(_ format: String) -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, format, &parts)
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A pointer handed to the writer thread (the semaphore `flush` waits on).
private struct UnsafeSendablePointer<T>: @unchecked Sendable {
    let raw: UnsafeMutablePointer<T>
    init(_ raw: UnsafeMutablePointer<T>) { self.raw = raw }
}

/// A swift-log handler that formats like Circus's Python logging setup.
public struct CircusLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let sink: LogSink
    private let name: String

    public init(label: String, sink: LogSink, level: Logger.Level) {
        self.name = label
        self.sink = sink
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        sink.write(level: event.level, name: name, message: "\(event.message)")
    }

    /// Parses Circus's level names (case-insensitive); unknown names mean info, as in Circus.
    public static func level(named name: String?) -> Logger.Level {
        switch name?.lowercased() {
        case "critical": return .critical
        case "error": return .error
        case "warning", "warn": return .warning
        case "debug": return .debug
        default: return .info
        }
    }
}
