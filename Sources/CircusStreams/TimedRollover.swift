// When a TimedRotatingFileStream rolls over and what it names the old file: Python's
// TimedRotatingFileHandler as Circus copies it (suffixes, midnight and weekday alignment,
// the daylight-saving correction, pruning to backup_count).

import CircusConfig
import Glibc

/// The rollover schedule of one timed stream.
struct TimedRollover {
    let unit: RotationUnit
    /// Seconds between rollovers (the unit times rotate_interval).
    let interval: Int
    let utc: Bool
    /// The next rollover, in seconds since the epoch.
    private(set) var rolloverAt: Int

    /// Starts the schedule from the file's modification time, or `now` when it has none.
    init(unit: RotationUnit, rotateInterval: Int, utc: Bool, fileModified: Int?, now: Int) {
        self.unit = unit
        self.interval = unit.seconds * rotateInterval
        self.utc = utc
        self.rolloverAt = 0
        self.rolloverAt = computeRollover(fileModified ?? now)
    }

    private func brokenDown(_ t: Int) -> tm {
        var time = time_t(t)
        var parts = tm()
        if utc { gmtime_r(&time, &parts) } else { localtime_r(&time, &parts) }
        return parts
    }

    /// The first rollover after `current`.
    func computeRollover(_ current: Int) -> Int {
        var result = current + interval
        switch unit {
        case .midnight, .weekday:
            let t = brokenDown(current)
            let sinceMidnight = (Int(t.tm_hour) * 60 + Int(t.tm_min)) * 60 + Int(t.tm_sec)
            result = current + 86_400 - sinceMidnight
            if case .weekday(let dayOfWeek) = unit {
                // Python counts Monday as 0; C counts Sunday as 0.
                let day = (Int(t.tm_wday) + 6) % 7
                // Python's logging rolls over at the end of that weekday (Circus's copy of
                // the rule can land in the past, which makes its first rollover come at once).
                let daysToWait = day == dayOfWeek ? 0 : day < dayOfWeek ? dayOfWeek - day : 6 - day + dayOfWeek + 1
                var next = result + daysToWait * 86_400
                if !utc {
                    let dstNow = t.tm_isdst
                    let dstThen = brokenDown(next).tm_isdst
                    if dstNow != dstThen { next += dstNow == 0 ? -3600 : 3600 }
                }
                result = next
            }
        default:
            break
        }
        return result
    }

    /// Whether a write at `now` must roll over first.
    func isDue(_ now: Int) -> Bool { now >= rolloverAt }

    /// The name the current file gets at this rollover: `<file>.<suffix of the period that ends>`.
    func rotatedName(of filename: String, now: Int) -> String {
        let t = rolloverAt - interval
        var seconds = t
        if !utc {
            let dstNow = brokenDown(now).tm_isdst
            let dstThen = brokenDown(t).tm_isdst
            if dstNow != dstThen { seconds = t + (dstNow != 0 ? 3600 : -3600) }
        }
        let suffix = PythonStrftime.format(unit.suffix, seconds: seconds, microseconds: 0, utc: utc)
        return filename + "." + String(decoding: suffix, as: UTF8.self)
    }

    /// Moves the schedule past `now` after a rollover.
    mutating func advance(now: Int) {
        var next = computeRollover(now)
        while next <= now { next += interval }
        rolloverAt = next
    }

    /// Rotated files of `filename` beyond the `backupCount` newest (Circus lists the
    /// directory and keeps names whose suffix is all digits of the unit's length).
    func filesToDelete(of filename: String, backupCount: Int) -> [String] {
        let slash = filename.utf8.lastIndex(of: UInt8(ascii: "/"))
        let directory = slash.map { String(filename[..<$0]) } ?? "."
        let base = slash.map { String(filename[filename.utf8.index(after: $0)...]) } ?? filename
        let prefix = base + "."
        guard let dir = opendir(directory.isEmpty ? "/" : directory) else { return [] }
        defer { closedir(dir) }
        var matches: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasPrefix(prefix) else { continue }
            let suffix = name.utf8.dropFirst(prefix.utf8.count)
            if suffix.count == unit.suffixDigits, suffix.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
                matches.append((slash == nil ? "" : directory + "/") + name)
            }
        }
        matches.sort()
        if matches.count < backupCount { return [] }
        return Array(matches.prefix(matches.count - backupCount))
    }
}
