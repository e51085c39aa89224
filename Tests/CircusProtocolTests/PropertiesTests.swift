// Typed access to request properties and its errno 3 texts.

import CircusProtocol
import OrderedCollections
import Testing

@Suite("Typed property access")
struct PropertiesTests {
    static let properties: JSONObject = [
        "name": "sleeper", "nb": 2, "flag": true, "ratio": 0.5, "options": ["a": 1], "keys": ["cmd"], "null": nil,
        "text": "3", "signum": "SIGRTMIN+1", "signo": 9, "badsig": "SIGHUP2",
    ]

    @Test("present values of the right type")
    func values() throws {
        let p = Self.properties
        #expect(try p.require("name") == "sleeper")
        #expect(try p.require("null") == .null)
        #expect(try p.requireString("name") == "sleeper")
        #expect(try p.int("nb") == 2)
        #expect(try p.int("flag") == 1)
        #expect(try p.number("nb") == 2)
        #expect(try p.number("ratio") == 0.5)
        #expect(try p.bool("flag") == true)
        #expect(try p.object("options") == ["a": 1])
        #expect(try p.list("keys") == ["cmd"])
        #expect(try p.signal("signum") == 35)
        #expect(try p.signal("signo") == 9)
        #expect(try p.signal("missing") == nil)
    }

    @Test("absent and null values")
    func absent() throws {
        let p = Self.properties
        #expect(try p.string("missing") == nil)
        #expect(try p.string("null") == nil)
        #expect(try p.int("null") == nil)
        #expect(try p.object("missing") == nil)
        #expect(throws: CommandError.missingProperty("missing")) { try p.require("missing") }
        #expect(throws: CommandError.missingProperty("missing")) { try p.requireString("missing") }
        #expect(throws: CommandError.notAString("null")) { try p.requireString("null") }
        #expect(throws: CommandError.missingProperty("keys2")) { try p.requireList("keys2") }
    }

    @Test(
        "wrong types give Circus-style errno 3 texts",
        arguments: [
            ("nb", "string", "'nb' isn't a string"),
            ("name", "int", "'name' isn't an integer"),
            ("ratio", "int", "'ratio' isn't an integer"),
            ("text", "number", "'text' isn't a number"),
            ("nb", "bool", "'nb' isn't a valid boolean"),
            ("keys", "object", "'keys' isn't a valid object"),
            ("options", "list", "'options' isn't a list"),
            ("badsig", "signal", "signal invalid"),
            ("options", "signal", "signal invalid"),
        ]
    )
    func wrongType(key: String, getter: String, reason: String) {
        let p = Self.properties
        do {
            switch getter {
            case "string": _ = try p.requireString(key)
            case "int": _ = try p.requireInt(key)
            case "number": _ = try p.requireNumber(key)
            case "bool": _ = try p.requireBool(key)
            case "object": _ = try p.requireObject(key)
            case "list": _ = try p.requireList(key)
            default: _ = try p.signal(key)
            }
            Issue.record("no error")
        } catch {
            #expect(error.code == .messageError)
            #expect(error.reason == reason)
        }
    }

    @Test("flags use Python truthiness")
    func flags() {
        let p: JSONObject = ["yes": 1, "no": 0, "str": "false", "empty": "", "null": nil, "list": [0]]
        #expect(p.flag("yes"))
        #expect(!p.flag("no"))
        #expect(p.flag("str"))
        #expect(!p.flag("empty"))
        #expect(!p.flag("null", default: true))
        #expect(p.flag("list"))
        #expect(p.flag("absent", default: true))
        #expect(!p.flag("absent"))
    }
}
