// Python's `shlex.split` and `shlex.quote`, which Circus uses to turn `cmd`, `args` and
// `shell_args` into argv and to build the `sh -c` string of `shell = true` watchers.

/// Why a command line cannot be split (Python's `ValueError` messages).
public struct ShlexError: Error, CustomStringConvertible, Hashable, Sendable {
    /// `No closing quotation` or `No escaped character`.
    public var message: String

    /// A quote was opened and never closed.
    public static let noClosingQuotation = ShlexError(message: "No closing quotation")
    /// The text ends with a backslash.
    public static let noEscapedCharacter = ShlexError(message: "No escaped character")

    /// The message, as Python words it.
    public var description: String { message }
}

/// Shell-like splitting and quoting with Python `shlex`'s POSIX rules.
public enum Shlex {
    /// Python `shlex.split(text)` (POSIX mode, `comments=False`): words separated by
    /// space, tab, CR or LF; `'...'` is literal; in `"..."` a backslash escapes only `"`
    /// and `\`; outside quotes a backslash escapes any character; `''` is an empty word;
    /// `#` is an ordinary character.
    ///
    /// - Throws: ``ShlexError/noClosingQuotation`` or ``ShlexError/noEscapedCharacter``.
    public static func split(_ text: String) throws(ShlexError) -> [String] {
        enum State: Equatable {
            case whitespace
            case word
            case quote(Unicode.Scalar)
            /// After a backslash; `returnTo` is the state the escaped character belongs to.
            case escape(returnTo: Escaped)
        }
        enum Escaped: Equatable {
            case word
            case doubleQuote
        }
        func isWhitespace(_ c: Unicode.Scalar) -> Bool { c == " " || c == "\t" || c == "\r" || c == "\n" }

        var words: [String] = []
        var token = String.UnicodeScalarView()
        var quoted = false
        var state = State.whitespace

        func emit() {
            words.append(String(token))
            token = String.UnicodeScalarView()
            quoted = false
        }

        for c in text.unicodeScalars {
            switch state {
            case .whitespace:
                if isWhitespace(c) {
                    if !token.isEmpty || quoted { emit() }
                } else if c == "\\" {
                    state = .escape(returnTo: .word)
                } else if c == "'" || c == "\"" {
                    state = .quote(c)
                } else {
                    token.append(c)
                    state = .word
                }
            case .quote(let q):
                quoted = true
                if c == q {
                    state = .word
                } else if c == "\\" && q == "\"" {
                    state = .escape(returnTo: .doubleQuote)
                } else {
                    token.append(c)
                }
            case .escape(let returnTo):
                // In POSIX shells only the quote itself or the backslash may be escaped
                // within double quotes; otherwise the backslash stays.
                if returnTo == .doubleQuote && c != "\\" && c != "\"" {
                    token.append("\\")
                }
                token.append(c)
                state = returnTo == .word ? .word : .quote("\"")
            case .word:
                if isWhitespace(c) {
                    state = .whitespace
                    if !token.isEmpty || quoted { emit() }
                } else if c == "'" || c == "\"" {
                    state = .quote(c)
                } else if c == "\\" {
                    state = .escape(returnTo: .word)
                } else {
                    token.append(c)
                }
            }
        }
        switch state {
        case .quote:
            throw .noClosingQuotation
        case .escape:
            throw .noEscapedCharacter
        case .whitespace, .word:
            if !token.isEmpty || quoted { emit() }
        }
        return words
    }

    /// Python `shlex.quote(text)`: `''` for the empty string, the text itself when it
    /// holds only ASCII letters, digits and `_@%+=:,./-`, otherwise the text in single
    /// quotes with each `'` written as `'"'"'`.
    public static func quote(_ text: String) -> String {
        if text.isEmpty { return "''" }
        let safe = text.unicodeScalars.allSatisfy { c in
            guard c.isASCII else { return false }
            switch c {
            case "a"..."z", "A"..."Z", "0"..."9", "_", "@", "%", "+", "=", ":", ",", ".", "/", "-": return true
            default: return false
            }
        }
        if safe { return text }
        var out = "'"
        for c in text.unicodeScalars {
            if c == "'" {
                out += "'\"'\"'"
            } else {
                out.unicodeScalars.append(c)
            }
        }
        return out + "'"
    }

    /// Python `shlex.join(words)`: each word quoted with ``quote(_:)``, joined by spaces.
    /// This is the `sh -c` string Circus builds for `shell = true`.
    public static func join(_ words: [String]) -> String {
        words.map(quote).joined(separator: " ")
    }
}
