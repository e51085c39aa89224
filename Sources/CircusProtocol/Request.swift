// Decoding of a control request (a JSON object with `id`, `command`, `properties`), reproducing what Circus's
// `Controller.handle_message` / `dispatch` do with a frame, including the cases in which
// it answers nothing at all: a client that sends those waits for its timeout, with
// Circus and with us.

internal import CircusConfig
public import OrderedCollections

/// A decoded control request.
public struct Request: Hashable, Sendable {
    /// The `id` member, echoed in the reply; `.null` when absent.
    public var id: JSON
    /// The command name lower-cased (Python `str.lower()`), ready for lookup: Circus
    /// matches commands case-insensitively (`"LIST"` works).
    public var command: String
    /// The command name as sent, for the `unknown command: '<name>'` reason.
    public var commandAsSent: String
    /// The `properties` member; empty when absent.
    public var properties: JSONObject
    /// True when `msg_type` is exactly `"cast"`: the command runs but nothing is ever
    /// answered, not even an error.
    public var isCast: Bool
    /// The request body after whitespace stripping, as Circus quotes it in errno 5
    /// reasons (``CommandError/unexpected(rawRequest:_:)``).
    public var raw: [UInt8]

    public init(
        id: JSON = .null,
        command: String,
        properties: JSONObject = [:],
        isCast: Bool = false,
        raw: [UInt8] = []
    ) {
        self.id = id
        self.command = PythonText.lower(command)
        self.commandAsSent = command
        self.properties = properties
        self.isCast = isCast
        self.raw = raw
    }

    /// `properties.waiting` with Python truthiness, as Circus reads it: an asynchronous
    /// command answers at once without payload unless this is true.
    public var isWaiting: Bool {
        properties["waiting"]?.isTruthy ?? false
    }

    /// The error reply for this request, or nil when it is a cast (casts are never answered).
    public func errorReply(_ error: CommandError, time: Double) -> [UInt8]? {
        isCast ? nil : Reply.error(id: id, time: time, error: error)
    }

    /// The success reply for this request, or nil when it is a cast.
    public func okReply(_ payload: JSONObject = [:], time: Double) -> [UInt8]? {
        isCast ? nil : Reply.ok(id: id, time: time, payload: payload)
    }
}

/// What to do with one request frame.
public enum RequestDecoding: Hashable, Sendable {
    /// A well-formed request: look the command up (``CommandName/init(request:)``;
    /// unknown -> errno 2 ``CommandError/unknownCommand(_:)``), then run it. Replies go
    /// through ``Request/errorReply(_:time:)`` / ``Request/okReply(_:time:)`` so that
    /// casts stay silent.
    case request(Request)

    /// The body is not JSON, not UTF-8 (nor UTF-16/32 with Python's detection), or has an
    /// integer literal over 4300 digits. Answer errno 1 `json invalid` with `id` null:
    /// `Reply.error(id: .null, time: now, error: .invalidJSON)`. Always answered (the
    /// `cast` marker cannot be read from a body that does not parse).
    case invalidJSON

    /// `properties` is present but is not an object (`null`, a list, a string...). The
    /// request's `properties` is empty. Answer in Circus's order: a cast gets nothing;
    /// an unknown command gets errno 2; otherwise this error.
    ///
    /// Circus has no check here: the value reaches the command, which mostly fails with
    /// a Python exception (errno 5, e.g. `'list' object has no attribute 'get'`), though
    /// a command with required properties may first answer errno 3 `message invalid
    /// ... is missing` and `numwatchers` ignores its properties. We answer every such
    /// request the same way, with errno 5 shaped like Circus's exception replies:
    /// `command b'<raw>': 'properties' should be an object`.
    case invalidProperties(Request, CommandError)

    /// Circus sends nothing back; the client times out.
    case noReply(NoReplyReason)

    /// Why a frame gets no answer.
    public enum NoReplyReason: Hashable, Sendable {
        /// Empty or whitespace-only body (Circus fails internally on `"error: empty command"`).
        case emptyBody
        /// Valid JSON that is not an object (`[1,2]`, `"list"`, `null`): `.get` fails
        /// outside Circus's error handling.
        case notAnObject
        /// An object without `command`, or with `"command": null`.
        case missingCommand
        /// `command` is not a string (`5`, `true`, `["list"]`): `.lower()` fails, as above.
        case commandNotAString
        /// Arrays/objects nested deeper than ``JSONParser/maximumDepth``: Python raises
        /// RecursionError, which Circus does not catch, so no reply (Python's limit is
        /// about 1000 levels; ours is lower).
        case nestingTooDeep
    }
}

extension Request {
    /// Decodes one request frame the way Circus 0.19 does.
    ///
    /// Steps: strip ASCII whitespace (Python `bytes.strip()`); an empty body gets no
    /// reply. Decode the bytes as `json.loads` does (UTF-8, a UTF-8 BOM skipped, UTF-16 or
    /// UTF-32 detected from a BOM or NUL bytes) and parse; failure is `invalidJSON`.
    /// A non-object, or a `command` that is missing, null or not a string gets no reply.
    /// `id` defaults to null, `properties` to `{}`; `msg_type == "cast"` marks a cast.
    ///
    /// - Parameter body: the request frame.
    /// - Returns: what to do with it; see ``RequestDecoding`` for each case's reply.
    public static func decode(_ body: some Collection<UInt8>) -> RequestDecoding {
        let raw = stripASCIIWhitespace(body)
        guard !raw.isEmpty else { return .noReply(.emptyBody) }
        guard let text = PythonJSONBytes.utf8(raw) else { return .invalidJSON }
        let json: JSON
        do {
            json = try JSONParser.parse(text)
        } catch {
            return error.kind == .nestingTooDeep ? .noReply(.nestingTooDeep) : .invalidJSON
        }
        guard case .object(let message) = json else { return .noReply(.notAnObject) }
        let command: String
        switch message["command"] {
        case nil, .null?: return .noReply(.missingCommand)
        case .string(let name)?: command = name
        default: return .noReply(.commandNotAString)
        }
        let isCast = message["msg_type"] == .string("cast")
        var request = Request(id: message["id"] ?? .null, command: command, isCast: isCast, raw: raw)
        switch message["properties"] {
        case nil:
            break
        case .object(let properties)?:
            request.properties = properties
        default:
            return .invalidProperties(request, .unexpected(rawRequest: raw, "'properties' should be an object"))
        }
        return .request(request)
    }

    /// Python's `bytes.strip()`: space, tab, LF, CR, VT and FF at both ends.
    static func stripASCIIWhitespace(_ body: some Collection<UInt8>) -> [UInt8] {
        let bytes = Array(body)
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || (0x09...0x0D).contains($0) }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }) else { return [] }
        let last = bytes.lastIndex(where: { !isSpace($0) }) ?? first
        if first == 0, last == bytes.count - 1 { return bytes }
        return Array(bytes[first...last])
    }
}

/// Python's `json.loads(bytes)` decoding step (`json.detect_encoding`).
enum PythonJSONBytes {
    /// The body as UTF-8 JSON text, or nil when it cannot be decoded.
    ///
    /// UTF-8 stays as is (validated later, by the parser) and loses a leading BOM;
    /// UTF-16/32 are transcoded. Python's `surrogatepass` lets lone surrogates through,
    /// which a Swift string cannot hold: those bodies are refused here.
    static func utf8(_ bytes: [UInt8]) -> [UInt8]? {
        let b = bytes
        if b.starts(with: [0x00, 0x00, 0xFE, 0xFF]) { return decodeUTF32(b.dropFirst(4), bigEndian: true) }
        if b.starts(with: [0xFF, 0xFE, 0x00, 0x00]) { return decodeUTF32(b.dropFirst(4), bigEndian: false) }
        if b.starts(with: [0xFE, 0xFF]) { return decodeUTF16(b.dropFirst(2), bigEndian: true) }
        if b.starts(with: [0xFF, 0xFE]) { return decodeUTF16(b.dropFirst(2), bigEndian: false) }
        if b.starts(with: [0xEF, 0xBB, 0xBF]) { return Array(b.dropFirst(3)) }
        if b.count >= 4 {
            // 00 00 -- -- is UTF-32-BE, 00 XX -- -- UTF-16-BE.
            if b[0] == 0 {
                return b[1] != 0 ? decodeUTF16(b[...], bigEndian: true) : decodeUTF32(b[...], bigEndian: true)
            }
            // XX 00 00 00 is UTF-32-LE, XX 00 XX -- or XX 00 00 XX UTF-16-LE.
            if b[1] == 0 {
                let isUTF16 = b[2] != 0 || b[3] != 0
                return isUTF16 ? decodeUTF16(b[...], bigEndian: false) : decodeUTF32(b[...], bigEndian: false)
            }
        } else if b.count == 2 {
            if b[0] == 0 { return decodeUTF16(b[...], bigEndian: true) }
            if b[1] == 0 { return decodeUTF16(b[...], bigEndian: false) }
        }
        return b
    }

    private static func decodeUTF16(_ bytes: ArraySlice<UInt8>, bigEndian: Bool) -> [UInt8]? {
        guard bytes.count % 2 == 0 else { return nil }
        var units: [UInt16] = []
        units.reserveCapacity(bytes.count / 2)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let a = UInt16(bytes[index]), b = UInt16(bytes[index + 1])
            units.append(bigEndian ? a << 8 | b : b << 8 | a)
            index += 2
        }
        var output: [UInt8] = []
        let failed = transcode(units.makeIterator(), from: UTF16.self, to: UTF8.self, stoppingOnError: true) {
            output.append($0)
        }
        return failed ? nil : output
    }

    private static func decodeUTF32(_ bytes: ArraySlice<UInt8>, bigEndian: Bool) -> [UInt8]? {
        guard bytes.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            var value: UInt32 = 0
            for offset in 0..<4 {
                let byte = UInt32(bytes[index + (bigEndian ? offset : 3 - offset)])
                value = value << 8 | byte
            }
            guard let scalar = Unicode.Scalar(value) else { return nil }
            UTF8.encode(scalar) { output.append($0) }
            index += 4
        }
        return output
    }
}
