// `validate_option` of Circus's `commands/util.py` (spec 3.5): the checks `set` and
// `add` apply to each key of their `options` object, in Circus's order, with its texts.

public import OrderedCollections

/// Validation of watcher options sent over the wire by `set` and `add`.
public enum OptionValidation {
    /// Keys `set` and `add` accept, besides the ``validPrefixes``.
    public static let validKeys: [String] = [
        "numprocesses", "warmup_delay", "working_dir", "uid", "gid", "send_hup", "stop_signal",
        "stop_children", "shell", "env", "cmd", "args", "copy_env", "retry_in", "max_retry",
        "graceful_timeout", "stdout_stream", "stderr_stream", "max_age", "max_age_variance", "respawn",
        "singleton", "hooks", "close_child_stdin", "close_child_stdout", "close_child_stderr",
    ]

    /// Key prefixes `set` and `add` accept; the value after the prefix is not checked,
    /// except that `rlimit_<x>` must name a resource limit.
    public static let validPrefixes: [String] = ["stdout_stream.", "stderr_stream.", "hooks.", "rlimit_"]

    /// Watcher options of the INI dialect (spec 2.3) that `add` rejects with
    /// `unknown key '<k>'`: they can only be set from a configuration file.
    public static let rejectedByAdd: [String] = [
        "shell_args", "executable", "copy_path", "priority", "use_sockets", "on_demand", "autostart",
        "check_flapping", "virtualenv", "virtualenv_py_ver", "stdin_socket",
    ]

    /// Hook names (`_HOOKS`), the keys a `hooks` object may have.
    public static let hookNames: [String] = [
        "before_start", "after_start", "before_stop", "after_stop", "before_spawn", "after_spawn",
        "before_signal", "after_signal", "before_reap", "after_reap", "extended_stats",
    ]

    /// Resource names `rlimit_<name>` may use: Python's `resource.RLIMIT_*` on Linux,
    /// lower-cased (the suffix is upper-cased before the lookup, so any case works).
    public static let rlimitNames: [String] = [
        "as", "core", "cpu", "data", "fsize", "memlock", "msgqueue", "nice", "nofile", "nproc", "ofile",
        "rss", "rtprio", "rttime", "sigpending", "stack",
    ]

    /// The watcher's option names (`optnames`, spec 3.6): what `get` accepts as keys and
    /// what `options` reports, besides free-form options. `autostart`, `copy_path`,
    /// `hooks`, `virtualenv`, `stdin_socket` and `rlimits` are deliberately absent.
    public static let watcherOptionNames: [String] = [
        "numprocesses", "warmup_delay", "working_dir", "uid", "gid", "send_hup", "stop_signal",
        "stop_children", "shell", "shell_args", "env", "max_retry", "cmd", "args", "respawn",
        "graceful_timeout", "executable", "use_sockets", "priority", "copy_env", "singleton",
        "stdout_stream_conf", "on_demand", "stderr_stream_conf", "max_age", "max_age_variance",
        "close_child_stdin", "close_child_stdout", "close_child_stderr",
    ]

    private static let integerKeys: Set<String> = [
        "numprocesses", "max_retry", "max_age", "max_age_variance", "stop_signal",
    ]
    private static let numberKeys: Set<String> = ["warmup_delay", "retry_in", "graceful_timeout"]
    private static let booleanKeys: Set<String> = [
        "send_hup", "shell", "copy_env", "respawn", "stop_children", "close_child_stdin", "close_child_stdout",
        "close_child_stderr",
    ]
    private static let validKeySet = Set(validKeys)
    private static let hookNameSet = Set(hookNames)
    private static let rlimitNameSet = Set(rlimitNames.map { $0.uppercased() })

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
        if integerKeys.contains(key) {
            guard isPythonInt(value) else { throw .notAnInteger(key) }
        } else if numberKeys.contains(key) {
            switch value {
            case .int, .bool, .double: break
            default: throw .notANumber(key)
            }
        } else if key == "uid" || key == "gid" {
            switch value {
            case .int, .bool, .string: break
            default: throw .notAnIntegerOrString(key)
            }
        } else if booleanKeys.contains(key) {
            guard case .bool = value else { throw .notABoolean(key) }
        } else if key == "env" {
            guard case .object(let env) = value else { throw .notAnObject(key) }
            for (name, member) in env {
                guard case .string = member else { throw .notAString(name) }
            }
        } else if key == "hooks" {
            guard case .object(let hooks) = value else { throw .notAHookDict(value) }
            for name in hooks.keys where !hookNameSet.contains(name) {
                throw .unknownHook(value)
            }
        } else if key == "stdout_stream" || key == "stderr_stream" {
            guard case .object(let stream) = value else { throw .notAnObject(key) }
            guard stream["class"] != nil else { throw .streamNeedsClass(key) }
        } else if key.hasPrefix("rlimit_") {
            guard rlimitNameSet.contains(String(key.dropFirst(7)).uppercased()) else { throw .invalidRlimit(key) }
            // null means unlimited (RLIM_INFINITY).
            guard value.isNull || isPythonInt(value) else { throw .invalidRlimitValue(value) }
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

    private static func isPythonInt(_ value: JSON) -> Bool {
        switch value {
        case .int, .bool: return true
        default: return false
        }
    }
}
