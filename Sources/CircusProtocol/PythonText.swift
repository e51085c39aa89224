// Python's text conventions, reproduced because Circus puts them on the wire: float
// `repr` in every JSON number, `%r` (repr) quoting in error reasons (`unknown command:
// 'x'`, `Unknown hook {'bogus': 'x'}`), `str.lower()` in event topics, `round()` and
// `'%.2f'` in process statistics.

internal import OrderedCollections
package import CircusConfig

/// Python's formatting of floats.
public enum PythonFloat {
    /// `repr(x)`: the shortest digits that round-trip, in fixed notation when
    /// `1e-4 <= |x| < 1e16` (always with a fractional part: `30.0`) and in scientific
    /// notation otherwise, with a signed exponent of at least two digits (`1e-05`,
    /// `1e+16`, `1.2345678901234568e+29`); `nan`, `inf`, `-inf`.
    public static func repr(_ x: Double) -> String {
        if x.isNaN { return "nan" }
        if x.isInfinite { return x < 0 ? "-inf" : "inf" }
        return finiteRepr(x)
    }

    /// How `json.dumps` writes a float: `repr` for finite values, `NaN`, `Infinity`,
    /// `-Infinity` otherwise.
    public static func jsonText(_ x: Double) -> String {
        if x.isNaN { return "NaN" }
        if x.isInfinite { return x < 0 ? "-Infinity" : "Infinity" }
        return finiteRepr(x)
    }

    private static func finiteRepr(_ x: Double) -> String {
        if x == 0 { return x.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description already holds the shortest round-trip digits (the same
        // digits as Python's repr); only the layout differs, so take the digits and
        // the decimal exponent from it and lay them out the Python way.
        let (digits, pointPosition) = shortestDigits(x.magnitude)
        var result = x.sign == .minus ? "-" : ""
        let count = digits.count
        if pointPosition > -4, pointPosition <= 16 {
            if pointPosition <= 0 {
                result += "0." + String(repeating: "0", count: -pointPosition) + String(decoding: digits, as: UTF8.self)
            } else if pointPosition >= count {
                result += String(decoding: digits, as: UTF8.self)
                result += String(repeating: "0", count: pointPosition - count) + ".0"
            } else {
                result += String(decoding: digits[..<pointPosition], as: UTF8.self) + "."
                result += String(decoding: digits[pointPosition...], as: UTF8.self)
            }
        } else {
            result += String(decoding: digits[..<1], as: UTF8.self)
            if count > 1 { result += "." + String(decoding: digits[1...], as: UTF8.self) }
            let exponent = pointPosition - 1
            result += exponent < 0 ? "e-" : "e+"
            let magnitude = exponent.magnitude
            result += magnitude < 10 ? "0\(magnitude)" : "\(magnitude)"
        }
        return result
    }

    /// The significant digits of a positive finite `x` (no leading or trailing zeros)
    /// and the position of the decimal point: `x = 0.d1d2d3... * 10^pointPosition`.
    private static func shortestDigits(_ x: Double) -> (digits: [UInt8], pointPosition: Int) {
        let text = x.description.utf8
        var digits: [UInt8] = []
        digits.reserveCapacity(17)
        var integerDigits = 0
        var seenPoint = false
        var exponent = 0
        var iterator = text.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: ".") {
                seenPoint = true
            } else if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
                var negative = false
                var value = 0
                while let e = iterator.next() {
                    if e == UInt8(ascii: "-") {
                        negative = true
                    } else if e >= UInt8(ascii: "0"), e <= UInt8(ascii: "9") {
                        value = value * 10 + Int(e - UInt8(ascii: "0"))
                    }
                }
                exponent = negative ? -value : value
            } else if byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                digits.append(byte)
                if !seenPoint { integerDigits += 1 }
            }
        }
        var pointPosition = integerDigits + exponent
        var leading = 0
        while leading < digits.count - 1, digits[leading] == UInt8(ascii: "0") {
            leading += 1
            pointPosition -= 1
        }
        var end = digits.count
        while end > leading + 1, digits[end - 1] == UInt8(ascii: "0") { end -= 1 }
        return (Array(digits[leading..<end]), pointPosition)
    }

    /// Python's `round(x, digits)` for `0 <= digits <= 15`: rounds the exact binary
    /// value half-to-even at that decimal place, then returns the nearest double.
    /// Circus rounds `mem` with it (`round(memory_percent, 3)`).
    public static func round(_ x: Double, digits: Int) -> Double {
        precondition((0...15).contains(digits), "PythonFloat.round supports 0...15 digits")
        guard x.isFinite, x != 0 else { return x }
        guard let (quotient, scale) = scaledRounded(x.magnitude, digits: digits) else { return x }
        let magnitude = Double(quotient) / scale
        return x.sign == .minus ? -magnitude : magnitude
    }

    /// Python's `'%.<digits>f' % x` for `0 <= digits <= 15`, correctly rounded (half to
    /// even on the exact binary value). Exact for `|x| < 2^64`; above that only the first
    /// 17 significant digits are exact.
    public static func fixed(_ x: Double, digits: Int) -> String {
        precondition((0...15).contains(digits), "PythonFloat.fixed supports 0...15 digits")
        if x.isNaN { return "nan" }
        if x.isInfinite { return x < 0 ? "-inf" : "inf" }
        guard let (quotient, _) = scaledRounded(x.magnitude, digits: digits) else {
            // Beyond 2^64 the value is an integer; its shortest digits padded with zeros
            // differ from Python's exact expansion after the 17th digit, far beyond any
            // value a Circus statistic can reach.
            let (shortest, pointPosition) = shortestDigits(x.magnitude)
            return (x.sign == .minus ? "-" : "") + String(decoding: shortest, as: UTF8.self)
                + String(repeating: "0", count: max(0, pointPosition - shortest.count))
                + (digits > 0 ? "." + String(repeating: "0", count: digits) : "")
        }
        var text = String(quotient)
        if digits > 0 {
            if text.count <= digits { text = String(repeating: "0", count: digits + 1 - text.count) + text }
            text.insert(".", at: text.index(text.endIndex, offsetBy: -digits))
        }
        return (x.sign == .minus ? "-" : "") + text
    }

    /// `x * 10^digits` rounded half to even on the exact value, with `10^digits` as a
    /// double; nil when `x >= 2^64` (then `x` is an integer and needs no rounding).
    private static func scaledRounded(_ x: Double, digits: Int) -> (UInt128, Double)? {
        var power: UInt128 = 1
        for _ in 0..<digits { power *= 10 }
        let scale = Double(power)
        if x >= 0x1p64 { return nil }
        // x = significand * 2^exponent with an integral 53-bit significand.
        let significand = UInt128(x.significandBitPattern | (x.isNormal ? 1 << 52 : 0))
        let exponent = Int(x.isNormal ? x.exponent : Double.leastNormalMagnitude.exponent) - 52
        let numerator = significand * power
        if exponent >= 0 {
            return (numerator << UInt128(exponent), scale)
        }
        let shift = -exponent
        if shift >= 127 {
            // numerator < 2^103 < half of 2^shift: rounds to zero.
            return (0, scale)
        }
        let quotient = numerator >> UInt128(shift)
        let remainder = numerator & ((1 << UInt128(shift)) - 1)
        let half: UInt128 = 1 << UInt128(shift - 1)
        if remainder > half || (remainder == half && quotient & 1 == 1) {
            return (quotient + 1, scale)
        }
        return (quotient, scale)
    }
}

/// Python's `repr` of bytes and JSON values, `str` and `str.lower`, for the values
/// Circus puts in its messages (`repr` of a `str` lives in CircusConfig, which quotes
/// values the same way in configuration errors).
extension PythonText {
    /// `repr(b)` of a Python `bytes` (`b'...'`), as Circus prints a raw request in the
    /// reason of an unexpected error (`command b'{"id":...}': ...`).
    package static func bytesRepr(_ bytes: some Sequence<UInt8>) -> String {
        let array = Array(bytes)
        let quote: UInt8 = array.contains(UInt8(ascii: "'")) && !array.contains(UInt8(ascii: "\""))
            ? UInt8(ascii: "\"") : UInt8(ascii: "'")
        var result: [UInt8] = [UInt8(ascii: "b"), quote]
        result.reserveCapacity(array.count + 3)
        for byte in array {
            switch byte {
            case quote, UInt8(ascii: "\\"): result += [UInt8(ascii: "\\"), byte]
            case 0x09: result += Array("\\t".utf8)
            case 0x0A: result += Array("\\n".utf8)
            case 0x0D: result += Array("\\r".utf8)
            case 0x20..<0x7F: result.append(byte)
            default: result += Array(hexEscape(UInt32(byte), prefix: "x", width: 2).utf8)
            }
        }
        result.append(quote)
        return String(decoding: result, as: UTF8.self)
    }

    /// `repr(value)` of the Python object `json.loads` makes of `value`: `None`, `True`,
    /// `False`, ints, float reprs (`nan`, `inf`), string reprs, `[a, b]`, `{'k': v}`.
    package static func repr(_ value: JSON) -> String {
        var output = ""
        appendRepr(value, to: &output)
        return output
    }

    /// `str(value)` (what `%s` prints): strings as themselves, anything else as `repr`.
    package static func str(_ value: JSON) -> String {
        if case .string(let s) = value { return s }
        return repr(value)
    }

    private static func appendRepr(_ value: JSON, to output: inout String) {
        switch value {
        case .null: output += "None"
        case .bool(let b): output += b ? "True" : "False"
        case .int(let i): output += String(i)
        case .double(let d): output += PythonFloat.repr(d)
        case .string(let s): output += repr(s)
        case .array(let elements):
            output += "["
            for (index, element) in elements.enumerated() {
                if index > 0 { output += ", " }
                appendRepr(element, to: &output)
            }
            output += "]"
        case .object(let object):
            output += "{"
            for (index, (key, member)) in object.enumerated() {
                if index > 0 { output += ", " }
                output += repr(key)
                output += ": "
                appendRepr(member, to: &output)
            }
            output += "}"
        }
    }

    /// Python's `str.lower()`: the full Unicode lower-case mapping of every character,
    /// plus the one context rule Swift's `lowercased()` lacks: a capital sigma at the
    /// end of a word becomes final sigma (`ΟΔΟΣ` -> `οδος`).
    package static func lower(_ s: String) -> String {
        guard s.unicodeScalars.contains("\u{03A3}") else { return s.lowercased() }
        let scalars = Array(s.unicodeScalars)
        var result = String.UnicodeScalarView()
        for (index, scalar) in scalars.enumerated() {
            if scalar == "\u{03A3}", isFinalSigma(scalars, at: index) {
                result.append("\u{03C2}")
            } else {
                result.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return String(result)
    }

    /// Unicode's Final_Sigma condition: preceded by a cased letter and not followed by
    /// one, skipping case-ignorable characters both ways.
    private static func isFinalSigma(_ scalars: [Unicode.Scalar], at index: Int) -> Bool {
        var before = index - 1
        while before >= 0, scalars[before].properties.isCaseIgnorable { before -= 1 }
        guard before >= 0, scalars[before].properties.isCased else { return false }
        var after = index + 1
        while after < scalars.count, scalars[after].properties.isCaseIgnorable { after += 1 }
        return after == scalars.count || !scalars[after].properties.isCased
    }

    private static func hexEscape(_ value: UInt32, prefix: String, width: Int) -> String {
        let hex = String(value, radix: 16)
        return "\\" + prefix + String(repeating: "0", count: max(0, width - hex.count)) + hex
    }

    /// Python's `int(text)` for base-10 text: optional surrounding whitespace, an
    /// optional sign, ASCII digits with single underscores between them. Nil where
    /// Python raises, or when the value does not fit `Int64`.
    package static func parseInt(_ text: String) -> Int64? {
        var scalars = Substring(text).unicodeScalars[...]
        let isSpace: (Unicode.Scalar) -> Bool = {
            $0.properties.isWhitespace || (0x1C...0x1F).contains($0.value)
        }
        while let first = scalars.first, isSpace(first) { scalars.removeFirst() }
        while let last = scalars.last, isSpace(last) { scalars.removeLast() }
        var negative = false
        if let first = scalars.first, first == "+" || first == "-" {
            negative = first == "-"
            scalars.removeFirst()
        }
        guard let first = scalars.first, first.isASCIIDigit,
            let last = scalars.last, last != "_"
        else { return nil }
        var value: Int64 = 0
        var previousUnderscore = false
        for scalar in scalars {
            if scalar == "_" {
                if previousUnderscore { return nil }
                previousUnderscore = true
                continue
            }
            previousUnderscore = false
            guard scalar.isASCIIDigit else { return nil }
            let digit = Int64(scalar.value - 0x30)
            let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = shifted.subtractingReportingOverflow(digit)
            if o1 || o2 { return nil }
            value = next
        }
        if negative { return value }
        return value == .min ? nil : -value
    }
}

extension Unicode.Scalar {
    fileprivate var isASCIIDigit: Bool { value >= 0x30 && value <= 0x39 }
}
