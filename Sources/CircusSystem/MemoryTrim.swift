// Gives back the pages that only start-up needed.
//
// A supervisor spends its life idle, yet start-up (argument parsing, configuration
// loading, the Swift runtime's first uses of generic code) touches several megabytes of
// the executable's code, and the kernel maps file pages in 64 KiB windows around each
// fault. Those pages are clean copies of the file: dropping them from our page tables
// costs a minor fault if the code runs again, and leaves the daemon resident with what
// it actually uses.

import Glibc

/// Trims the daemon's resident memory once start-up is over.
public enum MemoryTrim {
    /// Drops the code pages of the executable and its libraries from this process's page
    /// tables (`madvise(MADV_DONTNEED)` on every file-backed `r-xp` mapping; they fault
    /// back in from the page cache when used).
    ///
    /// Only `r-xp` file mappings are advised: code is never written, so nothing private
    /// is lost (relocated data lives in other mappings), and a mapped executable or
    /// library is not rewritten in place (writing to a running executable fails with
    /// ETXTBSY; package managers replace libraries by renaming).
    /// - Returns: the number of bytes advised.
    @discardableResult
    public static func releaseStartupPages() -> Int {
        let ranges = codeRanges()
        // Nothing but system calls after this point: any code that runs now (string
        // handling, say) would fault its pages straight back in.
        var total = 0
        for range in ranges where madvise(range.start, range.length, MADV_DONTNEED) == 0 {
            total += range.length
        }
        return total
    }

    private static func codeRanges() -> [(start: UnsafeMutableRawPointer, length: Int)] {
        guard let maps = fopen("/proc/self/maps", "r") else { return [] }
        defer { fclose(maps) }
        var ranges: [(start: UnsafeMutableRawPointer, length: Int)] = []
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), maps) != nil {
            let text = String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let fields = text.split(separator: " ", omittingEmptySubsequences: true)
            // Code mapped from a file (`[vdso]` and anonymous mappings are left alone).
            guard fields.count >= 6, fields[1] == "r-xp", fields[5].hasPrefix("/") else { continue }
            let bounds = fields[0].split(separator: "-")
            guard bounds.count == 2, let start = UInt(bounds[0], radix: 16), let end = UInt(bounds[1], radix: 16),
                  end > start, let address = UnsafeMutableRawPointer(bitPattern: start)
            else { continue }
            ranges.append((address, Int(end - start)))
        }
        return ranges
    }
}
