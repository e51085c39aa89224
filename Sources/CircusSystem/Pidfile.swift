// circusd's pidfile, as Circus's pidfile.py behaves, with a clearer message when the
// file names a running process.

import Glibc

/// Why the pidfile could not be created. circusd prints the description to stdout, as
/// Circus does, and exits 1.
public struct PidfileError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Hashable, Sendable {
        fileprivate enum Base: Hashable, Sendable { case stale, missingDirectory, system }
        fileprivate let base: Base
        /// The file names another live process (most likely a circusd already running).
        public static let stale = Code(base: .stale)
        /// The parent directory does not exist.
        public static let missingDirectory = Code(base: .missingDirectory)
        /// Reading, signalling or writing failed (Circus would crash with a traceback).
        public static let system = Code(base: .system)
    }

    /// The kind of failure.
    public let code: Code
    /// `pid file '<path>' is in use: it names pid <pid>, which is running` (Circus says
    /// `is stale, current pid <its own pid>`, which names the wrong process), `<dir> doesn't
    /// exist. Can't create pidfile`, or `<operation>: <strerror>`.
    public let description: String
}

/// A pidfile at `path`.
public struct Pidfile: Sendable {
    /// The file's path, as configured.
    public let path: String

    /// Describes a pidfile; nothing is touched until `create`.
    public init(path: String) {
        self.path = path
    }

    /// Writes `"<pid>\n"` with mode 0644, unless the file names another live process.
    ///
    /// A missing file, an empty or non-numeric content, a pid <= 0 or a dead pid is simply
    /// overwritten; a file that already holds `pid` is left as it is.
    /// - Throws: `PidfileError` with Circus's messages.
    public func create(pid: Int32 = getpid()) throws(PidfileError) {
        if let old = try livePid() {
            if old == pid { return }
            throw PidfileError(code: .stale, description: "pid file '\(path)' is in use: it names pid \(old), which is running")
        }
        let dir = Self.dirname(path)
        if !dir.isEmpty {
            var st = stat()
            if stat(dir, &st) != 0 || (st.st_mode & S_IFMT) != S_IFDIR {
                throw PidfileError(code: .missingDirectory, description: "\(dir) doesn't exist. Can't create pidfile")
            }
        }
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw systemError("open('\(path)')") }
        defer { _ = close(fd) }
        // Explicit chmod: the umask must not narrow the mode (Circus chmods too).
        if fchmod(fd, 0o644) != 0 { throw systemError("chmod('\(path)')") }
        let bytes = Array("\(pid)\n".utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                throw systemError("write('\(path)')")
            }
            written += n
        }
        if fsync(fd) != 0 { throw systemError("fsync('\(path)')") }
    }

    /// Removes the file if it still holds `pid` (or something unparsable, as Circus does);
    /// never fails, since it runs on the way out.
    public func unlink(pid: Int32 = getpid()) {
        guard let text = ProcFS.readString(path) else { return }
        if Self.parse(text).map({ $0 == pid }) ?? true {
            _ = Glibc.unlink(path)
        }
    }

    /// The pid in the file if it names a live process (`kill(pid, 0)` succeeds); nil when
    /// the file is missing, unparsable, <= 0, or the process is gone.
    public func livePid() throws(PidfileError) -> Int32? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw systemError("open('\(path)')")
        }
        _ = close(fd)
        guard let text = ProcFS.readString(path), let pid = Self.parse(text), pid > 0 else { return nil }
        if kill(pid, 0) == 0 { return pid }
        if errno == ESRCH { return nil }
        throw systemError("kill(\(pid), 0)")
    }

    /// Python's `int(text or 0)`: optional surrounding whitespace and sign, then digits.
    static func parse(_ text: String) -> Int32? {
        var s = Substring(text)
        let space: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        while let c = s.first, space(c) { s.removeFirst() }
        while let c = s.last, space(c) { s.removeLast() }
        if s.isEmpty { return 0 }
        return Int32(s)
    }

    static func dirname(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        let head = path[..<slash]
        // Python keeps a lone leading slash ("/x.pid" -> "/") and strips trailing ones.
        if head.allSatisfy({ $0 == "/" }) { return String(path[...slash]) }
        var trimmed = head
        while trimmed.last == "/" { trimmed.removeLast() }
        return String(trimmed)
    }

    private func systemError(_ operation: String) -> PidfileError {
        PidfileError(code: .system, description: "\(operation): \(errnoDescription(errno))")
    }
}
