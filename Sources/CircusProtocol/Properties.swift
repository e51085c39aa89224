// Typed access to a request's `properties`, failing with Circus's errno 3 texts.
//
// Circus itself checks little beyond presence: a property of the wrong type usually
// surfaces later as a Python exception (errno 5). These getters answer such requests
// up front with the clear errno 3 message Circus uses for the same type in
// `validate_option` (`'nb' isn't an integer`), which no client can tell from a crash
// except by its better text.
//
// Conventions: the optional getters return nil for a missing key and for `null` (Python's
// `props.get(key)` cannot tell them apart); the `require...` getters fail with
// `message invalid '<key>' is missing` when the key is absent and with the type error
// when it is `null` or of another type.

public import OrderedCollections
internal import CircusConfig

extension OrderedDictionary where Key == String, Value == JSON {
    /// The value of a required property (any type, `null` included).
    ///
    /// - Throws: `message invalid '<key>' is missing` (errno 3) when absent.
    public func require(_ key: String) throws(CommandError) -> JSON {
        guard let value = self[key] else { throw .missingProperty(key) }
        return value
    }

    /// A string property.
    ///
    /// - Throws: `'<key>' isn't a string` (errno 3) for another type.
    public func string(_ key: String) throws(CommandError) -> String? {
        switch self[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        default: throw .notAString(key)
        }
    }

    /// A required string property.
    ///
    /// - Throws: `message invalid '<key>' is missing` or `'<key>' isn't a string`.
    public func requireString(_ key: String) throws(CommandError) -> String {
        guard let value = try string(key) else { throw missingOrNull(key, CommandError.notAString(key)) }
        return value
    }

    /// An integer property. Booleans count as 0 and 1, as `isinstance(x, int)` accepts
    /// them in Python; doubles do not.
    ///
    /// - Throws: `'<key>' isn't an integer` (errno 3) for another type.
    public func int(_ key: String) throws(CommandError) -> Int64? {
        switch self[key] {
        case nil, .null?: return nil
        case .int(let i)?: return i
        case .bool(let b)?: return b ? 1 : 0
        default: throw .notAnInteger(key)
        }
    }

    /// A required integer property.
    public func requireInt(_ key: String) throws(CommandError) -> Int64 {
        guard let value = try int(key) else { throw missingOrNull(key, CommandError.notAnInteger(key)) }
        return value
    }

    /// A number property (integer, double, or boolean as 0/1), as a double.
    ///
    /// - Throws: `'<key>' isn't a number` (errno 3) for another type.
    public func number(_ key: String) throws(CommandError) -> Double? {
        switch self[key] {
        case nil, .null?: return nil
        case .int(let i)?: return Double(i)
        case .double(let d)?: return d
        case .bool(let b)?: return b ? 1 : 0
        default: throw .notANumber(key)
        }
    }

    /// A required number property.
    public func requireNumber(_ key: String) throws(CommandError) -> Double {
        guard let value = try number(key) else { throw missingOrNull(key, CommandError.notANumber(key)) }
        return value
    }

    /// A strict boolean property (`true`/`false` only). For flags Circus reads with
    /// Python truthiness (`waiting`, `start`, `nostop`, `extended`, ...) use ``flag(_:default:)``.
    ///
    /// - Throws: `'<key>' isn't a valid boolean` (errno 3) for another type.
    public func bool(_ key: String) throws(CommandError) -> Bool? {
        switch self[key] {
        case nil, .null?: return nil
        case .bool(let b)?: return b
        default: throw .notABoolean(key)
        }
    }

    /// A required strict boolean property.
    public func requireBool(_ key: String) throws(CommandError) -> Bool {
        guard let value = try bool(key) else { throw missingOrNull(key, CommandError.notABoolean(key)) }
        return value
    }

    /// A flag read as Circus reads it: `props.get(key, default)` tested for Python
    /// truthiness. A present `null` is false, as in Python.
    public func flag(_ key: String, default defaultValue: Bool = false) -> Bool {
        guard let value = self[key] else { return defaultValue }
        return value.isTruthy
    }

    /// An object property.
    ///
    /// - Throws: `'<key>' isn't a valid object` (errno 3) for another type.
    public func object(_ key: String) throws(CommandError) -> JSONObject? {
        switch self[key] {
        case nil, .null?: return nil
        case .object(let o)?: return o
        default: throw .notAnObject(key)
        }
    }

    /// A required object property.
    public func requireObject(_ key: String) throws(CommandError) -> JSONObject {
        guard let value = try object(key) else { throw missingOrNull(key, CommandError.notAnObject(key)) }
        return value
    }

    /// A list property.
    ///
    /// - Throws: `'<key>' isn't a list` (errno 3; our wording, Circus has no such check).
    public func list(_ key: String) throws(CommandError) -> [JSON]? {
        switch self[key] {
        case nil, .null?: return nil
        case .array(let a)?: return a
        default: throw .notAList(key)
        }
    }

    /// A required list property.
    public func requireList(_ key: String) throws(CommandError) -> [JSON] {
        guard let value = try list(key) else { throw missingOrNull(key, CommandError.notAList(key)) }
        return value
    }

    /// A signal property (`signal`'s and `kill`'s `signum`), converted as Circus's
    /// `to_signum` does: an integer (or anything Python's `int()` takes), or a name with
    /// an optional `SIG` prefix and `+N` offset (`TERM`, `sigusr1`, `SIGRTMIN+1`).
    ///
    /// - Throws: `signal invalid` (errno 3) for anything else. Circus 0.19 meant to
    ///   answer this but lets an AttributeError escape first (errno 5).
    public func signal(_ key: String) throws(CommandError) -> Int32? {
        guard let value = self[key], !value.isNull else { return nil }
        if let number = value.pythonInt {
            guard let signal = Int32(exactly: number) else { throw .signalInvalid }
            return signal
        }
        if case .string(let name) = value, let signal = Signals.number(name) { return signal }
        throw .signalInvalid
    }

    private func missingOrNull(_ key: String, _ typeError: CommandError) -> CommandError {
        self[key] == nil ? .missingProperty(key) : typeError
    }
}
