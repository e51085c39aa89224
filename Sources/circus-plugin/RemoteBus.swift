// The daemon seen from outside: a PluginBus over circusd's endpoints, as Circus's own
// plugin processes see it. Commands a plugin calls go to the control endpoint (a DEALER,
// one request at a time on a worker thread, since a ZeroMQ socket belongs to one thread),
// events come from the pub/sub endpoint (a SUB on a thread of its own) and are handed to
// the plugin host. A remote daemon cannot send a plugin requests, so plugin commands and
// hooks are refused; what a plugin publishes cannot reach the daemon's subscribers, so
// it goes back to the plugin's own subscriptions only.

import CircusClient
import CircusPluginHost
import CircusProtocol
import CircusSystem
import Glibc
import Logging
import OrderedCollections
import Synchronization

final class RemoteBus: PluginBus {
    let endpoint: String
    let pubsub: String
    private let logger: Logger
    private let commands = SerialWorker(name: "circus-plugin control")
    /// The control connection, created and used on the `commands` worker only.
    private nonisolated(unsafe) var connection: CircusConnection?
    private nonisolated(unsafe) var requests = 0
    private let host = Mutex<PluginHost?>(nil)
    private let stopping = Atomic<Bool>(false)
    private let subscriber = Mutex<OSThread?>(nil)
    private let timeout: Duration

    init(endpoint: String, pubsub: String, logger: Logger, timeout: Duration = .seconds(5)) {
        self.endpoint = endpoint
        self.pubsub = pubsub
        self.logger = logger
        self.timeout = timeout
    }

    /// Starts receiving events for `host`.
    func attach(_ host: PluginHost) throws {
        self.host.withLock { $0 = host }
        // Subscribed to everything: the host hands each event to the subscriptions that
        // want it.
        let events = try Subscriber(endpoint: pubsub, topics: [""])
        nonisolated(unsafe) let socket = events
        let thread = try OSThread.start(name: "events") { [self] in
            while !stopping.load(ordering: .acquiring) {
                do {
                    guard let (topic, payload) = try socket.next(timeout: .milliseconds(200)) else { continue }
                    guard let object = (try? JSONParser.parse(payload))?.objectValue else {
                        logger.warning("ignored an event on \(topic) whose payload is not a JSON object")
                        continue
                    }
                    self.host.withLock { $0 }?.deliver(EventMessage(topic: topic, payload: object))
                } catch {
                    logger.error("cannot receive events from \(pubsub): \(error)")
                    return
                }
            }
            socket.close()
        }
        subscriber.withLock { $0 = thread }
    }

    /// Stops receiving events and closes the control connection.
    func close() {
        stopping.store(true, ordering: .releasing)
        subscriber.withLock { $0 }?.join()
        try? commands.submit { [self] in
            connection?.close()
            connection = nil
        }
        commands.shutdown()
    }

    // MARK: PluginBus

    var requestRefusal: String? {
        "circus-plugin runs the plugin outside circusd, which cannot send it command or hook requests; "
            + "configure it as a [plugin:NAME] section of circusd to serve them"
    }

    func publish(_ event: EventMessage) {
        logger.debug("\(event.topic) \(JSONWriter.string(.object(event.payload)))")
        host.withLock { $0 }?.deliver(event)
    }

    func runCommand(
        _ name: String, arguments: JSONObject, from instance: String,
        reply: @escaping @Sendable (Result<JSONObject, CommandError>) -> Void
    ) {
        do {
            try commands.submit { [self] in reply(call(name, arguments)) }
        } catch {
            reply(.failure(CommandError(code: .commandError, reason: "circus-plugin cannot send \(name): \(error)")))
        }
    }

    func registerCommand(_ command: PluginCommand) {}
    func unregisterCommand(named name: String) {}
    func registerHook(_ hook: PluginHook) {}
    func unregisterHook(_ id: PluginHookID) {}

    func log(_ level: Logger.Level, instance: String, message: String) {
        logger.log(level: level, "\(message)")
    }

    // MARK: The control endpoint (worker thread)

    /// Sends one command, as Circus's plugins do, and waits for the reply with its id.
    private func call(_ name: String, _ arguments: JSONObject) -> Result<JSONObject, CommandError> {
        do {
            if connection == nil { connection = try CircusConnection(endpoint: endpoint, timeout: timeout) }
            guard let connection else { throw CircusClientError(.closed, message: "no connection") }
            requests += 1
            let id = "circus-plugin-\(getpid())-\(requests)"
            let request: JSONObject = ["id": .string(id), "command": .string(name), "properties": .object(arguments)]
            var reply = try connection.call(JSONWriter.serialize(.object(request)))
            // A reply to an earlier request that timed out comes first: skip it.
            while true {
                guard let object = (try? JSONParser.parse(reply))?.objectValue else {
                    return .failure(CommandError(code: .commandError, reason: "\(endpoint) sent a reply that is not JSON"))
                }
                if object["id"]?.stringValue == id { return Self.payload(of: object) }
                reply = try connection.receive()
            }
        } catch {
            // A lost or timed-out connection: start afresh next time.
            connection?.close()
            connection = nil
            return .failure(CommandError(code: .commandError, reason: "\(name) on \(endpoint): \(error)"))
        }
    }

    /// A reply as PluginBus hands it over: the properties of an "ok" reply without
    /// `time` and `id` (a `status` other than "ok" is kept), or the error.
    static func payload(of reply: JSONObject) -> Result<JSONObject, CommandError> {
        if reply["status"]?.stringValue == "error" {
            let code = reply["errno"]?.intValue.map { ErrorCode(rawValue: Int($0)) } ?? .commandError
            return .failure(CommandError(code: code, reason: reply["reason"]?.stringValue ?? "error"))
        }
        var payload = reply
        payload["time"] = nil
        payload["id"] = nil
        if payload["status"]?.stringValue == "ok" { payload["status"] = nil }
        return .success(payload)
    }
}
