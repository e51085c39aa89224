// The daemon's side of the plugin host: what plugins ask of the daemon (publish, run a
// command, register a command or a hook, log) goes onto the in-process bus, always by
// posting to the loop thread, so that no plugin thread ever touches the supervisor.

import CircusMessageBus
import CircusPluginHost
import CircusProtocol
import Logging
import OrderedCollections

/// `PluginBus` on the daemon's message bus. Every method returns at once: the work is
/// posted to the loop thread, where the bus and the supervisor live.
final class DaemonPluginBus: PluginBus, @unchecked Sendable {
    private let remote: MessageBus.Remote
    // Set once, on the loop thread, before the host starts any instance; read on the loop
    // thread only (inside posted work).
    private weak var supervisor: Supervisor?

    init(supervisor: Supervisor) {
        self.supervisor = supervisor
        remote = supervisor.bus.remote
    }

    func publish(_ event: EventMessage) {
        remote.publish(event)
    }

    func runCommand(
        _ name: String, arguments: JSONObject, from instance: String,
        reply: @escaping @Sendable (Result<JSONObject, CommandError>) -> Void
    ) {
        let raw = JSONWriter.serialize(.object(["command": .string(name), "properties": .object(arguments)]))
        let request = Request(command: name, properties: arguments, raw: raw)
        // A plugin acts for the operator who configured it: control access.
        remote.dispatch(request, access: .control, reply: CommandReply(request: request, sink: reply))
    }

    func registerCommand(_ command: PluginCommand) {
        remote.perform { [weak self] bus in
            guard let self, let supervisor = self.supervisor else { return }
            let name = command.name
            let registered = RegisteredCommand(
                name: name, help: command.help ?? "",
                arguments: CommandArgument.arguments(fromMetadata: command.meta["args"]),
                access: command.access, origin: .plugin(instance: command.instance)
            ) { [weak supervisor] request, reply in
                guard let host = supervisor?.pluginHost else {
                    return reply.fail(.unknownCommand(request.commandAsSent))
                }
                host.invokeCommand(named: name, arguments: request.properties) { result in
                    reply.send(result.mapError(\.commandError))
                }
            }
            do {
                try bus.commands.register(registered)
            } catch {
                supervisor.logger.error("plugin \(command.instance): cannot register command \(name): \(error)")
            }
        }
    }

    func unregisterCommand(named name: String) {
        // Plugin command names are `<instance>.<verb>`.
        let instance = String(name.prefix { $0 != "." })
        remote.perform { bus in bus.commands.unregister(name, origin: .plugin(instance: instance)) }
    }

    func registerHook(_ hook: PluginHook) {
        remote.perform { [weak self] _ in
            guard let supervisor = self?.supervisor else { return }
            supervisor.pluginHooks.add(hook)
            supervisor.pluginHooksChanged()
        }
    }

    func unregisterHook(_ id: PluginHookID) {
        remote.perform { [weak self] _ in
            guard let supervisor = self?.supervisor else { return }
            supervisor.pluginHooks.remove(id)
            supervisor.pluginHooksChanged()
        }
    }

    func log(_ level: Logger.Level, instance: String, message: String) {
        remote.perform { [weak self] _ in
            self?.supervisor?.logger.log(level: level, "plugin \(instance): \(message)")
        }
    }
}
