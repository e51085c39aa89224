// Errors a command answers with, carrying Circus's errno and its reason text byte for
// byte: circusctl prints the reason (`error: program ghost not found`) and scripts match
// on it, so every constructor below reproduces one `raise` of Circus 0.19, including its
// Python `%r` quoting.

internal import CircusConfig

/// Circus's error numbers (`circus/commands/errors.py`), sent as `errno` in error replies.
///
/// A struct rather than an enum so that new codes can be added without breaking
/// exhaustive switches in clients.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The number on the wire.
    public let rawValue: Int

    /// A code by number, for codes this module does not name.
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// 0 `NOT_SPECIFIED`: the default, unused by Circus's own commands.
    public static let notSpecified = ErrorCode(rawValue: 0)
    /// 1 `INVALID_JSON`: the body is not JSON; the reply's `id` is null.
    public static let invalidJSON = ErrorCode(rawValue: 1)
    /// 2 `UNKNOWN_COMMAND`.
    public static let unknownCommand = ErrorCode(rawValue: 2)
    /// 3 `MESSAGE_ERROR`: a property failed validation.
    public static let messageError = ErrorCode(rawValue: 3)
    /// 4 `OS_ERROR`: an operating-system call failed.
    public static let osError = ErrorCode(rawValue: 4)
    /// 5 `COMMAND_ERROR`: a conflict with a running command, or any unexpected failure.
    public static let commandError = ErrorCode(rawValue: 5)
    /// 6 `BAD_MSG_DATA_ERROR`: an asynchronous command failed while the client waited.
    public static let badMessageData = ErrorCode(rawValue: 6)

    public var description: String { String(rawValue) }
}

/// A failed command: what goes into an error reply (`status: "error"`).
public struct CommandError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The `errno` field.
    public var code: ErrorCode
    /// The `reason` field, shown by circusctl as `error: <reason>`.
    public var reason: String
    /// The `tb` field. Circus puts a Python traceback there for unexpected errors
    /// (errno 5); we have none to give, so it is normally nil (JSON `null`).
    public var traceback: String?

    /// An error with any code and reason; prefer the named constructors below, whose
    /// texts match Circus.
    public init(code: ErrorCode, reason: String, traceback: String? = nil) {
        self.code = code
        self.reason = reason
        self.traceback = traceback
    }

    public var description: String { "errno \(code.rawValue): \(reason)" }
}

// MARK: - Envelope errors (controller.py)

extension CommandError {
    /// errno 1 `json invalid`: the body is not JSON (or not UTF-8). Answered with `id` null.
    public static let invalidJSON = CommandError(code: .invalidJSON, reason: "json invalid")

    /// errno 2 `unknown command: 'x'`, the name quoted by Python `repr` as sent (not
    /// lower-cased): `unknown command: 'nope'`, `unknown command: "it's"`.
    public static func unknownCommand(_ name: String) -> CommandError {
        CommandError(code: .unknownCommand, reason: "unknown command: " + PythonText.repr(name))
    }

    /// errno 5 for an unexpected failure, shaped as Circus reports any exception escaping a
    /// command: `command b'<raw request>': <description>` (the raw request being the
    /// stripped body, printed as a Python bytes literal).
    ///
    /// - Parameters:
    ///   - rawRequest: the stripped request body (``Request/raw``).
    ///   - description: what went wrong, e.g. ``Text/cannotSpecifyChildpidWithoutPid``.
    public static func unexpected(rawRequest: some Sequence<UInt8>, _ description: String) -> CommandError {
        CommandError(code: .commandError, reason: "command \(PythonText.bytesRepr(rawRequest)): \(description)")
    }

    /// errno 6 `server error`: an asynchronous command failed while the client was
    /// waiting for it (`waiting: true`), or a command produced an invalid payload.
    public static let serverError = CommandError(code: .badMessageData, reason: "server error")

    /// errno 4 with the text of an operating-system error (Python's `str(OSError)`,
    /// e.g. `[Errno 2] No such file or directory: 'x'`).
    public static func osError(_ text: String) -> CommandError {
        CommandError(code: .osError, reason: text)
    }
}

// MARK: - Access control (not in Circus, which lets anyone in)

extension CommandError {
    /// errno 4 `OS_ERROR`: the sender's uid has no grant for this command, as the kernel
    /// refuses an operation with EPERM. The reason names the uid, the command and the
    /// `[circus]` options that would allow it:
    /// `uid 65534 may not send 'add': grant it with control_users or control_groups in
    /// [circus] (root, circusd's own user and endpoint_owner may send every command)`.
    public static func notPermitted(uid: UInt32, command: String, access: CommandAccess) -> CommandError {
        CommandError(code: .osError, reason: "uid \(uid) may not send \(PythonText.repr(command)): grant it with \(grantingOptions(access))")
    }

    /// errno 4: the sender could not be identified, so it has no grant at all.
    public static func unidentifiedSender(command: String, why: String, access: CommandAccess) -> CommandError {
        CommandError(
            code: .osError,
            reason: "cannot tell who sent \(PythonText.repr(command)) (\(why)); only identified users may: grant them with \(grantingOptions(access))")
    }

    private static func grantingOptions(_ access: CommandAccess) -> String {
        let options: String
        switch access {
        case .readOnly: options = "readonly_users, readonly_groups, control_users or control_groups"
        case .control: options = "control_users or control_groups"
        }
        return "\(options) in [circus] \(alwaysAllowed)"
    }

    /// Who needs no grant; endpoint_owner is circusd's choice (Circus only gives it the
    /// socket file), said here so that nobody is surprised by it.
    private static let alwaysAllowed = "(root, circusd's own user and endpoint_owner may send every command)"
}

// MARK: - Lock conflicts (util.synchronized)

extension CommandError {
    /// errno 5 `arbiter is already running <name> command`: another locked operation
    /// (`watcher_stop`, `manage_watchers`, `arbiter_reload_config`, ...) holds the lock.
    public static func alreadyRunning(_ operation: String) -> CommandError {
        CommandError(code: .commandError, reason: "arbiter is already running \(operation) command")
    }

    /// errno 5 `arbiter is restarting...`: an in-process restart is pending.
    public static let arbiterRestarting = CommandError(code: .commandError, reason: "arbiter is restarting...")
}

// MARK: - Validation errors (errno 3)

extension CommandError {
    /// A `MESSAGE_ERROR` (errno 3) with the given reason.
    public static func message(_ reason: String) -> CommandError {
        CommandError(code: .messageError, reason: reason)
    }

    /// `message invalid 'name' is missing`: a required property is absent.
    public static func missingProperty(_ name: String) -> CommandError {
        .message("message invalid \(PythonText.repr(name)) is missing")
    }

    /// `program <name> not found` (name with `%s`, as sent): no watcher by that name, or
    /// no watcher matches the pattern of start/stop/restart.
    public static func programNotFound(_ name: String) -> CommandError {
        .message("program \(name) not found")
    }

    /// `program <name> not found` for a name property that is not a string (`%s` of
    /// the Python value).
    public static func programNotFound(_ name: JSON) -> CommandError {
        programNotFound(PythonText.str(name))
    }

    /// `unknown match method <m>` (`%s`): `match` is not simple, glob or regex.
    public static func unknownMatchMethod(_ method: JSON) -> CommandError {
        .message("unknown match method \(PythonText.str(method))")
    }

    /// `process <pid> not found in <name>` with both `%r`: `process 16115 not found in
    /// 'web app'`, or `process '16115' ...` when the pid was sent as a string.
    public static func processNotFound(process: JSON, name: JSON) -> CommandError {
        .message("process \(PythonText.repr(process)) not found in \(PythonText.repr(name))")
    }

    /// `'<key>' option not found`: `get` asked for a key that is not an option name.
    public static func optionNotFound(_ key: JSON) -> CommandError {
        .message("\(PythonText.repr(key)) option not found")
    }

    /// `'<option>' not an existing option`: `globaloptions` asked for an unknown option.
    public static func notAnExistingOption(_ option: JSON) -> CommandError {
        .message("\(PythonText.repr(option)) not an existing option")
    }

    /// `invalid message. use a pub/sub socket`: `listen` sent to the control socket.
    public static let usePubSubSocket = CommandError.message("invalid message. use a pub/sub socket")

    /// `uid does not match endpoint_owner`: `add` in endpoint-owner mode without the
    /// owner's uid in `options.uid`.
    public static let uidDoesNotMatchEndpointOwner = CommandError.message("uid does not match endpoint_owner")

    /// `signal invalid`: Circus's intended answer for an unknown signal name (in 0.19 an
    /// AttributeError escapes first and the client gets errno 5 instead).
    public static let signalInvalid = CommandError.message("signal invalid")

    /// `'options' property should be an object` (`add`, `set`).
    public static let optionsNotAnObject = CommandError.message("'options' property should be an object")

    /// `unknown key '<k>'`: not an option `set`/`add` accept.
    public static func unknownKey(_ key: String) -> CommandError {
        .message("unknown key \(PythonText.repr(key))")
    }

    /// `'<k>' isn't an integer`.
    public static func notAnInteger(_ key: String) -> CommandError {
        .message("\(PythonText.repr(key)) isn't an integer")
    }

    /// `'<k>' isn't a number`.
    public static func notANumber(_ key: String) -> CommandError {
        .message("\(PythonText.repr(key)) isn't a number")
    }

    /// `'<k>' isn't an integer or string` (`uid`, `gid`).
    public static func notAnIntegerOrString(_ key: String) -> CommandError {
        .message("\(PythonText.repr(key)) isn't an integer or string")
    }

    /// `'<k>' isn't a valid boolean`.
    public static func notABoolean(_ key: String) -> CommandError {
        .message("\(PythonText.repr(key)) isn't a valid boolean")
    }

    /// `'<k>' isn't a valid object` (`env`, `stdout_stream`, `stderr_stream`).
    public static func notAnObject(_ key: String) -> CommandError {
        .message("\(PythonText.repr(key)) isn't a valid object")
    }

    /// `'<name>' isn't a string`: an `env` value that is not a string (the key is the
    /// environment variable's name).
    public static func notAString(_ key: String) -> CommandError {
        .message("\(PythonText.repr(key)) isn't a string")
    }

    /// `'<k>' isn't a list`. Not a Circus text (Circus does not check list properties
    /// and fails later with errno 5); worded like its siblings.
    public static func notAList(_ key: String) -> CommandError {
        .message("\(PythonText.repr(key)) isn't a list")
    }

    /// `<value> isn't a valid hook dict` (the value's `repr`): `hooks` is not an object.
    public static func notAHookDict(_ value: JSON) -> CommandError {
        .message("\(PythonText.repr(value)) isn't a valid hook dict")
    }

    /// `Unknown hook {'bogus': 'x'}`: the whole `hooks` object as a Python dict repr.
    public static func unknownHook(_ hooks: JSON) -> CommandError {
        .message("Unknown hook \(PythonText.repr(hooks))")
    }

    /// `'<k>' must have a 'class' key` (`stdout_stream`, `stderr_stream`).
    public static func streamNeedsClass(_ key: String) -> CommandError {
        .message("\(PythonText.repr(key)) must have a 'class' key")
    }

    /// `'rlimit_<x>' isn't a valid rlimit setting`.
    public static func invalidRlimit(_ key: String) -> CommandError {
        .message("\(PythonText.repr(key)) isn't a valid rlimit setting")
    }

    /// `<value> rlimit value isn't a valid int` (the value's `repr`).
    public static func invalidRlimitValue(_ value: JSON) -> CommandError {
        .message("\(PythonText.repr(value)) rlimit value isn't a valid int")
    }
}

// MARK: - Texts of errno 5 failures

extension CommandError {
    /// Descriptions Circus gives to failures that reach the client as errno 5
    /// (`command b'...': <text>`); pass them to ``unexpected(rawRequest:_:)``.
    public enum Text {
        /// `signal` with `childpid` but no `pid`.
        public static let cannotSpecifyChildpidWithoutPid = "cannot specify childpid without pid"
        /// `set numprocesses > 1` on a singleton watcher.
        public static let singletonHasSingleProcess = "Singleton watcher has a single process"

        /// `add` with a name already used, compared case-insensitively: `'ALPHA' already exist`.
        public static func alreadyExist(_ name: String) -> String {
            "\(PythonText.repr(name)) already exist"
        }
    }
}
