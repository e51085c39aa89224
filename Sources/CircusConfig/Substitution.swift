// Circus's two variable engines: `replace_gnu_args` for `$(circus.x)` /
// `((circus.x))` templates, and `parse_env_dict`'s `$VAR` expansion of env values.

public import OrderedCollections

/// The value of one template variable: a string, or a dictionary whose entries are
/// reachable as `circus.<name>.<key>` (the way `env` and `sockets` are).
public enum SubstitutionValue: Hashable, Sendable {
    /// A plain value, reached as `circus.<name>` (Python formats numbers with `str()`:
    /// pass `"30.0"` for a float option, `"1"` for an int).
    case string(String)
    /// Keys are matched case-insensitively; when two differ only by case, the later wins.
    case dictionary(OrderedDictionary<String, String>)
}

/// Variable substitution exactly as Circus performs it.
public enum Substitution {
    /// A flattened variable table (`circus.env.home` -> value), built once and reused for
    /// many templates, for example for every process a watcher spawns.
    public struct Table: Hashable, Sendable {
        fileprivate var values: [String: String] = [:]

        /// Flattens `variables` in key order (sorted, so that keys differing only by case
        /// resolve the same way on every run).
        public init(_ variables: [String: SubstitutionValue]) {
            let ordered = OrderedDictionary(uniqueKeysWithValues: variables.sorted { PythonText.precedes($0.key, $1.key) })
            self.init(ordered: ordered)
        }

        /// Flattens `variables` in the given order, as `replace_gnu_args` walks its keyword
        /// arguments: later entries override earlier ones that lower-case to the same key.
        public init(ordered variables: OrderedDictionary<String, SubstitutionValue>) {
            for (key, value) in variables {
                let name = "circus." + key.lowercased()
                switch value {
                case .string(let s):
                    values[name] = s
                case .dictionary(let entries):
                    for (subkey, subvalue) in entries {
                        values[name + "." + subkey.lowercased()] = subvalue
                    }
                }
            }
        }

        /// The value a lower-cased full name such as `circus.env.home` expands to, if any.
        public func value(for fullName: String) -> String? {
            values[fullName]
        }
    }

    /// Circus's `replace_gnu_args`: replaces `$(circus.<key>)` and `((circus.<key>))`,
    /// where `<key>` is one or more word characters, `.` or `-`. Matching is
    /// case-insensitive (`$(CIRCUS.ENV.FOO)` is `$(circus.env.foo)`); dictionary
    /// variables are reached as `circus.<name>.<subkey>`. Unknown variables, and anything
    /// without the `circus.` prefix, are left verbatim, so per-process variables such as
    /// `$(circus.wid)` survive a load-time pass untouched.
    ///
    /// - Parameters:
    ///   - template: the text to expand.
    ///   - variables: variable name (without `circus.`) to value, e.g. `["env": .dictionary(env), "wid": .string("1")]`.
    /// - Returns: the expanded text; replacements are not rescanned.
    public static func replace(_ template: String, variables: [String: SubstitutionValue]) -> String {
        replace(template, table: Table(variables))
    }

    /// ``replace(_:variables:)`` with a prebuilt table.
    public static func replace(_ template: String, table: Table) -> String {
        let scalars = Array(template.unicodeScalars)
        guard scalars.contains("(") else { return template }
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            if let match = matchVariable(scalars, at: i) {
                if let value = table.values[fullKey(String(String.UnicodeScalarView(scalars[match.key])))] {
                    out.append(contentsOf: value.unicodeScalars)
                } else {
                    out.append(contentsOf: scalars[i..<match.end])
                }
                i = match.end
            } else {
                out.append(scalars[i])
                i += 1
            }
        }
        return String(out)
    }

    /// The variables a template names, as full lower-cased keys (`circus.sockets.web`),
    /// in order, matched exactly as ``replace(_:table:)`` matches them.
    public static func variableNames(in template: String) -> [String] {
        let scalars = Array(template.unicodeScalars)
        guard scalars.contains("(") else { return [] }
        var names: [String] = []
        var i = 0
        while i < scalars.count {
            if let match = matchVariable(scalars, at: i) {
                names.append(fullKey(String(String.UnicodeScalarView(scalars[match.key]))))
                i = match.end
            } else {
                i += 1
            }
        }
        return names
    }

    /// The table key a matched variable key looks up. Python adds the prefix only when the
    /// key does not already start with it, so `$(circus.circus.wid)` also reaches `circus.wid`.
    private static func fullKey(_ key: String) -> String {
        let lower = key.lowercased()
        return lower.unicodeScalars.starts(with: "circus".unicodeScalars) ? lower : "circus." + lower
    }

    /// Circus's `$VAR` expansion of environment values (`parse_env_dict`): `$NAME` where
    /// NAME is `[A-Z]+[A-Z0-9_]*` (upper-case ASCII only) is replaced by its value in
    /// `environment`, or by nothing when unset. `${NAME}` and `$name` are left alone.
    public static func expandEnvironmentVariables(_ value: String, environment: [String: String]) -> String {
        let scalars = Array(value.unicodeScalars)
        guard scalars.contains("$") else { return value }
        func isUpper(_ c: Unicode.Scalar) -> Bool { c.value >= 0x41 && c.value <= 0x5A }
        func isNameTail(_ c: Unicode.Scalar) -> Bool { isUpper(c) || (c.value >= 0x30 && c.value <= 0x39) || c == "_" }
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            if scalars[i] == "$", i + 1 < scalars.count, isUpper(scalars[i + 1]) {
                var j = i + 1
                while j < scalars.count, isNameTail(scalars[j]) { j += 1 }
                let name = String(String.UnicodeScalarView(scalars[(i + 1)..<j]))
                out.append(contentsOf: (environment[name] ?? "").unicodeScalars)
                i = j
            } else {
                out.append(scalars[i])
                i += 1
            }
        }
        return String(out)
    }

    /// Circus's `parse_env_dict`: ``expandEnvironmentVariables(_:environment:)`` on every
    /// value, then keys and values stripped of surrounding whitespace (a later key that
    /// strips to an earlier one replaces its value).
    public static func parseEnvironment(
        _ env: OrderedDictionary<String, String>,
        environment: [String: String]
    ) -> OrderedDictionary<String, String> {
        var result: OrderedDictionary<String, String> = [:]
        for (key, value) in env {
            result[PythonText.strip(key)] = PythonText.strip(expandEnvironmentVariables(value, environment: environment))
        }
        return result
    }

    // MARK: - Matching

    /// `$(circus.` or `((circus.`, with Python `re.IGNORECASE` equivalences.
    private static func matchVariable(_ s: [Unicode.Scalar], at start: Int) -> (key: Range<Int>, end: Int)? {
        let double: Bool
        if s[start] == "$", start + 1 < s.count, s[start + 1] == "(" {
            double = false
        } else if s[start] == "(", start + 1 < s.count, s[start + 1] == "(" {
            double = true
        } else {
            return nil
        }
        var i = start + 2
        for expected in "circus".unicodeScalars {
            guard i < s.count, sameIgnoringCase(s[i], expected) else { return nil }
            i += 1
        }
        guard i < s.count, s[i] == "." else { return nil }
        i += 1
        let keyStart = i
        while i < s.count, PythonText.isWordCharacter(s[i]) || s[i] == "." || s[i] == "-" { i += 1 }
        guard i > keyStart, i < s.count, s[i] == ")" else { return nil }
        let keyEnd = i
        i += 1
        if double {
            guard i < s.count, s[i] == ")" else { return nil }
            i += 1
        }
        return (keyStart..<keyEnd, i)
    }

    /// Case-insensitive equality for the letters of `circus`, including the extra
    /// equivalences Python's `re` applies (`ı`/`İ` for `i`, `ſ` for `s`).
    private static func sameIgnoringCase(_ c: Unicode.Scalar, _ lower: Unicode.Scalar) -> Bool {
        if c == lower || c.value == lower.value - 0x20 { return true }
        switch lower {
        case "i": return c.value == 0x131 || c.value == 0x130
        case "s": return c.value == 0x17F
        default: return false
        }
    }
}
