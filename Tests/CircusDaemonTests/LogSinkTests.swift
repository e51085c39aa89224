@testable import CircusDaemon
import Glibc
import Logging
import Testing

@Suite("Log sink")
struct LogSinkTests {
    /// A datagram socket bound to a fresh unix path, as a syslog daemon's /dev/log.
    final class UnixDatagramServer {
        let fd: Int32
        let directory: String
        var path: String { directory + "/log.sock" }

        init() throws {
            var template = Array("/tmp/circus-log-XXXXXX".utf8CString)
            guard let dir = mkdtemp(&template) else { throw LogSinkTestError("mkdtemp failed") }
            directory = String(cString: dir)
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            let target = directory + "/log.sock"
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                for (i, byte) in target.utf8.enumerated() { raw[i] = byte }
            }
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard rc == 0 else { throw LogSinkTestError("bind failed: \(errno)") }
        }

        deinit {
            close(fd)
            unlink(path)
            rmdir(directory)
        }
    }

    struct LogSinkTestError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Receives one datagram, waiting up to 5 s.
    static func receive(_ fd: Int32) -> [UInt8]? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, 5000) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? Array(buffer[..<n]) : nil
    }

    @Test func syslogToALocalSocketUsesTheFacilityAndPythonsFraming() throws {
        let server = try UnixDatagramServer()
        let sink = try LogSink(output: "syslog://\(server.path)?daemon")
        let logger = Logger(label: "circus") { CircusLogHandler(label: $0, sink: sink, level: .info) }
        logger.warning("sleeper stopped")
        let datagram = try #require(Self.receive(server.fd))
        let text = String(decoding: datagram, as: UTF8.self)
        // daemon (3) * 8 + warning (4) = 28; Python's SysLogHandler appends a NUL.
        #expect(text.hasPrefix("<28>"), "\(text)")
        #expect(text.hasSuffix("circus[\(getpid())] [WARNING] sleeper stopped\0"), "\(text)")
        #expect(sink.path == nil)
    }

    @Test func syslogOverUDPDefaultsToTheUserFacility() throws {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &addr) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                guard bind(fd, $0, length) == 0, getsockname(fd, $0, &length) == 0 else {
                    throw LogSinkTestError("bind failed: \(errno)")
                }
            }
        }
        let port = UInt16(bigEndian: addr.sin_port)
        let sink = try LogSink(output: "syslog://127.0.0.1:\(port)")
        let logger = Logger(label: "circus") { CircusLogHandler(label: $0, sink: sink, level: .info) }
        logger.info("Arbiter now waiting for commands")
        logger.debug("not sent: below the level")
        let datagram = try #require(Self.receive(fd))
        let text = String(decoding: datagram, as: UTF8.self)
        #expect(text.hasPrefix("<14>"), "user (1) * 8 + info (6): \(text)")
        #expect(text.contains("[INFO] Arbiter now waiting for commands"))
    }

    @Test func badSyslogTargetsAreClearErrors() {
        #expect(throws: DaemonError.self) { try LogSink(output: "syslog:///nonexistent/dir/log?user") }
        do {
            _ = try LogSink(output: "syslog://127.0.0.1:514?nosuchfacility")
            Issue.record("an unknown facility must be refused")
        } catch {
            #expect(error.message.contains("unknown syslog facility 'nosuchfacility'"))
        }
    }
}
