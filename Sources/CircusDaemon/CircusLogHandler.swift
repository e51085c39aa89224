// Log lines in Circus's format, to stderr or to a file that USR1/HUP reopen.
import CircusSystem
//
// Circus: `%(asctime)s %(name)s[%(process)d] [%(levelname)s] %(message)s` with the date
// as `%Y-%m-%d %H:%M:%S`, written to stderr when the output is `-` or `stdout`.

import Glibc
public import Logging

/// Where log lines go, shared by every logger of the process.
public final class LogSink: @unchecked Sendable {
    // The lock makes the sink safe for libzmq-free helper threads that might log; the
    // daemon itself logs from its single loop thread.
    private var lock = pthread_mutex_t()
    private var fd: Int32 = 2
    /// The file path, or nil for stderr.
    public let path: String?

    /// - Parameter output: `-`, `stdout` or `stderr` for stderr (as Circus), else a file path.
    /// - Throws: `DaemonError` when the file cannot be opened.
    public init(output: String?) throws(DaemonError) {
        pthread_mutex_init(&lock, nil)
        switch output {
        case nil, "-", "stdout", "stderr":
            path = nil
        case let file?:
            if file.hasPrefix("syslog://") {
                throw DaemonError("log output '\(file)': syslog is not supported yet; use a file path or '-'")
            }
            path = file
            fd = try Self.open(file)
        }
    }

    private static func open(_ path: String) throws(DaemonError) -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DaemonError("cannot open log file '\(path)': \(errnoDescription(errno))") }
        return fd
    }

    /// Reopens the log file (after logrotate moved it away). A no-op for stderr.
    public func reopen() {
        guard let path else { return }
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        if let fresh = try? Self.open(path) {
            close(fd)
            fd = fresh
        }
    }

    func write(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(0x0A)
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
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
        let level: String
        switch event.level {
        case .trace, .debug: level = "DEBUG"
        case .info, .notice: level = "INFO"
        case .warning: level = "WARNING"
        case .error: level = "ERROR"
        case .critical: level = "CRITICAL"
        }
        sink.write("\(Self.timestamp()) \(name)[\(getpid())] [\(level)] \(event.message)")
    }

    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &parts)
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
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

