// The in-process plugin host: loads plugin libraries, runs their instances on executors of
// their own, and connects them to the daemon through a `PluginBus`.
//
// Every entry point the daemon calls (deliver, invokeCommand, invokeHook, start, stop)
// only checks and enqueues: a slow or blocked plugin never blocks the daemon's loop.

public import CircusProtocol
import OrderedCollections
public import CircusSystem
import Glibc
import Synchronization

private let processHandles = Atomic<UInt64>(1)

/// Loads plugins and runs their instances.
public final class PluginHost: Sendable {
    /// Tunables.
    public struct Configuration: Sendable {
        /// Events, requests and posted tasks an instance's queue holds before it drops
        /// the oldest events and refuses requests with BUSY.
        public var queueCapacity: Int = 1024
        /// How long a command request waits for the plugin's answer when the caller gives
        /// no deadline.
        public var requestTimeout: Duration = .seconds(10)
        /// A callback running longer than this is logged as a warning.
        public var slowCallback: Duration = .milliseconds(100)
        /// How long events handed over at the end of a loop turn (`wakeDeferred`) may wait
        /// for an in-process instance's thread: events come in bursts (a start, a churning
        /// watcher) spread over many loop turns, and one wake-up then serves a whole burst.
        /// Commands, hooks and replies never wait for it.
        public var eventGathering: Duration = .milliseconds(5)
        /// The circus-plugin-host executable that runs isolated instances (by default the
        /// one next to the running executable).
        public var pluginHostExecutable: String = IsolatedHostProcess.defaultExecutable
        /// How isolated instances are supervised.
        public var isolation = Isolation()

        /// Supervision of isolated instances.
        public struct Isolation: Sendable {
            /// How often the host process is pinged. The ping is queued behind the plugin's
            /// work, so an answer proves the plugin's thread is not stuck.
            public var pingInterval: Duration = .seconds(1)
            /// A host that leaves a ping unanswered this long is hung: it is killed and
            /// restarted.
            public var pingTimeout: Duration = .seconds(10)
            /// The delay before the first restart after a crash or a hang; it doubles with
            /// each consecutive one.
            public var restartDelay: Duration = .milliseconds(500)
            /// The longest delay between restarts.
            public var maximumRestartDelay: Duration = .seconds(30)
            /// A host that ran this long before dying starts the doubling over.
            public var stableAfter: Duration = .seconds(60)

            /// The defaults.
            public init() {}
        }

        /// The defaults.
        public init() {}

        var slowCallbackSeconds: Double { Self.seconds(slowCallback) }
        var eventGatheringSeconds: Double { Self.seconds(eventGathering) }
        static func seconds(_ duration: Duration) -> Double {
            let (s, attoseconds) = duration.components
            return Double(s) + Double(attoseconds) / 1e18
        }
    }

    private struct Registry {
        var librariesByPath: [String: PluginLibrary] = [:]
        var librariesByName: [String: PluginLibrary] = [:]
        var instances: [String: any HostedInstance] = [:]
        /// `instances`' values, kept with it: every event is offered to each.
        var all: [any HostedInstance] = []
        /// Instance names in the order they were first started, for listing.
        var order: [String] = []
        var commands: [String: any HostedInstance] = [:]
        var hooks: [UInt64: any HostedInstance] = [:]
    }

    let bus: any PluginBus
    let configuration: Configuration
    let clock: DeadlineClock
    private let registry = Mutex(Registry())
    /// Instances holding events queued without a wakeup (`deliverDeferringWakeup`), each
    /// once until it is woken.
    private let deferredWakeups = Mutex<[any HostedInstance]>([])

    /// A host talking to the daemon through `bus`.
    ///
    /// - Throws: `SystemError` when its deadline thread cannot be started.
    public init(bus: any PluginBus, configuration: Configuration = .init()) throws(SystemError) {
        self.bus = bus
        self.configuration = configuration
        clock = try DeadlineClock()
    }

    /// The directory of the running executable, where the shipped plugins
    /// (`lib<name>.so`) and circus-plugin-host are installed beside circusd.
    public static var executableDirectory: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let path = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "./"
        return path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
    }

    /// Ends the host's deadline thread. Instances should be stopped first.
    public func shutdown() {
        clock.shutdown()
    }

    /// A new handle, unique in the process (the reply-token table is process-wide and tells
    /// instances apart by these numbers, so two hosts must never share one).
    func nextHandle() -> UInt64 { processHandles.wrappingAdd(1, ordering: .relaxed).oldValue }

    // MARK: Loading

    /// Loads (once) and validates the plugin library at `path`.
    ///
    /// The same file loaded again gives the same library; another file with a plugin
    /// name already loaded is refused. With `isolated`, none of the library's code runs in
    /// this process: a circus-plugin-host process loads it, makes the same checks, says
    /// what it is and exits, and its instances always run isolated.
    /// - Throws: `PluginLoadError` naming the file and the check that failed.
    public func load(_ path: String, isolated: Bool = false) throws(PluginLoadError) -> PluginLibrary {
        if let resolved = try? TrustCheck.verify(path),
           let known = registry.withLock({ $0.librariesByPath[resolved] }) {
            return known
        }
        let library = isolated
            ? try PluginLibrary.describeIsolated(path, hostExecutable: configuration.pluginHostExecutable)
            : try PluginLibrary.open(path)
        let accepted = registry.withLock { r -> PluginLibrary? in
            if let known = r.librariesByPath[library.resolvedPath] { return known }
            if r.librariesByName[library.name] != nil { return nil }
            r.librariesByPath[library.resolvedPath] = library
            r.librariesByName[library.name] = library
            return library
        }
        guard let accepted else {
            let other = registry.withLock { $0.librariesByName[library.name]?.path } ?? "?"
            throw PluginLoadError(
                .badDescriptor, path: path,
                message: "cannot load plugin \(path): a plugin named \"\(library.name)\" is already loaded from \(other)")
        }
        return accepted
    }

    // MARK: Instances

    /// Creates and starts the instance `name` of `library`, on a thread of its own.
    ///
    /// The checks that need no plugin code throw at once; `create` and `start` run on the
    /// instance's executor and report through `completion` (called on that thread).
    /// - Parameters:
    ///   - name: `NAME` of `[plugin:NAME]`, `[a-z0-9_]+`, not running already.
    ///   - config: the section as a JSON object, variables expanded.
    ///   - stateDirectory: an existing writable directory of this instance's own.
    ///   - isolate: run it in a supervised circus-plugin-host process (always the case for
    ///     a plugin that sets CIRCUS_PLUGIN_F_REQUIRE_ISOLATION or a library loaded
    ///     `isolated`): a crash or a hang there restarts it, the daemon carries on.
    /// - Throws: `PluginLoadError` for a bad or taken name, a second instance of a
    ///   single-instance plugin, or no thread.
    public func startInstance(
        _ name: String, of library: PluginLibrary, config: JSONObject, stateDirectory: String,
        isolate: Bool = false,
        completion: @escaping @Sendable (Result<Void, PluginInstanceError>) -> Void
    ) throws(PluginLoadError) {
        func refuse(_ kind: PluginLoadError.Kind, _ why: String) -> PluginLoadError {
            PluginLoadError(kind, path: library.path, message: "cannot start plugin instance \(name) of \(library.path): \(why)")
        }
        guard PluginLibrary.isValidName(name) else { throw refuse(.badInstance, "its name is not made of [a-z0-9_] only") }
        let conflict = registry.withLock { r -> String? in
            if let running = r.instances[name], running.lifecycle == .started || running.lifecycle == .loaded {
                return "an instance of that name is already running"
            }
            if !library.allowsMultipleInstances, let other = r.instances.values.first(where: {
                $0.library === library && $0.name != name && ($0.lifecycle == .started || $0.lifecycle == .loaded)
            }) {
                return "plugin \(library.name) allows one instance only (it does not set "
                    + "CIRCUS_PLUGIN_F_MULTI_INSTANCE), and instance \(other.name) is running"
            }
            return nil
        }
        if let conflict { throw refuse(.badInstance, conflict) }
        let instance: any HostedInstance
        do {
            if let vtable = library.vtable, !isolate, !library.requiresIsolation {
                instance = try PluginInstance(name: name, serial: nextHandle(), library: library, vtable: vtable, host: self)
            } else {
                instance = try IsolatedInstance(name: name, serial: nextHandle(), library: library, host: self)
            }
        } catch {
            throw refuse(.resources, "no thread for it: \(error)")
        }
        registry.withLock { r in
            if r.instances[name] == nil { r.order.append(name) }
            r.instances[name] = instance
            r.all = Array(r.instances.values)
        }
        instance.begin(config: config, stateDirectory: stateDirectory, completion: completion)
    }

    /// Stops the instance `name`: its `stop`, its registrations ended (dtors run), pending
    /// requests answered with an error, then `destroy`. `completion` runs once `destroy`
    /// returned (at once if there is no such running instance).
    public func stopInstance(_ name: String, completion: @escaping @Sendable () -> Void) {
        guard let instance = registry.withLock({ $0.instances[name] }) else {
            completion()
            return
        }
        instance.end(final: true, completion: completion)
    }

    /// Gives the instance `name` a new config: through the plugin's `reconfigure` if it has
    /// one, else by destroying the instance and creating it again.
    public func reconfigureInstance(
        _ name: String, config: JSONObject, stateDirectory: String,
        completion: @escaping @Sendable (Result<Void, PluginInstanceError>) -> Void
    ) {
        guard let instance = registry.withLock({ $0.instances[name] }), instance.lifecycle == .started else {
            completion(.failure(PluginInstanceError(
                instance: name, status: -2, message: "it is not running, so there is nothing to reconfigure: start it")))
            return
        }
        instance.reconfigure(config: config, stateDirectory: stateDirectory, completion: completion)
    }

    /// What the `plugins` command lists: every instance started since the host began
    /// (stopped and failed ones too, until their name is started again).
    public var instances: [PluginInstanceInfo] {
        let all = registry.withLock { r in r.order.compactMap { r.instances[$0] } }
        return all.map { instance in
            let isolation = instance.isolation
            return PluginInstanceInfo(
                name: instance.name, plugin: instance.library.name, libraryPath: instance.library.path,
                version: instance.library.version,
                abiMajor: instance.library.abiMajor, abiMinor: instance.library.abiMinor,
                state: instance.lifecycle, failure: instance.failure,
                queueDepth: instance.queueDepth, droppedEvents: instance.droppedEvents,
                isolated: isolation != nil, restarts: isolation?.restarts ?? 0, pid: isolation?.pid)
        }
    }

    /// The instance `name`'s current information, if there is one.
    public func instance(_ name: String) -> PluginInstanceInfo? {
        instances.first { $0.name == name }
    }

    // MARK: From the daemon

    /// Delivers an event to every started instance subscribed to its topic. Only queues.
    public func deliver(_ event: EventMessage) {
        enqueue(event, wake: true)
    }

    /// Delivers an event as `deliver(_:)` does, but leaves waking the instances to
    /// `wakeDeferred()`, so that a burst of events costs each instance one wakeup rather
    /// than one per event. Order is kept: a command, hook or reply queued for an instance
    /// meanwhile wakes it, and it runs the events queued before it first.
    ///
    /// - Returns: true when this is the first deferred delivery since the last
    ///   `wakeDeferred()`: the caller must then see to that call (circusd makes it at the
    ///   end of its loop turn).
    public func deliverDeferringWakeup(_ event: EventMessage) -> Bool {
        let waiting = enqueue(event, wake: false)
        guard !waiting.isEmpty else { return false }
        return deferredWakeups.withLock { pending in
            defer { pending.append(contentsOf: waiting) }
            return pending.isEmpty
        }
    }

    /// Wakes the instances that `deliverDeferringWakeup(_:)` queued events for: an
    /// isolated one at once, an in-process one within `Configuration.eventGathering`.
    public func wakeDeferred() {
        let pending = deferredWakeups.withLock { pending in
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
        for instance in pending { instance.wake() }
    }

    /// Queues `event` for the instances that want it; returns those that now wait for
    /// `wake()` and did not before.
    @discardableResult
    private func enqueue(_ event: EventMessage, wake: Bool) -> [any HostedInstance] {
        let all = registry.withLock { $0.all }
        var payload: LentBytes?
        var waiting: [any HostedInstance] = []
        for instance in all where instance.wants(event.topic) {
            if payload == nil { payload = LentBytes(event.payloadFrame) }
            if instance.enqueueEvent(topic: event.topic, payload: payload!, wake: wake) { waiting.append(instance) }
        }
        return waiting
    }

    /// Runs a plugin command (registered through `PluginBus.registerCommand`).
    ///
    /// `reply` is called exactly once, from any thread: with the plugin's reply object (the
    /// payload of an "ok" reply, to merge into the envelope as Circus does), or an error: unknown command, BUSY when the instance's queue
    /// is full, a timeout after `deadline` (default `Configuration.requestTimeout`), the
    /// plugin's own error, or cancelled when the instance stops first. Only queues.
    public func invokeCommand(
        named name: String, arguments: JSONObject, deadline: Duration? = nil,
        reply: @escaping @Sendable (Result<JSONObject, PluginRequestError>) -> Void
    ) {
        guard let instance = registry.withLock({ $0.commands[name] }) else {
            reply(.failure(PluginRequestError(.notFound, "unknown plugin command: \(name)")))
            return
        }
        let seconds = Configuration.seconds(deadline ?? configuration.requestTimeout)
        instance.enqueueRequest(name: name, handle: nil, arguments: arguments, deadline: seconds) { outcome in
            switch outcome {
            case .failed(let error):
                reply(.failure(error))
            case .answered(let status, let json) where status == 0:
                reply(.success(json))
            case .answered(let status, let json):
                let reason = json["reason"]?.stringValue
                    ?? "plugin \(instance.name) failed \(name) with status \(status) and gave no reason"
                reply(.failure(PluginRequestError(.init(status: status), reason)))
            }
        }
    }

    /// Asks a plugin's hook (registered through `PluginBus.registerHook`) whether to go on.
    ///
    /// `request` is `{"watcher": ..., "hook": ..., "time": ..., ...}`. `completion` is
    /// called exactly once, from any thread, with the plugin's `allow`, or an error (no
    /// answer by `deadline`, a malformed answer, the plugin's error, BUSY, cancelled),
    /// which the watcher treats as a hook failure. Only queues.
    public func invokeHook(
        _ id: PluginHookID, request: JSONObject, deadline: Duration,
        completion: @escaping @Sendable (Result<Bool, PluginRequestError>) -> Void
    ) {
        guard let instance = registry.withLock({ $0.hooks[id.serial] }), instance.name == id.instance else {
            completion(.failure(PluginRequestError(.notFound, "no plugin hook \(id)")))
            return
        }
        let hookName = request["hook"]?.stringValue ?? "hook"
        instance.enqueueRequest(
            name: hookName, handle: id.serial, arguments: request, deadline: Configuration.seconds(deadline)
        ) { outcome in
            switch outcome {
            case .failed(let error):
                completion(.failure(error))
            case .answered(let status, let json) where status == 0:
                if let allow = json["allow"]?.boolValue {
                    completion(.success(allow))
                } else {
                    completion(.failure(PluginRequestError(
                        .invalid, "plugin \(instance.name) answered the \(hookName) hook without a boolean \"allow\"")))
                }
            case .answered(let status, let json):
                let reason = json["reason"]?.stringValue
                    ?? "plugin \(instance.name) failed the \(hookName) hook with status \(status)"
                completion(.failure(PluginRequestError(.init(status: status), reason)))
            }
        }
    }

    // MARK: Name registries (for instances)

    func claimCommand(_ name: String, for instance: any HostedInstance) -> Bool {
        registry.withLock { r in
            guard r.commands[name] == nil else { return false }
            r.commands[name] = instance
            return true
        }
    }

    func releaseCommand(_ name: String) {
        _ = registry.withLock { $0.commands.removeValue(forKey: name) }
    }

    func claimHook(_ handle: UInt64, for instance: any HostedInstance) {
        registry.withLock { $0.hooks[handle] = instance }
    }

    func releaseHook(_ handle: UInt64) {
        _ = registry.withLock { $0.hooks.removeValue(forKey: handle) }
    }
}

/// One instance, as the `plugins` command lists it.
public struct PluginInstanceInfo: Hashable, Sendable {
    /// The instance name (`[plugin:NAME]`).
    public var name: String
    /// The plugin's own name, from its descriptor.
    public var plugin: String
    /// The library's path.
    public var libraryPath: String
    /// The plugin's version.
    public var version: String
    /// The ABI version the plugin was built against.
    public var abiMajor: UInt32, abiMinor: UInt32
    /// Its lifecycle state.
    public var state: PluginState
    /// Why it failed, when `state` is `.failed`.
    public var failure: String?
    /// Items waiting on its queue.
    public var queueDepth: Int
    /// Events dropped because its queue was full.
    public var droppedEvents: UInt64
    /// Whether it runs in a circus-plugin-host process of its own.
    public var isolated: Bool = false
    /// How many times its host process was restarted after a crash or a hang.
    public var restarts: Int = 0
    /// Its host process, while one runs (isolated instances only).
    public var pid: Int32?
}
