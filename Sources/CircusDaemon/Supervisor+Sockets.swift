// Circus sockets in the daemon: bound before any watcher starts, handed to the processes
// of `use_sockets` watchers at the same descriptor number, listed by `listsockets`,
// rebound by reloadconfig, and watched for `on_demand` watchers while they are stopped.

import CircusConfig
import CircusCore
import CircusMessageBus
import CircusProtocol
import CircusSystem
import Glibc
import Logging
import OrderedCollections

/// The daemon's sockets, and the sockets watched for stopped `on_demand` watchers.
final class SocketTable {
    /// By name, bound in name order (so descriptor numbers follow names, as in Circus).
    var sockets: OrderedDictionary<String, ListeningSocket> = [:]
    /// Sockets reloadconfig could not bind again, with why (their users cannot start).
    var unbound: [String: String] = [:]
    /// The registration of each socket watched for on_demand watchers, and who waits on it.
    var watches: [String: EventLoop.Registration] = [:]
    var waiters: [String: [WatcherEntry]] = [:]

    /// Closes every socket (Unix socket files are removed).
    func closeAll() {
        for socket in sockets.values { socket.close() }
        sockets = [:]
    }
}

/// An `on_demand` watcher's wait for a connection.
struct OnDemandActivation {
    /// The sockets it waits on (empty when it does not wait).
    var sockets: [String] = []
    /// A start is queued behind other jobs: it does not wait any more.
    var starting = false
    /// When the last activation started it (monotonic): an activation whose processes all
    /// ended within `WatcherMachine.minimumUptime`, one of them with a failure, counts as a
    /// quick end (a one-shot server that exits 0 after each connection does not).
    var startedAt: Double?
    /// Processes of the current activation that exited non-zero (not stopped by circusd).
    var failedExits = 0
    var quickEnds = 0
    /// The wait is delayed after quick ends (a program that exits at once, with a
    /// connection waiting, would otherwise be started again in a hot loop).
    var delay: EventLoop.TimerID?
}

/// The descriptors one spawn gets.
struct SpawnSockets {
    /// `$(circus.sockets.NAME)`: the descriptor number by socket name.
    var numbers: OrderedDictionary<String, String> = [:]
    /// Kept open at the same number in the child (`use_sockets`).
    var keep: [Int32] = []
    /// Dup'ed onto the child's fd 0 (`stdin_socket`).
    var stdin: Int32?
    /// `so_reuseport` sockets bound for this spawn alone: closed in circusd once it is done.
    var ownSockets: [ListeningSocket] = []

    func close() {
        for socket in ownSockets { socket.close() }
    }
}

/// What reloadconfig changes in the sockets.
struct SocketChanges {
    /// Sockets closed: removed from the configuration, or changed (then bound again).
    var closed: [String] = []
    /// Sockets bound: changed or added, with their resolved addresses (filled off the loop).
    var bound: [SocketConfig] = []
    var addresses: [String: Result<ResolvedAddress?, SocketError>] = [:]
    /// Sockets bound again because the last attempt failed.
    var retried: [String] = []

    var isEmpty: Bool { closed.isEmpty && bound.isEmpty }
}

extension SocketConfig {
    /// What CircusSystem needs to make this socket.
    var spec: SocketSpec {
        let family: SocketSpec.Family
        switch self.family {
        case .inet: family = .inet
        case .inet6: family = .inet6
        case .unix: family = .unix
        }
        let kind: __socket_type
        switch type {
        case .stream: kind = SOCK_STREAM
        case .datagram: kind = SOCK_DGRAM
        case .raw: kind = SOCK_RAW
        case .reliableDatagram: kind = SOCK_RDM
        case .sequencedPacket: kind = SOCK_SEQPACKET
        }
        return SocketSpec(
            name: name, family: family, type: Int32(kind.rawValue), proto: protocolNumber, host: host, port: port,
            path: path, backlog: type.listens ? Int32(clamping: backlog) : nil, umask: umask, replace: replace,
            interface: interface, reusePort: soReusePort, blocking: blocking)
    }
}

extension Supervisor {
    // MARK: - Binding

    /// Binds every configured socket (a `so_reuseport` one is only created: each process
    /// that names it binds a socket of its own), before any watcher starts. Host names are
    /// resolved here, before the loop runs.
    ///
    /// - Throws: `DaemonError` with the socket, its address and the reason; the sockets
    ///   already bound are closed.
    func bindSockets() throws(DaemonError) {
        for config in configuration.sockets {
            do {
                let socket = try makeSocket(config, address: try ResolvedAddress.resolve(config.spec))
                circusSockets.sockets[config.name] = socket
            } catch {
                circusSockets.closeAll()
                throw DaemonError("\(error)")
            }
        }
        if !circusSockets.sockets.isEmpty { logger.info("sockets started") }
    }

    /// Creates a socket and binds it unless it is `so_reuseport`.
    private func makeSocket(_ config: SocketConfig, address: ResolvedAddress?) throws(SocketError) -> ListeningSocket {
        let socket = try ListeningSocket(spec: config.spec, address: address)
        if config.soReusePort {
            logger.debug("Socket \(socket.location) - fd: \(socket.fd) (so_reuseport: bound by each process)")
            return socket
        }
        do {
            try socket.bindAndListen()
        } catch {
            socket.close()
            throw error
        }
        logger.debug("Socket bound at \(socket.location) - fd: \(socket.fd)")
        return socket
    }

    // MARK: - listsockets

    /// `listsockets`: every socket sorted by descriptor, `host` and `port` (as bound) or
    /// `path`, as Circus answers.
    func listSockets(_ respond: Responder) {
        let sockets = circusSockets.sockets.values.sorted { $0.fd < $1.fd }.map { socket -> JSON in
            var item: JSONObject = ["fd": .int(Int64(socket.fd)), "name": .string(socket.spec.name)]
            item["backlog"] = .int(Int64(configuration.sockets.first { $0.name == socket.spec.name }?.backlog ?? 2048))
            if let path = socket.spec.path {
                item["path"] = .string(path)
            } else {
                item["host"] = .string(socket.host ?? socket.spec.host)
                item["port"] = .int(Int64(socket.port))
            }
            return .object(item)
        }
        respond.ok(["sockets": .array(sockets)])
    }

    // MARK: - Spawning

    /// The descriptors a process of `config` gets: with `use_sockets` every socket stays
    /// open at its number; `stdin_socket` becomes its stdin; a `so_reuseport` socket its
    /// command line or `stdin_socket` names is bound afresh for this process.
    ///
    /// - Throws: `SpawnFailure` when a socket it names is not bound (reloadconfig could
    ///   not bind it again, or `add` named an unknown one) or its own socket cannot be bound.
    func spawnSockets(for config: WatcherConfig) throws(SpawnFailure) -> SpawnSockets {
        var result = SpawnSockets()
        let table = circusSockets.sockets
        let stdin = config.stdinSocket?.lowercased()
        // Only a command line with templates can name a socket (most have none: this runs
        // for every spawn).
        let named = Self.hasTemplates(config) ? config.namedSockets : []
        if !named.isEmpty {
            for (name, socket) in table { result.numbers[name] = String(socket.fd) }
        }
        var own: [String: ListeningSocket] = [:]
        for name in named + (stdin.map { [$0] } ?? []) where own[name] == nil {
            guard let socket = table[name] else {
                result.close()
                throw SpawnFailure(message: missingSocket(name))
            }
            guard socket.spec.reusePort else { continue }
            do {
                let sibling = try socket.boundSibling()
                own[name] = sibling
                result.ownSockets.append(sibling)
                result.numbers[name] = String(sibling.fd)
            } catch {
                result.close()
                throw SpawnFailure(message: error.message)
            }
        }
        if config.useSockets {
            result.keep = table.values.map(\.fd) + result.ownSockets.map(\.fd)
        }
        if let stdin { result.stdin = (own[stdin] ?? table[stdin])?.fd }
        return result
    }

    private func missingSocket(_ name: String) -> String {
        if let reason = circusSockets.unbound[name] { return "socket '\(name)' is not bound: \(reason)" }
        return "socket '\(name)' is not configured"
    }

    // MARK: - on_demand

    /// The watchers circusd starts by itself (at start, added by reloadconfig) and that a
    /// `start` of all watchers or of a pattern starts: those with `autostart`, except
    /// `on_demand` ones, which wait for a connection.
    func automaticallyStarted(_ entries: [WatcherEntry]) -> [WatcherEntry] {
        entries.filter { $0.config.autostart && !$0.config.onDemand }
    }

    /// Makes every on_demand watcher's wait match its state (after start-up and reloadconfig).
    func refreshActivations() {
        for entry in watchers where entry.config.onDemand { updateActivation(of: entry) }
        // Watchers rm or reloadconfig took out wait no more.
        for entries in circusSockets.waiters.values {
            for entry in entries where !entry.attached { stopWaiting(entry) }
        }
    }

    /// An on_demand watcher waits for a connection on its sockets while it is stopped and
    /// idle (not while circusd quits); this starts or ends that wait.
    func updateActivation(of entry: WatcherEntry) {
        if !waits(entry) {
            stopWaiting(entry)
            return
        }
        guard entry.activation.sockets.isEmpty, entry.activation.delay == nil else { return }
        if let started = entry.activation.startedAt {
            // The processes of the last activation are all gone: a quick end delays the wait.
            let quick = EventLoop.monotonicNow() - started < WatcherMachine.minimumUptime
                && entry.activation.failedExits > 0
            entry.activation.quickEnds = quick ? entry.activation.quickEnds + 1 : 0
            entry.activation.startedAt = nil
            entry.activation.failedExits = 0
        }
        let delay = entry.config.checkFlapping ? WatcherMachine.crashBackoff(after: entry.activation.quickEnds) : 0
        if delay > 0 {
            let quickEnds = entry.activation.quickEnds
            logger.warning("""
                \(entry.name): its processes failed within \(WatcherMachine.minimumUptime)s of a connection \
                \(quickEnds) times in a row; waiting for a connection again in \(delay)s
                """)
            entry.activation.delay = loop.schedule(after: delay) { [unowned self] in
                entry.activation.delay = nil
                if self.waits(entry) { self.wait(entry) }
            }
            return
        }
        wait(entry)
    }

    /// Whether the watcher should wait for a connection now.
    private func waits(_ entry: WatcherEntry) -> Bool {
        entry.attached && !quitting && entry.config.onDemand && entry.machine.status == .stopped
            && !entry.machine.isBusy && !entry.activation.starting
    }

    private func wait(_ entry: WatcherEntry) {
        let names = entry.config.socketsUsed(among: Array(circusSockets.sockets.keys))
        for name in names {
            guard let socket = circusSockets.sockets[name], socket.isBound else { continue }
            circusSockets.waiters[name, default: []].append(entry)
            entry.activation.sockets.append(name)
            if circusSockets.watches[name] == nil {
                do {
                    circusSockets.watches[name] = try loop.register(fd: socket.fd) { [unowned self] _ in
                        self.connectionWaiting(on: name)
                    }
                } catch {
                    logger.error("\(entry.name): cannot watch socket '\(name)' for on_demand: \(error)")
                }
            }
        }
        logger.debug("\(entry.name): waiting for a connection on \(entry.activation.sockets.joined(separator: ", "))")
    }

    private func stopWaiting(_ entry: WatcherEntry) {
        if let delay = entry.activation.delay {
            loop.cancel(delay)
            entry.activation.delay = nil
        }
        for name in entry.activation.sockets {
            circusSockets.waiters[name]?.removeAll { $0 === entry }
            if circusSockets.waiters[name]?.isEmpty == true {
                circusSockets.waiters[name] = nil
                if let watch = circusSockets.watches.removeValue(forKey: name) { loop.unregister(watch) }
            }
        }
        entry.activation.sockets = []
    }

    /// A connection (or a datagram) waits on `name`: every on_demand watcher waiting on it
    /// starts, each as a job of its own. Nothing else is started.
    private func connectionWaiting(on name: String) {
        for entry in circusSockets.waiters[name] ?? [] {
            stopWaiting(entry)
            entry.activation.starting = true
            logger.info("\(entry.name): a connection on socket '\(name)' starts it (on_demand)")
            scheduler.submit(.watchers([entry.key])) { [unowned self] done in
                entry.activation.starting = false
                guard entry.attached, !self.quitting, entry.machine.status == .stopped else {
                    self.updateActivation(of: entry)
                    return done()
                }
                entry.activation.startedAt = EventLoop.monotonicNow()
                self.run(.start, on: entry) { _ in
                    // A failure is logged by the watcher; a stopped watcher waits again.
                    self.updateActivation(of: entry)
                    done()
                }
            }
        }
        drainDeferred()
    }

    // MARK: - reloadconfig

    /// The socket changes of a new configuration: removed sockets are closed, changed ones
    /// (any option differs) closed and bound again, added ones bound.
    func socketChanges(to new: [SocketConfig]) -> SocketChanges {
        var changes = SocketChanges()
        let old = Dictionary(uniqueKeysWithValues: configuration.sockets.map { ($0.name, $0) })
        let newNames = Set(new.map(\.name))
        for config in configuration.sockets where !newNames.contains(config.name) { changes.closed.append(config.name) }
        for config in new {
            if let previous = old[config.name] {
                let retry = circusSockets.unbound[config.name] != nil
                guard previous.comparable != config.comparable || retry else { continue }
                changes.closed.append(config.name)
                if retry { changes.retried.append(config.name) }
            }
            changes.bound.append(config)
        }
        return changes
    }

    /// Resolves the addresses of the sockets to bind on the config worker (getaddrinfo may
    /// wait for a name server), then calls `then` on the loop thread.
    func resolveAddresses(of changes: SocketChanges, then: @escaping (SocketChanges) -> Void) {
        guard !changes.bound.isEmpty else { return then(changes) }
        let specs = changes.bound.map(\.spec)
        do {
            try loop.offload(to: configWorker, {
                specs.map { spec in (spec.name, Result { () throws(SocketError) in try ResolvedAddress.resolve(spec) }) }
            }, then: { [unowned self] results in
                var resolved = changes
                for (name, result) in results { resolved.addresses[name] = result }
                then(resolved)
                self.drainDeferred()
            })
        } catch {
            var failed = changes
            for spec in specs {
                failed.addresses[spec.name] = .failure(SocketError("cannot start the thread that resolves addresses: \(error)"))
            }
            then(failed)
        }
    }

    /// Whether reloadconfig starts a watcher it replaced: if it ran, or if it could not
    /// start because a socket it uses was not bound, and that socket is bound again now.
    /// An on_demand watcher waits for a connection instead.
    func startsAgain(_ old: WatcherEntry, as new: WatcherEntry, sockets: SocketChanges) -> Bool {
        guard !new.config.onDemand else { return false }
        if old.machine.status != .stopped { return true }
        return new.config.autostart && old.machine.lastError?.contains("is not bound") == true
            && uses(old, anyOf: sockets.retried)
    }

    /// Whether a watcher's processes use one of `sockets` (it must stop before they close).
    func uses(_ entry: WatcherEntry, anyOf sockets: [String]) -> Bool {
        !sockets.isEmpty
            && entry.config.socketsUsed(among: Array(circusSockets.sockets.keys)).contains(where: sockets.contains)
    }

    /// Closes and binds what `changes` says, once the watchers using those sockets are
    /// stopped (their processes held the old sockets: the address would still be in use).
    ///
    /// - Returns: the sockets that could not be bound, with why.
    func applySocketChanges(_ changes: SocketChanges, configurations: [SocketConfig]) -> WatcherFailures {
        var failures = WatcherFailures()
        for name in changes.closed {
            circusSockets.sockets.removeValue(forKey: name)?.close()
            circusSockets.unbound[name] = nil
        }
        for config in changes.bound {
            do {
                let address = try (changes.addresses[config.name] ?? .success(nil)).get()
                circusSockets.sockets[config.name] = try makeSocket(config, address: address)
            } catch {
                logger.error("reloadconfig: \(error)")
                circusSockets.unbound[config.name] = error.message
                failures.record(OperationResult(failure: error.message), of: "sockets")
            }
        }
        // Keep the table in name order, as at start.
        let order = configurations.map(\.name)
        circusSockets.sockets.sort { (order.firstIndex(of: $0.key) ?? .max) < (order.firstIndex(of: $1.key) ?? .max) }
        if !changes.isEmpty {
            logger.info("reloadconfig: sockets \(changes.closed.count) closed, \(changes.bound.count) bound")
        }
        return failures
    }
}
