// What a `hooks.<name> = ...` option may name: native code (`lib.so:symbol`, or any C
// function with a declared signature), or, as in Circus, a Python callable by its dotted
// name, run in a Python helper.

/// A parsed hook target: a symbol in a shared library, optionally with a declared
/// C signature for hooks called through libffi, or a Python callable.
///
/// Accepted forms:
/// - `path/to/lib.so:symbol`, called with the fixed hook signature (`circus_hook_fn` in `circus/plugin.h`);
/// - `lib.so:fn(pid: int, signum: int) -> bool`, a declared signature;
/// - `pkg.mod.fn` or `pkg.mod:fn`, a Python callable (``python``).
///
/// The library part must contain a `/` or end in `.so` (optionally versioned, `.so.1`).
public struct HookTarget: Hashable, Sendable {
    /// The library to `dlopen`, as written (empty for a Python callable).
    public var library: String
    /// The symbol to `dlsym` (empty for a Python callable).
    public var symbol: String
    /// The Python callable's dotted name, as Circus's `resolve_name` takes it; nil for
    /// native code.
    public var python: String?
    /// The declared parameter list without parentheses (`pid: int, signum: int`), or nil
    /// for the fixed hook signature.
    public var parameters: String?
    /// The declared return type (`bool`), or nil for the fixed hook signature.
    public var returnType: String?

    /// Parses a hook target (already stripped of the `, ignore_failure` part).
    ///
    /// - Throws: ``ValueParseError`` for text that is none of the accepted forms.
    public init(parsing text: String) throws(ValueParseError) {
        let expected = "expected 'path/to/lib.so:symbol', 'lib.so:fn(args) -> type' or a Python 'package.module.function'"
        guard !text.isEmpty else {
            throw ValueParseError(value: text, message: "the hook target is empty: \(expected)")
        }
        let open = text.firstIndex(of: "(")
        let head = text[..<(open ?? text.endIndex)]
        guard let colon = head.lastIndex(of: ":"),
              case let library = String(head[..<colon]), Self.looksLikeLibrary(library),
              case let symbol = String(head[head.index(after: colon)...]), Self.isIdentifier(symbol)
        else {
            if open == nil, Self.isPythonDottedName(text) {
                library = ""
                symbol = ""
                python = text
                return
            }
            throw ValueParseError(value: text, message: "\(PythonText.repr(text)) is not a hook target: \(expected)")
        }
        self.library = library
        self.symbol = symbol
        guard let open else { return }
        guard let close = text.lastIndex(of: ")"), close > open else {
            throw ValueParseError(value: text, message: "\(PythonText.repr(text)) has no closing ')': \(expected)")
        }
        let tail = PythonText.strip(text[text.index(after: close)...])
        guard tail.hasPrefix("->"), case let type = PythonText.strip(tail.dropFirst(2)), !type.isEmpty,
              type.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == " " || $0 == "*" })
        else {
            throw ValueParseError(
                value: text, message: "\(PythonText.repr(text)) declares no return type ('-> type'): \(expected)")
        }
        self.parameters = PythonText.strip(text[text.index(after: open)..<close])
        self.returnType = type
    }

    /// Splits `target[, ignore_failure]` at the first comma outside parentheses (Circus
    /// splits at the first comma; a declared signature may itself contain commas).
    ///
    /// - Returns: the stripped target and the stripped flag text, if any.
    public static func splitOption(_ value: String) -> (target: String, ignoreFailure: String?) {
        var depth = 0
        for index in value.indices {
            switch value[index] {
            case "(": depth += 1
            case ")": depth = max(0, depth - 1)
            case "," where depth == 0:
                return (PythonText.strip(value[..<index]), PythonText.strip(value[value.index(after: index)...]))
            default: break
            }
        }
        return (PythonText.strip(value), nil)
    }

    static func looksLikeLibrary(_ text: String) -> Bool {
        guard !text.isEmpty else { return false }
        if text.contains("/") || text.hasSuffix(".so") { return true }
        // Versioned sonames: libfoo.so.1, libfoo.so.1.2
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard let so = parts.lastIndex(of: "so"), so > 0, so < parts.count - 1 else { return false }
        return parts[(so + 1)...].allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }
    }

    /// A C identifier: `[A-Za-z_][A-Za-z0-9_]*`.
    private static func isIdentifier(_ text: String) -> Bool {
        func isASCIILetter(_ c: Unicode.Scalar) -> Bool { ("a"..."z").contains(c) || ("A"..."Z").contains(c) || c == "_" }
        guard let first = text.unicodeScalars.first, isASCIILetter(first) else { return false }
        return text.unicodeScalars.allSatisfy { isASCIILetter($0) || ("0"..."9").contains($0) }
    }

    /// `pkg.mod.fn` or `pkg.mod:fn`: Python identifiers joined by dots, at most one colon.
    static func isPythonDottedName(_ text: String) -> Bool {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return false }
        return parts.allSatisfy { part in
            part.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { name in
                guard let first = name.unicodeScalars.first, PythonText.decimalDigitValue(first) == nil else {
                    return false
                }
                return name.unicodeScalars.allSatisfy(PythonText.isWordCharacter)
            }
        }
    }
}
