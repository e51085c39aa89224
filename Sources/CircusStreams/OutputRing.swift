// The last bytes a stream captured, for `tail`: a fixed buffer that new output overwrites.

import Glibc

/// A byte ring of fixed capacity holding the most recent output of one stream.
struct OutputRing {
    /// Bytes kept per stream: enough for the last lines `tail` is asked for (lines longer
    /// than this are cut to their end).
    static let capacity = 64 * 1024

    /// Allocated with the first bytes: a stream that never captures anything costs nothing.
    private var storage: [UInt8] = []
    /// Index of the oldest byte.
    private var head = 0
    private(set) var count = 0

    /// Appends `bytes`, dropping the oldest ones when full (only the last `capacity` bytes
    /// of a large chunk are copied).
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        if storage.isEmpty { storage = [UInt8](repeating: 0, count: Self.capacity) }
        let keep = UnsafeRawBufferPointer(rebasing: bytes[max(0, bytes.count - Self.capacity)...])
        let capacity = Self.capacity
        storage.withUnsafeMutableBytes { ring in
            var tail = (head + count) % capacity
            var offset = 0
            while offset < keep.count {
                let n = min(keep.count - offset, capacity - tail)
                memcpy(ring.baseAddress! + tail, keep.baseAddress! + offset, n)
                offset += n
                tail = (tail + n) % capacity
            }
        }
        let total = count + keep.count
        if total > capacity {
            head = (head + total - capacity) % capacity
            count = capacity
        } else {
            count = total
        }
    }

    /// The bytes held, oldest first.
    var bytes: [UInt8] {
        if count == 0 { return [] }
        if head + count <= Self.capacity { return Array(storage[head..<(head + count)]) }
        return Array(storage[head...]) + Array(storage[0..<(head + count - Self.capacity)])
    }

    /// The last `n` complete or partial lines, oldest first (a trailing newline ends the
    /// last line; it does not start an empty one). Invalid UTF-8 is replaced.
    func lastLines(_ n: Int) -> [String] {
        guard n > 0 else { return [] }
        var all = bytes
        if all.last == UInt8(ascii: "\n") { all.removeLast() }
        if all.isEmpty { return count > 0 ? [""] : [] }
        var lines: [String] = []
        var end = all.count
        var i = all.count - 1
        while i >= 0, lines.count < n {
            if all[i] == UInt8(ascii: "\n") {
                lines.append(String(decoding: all[(i + 1)..<end], as: UTF8.self))
                end = i
            }
            i -= 1
        }
        if lines.count < n { lines.append(String(decoding: all[0..<end], as: UTF8.self)) }
        return lines.reversed()
    }
}
