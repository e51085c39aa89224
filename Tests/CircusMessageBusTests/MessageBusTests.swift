import CircusMessageBus
import CircusProtocol
import OrderedCollections
import Synchronization
import Testing

/// Collects answers sent from any thread.
final class Answers: Sendable {
    let received = Mutex<[Result<JSONObject, CommandError>]>([])
    func sink(_ result: Result<JSONObject, CommandError>) { received.withLock { $0.append(result) } }
    var all: [Result<JSONObject, CommandError>] { received.withLock { $0 } }
}

/// Runs posted jobs when told, like a loop thread would.
final class ManualLoop: Sendable {
    let jobs = Mutex<[@Sendable () -> Void]>([])
    func post(_ job: @escaping @Sendable () -> Void) { jobs.withLock { $0.append(job) } }
    func runPending() {
        let pending = jobs.withLock { j in defer { j = [] }; return j }
        for job in pending { job() }
    }
}

@Suite struct CommandRegistryTests {
    private func echo(_ name: String, access: CommandAccess = .readOnly, origin: CommandOrigin = .core,
                      arguments: [CommandArgument] = []) -> RegisteredCommand {
        RegisteredCommand(name: name, help: "echo", arguments: arguments, access: access, origin: origin) { request, reply in
            reply.ok(["echo": .object(request.properties)])
        }
    }

    @Test func aTakenNameIsRefusedNamingItsOwner() throws {
        let registry = CommandRegistry()
        try registry.register(echo("status"))
        #expect(throws: CommandRegistrationError(name: "status", registeredBy: .core)) {
            try registry.register(echo("status", origin: .plugin(instance: "x")))
        }
    }

    @Test func onlyTheOriginThatRegisteredACommandRemovesIt() throws {
        let registry = CommandRegistry()
        try registry.register(echo("x.ping", origin: .plugin(instance: "x")))
        #expect(!registry.unregister("x.ping", origin: .plugin(instance: "y")))
        #expect(registry.command(named: "x.ping") != nil)
        #expect(registry.unregister("x.ping", origin: .plugin(instance: "x")))
        #expect(registry.command(named: "x.ping") == nil)
    }

    @Test func unregisterAllRemovesOneInstancesCommandsOnly() throws {
        let registry = CommandRegistry()
        try registry.register(echo("x.a", origin: .plugin(instance: "x")))
        try registry.register(echo("x.b", origin: .plugin(instance: "x")))
        try registry.register(echo("y.a", origin: .plugin(instance: "y")))
        registry.unregisterAll(of: .plugin(instance: "x"))
        #expect(registry.all.map(\.name) == ["y.a"])
    }

    @Test func aMissingRequiredPropertyIsRefusedBeforeTheHandlerRuns() throws {
        let bus = MessageBus(post: { $0() })
        try bus.commands.register(echo("get", arguments: [
            CommandArgument("name", "string", required: true, "w"), CommandArgument("keys", "array", required: true, "k"),
        ]))
        let answers = Answers()
        bus.dispatch(Request(command: "get", properties: ["name": "w"]), access: .control,
                     reply: CommandReply(request: Request(command: "get"), sink: answers.sink))
        #expect(answers.all == [.failure(.missingProperty("keys"))])
    }

    @Test func aControlCommandIsRefusedToAReadOnlyRequester() throws {
        let bus = MessageBus(post: { $0() })
        try bus.commands.register(echo("stop", access: .control))
        let answers = Answers()
        let request = Request(command: "stop")
        bus.dispatch(request, access: .readOnly, reply: CommandReply(request: request, sink: answers.sink))
        #expect(answers.all == [.failure(.message("stop needs control access"))])
    }

    @Test func anUnknownCommandGetsCircusError() {
        let bus = MessageBus(post: { $0() })
        let answers = Answers()
        let request = Request(command: "Nope")
        bus.dispatch(request, access: .control, reply: CommandReply(request: request, sink: answers.sink))
        #expect(answers.all == [.failure(.unknownCommand("Nope"))])
    }

    @Test func aReplyIsSentOnceWhateverTheHandlerDoes() {
        let answers = Answers()
        let reply = CommandReply(request: Request(command: "x"), sink: answers.sink)
        #expect(reply.send(.success(["a": 1])))
        #expect(!reply.send(.failure(.message("late"))))
        #expect(answers.all == [.success(["a": 1])])
    }

    @Test func schemaListsArgumentsAccessAndOrigin() {
        let command = echo("x.ping", access: .control, origin: .plugin(instance: "x"),
                           arguments: [CommandArgument("n", "integer", required: true, "how many")])
        #expect(command.json == [
            "help": "echo", "args": ["n": ["type": "integer", "required": true, "help": "how many"]],
            "access": "control", "origin": "plugin:x",
        ])
    }
}

@Suite struct EventBusTests {
    @Test func subscribersGetTheTopicsTheirPrefixSelects() {
        let events = EventBus()
        var all: [String] = [], web: [String] = []
        _ = events.subscribe(prefix: "") { all.append($0.topic) }
        _ = events.subscribe(prefix: "watcher.web.") { web.append($0.topic) }
        for topic in ["watcher.web.spawn", "watcher.webby.spawn", "plugin.x.dropped", "watcher.web.reap"] {
            events.publish(EventMessage(topic: topic, payload: [:]))
        }
        #expect(all == ["watcher.web.spawn", "watcher.webby.spawn", "plugin.x.dropped", "watcher.web.reap"])
        #expect(web == ["watcher.web.spawn", "watcher.web.reap"])
    }

    @Test func anUnsubscribedHandlerGetsNothingMore() {
        let events = EventBus()
        var seen: [String] = []
        let subscription = events.subscribe(prefix: "watcher.") { seen.append($0.topic) }
        events.publish(EventMessage(topic: "watcher.a.start", payload: [:]))
        events.unsubscribe(subscription)
        events.publish(EventMessage(topic: "watcher.a.stop", payload: [:]))
        #expect(seen == ["watcher.a.start"])
        #expect(events.subscriberCount == 0)
    }

    @Test func aHandlerMayPublishAndUnsubscribeWhileItRuns() {
        let events = EventBus()
        var seen: [String] = []
        var subscription: EventBus.Subscription?
        subscription = events.subscribe(prefix: "a") { event in
            seen.append(event.topic)
            events.unsubscribe(subscription!)
            events.publish(EventMessage(topic: "a.again", payload: [:]))
        }
        events.publish(EventMessage(topic: "a.first", payload: [:]))
        #expect(seen == ["a.first"])
    }
}

@Suite struct RemoteTests {
    @Test func otherThreadsReachTheBusOnlyThroughTheOwnersThread() throws {
        let loop = ManualLoop()
        let bus = MessageBus(post: { loop.post($0) })
        var seen: [String] = []
        _ = bus.events.subscribe(prefix: "") { seen.append($0.topic) }
        try bus.commands.register(RegisteredCommand(
            name: "ping", help: "", arguments: [], access: .readOnly, origin: .core) { _, reply in reply.ok(["pong": true]) })
        let answers = Answers()
        let request = Request(command: "ping")
        let remote = bus.remote
        remote.publish(EventMessage(topic: "plugin.x.hello", payload: [:]))
        remote.dispatch(request, access: .control, reply: CommandReply(request: request, sink: answers.sink))
        #expect(seen.isEmpty)
        #expect(answers.all.isEmpty)
        loop.runPending()
        #expect(seen == ["plugin.x.hello"])
        #expect(answers.all == [.success(["pong": true])])
    }
}
