// What each command takes: the argument schema the `commands` command lists, and the
// properties that must be present before a command runs (Circus checks them first).

import OrderedCollections

/// One property a command takes.
///
/// Rendered as `{"type": ..., "required": ..., "help": ...}`, the shape plugins give in
/// their command metadata, so that core and plugin commands describe themselves alike.
public struct CommandArgument: Hashable, Sendable {
    /// The property's name in `properties`.
    public var name: String
    /// A JSON type (`string`, `integer`, `number`, `boolean`, `object`, `array`), or
    /// several joined by `|` when Circus accepts more than one (`integer|string`).
    public var type: String
    /// Whether the command is refused (errno 3, `... is missing`) without it.
    public var required: Bool
    /// One line for users.
    public var help: String

    /// An argument description.
    public init(_ name: String, _ type: String, required: Bool = false, _ help: String) {
        self.name = name
        self.type = type
        self.required = required
        self.help = help
    }

    /// `{"type": ..., "required": ..., "help": ...}`.
    public var json: JSON {
        ["type": .string(type), "required": .bool(required), "help": .string(help)]
    }

    /// Reads a plugin's `args` metadata (`{"<arg>": {"type": ..., "required": ..., "help":
    /// ...}}`); members that are not objects, and unknown keys, are ignored (the plugin
    /// host has checked the metadata is a JSON object).
    public static func arguments(fromMetadata args: JSON?) -> [CommandArgument] {
        guard case .object(let members)? = args else { return [] }
        return members.compactMap { name, spec in
            guard case .object(let spec) = spec else { return nil }
            return CommandArgument(
                name, spec["type"]?.stringValue ?? "any", required: spec["required"]?.boolValue ?? false,
                spec["help"]?.stringValue ?? "")
        }
    }
}

extension CommandName {
    /// One line for users (what `commands` lists).
    public var help: String {
        switch self {
        case .add: return "Add a watcher"
        case .decr: return "Decrement the number of processes of a watcher"
        case .dstats: return "Get circusd's own process information"
        case .get: return "Get the value of some options of a watcher"
        case .globaloptions: return "Get the arbiter's options"
        case .incr: return "Increment the number of processes of a watcher"
        case .ipython: return "Start an IPython shell (not supported: answers shell false)"
        case .kill: return "Run the stop procedure on a watcher's processes, or on one of them"
        case .list: return "List the watchers, or the pids of one watcher"
        case .listen: return "Subscribe to events (use the pub/sub endpoint instead)"
        case .listsockets: return "List the sockets circusd holds"
        case .numprocesses: return "Get the number of processes of a watcher, or of all"
        case .numwatchers: return "Get the number of watchers"
        case .options: return "Get every option of a watcher"
        case .quit: return "Stop every watcher and exit"
        case .reload: return "Reload a watcher's processes, or every watcher's"
        case .reloadconfig: return "Read the configuration file again and apply the differences"
        case .restart: return "Restart a watcher, or the arbiter"
        case .rm: return "Remove a watcher"
        case .signal: return "Send a signal to a watcher's processes or their children"
        case .set: return "Set options of a watcher"
        case .start: return "Start watchers, or the arbiter"
        case .stats: return "Get process information of a watcher, of one of its processes, or of all"
        case .status: return "Get the status of a watcher, or of all"
        case .stop: return "Stop watchers, or the arbiter"
        }
    }

    /// The properties the command takes, required ones in the order Circus checks them.
    public var arguments: [CommandArgument] {
        let name = CommandArgument("name", "string", required: true, "the watcher's name")
        let optionalName = CommandArgument("name", "string", "a watcher's name (all watchers when absent)")
        let waiting = CommandArgument("waiting", "boolean", "answer when the command is over, not at once")
        let match = CommandArgument("match", "string", "how name matches: simple, glob (default) or regex")
        switch self {
        case .add:
            return [
                name, CommandArgument("cmd", "string", required: true, "the command to run"),
                CommandArgument("args", "string|array", "its arguments"),
                CommandArgument("options", "object", "watcher options"),
                CommandArgument("start", "boolean", "start it at once"), waiting,
            ]
        case .rm: return [name, CommandArgument("nostop", "boolean", "leave its processes running"), waiting]
        case .incr, .decr:
            return [name, CommandArgument("nb", "integer", "how many processes (default 1)"), waiting]
        case .get: return [name, CommandArgument("keys", "array", required: true, "the option names")]
        case .set: return [name, CommandArgument("options", "object", required: true, "option names and values"), waiting]
        case .options: return [name]
        case .signal:
            return [
                name, CommandArgument("signum", "integer|string", required: true, "a signal number or name"),
                CommandArgument("pid", "integer", "one process of the watcher"),
                CommandArgument("childpid", "integer", "one child of pid"),
                CommandArgument("children", "boolean", "signal the children of the processes"),
                CommandArgument("recursive", "boolean", "signal the processes and all their descendants"),
            ]
        case .kill:
            return [
                name, CommandArgument("pid", "integer", "one process of the watcher"),
                CommandArgument("signum", "integer|string", "the stop signal to use"),
                CommandArgument("graceful_timeout", "number", "seconds before SIGKILL"),
            ]
        case .start, .stop, .restart: return [optionalName, match, waiting]
        case .reload:
            return [
                optionalName, CommandArgument("graceful", "boolean", "spawn new processes before stopping old ones"),
                CommandArgument("sequential", "boolean", "one process after the other"), waiting,
            ]
        case .reloadconfig, .quit: return [waiting]
        case .list, .status, .numprocesses: return [optionalName]
        case .stats:
            return [optionalName, CommandArgument("process", "integer", "one process of the watcher")]
        case .globaloptions: return [CommandArgument("option", "string", "one option")]
        case .dstats, .ipython, .listen, .listsockets, .numwatchers: return []
        }
    }
}
