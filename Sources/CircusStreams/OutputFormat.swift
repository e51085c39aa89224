// Circus's output formats, built with C string functions over whole chunks (memchr finds
// the newlines; no Swift loop looks at each byte):
//   time_format:  "<strftime> [<pid>] | " before every line of the chunk, trailing
//                 newlines stripped and one added (a partial line is ended);
//   FancyStdoutStream: each non-empty line as "\e[0;3<N>;40m<time> [<pid>] | <line>\e[0m\n".

import Glibc

/// Formats timestamps as Python's `datetime.strftime` does for a naive local (or UTC) time.
enum PythonStrftime {
    /// `format` applied to `seconds`/`microseconds` since the epoch.
    ///
    /// Python passes most directives to C's strftime; it handles `%f` (microseconds)
    /// itself, and a naive datetime (Circus's `datetime.now()`) has an empty `%z` and `%Z`.
    static func format(_ format: String, seconds: Int, microseconds: Int, utc: Bool = false) -> [UInt8] {
        var c = Array(format.utf8)
        if c.contains(UInt8(ascii: "%")) { c = pythonDirectives(c, microseconds: microseconds) }
        var t = time_t(seconds)
        var parts = tm()
        if utc { gmtime_r(&t, &parts) } else { localtime_r(&t, &parts) }
        if c.isEmpty { return [] }
        c.append(0)
        var capacity = 128 + c.count * 4
        while true {
            var out = [UInt8](repeating: 0, count: capacity)
            let n = c.withUnsafeBufferPointer { f in
                out.withUnsafeMutableBufferPointer { o in
                    f.withMemoryRebound(to: CChar.self) { fc in
                        o.withMemoryRebound(to: CChar.self) { oc in strftime(oc.baseAddress!, capacity, fc.baseAddress!, &parts) }
                    }
                }
            }
            // 0 is also a legitimate result (a format of only `%p` in some locales); stop
            // growing at a size no prefix needs.
            if n > 0 || capacity > 16_384 { return Array(out[0..<n]) }
            capacity *= 4
        }
    }

    /// Replaces Python's own directives (`%f`, and `%z`/`%Z` of a naive time) before C
    /// strftime sees the format.
    private static func pythonDirectives(_ f: [UInt8], microseconds: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(f.count + 8)
        var i = 0
        while i < f.count {
            if f[i] == UInt8(ascii: "%"), i + 1 < f.count {
                switch f[i + 1] {
                case UInt8(ascii: "f"):
                    let digits = Array(String(microseconds).utf8)
                    out += [UInt8](repeating: UInt8(ascii: "0"), count: max(0, 6 - digits.count)) + digits
                case UInt8(ascii: "z"), UInt8(ascii: "Z"):
                    break
                default:
                    out += [f[i], f[i + 1]]
                }
                i += 2
            } else {
                out.append(f[i])
                i += 1
            }
        }
        return out
    }
}

/// The current wall-clock time as seconds and microseconds.
func wallClock() -> (seconds: Int, microseconds: Int) {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return (Int(ts.tv_sec), Int(ts.tv_nsec) / 1000)
}

/// Appends Circus's `_FileStreamBase.write_data` rendering of one chunk to `out`:
/// `prefix + chunk.rstrip("\n")` with every newline followed by the prefix, then a newline.
func appendPrefixed(_ chunk: UnsafeRawBufferPointer, prefix: [UInt8], to out: inout [UInt8]) {
    var end = chunk.count
    while end > 0, chunk[end - 1] == UInt8(ascii: "\n") { end -= 1 }  // only the trailing newlines
    out.reserveCapacity(out.count + end + prefix.count * 2 + 1)
    out += prefix
    guard let base = chunk.baseAddress else {
        out.append(UInt8(ascii: "\n"))
        return
    }
    var start = 0
    while start < end {
        let found = memchr(base + start, Int32(UInt8(ascii: "\n")), end - start)
        let stop = found.map { base.distance(to: UnsafeRawPointer($0)) } ?? end
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[start..<stop]))
        if stop < end {
            out.append(UInt8(ascii: "\n"))
            out += prefix
        }
        start = stop + 1
    }
    out.append(UInt8(ascii: "\n"))
}

/// Appends FancyStdoutStream's rendering of one chunk: every non-empty line coloured.
func appendFancy(_ chunk: UnsafeRawBufferPointer, colorPrefix: [UInt8], to out: inout [UInt8]) {
    guard let base = chunk.baseAddress else { return }
    let reset: [UInt8] = Array("\u{1B}[0m\n".utf8)
    var start = 0
    while start <= chunk.count {
        let found = start < chunk.count ? memchr(base + start, Int32(UInt8(ascii: "\n")), chunk.count - start) : nil
        let stop = found.map { base.distance(to: UnsafeRawPointer($0)) } ?? chunk.count
        if stop > start {
            out += colorPrefix
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[start..<stop]))
            out += reset
        }
        start = stop + 1
    }
}

/// `<time> [<pid>] | ` as Circus writes it.
func linePrefix(time: [UInt8], pid: Int32) -> [UInt8] {
    time + Array(" [\(pid)] | ".utf8)
}

/// `\e[0;3<N>;40m` for FancyStdoutStream's colour N (1 red ... 7 white).
func colorEscape(_ color: Int) -> [UInt8] {
    Array("\u{1B}[0;3\(color);40m".utf8)
}
