// The `rlimit_<name>` options: which names exist on Linux and their RLIMIT_* numbers.

/// Linux resource limits by the lower-case names `rlimit_<name>` options use.
public enum ResourceLimits {
    /// `RLIMIT_*` numbers (Linux, all architectures we build for), by lower-case name.
    /// `ofile` is the BSD alias of `nofile` that Python's `resource` module also offers.
    public static let numbersByName: [String: Int32] = [
        "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6, "nofile": 7,
        "ofile": 7, "memlock": 8, "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12, "nice": 13,
        "rtprio": 14, "rttime": 15,
    ]

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
