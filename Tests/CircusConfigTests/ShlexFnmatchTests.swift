// Shlex and Fnmatch against outputs captured from Python 3.11's shlex and fnmatch.

import CircusConfig
import OrderedCollections
import Testing

@Suite("Shlex (Python shlex, POSIX, comments=False)")
struct ShlexTests {
    /// (input, Python's `shlex.split(input)`).
    static let splits: [(String, [String])] = [
        ("", []),
        ("   ", []),
        ("a b  c", ["a", "b", "c"]),
        ("echo \"a b\" c", ["echo", "a b", "c"]),
        ("echo 'a b' c", ["echo", "a b", "c"]),
        ("a\\ b", ["a b"]),
        ("\"a\\\"b\"", ["a\"b"]),
        ("\"a\\b\"", ["a\\b"]),
        ("\"a\\\\b\"", ["a\\b"]),
        ("'a\\b'", ["a\\b"]),
        ("a''b", ["ab"]),
        ("''", [""]),
        ("\"\" x", ["", "x"]),
        ("a#b # c", ["a#b", "#", "c"]),
        ("x\"y z\"w", ["xy zw"]),
        ("--fd=$(circus.sockets.web)", ["--fd=$(circus.sockets.web)"]),
        ("a\tb\nc\rd", ["a", "b", "c", "d"]),
        ("é ü", ["é", "ü"]),
        ("\\x", ["x"]),
        ("\"\\$HOME\"", ["\\$HOME"]),
        ("a \\\"b", ["a", "\"b"]),
        ("\"'\"", ["'"]),
        ("'\"'", ["\""]),
        ("a;b|c&d", ["a;b|c&d"]),
        ("\\\\", ["\\"]),
        (" \\ ", [" "]),
    ]

    @Test("split matches Python", arguments: splits)
    func split(_ input: String, _ expected: [String]) throws {
        #expect(try Shlex.split(input) == expected)
    }

    /// (input, Python's ValueError message).
    static let splitErrors: [(String, ShlexError)] = [
        ("it's", .noClosingQuotation),
        ("a\"b", .noClosingQuotation),
        ("a\\", .noEscapedCharacter),
        ("'open", .noClosingQuotation),
        ("\"open", .noClosingQuotation),
        ("a \"b\\", .noEscapedCharacter),
    ]

    @Test("split errors match Python", arguments: splitErrors)
    func splitError(_ input: String, _ expected: ShlexError) {
        #expect(throws: expected) { try Shlex.split(input) }
    }

    @Test("error messages are Python's")
    func errorMessages() {
        #expect(ShlexError.noClosingQuotation.description == "No closing quotation")
        #expect(ShlexError.noEscapedCharacter.description == "No escaped character")
    }

    /// (input, Python's `shlex.quote(input)`).
    static let quotes: [(String, String)] = [
        ("", "''"),
        ("abc", "abc"),
        ("a b", "'a b'"),
        ("it's", "'it'\"'\"'s'"),
        ("a@b%c+d=e:f,g.h/i-j_k", "a@b%c+d=e:f,g.h/i-j_k"),
        ("é", "'é'"),
        ("$HOME", "'$HOME'"),
        ("a\"b", "'a\"b'"),
        ("'", "''\"'\"''"),
        ("x\ny", "'x\ny'"),
        ("*", "'*'"),
    ]

    @Test("quote matches Python", arguments: quotes)
    func quote(_ input: String, _ expected: String) throws {
        #expect(Shlex.quote(input) == expected)
        #expect(try Shlex.split(Shlex.quote(input)) == [input])
    }

    @Test("join quotes each word (the sh -c string of shell = true)")
    func join() {
        #expect(Shlex.join(["foo", "--fd"]) == "foo --fd")
        #expect(Shlex.join(["echo", "$HOME", "a ; b"]) == "echo '$HOME' 'a ; b'")
    }
}

@Suite("Fnmatch (Python fnmatch on Linux)")
struct FnmatchTests {
    /// (pattern, name, Python's `fnmatch.fnmatch(name, pattern)`).
    static let cases: [(String, String, Bool)] = [
        ("*", "", true),
        ("*", "abc", true),
        ("*", ".hidden", true),
        ("*", "a/b", true),
        ("a*", "abc", true),
        ("a*", "bac", false),
        ("*c", "abc", true),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("[abc]", "b", true),
        ("[abc]", "d", false),
        ("[!abc]", "d", true),
        ("[!abc]", "a", false),
        ("[a-c]x", "bx", true),
        ("[a-c]x", "dx", false),
        ("[z-a]", "m", false),
        ("[!z-a]", "m", true),
        ("[]]", "]", true),
        ("[!]]", "a", true),
        ("[!]]", "]", false),
        ("[", "[", true),
        ("[abc", "[abc", true),
        ("a[", "a[", true),
        ("[a-]", "-", true),
        ("[-a]", "-", true),
        ("[a-c-e]", "-", true),
        ("[a-c-e]", "d", false),
        ("[a-c-e]", "e", true),
        ("Web", "web", false),
        ("web", "Web", false),
        ("*web*", "my web app", true),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "aXbYcZ", false),
        ("**", "x", true),
        ("a**b", "ab", true),
        ("\\*", "\\x", true),
        ("\\*", "*", false),
        ("[\\]", "\\", true),
        ("[^a]", "^", true),
        ("[^a]", "b", false),
        ("[&&]", "&", true),
        ("*\n*", "a\nb", true),
        ("?", "\n", true),
        ("[b-a]x", "x", false),
        ("[!b-a]x", "zx", true),
        ("[a-b-a]", "b", true),
        ("[a-b-a]", "-", true),
        ("[[:alpha:]]", "a]", true),
        ("[[:alpha:]]", "a", false),
        ("é*", "été", true),
        ("[ä-ü]", "ö", true),
        ("", "", true),
        ("", "a", false),
        ("ab", "ab", true),
        ("ab", "abc", false),
    ]

    @Test("matches agrees with Python", arguments: cases)
    func matches(_ pattern: String, _ name: String, _ expected: Bool) {
        #expect(Fnmatch.matches(pattern: pattern, name: name) == expected)
    }

    @Test("a compiled pattern can be reused")
    func compiled() {
        let pattern = Fnmatch.Pattern("web-[0-9]*")
        #expect(pattern.text == "web-[0-9]*")
        #expect(["web-1", "web-22x", "web-", "web-a"].map(pattern.matches) == [true, true, false, false])
    }
}
