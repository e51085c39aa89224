// Both substitution engines against outputs captured from Circus 0.19's
// `replace_gnu_args` and `parse_env_dict`.

import CircusConfig
import OrderedCollections
import Testing

@Suite("Substitution")
struct SubstitutionTests {
    /// The variables of the Python run: env (with PATH/Path differing only by case), a wid,
    /// a plain option, and a sockets dictionary.
    static let variables: [String: SubstitutionValue] = [
        "env": .dictionary(["HOME": "/root", "Path": "/a", "PATH": "/b", "web-x": "dash", "dotted.k": "dot"]),
        "wid": .string("1"),
        "numprocesses": .string("3"),
        "sockets": .dictionary(["Web": "8", "api": "9"]),
    ]

    /// (template, Python's `replace_gnu_args(template, **variables)`).
    static let cases: [(String, String)] = [
        ("$(circus.env.HOME)", "/root"),
        ("$(circus.env.home)", "/root"),
        ("((circus.env.home))", "/root"),
        ("$(CIRCUS.ENV.HOME)", "/root"),
        ("$(Circus.Env.Home)", "/root"),
        ("$(circus.env.path)", "/b"),
        ("$(circus.wid)", "1"),
        ("((circus.wid))", "1"),
        ("$(circus.numprocesses)", "3"),
        ("$(circus.sockets.web)", "8"),
        ("$(circus.sockets.WEB)", "8"),
        ("$(circus.sockets)", "$(circus.sockets)"),
        ("$(circus.env.missing)", "$(circus.env.missing)"),
        ("$(wid)", "$(wid)"),
        ("((wid))", "((wid))"),
        ("$(circus.wid", "$(circus.wid"),
        ("$(circus.wid))", "1)"),
        ("(((circus.wid)))", "(1)"),
        ("$((circus.wid))", "$1"),
        ("$(circus.env.web-x)", "dash"),
        ("$(circus.env.dotted.k)", "dot"),
        ("$(circus.circus.wid)", "1"),
        ("$(circus.)", "$(circus.)"),
        ("$(circus.wid )", "$(circus.wid )"),
        ("$( circus.wid)", "$( circus.wid)"),
        ("a$(circus.wid)b((circus.wid))c", "a1b1c"),
        ("$$(circus.wid)", "$1"),
        ("$(circus.wíd)", "$(circus.wíd)"),
        ("no vars", "no vars"),
        ("", ""),
        ("$(circus.env.home)$(circus.env.home)", "/root/root"),
        ("$(circus.circuswid)", "$(circus.circuswid)"),
        ("((circus.wid)", "((circus.wid)"),
        ("$(circusXwid)", "$(circusXwid)"),
        ("$(cırcus.env.home) $(circuſ.env.home)", "/root /root"),  // Python re.IGNORECASE equivalences
    ]

    @Test("replace matches replace_gnu_args", arguments: cases)
    func replace(_ template: String, _ expected: String) {
        #expect(Substitution.replace(template, variables: Self.variables) == expected)
        #expect(Substitution.replace(template, table: Substitution.Table(Self.variables)) == expected)
    }

    @Test("replacements are not rescanned")
    func noRescan() {
        let variables: [String: SubstitutionValue] = ["a": .string("$(circus.b)"), "b": .string("B")]
        #expect(Substitution.replace("$(circus.a)", variables: variables) == "$(circus.b)")
    }

    @Test("ordered tables: a later key that lower-cases the same wins")
    func orderedTable() {
        let table = Substitution.Table(ordered: ["env": .dictionary(["x": "first", "X": "second"])])
        #expect(Substitution.replace("$(circus.env.x)", table: table) == "second")
        #expect(table.value(for: "circus.env.x") == "second")
    }

    /// (value, environment, Python's `parse_env_dict` result).
    static let envCases: [(String, String)] = [
        ("$HOME/x", "/root/x"),
        ("$home", "$home"),
        ("${HOME}", "${HOME}"),
        ("$NOPE_NOT_SET", ""),
        ("$HOME_DIR", "/srv"),
        ("$HOMEx", "/rootx"),
        ("$_X", "$_X"),
        ("$1", "$1"),
        ("a$HOME$HOME", "a/root/root"),
        ("$", "$"),
        ("$$HOME", "$/root"),
        ("  padded  ", "padded"),
        ("$SPACEY", "v"),
        ("$A1_B", "ok"),
    ]

    @Test("$VAR expansion matches parse_env_dict", arguments: envCases)
    func environmentExpansion(_ value: String, _ expected: String) {
        let environment = ["HOME": "/root", "HOME_DIR": "/srv", "SPACEY": "  v  ", "A1_B": "ok"]
        #expect(Substitution.parseEnvironment(["K": value], environment: environment) == ["K": expected])
    }

    @Test("parseEnvironment strips keys; a key stripping to an earlier one replaces its value")
    func environmentKeys() {
        let parsed = Substitution.parseEnvironment([" A ": "1", "B": "2", "A": "3"], environment: [:])
        #expect(parsed == ["A": "3", "B": "2"])
    }
}
