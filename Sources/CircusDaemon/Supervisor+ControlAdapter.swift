// The ZeroMQ sockets as adapters on the bus: the ROUTER decodes requests, checks the
// sender's access and hands them to the command registry; the PUB socket subscribes to
// every event.

import CircusBus
import CircusMessageBus
import CircusProtocol
import CircusSystem
import Glibc
import Logging

extension Supervisor {
    // MARK: - ROUTER

    /// One message from the control socket: decoded as Circus does, refused when its
    /// sender may not run the command, else run by the command registry.
    func handle(_ message: ControlMessage) {
        memoryRelease.noteActivity()
        // A DEALER sends exactly one frame; REQ sockets add an empty delimiter. Circus
        // drops anything else without a reply, and so do we.
        guard message.frames.count == 1 else {
            logger.warning("got unexpected message with \(message.frames.count) frames from \(message.identityDescription)")
            return
        }
        switch Request.decode(message.frames[0]) {
        case .invalidJSON:
            logger.warning("json invalid from \(message.identityDescription)")
            reply(Reply.error(id: .null, time: EventLoop.wallNow(), error: .invalidJSON), to: message.identity)
        case .noReply(let reason):
            logger.warning("ignored request from \(message.identityDescription): \(reason)")
        case .invalidProperties(let request, let error):
            let respond = controlReply(to: request, from: message.identity)
            if let command = bus.commands.command(named: request.command) {
                respond.fail(refusal(of: message.sender, access: command.access, asSent: request.commandAsSent) ?? error)
            } else {
                respond.fail(.unknownCommand(request.commandAsSent))
            }
        case .request(let request):
            let respond = controlReply(to: request, from: message.identity)
            guard let command = bus.commands.command(named: request.command) else {
                logger.warning("unknown command: \(request.commandAsSent)")
                return respond.fail(.unknownCommand(request.commandAsSent))
            }
            // Checked before anything runs: a refused command changes nothing.
            if let refused = refusal(of: message.sender, access: command.access, asSent: request.commandAsSent) {
                return respond.fail(refused)
            }
            if let missing = command.missingProperty(in: request.properties) {
                return fail(respond, .missingProperty(missing))
            }
            command.handler(request, respond)
        }
    }

    /// The reply to a control-socket request: Circus's reply bytes (none for a cast),
    /// encoded on the thread that answers and sent from the loop thread.
    private func controlReply(to request: Request, from identity: [UInt8]) -> CommandReply {
        let route = replyRoute
        return CommandReply(request: request) { result in
            let now = EventLoop.wallNow()
            let bytes: [UInt8]?
            switch result {
            case .success(let payload): bytes = request.okReply(payload, time: now)
            case .failure(let error): bytes = request.errorReply(error, time: now)
            }
            if let bytes { route.send(bytes, to: identity) }
        }
    }

    // MARK: - PUB

    /// Sends every event on the bus to pub/sub subscribers while the PUB socket is open.
    func publishEventsOnPubSocket() {
        _ = bus.events.subscribe(prefix: "") { [unowned self] event in
            do {
                try self.publisher?.publish(topic: event.topic, payload: event.payloadFrame)
            } catch {
                self.logger.debug("publish \(event.topic): \(error)")
            }
        }
    }
}

/// Takes a control reply to the ROUTER from any thread: at once on the loop thread, posted
/// to the loop from others (a `stats` answered on its worker, a plugin's command).
final class ReplyRoute: @unchecked Sendable {
    // Touched on the loop thread only.
    private unowned let supervisor: Supervisor
    private let remote: EventLoop.Remote
    private let loopThread: pthread_t

    /// Created on the loop thread.
    init(supervisor: Supervisor) {
        self.supervisor = supervisor
        remote = supervisor.loop.remote
        loopThread = pthread_self()
    }

    func send(_ bytes: [UInt8], to identity: [UInt8]) {
        if pthread_equal(pthread_self(), loopThread) != 0 {
            supervisor.reply(bytes, to: identity)
        } else {
            remote.post { [self] in supervisor.reply(bytes, to: identity) }
        }
    }
}
