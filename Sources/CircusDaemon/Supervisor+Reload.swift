// reloadconfig, SIGHUP and the in-process arbiter restart (`restart` without a name):
// the configuration file is read again on the config worker thread, never on the loop.

import CircusConfig
import CircusCore
import CircusHooks
import CircusMessageBus
import CircusProtocol
import CircusSystem
import Glibc
import Logging
import OrderedCollections

extension Supervisor {
    /// Reads the configuration file the daemon was started with on `configWorker` and
    /// calls `then` on the loop thread with the result; its warnings are logged then.
    ///
    /// Reads run one at a time in the order they were asked for, so two reloadconfigs in a
    /// row see the file in that order. Reading is the only part done off the loop: the
    /// result is applied by the caller, on the loop thread.
    func readConfigurationFile(then: @escaping (Result<CircusConfiguration, ConfigError>) -> Void) {
        let path = configuration.path
        let directory = currentDirectory
        let env = Dictionary(environment.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
        let accounts = SystemAccounts(snapshot: users.snapshot)
        let hooks = hookCatalog
        let planner = pluginPlanner
        let environment = self.environment
        do {
            try loop.offload(to: configWorker, {
                Result { () throws(ConfigError) in
                    let loaded = try ConfigLoader.load(
                        path: path, environment: env, currentDirectory: directory, accounts: accounts)
                    try hooks.resolve(loaded.configuration)
                    try PythonHookCheck.verify(loaded.configuration, environment: environment)
                    try PythonStreamCheck.verify(loaded.configuration, environment: environment)
                    // Opens and checks the plugin libraries here, off the loop: a missing or
                    // refused one makes the file fail to load, and nothing changes.
                    _ = try planner?.plans(for: loaded.configuration)
                    try PythonPluginCheck.verify(loaded.configuration, environment: environment)
                    return loaded
                }
            }, then: { [unowned self] result in
                switch result {
                case .success(let loaded):
                    for warning in loaded.warnings { self.logger.warning("\(warning)") }
                    then(.success(loaded.configuration))
                case .failure(let error):
                    then(.failure(error))
                }
                self.drainDeferred()
            })
        } catch {
            then(.failure(ConfigError(file: path, message: "cannot start the thread that reads the configuration: \(error)")))
        }
    }

    /// Applies `[circus]` values that can change while running; the endpoints need a restart.
    private func applySettings(_ new: CircusSettings) {
        let old = configuration.settings
        if new.endpoint != old.endpoint || new.pubsubEndpoint != old.pubsubEndpoint {
            logger.warning("reloadconfig: endpoint changes take effect at the next circusd start")
        }
        if let mask = new.umask, new.umask != old.umask { umask(mode_t(mask)) }
        var kept = new
        kept.endpoint = old.endpoint
        kept.pubsubEndpoint = old.pubsubEndpoint
        applyControlAccess(&kept, old: old)
        configuration.settings = kept
    }

    /// The reloadconfig diff: new watchers are created (and started when autostart),
    /// removed ones stopped and dropped, a change of numprocesses alone resizes in place,
    /// any other change restarts that watcher with its new configuration. Unchanged
    /// watchers are not touched. (Circus restarts every watcher when `[circus]` changed
    /// and then ignores the new values; we apply what can be applied.)
    ///
    /// - Parameters:
    ///   - new: the configuration as read again (see `readConfigurationFile(then:)`).
    ///   - finish: called when every change is applied, with the watchers that were
    ///     created or restarted by the diff and those that failed to start.
    func applyReloadedConfiguration(
        _ new: CircusConfiguration,
        _ finish: @escaping (_ fresh: [WatcherEntry], _ failures: WatcherFailures) -> Void
    ) {
        // A read that comes back while the daemon quits must not create watchers.
        if quitting { return finish([], WatcherFailures()) }
        resolveAddresses(of: socketChanges(to: new.sockets)) { [unowned self] sockets in
            if self.quitting { return finish([], WatcherFailures()) }
            self.applyReloadedConfiguration(new, sockets: sockets, finish)
        }
    }

    /// ``applyReloadedConfiguration(_:_:)`` once the addresses of the sockets to bind are
    /// resolved. A watcher that uses a socket that changed or went away is restarted
    /// (stopped before the socket is closed, started once the new one is bound), even
    /// when its own configuration did not change.
    private func applyReloadedConfiguration(
        _ new: CircusConfiguration, sockets: SocketChanges,
        _ finish: @escaping (_ fresh: [WatcherEntry], _ failures: WatcherFailures) -> Void
    ) {
        applySettings(new.settings)
        configuration.watchers = new.watchers
        configuration.globalEnv = new.globalEnv
        configuration.sockets = new.sockets
        configuration.plugins = new.plugins

        let newByKey = Dictionary(new.watchers.map { ($0.name.lowercased(), $0) }, uniquingKeysWith: { a, _ in a })
        let removed = watchers.filter { newByKey[$0.key] == nil }
        var resized: [WatcherEntry] = []
        var replaced: [(old: WatcherEntry, new: WatcherEntry)] = []
        var added: [WatcherEntry] = []
        for config in new.watchers {
            guard let entry = watcher(named: config.name) else {
                added.append(WatcherEntry(config: config))
                continue
            }
            let before = Self.comparable(entry.creationConfig)
            let after = Self.comparable(config)
            let socketChanged = uses(entry, anyOf: sockets.closed)
            if before == after, !socketChanged { continue }
            var beforeResized = before
            beforeResized.numprocesses = after.numprocesses
            if beforeResized == after, !socketChanged {
                resized.append(entry)
                var current = entry.config
                current.numprocesses = config.numprocesses
                entry.machine.replaceConfig(current)
                entry.creationConfig = config
            } else {
                replaced.append((entry, WatcherEntry(config: config)))
            }
        }
        let fresh = replaced.map(\.new) + added
        var failures = WatcherFailures()
        let group = Countdown(4) { [unowned self] in
            self.refreshActivations()
            finish(fresh, failures)
        }
        reloadPlugins(new) { pluginFailures in
            failures.append(contentsOf: pluginFailures)
            group.done()
        }
        // A changed watcher starts again only if it ran: one that an operator stopped,
        // or that never started (autostart = false), stays stopped until `start`, as
        // for reload and SIGHUP. Added watchers follow their autostart. An on_demand
        // watcher waits for a connection again (see startsAgain).
        let restarting = replaced.filter { startsAgain($0.old, as: $0.new, sockets: sockets) }.map(\.new)
            + automaticallyStarted(added)
        // Sockets change once the watchers that held them are stopped (a removed watcher
        // may hold a socket that is bound again); without socket changes the restarted
        // watchers do not wait for the removed ones.
        let rebind = Countdown(sockets.isEmpty ? 1 : 2) { [unowned self] in
            failures.append(contentsOf: self.applySocketChanges(sockets, configurations: new.sockets))
            self.startAll(restarting) {
                failures.append(contentsOf: $0)
                group.done()
            }
        }
        // Removed watchers: stopped and dropped (no `remove` event, as in Circus).
        watchers.removeAll { entry in removed.contains { $0 === entry } }
        for entry in removed { entry.attached = false }
        stopAll(removed) { _ in
            group.done()
            if !sockets.isEmpty { rebind.done() }
        }
        runConcurrently(.manage, on: resized) {
            failures.append(contentsOf: $0)
            group.done()
        }
        // Changed watchers keep their place in the arbiter order.
        for (old, fresh) in replaced {
            if let index = watchers.firstIndex(where: { $0 === old }) { watchers[index] = fresh }
            old.attached = false
        }
        watchers.append(contentsOf: added)
        stopAll(replaced.map(\.old)) { _ in rebind.done() }
        logger.info("reloadconfig: \(added.count) added, \(removed.count) removed, \(replaced.count) restarted, \(resized.count) resized")
    }

    /// `reloadconfig`: the file is read and validated before the client gets its answer,
    /// so a file that no longer loads is an error (its file:line message as the reason)
    /// with or without `waiting`, and nothing changes. A file that loads is applied as a
    /// job queued when the command arrived, so it keeps its place among other commands;
    /// with `waiting` the answer comes once it is applied.
    func reloadConfiguration(_ respond: Responder) {
        // What Circus answers once quit began.
        if quitting { return fail(respond, .alreadyRunning("arbiter_stop")) }
        let waiting = respond.request.isWaiting
        let read = Pending<Result<CircusConfiguration, ConfigError>>()
        readConfigurationFile { [unowned self] result in
            switch result {
            case .success:
                if !waiting { respond.ok() }
            case .failure(let error):
                self.logger.error("reloadconfig: \(error)")
                respond.fail(.operationFailed(error.description))
            }
            read.resolve(result)
        }
        scheduler.submit(.all) { [unowned self] done in
            read.whenResolved { result in
                guard case .success(let new) = result else { return done() }
                self.applyReloadedConfiguration(new) { _, failures in
                    if let error = failures.error {
                        self.logger.warning("reloadconfig: \(error.reason)")
                        if waiting { respond.fail(error) }
                    } else if waiting {
                        respond.ok()
                    }
                    done()
                }
            }
        }
    }

    /// SIGHUP: read the configuration again and apply its changes (as reloadconfig),
    /// then gracefully reload every running watcher the diff did not already restart, and
    /// reopen the log file. A stopped watcher stays stopped (Circus starts it). A
    /// configuration that no longer loads is logged and the watchers are reloaded with the
    /// one in force.
    func reloadOnHangup(done: @escaping () -> Void) {
        logSink.reopen()
        readConfigurationFile { [unowned self] result in
            // Each failure is logged by its watcher; nobody waits for an answer.
            let reloadOthers = { (fresh: [WatcherEntry], _: WatcherFailures) in
                let others = self.watchers.filter { entry in !fresh.contains { $0 === entry } }
                self.runSequentially(.reload(graceful: true, sequential: false, runningOnly: true),
                                     on: self.startOrder(others)) { _ in done() }
            }
            switch result {
            case .success(let new):
                self.applyReloadedConfiguration(new, reloadOthers)
            case .failure(let error):
                self.logger.error("SIGHUP: \(error); reloading the watchers with the configuration in force")
                reloadOthers([], WatcherFailures())
            }
        }
    }

    /// A configuration with what reloadconfig must not compare (where it was written).
    static func comparable(_ config: WatcherConfig) -> WatcherConfig {
        var copy = config
        copy.location = nil
        copy.optionLocations = [:]
        return copy
    }

    /// `restart` without a name: stop everything, read the configuration file again and
    /// start a fresh set of watchers in the same process (same pid, same pidfile).
    func restartArbiter(_ finish: @escaping (Result<JSONObject, CommandError>) -> Void) {
        stopAll(watchers) { [unowned self] _ in
            self.readConfigurationFile { result in
                let start = { (failures: WatcherFailures) in
                    self.startAll(self.automaticallyStarted(self.watchers)) {
                        var all = failures
                        all.append(contentsOf: $0)
                        self.refreshActivations()
                        finish(all.outcome())
                    }
                }
                switch result {
                case .success(let new):
                    self.resolveAddresses(of: self.socketChanges(to: new.sockets)) { sockets in
                        self.applySettings(new.settings)
                        self.configuration.watchers = new.watchers
                        self.configuration.globalEnv = new.globalEnv
                        self.configuration.sockets = new.sockets
                        self.configuration.plugins = new.plugins
                        // The plugins first, as at start-up.
                        self.reloadPlugins(new) { pluginFailures in
                            for entry in self.watchers { entry.attached = false }
                            self.watchers = new.watchers.map(WatcherEntry.init(config:))
                            var failures = self.applySocketChanges(sockets, configurations: new.sockets)
                            failures.append(contentsOf: pluginFailures)
                            start(failures)
                        }
                    }
                case .failure(let error):
                    // Keep running the previous configuration rather than nothing.
                    self.logger.error("restart: \(error); restarting with the previous configuration")
                    start(WatcherFailures())
                }
            }
        }
    }
}

/// A value that arrives later (a configuration being read), awaited by one consumer.
final class Pending<Value> {
    private var value: Value?
    private var waiter: ((Value) -> Void)?

    /// Hands the value to the consumer, now if it waits, else when it asks.
    func resolve(_ value: Value) {
        if let waiter {
            self.waiter = nil
            waiter(value)
        } else {
            self.value = value
        }
    }

    /// Calls `body` with the value, at once if it arrived, else when it does.
    func whenResolved(_ body: @escaping (Value) -> Void) {
        if let value {
            self.value = nil
            body(value)
        } else {
            waiter = body
        }
    }
}

/// Calls `action` once `done()` was called `count` times.
final class Countdown {
    private var remaining: Int
    private let action: () -> Void

    init(_ count: Int, _ action: @escaping () -> Void) {
        remaining = count
        self.action = action
    }

    func done() {
        remaining -= 1
        if remaining == 0 { action() }
    }
}
