// Small readers for /proc: whole small files and directory listings, with plain syscalls.

import Glibc

enum ProcFS {
    /// The whole content of a small file (stat, status, cmdline), or nil if it cannot be read
    /// (typically: the process is gone).
    static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
        }
    }

    /// The file as text (invalid UTF-8 repaired).
    static func readString(_ path: String) -> String? {
        read(path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The names in a directory, without `.` and `..`; nil if it cannot be opened.
    static func list(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The numeric entries of /proc (one per process).
    static func pids() -> [Int32] {
        (list("/proc") ?? []).compactMap { Int32($0) }
    }

    /// The fields of /proc/<pid>/stat after the command name, which may itself contain spaces
    /// and parentheses: `fields[0]` is the state (field 3 in proc(5)), `fields[1]` the ppid.
    static func statFields(_ pid: Int32) -> (comm: String, fields: [Substring])? {
        guard let text = readString("/proc/\(pid)/stat"),
              let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")")
        else { return nil }
        let comm = String(text[text.index(after: open)..<close])
        let rest = text[text.index(after: close)...]
        return (comm, rest.split(separator: " ", omittingEmptySubsequences: true))
    }
}
