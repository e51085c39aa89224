// A JSON reader that accepts what Python's `json.loads` accepts from a client.
//
// Requests come from any program that can open a DEALER socket, so the parser must be
// fast on large bodies and safe on hostile ones: it works on one contiguous byte buffer,
// keeps open containers on an explicit stack (no recursion, so a thread's stack size
// does not matter), caps nesting at `maximumDepth`, and reports every failure as a typed
// error instead of trapping.

internal import OrderedCollections

/// Why a body could not be parsed.
public struct JSONParseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public enum Kind: Hashable, Sendable {
        /// The input ended inside a value.
        case unexpectedEnd
        /// A byte that cannot start or continue a value here.
        case unexpectedByte(UInt8)
        /// A control character (below U+0020) inside a string; Python's strict mode rejects it.
        case controlCharacterInString
        /// A backslash escape that JSON does not define, or a malformed `\u` escape.
        case invalidEscape
        /// A string that is not valid UTF-8.
        case invalidUTF8
        /// A number that does not follow the JSON grammar.
        case invalidNumber
        /// An integer literal longer than 4300 digits: Python refuses to convert it
        /// (`sys.get_int_max_str_digits()`), so `json.loads` raises ValueError.
        case integerTooLong
        /// A value followed by more than whitespace.
        case trailingData
        /// Arrays and objects nested deeper than ``JSONParser/maximumDepth``. Python
        /// raises RecursionError (not ValueError) around depth 1000, so Circus answers
        /// nothing at all: see ``RequestDecoding/NoReplyReason/nestingTooDeep``.
        case nestingTooDeep
    }

    /// The kind of failure.
    public var kind: Kind
    /// Byte offset in the input where the failure was detected.
    public var offset: Int

    /// An error of `kind` detected at byte `offset`.
    public init(_ kind: Kind, at offset: Int) {
        self.kind = kind
        self.offset = offset
    }

    public var description: String { "invalid JSON at byte \(offset): \(kind)" }
}

/// Parses JSON text the way Python's `json.loads` does.
///
/// Accepted beyond RFC 8259, because Python accepts them: `NaN`, `Infinity` and
/// `-Infinity`; duplicate keys (the first position, the last value). Integers that do not
/// fit `Int64` become doubles. Lone UTF-16 surrogate escapes (`"\ud800"`), which Python
/// keeps but a Swift `String` cannot hold, become U+FFFD.
public enum JSONParser {
    /// The deepest nesting of arrays and objects accepted. Circus's own messages nest
    /// four levels at most; the cap bounds the memory a hostile body can pin and keeps
    /// the recursive consumers of a parsed value (writer, `repr`, deallocation) shallow.
    public static let maximumDepth = 512

    /// Python's `sys.get_int_max_str_digits()` default.
    static let maximumIntegerDigits = 4300

    /// Parses one JSON value from UTF-8 bytes.
    ///
    /// - Parameter bytes: UTF-8 JSON text; whitespace around the value is allowed
    ///   (space, tab, CR, LF, as in JSON and Python).
    /// - Returns: the value.
    /// - Throws: ``JSONParseError`` for any malformed input; never traps.
    public static func parse(_ bytes: some Collection<UInt8>) throws(JSONParseError) -> JSON {
        let result: Result<JSON, JSONParseError>? = bytes.withContiguousStorageIfAvailable { buffer in
            var parser = Parser(buffer)
            return Result { () throws(JSONParseError) -> JSON in try parser.parseDocument() }
        }
        if let result { return try result.get() }
        let copy = Array(bytes)
        return try copy.withUnsafeBufferPointer { (buffer) throws(JSONParseError) -> JSON in
            var parser = Parser(buffer)
            return try parser.parseDocument()
        }
    }

    /// Parses one JSON value from a string.
    public static func parse(_ text: String) throws(JSONParseError) -> JSON {
        try parse(Array(text.utf8))
    }
}

// ASCII bytes the parser looks at.
private enum Byte {
    static let quote: UInt8 = 0x22          // "
    static let backslash: UInt8 = 0x5C      // \
    static let slash: UInt8 = 0x2F          // /
    static let comma: UInt8 = 0x2C          // ,
    static let colon: UInt8 = 0x3A          // :
    static let openBracket: UInt8 = 0x5B    // [
    static let closeBracket: UInt8 = 0x5D   // ]
    static let openBrace: UInt8 = 0x7B      // {
    static let closeBrace: UInt8 = 0x7D     // }
    static let minus: UInt8 = 0x2D          // -
    static let plus: UInt8 = 0x2B           // +
    static let dot: UInt8 = 0x2E            // .
    static let zero: UInt8 = 0x30
    static let nine: UInt8 = 0x39
    static let lowerE: UInt8 = 0x65
    static let upperE: UInt8 = 0x45
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let lineFeed: UInt8 = 0x0A
    static let carriageReturn: UInt8 = 0x0D
}

private struct Parser {
    let input: UnsafeBufferPointer<UInt8>
    var position = 0
    /// Scratch space for strings with escapes, reused to avoid an allocation per string.
    var scratch: [UInt8] = []

    init(_ input: UnsafeBufferPointer<UInt8>) {
        self.input = input
    }

    func fail(_ kind: JSONParseError.Kind) -> JSONParseError {
        JSONParseError(kind, at: position)
    }

    /// What kind of container is open at each level, innermost last. An explicit
    /// stack instead of recursion keeps the machine stack flat whatever the nesting.
    enum Container {
        case array
        case object
    }

    mutating func parseDocument() throws(JSONParseError) -> JSON {
        // The open containers' contents live in separate stacks and are mutated in place
        // through their last element, so each one stays uniquely referenced (no copies).
        var containers: [Container] = []
        var arrays: [[JSON]] = []
        var objects: [JSONObject] = []
        var keys: [String] = []
        skipWhitespace()
        parsing: while true {
            var value: JSON
            // A value starts here: a scalar, or a container that may be empty.
            guard position < input.count else { throw fail(.unexpectedEnd) }
            switch input[position] {
            case Byte.openBracket:
                guard containers.count < JSONParser.maximumDepth else { throw fail(.nestingTooDeep) }
                position += 1
                skipWhitespace()
                if position < input.count, input[position] == Byte.closeBracket {
                    position += 1
                    value = .array([])
                } else {
                    containers.append(.array)
                    arrays.append([])
                    continue parsing
                }
            case Byte.openBrace:
                guard containers.count < JSONParser.maximumDepth else { throw fail(.nestingTooDeep) }
                position += 1
                skipWhitespace()
                if position < input.count, input[position] == Byte.closeBrace {
                    position += 1
                    value = .object([:])
                } else {
                    keys.append(try parseKey())
                    containers.append(.object)
                    objects.append([:])
                    continue parsing
                }
            default:
                value = try parseScalar()
            }
            // A value is complete: hand it to the enclosing containers, closing those
            // that end here, until one continues with a comma (or the document ends).
            while let container = containers.last {
                skipWhitespace()
                guard position < input.count else { throw fail(.unexpectedEnd) }
                let byte = input[position]
                switch container {
                case .array:
                    arrays[arrays.count - 1].append(value)
                    if byte == Byte.comma {
                        position += 1
                        skipWhitespace()
                        continue parsing
                    }
                    guard byte == Byte.closeBracket else { throw fail(.unexpectedByte(byte)) }
                    position += 1
                    value = .array(arrays.removeLast())
                case .object:
                    // Python: a repeated key keeps its first position and takes the last value.
                    objects[objects.count - 1][keys.removeLast()] = value
                    if byte == Byte.comma {
                        position += 1
                        skipWhitespace()
                        keys.append(try parseKey())
                        continue parsing
                    }
                    guard byte == Byte.closeBrace else { throw fail(.unexpectedByte(byte)) }
                    position += 1
                    value = .object(objects.removeLast())
                }
                containers.removeLast()
            }
            skipWhitespace()
            guard position == input.count else { throw fail(.trailingData) }
            return value
        }
    }

    /// Parses `"key"` and the colon after it, leaving the position at the value.
    mutating func parseKey() throws(JSONParseError) -> String {
        guard position < input.count else { throw fail(.unexpectedEnd) }
        guard input[position] == Byte.quote else { throw fail(.unexpectedByte(input[position])) }
        let key = try parseString()
        skipWhitespace()
        guard position < input.count else { throw fail(.unexpectedEnd) }
        guard input[position] == Byte.colon else { throw fail(.unexpectedByte(input[position])) }
        position += 1
        skipWhitespace()
        return key
    }

    mutating func skipWhitespace() {
        while position < input.count {
            switch input[position] {
            case Byte.space, Byte.tab, Byte.lineFeed, Byte.carriageReturn: position += 1
            default: return
            }
        }
    }

    /// Parses a value that is not an array or an object.
    mutating func parseScalar() throws(JSONParseError) -> JSON {
        guard position < input.count else { throw fail(.unexpectedEnd) }
        let byte = input[position]
        switch byte {
        case Byte.quote:
            return .string(try parseString())
        case Byte.minus:
            if matches("-Infinity") {
                position += 9
                return .double(-.infinity)
            }
            return try parseNumber()
        case Byte.zero...Byte.nine:
            return try parseNumber()
        case UInt8(ascii: "n"):
            try expect("null")
            return .null
        case UInt8(ascii: "t"):
            try expect("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expect("false")
            return .bool(false)
        case UInt8(ascii: "N"):
            try expect("NaN")
            return .double(.nan)
        case UInt8(ascii: "I"):
            try expect("Infinity")
            return .double(.infinity)
        default:
            throw fail(.unexpectedByte(byte))
        }
    }

    func matches(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard input.count - position >= count else { return false }
        let start = literal.utf8Start
        for i in 0..<count where input[position + i] != start[i] { return false }
        return true
    }

    mutating func expect(_ literal: StaticString) throws(JSONParseError) {
        guard matches(literal) else {
            // Point at the first byte that differs, or report the end of input.
            let start = literal.utf8Start
            for i in 0..<literal.utf8CodeUnitCount {
                guard position + i < input.count else {
                    position = input.count
                    throw fail(.unexpectedEnd)
                }
                if input[position + i] != start[i] {
                    position += i
                    throw fail(.unexpectedByte(input[position]))
                }
            }
            throw fail(.unexpectedEnd)
        }
        position += literal.utf8CodeUnitCount
    }

    /// Parses a string starting at the opening quote.
    mutating func parseString() throws(JSONParseError) -> String {
        position += 1  // opening quote
        let start = position
        // Fast path: no escapes, just validate UTF-8 once.
        while position < input.count {
            let byte = input[position]
            if byte == Byte.quote {
                let slice = UnsafeBufferPointer(rebasing: input[start..<position])
                guard let string = String(validating: slice, as: UTF8.self) else {
                    position = start
                    throw fail(.invalidUTF8)
                }
                position += 1
                return string
            }
            if byte == Byte.backslash { break }
            if byte < Byte.space { throw fail(.controlCharacterInString) }
            position += 1
        }
        guard position < input.count else { throw fail(.unexpectedEnd) }
        // Slow path: copy what was scanned, then decode escapes into the scratch buffer.
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(rebasing: input[start..<position]))
        while position < input.count {
            let byte = input[position]
            if byte == Byte.quote {
                position += 1
                guard let string = String(validating: scratch, as: UTF8.self) else {
                    position = start
                    throw fail(.invalidUTF8)
                }
                return string
            }
            if byte < Byte.space { throw fail(.controlCharacterInString) }
            if byte != Byte.backslash {
                // Copy the whole run up to the next quote, backslash or control byte.
                let runStart = position
                position += 1
                while position < input.count {
                    let next = input[position]
                    if next == Byte.quote || next == Byte.backslash || next < Byte.space { break }
                    position += 1
                }
                scratch.append(contentsOf: UnsafeBufferPointer(rebasing: input[runStart..<position]))
                continue
            }
            position += 1
            guard position < input.count else { throw fail(.unexpectedEnd) }
            let escape = input[position]
            position += 1
            switch escape {
            case Byte.quote, Byte.backslash, Byte.slash: scratch.append(escape)
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"):
                var unit = try parseHex4()
                if (0xD800...0xDBFF).contains(unit) {
                    // Python pairs a high surrogate with an immediately following
                    // `\uDC00`-`\uDFFF` escape; anything else leaves it alone.
                    if input.count - position >= 6, input[position] == Byte.backslash,
                        input[position + 1] == UInt8(ascii: "u")
                    {
                        let saved = position
                        position += 2
                        let low = try parseHex4()
                        if (0xDC00...0xDFFF).contains(low) {
                            unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            position = saved
                        }
                    }
                }
                appendScalar(unit)
            default:
                position -= 2
                throw fail(.invalidEscape)
            }
        }
        throw fail(.unexpectedEnd)
    }

    mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard input.count - position >= 4 else { throw fail(.invalidEscape) }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = input[position]
            let digit: UInt32
            switch byte {
            case Byte.zero...Byte.nine: digit = UInt32(byte - Byte.zero)
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw fail(.invalidEscape)
            }
            value = value << 4 | digit
            position += 1
        }
        return value
    }

    /// Appends the UTF-8 encoding of a code point; lone surrogates become U+FFFD.
    mutating func appendScalar(_ value: UInt32) {
        let scalar = Unicode.Scalar(value) ?? "\u{FFFD}"
        UTF8.encode(scalar) { scratch.append($0) }
    }

    /// Parses a number with Python's grammar: `-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?`.
    mutating func parseNumber() throws(JSONParseError) -> JSON {
        let start = position
        var negative = false
        if input[position] == Byte.minus {
            negative = true
            position += 1
        }
        let integerStart = position
        guard position < input.count else { throw fail(.unexpectedEnd) }
        guard isDigit(input[position]) else { throw fail(.invalidNumber) }
        if input[position] == Byte.zero {
            position += 1
        } else {
            while position < input.count, isDigit(input[position]) { position += 1 }
        }
        let integerEnd = position
        var isInteger = true
        if position < input.count, input[position] == Byte.dot,
            position + 1 < input.count, isDigit(input[position + 1])
        {
            isInteger = false
            position += 1
            while position < input.count, isDigit(input[position]) { position += 1 }
        }
        if position < input.count, input[position] == Byte.lowerE || input[position] == Byte.upperE {
            // Python's regex only takes the exponent when digits follow; otherwise the
            // number ends before the `e` and the `e` is trailing garbage.
            var probe = position + 1
            if probe < input.count, input[probe] == Byte.plus || input[probe] == Byte.minus { probe += 1 }
            if probe < input.count, isDigit(input[probe]) {
                isInteger = false
                position = probe
                while position < input.count, isDigit(input[position]) { position += 1 }
            }
        }
        if isInteger {
            let digits = integerEnd - integerStart
            guard digits <= JSONParser.maximumIntegerDigits else {
                position = start
                throw fail(.integerTooLong)
            }
            if let value = integerValue(integerStart..<integerEnd, negative: negative) {
                return .int(value)
            }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: input[start..<position]), as: UTF8.self)
        guard let value = Double(text) else {
            position = start
            throw fail(.invalidNumber)
        }
        return .double(value)
    }

    func isDigit(_ byte: UInt8) -> Bool { byte >= Byte.zero && byte <= Byte.nine }

    /// The integer in `range`, or nil when it does not fit `Int64`.
    func integerValue(_ range: Range<Int>, negative: Bool) -> Int64? {
        guard range.count <= 19 else { return nil }
        // Accumulate negatively so that Int64.min fits.
        var value: Int64 = 0
        for index in range {
            let digit = Int64(input[index] - Byte.zero)
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = shifted.subtractingReportingOverflow(digit)
            if overflow1 || overflow2 { return nil }
            value = next
        }
        if negative { return value }
        return value == .min ? nil : -value
    }
}
