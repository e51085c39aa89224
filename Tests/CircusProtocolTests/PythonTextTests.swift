// Python's repr/str/lower/round as Circus's texts use them; expectations from Python 3.11.

import CircusConfig
import CircusProtocol
import Testing

@Suite("Python text conventions")
struct PythonTextTests {
    @Test(
        "repr of str",
        arguments: [
            ("nope", "'nope'"),
            ("it's", #""it's""#),
            ("say \"hi\"", #"'say "hi"'"#),
            ("both ' and \"", #"'both \' and "'"#),
            ("back\\slash", #"'back\\slash'"#),
            ("tab\tnl\nnr\r", #"'tab\tnl\nnr\r'"#),
            ("\u{0}\u{1f}\u{7f}", #"'\x00\x1f\x7f'"#),
            ("é日本😀", "'é日本😀'"),
            ("\u{80}\u{9f}\u{a0}\u{ad}", #"'\x80\x9f\xa0\xad'"#),
            ("\u{2028}\u{200b}\u{feff}", #"'\u2028\u200b\ufeff'"#),
            ("\u{e0001}\u{10ffff}", #"'\U000e0001\U0010ffff'"#),
            ("\u{e000}", #"'\ue000'"#),
            ("a\u{301}'", "\"a\u{301}'\""),
        ]
    )
    func strRepr(value: String, expected: String) {
        #expect(PythonText.repr(value) == expected)
    }

    @Test("repr of bytes")
    func bytesRepr() {
        #expect(PythonText.bytesRepr(Array(#"{"id":"k7","command":"signal"}"#.utf8)) == #"b'{"id":"k7","command":"signal"}'"#)
        #expect(PythonText.bytesRepr(Array("it's ".utf8) + [0x00, 0xFF, 0x09, 0x0A, 0x0D, 0x5C]) == #"b"it's \x00\xff\t\n\r\\""#)
        #expect(PythonText.bytesRepr(Array(#"it's "x""#.utf8)) == #"b'it\'s "x"'"#)
    }

    @Test("repr and str of JSON values")
    func jsonRepr() {
        let value: JSON = ["bogus": "x", "n": nil, "t": true, "f": 1.5, "l": [1, "a", .double(.nan), .double(.infinity)], "d": [:]]
        #expect(PythonText.repr(value) == "{'bogus': 'x', 'n': None, 't': True, 'f': 1.5, 'l': [1, 'a', nan, inf], 'd': {}}")
        #expect(PythonText.repr([1e16, -0.0, 1e-05]) == "[1e+16, -0.0, 1e-05]")
        #expect(PythonText.str("text") == "text")
        #expect(PythonText.str(5) == "5")
        #expect(PythonText.str(nil) == "None")
        #expect(PythonText.str(false) == "False")
    }

    @Test(
        "str.lower, including final sigma",
        arguments: [
            ("Web App", "web app"), ("ΑΣ ΟΔΟΣ", "ας οδος"), ("ΣΑ", "σα"), ("AΣ.", "aς."), ("Σ", "σ"),
            ("İ", "i\u{307}"), ("ẞ", "ß"),
        ]
    )
    func lower(value: String, expected: String) {
        #expect(PythonText.lower(value) == expected)
    }

    @Test(
        "int() of strings",
        arguments: [
            (" 12 ", 12 as Int64?), ("+5", 5), ("-7", -7), ("1_000", 1000), ("_1", nil), ("1__0", nil), ("1_", nil),
            ("", nil), ("abc", nil), ("1.5", nil), ("9223372036854775807", .max), ("-9223372036854775808", .min),
            ("9223372036854775808", nil),
        ]
    )
    func parseInt(text: String, expected: Int64?) {
        #expect(PythonText.parseInt(text) == expected)
    }

    @Test("int() of JSON values")
    func pythonInt() {
        #expect(JSON.int(3).pythonInt == 3)
        #expect(JSON.bool(true).pythonInt == 1)
        #expect(JSON.double(-12.9).pythonInt == -12)
        #expect(JSON.double(.nan).pythonInt == nil)
        #expect(JSON.string(" 42 ").pythonInt == 42)
        #expect(JSON.null.pythonInt == nil)
        #expect(JSON.array([]).pythonInt == nil)
    }

    @Test(
        "round(x, 3) and '%.2f'",
        arguments: [
            (0.0351234, 3, 0.035), (0.0005, 3, 0.001), (0.0015, 3, 0.002), (0.0025, 3, 0.003), (2.675, 2, 2.67),
            (0.125, 2, 0.12), (0.375, 2, 0.38), (-1.2345, 3, -1.234), (100.0, 3, 100.0), (1e-300, 3, 0.0),
        ] as [(Double, Int, Double)]
    )
    func round(value: Double, digits: Int, expected: Double) {
        #expect(PythonFloat.round(value, digits: digits) == expected)
    }

    @Test("fixed notation")
    func fixed() {
        #expect(PythonFloat.fixed(8.55, digits: 2) == "8.55")
        #expect(PythonFloat.fixed(0.125, digits: 2) == "0.12")
        #expect(PythonFloat.fixed(0.005, digits: 2) == "0.01")
        #expect(PythonFloat.fixed(-0.001, digits: 2) == "-0.00")
        #expect(PythonFloat.fixed(1023.999, digits: 2) == "1024.00")
        #expect(PythonFloat.fixed(3, digits: 0) == "3")
        #expect(PythonFloat.fixed(1e20, digits: 1) == "100000000000000000000.0")
        #expect(PythonFloat.repr(.nan) == "nan")
        #expect(PythonFloat.repr(-.infinity) == "-inf")
    }
}
