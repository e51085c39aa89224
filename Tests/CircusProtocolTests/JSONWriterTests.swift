// Expected texts were produced by Python 3.11's `json.dumps` (Circus's encoder).

import CircusProtocol
import OrderedCollections
import Testing

@Suite("JSONWriter matches Python json.dumps")
struct JSONWriterTests {
    @Test(
        "floats are written as Python's repr",
        arguments: [
            (30.0, "30.0"),
            (1795976022.1376016, "1795976022.1376016"),
            (1e-05, "1e-05"),
            (1e+16, "1e+16"),
            (0.0001, "0.0001"),
            (1000000000000000.0, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (0.1, "0.1"),
            (0.035, "0.035"),
            (.leastNonzeroMagnitude, "5e-324"),
            (1.7976931348623157e+308, "1.7976931348623157e+308"),
            (2.5e-07, "2.5e-07"),
            (1.2345678901234568e+29, "1.2345678901234568e+29"),
            (123.456, "123.456"),
            (-1.5, "-1.5"),
            (13.40932559967041, "13.40932559967041"),
            (1e+22, "1e+22"),
            (1e+100, "1e+100"),
            (9007199254740992.0, "9007199254740992.0"),
            (0.30000000000000004, "0.30000000000000004"),
            (0.3333333333333333, "0.3333333333333333"),
            (100.0, "100.0"),
            (.nan, "NaN"),
            (.infinity, "Infinity"),
            (-.infinity, "-Infinity"),
        ] as [(Double, String)]
    )
    func float(value: Double, expected: String) {
        #expect(JSONWriter.string(.double(value)) == expected)
    }

    @Test(
        "strings are escaped with ensure_ascii",
        arguments: [
            ("plain", #""plain""#),
            ("it's", #""it's""#),
            ("say \"hi\"", #""say \"hi\"""#),
            ("back\\slash", #""back\\slash""#),
            ("\u{7f}\u{0}\u{1f}", #""\u007f\u0000\u001f""#),
            ("\t\n\r\u{8}\u{c}", #""\t\n\r\b\f""#),
            ("/", #""/""#),
            ("é", #""\u00e9""#),
            ("日本", #""\u65e5\u672c""#),
            ("😀", #""\ud83d\ude00""#),
            ("\u{2028}\u{2029}", #""\u2028\u2029""#),
            ("\u{feff}", #""\ufeff""#),
            ("a\u{301}", #""a\u0301""#),
            ("\u{10ffff}", #""\udbff\udfff""#),
            ("\u{b}\u{c}", #""\u000b\f""#),
            ("Web App", #""Web App""#),
        ]
    )
    func string(value: String, expected: String) {
        #expect(JSONWriter.string(.string(value)) == expected)
    }

    @Test("scalars, containers and separators")
    func containers() {
        #expect(JSONWriter.string(.null) == "null")
        #expect(JSONWriter.string(true) == "true")
        #expect(JSONWriter.string(false) == "false")
        #expect(JSONWriter.string(.int(-42)) == "-42")
        #expect(JSONWriter.string(.int(.min)) == "-9223372036854775808")
        #expect(JSONWriter.string([]) == "[]")
        #expect(JSONWriter.string(.object([:])) == "{}")
        #expect(JSONWriter.string([1, 2.0, "x", nil]) == #"[1, 2.0, "x", null]"#)
        let nested: JSON = ["b": ["x": [1]], "a": [], "é": "ü"]
        #expect(JSONWriter.string(nested) == #"{"b": {"x": [1]}, "a": [], "\u00e9": "\u00fc"}"#)
        #expect(JSONWriter.serialize(nested) == Array(JSONWriter.string(nested).utf8))
    }

    @Test("object keys keep insertion order, a duplicate keeps its first position")
    func keyOrder() {
        var object: JSONObject = ["z": 1, "a": 2]
        object["m"] = 3
        object["z"] = 4
        #expect(JSONWriter.string(.object(object)) == #"{"z": 4, "a": 2, "m": 3}"#)
    }
}
