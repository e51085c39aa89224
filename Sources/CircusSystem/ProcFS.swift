// Small readers for /proc: whole small files and directory listings, with plain syscalls.

import Glibc

enum ProcFS {
    /// The whole content of a small file (stat, status, cmdline), or nil if it cannot be read
    /// (typically: the process is gone).
    static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { _ = close(fd) }
        // A scratch buffer on the stack, not a zeroed array: this runs for every worker
        // that exits (its leftovers are looked for).
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { chunk -> [UInt8]? in
            var result: [UInt8] = []
            while true {
                let n = Glibc.read(fd, chunk.baseAddress, chunk.count)
                if n < 0 {
                    if errno == EINTR { continue }
                    return nil
                }
                if n == 0 { return result }
                result.append(contentsOf: UnsafeBufferPointer(rebasing: chunk[0..<n]))
            }
        }
    }

    /// The decimal numbers of a file made of them and whitespace (a `children` file:
    /// `"12 34 "`), or nil if it cannot be read; anything else ends a number.
    static func readNumbers(_ path: String) -> [Int32]? {
        guard let bytes = read(path) else { return nil }
        var numbers: [Int32] = []
        var value: Int32 = 0
        var inNumber = false
        for byte in bytes {
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                let (times, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times.addingReportingOverflow(Int32(byte - UInt8(ascii: "0")))
                value = (o1 || o2) ? Int32.max : sum
                inNumber = true
            } else {
                if inNumber { numbers.append(value) }
                value = 0
                inNumber = false
            }
        }
        if inNumber { numbers.append(value) }
        return numbers
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
