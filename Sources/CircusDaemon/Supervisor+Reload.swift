// reloadconfig (spec 6.13) and the in-process arbiter restart (`restart` without a name).

import CircusConfig
import CircusCore
import CircusProtocol
import Glibc
import Logging
import OrderedCollections

extension Supervisor {
    /// Loads the configuration file the daemon was started with, logging its warnings.
    func reloadConfigurationFile() throws(ConfigError) -> CircusConfiguration {
        var env: [String: String] = [:]
        for (key, value) in environment { env[key] = value }
        let result = try ConfigLoader.load(path: configuration.path, environment: env,
                                           currentDirectory: currentDirectory)
        for warning in result.warnings { logger.warning("\(warning)") }
        return result.configuration
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
        configuration.settings = kept
    }

    /// The reloadconfig diff: new watchers are created (and started when autostart),
    /// removed ones stopped and dropped, a change of numprocesses alone resizes in place,
    /// any other change restarts that watcher with its new configuration. Unchanged
    /// watchers are not touched. (Circus restarts every watcher when `[circus]` changed
    /// and then ignores the new values; we apply what can be applied.)
    ///
    /// - Parameter finish: called when every change is applied, with the reply payload or
    ///   errno 6 when the file could not be loaded (nothing changed then), and the
    ///   watchers that were created or restarted by the diff.
    func applyReloadedConfiguration(
        _ finish: @escaping (Result<JSONObject, CommandError>, _ fresh: [WatcherEntry]) -> Void
    ) {
        let new: CircusConfiguration
        do {
            new = try reloadConfigurationFile()
        } catch {
            logger.error("reloadconfig: \(error)")
            return finish(.failure(.serverError), [])
        }
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
            if before == after { continue }
            var beforeResized = before
            beforeResized.numprocesses = after.numprocesses
            if beforeResized == after {
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
        let group = Countdown(3) { finish(.success([:]), fresh) }
        // Removed watchers: stopped and dropped (no `remove` event, as in Circus).
        watchers.removeAll { entry in removed.contains { $0 === entry } }
        for entry in removed { entry.attached = false }
        stopAll(removed) { group.done() }
        runConcurrently(.manage, on: resized) { group.done() }
        // Changed watchers keep their place in the arbiter order.
        for (old, fresh) in replaced {
            if let index = watchers.firstIndex(where: { $0 === old }) { watchers[index] = fresh }
            old.attached = false
        }
        watchers.append(contentsOf: added)
        stopAll(replaced.map(\.old)) { [unowned self] in
            self.startAll(fresh.filter { $0.config.autostart }) { group.done() }
        }
        logger.info("reloadconfig: \(added.count) added, \(removed.count) removed, \(replaced.count) restarted, \(resized.count) resized")
    }

    /// SIGHUP: read the configuration again and apply its changes (as reloadconfig),
    /// then gracefully reload every watcher the diff did not already restart, and reopen
    /// the log file. A configuration that no longer loads is logged and the watchers are
    /// reloaded with the one in force.
    func reloadOnHangup(done: @escaping () -> Void) {
        logSink.reopen()
        applyReloadedConfiguration { [unowned self] _, fresh in
            let others = self.watchers.filter { entry in !fresh.contains { $0 === entry } }
            self.runSequentially(.reload(graceful: true, sequential: false), on: self.startOrder(others), done: done)
        }
    }

    /// A configuration with what reloadconfig must not compare (where it was written).
    static func comparable(_ config: WatcherConfig) -> WatcherConfig {
        var copy = config
        copy.location = nil
        return copy
    }

    /// `restart` without a name: stop everything, read the configuration file again and
    /// start a fresh set of watchers in the same process (same pid, same pidfile).
    func restartArbiter(_ finish: @escaping (Result<JSONObject, CommandError>) -> Void) {
        stopAll(watchers) { [unowned self] in
            do {
                let new = try self.reloadConfigurationFile()
                self.applySettings(new.settings)
                self.configuration.watchers = new.watchers
                self.configuration.globalEnv = new.globalEnv
                self.configuration.sockets = new.sockets
                self.configuration.plugins = new.plugins
                for entry in self.watchers { entry.attached = false }
                self.watchers = new.watchers.map(WatcherEntry.init(config:))
            } catch {
                // Keep running the previous configuration rather than nothing.
                self.logger.error("restart: \(error); restarting with the previous configuration")
            }
            self.startAll(self.watchers.filter { $0.config.autostart }) { finish(.success([:])) }
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
