// The 24 commands of Circus's control protocol, with Circus's reply shapes and errors.
//
// Read-only commands answer at once from the current state. Commands that change
// watchers run as jobs: without `waiting` they answer `ok` at once, with it they answer
// when the job is over. Jobs queue behind the jobs they overlap instead of failing.

import CircusBus
import CircusConfig
import CircusCore
import CircusMessageBus
import CircusProtocol
import CircusSystem
import Glibc
import Logging
import OrderedCollections

/// The answer to one request, whoever sent it (see `CommandReply`).
typealias Responder = CommandReply

extension Supervisor {
    // MARK: - Registration

    /// Registers Circus's commands, and circusd's own read-only `commands`, on the bus.
    func registerCoreCommands() {
        var core = CommandName.allCases.map { command in
            RegisteredCommand(
                name: command.rawValue, help: command.help, arguments: command.arguments, access: command.access,
                origin: .core
            ) { [unowned self] request, respond in self.dispatch(command, request, respond) }
        }
        core.append(RegisteredCommand(
            name: "commands", help: "List every command circusd serves, with its help, arguments, access and origin",
            arguments: [], access: .readOnly, origin: .core
        ) { [unowned self] _, respond in
            var all = JSONObject()
            for command in self.bus.commands.all { all[command.name] = command.json }
            respond.ok(["commands": .object(all)])
        })
        core.append(RegisteredCommand(
            name: "plugins",
            help: "List the plugin instances: plugin, version, library, ABI, state, queue depth, dropped events, failure",
            arguments: [], access: .readOnly, origin: .core
        ) { [unowned self] _, respond in self.pluginsCommand(respond) })
        for command in core {
            do {
                try bus.commands.register(command)
            } catch {
                preconditionFailure("core command registered twice: \(error)")
            }
        }
    }

    // MARK: - Dispatch

    func dispatch(_ command: CommandName, _ request: Request, _ respond: Responder) {
        let props = request.properties
        do throws(CommandError) {
            switch command {
            case .add: try add(props, respond)
            case .rm: try rm(props, respond)
            case .start, .stop, .restart: try startStopRestart(command, props, respond)
            case .reload: try reload(props, respond)
            case .reloadconfig: reloadConfiguration(respond)
            case .quit: quitCommand(respond)
            case .list: try list(props, respond)
            case .status: try status(props, respond)
            case .numwatchers: respond.ok(["numwatchers": .int(Int64(watchers.count))])
            case .numprocesses: try numprocesses(props, respond)
            case .incr, .decr: try incrDecr(command == .incr, props, respond)
            case .get: try get(props, respond)
            case .options: try options(props, respond)
            case .set: try set(props, respond)
            case .signal: try signal(props, respond)
            case .kill: try kill(props, respond)
            case .stats: try stats(props, respond)
            case .dstats: dstats(respond)
            case .listsockets: listSockets(respond)
            case .globaloptions: try globalOptions(props, respond)
            case .listen: throw .usePubSubSocket
            case .ipython:
                respond.ok(["shell": false, "msg": "IPython is not supported by circus-swift: there is no Python inside"])
            }
        } catch {
            fail(respond, error)
        }
    }

    /// Logs a refused command (a bad property at info level, anything else as a warning)
    /// and answers the error.
    func fail(_ respond: Responder, _ error: CommandError) {
        if error.code == .messageError {
            logger.info("\(respond.request.command): \(error.reason)")
        } else {
            logger.warning("\(respond.request.command): \(error.reason)")
        }
        respond.fail(error)
    }

    /// Runs an asynchronous command as a job. Without `waiting` the client gets `ok` now;
    /// with it, the payload (or the error) once `body` finishes.
    ///
    /// Once quit began the command is refused as Circus refuses it, unless it is one that
    /// Circus does not serialise (`kill`: `lockedInCircus` false).
    func runJob(_ respond: Responder, scope: JobScope, lockedInCircus: Bool = true,
                _ body: @escaping (_ finish: @escaping (Result<JSONObject, CommandError>) -> Void) -> Void)
    {
        if quitting, lockedInCircus { return fail(respond, .alreadyRunning("arbiter_stop")) }
        let waiting = respond.request.isWaiting
        if !waiting { respond.ok() }
        let command = respond.request.command
        scheduler.submit(scope) { [unowned self] done in
            body { result in
                switch result {
                case .success(let payload): if waiting { respond.ok(payload) }
                case .failure(let error):
                    self.logger.warning("\(command): \(error.reason)")
                    if waiting { respond.fail(error) }
                }
                done()
            }
        }
    }

    /// `runJob` on the watcher a request named: the job acts on the watcher of that name
    /// as it is when the job runs (see `current`), and answers `program <name> not found`
    /// when there is none any more.
    func runJob(_ respond: Responder, on found: WatcherEntry, lockedInCircus: Bool = true,
                _ body: @escaping (_ entry: WatcherEntry,
                                   _ finish: @escaping (Result<JSONObject, CommandError>) -> Void) -> Void)
    {
        let name = respond.request.properties["name"]?.stringValue ?? found.name
        runJob(respond, scope: .watchers([found.key]), lockedInCircus: lockedInCircus) { [unowned self] finish in
            guard let entry = self.current(found) else { return finish(.failure(.programNotFound(name))) }
            body(entry, finish)
        }
    }

    func requireWatcher(_ props: JSONObject) throws(CommandError) -> WatcherEntry {
        let name = try props.requireString("name")
        guard let entry = watcher(named: name) else { throw .programNotFound(name) }
        return entry
    }

    // MARK: - add / rm

    /// `add`: checked at arrival. A name in use is refused at once, as Circus does, unless
    /// an `rm` of that watcher is queued: then the `add` waits for it (Circus runs them
    /// one after the other, and both succeed) and checks the name again when it runs.
    private func add(_ props: JSONObject, _ respond: Responder) throws(CommandError) {
        let name = try props.requireString("name")
        let cmd = try props.requireString("cmd")
        let options = try props["options"].map { (v) throws(CommandError) in try OptionValidation.validate(options: v) } ?? [:]
        for key in options.keys { try OptionValidation.checkServed(key: key) }
        if let owner = configuration.settings.endpointOwner {
            try OptionValidation.checkEndpointOwner(options: options, owner: owner)
        }
        if quitting { throw .alreadyRunning("arbiter_stop") }
        if name.isEmpty { return respond.ok() }  // Circus: ok, nothing added
        let raw = respond.request.raw
        let alreadyExist = CommandError.unexpected(rawRequest: raw, CommandError.Text.alreadyExist(name))
        let existing = watcher(named: name)
        if existing != nil, queuedRemovals[name.lowercased(), default: 0] == 0 { throw alreadyExist }
        var config = WatcherConfig(name: name, cmd: cmd)
        config.workingDir = currentDirectory
        // What Circus reports for a watcher `add` created without these options.
        config.absentOptions = ["args", "env", "stdout_stream_conf", "stderr_stream_conf"]
        config.warmupDelayIsFloat = true
        if let args = props["args"], args != .null {
            try apply(option: "args", value: args, to: &config, fromAdd: true, raw: raw)
        }
        for (key, value) in options {
            try apply(option: key, value: value, to: &config, fromAdd: true, raw: raw)
        }
        checkLoadables(of: config, previous: nil) { [unowned self] problem in
            if let problem { return self.fail(respond, problem) }
            self.create(config, replacing: existing, start: props.flag("start"), respond)
        }
    }

    /// Adds the watcher `add` asked for, once its options were checked.
    private func create(_ config: WatcherConfig, replacing existing: WatcherEntry?, start: Bool, _ respond: Responder) {
        let name = config.name
        let alreadyExist = CommandError.unexpected(rawRequest: respond.request.raw, CommandError.Text.alreadyExist(name))
        // What may have happened while a hook or a Python stream class was being checked.
        if quitting { return fail(respond, .alreadyRunning("arbiter_stop")) }
        if existing == nil, watcher(named: name) != nil { return fail(respond, alreadyExist) }
        let create = { [unowned self] () -> WatcherEntry in
            let entry = WatcherEntry(config: config)
            self.watchers.append(entry)
            self.publish(.add(time: EventLoop.wallNow()), for: name)
            self.logger.info("\(name) added")
            return entry
        }
        let startNew = { [unowned self] (entry: WatcherEntry, finish: @escaping (Result<JSONObject, CommandError>) -> Void) in
            self.run(.start, on: entry) { result in
                finish(self.outcome(result) { ["started": .pids($0.started), "kept": .pids($0.kept)] })
            }
        }
        guard existing == nil else {
            return runJob(respond, scope: .watchers([name.lowercased()])) { [unowned self] finish in
                if self.watcher(named: name) != nil { return finish(.failure(alreadyExist)) }
                let entry = create()
                if start { startNew(entry, finish) } else { finish(.success([:])) }
            }
        }
        let entry = create()
        guard start else { return respond.ok() }
        runJob(respond, on: entry) { entry, finish in startNew(entry, finish) }
    }

    private func rm(_ props: JSONObject, _ respond: Responder) throws(CommandError) {
        let found = try requireWatcher(props)
        let name = try props.requireString("name")
        let nostop = props.flag("nostop")
        if quitting { throw .alreadyRunning("arbiter_stop") }
        let key = found.key
        queuedRemovals[key, default: 0] += 1
        runJob(respond, scope: .watchers([key])) { [unowned self] finish in
            self.queuedRemovals[key, default: 1] -= 1
            if self.queuedRemovals[key] == 0 { self.queuedRemovals[key] = nil }
            // The watcher of that name now (an add queued before may have replaced it).
            guard let entry = self.current(found) else { return finish(.failure(.programNotFound(name))) }
            self.publish(.remove(time: EventLoop.wallNow()), for: entry.name)
            self.watchers.removeAll { $0 === entry }
            entry.attached = false
            self.logger.info("\(entry.name) removed")
            if nostop {
                // The processes run on; their exits are still reaped, never replaced.
                self.perform(entry.machine.abandon(), on: entry)
                return finish(.success([:]))
            }
            self.run(.stop, on: entry) { _ in finish(.success([:])) }
        }
    }

    // MARK: - start / stop / restart / reload

    /// The watchers a `start`/`stop`/`restart` names, with Circus's match modes.
    private func matching(_ props: JSONObject) throws(CommandError) -> [WatcherEntry] {
        let name = try props.requireString("name")
        let match = try props.string("match") ?? "glob"
        let lowered = name.lowercased()
        let found: [WatcherEntry]
        switch match {
        case "simple":
            found = watchers.filter { $0.key == lowered }
        case "glob":
            found = watchers.filter { Fnmatch.matches(pattern: lowered, name: $0.key) }
        case "regex":
            guard let regex = try? Regex(lowered) else { throw .message("invalid regex \(name)") }
            found = watchers.filter { (try? regex.prefixMatch(in: $0.key)) != nil }
        default:
            throw .unknownMatchMethod(props["match"] ?? .null)
        }
        if found.isEmpty { throw .programNotFound(name) }
        return found
    }

    private func startStopRestart(_ command: CommandName, _ props: JSONObject, _ respond: Responder)
        throws(CommandError)
    {
        guard props["name"] != nil, props["name"] != .null else {
            switch command {
            case .start:
                runJob(respond, scope: .all) { [unowned self] finish in
                    self.startAll(self.automaticallyStarted(self.watchers)) { finish($0.outcome()) }
                }
            case .stop:
                runJob(respond, scope: .all) { [unowned self] finish in
                    let announce = self.announceStopOfStopped(self.watchers)
                    self.stopAll(self.watchers) { announce(); finish($0.outcome()) }
                }
            default:
                runJob(respond, scope: .all) { [unowned self] finish in
                    self.restartArbiter { finish($0) }
                }
            }
            return
        }
        let found = try matching(props)
        let scope = JobScope.watchers(Set(found.map(\.key)))
        if found.count == 1, let first = found.first {
            runJob(respond, on: first) { [unowned self] entry, finish in
                switch command {
                case .start:
                    self.run(.start, on: entry) { result in
                        finish(self.outcome(result) { ["info": ["started": .pids($0.started), "kept": .pids($0.kept)]] })
                    }
                case .stop:
                    let announce = self.announceStopOfStopped([entry])
                    self.run(.stop, on: entry) { _ in announce(); finish(.success(["info": .null])) }
                default:
                    self.run(.restart, on: entry) { result in finish(self.outcome(result) { ["info": .result($0)] }) }
                }
            }
            return
        }
        runJob(respond, scope: scope) { [unowned self] finish in
            // The watchers of those names as they are now (an rm and add may have replaced one).
            let found = found.compactMap { self.current($0) }
            switch command {
            case .start: self.startAll(self.automaticallyStarted(found)) { finish($0.outcome()) }
            case .stop:
                let announce = self.announceStopOfStopped(found)
                self.stopAll(found) { announce(); finish($0.outcome()) }
            default:
                self.stopAll(found) { stopped in
                    self.startAll(found) { started in
                        var failures = stopped
                        failures.append(contentsOf: started)
                        finish(failures.outcome())
                    }
                }
            }
        }
    }

    /// Circus publishes nothing when `stop` finds a watcher already stopped; we publish its
    /// `stop` event, so that plugins see an operator's decision (the flapping plugin drops
    /// the retry it had planned for a watcher it stopped itself). Returns what to call once
    /// the stop is done.
    private func announceStopOfStopped(_ entries: [WatcherEntry]) -> () -> Void {
        let stopped = entries.filter { $0.machine.status == .stopped }.map(\.name)
        return { [unowned self] in
            for name in stopped { self.publish(.stop(time: EventLoop.wallNow()), for: name) }
        }
    }

    private func reload(_ props: JSONObject, _ respond: Responder) throws(CommandError) {
        let graceful = try props.bool("graceful") ?? true
        let sequential = try props.bool("sequential") ?? false
        if let name = try props.string("name") {
            guard let found = watcher(named: name) else { throw .programNotFound(name) }
            runJob(respond, on: found) { [unowned self] entry, finish in
                self.run(.reload(graceful: graceful, sequential: sequential), on: entry) { result in
                    finish(self.outcome(result) { ["info": .result($0)] })
                }
            }
            return
        }
        runJob(respond, scope: .all) { [unowned self] finish in
            self.logSink.reopen()
            // Only what runs: a stopped watcher stays stopped until `start` (Circus starts it).
            self.reloadAll(graceful: graceful, sequential: sequential) { finish($0.outcome()) }
        }
    }

    /// Maps an operation's result to a reply payload, or to errno 6 carrying the reason
    /// when it failed (Circus answers a bare `server error`).
    func outcome(_ result: OperationResult, _ payload: (OperationResult) -> JSONObject)
        -> Result<JSONObject, CommandError>
    {
        if let failure = result.failure { return .failure(.operationFailed(failure)) }
        return .success(payload(result))
    }

    // MARK: - quit

    private func quitCommand(_ respond: Responder) {
        let waiting = respond.request.isWaiting
        if !waiting { respond.ok() }
        quit { if waiting { respond.ok() } }
    }


    // MARK: - Read-only commands

    private func list(_ props: JSONObject, _ respond: Responder) throws(CommandError) {
        if props["name"] != nil, props["name"] != .null {
            let entry = try requireWatcher(props)
            return respond.ok(["pids": .pids(entry.machine.activePids)])
        }
        respond.ok(["watchers": .array(watchers.map(\.key).sorted(by: PythonText.precedes).map(JSON.string))])
    }

    private func status(_ props: JSONObject, _ respond: Responder) throws(CommandError) {
        if props["name"] != nil, props["name"] != .null {
            let entry = try requireWatcher(props)
            var payload: JSONObject = ["status": .string(entry.machine.status.rawValue)]
            // Not in Circus: why the watcher could not spawn (circusctl ignores extra keys).
            if let error = entry.machine.lastError { payload["last_error"] = .string(error) }
            return respond.ok(payload)
        }
        var statuses = JSONObject()
        for entry in watchers { statuses[entry.name] = .string(entry.machine.status.rawValue) }
        respond.ok(["statuses": .object(statuses)])
    }

    private func numprocesses(_ props: JSONObject, _ respond: Responder) throws(CommandError) {
        if props["name"] != nil, props["name"] != .null {
            let entry = try requireWatcher(props)
            return respond.ok([
                "numprocesses": .int(Int64(entry.machine.processes.count)), "watcher_name": props["name"] ?? .null,
            ])
        }
        respond.ok(["numprocesses": .int(Int64(watchers.reduce(0) { $0 + $1.machine.processes.count }))])
    }

    private func incrDecr(_ increase: Bool, _ props: JSONObject, _ respond: Responder) throws(CommandError) {
        let entry = try requireWatcher(props)
        let nb = Int(try props.int("nb") ?? 1)
        if entry.config.singleton {
            return respond.ok(["numprocesses": .int(Int64(entry.config.numprocesses)), "singleton": true])
        }
        runJob(respond, on: entry) { [unowned self] entry, finish in
            // From the configuration current when the job runs (a queued `set` may have
            // changed it since the request arrived).
            var config = entry.config
            if config.singleton {
                return finish(.success(["numprocesses": .int(Int64(config.numprocesses)), "singleton": true]))
            }
            config.numprocesses = max(0, config.numprocesses + (increase ? nb : -nb))
            entry.machine.replaceConfig(config)
            let target = config.numprocesses
            self.run(.manage, on: entry) { _ in finish(.success(["numprocesses": .int(Int64(target))])) }
        }
    }

    private func globalOptions(_ props: JSONObject, _ respond: Responder) throws(CommandError) {
        let settings = configuration.settings
        var all: JSONObject = [
            "endpoint": .string(settings.endpoint), "stats_endpoint": .string(settings.statsEndpoint),
            "pubsub_endpoint": .string(settings.pubsubEndpoint), "check_delay": .double(settings.checkDelay),
            "multicast_endpoint": .string(settings.multicastEndpoint),
        ]
        if Self.acceptsRemotePeers(settings.endpoint) { all["control_access"] = .string(Self.uncheckedRemoteAccess) }
        if let option = props["option"], option != .null {
            guard let key = option.stringValue, let value = all[key] else { throw .notAnExistingOption(option) }
            return respond.ok(["options": .object([key: value])])
        }
        respond.ok(["options": .object(all)])
    }

    // MARK: - signal / kill

    /// `signal`: checked and answered as Circus does. The children and descendants that
    /// `childpid`, `children` and `recursive` reach are read from /proc on `procWorker`;
    /// the signals go out and the answer is sent when that walk comes back.
    private func signal(_ props: JSONObject, _ respond: Responder) throws(CommandError) {
        let entry = try requireWatcher(props)
        guard let signo = try props.signal("signum") else { throw .signalInvalid }
        let pid = try props.int("pid").map { Int32(truncatingIfNeeded: $0) }
        let childpid = try props.int("childpid").map { Int32(truncatingIfNeeded: $0) }
        let raw = respond.request.raw
        if childpid != nil, pid == nil {
            throw .unexpected(rawRequest: raw, CommandError.Text.cannotSpecifyChildpidWithoutPid)
        }
        let targets = pid.map { [$0] } ?? entry.machine.activePids
        if let childpid, let pid {
            return walkProcessTree(of: [pid], descendants: false, respond) { children in
                guard children[pid]?.contains(childpid) == true else {
                    return .unexpected(rawRequest: raw, "child \(childpid) not found")
                }
                try? ChildMonitor.signal(pid: childpid, signo)
                return nil
            }
        }
        if props.flag("children") {
            for target in targets where entry.machine.processes[target] == nil {
                throw .unexpected(rawRequest: raw, String(target))
            }
            return walkProcessTree(of: targets, descendants: false, respond) { children in
                for target in targets {
                    for child in children[target] ?? [] { try? ChildMonitor.signal(pid: child, signo) }
                }
                return nil
            }
        }
        // An unknown pid is silently ignored, as in Circus.
        let managed = targets.filter { entry.machine.processes[$0] != nil }
        guard props.flag("recursive"), !managed.isEmpty else {
            return signalCommand(signo, to: managed, entry: entry) { respond.ok() }
        }
        // The descendants are read before the parent is signalled: its death would take
        // the list with it.
        walkProcessTree(of: managed, descendants: true, respond) { [unowned self] descendants in
            for target in managed {
                try? self.monitor.signal(target, signo)
                for child in descendants[target] ?? [] { try? ChildMonitor.signal(pid: child, signo) }
            }
            return nil
        }
    }

    /// Reads the children (or every descendant) of `pids` off the loop, then calls `act`
    /// on the loop thread and answers ok, or the error `act` returns.
    private func walkProcessTree(of pids: [Int32], descendants: Bool, _ respond: Responder,
                                 _ act: @escaping ([Int32: [Int32]]) -> CommandError?) {
        readTrees(of: pids, descendants: descendants) { [unowned self] tree in
            if let error = act(tree) {
                self.fail(respond, error)
            } else {
                respond.ok()
            }
        }
    }

    private func kill(_ props: JSONObject, _ respond: Responder) throws(CommandError) {
        let entry = try requireWatcher(props)
        var pid: Int32? = nil
        if let value = props["pid"], value != .null {
            guard let n = value.pythonInt ?? value.stringValue.flatMap({ Int64($0.trimmingASCIIWhitespace()) }) else {
                throw .unexpected(rawRequest: respond.request.raw, "invalid literal for int() with base 10: \(JSONWriter.string(value))")
            }
            pid = Int32(truncatingIfNeeded: n)
        }
        let signo = try props.signal("signum")
        var timeout: Double? = nil
        if let value = props["graceful_timeout"], value != .null {
            // circusctl sends it as a string.
            guard let t = value.doubleValue ?? value.stringValue.flatMap({ Double($0.trimmingASCIIWhitespace()) })
            else { throw .notANumber("graceful_timeout") }
            timeout = t
        }
        runJob(respond, on: entry, lockedInCircus: false) { [unowned self] entry, finish in
            self.run(.kill(pids: pid.map { [$0] }, signal: signo, gracefulTimeout: timeout), on: entry) { _ in
                finish(.success([:]))
            }
        }
    }

}

extension CommandError {
    /// errno 6 with the cause of the failure (an exec error, a configuration file's
    /// file:line message). Circus uses errno 6 with the bare reason `server error`; the
    /// number is kept so that clients see the same kind of error, the text says why.
    static func operationFailed(_ reason: String) -> CommandError {
        CommandError(code: .badMessageData, reason: reason)
    }
}

extension JSON {
    static func pids(_ pids: [Int32]) -> JSON { .array(pids.map { .int(Int64($0)) }) }

    static func result(_ result: OperationResult) -> JSON {
        ["stopped": .pids(result.stopped), "started": .pids(result.started), "kept": .pids(result.kept)]
    }
}
