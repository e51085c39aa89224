// The daemon's in-process bus: the command registry and the event bus, owned by the
// supervisor's loop thread, and the one way other threads reach them.

public import CircusProtocol

/// The command registry and the event bus of one daemon.
///
/// The loop thread uses ``commands`` and ``events`` directly; any other thread (a plugin's
/// executor, a worker) goes through ``remote``, which posts the work to the loop.
public final class MessageBus {
    /// Every command the daemon serves.
    public let commands = CommandRegistry()
    /// Every event the daemon publishes.
    public let events = EventBus()
    /// The thread-safe side.
    public let remote: Remote

    /// A bus whose ``remote`` runs its work with `post`, which must run each job on the
    /// owner's thread, in order, and never block.
    public init(post: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void) {
        remote = Remote(post: post)
        remote.bus = self
    }

    /// Runs `request` for a requester with `access`: an unknown command or one that
    /// needs more than `access` is refused through `reply`.
    public func dispatch(_ request: Request, access: CommandAccess, reply: CommandReply) {
        guard let command = commands.command(named: request.command) else {
            return reply.fail(.unknownCommand(request.commandAsSent))
        }
        if command.access == .control, access != .control {
            return reply.fail(.message("\(request.commandAsSent) needs control access"))
        }
        commands.run(command, request, reply)
    }

    /// The bus seen from other threads: each call posts its work to the owner's thread
    /// and returns at once.
    public final class Remote: Sendable {
        private let post: @Sendable (@escaping @Sendable () -> Void) -> Void
        // Set once in MessageBus.init, read on the owner's thread only.
        nonisolated(unsafe) fileprivate weak var bus: MessageBus?

        fileprivate init(post: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void) {
            self.post = post
        }

        /// Publishes `event` on the owner's thread.
        public func publish(_ event: EventMessage) {
            perform { $0.events.publish(event) }
        }

        /// Runs `request` on the owner's thread (see ``MessageBus/dispatch(_:access:reply:)``).
        public func dispatch(_ request: Request, access: CommandAccess, reply: CommandReply) {
            perform { $0.dispatch(request, access: access, reply: reply) }
        }

        /// Runs `work` with the bus on the owner's thread (nothing once the bus is gone).
        public func perform(_ work: @escaping @Sendable (MessageBus) -> Void) {
            post { [self] in
                if let bus = self.bus { work(bus) }
            }
        }
    }
}
