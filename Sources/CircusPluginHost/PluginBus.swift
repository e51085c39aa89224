// The line between the plugin host and the daemon. The host knows nothing of watchers,
// the supervisor or ZeroMQ: it needs a few things from the daemon (this protocol), and the
// daemon reaches plugins through a few methods of `PluginHost` (`deliver(_:)`,
// `invokeCommand(named:arguments:deadline:reply:)`, `invokeHook(_:request:deadline:completion:)`).

public import CircusProtocol
import OrderedCollections
public import Logging

/// What the plugin host needs from the daemon.
///
/// The host calls these methods from any thread: a plugin's executor thread, a thread
/// of the plugin's own, the host's deadline thread, or the thread that called into the
/// host. An implementation must be thread-safe, must not block (hand the work to the
/// daemon's loop and return), and may call back into the host from inside any of them:
/// the host's entry points only enqueue.
///
/// Names: plugin commands are `<instance>.<verb>`, plugin topics `plugin.<instance>.<...>`;
/// the host has already checked both.
public protocol PluginBus: AnyObject, Sendable {
    /// Publishes an event a plugin published, or the host's own
    /// `plugin.<instance>.dropped` (`{"count": n, "time": t}`).
    ///
    /// The daemon sends it to pub/sub subscribers and hands it back to
    /// `PluginHost.deliver(_:)` like every other event, so plugins see each other's
    /// events (and their own, if subscribed).
    func publish(_ event: EventMessage)

    /// Runs the command `name` (built-in or another plugin's) for the plugin instance
    /// `instance`, as the control socket would for a client with control access, and
    /// calls `reply` exactly once, from any thread, with the reply's payload (the
    /// properties of a `{"status": "ok"}` reply, without `time` and `id`; a `status` key,
    /// as the `status` command returns, is kept and replaces "ok") or the error.
    func runCommand(
        _ name: String, arguments: JSONObject, from instance: String,
        reply: @escaping @Sendable (Result<JSONObject, CommandError>) -> Void)

    /// Makes a plugin command reachable from the control socket and `list-commands`.
    /// Requests for it go to `PluginHost.invokeCommand(named:arguments:deadline:reply:)`.
    func registerCommand(_ command: PluginCommand)

    /// Removes a command registered with `registerCommand(_:)` (the instance cancelled
    /// it or was stopped).
    func unregisterCommand(named name: String)

    /// Asks the daemon to consult a plugin for a watcher hook. Requests for it go to
    /// `PluginHost.invokeHook(_:request:deadline:completion:)` with `hook.id`.
    func registerHook(_ hook: PluginHook)

    /// Removes a hook registered with `registerHook(_:)`.
    func unregisterHook(_ id: PluginHookID)

    /// Logs a plugin's message (or the host's message about a plugin), with the instance
    /// name as metadata.
    func log(_ level: Logger.Level, instance: String, message: String)

    /// Why this daemon cannot send plugins command and hook requests, or nil when it can
    /// (the default). When set, a plugin's `register_command` and `register_hook` fail
    /// with CIRCUS_E_UNSUPPORTED and this reason is logged.
    var requestRefusal: String? { get }
}

extension PluginBus {
    /// Requests are served.
    public var requestRefusal: String? { nil }
}

/// A command a plugin registered.
public struct PluginCommand: Hashable, Sendable {
    /// `<instance>.<verb>`.
    public var name: String
    /// The instance that answers it.
    public var instance: String
    /// The plugin's metadata: `{"help": "...", "args": {...}}` (possibly empty).
    public var meta: JSONObject
    /// Who may call it: `.control` unless the plugin declared it read-only.
    public var access: CommandAccess

    /// The one-line help, if the plugin gave one.
    public var help: String? { meta["help"]?.stringValue }

    /// A command description.
    public init(name: String, instance: String, meta: JSONObject, access: CommandAccess) {
        self.name = name
        self.instance = instance
        self.meta = meta
        self.access = access
    }
}

/// Identifies one hook registration, for `invokeHook` and `unregisterHook`.
public struct PluginHookID: Hashable, Sendable, CustomStringConvertible {
    /// The instance that registered it.
    public var instance: String
    /// A number unique in the host (never reused, even by a later instance of the same name).
    public var serial: UInt64

    public var description: String { "\(instance)#\(serial)" }
}

/// A watcher hook a plugin registered.
public struct PluginHook: Hashable, Sendable {
    /// Pass it to `PluginHost.invokeHook`.
    public var id: PluginHookID
    /// An fnmatch pattern of watcher names (`*`, `web*`).
    public var watcherPattern: String
    /// `before_start`, `after_spawn`, ...
    public var hookName: String

    /// A hook description.
    public init(id: PluginHookID, watcherPattern: String, hookName: String) {
        self.id = id
        self.watcherPattern = watcherPattern
        self.hookName = hookName
    }
}
