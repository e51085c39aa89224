// `validate_option` of Circus's `commands/util.py`: the checks `set` and
// `add` apply to each key of their `options` object, in Circus's order, with its texts.

public import OrderedCollections
public import CircusConfig

/// Validation of watcher options sent over the wire by `set` and `add`. Every list here
/// is a view of the one table of watcher options (``WatcherOptions``).
public enum OptionValidation {
    /// Keys `set` and `add` accept, besides the ``validPrefixes``: the options `set` may
    /// change, and the whole-object keys Circus also takes.
    public static let validKeys: [String] =
        WatcherOptions.all.filter { $0.liveChange != .refused }.map(\.name) + WatcherOptions.wireOnly.map(\.name)

    /// Key prefixes `set` and `add` accept; the value after the prefix is not checked,
    /// except that `rlimit_<x>` must name a resource limit.
    public static let validPrefixes: [String] = WatcherOptions.families.map(\.prefix)

    /// Watcher options of the INI dialect that `add` and `set` reject with
    /// `unknown key '<k>'`: they can only be set from a configuration file.
    public static let rejectedByAdd: [String] =
        WatcherOptions.all.filter { $0.liveChange == .refused && !$0.name.hasSuffix("_stream_conf") }.map(\.name)
            + WatcherOptions.freeForm.map(\.name)


    /// The watcher's option names (Circus's `optnames`): what `get` accepts as keys and
    /// what `options` reports, besides free-form options.
    public static let watcherOptionNames: [String] = WatcherOptions.shownNames

    private static let validKeySet = Set(validKeys)
    /// Hook names (Circus's `_HOOKS`), the keys a `hooks` object may have.
    private static let hookNameSet = Set(HookPoint.allCases.map(\.rawValue))

    /// True when `set`/`add` accept the key at all (before its value is looked at).
    public static func isAccepted(key: String) -> Bool {
        validKeySet.contains(key) || validPrefixes.contains { key.hasPrefix($0) }
    }

    /// Checks one option exactly as Circus's `validate_option(key, val)`.
    ///
    /// Python's `isinstance(x, int)` accepts booleans, so `true` passes as an integer
    /// and as a number, but an integral double such as `3.0` is not an integer.
    ///
    /// - Throws: errno 3, with the first failing check's text: `unknown key 'k'`,
    ///   `'k' isn't an integer`, `'k' isn't a number`, `'k' isn't an integer or string`,
    ///   `'k' isn't a valid boolean`, `'k' isn't a valid object`, `'NAME' isn't a string`,
    ///   `<value> isn't a valid hook dict`, `Unknown hook {...}`,
    ///   `'k' must have a 'class' key`, `'rlimit_x' isn't a valid rlimit setting`,
    ///   `<value> rlimit value isn't a valid int`.
    public static func validate(key: String, value: JSON) throws(CommandError) {
        guard isAccepted(key: key) else { throw .unknownKey(key) }
        if key.hasPrefix("rlimit_") {
            guard ResourceLimits.number(String(key.dropFirst(7))) != nil else { throw .invalidRlimit(key) }
            // null means unlimited (RLIM_INFINITY).
            guard value.isNull || isPythonInt(value) else { throw .invalidRlimitValue(value) }
            return
        }
        switch key {
        case "retry_in":
            guard isNumber(value) else { throw .notANumber(key) }
            return
        case "hook_timeout":
            // Ours, not Circus's: a deadline of nothing would fail every hook.
            guard isNumber(value) else { throw .notANumber(key) }
            guard let seconds = value.doubleValue, seconds > 0 else {
                throw .message("'hook_timeout' must be more than 0 seconds")
            }
            return
        case "hooks":
            guard case .object(let hooks) = value else { throw .notAHookDict(value) }
            for name in hooks.keys where !hookNameSet.contains(name) {
                throw .unknownHook(value)
            }
            return
        case "stdout_stream", "stderr_stream":
            guard case .object(let stream) = value else { throw .notAnObject(key) }
            guard stream["class"] != nil else { throw .streamNeedsClass(key) }
            return
        default:
            break
        }
        // Circus does not type-check `singleton` (it is applied with Python truthiness).
        guard let option = WatcherOptions.option(key), key != "singleton" else { return }
        switch option.type {
        case .count, .int, .signal:
            guard isPythonInt(value) else { throw .notAnInteger(key) }
        case .delay, .seconds:
            guard isNumber(value) else { throw .notANumber(key) }
        case .user:
            switch value {
            case .int, .bool, .string: break
            default: throw .notAnIntegerOrString(key)
            }
        case .bool:
            guard case .bool = value else { throw .notABoolean(key) }
        case .object:
            guard case .object(let env) = value else { throw .notAnObject(key) }
            for (name, member) in env {
                guard case .string = member else { throw .notAString(name) }
            }
        case .text, .command, .arguments:
            break
        }
    }

    /// Refuses an option that passed Circus's checks but that this version does not
    /// serve, so that nothing is accepted and silently ignored.
    ///
    /// - Throws: errno 3, `'<key>' is not supported yet by this version of circusd: <why>`.
    public static func checkServed(key: String) throws(CommandError) {
        let support = WatcherOptions.wireOnly.first { $0.name == key }?.support
            ?? WatcherOptions.families.first { key.hasPrefix($0.prefix) }?.support
        if case .notYet(let reason)? = support {
            throw .message("\(PythonText.repr(key)) is not supported yet by this version of circusd: \(reason)")
        }
    }

    /// Converts a validated option to the table's value, as Circus's `set_opt` (or, with
    /// `fromAdd`, the `Watcher` constructor that `add` calls) converts it.
    public static func value(of key: String, _ json: JSON, fromAdd: Bool) -> OptionValue {
        guard let option = WatcherOptions.option(key) else { return .none }
        switch option.type {
        case .count, .int, .signal:
            return .int(Int(truncatingIfNeeded: json.pythonInt ?? 0))
        case .delay:
            // `add` keeps the number as sent; `set` applies `float()`.
            if fromAdd, let n = json.pythonInt { return .int(Int(truncatingIfNeeded: n)) }
            return .float(json.doubleValue ?? 0)
        case .seconds:
            return .float(json.doubleValue ?? 0)
        case .bool:
            return .bool(json.isTruthy)
        case .text, .user, .command:
            switch json {
            case .null: return .none
            case .string(let s): return .string(s)
            default: return .string(JSONWriter.string(json))
            }
        case .arguments:
            switch json {
            case .null: return .none
            case .string(let s): return .string(s)
            case .array(let list): return .list(list.map { $0.stringValue ?? JSONWriter.string($0) })
            default: return .string(JSONWriter.string(json))
            }
        case .object:
            var object = OrderedDictionary<String, String>()
            for (k, v) in json.objectValue ?? [:] { object[k] = v.stringValue ?? JSONWriter.string(v) }
            return .dictionary(object)
        }
    }

    /// An option value as `options` and `get` put it on the wire.
    public static func json(_ value: OptionValue) -> JSON {
        switch value {
        case .none: return .null
        case .bool(let b): return .bool(b)
        case .int(let n): return .int(Int64(n))
        case .float(let x): return .double(x)
        case .string(let s): return .string(s)
        case .list(let l): return .array(l.map(JSON.string))
        case .dictionary(let d):
            var object = JSONObject()
            for (k, v) in d { object[k] = .string(v) }
            return .object(object)
        }
    }

    /// Checks the `options` property of `set` or `add`: it must be an object, and every
    /// member must pass ``validate(key:value:)`` (in order; the first failure is reported).
    ///
    /// - Returns: the options object.
    /// - Throws: `'options' property should be an object`, or the first option's error.
    public static func validate(options: JSON) throws(CommandError) -> JSONObject {
        guard case .object(let object) = options else { throw .optionsNotAnObject }
        for (key, value) in object { try validate(key: key, value: value) }
        return object
    }

    /// `add`'s endpoint-owner restriction: when circusd runs with `endpoint_owner`,
    /// `options.uid` must be that owner's name, as a string (Python `!=`).
    ///
    /// - Throws: `uid does not match endpoint_owner` (errno 3).
    public static func checkEndpointOwner(options: JSONObject, owner: String) throws(CommandError) {
        guard options["uid"] == .string(owner) else { throw .uidDoesNotMatchEndpointOwner }
    }

    private static func isNumber(_ value: JSON) -> Bool {
        switch value {
        case .int, .bool, .double: return true
        default: return false
        }
    }

    private static func isPythonInt(_ value: JSON) -> Bool {
        switch value {
        case .int, .bool: return true
        default: return false
        }
    }
}
