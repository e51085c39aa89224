// Scalar parsers, signal names, resource limits and hook targets. Accept/reject tables
// were captured from Python 3.11 (`to_bool`, `int()`, `float()`, `int(x, 8)`, `repr`).

import CircusConfig
import OrderedCollections
import Testing

@Suite("ValueParser")
struct ValueParserTests {
    @Test("bool follows to_bool", arguments: [
        ("yes", true), ("YES", true), (" true ", true), ("On", true), ("1", true),
        ("no", false), ("False", false), ("off", false), ("0", false), ("\tOFF\n", false),
    ])
    func bool(_ text: String, _ expected: Bool) throws {
        #expect(try ValueParser.bool(text) == expected)
    }

    @Test("bool rejects everything else with Circus's message", arguments: ["maybe", "", "2", "y", "truee", "it's"])
    func boolRejects(_ text: String) {
        #expect(throws: ValueParseError(value: text, message: "\(ValueParser.repr(text)) is not a boolean")) {
            try ValueParser.bool(text)
        }
    }

    @Test("int accepts what Python's int() accepts", arguments: [
        ("1_000", 1000), (" 12 ", 12), ("+5", 5), ("-0", 0), ("0012", 12), ("١٢", 12), ("\t-7\n", -7),
        ("9223372036854775807", Int.max), ("-9223372036854775808", Int.min),
    ])
    func int(_ text: String, _ expected: Int) throws {
        #expect(try ValueParser.int(text) == expected)
    }

    @Test("int rejects what Python's int() rejects", arguments: [
        "1__2", "_1", "1_", "", " ", "0x10", "1.0", "1e3", "+", "- 1", "9223372036854775808",
    ])
    func intRejects(_ text: String) {
        #expect(throws: ValueParseError(value: text, message: "\(ValueParser.repr(text)) is not an integer")) {
            try ValueParser.int(text)
        }
    }

    @Test("float accepts what Python's float() accepts", arguments: [
        ("1_000.5", 1000.5), (".5", 0.5), ("5.", 5.0), ("1e3", 1000), ("1E+3", 1000), ("-2.5e-1", -0.25), (" 2.5\n", 2.5),
        ("inf", .infinity), ("-Infinity", -.infinity), ("1e999", .infinity), ("١.٥", 1.5), ("30", 30),
    ])
    func float(_ text: String, _ expected: Double) throws {
        #expect(try ValueParser.float(text) == expected)
    }

    @Test("float accepts nan in any case")
    func floatNaN() throws {
        #expect(try ValueParser.float("nan").isNaN)
        #expect(try ValueParser.float("+NaN").isNaN)
    }

    @Test("float rejects what Python's float() rejects", arguments: [
        ".", "1_e3", "1e", "infinit", "0x10", "", "1.2.3", "e3", "1e_5", "1._5", "--1", "0x1p3",
    ])
    func floatRejects(_ text: String) {
        #expect(throws: ValueParseError(value: text, message: "\(ValueParser.repr(text)) is not a number")) {
            try ValueParser.float(text)
        }
    }

    @Test("octal follows int(x, 8)", arguments: [
        ("022", 18), ("0o22", 18), ("0O_22", 18), ("-7", -7), ("0_7", 7), (" 7 ", 7), ("+0o7", 7), ("0", 0),
    ])
    func octal(_ text: String, _ expected: Int) throws {
        #expect(try ValueParser.octal(text) == expected)
    }

    @Test("octal rejects", arguments: ["8", "", "0o", "0x7", "7_", "1.0"])
    func octalRejects(_ text: String) {
        #expect(throws: ValueParseError(value: text, message: "\(ValueParser.repr(text)) is not an octal number")) {
            try ValueParser.octal(text)
        }
    }

    @Test("repr quotes like Python", arguments: [
        ("maybe", "'maybe'"), ("it's", "\"it's\""), ("a\"b", "'a\"b'"), ("a'b\"c", "'a\\'b\"c'"),
        ("\u{0}\u{7F}\u{85}é\u{200B}😀\t\\", "'\\x00\\x7f\\x85é\\u200b😀\\t\\\\'"), ("\n\r", "'\\n\\r'"),
    ])
    func repr(_ text: String, _ expected: String) {
        #expect(ValueParser.repr(text) == expected)
    }
}

@Suite("Signals (to_signum)")
struct SignalTests {
    @Test("names and numbers", arguments: [
        ("9 ", Int32(9)), ("9", 9), ("TERM", 15), ("sigterm", 15), ("SIGTERM", 15), ("term", 15), ("quit", 3),
        ("RTMIN+1", 35), ("RTMIN+2", 36), ("rtmin", 34), ("SIGRTMAX", 64), ("KILL", 9), ("hup", 1), ("usr1", 10),
        ("CLD", 17), ("chld", 17), ("IOT", 6),
    ])
    func known(_ text: String, _ expected: Int32) {
        #expect(Signals.number(text) == expected)
    }

    @Test("unknown names", arguments: ["bogus", "", "SIG", "RTMIN+", "TERM+x", "RTMAX+1"])
    func unknown(_ text: String) {
        #expect(Signals.number(text) == nil)
    }

    @Test("names for log lines")
    func names() {
        #expect(Signals.name(15) == "SIGTERM")
        #expect(Signals.name(35) == "SIGRTMIN+1")
        #expect(Signals.name(99) == "signal 99")
    }
}

@Suite("ResourceLimits")
struct ResourceLimitTests {
    @Test("the Linux RLIMIT names", arguments: [
        ("as", Int32(9)), ("core", 4), ("cpu", 0), ("data", 2), ("fsize", 1), ("memlock", 8), ("msgqueue", 12),
        ("nice", 13), ("nofile", 7), ("NOFILE", 7), ("nproc", 6), ("rss", 5), ("rtprio", 14), ("rttime", 15),
        ("sigpending", 11), ("stack", 3), ("ofile", 7),
    ])
    func known(_ name: String, _ number: Int32) {
        #expect(ResourceLimits.number(name) == number)
    }

    @Test("unknown names") func unknown() {
        #expect(ResourceLimits.number("bogus") == nil)
        #expect(ResourceLimits.number("") == nil)
        #expect(ResourceLimits.number("locks") == nil)  // Python's resource module has no RLIMIT_LOCKS
    }

    @Test("values: empty and -1 are unlimited") func values() throws {
        #expect(try ResourceLimits.value("") == nil)
        #expect(try ResourceLimits.value("-1") == nil)
        #expect(try ResourceLimits.value(" 1024 ") == 1024)
        #expect(throws: ValueParseError.self) { try ResourceLimits.value("-2") }
        #expect(throws: ValueParseError.self) { try ResourceLimits.value("many") }
    }
}

@Suite("HookTarget")
struct HookTargetTests {
    @Test("accepted forms", arguments: [
        ("/usr/lib/circus/hooks.so:before_start", "/usr/lib/circus/hooks.so", "before_start", nil, nil),
        ("hooks.so:my_hook", "hooks.so", "my_hook", nil, nil),
        ("libfoo.so.1:fn", "libfoo.so.1", "fn", nil, nil),
        ("./plugins/hooks:h", "./plugins/hooks", "h", nil, nil),
        ("lib.so:fn(pid: int, signum: int) -> bool", "lib.so", "fn", "pid: int, signum: int", "bool"),
        ("libfoo.so:check_port(int32,cstring)->int32", "libfoo.so", "check_port", "int32,cstring", "int32"),
        ("lib.so:f() -> void", "lib.so", "f", "", "void"),
    ] as [(String, String, String, String?, String?)])
    func accepted(_ text: String, _ library: String, _ symbol: String, _ parameters: String?, _ returnType: String?) throws {
        let target = try HookTarget(parsing: text)
        #expect(target.library == library)
        #expect(target.symbol == symbol)
        #expect(target.parameters == parameters)
        #expect(target.returnType == returnType)
    }

    @Test("Python dotted names name a Python callable, as in Circus", arguments: [
        "myapp.hooks.check", "myapp.hooks:check", "check", "tests.test_config.hook",
    ])
    func pythonNames(_ text: String) throws {
        let target = try HookTarget(parsing: text)
        #expect(target.python == text && target.library.isEmpty && target.symbol.isEmpty && target.parameters == nil)
    }

    @Test("other malformed targets", arguments: [
        "lib.so:", "lib.so:1fn", "lib.so:fn(int", "lib.so:fn(int)", "lib.so:fn(int) ->", "lib.so:fn-x", "a b:c",
    ])
    func malformed(_ text: String) {
        #expect(throws: ValueParseError.self) { try HookTarget(parsing: text) }
    }

    @Test("the flag is split at the first comma outside parentheses")
    func splitOption() {
        #expect(HookTarget.splitOption("hooks.so:h") == ("hooks.so:h", nil))
        #expect(HookTarget.splitOption(" hooks.so:h , true ") == ("hooks.so:h", "true"))
        #expect(HookTarget.splitOption("lib.so:f(a: int, b: int) -> bool, yes") == ("lib.so:f(a: int, b: int) -> bool", "yes"))
        #expect(HookTarget.splitOption("a,b,c") == ("a", "b,c"))
    }
}
