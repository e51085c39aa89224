// A JSON writer that produces exactly what Python's `json.dumps` produces with its
// defaults, because replies and events must match Circus byte for byte: `", "` and `": "`
// separators, ASCII-only output with lower-case `\uXXXX` escapes (surrogate pairs above
// U+FFFF), `NaN`/`Infinity`/`-Infinity`, and floats in Python's `repr` form.

public import OrderedCollections

/// Serialises ``JSON`` values the way Python's `json.dumps(value)` does.
public enum JSONWriter {
    /// The UTF-8 (in fact pure ASCII) bytes of `json.dumps(value)`.
    public static func serialize(_ value: JSON) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(estimatedSize(value))
        write(value, into: &output)
        return output
    }

    /// `json.dumps(value)` as a string.
    public static func string(_ value: JSON) -> String {
        String(decoding: serialize(value), as: UTF8.self)
    }

    /// Appends `json.dumps(value)` to `output`.
    public static func write(_ value: JSON, into output: inout [UInt8]) {
        switch value {
        case .null:
            append("null", to: &output)
        case .bool(let b):
            append(b ? "true" : "false", to: &output)
        case .int(let i):
            appendInteger(i, to: &output)
        case .double(let d):
            output.append(contentsOf: PythonFloat.jsonText(d).utf8)
        case .string(let s):
            writeString(s, into: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            var first = true
            for element in elements {
                if !first { append(", ", to: &output) }
                first = false
                write(element, into: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let object):
            write(object, into: &output)
        }
    }

    /// Appends `json.dumps(object)` to `output`, keys in order.
    public static func write(_ object: JSONObject, into output: inout [UInt8]) {
        output.append(UInt8(ascii: "{"))
        var first = true
        for (key, member) in object {
            if !first { append(", ", to: &output) }
            first = false
            writeString(key, into: &output)
            append(": ", to: &output)
            write(member, into: &output)
        }
        output.append(UInt8(ascii: "}"))
    }

    /// Appends a JSON string literal with Python's `ensure_ascii=True` escaping.
    public static func writeString(_ string: String, into output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        var string = string
        string.withUTF8 { bytes in
            var index = 0
            while index < bytes.count {
                let byte = bytes[index]
                if byte < 0x80 {
                    appendEscapedASCII(byte, to: &output)
                    index += 1
                    continue
                }
                // Decode one scalar from valid UTF-8 (a String always holds valid UTF-8).
                let scalar: UInt32
                if byte < 0xE0 {
                    scalar = UInt32(byte & 0x1F) << 6 | UInt32(bytes[index + 1] & 0x3F)
                    index += 2
                } else if byte < 0xF0 {
                    scalar = UInt32(byte & 0x0F) << 12 | UInt32(bytes[index + 1] & 0x3F) << 6
                        | UInt32(bytes[index + 2] & 0x3F)
                    index += 3
                } else {
                    scalar = UInt32(byte & 0x07) << 18 | UInt32(bytes[index + 1] & 0x3F) << 12
                        | UInt32(bytes[index + 2] & 0x3F) << 6 | UInt32(bytes[index + 3] & 0x3F)
                    index += 4
                }
                if scalar > 0xFFFF {
                    let value = scalar - 0x10000
                    appendUnicodeEscape(UInt16(0xD800 + (value >> 10)), to: &output)
                    appendUnicodeEscape(UInt16(0xDC00 + (value & 0x3FF)), to: &output)
                } else {
                    appendUnicodeEscape(UInt16(scalar), to: &output)
                }
            }
        }
        output.append(UInt8(ascii: "\""))
    }

    // MARK: - Pieces

    private static func appendEscapedASCII(_ byte: UInt8, to output: inout [UInt8]) {
        switch byte {
        case UInt8(ascii: "\""): append("\\\"", to: &output)
        case UInt8(ascii: "\\"): append("\\\\", to: &output)
        case 0x0A: append("\\n", to: &output)
        case 0x0D: append("\\r", to: &output)
        case 0x09: append("\\t", to: &output)
        case 0x08: append("\\b", to: &output)
        case 0x0C: append("\\f", to: &output)
        case 0x20..<0x7F: output.append(byte)
        default: appendUnicodeEscape(UInt16(byte), to: &output)  // other controls and DEL
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private static func appendUnicodeEscape(_ unit: UInt16, to output: inout [UInt8]) {
        output.append(UInt8(ascii: "\\"))
        output.append(UInt8(ascii: "u"))
        output.append(hexDigits[Int(unit >> 12)])
        output.append(hexDigits[Int(unit >> 8 & 0xF)])
        output.append(hexDigits[Int(unit >> 4 & 0xF)])
        output.append(hexDigits[Int(unit & 0xF)])
    }

    private static func append(_ text: StaticString, to output: inout [UInt8]) {
        output.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    private static func appendInteger(_ value: Int64, to output: inout [UInt8]) {
        if value >= 0, value < 10 {
            output.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        output.append(contentsOf: String(value).utf8)
    }

    /// A cheap lower bound of the output size, to avoid most reallocations.
    private static func estimatedSize(_ value: JSON) -> Int {
        switch value {
        case .string(let s): return s.utf8.count + 2
        case .array(let a): return 2 + a.count * 4
        case .object(let o): return 2 + o.count * 16
        default: return 24
        }
    }
}
