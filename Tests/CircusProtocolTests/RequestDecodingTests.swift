// Every outcome of `Request.decode`, following Circus's `handle_message` / `dispatch`.

import CircusProtocol
import OrderedCollections
import Testing

@Suite("Request decoding")
struct RequestDecodingTests {
    static func request(_ text: String) -> Request? {
        if case .request(let request) = Request.decode(Array(text.utf8)) { return request }
        return nil
    }

    @Test(
        "frames Circus answers nothing to",
        arguments: [
            ("", RequestDecoding.NoReplyReason.emptyBody),
            (" \t\r\n\u{b}\u{c} ", .emptyBody),
            (#"{"id":"a9"}"#, .missingCommand),
            (#"{"id":"a9","command":null}"#, .missingCommand),
            (#"{"id":"a9","command":5}"#, .commandNotAString),
            (#"{"id":"a9","command":true}"#, .commandNotAString),
            (#"{"id":"a9","command":["list"]}"#, .commandNotAString),
            (#"{"id":"a9","command":{"x":1}}"#, .commandNotAString),
            ("[1,2]", .notAnObject),
            (#""list""#, .notAnObject),
            ("null", .notAnObject),
            ("42", .notAnObject),
            (String(repeating: "[", count: 600) + String(repeating: "]", count: 600), .nestingTooDeep),
            (#"{"command":"list","properties":"# + String(repeating: "[", count: 600), .nestingTooDeep),
        ]
    )
    func noReply(body: String, reason: RequestDecoding.NoReplyReason) {
        #expect(Request.decode(Array(body.utf8)) == .noReply(reason))
    }

    @Test(
        "bodies answered with errno 1 json invalid",
        arguments: [
            "not json", "{", #"{"command":"list",}"#, "{'command':'list'}", #"{"command":"list"} x"#,
            "1" + String(repeating: "0", count: 4300), "\u{feff}\u{feff}{}",
        ]
    )
    func invalidJSON(body: String) {
        #expect(Request.decode(Array(body.utf8)) == .invalidJSON)
    }

    @Test("invalid UTF-8 is json invalid")
    func invalidUTF8() {
        #expect(Request.decode([0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]) == .invalidJSON)
        // Odd-length UTF-16 cannot be decoded either.
        #expect(Request.decode([0x7B, 0x00, 0x22]) == .invalidJSON)
    }

    @Test("the body is stripped of ASCII whitespace and kept as raw")
    func stripping() throws {
        let body = Array("\n\t {\"command\":\"list\"} \r\n\u{b}".utf8)
        guard case .request(let request) = Request.decode(body) else {
            Issue.record("did not decode")
            return
        }
        #expect(request.raw == Array(#"{"command":"list"}"#.utf8))
    }

    @Test("id, command case, properties, cast and waiting")
    func fields() throws {
        let r1 = try #require(Self.request(#"{"id":"a2","command":"LIST","properties":{"name":"SLEEPER"}}"#))
        #expect(r1.id == "a2")
        #expect(r1.command == "list")
        #expect(r1.commandAsSent == "LIST")
        #expect(r1.properties == ["name": "SLEEPER"])
        #expect(!r1.isCast)
        #expect(!r1.isWaiting)

        let r2 = try #require(Self.request(#"{"command":"list"}"#))
        #expect(r2.id == .null)
        #expect(r2.properties.isEmpty)

        // Any JSON value is a valid id and is echoed as is.
        let r3 = try #require(Self.request(#"{"id":[1,{"a":2.5}],"command":"list","msg_type":"cast"}"#))
        #expect(r3.id == [1, ["a": 2.5]])
        #expect(r3.isCast)

        // Only the exact string "cast" makes a cast.
        #expect(Self.request(#"{"command":"list","msg_type":"CAST"}"#)?.isCast == false)
        #expect(Self.request(#"{"command":"list","msg_type":"dealer"}"#)?.isCast == false)

        // waiting uses Python truthiness.
        #expect(Self.request(#"{"command":"stop","properties":{"waiting":true}}"#)?.isWaiting == true)
        #expect(Self.request(#"{"command":"stop","properties":{"waiting":1}}"#)?.isWaiting == true)
        #expect(Self.request(#"{"command":"stop","properties":{"waiting":"no"}}"#)?.isWaiting == true)
        #expect(Self.request(#"{"command":"stop","properties":{"waiting":0}}"#)?.isWaiting == false)
        #expect(Self.request(#"{"command":"stop","properties":{"waiting":null}}"#)?.isWaiting == false)
        #expect(Self.request(#"{"command":"stop","waiting":true}"#)?.isWaiting == false)

        // Duplicate keys: the last value wins, as in Python.
        #expect(Self.request(#"{"command":"nope","command":"list"}"#)?.command == "list")
    }

    @Test(
        "properties that are not an object",
        arguments: [#"null"#, #"[]"#, #""name""#, #"3"#, #"true"#]
    )
    func invalidProperties(value: String) throws {
        let text = #"{"id":"p1","command":"list","properties":"# + value + "}"
        guard case .invalidProperties(let request, let error) = Request.decode(Array(text.utf8)) else {
            Issue.record("expected invalidProperties")
            return
        }
        #expect(request.id == "p1")
        #expect(request.command == "list")
        #expect(request.properties.isEmpty)
        #expect(error.code == .commandError)
        #expect(error.reason == "command b'\(text)': 'properties' should be an object")
    }

    @Test("unknown command lookup and reason use the name as sent")
    func unknownCommand() throws {
        let request = try #require(Self.request(#"{"id":"a3","command":"Nope"}"#))
        #expect(CommandName(request: request.command) == nil)
        let reply = try #require(request.errorReply(.unknownCommand(request.commandAsSent), time: 1.5))
        #expect(
            String(decoding: reply, as: UTF8.self)
                == #"{"status": "error", "reason": "unknown command: 'Nope'", "tb": null, "time": 1.5, "errno": 2, "id": "a3"}"#
        )
        #expect(CommandName(request: "LIST") == .list)
        #expect(CommandName(request: "reloadConfig") == .reloadconfig)
        #expect(CommandName.allCases.count == 25)
    }

    @Test(
        "bytes are decoded as json.loads decodes them (BOM, UTF-16, UTF-32)",
        arguments: [
            [0xEF, 0xBB, 0xBF] + Array(#"{"command":"list"}"#.utf8),
            utf16(#"{"command":"list"}"#, bigEndian: false, bom: true),
            utf16(#"{"command":"list"}"#, bigEndian: true, bom: true),
            utf16(#"{"command":"list"}"#, bigEndian: false, bom: false),
            utf16(#"{"command":"list"}"#, bigEndian: true, bom: false),
            utf32(#"{"command":"list"}"#, bigEndian: false, bom: true),
            utf32(#"{"command":"list"}"#, bigEndian: true, bom: false),
            utf32(#"{"command":"list"}"#, bigEndian: false, bom: false),
        ] as [[UInt8]]
    )
    func encodings(body: [UInt8]) {
        guard case .request(let request) = Request.decode(body) else {
            Issue.record("did not decode")
            return
        }
        #expect(request.command == "list")
    }

    static func utf16(_ text: String, bigEndian: Bool, bom: Bool) -> [UInt8] {
        var bytes: [UInt8] = bom ? (bigEndian ? [0xFE, 0xFF] : [0xFF, 0xFE]) : []
        for unit in text.utf16 {
            let pair = [UInt8(unit >> 8), UInt8(unit & 0xFF)]
            bytes += bigEndian ? pair : pair.reversed()
        }
        return bytes
    }

    static func utf32(_ text: String, bigEndian: Bool, bom: Bool) -> [UInt8] {
        var bytes: [UInt8] = bom ? (bigEndian ? [0, 0, 0xFE, 0xFF] : [0xFF, 0xFE, 0, 0]) : []
        for scalar in text.unicodeScalars {
            let v = scalar.value
            let quad = [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)]
            bytes += bigEndian ? quad : quad.reversed()
        }
        return bytes
    }

    @Test("required properties per command, in Circus's order")
    func requiredProperties() {
        #expect(CommandName.add.requiredProperties == ["name", "cmd"])
        #expect(CommandName.get.requiredProperties == ["name", "keys"])
        #expect(CommandName.set.requiredProperties == ["name", "options"])
        #expect(CommandName.signal.requiredProperties == ["name", "signum"])
        #expect(CommandName.list.requiredProperties.isEmpty)
        #expect(throws: CommandError.missingProperty("name")) { try CommandName.get.checkRequiredProperties([:]) }
        // A null value counts as present, as `'name' in props` does.
        #expect(throws: Never.self) { try CommandName.rm.checkRequiredProperties(["name": nil]) }
    }
}
