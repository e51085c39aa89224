// Process information as the `stats` and `dstats` commands and the stats stream report it
// (as Circus's `util.get_info` and `Process.info` build it): human-readable sizes, the
// `ctime` string with its quirks, and the key order of the info object. The numbers come
// from the system layer in a `ProcessSample`; this file only formats them.

public import OrderedCollections

/// Raw measurements of one process, as the system layer reads them (from /proc).
///
/// A nil measurement is reported as `"N/A"`, which is what Circus shows when psutil is
/// denied access to it.
public struct ProcessSample: Hashable, Sendable {
    /// A process's niceness, or why it has none.
    public enum Nice: Hashable, Sendable {
        /// The nice value (-20...19).
        case value(Int64)
        /// The process is a zombie: reported as `"Zombie"`.
        case zombie
        /// Not readable: reported as `"N/A"`.
        case unavailable
    }

    /// Process id.
    public var pid: Int64
    /// Resident set size in bytes (`mem_info1`).
    public var rssBytes: Int64?
    /// Virtual memory size in bytes (`mem_info2`).
    public var vmsBytes: Int64?
    /// CPU use in percent since the previous sample of this process (0.0 the first time).
    public var cpuPercent: Double?
    /// Resident memory in percent of physical memory, unrounded.
    public var memPercent: Double?
    /// CPU time consumed (user + system) in seconds.
    public var cpuTimeSeconds: Double?
    /// Name of the owning user.
    public var username: String?
    /// Niceness.
    public var nice: Nice
    /// Start time of the process, Unix time (the OS value, 10 ms resolution).
    public var createTime: Double?
    /// The process's argv; nil when unreadable. Only its first element is used.
    public var argv: [String]?
    /// Direct children, for `stats` (their own `children` are never reported).
    public var children: [ProcessSample]

    public init(
        pid: Int64,
        rssBytes: Int64? = nil,
        vmsBytes: Int64? = nil,
        cpuPercent: Double? = nil,
        memPercent: Double? = nil,
        cpuTimeSeconds: Double? = nil,
        username: String? = nil,
        nice: Nice = .unavailable,
        createTime: Double? = nil,
        argv: [String]? = nil,
        children: [ProcessSample] = []
    ) {
        self.pid = pid
        self.rssBytes = rssBytes
        self.vmsBytes = vmsBytes
        self.cpuPercent = cpuPercent
        self.memPercent = memPercent
        self.cpuTimeSeconds = cpuTimeSeconds
        self.username = username
        self.nice = nice
        self.createTime = createTime
        self.argv = argv
        self.children = children
    }
}

/// Formatting of process information, exactly as Circus does it.
public enum ProcessStats {
    /// The text Circus puts in place of a value it may not read.
    public static let notAvailable: JSON = "N/A"

    /// What `stats` reports for a process that vanished between listing and sampling.
    public static let noSuchProcess: JSON = "No such process (stopped?)"

    private static let symbols: [String] = ["K", "M", "G", "T", "P", "E", "Z", "Y"]

    /// Circus's `bytes2human`: `"%.2f<unit>"` with 1024-based units K to Y (`24.71M`,
    /// `1024.00K` just below 1 MiB), or `"<n>B"` below 1 KiB (and for negative values).
    public static func bytes2human(_ bytes: Int64) -> String {
        // Python divides float(n) by a power of two (exact) and rounds to 2 decimals.
        let value = Double(bytes)
        for (index, symbol) in symbols.enumerated().reversed() {
            let shift = (index + 1) * 10
            guard shift < 63, bytes >= Int64(1) << Int64(shift) else { continue }
            let scaled = value / Double(sign: .plus, exponent: shift, significand: 1)
            return PythonFloat.fixed(scaled, digits: 2) + symbol
        }
        return "\(bytes)B"
    }

    /// Circus's `ctime` text for a CPU time:
    /// `"<minutes % 60>:<seconds, 2 digits>.<first two characters of str(microseconds)>"`.
    ///
    /// Hours and days are dropped, and the fraction is not zero-padded: `0:00.20` for
    /// 0.2 s, `0:00.0` for 0 µs, `0:00.50` for 5000 µs (QUIRK kept: circusctl prints it).
    /// The conversion to microseconds follows Python's `timedelta(seconds=x)`.
    public static func ctime(cpuSeconds: Double) -> String {
        guard cpuSeconds.isFinite, cpuSeconds.magnitude < 1e12 else { return "N/A" }
        let total = timedeltaMicroseconds(cpuSeconds)
        let microseconds = floorMod(total, 1_000_000)
        let seconds = floorMod(floorDiv(total, 1_000_000), 86_400)
        let secondsText = String(seconds % 60)
        return "\(seconds / 60 % 60):\(secondsText.count < 2 ? "0" + secondsText : secondsText)."
            + String(String(microseconds).prefix(2))
    }

    /// `timedelta(seconds=x)` in whole microseconds, rounded as CPython's `delta_new`
    /// does: the integral part exactly, the fraction times 1e6 in double arithmetic,
    /// ties to even.
    private static func timedeltaMicroseconds(_ x: Double) -> Int64 {
        // Integer conversions truncate toward zero like C's modf; they also keep this
        // module free of libm, which the daemon's static build would otherwise need.
        let integral = Int64(x)
        let fraction = (x - Double(integral)) * 1e6
        let fractionIntegral = Int64(fraction)
        let leftover = fraction - Double(fractionIntegral)
        var total = integral * 1_000_000 + fractionIntegral
        var whole = roundHalfAwayFromZero(leftover)
        if (whole - leftover).magnitude == 0.5 {
            let odd: Double = total & 1 == 1 ? 1 : 0
            whole = 2 * roundHalfAwayFromZero((leftover + odd) * 0.5) - odd
        }
        total += Int64(whole)
        return total
    }

    /// C's `round()` for `|x| < 2^62`.
    private static func roundHalfAwayFromZero(_ x: Double) -> Double {
        let truncated = Double(Int64(x))
        let difference = x - truncated
        if difference >= 0.5 { return truncated + 1 }
        if difference <= -0.5 { return truncated - 1 }
        return truncated
    }

    private static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    private static func floorMod(_ a: Int64, _ b: Int64) -> Int64 {
        let r = a % b
        return r != 0 && (r < 0) != (b < 0) ? r + b : r
    }

    /// The `cmdline` field: the base name of the first shell word of `argv[0]`
    /// (`/usr/bin/python3 -u` -> `python3`), `"N/A"` when there is none.
    public static func commandName(argv: [String]?) -> JSON {
        guard let first = argv?.first, let word = firstShellWord(first) else { return notAvailable }
        let scalars = word.unicodeScalars
        if let slash = scalars.lastIndex(of: "/") {
            return .string(String(scalars[scalars.index(after: slash)...]))
        }
        return .string(word)
    }

    /// The first word of `shlex.split(text)` (POSIX rules: quotes and backslashes), or nil
    /// when there is none. An unbalanced quote, which makes Python raise, ends the word.
    static func firstShellWord(_ text: String) -> String? {
        var word = String.UnicodeScalarView()
        var inWord = false
        var quote: Unicode.Scalar? = nil
        var iterator = text.unicodeScalars.makeIterator()
        while let scalar = iterator.next() {
            if let open = quote {
                if scalar == open {
                    quote = nil
                } else if open == "\"", scalar == "\\" {
                    // Inside double quotes a backslash only escapes `"` and `\`.
                    guard let next = iterator.next() else { break }
                    if next != "\"" && next != "\\" { word.append("\\") }
                    word.append(next)
                } else {
                    word.append(scalar)
                }
                continue
            }
            switch scalar {
            case " ", "\t", "\n", "\r":
                if inWord { return String(word) }
            case "'", "\"":
                quote = scalar
                inWord = true
            case "\\":
                inWord = true
                if let next = iterator.next() { word.append(next) }
            default:
                inWord = true
                word.append(scalar)
            }
        }
        return inWord ? String(word) : nil
    }

    /// The info object of `get_info` (used as is by `dstats` and, with two more keys, by
    /// the stats stream), keys in Circus's order: `mem_info1, mem_info2, cpu, mem, ctime,
    /// pid, username, nice, create_time, age, cmdline, children`.
    ///
    /// - Parameters:
    ///   - sample: the measurements.
    ///   - now: the current Unix time; `age = now - createTime`.
    /// - Returns: the object; `children` is always empty here.
    public static func info(_ sample: ProcessSample, now: Double) -> JSONObject {
        var info = JSONObject()
        info.reserveCapacity(14)
        info["mem_info1"] = sample.rssBytes.map { .string(bytes2human($0)) } ?? notAvailable
        info["mem_info2"] = sample.vmsBytes.map { .string(bytes2human($0)) } ?? notAvailable
        info["cpu"] = sample.cpuPercent.map(JSON.double) ?? notAvailable
        info["mem"] = sample.memPercent.map { .double(PythonFloat.round($0, digits: 3)) } ?? notAvailable
        info["ctime"] = sample.cpuTimeSeconds.map { .string(ctime(cpuSeconds: $0)) } ?? notAvailable
        info["pid"] = .int(sample.pid)
        info["username"] = sample.username.map(JSON.string) ?? notAvailable
        switch sample.nice {
        case .value(let nice): info["nice"] = .int(nice)
        case .zombie: info["nice"] = "Zombie"
        case .unavailable: info["nice"] = notAvailable
        }
        info["create_time"] = sample.createTime.map(JSON.double) ?? notAvailable
        info["age"] = sample.createTime.map { .double(now - $0) } ?? notAvailable
        info["cmdline"] = commandName(argv: sample.argv)
        info["children"] = .array([])
        return info
    }

    /// The info object of one watcher process for the `stats` command (`Process.info`):
    /// ``info(_:now:)`` with `age` measured from the spawn time, the direct children's
    /// infos, then `started` and `wid`.
    ///
    /// - Parameters:
    ///   - sample: the measurements, with `children` filled in.
    ///   - now: the current Unix time.
    ///   - started: when circusd spawned the process (Unix time); `age = now - started`.
    ///   - wid: the worker id.
    public static func watcherProcessInfo(_ sample: ProcessSample, now: Double, started: Double, wid: Int64)
        -> JSONObject
    {
        var result = info(sample, now: now)
        result["age"] = .double(now - started)
        result["started"] = .double(started)
        result["children"] = .array(sample.children.map { .object(info($0, now: now)) })
        result["wid"] = .int(wid)
        return result
    }

    /// The per-process payload of the stats stream (`stat.<watcher>.<pid>`):
    /// ``info(_:now:)`` plus `subtopic` (the pid) and `name` (null except in the `circus`
    /// group: `circusd`, `circusd-stats`, `circushttpd`).
    public static func streamInfo(_ sample: ProcessSample, now: Double, name: String? = nil) -> JSONObject {
        var result = info(sample, now: now)
        result["subtopic"] = .int(sample.pid)
        result["name"] = name.map(JSON.string) ?? .null
        return result
    }

    /// An object keyed by pid (as strings, which is what `json.dumps` makes of Python's
    /// int keys), in the given order: the `info` of `stats <name>` and each watcher's
    /// entry of `stats`.
    public static func byPid(_ entries: [(pid: Int64, info: JSON)]) -> JSONObject {
        var result = JSONObject()
        result.reserveCapacity(entries.count)
        for entry in entries { result[String(entry.pid)] = entry.info }
        return result
    }
}
