// Expected outputs are Python's `json.dumps(json.loads(input))`, except where a comment
// names one of our documented deviations (Int64 range, lone surrogates, depth cap).

import CircusProtocol
import OrderedCollections
import Testing

@Suite("JSONParser accepts what Python json.loads accepts")
struct JSONParserTests {
    @Test(
        "valid documents round-trip as Python would re-serialise them",
        arguments: [
            (#"{"id":"a1","command":"list"}"#, #"{"id": "a1", "command": "list"}"#),
            ("  \t\r\n[ 1 , 2 ]\n ", "[1, 2]"),
            ("NaN", "NaN"),
            ("Infinity", "Infinity"),
            ("-Infinity", "-Infinity"),
            ("[NaN, -Infinity]", "[NaN, -Infinity]"),
            ("-0", "0"),
            ("-0.0", "-0.0"),
            ("1E+2", "100.0"),
            ("1.5e3", "1500.0"),
            ("123.456e-2", "1.23456"),
            ("1e400", "Infinity"),
            ("-1e400", "-Infinity"),
            ("9223372036854775807", "9223372036854775807"),
            ("-9223372036854775808", "-9223372036854775808"),
            // Beyond Int64 we keep a double (Python keeps an exact int): deviation.
            ("9223372036854775808", "9.223372036854776e+18"),
            (#"{"a":1,"a":2,"b":3}"#, #"{"a": 2, "b": 3}"#),
            (#"{"b":1,"a":2,"b":3}"#, #"{"b": 3, "a": 2}"#),
            (#""\u00e9\ud83d\ude00\/\b\f\n\r\t\"\\""#, #""\u00e9\ud83d\ude00/\b\f\n\r\t\"\\""#),
            (#""\u0041\uDBFF\uDFFF""#, #""A\udbff\udfff""#),
            // A lone surrogate escape cannot live in a Swift String: U+FFFD (deviation).
            (#""\ud800x""#, #""\ufffdx""#),
            ("\"é😀\"", #""\u00e9\ud83d\ude00""#),
            ("\"\u{7f}\"", #""\u007f""#),
            ("[]", "[]"),
            ("{ }", "{}"),
            ("true", "true"),
            ("null", "null"),
        ]
    )
    func valid(input: String, expected: String) throws {
        let value = try JSONParser.parse(Array(input.utf8))
        #expect(JSONWriter.string(value) == expected)
    }

    @Test(
        "invalid documents fail like json.loads raises ValueError",
        arguments: [
            "", " ", "01", "1.", "1.e5", "1e", "-", "--1", "+1", ".5", "[1,]", #"{"a":1,}"#, #"{"a" 1}"#,
            "{a:1}", "{'a':1}", "\"\u{1}\"", "\"\n\"", "[1]x", "nul", "NaNx", "-NaN", "Infinityy", #""\x""#,
            #""\u12""#, #""\u12G4""#, "\"abc", "[1", #"{"a":"#, "\u{feff}{}", "[1 2]", "tru", "1 2",
        ]
    )
    func invalid(input: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(input.utf8)) }
    }

    @Test(
        "invalid UTF-8 inside a string is refused",
        arguments: [[0xFF], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC3]] as [[UInt8]]
    )
    func invalidUTF8(bytes: [UInt8]) {
        let document: [UInt8] = [0x22] + bytes + [0x22]
        #expect(throws: JSONParseError.self) { try JSONParser.parse(document) }
    }

    @Test("integers longer than 4300 digits are refused, as Python's int() refuses them")
    func integerDigitLimit() throws {
        let limit = String(repeating: "1", count: 4300)
        #expect(try JSONParser.parse(Array(limit.utf8)) == .double(Double(limit)!))
        let tooLong = String(repeating: "1", count: 4301)
        #expect(throws: JSONParseError(.integerTooLong, at: 0)) { try JSONParser.parse(Array(tooLong.utf8)) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(("-" + tooLong).utf8)) }
        // With a fraction it is a float: no limit.
        #expect(try JSONParser.parse(Array((tooLong + ".0").utf8)) == .double(.infinity))
    }

    @Test("integers and doubles stay distinct")
    func numberKinds() throws {
        #expect(try JSONParser.parse("3") == .int(3))
        #expect(try JSONParser.parse("3.0") == .double(3))
        #expect(try JSONParser.parse("-12") == .int(-12))
    }

    @Test("nesting up to the cap parses; deeper nesting fails without recursing further")
    func depth() throws {
        let depth = JSONParser.maximumDepth
        let ok = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        #expect(throws: Never.self) { try JSONParser.parse(ok) }
        let deepObject = String(repeating: #"{"a":"#, count: depth) + "1" + String(repeating: "}", count: depth)
        #expect(throws: Never.self) { try JSONParser.parse(deepObject) }

        let tooDeep = String(repeating: "[", count: depth + 1) + String(repeating: "]", count: depth + 1)
        #expect(throws: JSONParseError(.nestingTooDeep, at: depth)) { try JSONParser.parse(tooDeep) }
        // A hostile body: a million open brackets.
        let hostile = [UInt8](repeating: UInt8(ascii: "["), count: 1_000_000)
        #expect(throws: JSONParseError(.nestingTooDeep, at: depth)) { try JSONParser.parse(hostile) }
    }

    @Test("a 10 MB message parses")
    func largeMessage() throws {
        // An array of 100 000 objects with escaped and non-ASCII strings, about 10 MB.
        var text = #"{"id":"big","command":"set","properties":{"name":"x","options":{"env":{"#
        let entry = #""KEY_%d":"val\u00e9\n-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789-é-ABCDEFGHIJKLMNOPQ""#
        var first = true
        var index = 0
        while text.utf8.count < 10_000_000 {
            if !first { text += "," }
            first = false
            text += entry.replacingPercentD(with: index)
            index += 1
        }
        text += "}},\"numbers\":[" + (0..<50_000).map { "\($0).5" }.joined(separator: ",") + "]}}"
        let bytes = Array(text.utf8)
        let parsed = try JSONParser.parse(bytes)
        let env = parsed["properties"]?["options"]?["env"]?.objectValue
        #expect(env?.count == index)
        #expect(env?["KEY_7"] == .string("valé\n-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789-é-ABCDEFGHIJKLMNOPQ"))
        #expect(parsed["properties"]?["numbers"]?.arrayValue?.count == 50_000)
        // Speed is measured by Benchmarks/, never asserted here (the machine is shared).
        // Writing it back is also bounded and byte-identical on a second round trip.
        let written = JSONWriter.serialize(parsed)
        #expect(try JSONParser.parse(written) == parsed)
    }

    @Test("non-contiguous collections are accepted")
    func nonContiguous() throws {
        let bytes = Array(#"{"a": [1, 2]}"#.utf8)
        let lazy = bytes.lazy.map { $0 }
        #expect(try JSONParser.parse(lazy) == ["a": [1, 2]])
    }
}

extension String {
    fileprivate func replacingPercentD(with value: Int) -> String {
        var result = ""
        var remaining = self[...]
        while let range = remaining.firstRange(of: "%d") {
            result += remaining[..<range.lowerBound]
            result += String(value)
            remaining = remaining[range.upperBound...]
        }
        return result + remaining
    }
}
