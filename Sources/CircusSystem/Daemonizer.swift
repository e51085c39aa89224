// circusd --daemon: the classic double fork, done in C because the intermediate process
// must run no Swift runtime code between fork and _exit. Unlike Circus, whose parent
// exits 0 at once (so a daemon that fails to start goes unnoticed), the original process
// waits on a pipe until the daemon says it serves, or why it could not.

import CCircusSys
import Glibc

/// Detaches the daemon from its terminal and parent.
public enum Daemonizer {
    /// Circus's `daemonize()`: fork, setsid, fork again (the session leader exits 0),
    /// close every descriptor, `/dev/null` on 0, 1 and 2. No chdir and no umask change, so
    /// relative paths and the umask behave as before.
    ///
    /// The original process does not return: it waits for the daemon's ``StartupReport``
    /// and exits 0 once the daemon reports ``StartupReport/serving()``, or prints the
    /// reported failure and exits 1 (also when the daemon ends without a word).
    ///
    /// Only the grandchild returns; the pidfile written afterwards holds its pid.
    /// - Important: call it before any thread exists (fork copies only the calling thread),
    ///   and before opening anything meant to survive: every descriptor is closed.
    /// - Returns: the daemon's end of the report pipe. Report exactly once.
    /// - Throws: `SystemError` when the pipe or the first fork fails (still in the
    ///   original process).
    public static func daemonize() throws(SystemError) -> StartupReport {
        var fd: Int32 = -1
        let r = circus_daemonize(&fd)
        if r < 0 { throw SystemError("fork", errno: -r) }
        if r == 1 { relay(from: fd) }
        return StartupReport(fd: fd)
    }

    /// The original process: passes the daemon's verdict on, then exits.
    private static func relay(from fd: Int32) -> Never {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                bytes += buffer[..<n]
            } else if n == 0 || errno != EINTR {
                break
            }
        }
        guard let kind = bytes.first else {
            writeAll(2, Array("circusd: the daemon exited during start-up without saying why\n".utf8))
            exit(1)
        }
        let message = Array(bytes.dropFirst())
        switch kind {
        case StartupReport.servingByte:
            exit(0)
        case StartupReport.stdoutByte:
            writeAll(1, message)
        default:
            writeAll(2, message)
        }
        exit(1)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            written += n
        }
    }
}

/// The daemon's side of the start-up report: what the process that ran `circusd
/// --daemon` prints and how it exits.
public final class StartupReport {
    static let servingByte = UInt8(ascii: "R")
    static let stdoutByte = UInt8(ascii: "O")
    static let stderrByte = UInt8(ascii: "E")

    private var fd: Int32

    init(fd: Int32) {
        self.fd = fd
    }

    deinit { close() }

    /// The daemon is bound and serves: the original process exits 0.
    public func serving() {
        send(Self.servingByte, [])
    }

    /// Start-up failed: the original process writes `message` (a newline is added) to its
    /// stdout or stderr and exits 1.
    public func failed(_ message: String, onStandardOutput: Bool = false) {
        send(onStandardOutput ? Self.stdoutByte : Self.stderrByte, Array((message + "\n").utf8))
    }

    private func send(_ kind: UInt8, _ message: [UInt8]) {
        guard fd >= 0 else { return }
        Daemonizer.writeAll(fd, [kind] + message)
        close()
    }

    private func close() {
        if fd >= 0 {
            _ = Glibc.close(fd)
            fd = -1
        }
    }
}
