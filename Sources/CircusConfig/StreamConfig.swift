// A watcher's `stdout_stream.*` / `stderr_stream.*` keys, checked and typed: which of
// Circus's stream classes writes the output, and that class's options with Circus's
// defaults. Circus passes the keys to the class as keyword arguments and every class
// swallows unknown ones; here a key the class does not take is an error.

public import OrderedCollections

/// The class that writes a stream: one of those Circus ships (`circus.stream.*`), or a
/// Python class of the user's, which circusd runs in a Python helper.
public enum StreamClass: Hashable, Sendable {
    case file
    case watchedFile
    case timedRotatingFile
    case stdout
    case fancyStdout
    /// A callable Python class named by its dotted path (`myapp.streams.Syslog`), which
    /// Circus imports and calls with each chunk.
    case python(String)

    /// The classes circusd writes itself, in the order Circus documents them.
    public static let builtIn: [StreamClass] = [.file, .watchedFile, .timedRotatingFile, .stdout, .fancyStdout]

    /// A built-in class by its bare name (`FileStream`).
    public init?(builtInName name: String) {
        guard let found = Self.builtIn.first(where: { $0.name == name }) else { return nil }
        self = found
    }

    /// The class's name as a configuration gives it: the bare name of a built-in class,
    /// the dotted path of a Python one.
    public var name: String {
        switch self {
        case .file: return "FileStream"
        case .watchedFile: return "WatchedFileStream"
        case .timedRotatingFile: return "TimedRotatingFileStream"
        case .stdout: return "StdoutStream"
        case .fancyStdout: return "FancyStdoutStream"
        case .python(let path): return path
        }
    }

    /// The options a built-in class takes besides `class`, in Circus's constructor order
    /// (a Python class gets every key as a keyword argument, and its constructor decides).
    public var options: [String] {
        switch self {
        case .file: return ["filename", "max_bytes", "backup_count", "time_format"]
        case .watchedFile: return ["filename", "time_format"]
        case .timedRotatingFile:
            return ["filename", "backup_count", "time_format", "rotate_when", "rotate_interval", "utc"]
        case .stdout, .python: return []
        case .fancyStdout: return ["color", "time_format"]
        }
    }

    /// Whether the class writes to a file (the built-in others write to circusd's stdout).
    public var writesFile: Bool {
        switch self {
        case .file, .watchedFile, .timedRotatingFile: return true
        case .stdout, .fancyStdout, .python: return false
        }
    }

    /// The dotted path of a Python class; nil for a built-in one.
    public var pythonClass: String? {
        if case .python(let path) = self { return path }
        return nil
    }
}

/// When a `TimedRotatingFileStream` rolls over (`rotate_when`), as Python's
/// `TimedRotatingFileHandler` names it, case-sensitive as in Circus.
public enum RotationUnit: Hashable, Sendable {
    case second, minute, hour, day, midnight
    /// `W0` (Monday) to `W6` (Sunday).
    case weekday(Int)

    /// Parses Circus's spelling (`S`, `M`, `H`, `D`, `MIDNIGHT`, `W0`...`W6`).
    public init?(_ text: String) {
        switch text {
        case "S": self = .second
        case "M": self = .minute
        case "H": self = .hour
        case "D": self = .day
        case "MIDNIGHT": self = .midnight
        default:
            let scalars = Array(text.unicodeScalars)
            guard scalars.count == 2, scalars[0] == "W", let day = Int(String(scalars[1])), (0...6).contains(day)
            else { return nil }
            self = .weekday(day)
        }
    }

    /// Seconds in one unit, before `rotate_interval` multiplies it.
    public var seconds: Int {
        switch self {
        case .second: return 1
        case .minute: return 60
        case .hour: return 3600
        case .day, .midnight: return 86_400
        case .weekday: return 7 * 86_400
        }
    }

    /// The strftime suffix of a rotated file's name.
    public var suffix: String {
        switch self {
        case .second: return "%Y%m%d%H%M%S"
        case .minute: return "%Y%m%d%H%M"
        case .hour: return "%Y%m%d%H"
        case .day, .midnight, .weekday: return "%Y%m%d"
        }
    }

    /// The number of digits of that suffix (rotated files are recognised by it).
    public var suffixDigits: Int {
        switch self {
        case .second: return 14
        case .minute: return 12
        case .hour: return 10
        case .day, .midnight, .weekday: return 8
        }
    }
}

/// One configured output stream.
public struct StreamConfig: Hashable, Sendable {
    /// The class that writes.
    public var kind: StreamClass
    /// The file; nil for a file class means a new temporary file, as Circus's `mkstemp`.
    public var filename: String?
    /// FileStream: roll over before a write that would reach this size (0: never).
    public var maxBytes: Int = 0
    /// Rotated files kept (FileStream, TimedRotatingFileStream).
    public var backupCount: Int = 0
    /// strftime format of the `<time> [<pid>] | ` prefix; nil writes the bytes as they come.
    public var timeFormat: String?
    /// TimedRotatingFileStream's unit (required for that class).
    public var rotateWhen: RotationUnit?
    /// TimedRotatingFileStream: units per rollover.
    public var rotateInterval: Int = 1
    /// TimedRotatingFileStream: suffixes and midnight in UTC rather than local time.
    public var utc: Bool = false
    /// FancyStdoutStream's colour, 1 (red) to 7 (white); nil picks one at random.
    public var color: Int?
    /// A Python class's keyword arguments: every key but `class`, as strings, as Circus
    /// passes them.
    public var pythonOptions: OrderedDictionary<String, String> = [:]

    /// Colour names in the order of their ANSI codes (red is 31).
    public static let colors = ["red", "green", "yellow", "blue", "magenta", "cyan", "white"]

    /// FancyStdoutStream's time format when none is given.
    public static let fancyDefaultTimeFormat = "%Y-%m-%d %H:%M:%S"

    /// Creates a configuration of `kind` with Circus's defaults.
    public init(kind: StreamClass) {
        self.kind = kind
    }

    /// Checks one stream's keys as Circus's `get_stream` picks the class, and each value as
    /// the class converts it.
    ///
    /// - Parameter options: the keys after `stdout_stream.` / `stderr_stream.`, values
    ///   already expanded.
    /// - Returns: nil when no key is given (the processes inherit circusd's descriptor).
    /// - Throws: ``StreamConfigError`` naming the key at fault.
    public static func parse(_ options: OrderedDictionary<String, String>) throws(StreamConfigError) -> StreamConfig? {
        guard !options.isEmpty else { return nil }
        let kind: StreamClass
        if let name = options["class"] {
            kind = try streamClass(name)
        } else if options["filename"] != nil {
            kind = .file
        } else {
            throw StreamConfigError(
                key: options.keys.first ?? "class",
                message: "stream configuration invalid: give a class (FileStream, WatchedFileStream, "
                    + "TimedRotatingFileStream, StdoutStream, FancyStdoutStream) or a filename")
        }
        var config = StreamConfig(kind: kind)
        if kind.pythonClass != nil {
            config.pythonOptions = options.filter { $0.key != "class" }
            return config
        }
        for (key, value) in options where key != "class" {
            guard kind.options.contains(key) else {
                let takes = kind.options.isEmpty ? "takes no option" : "takes " + kind.options.joined(separator: ", ")
                let hint = key == "max_bytes" && kind == .timedRotatingFile
                    ? " (it rotates by time; max_bytes is FileStream's)" : ""
                throw StreamConfigError(key: key, message: "\(kind.name) \(takes)\(hint)")
            }
            switch key {
            case "filename": config.filename = value
            case "time_format": config.timeFormat = value
            case "max_bytes": config.maxBytes = try int(key, value)
            case "backup_count": config.backupCount = try int(key, value)
            case "rotate_interval":
                config.rotateInterval = try int(key, value)
                guard config.rotateInterval > 0 else {
                    throw StreamConfigError(key: key, message: "must be at least 1 (\(value))")
                }
            case "rotate_when":
                guard let unit = RotationUnit(value) else {
                    throw StreamConfigError(
                        key: key,
                        message: "\(PythonText.repr(value)) is not a rollover interval: S, M, H, D, MIDNIGHT or W0-W6 "
                            + "(upper case, as Circus reads them)")
                }
                config.rotateWhen = unit
            case "utc":
                do {
                    config.utc = try ValueParser.bool(value)
                } catch {
                    throw StreamConfigError(key: key, message: error.message)
                }
            case "color":
                guard let index = colors.firstIndex(of: value) else {
                    throw StreamConfigError(
                        key: key,
                        message: "\(PythonText.repr(value)) is not a colour: " + colors.joined(separator: ", ")
                            + " (leave it out for a random one)")
                }
                config.color = index + 1
            default:
                break
            }
        }
        if kind == .timedRotatingFile, config.rotateWhen == nil {
            throw StreamConfigError(
                key: "rotate_when", message: "TimedRotatingFileStream needs rotate_when (S, M, H, D, MIDNIGHT or W0-W6)")
        }
        if kind == .fancyStdout, config.timeFormat?.isEmpty ?? true {
            // Circus's `time_format or '%Y-%m-%d %H:%M:%S'`.
            config.timeFormat = fancyDefaultTimeFormat
        }
        return config
    }

    /// The class a `class` value names: a bare name, Circus's dotted one, or the dotted
    /// path of a Python class (imported and checked when circusd loads the configuration).
    private static func streamClass(_ name: String) throws(StreamConfigError) -> StreamClass {
        let circusPrefix = "circus.stream."
        let inCircus = name.hasPrefix(circusPrefix)
        let bare = inCircus ? String(name.dropFirst(circusPrefix.count)) : name
        if let kind = StreamClass(builtInName: bare) { return kind }
        let known = StreamClass.builtIn.map(\.name).joined(separator: ", ")
        if bare == "QueueStream" {
            throw StreamConfigError(
                key: "class",
                message: "QueueStream keeps the output in a Python queue inside Circus's process, for library use; "
                    + "circusd has no such queue: use one of \(known)")
        }
        if inCircus, !bare.contains(".") {
            throw StreamConfigError(
                key: "class", message: "circus.stream has no class \(PythonText.repr(bare)): use one of \(known)")
        }
        if name.contains(".") || name.contains(":") {
            guard HookTarget.isPythonDottedName(name) else {
                throw StreamConfigError(
                    key: "class", message: "\(PythonText.repr(name)) is not a Python dotted path (module.Class)")
            }
            return .python(name)
        }
        throw StreamConfigError(
            key: "class",
            message: "unknown stream class \(PythonText.repr(name)): use one of \(known), or a Python class as "
                + "module.Class")
    }

    private static func int(_ key: String, _ value: String) throws(StreamConfigError) -> Int {
        let number: Int
        do {
            number = try ValueParser.int(value)
        } catch {
            throw StreamConfigError(key: key, message: error.message)
        }
        guard number >= 0 else { throw StreamConfigError(key: key, message: "must not be negative (\(number))") }
        return number
    }
}

/// A stream key Circus would not accept, or that circusd cannot serve.
public struct StreamConfigError: Error, Hashable, Sendable {
    /// The key after the `stdout_stream.` / `stderr_stream.` prefix.
    public var key: String
    /// What is wrong.
    public var message: String
}

extension WatcherConfig {
    /// The watcher's two streams, parsed (nil for one it does not have).
    ///
    /// - Throws: ``StreamConfigError`` naming the key at fault.
    public func outputStreams() throws(StreamConfigError) -> (stdout: StreamConfig?, stderr: StreamConfig?) {
        (try StreamConfig.parse(stdoutStream), try StreamConfig.parse(stderrStream))
    }
}
