// The commands the daemon serves, whoever provides them: the supervisor registers
// Circus's commands here, plugins register theirs, and every requester (the control
// socket, a plugin, the daemon itself) finds them here.

public import CircusProtocol
import OrderedCollections

/// Who provides a command.
public enum CommandOrigin: Hashable, Sendable, CustomStringConvertible {
    /// The daemon itself.
    case core
    /// The plugin instance of that name (`[plugin:NAME]`).
    case plugin(instance: String)

    /// `core` or `plugin:NAME`, as `commands` lists it.
    public var description: String {
        switch self {
        case .core: return "core"
        case .plugin(let instance): return "plugin:\(instance)"
        }
    }
}

/// Runs one request. It owns `reply` and must answer it exactly once, now or later.
public typealias CommandHandler = (_ request: Request, _ reply: CommandReply) -> Void

/// A command as registered.
public struct RegisteredCommand {
    /// The name requests use (lower case).
    public let name: String
    /// One line for users.
    public let help: String
    /// The properties it takes.
    public let arguments: [CommandArgument]
    /// The grant a sender needs.
    public let access: CommandAccess
    /// Who provides it.
    public let origin: CommandOrigin
    /// Runs a request.
    public let handler: CommandHandler
    /// The required properties, in the order they are checked.
    public let required: [String]

    /// A command description.
    public init(name: String, help: String, arguments: [CommandArgument], access: CommandAccess,
                origin: CommandOrigin, handler: @escaping CommandHandler) {
        self.name = name
        self.help = help
        self.arguments = arguments
        self.access = access
        self.origin = origin
        self.handler = handler
        self.required = arguments.filter(\.required).map(\.name)
    }

    /// The first required property `properties` lacks (a `null` value counts as present,
    /// as in Circus), or nil.
    public func missingProperty(in properties: JSONObject) -> String? {
        required.first { properties[$0] == nil }
    }

    /// `{"help": ..., "args": {...}, "access": ..., "origin": ...}`, as `commands` lists it.
    public var json: JSON {
        var args = JSONObject()
        for argument in arguments { args[argument.name] = argument.json }
        return [
            "help": .string(help), "args": .object(args), "access": .string(access.rawValue),
            "origin": .string(origin.description),
        ]
    }
}

/// Why a command could not be registered.
public struct CommandRegistrationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The name asked for.
    public let name: String
    /// Who provides the command of that name already.
    public let registeredBy: CommandOrigin

    /// The error for `name`, taken by `registeredBy`.
    public init(name: String, registeredBy: CommandOrigin) {
        self.name = name
        self.registeredBy = registeredBy
    }

    public var description: String { "command \(name) is registered already (by \(registeredBy))" }
}

/// Every command the daemon serves, by name.
///
/// - Important: Not thread-safe: owned by the daemon's loop thread (other threads go
///   through ``MessageBus/Remote``).
public final class CommandRegistry {
    private var commands: [String: RegisteredCommand] = [:]

    /// An empty registry.
    public init() {}

    /// Adds `command`.
    /// - Throws: `CommandRegistrationError` when its name is taken (names are never
    ///   shadowed: a plugin cannot replace a core command nor another plugin's).
    public func register(_ command: RegisteredCommand) throws(CommandRegistrationError) {
        if let existing = commands[command.name] {
            throw CommandRegistrationError(name: command.name, registeredBy: existing.origin)
        }
        commands[command.name] = command
    }

    /// Removes the command `name` if `origin` provides it.
    /// - Returns: whether it was removed.
    @discardableResult
    public func unregister(_ name: String, origin: CommandOrigin) -> Bool {
        guard commands[name]?.origin == origin else { return false }
        commands[name] = nil
        return true
    }

    /// Removes every command `origin` provides (a plugin instance that stopped).
    public func unregisterAll(of origin: CommandOrigin) {
        commands = commands.filter { $0.value.origin != origin }
    }

    /// The command of that name (requests carry it lower-cased already).
    public func command(named name: String) -> RegisteredCommand? {
        commands[name]
    }

    /// Every command, sorted by name.
    public var all: [RegisteredCommand] {
        commands.values.sorted { $0.name < $1.name }
    }

    /// Checks the required properties, then runs the handler (which answers `reply`).
    public func run(_ command: RegisteredCommand, _ request: Request, _ reply: CommandReply) {
        if let missing = command.missingProperty(in: request.properties) {
            return reply.fail(.missingProperty(missing))
        }
        command.handler(request, reply)
    }
}
