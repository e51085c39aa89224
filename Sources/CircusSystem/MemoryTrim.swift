// Gives back the pages that only start-up needed.
//
// A supervisor spends its life idle, yet start-up (argument parsing, configuration
// loading, the Swift runtime's first uses of generic code) touches several megabytes of
// the executable's code, and the kernel maps them in 64 KiB windows. Those pages are
// clean copies of the file: dropping them from our page tables costs nothing but a minor
// fault if the code runs again, and leaves the daemon resident with what it uses.

import Glibc

/// Trims the daemon's resident memory once start-up is over.
public enum MemoryTrim {
    /// Drops the executable's code pages from this process's page tables
    /// (`madvise(MADV_DONTNEED)` on its read-only executable mappings; they fault back
    /// in from the page cache when used) and returns free heap to the kernel.
    ///
    /// Only mappings of the executable that are `r-xp` are touched: they are never
    /// written, so nothing private is lost (relocated data lives in other mappings).
    /// - Returns: the number of bytes advised.
    @discardableResult
    public static func releaseStartupPages() -> Int {
        var total = 0
        var exe = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &exe, exe.count - 1)
        guard n > 0 else { return 0 }
        let executable = String(decoding: exe[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let maps = fopen("/proc/self/maps", "r") else { return 0 }
        defer { fclose(maps) }
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), maps) != nil {
            let text = String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let fields = text.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[1] == "r-xp", fields[5...].joined(separator: " ") == executable else { continue }
            let bounds = fields[0].split(separator: "-")
            guard bounds.count == 2, let start = UInt(bounds[0], radix: 16), let end = UInt(bounds[1], radix: 16),
                  let address = UnsafeMutableRawPointer(bitPattern: start)
            else { continue }
            if madvise(address, Int(end - start), MADV_DONTNEED) == 0 { total += Int(end - start) }
        }

        return total
    }
}
