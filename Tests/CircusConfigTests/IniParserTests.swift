// The INI dialect, rule by rule. Expected values were checked against Python
// Circus 0.19's StrictConfigParser.

import CircusConfig
import OrderedCollections
import Testing

@Suite("INI dialect")
struct IniParserTests {
    @Test("name = value and name : value, split at the first of either")
    func separators() throws {
        let doc = try parseINI("""
            [s]
            a = 1
            b : 2
            c=3
            d:4
            url = http://host:80/x
            ratio: a=b
            mixed = x:y=z
            """)
        #expect(doc["s", "a"] == "1")
        #expect(doc["s", "b"] == "2")
        #expect(doc["s", "c"] == "3")
        #expect(doc["s", "d"] == "4")
        #expect(doc["s", "url"] == "http://host:80/x")
        #expect(doc["s", "ratio"] == "a=b")
        #expect(doc["s", "mixed"] == "x:y=z")
        #expect(doc["s", "url"] == "http://host:80/x")
    }

    @Test("option names are case-sensitive and keep inner spaces")
    func caseSensitiveNames() throws {
        let doc = try parseINI("""
            [s]
            cmd = lower
            CMD = upper
            spaced   name   =  value  with  spaces  
            """)
        #expect(doc["s", "cmd"] == "lower")
        #expect(doc["s", "CMD"] == "upper")
        #expect(doc["s", "spaced   name"] == "value  with  spaces")
        #expect(Array(doc.sections["s"]!.options.keys) == ["cmd", "CMD", "spaced   name"])
    }

    @Test("first definition wins in the same section")
    func firstDefinitionWins() throws {
        let doc = try parseINI("""
            [s]
            cmd = sleep 1
            cmd = sleep 2
            """)
        #expect(doc["s", "cmd"] == "sleep 1")
        #expect(doc.value("cmd", in: "s")?.location == SourceLocation(file: "t.ini", line: 2))
    }

    @Test("re-opening a section extends it, and earlier values still win")
    func reopenedSection() throws {
        let doc = try parseINI("""
            [a]
            x = 1
            [b]
            y = 2
            [a]
            x = 3
            z = 4
            """)
        #expect(doc["a", "x"] == "1")
        #expect(doc["a", "z"] == "4")
        #expect(Array(doc.sections.keys) == ["a", "b"])
        #expect(doc.sections["a"]!.location.line == 1)
    }

    @Test("full-line comments", arguments: [
        "# hash", "; semicolon", "rem a remark", "REM upper", "Rem mixed", "rEM odd", "rem", "REM = still a comment",
        "rem\tx",
    ])
    func fullLineComments(_ line: String) throws {
        let doc = try parseINI("[s]\n\(line)\nkeep = 1\n")
        #expect(doc.sections["s"]!.options.count == 1)
        #expect(doc["s", "keep"] == "1")
    }

    @Test("lines that look like comments but are options", arguments: [
        ("rem=value", "rem", "value"),
        ("remark = value", "remark", "value"),
        ("reminder: x", "reminder", "x"),
        ("a # b = c", "a # b", "c"),
    ])
    func notComments(_ line: String, _ name: String, _ value: String) throws {
        let doc = try parseINI("[s]\n\(line)\n")
        #expect(doc["s", name] == value)
    }

    @Test("inline comments: ';' only after whitespace, '#' never", arguments: [
        ("cmd = echo \"x\" ; sleep 600", "echo \"x\""),
        ("v = a;b", "a;b"),
        ("v = a\t;b", "a"),
        ("v = a;b ;c", "a;b ;c"),  // only the first ';' is considered
        ("args = --a # not a comment", "--a # not a comment"),
        ("v = #x", "#x"),
        ("v = ;x ", ""),  // a leading ';' looks at the last character (a space)
        ("v =;x", ";x"),
        ("v = ;", ";"),
    ])
    func inlineComments(_ line: String, _ expected: String) throws {
        let doc = try parseINI("[s]\n\(line)\n")
        #expect(doc.sections["s"]!.options.values.first?.value == expected)
    }

    @Test("continuation lines join with newlines; blank ones are dropped")
    func continuationLines() throws {
        let doc = try parseINI("""
            [s]
            args = --a # not a comment
              --b

            \t--c
            empty =
              x
              y
            after = 1
            """)
        #expect(doc["s", "args"] == "--a # not a comment\n--b\n--c")
        #expect(doc["s", "empty"] == "\nx\ny")
        #expect(doc["s", "after"] == "1")
        #expect(doc.value("args", in: "s")?.location.line == 2)
    }

    @Test("continuation lines keep '#' and ';' and look like nothing else")
    func continuationContent() throws {
        let doc = try parseINI("""
            [s]
            v = a
              # hash
              ; semi
              [notheader] = x
            """)
        #expect(doc["s", "v"] == "a\n# hash\n; semi\n[notheader] = x")
    }

    @Test("a continuation of a repeated option extends the first definition (same file)")
    func continuationOfRepeatedOption() throws {
        let doc = try parseINI("""
            [s]
            cmd = sleep 1
            cmd = sleep 2
              more
            """)
        #expect(doc["s", "cmd"] == "sleep 1\nmore")
    }

    @Test("a continuation of an option first defined in an earlier file is dropped")
    func continuationAcrossFiles() throws {
        var parser = IniParser()
        try parser.read("[s]\ncmd = one\n", file: "main.ini")
        try parser.read("[s]\ncmd = two\n  more\nother = x\n  y\n", file: "inc.ini")
        #expect(parser.document["s", "cmd"] == "one")
        #expect(parser.document["s", "other"] == "x\ny")
        #expect(parser.document.value("other", in: "s")?.location == SourceLocation(file: "inc.ini", line: 4))
    }

    @Test("indented option line right after a header keeps its leading whitespace in the name")
    func indentedOptionAfterHeader() throws {
        let doc = try parseINI("[s]\n  key = v\n")
        #expect(doc["s", "  key"] == "v")
    }

    @Test("\"\" is the empty string; no other unquoting")
    func quotes() throws {
        let doc = try parseINI("""
            [s]
            empty = ""
            single = ''
            regex = "^test.*$"
            inner = a""b
            spaced = "" 
            """)
        #expect(doc["s", "empty"] == "")
        #expect(doc["s", "single"] == "''")
        #expect(doc["s", "regex"] == "\"^test.*$\"")
        #expect(doc["s", "inner"] == "a\"\"b")
        #expect(doc["s", "spaced"] == "")
    }

    @Test("section headers: permissive, closed by the last ']' on the line")
    func sectionHeaders() throws {
        let doc = try parseINI("""
            [watcher:a]b]
            x = 1
            [with space] trailing
            y = 2
            [Watcher:Case]
            z = 3
            """)
        #expect(Array(doc.sections.keys) == ["watcher:a]b", "with space", "Watcher:Case"])
    }

    @Test("[DEFAULT] keys appear in every section; the section's own value wins")
    func defaultSection() throws {
        let doc = try parseINI("""
            [DEFAULT]
            shared = fromdefault
            numprocesses = 2
            [a]
            numprocesses = 5
            own = 1
            [b]
            """)
        #expect(!doc.hasSection("DEFAULT"))
        #expect(doc["a", "shared"] == "fromdefault")
        #expect(doc["a", "numprocesses"] == "5")
        #expect(doc["b", "numprocesses"] == "2")
        // Python's items(): DEFAULT keys first, then the section's own.
        #expect(Array(doc.items(in: "a")!.keys) == ["shared", "numprocesses", "own"])
        #expect(doc.items(in: "missing") == nil)
        #expect(doc.value("shared", in: "missing") == nil)
    }

    @Test("the __name__ artefact is never stored")
    func nameArtefact() throws {
        let doc = try parseINI("[s]\n__name__ = custom\n  cont\nx = 1\n")
        #expect(doc.sections["s"]!.options.keys.elementsEqual(["x"]))
    }

    @Test("line endings: LF, CRLF and CR; a byte-order mark is ignored", arguments: [
        "[s]\na = 1\nb = 2\n", "[s]\r\na = 1\r\nb = 2\r\n", "[s]\ra = 1\rb = 2\r", "\u{FEFF}[s]\na = 1\nb = 2",
    ])
    func lineEndings(_ text: String) throws {
        let doc = try parseINI(text)
        #expect(doc["s", "a"] == "1")
        #expect(doc["s", "b"] == "2")
        #expect(doc.value("b", in: "s")?.location.line == 3)
    }

    @Test("an empty option name is accepted, as in Circus")
    func emptyOptionName() throws {
        let doc = try parseINI("[s]\n= value\n")
        #expect(doc["s", ""] == "value")
    }

    @Test("values before any section are an error with file and line")
    func missingSectionHeader() {
        #expect(throws: ConfigError.self) { try parseINI("# comment\n\nkey = value\n[s]\n") }
        do {
            _ = try parseINI("# comment\n\nkey = value\n[s]\n", file: "x.ini")
        } catch {
            #expect(error.file == "x.ini")
            #expect(error.line == 3)
            #expect(error.description.hasPrefix("x.ini:3: "))
            #expect(error.description.contains("'key = value'"))
        }
    }

    @Test("an indented line before any section is an error")
    func indentedBeforeSection() {
        #expect(throws: ConfigError.self) { try parseINI("  x\n[s]\n") }
    }

    @Test("a line that is not an option, header or comment is an error", arguments: [
        "just text", "  no delimiter here right after a header",
    ])
    func malformedLine(_ line: String) {
        do {
            _ = try parseINI("[s]\n\(line)\n", file: "m.ini")
            Issue.record("expected an error")
        } catch {
            #expect(error.file == "m.ini")
            #expect(error.line == 2)
            #expect(error.section == "s")
            #expect(error.description.contains("malformed line"))
        }
    }
}
