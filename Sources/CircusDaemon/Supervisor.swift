// The supervisor: the one owner of all daemon state, driven by one event loop thread.
//
// Every input (a child's exit seen on its pidfd, a timer, a control request readable on
// the ROUTER's ZMQ_FD, a signal read from a signalfd) is a callback on the loop thread.
// Watcher transitions are computed by the pure `WatcherMachine`; the effects they return
// are performed here, and their outcomes (spawned, failed, exited, fired) go back into
// the machine. Nothing blocks the loop except the spawn itself (a vfork-style clone that
// returns once the child has exec'd).

import CircusBus
public import CircusConfig
import CircusCore
public import CircusHooks
import CircusMessageBus
import CircusPluginHost
import CircusProtocol
import CircusStreams
import CircusSystem
import DequeModule
import Glibc
import OrderedCollections
public import Logging

/// Runs watchers from a configuration and serves Circus's control protocol.
public final class Supervisor {
    let loop: EventLoop
    let context: ZMQContext
    var server: ControlServer?
    var serverRegistration: EventLoop.Registration?
    /// The control socket's connection monitor (tcp endpoints identify senders with it).
    var monitorRegistration: EventLoop.Registration?
    /// Peers already logged as refused, and the grants as the user snapshot has them.
    var accessCheck = AccessCheck()
    var publisher: EventPublisher?
    /// The command registry and the event bus: the control and pub/sub sockets are
    /// adapters on it, and so are plugins.
    let bus: MessageBus
    /// Native plugins: the host, what plugins ask of the daemon, the instances the
    /// configuration asks for, the hooks they registered (see Supervisor+Plugins).
    var pluginHost: PluginHost?
    var pluginBus: DaemonPluginBus?
    var pluginPlanner: PluginPlanner?
    var pluginPlans: [PluginPlan] = []
    let pluginHooks = PluginHookRegistry()
    var pluginStateRoot: String?
    /// How replies to control requests reach the ROUTER from any thread.
    lazy var replyRoute = ReplyRoute(supervisor: self)
    let monitor: ChildMonitor
    let spawner = Spawner()
    /// Reads the configuration file again (reloadconfig, SIGHUP, restart) off the loop.
    let configWorker = SerialWorker(name: "config")
    /// Returns memory freed by bursts of requests once the daemon is quiet again.
    lazy var memoryRelease = IdleMemoryRelease(loop: loop, worker: configWorker)
    /// Users and groups for spawning, read at start-up and refreshed off the loop.
    let users: UserDirectory
    let userWorker = SerialWorker(name: "users")
    var userWatch: UserDirectoryWatch?
    let statsService: StatsService
    var signalSource: SignalSource?
    var logger: Logger
    let logSink: LogSink

    /// The configuration as loaded (reloadconfig compares with it).
    var configuration: CircusConfiguration
    /// Watchers in arbiter order: configuration watchers sorted by name, then added ones.
    var watchers: [WatcherEntry] = []
    let scheduler = JobScheduler()
    /// The `rm` jobs queued and not yet begun, by watcher key: an `add` of such a name
    /// waits for them instead of being refused (commands take effect in the order they
    /// arrived, as in Circus).
    var queuedRemovals: [String: Int] = [:]
    var completions: [OperationID: (OperationResult) -> Void] = [:]
    var nextOperation: UInt64 = 1
    /// The daemon's own environment (`copy_env` and `$VAR` expansion).
    let environment: [(key: String, value: String)]
    let currentDirectory: String
    private var performDepth = 0
    /// Signals to whole trees asked for by the effects being performed (stop_children,
    /// the SIGKILL escalation). Their descendants are read off the loop, once for the
    /// batch (a stop of a whole watcher signals many trees), and the signals are sent
    /// when the walk comes back.
    private var pendingTreeSignals: [TreeSignal] = []
    /// Sessions of workers being stopped or gone with processes left (Supervisor+Leftovers).
    var sessions: [Int32: TrackedSession] = [:]
    var sessionRecheck: EventLoop.TimerID?
    var sessionWaiters: [SessionWaiter] = []
    var leftoverSearch = LeftoverSearch()
    /// Reads /proc off the loop: the process groups of stopped workers' sessions, the
    /// trees that stop_children, the SIGKILL escalation and `signal` reach.
    let procWorker = SerialWorker(name: "proc")
    /// Holds each walk of a process tree (`CIRCUSD_TEST_PROC_GATE`): only for the tests
    /// proving that the loop serves while a tree is read.
    let treeGate = TestGate(environment: "CIRCUSD_TEST_PROC_GATE")
    /// Holds each search for the process groups a worker left (`CIRCUSD_TEST_LEFTOVER_GATE`):
    /// only for the tests proving that the loop serves while it runs.
    let leftoverGate = TestGate(environment: "CIRCUSD_TEST_LEFTOVER_GATE")
    private var deferred: Deque<() -> Void> = []
    private var drainScheduled = false
    private var draining = false
    /// Set once quit began; the loop stops when every watcher is down.
    private(set) var quitting = false
    let startTime: Double
    /// The hook functions the configuration names, resolved before anything started.
    let hookCatalog: HookCatalog
    var nextHookCall: UInt64 = 1
    /// Hook threads left with a call that outlived its deadline (kept so that nothing
    /// waits for them; dropped once they are idle again).
    var abandonedHookWorkers: [SerialWorker] = []
    /// Runs Python hooks; made by the first one called.
    var pythonHookBridge: PythonHookBridge?
    /// The output streams' writer threads (Supervisor+Streams).
    let outputs = OutputStreams()
    /// The circus sockets (`[socket:NAME]`) and the on_demand watchers waiting on them.
    let circusSockets = SocketTable()

    /// Creates a supervisor for `configuration`. Nothing is bound or spawned until `run()`.
    ///
    /// - Parameters:
    ///   - configuration: the loaded configuration.
    ///   - environment: circusd's environment (children with `copy_env` inherit it).
    ///   - currentDirectory: circusd's working directory.
    ///   - logger: where the daemon logs.
    ///   - logSink: the sink behind `logger`, reopened on SIGUSR1/SIGHUP.
    ///   - accounts: the user and group databases as read to check `configuration`; the
    ///     daemon keeps them current from there.
    ///   - hooks: the hook functions of `configuration`, already resolved.
    public init(
        configuration: CircusConfiguration,
        environment: [(key: String, value: String)],
        currentDirectory: String,
        logger: Logger,
        logSink: LogSink,
        accounts: SystemAccounts,
        hooks: HookCatalog = HookCatalog()
    ) throws(DaemonError) {
        do {
            loop = try EventLoop()
        } catch {
            throw DaemonError("cannot create the event loop: \(error)")
        }
        context = ZMQContext()
        let remote = loop.remote
        bus = MessageBus(post: { remote.post($0) })
        monitor = ChildMonitor(loop: loop)
        self.configuration = configuration
        self.environment = environment
        self.currentDirectory = currentDirectory
        self.logger = logger
        self.logSink = logSink
        self.startTime = EventLoop.wallNow()
        self.hookCatalog = hooks
        watchers = configuration.watchers.map(WatcherEntry.init(config:))
        users = Self.loadUsers(for: configuration, initial: accounts.snapshot)
        statsService = StatsService(users: users)
        registerCoreCommands()
        registerTailCommand()
    }

    // MARK: - Running

    /// Binds the endpoints, starts every autostart watcher and serves until `quit` or a
    /// terminating signal; returns once every child is gone.
    ///
    /// - Parameter serving: called once the endpoints are bound, before any watcher starts
    ///   (`circusd --daemon` then lets its original process exit 0).
    /// - Throws: `DaemonError` when an endpoint cannot be bound (nothing was spawned then).
    public func run(whenServing serving: () -> Void = {}) throws(DaemonError) {
        logger.info("Starting master on pid \(getpid())")
        _ = replyRoute  // made on the loop thread
        if let mask = configuration.settings.umask { umask(mode_t(mask)) }
        // A plugin library that is missing or refused stops the start before anything binds.
        try preparePlugins()
        try bindEndpoints()
        do {
            signalSource = try SignalSource(loop: loop) { [unowned self] signo in self.handleSignal(signo) }
        } catch {
            throw DaemonError("cannot read signals: \(error)")
        }
        do {
            try bindSockets()
        } catch {
            shutdownEndpoints()
            throw error
        }
        do {
            try startPlugins()
        } catch {
            circusSockets.closeAll()
            shutdownEndpoints()
            stopPluginsAtOnce()
            throw error
        }
        adoptOrphans()
        watchUsers()
        logger.info("Arbiter now waiting for commands")
        serving()
        scheduler.submit(.all) { [unowned self] done in
            // Each failure is logged by its watcher; nobody waits for an answer.
            self.startAll(self.automaticallyStarted(self.watchers)) { _ in done() }
        }
        refreshActivations()
        drainDeferred()
        loop.run()
        // The children are gone: what they wrote last is still in the pipes.
        finishOutputStreams()
        pythonHookBridge?.shutdown()
        // A hook thread still stuck in a call past its deadline is never joined: letting go
        // of its worker would wait for it forever.
        for worker in abandonedHookWorkers where worker.pendingCount > 0 { _ = Unmanaged.passRetained(worker) }
        shutdownEndpoints()
        circusSockets.closeAll()
        pluginHost?.shutdown()
        removePluginState()
        logger.info("Arbiter exiting")
    }

    /// Says which parts of the configuration this version reads but does not act on yet,
    /// rather than ignoring them silently.
    private func bindEndpoints() throws(DaemonError) {
        let settings = configuration.settings
        // Circus binds the PUB socket before the ROUTER.
        do {
            publisher = try EventPublisher(context: context, endpoint: settings.pubsubEndpoint)
            publishEventsOnPubSocket()
        } catch {
            throw DaemonError("pubsub_endpoint: \(error)")
        }
        let server: ControlServer
        // The control socket file is born 0600 whatever the umask (no moment in which
        // others could connect); restrictControlSocketFile then sets its final mode.
        let savedMask = umask(0o077)
        do {
            let peers = TCPPeerIdentifier(loop: loop)
            server = try ControlServer(
                context: context, endpoint: settings.endpoint, identifyTCPPeer: peers.lookUp,
                whenIdentified: { [unowned self] in self.drainControl() })
        } catch {
            umask(savedMask)
            throw DaemonError("endpoint: \(error)")
        }
        umask(savedMask)
        self.server = server
        logger.debug("endpoint: requests larger than \(ControlServer.maximumRequestBytes >> 20) MiB are refused")
        if Self.acceptsRemotePeers(settings.endpoint) {
            let user = geteuid() == 0 ? "root" : "uid \(geteuid())"
            logger.warning(
                """
                endpoint \(settings.endpoint) is not loopback: peers on other hosts cannot be identified and may send \
                any command, including add, which runs what they ask as \(user); bind it to 127.0.0.1 or use an \
                ipc:// endpoint unless that network is trusted
                """)
        }
        // Circus chowns the control socket; the pub/sub socket's file gets the same owner
        // so that the owner can also listen to events.
        if let owner = settings.endpointOwner {
            for (option, endpoint) in [("endpoint", settings.endpoint), ("pubsub_endpoint", settings.pubsubEndpoint)] {
                try giveSocketFile(of: endpoint, to: owner, option: option)
            }
        }
        try restrictControlSocketFile(settings)
        do {
            serverRegistration = try loop.register(fd: server.fileDescriptor) { [unowned self] _ in
                self.drainControl()
            }
            if let monitor = server.monitorFileDescriptor {
                monitorRegistration = try loop.register(fd: monitor) { [unowned self] _ in self.drainControl() }
            }
        } catch {
            throw DaemonError("cannot watch the control socket: \(error)")
        }
        // Messages may already be queued before the fd was registered.
        drainControl()
    }

    /// `chown(path, owner, -1)` for an `ipc://` endpoint's socket file; other transports
    /// have no file. A failure stops the start-up: the owner would be locked out.
    private func giveSocketFile(of endpoint: String, to owner: String, option: String) throws(DaemonError) {
        guard endpoint.hasPrefix("ipc://") else { return }
        let path = String(endpoint.dropFirst("ipc://".count))
        guard !path.hasPrefix("@"), path != "*" else { return }
        let user: UserDatabase.User
        do {
            user = try UserDatabase.user(owner)
        } catch {
            throw DaemonError("endpoint_owner: \(error)")
        }
        if chown(path, user.uid, gid_t(bitPattern: -1)) != 0 {
            throw DaemonError("endpoint_owner: cannot give \(option) \(path) to \(owner): \(errnoDescription(errno))")
        }
    }

    private func shutdownEndpoints() {
        if let monitorRegistration { loop.unregister(monitorRegistration) }
        monitorRegistration = nil
        if let serverRegistration { loop.unregister(serverRegistration) }
        serverRegistration = nil
        server?.close()
        server = nil
        publisher?.close()
        publisher = nil
        signalSource?.close()
        signalSource = nil
        userWatch?.close()
        userWatch = nil
    }

    /// Begins a graceful shutdown: every watcher is stopped, then the loop ends.
    func quit(then: @escaping () -> Void = {}) {
        guard !quitting else {
            then()
            return
        }
        quitting = true
        // Quit does not queue behind other jobs: what has not started never will, what
        // runs stops at its next step (see runSequentially), and the stops below end an
        // operation that is only sleeping (a slow start's warmup).
        scheduler.dropWaiting()
        stopAll(watchers) { _ in
            then()
            // What crashed workers left behind is on its way out (stop signal sent, SIGKILL
            // armed); circusd stays their parent until it is gone.
            self.whenLeftoversGone(of: nil) {
                // Plugins see the watchers' last events, then stop.
                self.stopPlugins {
                    // Let the last replies leave before the loop (and the sockets) go away.
                    self.finishQuit()
                }
            }
        }
    }

    private func finishQuit() {
        server?.setLinger(milliseconds: 1000)
        loop.stop()
    }

    // MARK: - Signals

    private func handleSignal(_ signo: Int32) {
        // Circus logs `Got signal SIG_TERM`.
        let name = "SIG_" + Signals.name(signo).dropFirst("SIG".count)
        if signo != SIGCHLD { logger.info("Got signal \(name)") }
        switch signo {
        case SIGTERM, SIGINT, SIGQUIT:
            quit()
        case SIGHUP:
            scheduler.submit(.all) { [unowned self] done in self.reloadOnHangup(done: done) }
        case SIGUSR1:
            logSink.reopen()
        case SIGCHLD:
            // Workers' exits come through their pidfds; this reaps the descendants that
            // were re-parented to circusd.
            monitor.reapOrphans()
        default:
            break
        }
        drainDeferred()
    }

    // MARK: - Watcher operations

    /// Runs `command` on `entry` and calls `completion` with its result when it is over.
    func run(_ command: WatcherCommand, on entry: WatcherEntry, completion: @escaping (OperationResult) -> Void) {
        // A watcher that rm or reloadconfig took out while this job waited must not get
        // new processes, nor any watcher once quit began: nobody would stop them.
        if !entry.attached || quitting {
            switch command {
            case .stop, .kill: break
            case .start, .restart, .reload, .manage:
                let why = quitting ? "circusd is quitting" : "\(entry.name) was removed"
                return completion(OperationResult(failure: why))
            }
        }
        let id = OperationID(nextOperation)
        nextOperation += 1
        refreshPluginHooks(of: entry)
        if command == .stop {
            // Stopped means nothing of the watcher runs, what a crashed worker left included.
            completions[id] = { [unowned self] result in
                self.whenLeftoversGone(of: entry) { completion(result) }
            }
        } else {
            completions[id] = completion
        }
        perform(entry.machine.begin(command, id: id, at: moment()), on: entry)
    }

    /// Runs `command` on each entry one after another (start-all is sequential in Circus)
    /// and calls `done` with the failures of all of them.
    func runSequentially(_ command: WatcherCommand, on entries: [WatcherEntry], pause: Double = 0,
                         failures: WatcherFailures = WatcherFailures(),
                         done: @escaping (WatcherFailures) -> Void) {
        guard !quitting, let first = entries.first else { return done(failures) }
        run(command, on: first) { [unowned self] result in
            var failures = failures
            failures.record(result, of: first.name)
            let rest = Array(entries.dropFirst())
            if pause > 0, !rest.isEmpty {
                _ = self.loop.schedule(after: pause) {
                    self.runSequentially(command, on: rest, pause: pause, failures: failures, done: done)
                    self.drainDeferred()
                }
            } else {
                self.runSequentially(command, on: rest, pause: pause, failures: failures, done: done)
            }
        }
    }

    /// Runs `command` on every entry at once and calls `done` with their failures when
    /// all finished.
    func runConcurrently(_ command: WatcherCommand, on entries: [WatcherEntry],
                         done: @escaping (WatcherFailures) -> Void) {
        guard !entries.isEmpty else { return done(WatcherFailures()) }
        var remaining = entries.count
        var failures = WatcherFailures()
        for entry in entries {
            run(command, on: entry) { result in
                failures.record(result, of: entry.name)
                remaining -= 1
                if remaining == 0 { done(failures) }
            }
        }
    }

    /// Watchers sorted for starting: priority descending, ties in arbiter order.
    func startOrder(_ entries: [WatcherEntry]) -> [WatcherEntry] {
        entries.enumerated().sorted { a, b in
            a.element.config.priority != b.element.config.priority
                ? a.element.config.priority > b.element.config.priority : a.offset < b.offset
        }.map(\.element)
    }

    func startAll(_ entries: [WatcherEntry], done: @escaping (WatcherFailures) -> Void) {
        runSequentially(.start, on: startOrder(entries), pause: Double(configuration.settings.warmupDelay), done: done)
    }

    func stopAll(_ entries: [WatcherEntry], done: @escaping (WatcherFailures) -> Void) {
        // Stop signals go out lowest priority first; completion is concurrent.
        runConcurrently(.stop, on: startOrder(entries).reversed(), done: done)
    }

    /// Reloads every running watcher in start order; stopped ones stay stopped.
    func reloadAll(graceful: Bool, sequential: Bool, done: @escaping (WatcherFailures) -> Void) {
        runSequentially(.reload(graceful: graceful, sequential: sequential, runningOnly: true),
                        on: startOrder(watchers), done: done)
    }

    // MARK: - Effects

    func moment() -> Moment {
        Moment(monotonic: EventLoop.monotonicNow(), wall: EventLoop.wallNow())
    }

    /// Performs a machine's effects, feeding spawn results straight back into it.
    func perform(_ effects: [Effect], on entry: WatcherEntry) {
        if entry.waitingForHook { return hold(effects, of: entry) }
        performDepth += 1
        var queue = Deque(effects)
        while let effect = queue.popFirst() {
            if entry.waitingForHook {
                // A hook began: the rest waits for its answer (Circus's event order).
                hold([effect] + queue, of: entry)
                break
            }
            switch effect {
            case .spawn(let wid):
                let now = moment()
                switch spawnProcess(for: entry, wid: wid) {
                case .success(let pid):
                    queue.append(contentsOf: entry.machine.processSpawned(wid: wid, pid: pid, at: now))
                case .failure(let message):
                    queue.append(contentsOf: entry.machine.spawnFailed(wid: wid, message: message.message, at: now))
                }
            case .signal(let pid, let signo, let scope, let publishKill):
                if publishKill, signalIsHooked(pid, entry: entry) {
                    signalWithHooks(signo, to: pid, scope: scope, entry: entry)
                } else {
                    signal(signo, to: pid, scope: scope, publishKill: publishKill, entry: entry)
                }
            case .publish(let event):
                publish(event, for: entry)
            case .armTimer(let key, let deadline):
                if let old = entry.timers[key] { loop.cancel(old) }
                // The closure keeps the entry alive: a watcher removed by rm or reloadconfig
                // still has timers and children to see through.
                entry.timers[key] = loop.schedule(at: deadline) { [unowned self] in
                    entry.timers[key] = nil
                    self.perform(entry.machine.timerFired(key, at: self.moment()), on: entry)
                    self.drainDeferred()
                }
            case .cancelTimer(let key):
                if let timer = entry.timers.removeValue(forKey: key) { loop.cancel(timer) }
            case .log(let level, let message):
                log(level, message)
            case .finished(let id, let result):
                if let completion = completions.removeValue(forKey: id) {
                    deferred.append { completion(result) }
                }
            case .callHook(let call):
                callHooks(call, on: entry)
            case .spawnRun(let plan):
                startSpawnRun(plan, entry: entry)
            }
        }
        performDepth -= 1
        if entry.machine.config.onDemand { updateActivation(of: entry) }
        if performDepth == 0 {
            sendTreeSignals()
            drainDeferred()
        }
    }

    /// Sends a signal asked for by an effect; a tree's descendants are read off the loop
    /// first (see `sendTreeSignals`).
    func signal(_ signo: Int32, to pid: Int32, scope: SignalScope, publishKill: Bool, entry: WatcherEntry) {
        if scope == .tree {
            pendingTreeSignals.append(TreeSignal(pid: pid, signo: signo, publishKill: publishKill, entry: entry))
            if performDepth == 0 { sendTreeSignals() }
        } else {
            sendSignal(signo, to: pid, scope: scope, descendants: [], publishKill: publishKill, entry: entry)
        }
    }

    /// Queues `work` to run once the effects being performed are done.
    func deferLoopWork(_ work: @escaping () -> Void) {
        deferred.append(work)
    }

    /// Runs completions queued while effects were performed; they may start new operations.
    func drainDeferred() {
        guard performDepth == 0 else { return }
        while let work = deferred.popFirst() { work() }
    }

    private func log(_ level: LogLevel, _ message: String) {
        switch level {
        case .debug: logger.debug("\(message)")
        case .info: logger.info("\(message)")
        case .warning: logger.warning("\(message)")
        case .error: logger.error("\(message)")
        }
    }

    /// Reads the descendants of the pending tree signals' processes on `procWorker`, then
    /// sends the signals. The descendants are read before anything is signalled: a parent
    /// that dies first would otherwise take the list with it (Circus's stop_children
    /// defect).
    private func sendTreeSignals() {
        guard !pendingTreeSignals.isEmpty else { return }
        let batch = pendingTreeSignals
        pendingTreeSignals = []
        readTrees(of: batch.map(\.pid), descendants: true) { [unowned self] trees in
            for signal in batch {
                self.sendSignal(signal.signo, to: signal.pid, scope: .tree, descendants: trees[signal.pid] ?? [],
                                publishKill: signal.publishKill, entry: signal.entry)
            }
        }
    }

    /// Reads the children (or every descendant) of each of `pids` from /proc on
    /// `procWorker`, then calls `then` with them on the loop thread. Walks run in the
    /// order they were asked for.
    func readTrees(of pids: [Int32], descendants: Bool, then: @escaping ([Int32: [Int32]]) -> Void) {
        let read: @Sendable () -> [Int32: [Int32]] = {
            descendants ? ProcessTree.descendants(ofEach: pids) : ProcessTree.children(ofEach: pids)
        }
        let gate = treeGate
        do {
            try loop.offload(to: procWorker, {
                gate?.wait()
                return read()
            }) { [unowned self] trees in
                then(trees)
                self.drainDeferred()
            }
        } catch {
            // A signal (a stop) must not be lost: read the tree here rather than not at all.
            logger.warning("cannot read the process tree off the loop (\(error)); reading it on the loop")
            then(read())
        }
    }

    /// Sends `signo` to `pid` (its group too unless `scope` is `.process`) and to
    /// `descendants`, read beforehand for `.tree`.
    private func sendSignal(_ signo: Int32, to pid: Int32, scope: SignalScope, descendants: [Int32],
                            publishKill: Bool, entry: WatcherEntry) {
        let targets = [pid] + descendants
        // The worker leads its process group: one kill(-pgid) reaches it and every
        // descendant still in the group, even those whose parent died. Only while the pid is
        // ours (watched, or a group we wait for), so the number cannot have been recycled.
        var groupSignalled = false
        if scope != .process, monitor.isWatching(pid) || sessions[pid] != nil {
            do {
                try ProcessGroup.signal(pid, signo)
                groupSignalled = true
            } catch {
                logger.debug("signal \(signo) to the group of \(pid): \(error)")
            }
        }
        let now = EventLoop.wallNow()
        for target in targets {
            // Signal each process once: a second SIGTERM can mean "hurry" to a program.
            let alreadySignalled = groupSignalled && (target == pid || getpgid(target) == pid)
            do {
                if alreadySignalled {
                    // reached by the group signal
                } else if monitor.isWatching(target) {
                    try monitor.signal(target, signo)
                } else if target == pid {
                    // The worker ended while its tree was read: the number may be another
                    // process's now.
                } else {
                    try ChildMonitor.signal(pid: target, signo)
                }
            } catch {
                logger.debug("signal \(signo) to \(target): \(error)")
            }
            if publishKill { publish(.kill(pid: Int64(target), time: now), for: entry.name) }
        }
        if scope != .process, monitor.isWatching(pid) || sessions[pid] != nil {
            stopSignalSent(signo, to: pid, entry: entry)
        }
    }

    func publish(_ event: MachineEvent, for entry: WatcherEntry) {
        let message: WatcherEvent
        switch event {
        case .spawn(let pid, let time): message = .spawn(pid: Int64(pid), time: time)
        case .reap(let pid, let time, let code): message = .reap(pid: Int64(pid), time: time, exitCode: Int64(code))
        case .start(let time): message = .start(time: time)
        case .stop(let time):
            message = .stop(time: time)
            outputWatcherStopped(entry)
        case .reload(let time): message = .reload(time: time)
        }
        publish(message, for: entry.name)
    }

    func publish(_ event: WatcherEvent, for watcherName: String) {
        bus.events.publish(event.message(watcher: watcherName))
    }

    // MARK: - Children

    /// Spawns one process and watches its pidfd. Returns the pid or the error text.
    private func spawnProcess(for entry: WatcherEntry, wid: Int) -> Result<Int32, SpawnFailure> {
        let prepared: PreparedSpawn
        switch prepareSpawn(for: entry, wid: wid) {
        case .success(let p): prepared = p
        case .failure(let failure): return .failure(failure)
        }
        let child: SpawnedProcess
        do {
            child = try spawner.spawn(prepared.request)
        } catch {
            prepared.discard(self)
            return .failure(SpawnFailure(message: error.description))
        }
        return adopt(child, prepared: prepared, entry: entry)
    }

    /// Everything a spawn of worker `wid` needs, made on the loop thread: the request, the
    /// sockets it passes on, the pipes of its output streams.
    func prepareSpawn(for entry: WatcherEntry, wid: Int) -> Result<PreparedSpawn, SpawnFailure> {
        do throws(SpawnFailure) {
            let sockets = try spawnSockets(for: entry.config)
            do throws(SpawnFailure) {
                var request = try makeSpawnRequest(for: entry.config, wid: wid, sockets: sockets)
                let output = try openOutputPipes(for: entry, request: &request)
                return .success(PreparedSpawn(request: request, sockets: sockets, output: output))
            } catch {
                sockets.close()
                throw error
            }
        } catch {
            return .failure(error)
        }
    }

    /// Takes a freshly spawned child in: its output streams start, its pidfd is watched.
    func adopt(_ child: SpawnedProcess, prepared: PreparedSpawn, entry: WatcherEntry) -> Result<Int32, SpawnFailure> {
        // The so_reuseport sockets bound for this process alone are the child's now.
        prepared.sockets.close()
        handOverOutputPipes(prepared.output, pid: child.pid)
        do {
            try monitor.watch(child) { [unowned self] pid, status in
                self.childExited(pid: pid, status: status, entry: entry)
            }
        } catch {
            // Cannot watch it: do not leave it running unsupervised.
            try? child.signal(SIGKILL)
            _ = try? child.waitForExit()
            child.close()
            return .failure(SpawnFailure(message: "cannot watch pid \(child.pid): \(error)"))
        }
        return .success(child.pid)
    }

    private func childExited(pid: Int32, status: ProcessExitStatus, entry: WatcherEntry) {
        let code = status.exitCode ?? 0
        if entry.machine.processes[pid]?.stopping == true {
            // A stop is over when the worker's whole session is gone.
            stoppedWorkerReaped(pid, exitCode: code, entry: entry)
        } else {
            // A crash is respawned at once; what it left behind is ended after, at the end of
            // the loop's turn.
            if entry.machine.config.onDemand, code != 0 { entry.activation.failedExits += 1 }
            perform(entry.machine.processExited(pid: pid, exitCode: code, at: moment()), on: entry)
            // The worker is reaped when this returns (ChildMonitor reaps after the respawn):
            // only then can its process group be seen empty.
            loop.atEndOfTurn { [unowned self] in
                self.endLeftovers(of: pid, exitCode: code, entry: entry)
                self.drainDeferred()
            }
        }
        drainDeferred()
    }

    // MARK: - Control channel

    /// Reads every pending control request. Called when the ROUTER's fd is readable and
    /// after replies sent outside a read, because ZMQ_FD only signals edges.
    func drainControl() {
        guard let server else { return }
        draining = true
        do {
            _ = try server.drain { message in self.handle(message) }
        } catch {
            logger.error("control socket: \(error)")
        }
        draining = false
        drainDeferred()
    }

    /// Sends a reply to a client and makes sure the ROUTER is drained again afterwards.
    func reply(_ bytes: [UInt8], to identity: [UInt8]) {
        guard let server else { return }
        do {
            try server.reply(to: identity, bytes)
        } catch {
            logger.debug("reply dropped: \(error)")
        }
        // A reply sent from inside drain is followed by drain's own ZMQ_EVENTS check; one
        // sent later (a `waiting` command finishing) needs a drain of its own.
        if !draining, !drainScheduled {
            drainScheduled = true
            _ = loop.schedule(after: 0) { [unowned self] in
                self.drainScheduled = false
                self.drainControl()
            }
        }
    }

    // MARK: - Lookup

    func watcher(named name: String) -> WatcherEntry? {
        let key = name.lowercased()
        return watchers.first { $0.key == key }
    }

    /// The watcher a request found, as it is when its job runs: the same one, or the one
    /// an `rm` and `add` (or a reloadconfig) queued in between put in its place under the
    /// same name; nil when there is none any more.
    func current(_ found: WatcherEntry) -> WatcherEntry? {
        found.attached ? found : watcher(named: found.key)
    }
}

/// A signal to a worker's whole tree, waiting for the tree to be read.
struct TreeSignal {
    let pid: Int32
    let signo: Int32
    let publishKill: Bool
    let entry: WatcherEntry
}

/// A spawn that did not happen, with the text shown in logs and `status`.
struct SpawnFailure: Error {
    let message: String
}

/// What one spawn needs, made ready on the loop thread (see `Supervisor.prepareSpawn`).
struct PreparedSpawn {
    var request: SpawnRequest
    let sockets: SpawnSockets
    let output: (StreamWriter, OutputPipes)?

    /// Gives back what was made for a spawn that did not happen.
    func discard(_ supervisor: Supervisor) {
        sockets.close()
        supervisor.handOverOutputPipes(output, pid: nil)
    }
}

