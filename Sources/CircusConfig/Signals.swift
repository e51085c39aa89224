// Signal names and numbers, parsed the way Circus's `to_signum` does.

/// Linux signal numbers by name, and Circus's name parsing.
public enum Signals {
    /// Linux x86-64/aarch64 numbers by canonical name (without the `SIG` prefix).
    public static let numbersByName: [String: Int32] = [
        "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
        "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
        "TERM": 15, "STKFLT": 16, "CHLD": 17, "CLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20,
        "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26,
        "PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
        "RTMIN": 34, "RTMAX": 64,
    ]

    /// Parses a signal the way Circus's `to_signum` does: an integer (surrounding
    /// whitespace allowed), or a name with an optional `+N` offset, case-insensitive,
    /// with or without the `SIG` prefix (`9`, `TERM`, `sigterm`, `RTMIN+1`).
    ///
    /// - Returns: the signal number, or nil when the text names no signal.
    public static func number(_ text: String) -> Int32? {
        let trimmed = text.trimmingASCIIWhitespace()
        if let n = Int32(trimmed) { return n }
        var name = Substring(trimmed.uppercased())
        var offset: Int32 = 0
        if let plus = name.firstIndex(of: "+") {
            guard let n = Int32(name[name.index(after: plus)...]), n >= 0 else { return nil }
            offset = n
            name = name[..<plus]
        }
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { return nil }
        if name.hasPrefix("SIG") { name = name.dropFirst(3) }
        guard let base = numbersByName[String(name)] else { return nil }
        let value = base + offset
        return value <= 64 ? value : nil
    }

    /// The conventional name of a signal number (`15` -> `SIGTERM`), for log lines.
    public static func name(_ number: Int32) -> String {
        let preferred = ["HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV",
                         "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN",
                         "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS"]
        if number >= 1, number <= 31 { return "SIG" + preferred[Int(number) - 1] }
        if number == 34 { return "SIGRTMIN" }
        if number > 34, number <= 64 { return "SIGRTMIN+\(number - 34)" }
        return "signal \(number)"
    }
}

extension String {
    /// The string without leading and trailing ASCII whitespace (space, tab, CR, LF, VT, FF).
    public func trimmingASCIIWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\u{0B}" || $0 == "\u{0C}" }
        guard let start = firstIndex(where: { !isSpace($0) }) else { return "" }
        let end = lastIndex(where: { !isSpace($0) })!
        return String(self[start...end])
    }
}
