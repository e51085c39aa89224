// The command table of the control protocol: the 25 names Circus 0.19 registers and the
// properties each one requires before anything runs (`Command.properties`).

internal import CircusConfig
public import OrderedCollections

/// A built-in command of the control protocol.
public enum CommandName: String, CaseIterable, Hashable, Sendable {
    /// Create a watcher (`name`, `cmd`, `args`, `options`, `start`).
    case add
    /// Remove `nb` processes from a watcher.
    case decr
    /// circusd's own process info.
    case dstats
    /// Values of some options of a watcher (`keys`).
    case get
    /// The arbiter's endpoints and `check_delay`.
    case globaloptions
    /// Add `nb` processes to a watcher.
    case incr
    /// Start an IPython kernel: answered `{"shell": false, "msg": ...}`.
    case ipython
    /// Run the stop procedure on a watcher's processes, or one `pid`.
    case kill
    /// Watcher names, or the pids of one watcher.
    case list
    /// Not a server command: always answers ``CommandError/usePubSubSocket``.
    case listen
    /// The sockets circusd holds.
    case listsockets
    /// Process count of one watcher or of all.
    case numprocesses
    /// Number of watchers.
    case numwatchers
    /// Every option of a watcher.
    case options
    /// Stop everything and exit.
    case quit
    /// Reload one watcher, or all.
    case reload
    /// Re-read the configuration file and apply the differences.
    case reloadconfig
    /// Restart watchers, or the whole arbiter.
    case restart
    /// Remove a watcher.
    case rm
    /// Send a signal to a watcher's processes (or children).
    case signal
    /// Change options of a watcher.
    case set
    /// Start watchers.
    case start
    /// Process information of one watcher, one process, or all.
    case stats
    /// Status of one watcher, or of all.
    case status
    /// Stop watchers.
    case stop

    /// Looks a request's command up the way Circus does (its name lower-cased).
    ///
    /// - Returns: nil for an unknown command: answer ``CommandError/unknownCommand(_:)``
    ///   with the name as sent.
    public init?(request command: String) {
        self.init(rawValue: PythonText.lower(command))
    }

    /// What a sender needs to be allowed this command: the one place that says it.
    ///
    /// Read-only commands report state without secrets. `options` and `get` are control
    /// commands although they change nothing, because they show watchers' environments
    /// (where secrets live). `listen` and `ipython` do nothing, and are control commands
    /// so that a sender with no grant gets nothing but the refusal.
    public var access: CommandAccess {
        switch self {
        case .status, .list, .numwatchers, .numprocesses, .listsockets, .stats, .dstats, .globaloptions:
            return .readOnly
        case .add, .decr, .get, .incr, .ipython, .kill, .listen, .options, .quit, .reload, .reloadconfig,
            .restart, .rm, .signal, .set, .start, .stop:
            return .control
        }
    }

    /// Properties that must be present, in the order Circus checks them (the required
    /// ones of ``arguments``).
    public var requiredProperties: [String] {
        arguments.filter(\.required).map(\.name)
    }

    /// Checks ``requiredProperties`` (presence only; a `null` value counts as present).
    ///
    /// - Throws: ``CommandError/missingProperty(_:)`` for the first one absent.
    public func checkRequiredProperties(_ properties: JSONObject) throws(CommandError) {
        for name in requiredProperties where properties[name] == nil {
            throw .missingProperty(name)
        }
    }
}

/// The grant a command needs (``CommandName/access``); plugins' commands declare one too.
public enum CommandAccess: String, Hashable, Sendable, CaseIterable {
    /// Reports state without secrets: allowed to read-only users and to controllers.
    case readOnly = "read-only"
    /// Changes state or shows secrets: allowed to controllers only.
    case control
}
