// One running instance of a plugin ([plugin:NAME]): its executor, its registrations
// (subscriptions, commands, hooks, timers, fd watches), the calls it has in flight, and
// its lifecycle create -> start -> ... -> stop -> (registrations released) -> destroy.
//
// Threads: the `State` mutex guards what host API calls change (they may come from any
// thread); everything that calls into the plugin runs on the executor's thread.

import CCircusPlugin
import CCircusPluginLoader
import CircusProtocol
import OrderedCollections
import CircusSystem
import Glibc
import Logging
import Synchronization

/// The lifecycle state of an instance, as the `plugins` command shows it.
public enum PluginState: String, Hashable, Sendable {
    /// Created or being created; not started yet.
    case loaded
    /// `start` succeeded: it receives events and requests.
    case started
    /// Stopped and destroyed.
    case stopped
    /// `create` or `start` failed; destroyed.
    case failed
}

/// What `circus_host *` points at: outlives its instance (a stray call from a plugin's
/// thread after `destroy` finds no instance and fails cleanly instead of crashing), and is
/// tiny, so it is never freed.
final class HostContext: Sendable {
    weak let instance: PluginInstance?
    init(_ instance: PluginInstance) { self.instance = instance }

    static func instance(_ pointer: OpaquePointer?) -> PluginInstance? {
        guard let pointer else { return nil }
        return Unmanaged<HostContext>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue().instance
    }
}

/// The error sink lent to create, start and reconfigure (`circus_error *`).
final class ErrorSink: Sendable {
    private let value = Mutex<(status: Int32, message: String?)>((0, nil))

    func set(_ status: Int32, _ message: String) { value.withLock { $0 = (status, message) } }

    var message: String? { value.withLock { $0.message } }

    /// Calls `body` with the sink as a `circus_error *`.
    func lend<R>(_ body: (OpaquePointer) -> R) -> R {
        withExtendedLifetime(self) { body(OpaquePointer(Unmanaged.passUnretained(self).toOpaque())) }
    }

    static func from(_ pointer: OpaquePointer?) -> ErrorSink? {
        guard let pointer else { return nil }
        return Unmanaged<ErrorSink>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
    }
}

final class PluginInstance: HostedInstance, @unchecked Sendable {
    // The userdata pointers belong to the plugin; the host only hands them back on the
    // executor, so moving them between threads inside the state is safe.
    enum Kind: @unchecked Sendable {
        case subscription(prefix: String, fn: circus_event_fn)
        case command(name: String, fn: circus_request_fn)
        case hook(name: String, fn: circus_request_fn)
        case timer(fn: circus_timer_fn, delay: UInt64, repeatEvery: UInt64)
        case watch(fd: Int32, events: UInt32, fn: circus_fd_fn)
    }

    struct Registration: @unchecked Sendable {
        var kind: Kind
        var ud: UnsafeMutableRawPointer?
        var dtor: circus_dtor_fn?
    }

    struct PendingCall: @unchecked Sendable {
        var done: circus_result_fn
        var ud: UnsafeMutableRawPointer?
    }

    struct State {
        var lifecycle: PluginState = .loaded
        /// Host API calls that register or send something are accepted.
        var accepting = false
        var registrations: [UInt64: Registration] = [:] {
            didSet {
                subscriptions = registrations.compactMap { handle, r in
                    if case .subscription(let prefix, _) = r.kind { (handle, Array(prefix.utf8)) } else { nil }
                }.sorted { $0.handle < $1.handle }
            }
        }
        /// The subscriptions among `registrations`, in registration order: every event
        /// delivered is matched against them, registrations change seldom.
        private(set) var subscriptions: [(handle: UInt64, prefix: [UInt8])] = []

        func subscribed(to topic: String) -> Bool {
            subscriptions.contains { topic.utf8.starts(with: $0.prefix) }
        }
        var pendingCalls: [UInt64: PendingCall] = [:]
        var failure: String?
    }

    let name: String
    /// Unique in the process, never reused: tells this instance from a later one of the
    /// same name.
    let serial: UInt64
    let library: PluginLibrary
    let host: PluginHost
    let executor: PluginExecutor
    let vtable: PluginLibrary.VTable
    let state = Mutex(State())
    private(set) var context: OpaquePointer!

    // Executor-thread only.
    private var plugin: UnsafeMutableRawPointer?
    private var armedTimers: [UInt64: EventLoop.TimerID] = [:]
    private var armedWatches: [UInt64: EventLoop.Registration] = [:]

    /// An instance of `library`, which must be loaded in this process.
    init(name: String, serial: UInt64, library: PluginLibrary, vtable: PluginLibrary.VTable, host: PluginHost)
        throws(SystemError) {
        self.name = name
        self.serial = serial
        self.library = library
        self.vtable = vtable
        self.host = host
        let bus = host.bus
        let configuration = host.configuration
        executor = try PluginExecutor(
            name: "plugin:\(name)", capacity: configuration.queueCapacity,
            slowThreshold: configuration.slowCallbackSeconds, eventGathering: configuration.eventGatheringSeconds,
            reportDrops: { [weak host] count in host?.reportDrops(instance: name, count: count) },
            reportSlow: { kind, seconds in
                let ms = Int((seconds * 1000).rounded())
                bus.log(.warning, instance: name, message: "plugin \(name) took \(ms) ms in a callback (\(kind)); "
                    + "callbacks should return within 100 ms and leave blocking work to the plugin's own threads")
            })
        context = OpaquePointer(Unmanaged.passRetained(HostContext(self)).toOpaque())
        try executor.start()
    }

    var lifecycle: PluginState { state.withLock { $0.lifecycle } }

    private func log(_ level: Logger.Level, _ message: String) {
        host.bus.log(level, instance: name, message: message)
    }

    // MARK: Lifecycle (each step is one item on the executor)

    /// Queues create and start; `completion` gets the outcome, on the executor's thread.
    func begin(config: JSONObject, stateDirectory: String,
               completion: @escaping @Sendable (Result<Void, PluginInstanceError>) -> Void) {
        let configBytes = LentBytes(json: config)
        executor.enqueue(.init(kind: .control, run: { [self] in
            let result = runCreateAndStart(config: configBytes, stateDirectory: stateDirectory)
            if case .failure = result { executor.finish() }
            completion(result)
        }, discard: { [name] in
            completion(.failure(PluginInstanceError(instance: name, status: CIRCUS_E_CANCELLED, message: "stopped before it started")))
        }))
    }

    private func runCreateAndStart(config: LentBytes, stateDirectory: String) -> Result<Void, PluginInstanceError> {
        state.withLock { $0.accepting = true }
        let sink = ErrorSink()
        var instancePointer: UnsafeMutableRawPointer?
        let status: circus_status = LentBytes(name).with { nameStr in
            config.with { configStr in
                LentBytes(stateDirectory).with { dirStr in
                    var params = circus_create_params()
                    params.struct_size = UInt32(MemoryLayout<circus_create_params>.size)
                    params.api = HostFunctionTable.pointer
                    params.host = context
                    params.instance_name = nameStr
                    params.config_json = configStr
                    params.state_dir = dirStr
                    return sink.lend { err in vtable.create(&params, &instancePointer, err) }
                }
            }
        }
        guard status == CIRCUS_OK else {
            let message = sink.message ?? "create failed with status \(status) and gave no reason"
            teardown(callStop: false, callDestroy: false, final: .failed, failure: message)
            return .failure(PluginInstanceError(instance: name, status: status, message: message))
        }
        plugin = instancePointer
        if let start = vtable.start {
            let startSink = ErrorSink()
            let started = startSink.lend { err in start(plugin, err) }
            guard started == CIRCUS_OK else {
                let message = startSink.message ?? "start failed with status \(started) and gave no reason"
                teardown(callStop: false, callDestroy: true, final: .failed, failure: message)
                return .failure(PluginInstanceError(instance: name, status: started, message: message))
            }
        }
        state.withLock { $0.lifecycle = .started }
        return .success(())
    }

    /// Queues stop, release and destroy; `completion` runs on the executor's thread after
    /// `destroy` returned. With `final`, the executor's thread ends afterwards.
    func end(final: Bool, completion: @escaping @Sendable () -> Void) {
        let queued = executor.enqueue(.init(kind: .control, run: { [self] in
            let wasStarted = lifecycle == .started
            if wasStarted || lifecycle == .loaded {
                teardown(callStop: wasStarted, callDestroy: true, final: .stopped, failure: nil)
            }
            if final { executor.finish() }
            completion()
        }, discard: completion))
        if queued != .queued { completion() }
    }

    /// Applies a new config: in place through `reconfigure`, or by destroying the instance
    /// and creating it again.
    func reconfigure(config: JSONObject, stateDirectory: String,
                     completion: @escaping @Sendable (Result<Void, PluginInstanceError>) -> Void) {
        let bytes = LentBytes(json: config)
        guard let reconfigure = vtable.reconfigure else {
            end(final: false) { [self] in
                executor.reopen()
                begin(config: config, stateDirectory: stateDirectory, completion: completion)
            }
            return
        }
        let queued = executor.enqueue(.init(kind: .control, run: { [self] in
            guard lifecycle == .started else {
                completion(.failure(PluginInstanceError(instance: name, status: CIRCUS_E_INVALID, message: "not started")))
                return
            }
            let sink = ErrorSink()
            let status = bytes.with { json in sink.lend { err in reconfigure(plugin, json, err) } }
            if status == CIRCUS_OK {
                completion(.success(()))
            } else {
                let message = sink.message ?? "reconfigure failed with status \(status) and gave no reason"
                completion(.failure(PluginInstanceError(instance: name, status: status, message: message)))
            }
        }))
        if queued != .queued {
            completion(.failure(PluginInstanceError(instance: name, status: CIRCUS_E_CANCELLED, message: "stopped")))
        }
    }

    /// On the executor: the plugin's stop, then every registration ended (dtors), pending
    /// requests and calls answered, queued work dropped, then destroy.
    private func teardown(callStop: Bool, callDestroy: Bool, final lifecycle: PluginState, failure: String?) {
        if callStop, let stop = vtable.stop { stop(plugin) }
        let (registrations, calls) = state.withLock { s in
            s.accepting = false
            let regs = s.registrations.sorted { $0.key < $1.key }
            let calls = s.pendingCalls.sorted { $0.key < $1.key }
            s.registrations = [:]
            s.pendingCalls = [:]
            return (regs, calls)
        }
        for (handle, registration) in registrations { detach(handle, registration) }
        for (_, registration) in registrations { registration.dtor?(registration.ud) }
        PendingRequests.cancelAll(instance: serial, reason: "plugin \(name) was stopped before it answered")
        let cancelled = LentBytes(json: ["status": "error", "reason": .string("plugin \(name) is stopping")])
        for (_, call) in calls { cancelled.with { call.done(call.ud, CIRCUS_E_CANCELLED, $0) } }
        for item in executor.close() { item.discard() }
        if callDestroy { vtable.destroy(plugin) }
        plugin = nil
        state.withLock {
            $0.lifecycle = lifecycle
            $0.failure = failure
        }
    }

    /// Removes what a registration put outside the instance: the bus's command or hook, the
    /// loop's timer or watch (when on the executor's thread; else through it).
    private func detach(_ handle: UInt64, _ registration: Registration) {
        switch registration.kind {
        case .subscription:
            break
        case .command(let name, _):
            host.releaseCommand(name)
            host.bus.unregisterCommand(named: name)
        case .hook:
            host.releaseHook(handle)
            host.bus.unregisterHook(PluginHookID(instance: name, serial: handle))
        case .timer:
            executor.onLoop { [self] loop in
                if let id = armedTimers.removeValue(forKey: handle) { loop.cancel(id) }
            }
        case .watch:
            executor.onLoop { [self] loop in
                if let registration = armedWatches.removeValue(forKey: handle) { loop.unregister(registration) }
            }
        }
    }

    // MARK: Registrations (host API; any thread)

    /// Adds a registration if the instance accepts them; returns its handle.
    private func add(_ registration: Registration, check: (State) -> circus_status = { _ in CIRCUS_OK })
        -> (circus_status, UInt64) {
        let handle = host.nextHandle()
        let status = state.withLock { s -> circus_status in
            guard s.accepting else { return CIRCUS_E_CANCELLED }
            let verdict = check(s)
            guard verdict == CIRCUS_OK else { return verdict }
            s.registrations[handle] = registration
            return CIRCUS_OK
        }
        return (status, handle)
    }

    func subscribe(prefix: String, fn: circus_event_fn, ud: UnsafeMutableRawPointer?, dtor: circus_dtor_fn?) -> (circus_status, UInt64) {
        add(Registration(kind: .subscription(prefix: prefix, fn: fn), ud: ud, dtor: dtor))
    }

    func registerCommand(
        name command: String, meta: JSONObject, readOnly: Bool, fn: circus_request_fn,
        ud: UnsafeMutableRawPointer?, dtor: circus_dtor_fn?
    ) -> (circus_status, UInt64) {
        guard Self.isValidCommandName(command, instance: name) else {
            log(.error, "plugin \(name) tried to register the command \"\(command)\": its commands must be named "
                + "\"\(name).<verb>\" with a verb of [a-z0-9_.-]")
            return (CIRCUS_E_INVALID, 0)
        }
        if let refusal = host.bus.requestRefusal {
            log(.error, "plugin \(name) tried to register the command \"\(command)\": \(refusal)")
            return (CIRCUS_E_UNSUPPORTED, 0)
        }
        guard host.claimCommand(command, for: self) else {
            log(.error, "plugin \(name) tried to register the command \"\(command)\" twice")
            return (CIRCUS_E_INVALID, 0)
        }
        let result = add(Registration(kind: .command(name: command, fn: fn), ud: ud, dtor: dtor))
        guard result.0 == CIRCUS_OK else {
            host.releaseCommand(command)
            return result
        }
        host.bus.registerCommand(PluginCommand(
            name: command, instance: name, meta: meta, access: readOnly ? .readOnly : .control))
        return result
    }

    func registerHook(
        watcherPattern: String, hookName: String, fn: circus_request_fn,
        ud: UnsafeMutableRawPointer?, dtor: circus_dtor_fn?
    ) -> (circus_status, UInt64) {
        guard Self.isValidHookName(hookName) else {
            log(.error, "plugin \(name) tried to register an unknown hook \"\(hookName)\"; hooks are "
                + String(cString: circus_hook_names()))
            return (CIRCUS_E_INVALID, 0)
        }
        guard !watcherPattern.isEmpty else { return (CIRCUS_E_INVALID, 0) }
        if let refusal = host.bus.requestRefusal {
            log(.error, "plugin \(name) tried to register the \(hookName) hook: \(refusal)")
            return (CIRCUS_E_UNSUPPORTED, 0)
        }
        let result = add(Registration(kind: .hook(name: hookName, fn: fn), ud: ud, dtor: dtor))
        guard result.0 == CIRCUS_OK else { return result }
        host.claimHook(result.1, for: self)
        host.bus.registerHook(PluginHook(
            id: PluginHookID(instance: name, serial: result.1), watcherPattern: watcherPattern, hookName: hookName))
        return result
    }

    func addTimer(delay: UInt64, repeatEvery: UInt64, fn: circus_timer_fn, ud: UnsafeMutableRawPointer?,
                  dtor: circus_dtor_fn?) -> (circus_status, UInt64) {
        let result = add(Registration(kind: .timer(fn: fn, delay: delay, repeatEvery: repeatEvery), ud: ud, dtor: dtor))
        guard result.0 == CIRCUS_OK else { return result }
        let handle = result.1
        executor.onLoop { [self] loop in arm(handle, after: delay, on: loop) }
        return result
    }

    func watch(fd: Int32, events: UInt32, fn: circus_fd_fn, ud: UnsafeMutableRawPointer?,
               dtor: circus_dtor_fn?) -> (circus_status, UInt64) {
        let allowed = UInt32(CIRCUS_FD_READABLE | CIRCUS_FD_WRITABLE)
        guard fd >= 0, events != 0, events & ~allowed == 0, fcntl(fd, F_GETFD) != -1 else { return (CIRCUS_E_INVALID, 0) }
        let result = add(Registration(kind: .watch(fd: fd, events: events, fn: fn), ud: ud, dtor: dtor)) { s in
            let taken = s.registrations.values.contains { if case .watch(fd, _, _) = $0.kind { true } else { false } }
            return taken ? CIRCUS_E_INVALID : CIRCUS_OK
        }
        guard result.0 == CIRCUS_OK else { return result }
        let handle = result.1
        executor.onLoop { [self] loop in
            do {
                armedWatches[handle] = try loop.register(fd: fd, events: EventLoop.Events(rawValue: events)) { [self] ready in
                    fireWatch(handle, revents: ready.rawValue)
                }
            } catch {
                log(.error, "plugin \(name): cannot watch fd \(fd): \(error)")
                _ = cancel(handle)
            }
        }
        return result
    }

    /// Ends a registration of any kind. Its dtor runs later, on the executor.
    func cancel(_ handle: UInt64, onlySubscriptions: Bool = false) -> circus_status {
        let ended = state.withLock { s -> Result<Registration, CancelRefusal> in
            guard s.accepting else { return .failure(.closed) }
            guard let registration = s.registrations[handle] else { return .failure(.unknown) }
            if onlySubscriptions, case .subscription = registration.kind {} else if onlySubscriptions {
                return .failure(.unknown)
            }
            s.registrations[handle] = nil
            return .success(registration)
        }
        switch ended {
        case .failure(.closed): return CIRCUS_E_CANCELLED
        case .failure(.unknown): return CIRCUS_E_NOT_FOUND
        case .success(let registration):
            detach(handle, registration)
            runDtor(registration)
            return CIRCUS_OK
        }
    }

    private enum CancelRefusal: Error { case closed, unknown }

    private func runDtor(_ registration: Registration) {
        guard let dtor = registration.dtor else { return }
        nonisolated(unsafe) let ud = registration.ud
        let item = PluginExecutor.Item(kind: .control, run: { dtor(ud) }, discard: { dtor(ud) })
        if executor.enqueue(item) != .queued { dtor(ud) }
    }

    private func registration(_ handle: UInt64) -> Registration? {
        state.withLock { $0.registrations[handle] }
    }

    // MARK: Timers and watches (executor thread)

    private func arm(_ handle: UInt64, after milliseconds: UInt64, on loop: EventLoop) {
        guard registration(handle) != nil else { return }
        armedTimers[handle] = loop.schedule(after: Double(milliseconds) / 1000) { [self] in
            fireTimer(handle, on: loop)
        }
    }

    private func fireTimer(_ handle: UInt64, on loop: EventLoop) {
        armedTimers[handle] = nil
        guard let registration = registration(handle), case .timer(let fn, _, let repeatEvery) = registration.kind
        else { return }
        fn(registration.ud, handle)
        if repeatEvery > 0 {
            arm(handle, after: repeatEvery, on: loop)
        } else {
            let ended = state.withLock { $0.registrations.removeValue(forKey: handle) }
            if let ended { ended.dtor?(ended.ud) }
        }
    }

    private func fireWatch(_ handle: UInt64, revents: UInt32) {
        guard let registration = registration(handle), case .watch(let fd, _, let fn) = registration.kind else { return }
        fn(registration.ud, fd, revents)
    }

    // MARK: Events

    /// Whether some subscription of a started instance wants `topic`.
    func wants(_ topic: String) -> Bool {
        state.withLock { s in
            s.lifecycle == .started && s.subscribed(to: topic)
        }
    }

    /// Queues an event (dropping the oldest queued event when full).
    func enqueueEvent(topic: String, payload: LentBytes, wake: Bool) -> Bool {
        let item = PluginExecutor.Item(kind: .event, run: { [self] in dispatch(topic: topic, payload: payload) })
        guard wake else { return executor.enqueueDeferringWake(item) }
        executor.enqueue(item)
        return false
    }

    func wake() { executor.wake() }

    private func dispatch(topic: String, payload: LentBytes) {
        let handles = state.withLock { s in
            s.subscriptions.compactMap { topic.utf8.starts(with: $0.prefix) ? $0.handle : nil }
        }
        let topicBytes = LentBytes(topic)
        for handle in handles {
            // A callback may have cancelled a later subscription.
            guard let r = registration(handle), case .subscription(_, let fn) = r.kind else { continue }
            topicBytes.with { topicStr in payload.with { json in fn(r.ud, topicStr, json) } }
        }
    }

    // MARK: Requests (commands and hooks)

    /// Queues a request; the outcome goes to `complete` (from any thread).
    func enqueueRequest(
        name requestName: String, handle: UInt64?, arguments: JSONObject, deadline: Double,
        complete: @escaping @Sendable (RequestOutcome) -> Void
    ) {
        let token = PendingRequests.add(instance: serial, complete: complete)
        let args = LentBytes(json: arguments)
        let result = executor.enqueue(.init(kind: .request, run: { [self] in
            guard PendingRequests.isPending(token) else {
                PendingRequests.forgetExpired(token)
                return
            }
            let found = state.withLock { s -> (circus_request_fn, UnsafeMutableRawPointer?)? in
                if let handle {
                    if let r = s.registrations[handle], case .hook(_, let fn) = r.kind { return (fn, r.ud) }
                } else {
                    for r in s.registrations.values {
                        if case .command(requestName, let fn) = r.kind { return (fn, r.ud) }
                    }
                }
                return nil
            }
            guard let (fn, ud) = found else {
                PendingRequests.finish(token, .failed(PluginRequestError(
                    .notFound, "plugin \(name) no longer handles \(requestName)")))
                return
            }
            LentBytes(requestName).with { nameStr in
                args.with { argsStr in fn(ud, nameStr, argsStr, PendingRequests.pointer(token)) }
            }
        }))
        switch result {
        case .queued:
            let reason = "plugin \(name) did not answer \(requestName) within \(Self.format(deadline)) s"
            host.clock.after(deadline) { PendingRequests.expire(token, reason: reason) }
        case .busy:
            PendingRequests.finish(token, .failed(PluginRequestError(
                .busy, "plugin \(name) is busy: its queue of \(executor.capacity) items is full; retry later")))
        case .closed:
            PendingRequests.finish(token, .failed(PluginRequestError(.cancelled, "plugin \(name) is stopping")))
        }
    }

    private static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }

    // MARK: Calls to daemon commands

    func call(command: String, arguments: JSONObject, done: circus_result_fn, ud: UnsafeMutableRawPointer?) -> circus_status {
        let id = host.nextHandle()
        let accepted = state.withLock { s -> Bool in
            guard s.accepting else { return false }
            s.pendingCalls[id] = PendingCall(done: done, ud: ud)
            return true
        }
        guard accepted else { return CIRCUS_E_CANCELLED }
        host.bus.runCommand(command, arguments: arguments, from: name) { [self] result in
            let (status, json) = Self.callResult(result)
            let bytes = LentBytes(json: json)
            executor.enqueue(.init(kind: .control, run: { [self] in
                guard let call = state.withLock({ $0.pendingCalls.removeValue(forKey: id) }) else { return }
                bytes.with { call.done(call.ud, status, $0) }
            }))
        }
        return CIRCUS_OK
    }

    /// A daemon command's result as the plugin sees it: a status and the whole reply object.
    static func callResult(_ result: Result<JSONObject, CommandError>) -> (circus_status, JSONObject) {
        switch result {
        case .success(let payload):
            // As Circus merges a command's result into its reply (dict.update): a payload
            // key "status" (the `status` command) replaces "ok" in place.
            var reply: JSONObject = ["status": "ok"]
            for (key, value) in payload { reply[key] = value }
            return (CIRCUS_OK, reply)
        case .failure(let error):
            let status: circus_status = switch error.code {
            case .unknownCommand: CIRCUS_E_NOT_FOUND
            case .osError: CIRCUS_E_INTERNAL
            default: CIRCUS_E_INVALID
            }
            return (status, ["status": "error", "reason": .string(error.reason)])
        }
    }

    // MARK: Publishing

    func publish(topic: String, payload: JSONObject) -> circus_status {
        let prefix = "plugin.\(name)."
        guard topic.hasPrefix(prefix), topic.utf8.count > prefix.utf8.count else {
            log(.error, "plugin \(name) tried to publish \"\(topic)\": it may publish only under \"\(prefix)\"")
            return CIRCUS_E_INVALID
        }
        guard state.withLock({ $0.accepting }) else { return CIRCUS_E_CANCELLED }
        host.bus.publish(EventMessage(topic: topic, payload: payload))
        return CIRCUS_OK
    }

    // MARK: Posted tasks

    func post(_ fn: circus_task_fn, ud: UnsafeMutableRawPointer?, dtor: circus_dtor_fn?) -> circus_status {
        guard state.withLock({ $0.accepting }) else { return CIRCUS_E_CANCELLED }
        nonisolated(unsafe) let ud = ud
        let item = PluginExecutor.Item(kind: .task, run: {
            fn(ud)
            dtor?(ud)
        }, discard: { dtor?(ud) })
        switch executor.enqueue(item) {
        case .queued: return CIRCUS_OK
        case .busy: return CIRCUS_E_BUSY
        case .closed: return CIRCUS_E_CANCELLED
        }
    }

    // MARK: Names

    static func isValidHookName(_ hook: String) -> Bool {
        var hook = hook
        return hook.withUTF8 { circus_hook_name_is_valid(UnsafeRawPointer($0.baseAddress)?.assumingMemoryBound(to: CChar.self), $0.count) != 0 }
    }

    static func isValidCommandName(_ command: String, instance: String) -> Bool {
        var command = command, instance = instance
        return command.withUTF8 { c in
            instance.withUTF8 { i in
                circus_command_name_is_valid(
                    UnsafeRawPointer(i.baseAddress)?.assumingMemoryBound(to: CChar.self), i.count,
                    UnsafeRawPointer(c.baseAddress)?.assumingMemoryBound(to: CChar.self), c.count) != 0
            }
        }
    }

    // MARK: Introspection

    var queueDepth: Int { executor.depth }
    var droppedEvents: UInt64 { executor.droppedTotal }
    var failure: String? { state.withLock { $0.failure } }
    var isolation: (restarts: Int, pid: Int32?)? { nil }
}
