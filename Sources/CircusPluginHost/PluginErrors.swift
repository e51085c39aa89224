// The errors of the plugin host, each with a message a user can act on: which file,
// which check, both values when two disagree, and what to do about it.

public import CircusProtocol

/// Why a plugin library could not be loaded, or an instance could not be set up.
public struct PluginLoadError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The check that failed.
    public enum Kind: Hashable, Sendable {
        /// The file or a directory above it is writable by others, or owned by someone
        /// other than root or the daemon's user.
        case untrusted
        /// The file is missing, unreadable, or `dlopen` refused it.
        case openFailed
        /// The library does not export `circus_plugin_describe`.
        case noEntryPoint
        /// `circus_plugin_describe` returned NULL (the plugin refuses this host's ABI).
        case refusedHost
        /// The descriptor's magic, size, name or vtable is wrong.
        case badDescriptor
        /// The plugin was built for another ABI major version.
        case abiMismatch
        /// The plugin asks to run in a separate process. (No longer thrown: such a plugin
        /// runs in a circus-plugin-host process.)
        case isolationRequired
        /// An instance name is invalid or taken, or a second instance of a plugin that
        /// does not allow several.
        case badInstance
        /// The instance's thread could not be started.
        case resources
    }

    /// The check that failed.
    public var kind: Kind
    /// The library's path, as given.
    public var path: String
    /// The whole message, naming the file.
    public var message: String

    /// An error of `kind` about `path`.
    public init(_ kind: Kind, path: String, message: String) {
        self.kind = kind
        self.path = path
        self.message = message
    }

    public var description: String { message }
}

/// Why a plugin instance's `create`, `start` or `reconfigure` failed.
public struct PluginInstanceError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The instance (`NAME` of `[plugin:NAME]`).
    public var instance: String
    /// The status the plugin returned (a `CIRCUS_E_*` code).
    public var status: Int32
    /// What the plugin said through its error sink, or what the host knows.
    public var message: String

    /// An error of the instance `instance`.
    public init(instance: String, status: Int32, message: String) {
        self.instance = instance
        self.status = status
        self.message = message
    }

    public var description: String { "plugin \(instance): \(message)" }
}

/// Why a command or hook request to a plugin got no useful answer.
public struct PluginRequestError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The failure class, one per `CIRCUS_E_*` status.
    public enum Code: Int32, Hashable, Sendable {
        /// `CIRCUS_E_INVALID`: bad arguments, or a malformed answer.
        case invalid = -1
        /// `CIRCUS_E_NOT_FOUND`: no such command or hook.
        case notFound = -2
        /// `CIRCUS_E_UNSUPPORTED`.
        case unsupported = -3
        /// `CIRCUS_E_BUSY`: the instance's queue is full.
        case busy = -4
        /// `CIRCUS_E_TIMEOUT`: no answer before the deadline.
        case timeout = -5
        /// `CIRCUS_E_INTERNAL`.
        case `internal` = -6
        /// `CIRCUS_E_CANCELLED`: the instance was stopped before it answered.
        case cancelled = -7

        /// The code for a plugin's status; anything unknown counts as internal.
        init(status: Int32) { self = Code(rawValue: status) ?? .internal }
    }

    /// The failure class.
    public var code: Code
    /// The reason, as shown to the user who asked.
    public var reason: String

    /// An error with its class and reason.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { reason }

    /// The same failure as a control-socket error reply (Circus's "command error").
    public var commandError: CommandError { CommandError(code: .commandError, reason: reason) }
}
