// Python's notions of whitespace, word characters and `repr`, on Unicode scalars.
//
// Circus is Python: every parser it uses (configparser, int(), shlex, re) works on code
// points with Python's character classes. We work on `unicodeScalars` rather than Swift
// `Character`s so that "\r\n", combining marks and the like split exactly where Python
// splits them.

/// Character classes and text operations with Python 3.11 semantics (internal helpers).
package enum PythonText {
    /// Python `str.isspace()`: bidirectional class WS, B or S, or category Zs.
    ///
    /// This is also what `\s` matches in a `str` regular expression and what
    /// `str.strip()` / `str.split()` remove, so every "whitespace" in Circus means this.
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// What `\w` matches in a Python `str` pattern: `str.isalnum()` or `_`.
    static func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "_" { return true }
        if scalar.isASCII {
            let v = scalar.value
            return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A)
        }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .decimalNumber, .letterNumber, .otherNumber:
            return true
        default:
            return false
        }
    }

    /// The value of a Unicode decimal digit (`0`-`9`, `١`, ...), the only digits Python's
    /// `int()` and `float()` accept; nil for anything else.
    static func decimalDigitValue(_ scalar: Unicode.Scalar) -> Int? {
        if scalar.value >= 0x30 && scalar.value <= 0x39 { return Int(scalar.value - 0x30) }
        guard scalar.properties.numericType == .decimal, let value = scalar.properties.numericValue else {
            return nil
        }
        return Int(value)
    }

    /// Python `str.strip()`.
    static func strip(_ text: String) -> String {
        strip(Substring(text))
    }

    /// Python `str.strip()` on a slice.
    static func strip(_ text: Substring) -> String {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !isSpace($0) })!
        return String(scalars[first...last])
    }

    /// Python `str.lstrip()`.
    static func lstrip(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }) else { return "" }
        return String(scalars[first...])
    }

    /// Python `str.rstrip()`.
    static func rstrip(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard let last = scalars.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(scalars[...last])
    }

    /// Python `str.split()` with no separator: runs of whitespace separate, empty items dropped.
    static func splitWhitespace(_ text: String) -> [String] {
        var result: [String] = []
        var current = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if isSpace(scalar) {
                if !current.isEmpty {
                    result.append(String(current))
                    current = String.UnicodeScalarView()
                }
            } else {
                current.append(scalar)
            }
        }
        if !current.isEmpty { result.append(String(current)) }
        return result
    }

    /// Python `repr()` of a string, used so our messages quote values as Circus's do
    /// (`'maybe' is not a boolean`).
    package static func repr(_ text: String) -> String {
        let scalars = text.unicodeScalars
        let quote: Unicode.Scalar = scalars.contains("'") && !scalars.contains("\"") ? "\"" : "'"
        var out = String.UnicodeScalarView()
        out.append(quote)
        func hex(_ value: UInt32, width: Int) -> String {
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        for scalar in scalars {
            switch scalar {
            case quote, "\\":
                out.append("\\")
                out.append(scalar)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            default:
                let v = scalar.value
                if v < 0x20 || v == 0x7F {
                    out.append(contentsOf: ("\\x" + hex(v, width: 2)).unicodeScalars)
                } else if v < 0x7F || isPrintable(scalar) {
                    out.append(scalar)
                } else if v <= 0xFF {
                    out.append(contentsOf: ("\\x" + hex(v, width: 2)).unicodeScalars)
                } else if v <= 0xFFFF {
                    out.append(contentsOf: ("\\u" + hex(v, width: 4)).unicodeScalars)
                } else {
                    out.append(contentsOf: ("\\U" + hex(v, width: 8)).unicodeScalars)
                }
            }
        }
        out.append(quote)
        return String(out)
    }

    /// Python `str.isprintable()` for one non-ASCII code point.
    private static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator,
             .spaceSeparator:
            return false
        default:
            return true
        }
    }

    /// Compares two strings code point by code point, as Python's `<` on `str` does
    /// (Swift's `<` compares canonical equivalents equal, Python does not).
    package static func precedes(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
    }
}
