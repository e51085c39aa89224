// The `rlimit_<name>` options: the one table of resource limit names and their numbers.
// The INI loader, `set`/`add` validation and the spawner all read it.

internal import Glibc

/// Linux resource limits by the lower-case names `rlimit_<name>` options use.
public enum ResourceLimits {
    /// `RLIMIT_*` numbers by lower-case name: the names Python's `resource` module has on
    /// Linux (so exactly what Circus accepts), numbers from the C library. `ofile` is the
    /// BSD alias of `nofile` that Python also offers.
    public static let numbersByName: [String: Int32] = [
        "cpu": Int32(RLIMIT_CPU.rawValue), "fsize": Int32(RLIMIT_FSIZE.rawValue),
        "data": Int32(RLIMIT_DATA.rawValue), "stack": Int32(RLIMIT_STACK.rawValue),
        "core": Int32(RLIMIT_CORE.rawValue), "rss": Int32(__RLIMIT_RSS.rawValue),
        "nproc": Int32(__RLIMIT_NPROC.rawValue), "nofile": Int32(RLIMIT_NOFILE.rawValue),
        "ofile": Int32(RLIMIT_NOFILE.rawValue), "memlock": Int32(__RLIMIT_MEMLOCK.rawValue),
        "as": Int32(RLIMIT_AS.rawValue), "sigpending": Int32(__RLIMIT_SIGPENDING.rawValue),
        "msgqueue": Int32(__RLIMIT_MSGQUEUE.rawValue), "nice": Int32(__RLIMIT_NICE.rawValue),
        "rtprio": Int32(__RLIMIT_RTPRIO.rawValue), "rttime": Int32(__RLIMIT_RTTIME.rawValue),
    ]

    /// The names, sorted (for messages).
    public static let names: [String] = numbersByName.keys.sorted()

    /// The `RLIMIT_*` number for a name in any case (`NOFILE`, `nofile`), or nil when
    /// Linux has no such limit.
    public static func number(_ name: String) -> Int32? {
        numbersByName[name.lowercased()]
    }

    /// Parses an `rlimit_<name>` value as Circus does: empty means unlimited (nil), any
    /// other text is a Python `int()`; `-1` is `RLIM_INFINITY` in Python and so is
    /// unlimited too.
    ///
    /// - Throws: ``ValueParseError`` when the text is not an integer or is below -1.
    public static func value(_ text: String) throws(ValueParseError) -> Int64? {
        if text.isEmpty { return nil }
        let number = try ValueParser.int(text)
        if number == -1 { return nil }
        guard number >= 0 else {
            throw ValueParseError(
                value: text, message: "\(PythonText.repr(text)) is not a limit (use a number >= 0, or nothing for unlimited)")
        }
        return Int64(number)
    }
}
