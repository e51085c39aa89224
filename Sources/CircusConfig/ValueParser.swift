// Circus's scalar parsers: `to_bool`, Python `int()`, `float()` and `int(x, 8)`.
//
// Existing configs were written against Python's acceptance rules (surrounding
// whitespace, `1_000`, `+5`, `inf`, Unicode digits), so we accept exactly what Python
// accepts and reject exactly what it rejects.

/// Parsers for option values, with Python's acceptance rules.
public enum ValueParser {
    /// Circus's `to_bool`: case-insensitive and stripped, `yes true on 1` are true and
    /// `no false off 0` are false.
    ///
    /// - Throws: ``ValueParseError`` `'<text>' is not a boolean` for anything else,
    ///   including the empty string.
    public static func bool(_ text: String) throws(ValueParseError) -> Bool {
        switch PythonText.strip(text.lowercased()) {
        case "yes", "true", "on", "1": return true
        case "no", "false", "off", "0": return false
        default: throw ValueParseError(value: text, message: "\(PythonText.repr(text)) is not a boolean")
        }
    }

    /// Python `int(text)`: optional surrounding whitespace and sign, decimal digits (any
    /// Unicode decimal digit), single underscores between digits. `0x10` and `1.0` fail.
    ///
    /// - Throws: ``ValueParseError`` `'<text>' is not an integer` (also when the number
    ///   does not fit in `Int`, which Python would accept but no option can use).
    public static func int(_ text: String) throws(ValueParseError) -> Int {
        guard let value = parseInteger(text, radix: 10, allowOctalPrefix: false) else {
            throw ValueParseError(value: text, message: "\(PythonText.repr(text)) is not an integer")
        }
        return value
    }

    /// Python `int(text, 8)`, as Circus parses `umask`: like ``int(_:)`` with octal digits
    /// and an optional `0o` prefix (`022`, `0o22` and `0o_22` are all 18).
    ///
    /// - Throws: ``ValueParseError`` `'<text>' is not an octal number`.
    public static func octal(_ text: String) throws(ValueParseError) -> Int {
        guard let value = parseInteger(text, radix: 8, allowOctalPrefix: true) else {
            throw ValueParseError(value: text, message: "\(PythonText.repr(text)) is not an octal number")
        }
        return value
    }

    /// Python `float(text)`: optional whitespace and sign, `1.5`, `.5`, `5.`, `1e3`,
    /// underscores between digits, `inf`/`infinity`/`nan` in any case. Hex floats fail.
    ///
    /// - Throws: ``ValueParseError`` `'<text>' is not a number`.
    public static func float(_ text: String) throws(ValueParseError) -> Double {
        guard let value = parseFloat(text) else {
            throw ValueParseError(value: text, message: "\(PythonText.repr(text)) is not a number")
        }
        return value
    }

    /// Python's `repr()` of a string (`'it\'s'` becomes `"it's"`), so that messages
    /// elsewhere in the daemon quote values exactly as Circus's messages do.
    public static func repr(_ text: String) -> String {
        PythonText.repr(text)
    }

    // MARK: - Implementation

    /// Python's integer literal grammar for `int(x, radix)` with radix 8 or 10.
    private static func parseInteger(_ text: String, radix: Int, allowOctalPrefix: Bool) -> Int? {
        let scalars = Array(PythonText.strip(text).unicodeScalars)
        var i = 0
        var negative = false
        if i < scalars.count, scalars[i] == "+" || scalars[i] == "-" {
            negative = scalars[i] == "-"
            i += 1
        }
        var underscoreAllowed = false  // Python allows `0o_7`: an underscore right after the prefix.
        if allowOctalPrefix, i + 1 < scalars.count, scalars[i] == "0", scalars[i + 1] == "o" || scalars[i + 1] == "O" {
            i += 2
            underscoreAllowed = true
        }
        var value = 0
        var digits = 0
        var lastWasUnderscore = false
        while i < scalars.count {
            let scalar = scalars[i]
            if scalar == "_" {
                guard underscoreAllowed, !lastWasUnderscore else { return nil }
                lastWasUnderscore = true
            } else {
                guard let digit = PythonText.decimalDigitValue(scalar), digit < radix else { return nil }
                // Accumulate negatively so that Int.min parses.
                let (shifted, o1) = value.multipliedReportingOverflow(by: radix)
                let (next, o2) = negative ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
                guard !o1, !o2 else { return nil }
                value = next
                digits += 1
                lastWasUnderscore = false
                underscoreAllowed = true
            }
            i += 1
        }
        guard digits > 0, !lastWasUnderscore else { return nil }
        return value
    }

    /// Python's `float()` grammar; the digits are normalised to ASCII and converted by Swift.
    private static func parseFloat(_ text: String) -> Double? {
        let scalars = Array(PythonText.strip(text).unicodeScalars)
        var i = 0
        var ascii = ""
        if i < scalars.count, scalars[i] == "+" || scalars[i] == "-" {
            if scalars[i] == "-" { ascii.append("-") }
            i += 1
        }
        let rest = String(String.UnicodeScalarView(scalars[i...])).lowercased()
        switch rest {
        case "inf", "infinity": return ascii == "-" ? -Double.infinity : Double.infinity
        case "nan": return Double.nan
        default: break
        }
        /// Reads `digit (["_"] digit)*`; returns the number of digits read, or nil on a bad underscore.
        func digitPart() -> Int? {
            var count = 0
            var lastWasUnderscore = false
            while i < scalars.count {
                if scalars[i] == "_" {
                    guard count > 0, !lastWasUnderscore else { return nil }
                    lastWasUnderscore = true
                } else if let digit = PythonText.decimalDigitValue(scalars[i]) {
                    ascii.append(Character(Unicode.Scalar(UInt8(48 + digit))))
                    count += 1
                    lastWasUnderscore = false
                } else {
                    break
                }
                i += 1
            }
            return lastWasUnderscore ? nil : count
        }
        let signPart = ascii
        ascii = ""
        guard let intDigits = digitPart() else { return nil }
        let intPart = intDigits > 0 ? ascii : "0"
        ascii = ""
        var fractionDigits = 0
        if i < scalars.count, scalars[i] == "." {
            i += 1
            guard let count = digitPart() else { return nil }
            fractionDigits = count
        }
        guard intDigits + fractionDigits > 0 else { return nil }
        let fractionPart = fractionDigits > 0 ? ascii : "0"
        ascii = ""
        if i < scalars.count, scalars[i] == "e" || scalars[i] == "E" {
            ascii.append("e")
            i += 1
            if i < scalars.count, scalars[i] == "+" || scalars[i] == "-" {
                ascii.append(Character(scalars[i]))
                i += 1
            }
            guard let count = digitPart(), count > 0 else { return nil }
        }
        guard i == scalars.count else { return nil }
        ascii = signPart + intPart + "." + fractionPart + ascii
        return Double(ascii)
    }
}
