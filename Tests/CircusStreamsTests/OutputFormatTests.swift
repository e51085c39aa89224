@testable import CircusStreams
import CircusConfig
import Glibc
import Testing

/// Renders one chunk the way FileStream does with a time_format, through `appendPrefixed`.
private func prefixed(_ chunk: String, prefix: String = "T [42] | ") -> String {
    var out: [UInt8] = []
    Array(chunk.utf8).withUnsafeBytes { appendPrefixed($0, prefix: Array(prefix.utf8), to: &out) }
    return String(decoding: out, as: UTF8.self)
}

private func fancy(_ chunk: String) -> String {
    var out: [UInt8] = []
    Array(chunk.utf8).withUnsafeBytes { appendFancy($0, colorPrefix: colorEscape(2) + Array("T [7] | ".utf8), to: &out) }
    return String(decoding: out, as: UTF8.self)
}

@Suite("Circus's output formats")
struct OutputFormatTests {
    @Test("time_format: prefix on every line, trailing newlines stripped, one added", arguments: [
        // Circus's run: b'line1\nline2\npartial' then b'\n'.
        ("line1\nline2\npartial", "T [42] | line1\nT [42] | line2\nT [42] | partial\n"),
        ("\n", "T [42] | \n"),
        ("a\n\n\n", "T [42] | a\n"),
        ("a\n\nb\n", "T [42] | a\nT [42] | \nT [42] | b\n"),
        ("", "T [42] | \n"),
        ("no newline", "T [42] | no newline\n"),
    ])
    func prefixedChunks(_ chunk: String, _ expected: String) {
        #expect(prefixed(chunk) == expected)
    }

    @Test("FancyStdoutStream: each non-empty line coloured and reset", arguments: [
        ("x\n\ny", "\u{1B}[0;32;40mT [7] | x\u{1B}[0m\n\u{1B}[0;32;40mT [7] | y\u{1B}[0m\n"),
        ("only\n", "\u{1B}[0;32;40mT [7] | only\u{1B}[0m\n"),
        ("\n\n", ""),
    ])
    func fancyChunks(_ chunk: String, _ expected: String) {
        #expect(fancy(chunk) == expected)
    }

    @Test("strftime as Python's for a naive time: %f is microseconds, %z and %Z are empty")
    func strftime() {
        // 2026-12-06 03:04:05 UTC.
        let t = 1_796_526_245
        #expect(String(decoding: PythonStrftime.format("%Y-%m-%d %H:%M:%S", seconds: t, microseconds: 0, utc: true), as: UTF8.self)
            == "2026-12-06 03:04:05")
        #expect(String(decoding: PythonStrftime.format("%S.%f|%z|%Z|%%f", seconds: t, microseconds: 4200, utc: true), as: UTF8.self)
            == "05.004200|||%f")
        #expect(PythonStrftime.format("", seconds: t, microseconds: 0).isEmpty)
    }

    @Test("the ring keeps the last bytes and splits them into lines")
    func ring() {
        var ring = OutputRing()
        #expect(ring.lastLines(3) == [])
        Array("a\nb\nc".utf8).withUnsafeBytes { ring.append($0) }
        #expect(ring.lastLines(2) == ["b", "c"])
        Array("\n".utf8).withUnsafeBytes { ring.append($0) }
        #expect(ring.lastLines(5) == ["a", "b", "c"])
        // More than the capacity: only the end stays.
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: OutputRing.capacity) + Array("\nlast\n".utf8)
        big.withUnsafeBytes { ring.append($0) }
        #expect(ring.count == OutputRing.capacity)
        #expect(ring.lastLines(1) == ["last"])
        #expect(ring.lastLines(2)[0].allSatisfy { $0 == "x" })
    }
}

@Suite("TimedRotatingFileStream's schedule")
struct TimedRolloverTests {
    // Sunday 2026-12-06 03:04:05 UTC.
    let sunday = 1_796_526_245
    let midnight = 1_796_515_200  // 2026-12-06 00:00:00 UTC

    @Test("S, M and H add the interval; MIDNIGHT goes to the next midnight; W to the end of that weekday")
    func schedule() {
        #expect(TimedRollover(unit: .second, rotateInterval: 5, utc: true, fileModified: nil, now: sunday).rolloverAt == sunday + 5)
        #expect(TimedRollover(unit: .hour, rotateInterval: 1, utc: true, fileModified: 100, now: sunday).rolloverAt == 3700)
        #expect(TimedRollover(unit: .midnight, rotateInterval: 1, utc: true, fileModified: nil, now: sunday).rolloverAt
            == midnight + 86_400)
        // W0 (Monday) from a Sunday: the end of Monday.
        #expect(TimedRollover(unit: .weekday(0), rotateInterval: 1, utc: true, fileModified: nil, now: sunday).rolloverAt
            == midnight + 2 * 86_400)
        // W6 (Sunday) on a Sunday: the end of today.
        #expect(TimedRollover(unit: .weekday(6), rotateInterval: 1, utc: true, fileModified: nil, now: sunday).rolloverAt
            == midnight + 86_400)
        // W2 (Wednesday) from a Sunday: the end of Wednesday.
        #expect(TimedRollover(unit: .weekday(2), rotateInterval: 1, utc: true, fileModified: nil, now: sunday).rolloverAt
            == midnight + 4 * 86_400)
    }

    @Test("the rotated file is named after the period that ended; the schedule moves past now")
    func rollover() {
        var s = TimedRollover(unit: .minute, rotateInterval: 2, utc: true, fileModified: nil, now: sunday)
        #expect(!s.isDue(sunday + 119))
        #expect(s.isDue(sunday + 120))
        #expect(s.rotatedName(of: "/var/log/out.log", now: sunday + 130) == "/var/log/out.log.202612060304")
        s.advance(now: sunday + 130)
        #expect(s.rolloverAt == sunday + 250)
        let d = TimedRollover(unit: .day, rotateInterval: 1, utc: true, fileModified: nil, now: sunday)
        #expect(d.rotatedName(of: "out.log", now: sunday + 86_400) == "out.log.20261206")
    }

    @Test("pruning keeps the backup_count newest files with the unit's digits")
    func pruning() throws {
        var template = Array("/tmp/rollover-XXXXXX".utf8CString)
        let dir = String(cString: try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }))
        defer {
            for name in ["out.log.20261201", "out.log.20261202", "out.log.20261203", "out.log.2026120", "out.log.x2026120", "other.20261201"] {
                unlink(dir + "/" + name)
            }
            rmdir(dir)
        }
        for name in ["out.log.20261201", "out.log.20261202", "out.log.20261203", "out.log.2026120", "out.log.x2026120", "other.20261201"] {
            close(open(dir + "/" + name, O_CREAT | O_WRONLY, 0o644))
        }
        let s = TimedRollover(unit: .day, rotateInterval: 1, utc: true, fileModified: nil, now: sunday)
        #expect(s.filesToDelete(of: dir + "/out.log", backupCount: 2) == [dir + "/out.log.20261201"])
        #expect(s.filesToDelete(of: dir + "/out.log", backupCount: 1) == [dir + "/out.log.20261201", dir + "/out.log.20261202"])
        #expect(s.filesToDelete(of: dir + "/out.log", backupCount: 5) == [])
    }
}
