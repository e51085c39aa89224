// Python's `fnmatch.fnmatch` (POSIX: case-sensitive), used for `[env:PATTERNS]` sections
// and by the daemon wherever Circus matches watcher names against shell patterns.

/// Shell-style wildcard matching with Python `fnmatch` semantics.
public enum Fnmatch {
    /// Whether `name` matches `pattern` the way Python's `fnmatch.fnmatch` decides on Linux.
    ///
    /// `*` matches any run of characters (including `/`, a leading `.` and newlines), `?`
    /// any one character, `[seq]` / `[!seq]` a set with ranges (`[a-z]`; reversed ranges
    /// such as `[z-a]` match nothing); a `[` with no closing `]` is literal. There is no
    /// escape character, and matching is case-sensitive.
    public static func matches(pattern: String, name: String) -> Bool {
        Pattern(pattern).matches(name)
    }

    /// A compiled pattern, for matching many names against the same pattern.
    public struct Pattern: Hashable, Sendable {
        /// The pattern text as given.
        public let text: String
        private let tokens: [Token]

        /// Compiles `text` (this never fails: any text is a valid pattern).
        public init(_ text: String) {
            self.text = text
            self.tokens = Self.compile(Array(text.unicodeScalars))
        }

        /// Whether `name` matches the whole pattern.
        public func matches(_ name: String) -> Bool {
            let input = Array(name.unicodeScalars)
            // Iterative wildcard matching with one backtrack point: every token other than
            // `*` consumes exactly one character, so retrying from the last star suffices.
            var t = 0
            var i = 0
            var starToken = -1
            var starInput = 0
            while i < input.count {
                if t < tokens.count, case .star = tokens[t] {
                    starToken = t
                    starInput = i
                    t += 1
                } else if t < tokens.count, tokens[t].matches(input[i]) {
                    t += 1
                    i += 1
                } else if starToken >= 0 {
                    t = starToken + 1
                    starInput += 1
                    i = starInput
                } else {
                    return false
                }
            }
            while t < tokens.count, case .star = tokens[t] { t += 1 }
            return t == tokens.count
        }

        enum Token: Hashable, Sendable {
            case star
            case any
            case literal(Unicode.Scalar)
            case set(negated: Bool, singles: Set<UInt32>, ranges: [ClosedRange<UInt32>])
            case never

            func matches(_ c: Unicode.Scalar) -> Bool {
                switch self {
                case .star, .any: return true
                case .literal(let l): return l == c
                case .never: return false
                case .set(let negated, let singles, let ranges):
                    let inSet = singles.contains(c.value) || ranges.contains { $0.contains(c.value) }
                    return inSet != negated
                }
            }
        }

        /// A port of Python 3.11's `fnmatch.translate`, producing tokens instead of a regex.
        private static func compile(_ pat: [Unicode.Scalar]) -> [Token] {
            var tokens: [Token] = []
            var i = 0
            let n = pat.count
            while i < n {
                let c = pat[i]
                i += 1
                if c == "*" {
                    if tokens.last != .star { tokens.append(.star) }
                } else if c == "?" {
                    tokens.append(.any)
                } else if c == "[" {
                    var j = i
                    if j < n && pat[j] == "!" { j += 1 }
                    if j < n && pat[j] == "]" { j += 1 }
                    while j < n && pat[j] != "]" { j += 1 }
                    if j >= n {
                        tokens.append(.literal("["))
                        continue
                    }
                    tokens.append(setToken(pat, from: i, to: j))
                    i = j + 1
                } else {
                    tokens.append(.literal(c))
                }
            }
            return tokens
        }

        /// The token for the bracket expression `pat[start..<end]` (between `[` and `]`).
        private static func setToken(_ pat: [Unicode.Scalar], from start: Int, to end: Int) -> Token {
            let stuff = Array(pat[start..<end])
            // Python splits the set at range hyphens into "chunks": the last character of
            // one chunk and the first of the next form a range; everything else is literal.
            var chunks: [[Unicode.Scalar]]
            if !stuff.contains("-") {
                chunks = [stuff]
            } else {
                chunks = []
                var i = start
                var k = pat[start] == "!" ? start + 2 : start + 1
                while true {
                    guard let hyphen = (k < end ? pat[k..<end].firstIndex(of: "-") : nil) else { break }
                    chunks.append(Array(pat[i..<hyphen]))
                    i = hyphen + 1
                    k = hyphen + 3
                }
                let last = Array(pat[min(i, end)..<end])
                if !last.isEmpty {
                    chunks.append(last)
                } else {
                    chunks[chunks.count - 1].append("-")
                }
                // Remove empty ranges (`z-a`), which Python drops together with their ends.
                var k2 = chunks.count - 1
                while k2 > 0 {
                    if chunks[k2 - 1].last!.value > chunks[k2].first!.value {
                        chunks[k2 - 1] = Array(chunks[k2 - 1].dropLast()) + Array(chunks[k2].dropFirst())
                        chunks.remove(at: k2)
                    }
                    k2 -= 1
                }
            }
            let flat = chunks.flatMap { $0 }
            if flat.isEmpty && chunks.count <= 1 { return .never }
            if chunks.count == 1 && flat == ["!"] { return .any }
            var negated = false
            if chunks[0].first == "!" {
                negated = true
                chunks[0].removeFirst()
            }
            var singles = Set<UInt32>()
            var ranges: [ClosedRange<UInt32>] = []
            for (index, chunk) in chunks.enumerated() {
                var body = chunk[...]
                if index > 0, let first = body.first {
                    // This chunk's first character closes the range opened by the previous one.
                    let low = chunks[index - 1].last!.value
                    ranges.append(low...first.value)
                    body = body.dropFirst()
                }
                if index < chunks.count - 1, !body.isEmpty {
                    body = body.dropLast()  // opens the next range
                }
                for c in body { singles.insert(c.value) }
            }
            return .set(negated: negated, singles: singles, ranges: ranges)
        }
    }
}
