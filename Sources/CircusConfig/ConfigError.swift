// Errors of the configuration layer.
//
// circusd refuses to start on bad input, so every error must tell the user exactly which
// file, line, section and option to fix.

/// A configuration the daemon must refuse, with where it went wrong.
///
/// The description reads like a compiler diagnostic:
/// `circus.ini:12: [watcher:web] numprocesses: 'abc' is not an integer`.
/// Parts that do not apply are left out (a missing main file has no line, a malformed
/// line has no option).
public struct ConfigError: Error, CustomStringConvertible, Hashable, Sendable {
    /// The file as it was named (main file or include); nil when no file is involved.
    public var file: String?
    /// One-based line number in `file`, when the problem is on a line.
    public var line: Int?
    /// The section being built (`watcher:web`, `circus`, ...). For a value inherited from
    /// `[DEFAULT]` this is the section that used it, while `line` points into `[DEFAULT]`.
    public var section: String?
    /// The option at fault, spelled as in the file.
    public var option: String?
    /// What is wrong, for a human (values quoted as Python's `repr` quotes them).
    public var message: String

    /// Creates an error from its parts.
    public init(file: String? = nil, line: Int? = nil, section: String? = nil, option: String? = nil, message: String) {
        self.file = file
        self.line = line
        self.section = section
        self.option = option
        self.message = message
    }

    /// Creates an error located at a value's origin.
    public init(at location: SourceLocation?, section: String? = nil, option: String? = nil, message: String) {
        self.init(file: location?.file, line: location?.line, section: section, option: option, message: message)
    }

    /// `file:line: [section] option: message`, leaving out the parts that are nil.
    public var description: String {
        var text = ""
        if let file {
            text += file
            if let line { text += ":\(line)" }
            text += ": "
        }
        if let section { text += "[\(section)] " }
        if let option { text += "\(option): " }
        return text + message
    }
}

/// A value that Circus's parsers (`to_bool`, `int()`, `float()`, `int(x, 8)`) reject.
///
/// The message quotes the value the way Circus does (`'maybe' is not a boolean`), so the
/// control protocol can pass it on unchanged.
public struct ValueParseError: Error, CustomStringConvertible, Hashable, Sendable {
    /// The text that failed to parse.
    public var value: String
    /// The full message, e.g. `'abc' is not an integer`.
    public var message: String

    /// Creates an error for `value` with the given message.
    public init(value: String, message: String) {
        self.value = value
        self.message = message
    }

    /// The message alone (it already quotes the value).
    public var description: String { message }
}
