// The JSON value every message of the control protocol and the pub/sub feed is made of.
//
// Objects keep their key order because Circus's replies and events are Python dicts
// serialised in insertion order, and clients (circusctl, scripts diffing `--json` output)
// see that order. Python keeps the position of the first occurrence of a duplicated key
// and the value of the last one; `OrderedDictionary` assignment does the same.

internal import CircusConfig
public import OrderedCollections

/// A JSON object whose keys keep their insertion order, as Python dicts do.
public typealias JSONObject = OrderedDictionary<String, JSON>

/// A JSON value as Circus's Python side sees it.
///
/// Integers and floats are distinct cases because Python serialises `30` and `30.0`
/// differently and clients can tell them apart. Integers beyond `Int64` are parsed as
/// doubles (Python would keep them exact; no Circus client sends such numbers).
public enum JSON: Hashable, Sendable {
    /// `null` (Python `None`).
    case null
    /// `true` / `false`.
    case bool(Bool)
    /// An integer literal that fits `Int64`.
    case int(Int64)
    /// A number with a fraction or exponent, a too-large integer, `NaN` or `Infinity`.
    case double(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([JSON])
    /// An object, keys in order.
    case object(JSONObject)
}

extension JSON {
    /// True for `.null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The string, if this is a string.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The boolean, if this is a boolean (no truthiness: see ``isTruthy``).
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The integer, if this is an integer (a double is not converted, even when integral).
    public var intValue: Int64? {
        if case .int(let i) = self { return i }
        return nil
    }

    /// The number as a double, if this is an integer or a double.
    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// The elements, if this is an array.
    public var arrayValue: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// The members, if this is an object.
    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// The member named `key` when this is an object; nil otherwise or when absent.
    public subscript(key: String) -> JSON? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    /// Python truthiness (`bool(value)`), which Circus uses for flags such as `waiting`,
    /// `start` or `extended`: `1`, `"no"` and `[0]` are true; `0`, `""`, `[]`, `{}` and
    /// `null` are false. NaN is true, as in Python.
    public var isTruthy: Bool {
        switch self {
        case .null: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0 || d.isNaN
        case .string(let s): return !s.isEmpty
        case .array(let a): return !a.isEmpty
        case .object(let o): return !o.isEmpty
        }
    }

    /// What Python's `int(value)` gives, or nil where it raises.
    ///
    /// Circus converts some properties this way (`kill`'s `pid`, `to_signum`): integers
    /// and booleans as themselves, finite doubles truncated toward zero, strings holding
    /// a decimal integer (surrounding whitespace, a sign and single underscores between
    /// digits allowed). Values outside `Int64` give nil.
    public var pythonInt: Int64? {
        switch self {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        case .double(let d):
            // Int64(_:) truncates toward zero, as int() does (and needs no libm).
            guard d.isFinite, d >= -0x1p63, d < 0x1p63 else { return nil }
            return Int64(d)
        case .string(let s): return PythonText.parseInt(s)
        case .null, .array, .object: return nil
        }
    }
}

extension JSON: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}

extension JSON: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSON: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) { self = .int(value) }
}

extension JSON: ExpressibleByFloatLiteral {
    public init(floatLiteral value: Double) { self = .double(value) }
}

extension JSON: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

extension JSON: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
}

extension JSON: ExpressibleByDictionaryLiteral {
    /// Builds an object; with a repeated key the first position and the last value win.
    public init(dictionaryLiteral elements: (String, JSON)...) {
        var object = JSONObject()
        object.reserveCapacity(elements.count)
        for (key, value) in elements { object[key] = value }
        self = .object(object)
    }
}

extension JSON: CustomStringConvertible {
    /// The value as Python's `json.dumps` writes it.
    public var description: String { JSONWriter.string(self) }
}
