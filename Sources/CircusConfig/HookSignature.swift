// A declared C signature for a hook (`lib.so:fn(pid: int, signum: int) -> bool`): which
// of the hook's arguments go to which parameter, with what C type. Checked against the
// hook's own arguments when the configuration is loaded, so that a typo is a config error
// rather than a call with the wrong values.

/// A C type a declared hook signature may use.
public enum HookCType: String, CaseIterable, Hashable, Sendable {
    case void, bool, int32, int64, long, uint32, uint64, double, float
    /// `const char *` (NUL-terminated UTF-8, valid during the call).
    case string

    /// The type a spelling names: C's (`int32_t`, `unsigned int`, `const char *`) or a
    /// short one (`int32`, `cstring`).
    public init?(spelling: String) {
        let words = spelling.replacing("*", with: " * ").split(separator: " ").map(String.init)
        switch words.joined(separator: " ") {
        case "void": self = .void
        case "bool", "_Bool": self = .bool
        case "int", "signed", "signed int", "int32", "int32_t", "pid_t": self = .int32
        case "int64", "int64_t", "long long", "ssize_t": self = .int64
        case "long", "long int", "signed long": self = .long
        case "unsigned", "unsigned int", "uint32", "uint32_t": self = .uint32
        case "uint64", "uint64_t", "unsigned long", "unsigned long long", "size_t": self = .uint64
        case "double": self = .double
        case "float": self = .float
        case "char *", "const char *", "char const *", "string", "cstring": self = .string
        default: return nil
        }
    }

    /// Whether a hook argument of `kind` can be passed as this type.
    public func carries(_ kind: HookValueKind) -> Bool {
        switch kind {
        case .integer: isInteger
        case .real: self == .double || self == .float
        case .string: self == .string
        }
    }

    public var isInteger: Bool {
        switch self {
        case .int32, .int64, .long, .uint32, .uint64: true
        default: false
        }
    }

    static let spellings = "int, int32_t, int64_t, long, unsigned, uint64_t, double, float, bool, const char *"
}

/// One declared parameter: the hook argument it receives and its C type.
public struct HookParameter: Hashable, Sendable {
    public var argument: HookArgument
    public var type: HookCType
}

/// A checked declared signature.
public struct HookSignature: Hashable, Sendable {
    public var parameters: [HookParameter]
    /// `void` counts as returning Python's None, that is false; a `bool` or integer is
    /// the answer (a negative integer is a failure, as for the fixed hook signature).
    public var returnType: HookCType

    /// Checks `target`'s declared parameters and return type against what `point` passes.
    ///
    /// - Returns: nil for a target with the fixed hook signature.
    /// - Throws: ``ValueParseError`` naming the parameter or type at fault.
    public init?(_ target: HookTarget, for point: HookPoint) throws(ValueParseError) {
        guard let declared = target.parameters, let returned = target.returnType else { return nil }
        let offered = point.arguments.map(\.rawValue).joined(separator: ", ")
        var parameters: [HookParameter] = []
        if !declared.isEmpty {
            for item in declared.split(separator: ",", omittingEmptySubsequences: false) {
                let part = PythonText.strip(item)
                guard let colon = part.firstIndex(of: ":") else {
                    throw ValueParseError(
                        value: part, message: "parameter \(PythonText.repr(part)) is not 'name: type' (for example 'pid: int')")
                }
                let name = PythonText.strip(part[..<colon])
                let typeText = PythonText.strip(part[part.index(after: colon)...])
                guard let argument = HookArgument(rawValue: name), point.arguments.contains(argument) else {
                    throw ValueParseError(
                        value: name,
                        message: "\(point.rawValue) passes no argument \(PythonText.repr(name)): it passes \(offered)")
                }
                guard !parameters.contains(where: { $0.argument == argument }) else {
                    throw ValueParseError(value: name, message: "parameter \(PythonText.repr(name)) is declared twice")
                }
                guard let type = HookCType(spelling: typeText), type != .void else {
                    throw ValueParseError(
                        value: typeText,
                        message: "unknown type \(PythonText.repr(typeText)) for \(name): use one of \(HookCType.spellings)")
                }
                guard type.carries(argument.kind) else {
                    let wanted = switch argument.kind {
                    case .integer: "an integer type (int, int64_t, ...)"
                    case .real: "double or float"
                    case .string: "const char *"
                    }
                    throw ValueParseError(value: typeText, message: "\(name) cannot be passed as \(typeText): declare it as \(wanted)")
                }
                parameters.append(HookParameter(argument: argument, type: type))
            }
        }
        guard let result = HookCType(spelling: returned), result == .void || result == .bool || result.isInteger else {
            throw ValueParseError(
                value: returned,
                message: "return type \(PythonText.repr(returned)) is not one of bool, int (or another integer type), void")
        }
        self.parameters = parameters
        self.returnType = result
    }
}
