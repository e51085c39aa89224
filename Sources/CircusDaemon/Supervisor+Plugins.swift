// Native plugins in the daemon: started after the endpoints are bound and before any
// watcher, stopped after the last watcher, changed by reloadconfig; every event on the
// bus is delivered to them, and `plugins` lists them.

import CircusConfig
import CircusMessageBus
import CircusPluginHost
import CircusProtocol
import CircusSystem
import Glibc
import Logging
import OrderedCollections
import Synchronization

extension Supervisor {
    /// How long start-up waits for one instance's `create` and `start`.
    static let pluginStartTimeout = 10.0
    /// How long quit waits for the instances to stop before it exits anyway.
    static let pluginStopTimeout = 5.0

    /// Creates the plugin host and opens the libraries the configuration names (plus the
    /// default flapping one). Runs before anything is bound or started.
    ///
    /// - Throws: `DaemonError` with the file:line message of a section whose library is
    ///   missing or refused.
    func preparePlugins() throws(DaemonError) {
        let host: PluginHost
        let pluginBus = DaemonPluginBus(supervisor: self)
        self.pluginBus = pluginBus
        do {
            host = try PluginHost(bus: pluginBus)
        } catch {
            throw DaemonError("cannot start the plugin host: \(error)")
        }
        pluginHost = host
        let planner = PluginPlanner(host: host)
        pluginPlanner = planner
        do {
            pluginPlans = try planner.plans(for: configuration)
        } catch {
            throw DaemonError(error.description)
        }
        // Every event reaches the plugins subscribed to its topic (the host filters). A
        // loop turn often publishes many (a batch of exits: reap, spawn, ...): each
        // instance is woken once for the turn's events, at its end, and an in-process
        // one within `eventGathering` (5 ms) of that, so a burst over many turns costs
        // its thread one wake-up.
        let loop = self.loop
        _ = bus.events.subscribe(prefix: "") { event in
            if host.deliverDeferringWakeup(event) { loop.atEndOfTurn { host.wakeDeferred() } }
        }
    }

    /// Starts the active instances one after the other, in priority order, each before
    /// the next (and before any watcher). Called before the loop runs: what the plugins
    /// post (commands they register, commands they call) waits for it.
    ///
    /// - Throws: `DaemonError` when an instance refuses its config or does not start in
    ///   `pluginStartTimeout`.
    func startPlugins() throws(DaemonError) {
        guard let host = pluginHost else { return }
        for plan in pluginPlans where plan.active {
            guard let library = plan.library else { continue }
            let latch = Latch<Result<Void, PluginInstanceError>>()
            do {
                try host.startInstance(
                    plan.instance, of: library, config: plan.config, stateDirectory: try stateDirectory(for: plan.instance),
                    isolate: plan.isolated
                ) { result in latch.set(result) }
            } catch {
                throw DaemonError("[plugin:\(plan.instance)] \(error)")
            }
            switch latch.wait(seconds: Self.pluginStartTimeout) {
            case .success?:
                logger.info("plugin \(plan.instance) started (\(library.name) \(library.version) from \(library.path))")
            case .failure(let error)?:
                // Its options are refused by the plugin itself: point at its section.
                let at = plan.location.map { "\($0): " } ?? ""
                throw DaemonError("\(at)[plugin:\(plan.instance)] cannot start: \(error.message)")
            case nil:
                throw DaemonError("[plugin:\(plan.instance)] did not start within \(Int(Self.pluginStartTimeout)) s")
            }
        }
    }

    /// Stops every instance (last started first is not needed: each has its own
    /// executor), then calls `then` on the loop thread; after `pluginStopTimeout` it goes
    /// on without the ones that did not stop (a plugin blocked in a callback).
    func stopPlugins(then: @escaping () -> Void) {
        guard let host = pluginHost else { return then() }
        let running = host.instances.filter { $0.state == .started || $0.state == .loaded }.map(\.name)
        guard !running.isEmpty else { return then() }
        let remaining = Mutex(Set(running))
        let allStopped = Latch<Bool>()
        for name in running {
            host.stopInstance(name) {
                let empty = remaining.withLock { $0.remove(name); return $0.isEmpty }
                if empty { allStopped.set(true) }
            }
        }
        // The wait blocks a worker thread, never the loop.
        do {
            try loop.offload(to: configWorker, { () -> [String] in
                _ = allStopped.wait(seconds: Self.pluginStopTimeout)
                return remaining.withLock { $0.sorted() }
            }, then: { [unowned self] stuck in
                if !stuck.isEmpty {
                    let names = stuck.joined(separator: ", ")
                    self.logger.warning("plugins \(names) did not stop within \(Int(Self.pluginStopTimeout)) s; exiting without them")
                }
                then()
                self.drainDeferred()
            })
        } catch {
            then()
        }
    }

    /// Removes `path` and what it holds, without following symbolic links.
    private static func removeTree(_ path: String) {
        if unlink(path) == 0 || errno != EISDIR && errno != EPERM { return }
        if let directory = opendir(path) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name != "." && name != ".." { removeTree(path + "/" + name) }
            }
            closedir(directory)
        }
        rmdir(path)
    }

    /// A start-up that failed after some instances started: stop them without waiting.
    func stopPluginsAtOnce() {
        guard let host = pluginHost else { return }
        for info in host.instances where info.state == .started || info.state == .loaded {
            host.stopInstance(info.name) {}
        }
        host.shutdown()
        removePluginState()
    }

    /// Applies the plugin sections of a configuration read again (its libraries were
    /// opened when it was read: the planner answers from its cache), then calls `then`
    /// on the loop thread with the instances that did not start or take their new options.
    func reloadPlugins(_ new: CircusConfiguration, then: @escaping (WatcherFailures) -> Void) {
        guard let planner = pluginPlanner else { return then(WatcherFailures()) }
        do {
            applyPluginChanges(try planner.plans(for: new), then: then)
        } catch {
            logger.error("reloadconfig: \(error)")
            var failures = WatcherFailures()
            failures.record(failure: error.description, of: "plugins")
            then(failures)
        }
    }

    /// reloadconfig: sections added are started, removed ones stopped, changed ones
    /// reconfigured (same library) or stopped and started again.
    func applyPluginChanges(_ newPlans: [PluginPlan], then: @escaping (WatcherFailures) -> Void) {
        guard let host = pluginHost else { return then(WatcherFailures()) }
        // Each start or reconfiguration answers from the instance's thread; the answers are
        // gathered on the loop, and `then` runs once the last is in (the pass below counts
        // as one, so that it runs after the pass even when nothing answers later).
        let reports = PluginChangeReports(then)
        let remote = loop.remote
        let old = Dictionary(pluginPlans.map { ($0.instance, $0) }, uniquingKeysWith: { a, _ in a })
        let new = Dictionary(newPlans.map { ($0.instance, $0) }, uniquingKeysWith: { a, _ in a })
        pluginPlans = newPlans
        for plan in old.values where new[plan.instance] == nil && plan.active {
            host.stopInstance(plan.instance) {}
            logger.info("reloadconfig: plugin \(plan.instance) stopped")
        }
        for plan in newPlans {
            guard let library = plan.library else { continue }
            let before = old[plan.instance]
            if let before, before.sameAs(plan) { continue }
            let name = plan.instance
            let pluginBus = self.pluginBus
            // The one answer of a start or reconfiguration asked for below (nil: it went
            // well), from whatever thread it comes, to the loop.
            let answer: @Sendable (String?) -> Void = { failure in
                if let failure { pluginBus?.log(.error, instance: name, message: "reloadconfig: \(failure)") }
                remote.post {
                    if let failure { reports.failures.record(failure: failure, of: "plugin:" + name) }
                    reports.done()
                }
            }
            let report: @Sendable (Result<Void, PluginInstanceError>) -> Void = { result in
                if case .failure(let error) = result { answer(error.message) } else { answer(nil) }
            }
            let directory: String
            do {
                directory = try stateDirectory(for: name)
            } catch {
                logger.error("reloadconfig: plugin \(name): \(error)")
                reports.failures.record(failure: "\(error)", of: "plugin:" + name)
                continue
            }
            // What runs, not what the last configuration asked for: an instance that failed
            // to start (bad options) is started, not reconfigured, once its section is mended.
            let running = host.instances.contains { $0.name == name && ($0.state == .started || $0.state == .loaded) }
            switch (running, plan.active) {
            case (_, false):
                if running { host.stopInstance(name) {} }
            case (true, true) where before?.library === library && before?.isolated == plan.isolated
                && library.canReconfigure:
                reports.pending += 1
                host.reconfigureInstance(name, config: plan.config, stateDirectory: directory, completion: report)
            case (true, true):
                reports.pending += 1
                host.stopInstance(name) { [config = plan.config, isolated = plan.isolated] in
                    do {
                        try host.startInstance(
                            name, of: library, config: config, stateDirectory: directory, isolate: isolated, completion: report)
                    } catch {
                        answer("\(error)")
                    }
                }
            case (false, true):
                do {
                    try host.startInstance(
                        name, of: library, config: plan.config, stateDirectory: directory, isolate: plan.isolated,
                        completion: report)
                    reports.pending += 1
                } catch {
                    logger.error("reloadconfig: plugin \(name): \(error)")
                    reports.failures.record(failure: "\(error)", of: "plugin:" + name)
                }
            }
            logger.info("reloadconfig: plugin \(name) \(before == nil ? "added" : "changed")")
        }
        reports.done()
    }

    /// `plugins`: every instance, running or not.
    func pluginsCommand(_ respond: Responder) {
        var all = JSONObject()
        let instances = pluginHost?.instances ?? []
        for plan in pluginPlans {
            var entry: JSONObject = [
                "plugin": plan.library.map { .string($0.name) } ?? .null,
                "version": plan.library.map { .string($0.version) } ?? .null,
                "library": plan.library.map { .string($0.path) } ?? .null,
                "abi": plan.library.map { .string("\($0.abiMajor).\($0.abiMinor)") } ?? .null,
                "state": "inactive", "queue_depth": 0, "dropped_events": 0, "failure": .null,
                "default": .bool(plan.isDefault),
                "isolated": .bool(plan.isolated), "pid": .null, "restarts": 0,
            ]
            if case .python(let className) = plan.source {
                entry["state"] = .string("watcher plugin:\(plan.instance)")
                entry["plugin"] = .string(className)
            }
            if plan.active, let info = instances.first(where: { $0.name == plan.instance }) {
                entry["state"] = .string(info.state.rawValue)
                entry["queue_depth"] = .int(Int64(info.queueDepth))
                entry["dropped_events"] = .int(Int64(info.droppedEvents))
                entry["failure"] = info.failure.map(JSON.string) ?? .null
                entry["pid"] = info.pid.map { .int(Int64($0)) } ?? .null
                entry["restarts"] = .int(Int64(info.restarts))
            }
            all[plan.instance] = .object(entry)
        }
        respond.ok(["plugins": .object(all)])
    }

    /// An existing directory of the instance's own, under the daemon's plugin state
    /// directory (made 0700 on first use).
    func stateDirectory(for instance: String) throws(DaemonError) -> String {
        if pluginStateRoot == nil {
            let base = (getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp")
            var template = Array("\(base)/circusd-plugins-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else {
                throw DaemonError("cannot create the plugins' state directory in \(base): \(errnoDescription(errno))")
            }
            pluginStateRoot = String(cString: made)
        }
        let path = pluginStateRoot! + "/" + instance
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw DaemonError("cannot create \(path): \(errnoDescription(errno))")
        }
        return path
    }

    /// Removes the state directories at exit.
    func removePluginState() {
        guard let root = pluginStateRoot else { return }
        Self.removeTree(root)
        pluginStateRoot = nil
    }
}

/// One value handed from another thread to a thread that waits for it (start-up only:
/// the loop is not running yet).
final class Latch<Value: Sendable>: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var value: Value?

    init() {
        pthread_mutex_init(&mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    func set(_ value: Value) {
        pthread_mutex_lock(&mutex)
        if self.value == nil { self.value = value }
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
    }

    /// The value, or nil when it did not come within `seconds`.
    func wait(seconds: Double) -> Value? {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let nanos = Int(deadline.tv_nsec) + Int((seconds - seconds.rounded(.down)) * 1e9)
        deadline.tv_sec += Int(seconds) + nanos / 1_000_000_000
        deadline.tv_nsec = nanos % 1_000_000_000
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while value == nil {
            if pthread_cond_timedwait(&condition, &mutex, &deadline) == ETIMEDOUT { break }
        }
        return value
    }
}

/// The answers of a reloadconfig's plugin starts and reconfigurations (loop thread only).
private final class PluginChangeReports: @unchecked Sendable {
    var failures = WatcherFailures()
    /// Answers still to come, and the pass that asks for them.
    var pending = 1
    private let then: (WatcherFailures) -> Void

    init(_ then: @escaping (WatcherFailures) -> Void) { self.then = then }

    func done() {
        pending -= 1
        if pending == 0 { then(failures) }
    }
}
