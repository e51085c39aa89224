// Circus's INI dialect: `StrictConfigParser`, a modified Python `RawConfigParser`.
// Users' files were debugged against its exact rules, so we reproduce them,
// quirks included: first definition wins, `;` is an inline comment only after
// whitespace, `#` never is, `rem` lines are comments, continuation lines join with "\n".

public import OrderedCollections

/// One option value and where it was written.
public struct IniValue: Hashable, Sendable {
    /// The value after comment removal, stripping, `""` handling and continuation joining.
    public var value: String
    /// The line of the `name = value` line (continuation lines do not move it).
    public var location: SourceLocation

    /// Creates a value.
    public init(value: String, location: SourceLocation) {
        self.value = value
        self.location = location
    }
}

/// A `[section]`: its options in the order they were first defined.
public struct IniSection: Hashable, Sendable {
    /// The header text between the brackets, as written.
    public var name: String
    /// The first header line that opened this section.
    public var location: SourceLocation
    /// Options by name (case-sensitive), in definition order.
    public var options: OrderedDictionary<String, IniValue>

    /// Creates a section.
    public init(name: String, location: SourceLocation, options: OrderedDictionary<String, IniValue> = [:]) {
        self.name = name
        self.location = location
        self.options = options
    }
}

/// The result of reading one or more files: the sections and the `[DEFAULT]` options.
///
/// The `__name__` key Python adds to every section is not represented: Circus leaks it into options and child
/// environments, which nothing relies on.
public struct IniDocument: Hashable, Sendable {
    /// The header of the section whose options every other section inherits.
    public static let defaultSectionName = "DEFAULT"

    /// `[DEFAULT]` options, in definition order.
    public var defaults: OrderedDictionary<String, IniValue> = [:]
    /// Sections in the order they were first opened (main file first, then includes).
    /// `[DEFAULT]` is not among them.
    public var sections: OrderedDictionary<String, IniSection> = [:]

    /// An empty document.
    public init() {}

    /// Whether a section of that exact name exists (`[DEFAULT]` does not count).
    public func hasSection(_ name: String) -> Bool {
        sections[name] != nil
    }

    /// The options of a section merged with `[DEFAULT]`, ordered as Python's
    /// `RawConfigParser.items` orders them: `[DEFAULT]`'s keys first (with the section's
    /// value when it has its own), then the section's other keys.
    ///
    /// - Returns: nil when the section does not exist.
    public func items(in section: String) -> OrderedDictionary<String, IniValue>? {
        guard let own = sections[section]?.options else { return nil }
        var merged = defaults
        for (key, value) in own {
            merged[key] = value
        }
        return merged
    }

    /// An option of a section, falling back to `[DEFAULT]`; nil when the section does
    /// not exist (Python's `has_option` ignores `[DEFAULT]` for missing sections).
    public func value(_ option: String, in section: String) -> IniValue? {
        guard let own = sections[section]?.options else { return nil }
        return own[option] ?? defaults[option]
    }
}

/// Reads files in Circus's INI dialect into an ``IniDocument``.
///
/// Read the main file first and then each include: a later file can add sections and
/// options but never replace an option already defined (first definition wins), and a
/// section opened again is extended.
///
/// Rules (from `circus.util.StrictConfigParser._read`):
/// - Lines end at `\n`, `\r\n` or `\r` (Python's universal newlines).
/// - Blank lines, lines starting with `#` or `;`, and lines whose first word is `rem`
///   (any case, `r`/`R` in column 0) are comments.
/// - A line starting with whitespace continues the previous option: its stripped text is
///   appended with `"\n"`. It extends the first definition when the option was a
///   repeated one, and is dropped when that definition came from an earlier file.
/// - `[header]` (the last `]` on the line closes it) opens or re-opens a section;
///   `[DEFAULT]` holds options every section inherits.
/// - `name = value` or `name : value`, split at the first `=` or `:`; the name keeps its
///   case and loses trailing whitespace. The first `;` in the value starts a comment if
///   the character before it is whitespace. The value is stripped; exactly `""` means
///   the empty string. No other unquoting.
/// - A line before any section header, or a line that is none of the above, is an error.
///   So is a line starting with `[` that is not a header (Python would take
///   `[watcher:web` for an option named `[watcher`).
/// - An option named `__name__` is ignored (Python's parser reserves it).
public struct IniParser: Sendable {
    /// Everything read so far.
    public private(set) var document: IniDocument

    /// Starts from `document` (empty by default).
    public init(document: IniDocument = IniDocument()) {
        self.document = document
    }

    /// Parses one file's text into a new document.
    ///
    /// - Throws: ``ConfigError`` for a line before the first section or a malformed line.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> IniDocument {
        var parser = IniParser()
        try parser.read(text, file: file)
        return parser.document
    }

    /// Adds one file's text to the document.
    ///
    /// - Parameters:
    ///   - text: the file's contents.
    ///   - file: the name to record in each ``SourceLocation``.
    /// - Throws: ``ConfigError`` at the first line before any section header or the first
    ///   malformed line. The document is left partly updated; discard it.
    public mutating func read(_ text: String, file: String) throws(ConfigError) {
        var currentSection: String?? = .none  // .none: no header yet; .some(nil): [DEFAULT]
        var currentOption: String?            // Python's `optname`
        var definedHere = Set<OptionKey>()    // options first defined in this file

        var lineNumber = 0
        for line in Self.lines(of: text) {
            lineNumber += 1
            let location = SourceLocation(file: file, line: lineNumber)
            guard let first = line.first, !line.allSatisfy(PythonText.isSpace) else { continue }
            if first == "#" || first == ";" { continue }
            if first == "r" || first == "R", Self.firstWordIsRem(line) { continue }

            if PythonText.isSpace(first), case .some(let section) = currentSection,
               let option = currentOption, !option.isEmpty {
                let text = PythonText.strip(String(String.UnicodeScalarView(line)))
                if !text.isEmpty, definedHere.contains(OptionKey(section: section, option: option)) {
                    appendContinuation(text, to: option, in: section)
                }
                continue
            }

            if let header = Self.sectionHeader(line) {
                if header == IniDocument.defaultSectionName {
                    currentSection = .some(nil)
                } else {
                    if document.sections[header] == nil {
                        document.sections[header] = IniSection(name: header, location: location)
                    }
                    currentSection = .some(header)
                }
                currentOption = nil
                continue
            }

            // Python's parser would read `[watcher:web` (no closing bracket) as an option
            // named `[watcher` in the previous section, and the watcher would silently
            // not exist.
            if first == "[" {
                let text = PythonText.repr(String(String.UnicodeScalarView(line)))
                let problem = line.contains("]") ? "a section header needs a name" : "a section header needs its closing ']'"
                throw ConfigError(at: location, message: "\(problem): \(text)")
            }

            guard case .some(let section) = currentSection else {
                throw ConfigError(
                    at: location,
                    message: "line before any [section] header: \(PythonText.repr(String(String.UnicodeScalarView(line))))")
            }

            guard let delimiter = line.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
                throw ConfigError(
                    at: location, section: section ?? IniDocument.defaultSectionName,
                    message: "malformed line (expected 'name = value', a [section] header or a comment): "
                        + PythonText.repr(String(String.UnicodeScalarView(line))))
            }
            let name = PythonText.rstrip(String(String.UnicodeScalarView(line[..<delimiter])))
            currentOption = name
            if name == "__name__" { continue }
            let key = OptionKey(section: section, option: name)
            if option(name, in: section) != nil { continue }  // first definition wins

            let value = Self.optionValue(Array(line[(delimiter + 1)...]))
            setOption(name, IniValue(value: value, location: location), in: section)
            definedHere.insert(key)
        }
    }

    // MARK: - Document updates

    private struct OptionKey: Hashable {
        var section: String?
        var option: String
    }

    private func option(_ name: String, in section: String?) -> IniValue? {
        if let section { return document.sections[section]?.options[name] }
        return document.defaults[name]
    }

    private mutating func setOption(_ name: String, _ value: IniValue, in section: String?) {
        if let section {
            document.sections[section]?.options[name] = value
        } else {
            document.defaults[name] = value
        }
    }

    private mutating func appendContinuation(_ text: String, to name: String, in section: String?) {
        if let section {
            document.sections[section]?.options[name]?.value += "\n" + text
        } else {
            document.defaults[name]?.value += "\n" + text
        }
    }

    // MARK: - Line syntax

    /// Splits at `\n`, `\r\n` and `\r`, as Python's text-mode `readline` does; a leading
    /// byte-order mark is dropped.
    static func lines(of text: String) -> [[Unicode.Scalar]] {
        var lines: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        var previousWasCR = false
        var scalars = text.unicodeScalars[...]
        if scalars.first == "\u{FEFF}" { scalars = scalars.dropFirst() }
        for c in scalars {
            if c == "\n" {
                if previousWasCR {
                    previousWasCR = false
                    continue
                }
                lines.append(current)
                current = []
            } else if c == "\r" {
                lines.append(current)
                current = []
                previousWasCR = true
            } else {
                current.append(c)
                previousWasCR = false
            }
        }
        if !current.isEmpty { lines.append(current) }
        return lines
    }

    /// `line.split(None, 1)[0].lower() == 'rem'`.
    private static func firstWordIsRem(_ line: [Unicode.Scalar]) -> Bool {
        let word = line.prefix { !PythonText.isSpace($0) }
        guard word.count == 3 else { return false }
        let lowered = String(String.UnicodeScalarView(word)).lowercased()
        return lowered == "rem"
    }

    /// `\[(?P<header>.+)\]` matched at the start of the line: the header runs to the last
    /// `]` and must not be empty.
    private static func sectionHeader(_ line: [Unicode.Scalar]) -> String? {
        guard line.first == "[", let close = line.lastIndex(of: "]"), close >= 2 else { return nil }
        return String(String.UnicodeScalarView(line[1..<close]))
    }

    /// The value part of an option line (after the delimiter): leading whitespace,
    /// inline `;` comment, surrounding whitespace and `""` handled as Python does.
    private static func optionValue(_ rest: [Unicode.Scalar]) -> String {
        var value = Array(rest.drop { PythonText.isSpace($0) })
        // Only the first `;` is considered, and it starts a comment when the character
        // before it is whitespace. For a `;` in first position Python looks at
        // `value[-1]`, the last character; we keep that quirk.
        if let semicolon = value.firstIndex(of: ";") {
            let before = semicolon > 0 ? value[semicolon - 1] : value[value.count - 1]
            if PythonText.isSpace(before) {
                value = Array(value[..<semicolon])
            }
        }
        let stripped = PythonText.strip(String(String.UnicodeScalarView(value)))
        return stripped == "\"\"" ? "" : stripped
    }
}
