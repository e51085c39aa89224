// Watcher options: `get`, `options` and `set`, and the conversions between a watcher's
// configuration and the option values on the wire.

import CircusBus
import CircusConfig
import CircusCore
import CircusHooks
import CircusMessageBus
import CircusProtocol
import CircusStreams
import CircusSystem
import Glibc
import Logging
import OrderedCollections

extension Supervisor {
    // MARK: - get / options

    func get(_ props: JSONObject, _ respond: Responder) throws(CommandError) {
        let entry = try requireWatcher(props)
        let keys = try props.requireList("keys")
        let all = optionsObject(entry.config)
        var result = JSONObject()
        for key in keys {
            guard let name = key.stringValue, let value = all[name] else { throw .optionNotFound(key) }
            result[name] = value
        }
        respond.ok(["options": .object(result)])
    }

    func options(_ props: JSONObject, _ respond: Responder) throws(CommandError) {
        let entry = try requireWatcher(props)
        respond.ok(["options": .object(optionsObject(entry.config))])
    }

    // MARK: - set

    /// `set`: checked at arrival (errors are answered at once, as Circus does), applied in
    /// its job to the configuration current at that moment, so that a job queued in
    /// between (an `incr`, another `set`) is never undone.
    func set(_ props: JSONObject, _ respond: Responder) throws(CommandError) {
        let entry = try requireWatcher(props)
        guard case .object = try props.require("options") else { throw .optionsNotAnObject }
        let options = try OptionValidation.validate(options: props["options"]!)
        for key in options.keys { try OptionValidation.checkServed(key: key) }
        let raw = respond.request.raw
        // Errors that depend on the watcher are answered now too; the job checks again.
        var preview = entry.config
        for (key, value) in options { try apply(option: key, value: value, to: &preview, fromAdd: false, raw: raw) }
        checkLoadables(of: preview, previous: entry.config) { [unowned self] problem in
            if let problem { return self.fail(respond, problem) }
            self.applySet(options, on: entry, respond)
        }
    }

    /// `set`'s job, once the options were checked.
    private func applySet(_ options: JSONObject, on entry: WatcherEntry, _ respond: Responder) {
        let raw = respond.request.raw
        runJob(respond, on: entry) { [unowned self] entry, finish in
            var config = entry.config
            do throws(CommandError) {
                for (key, value) in options { try self.apply(option: key, value: value, to: &config, fromAdd: false, raw: raw) }
            } catch {
                return finish(.failure(error))
            }
            entry.machine.replaceConfig(config)
            for (key, value) in options where key == "hooks" || key.hasPrefix("hooks.") {
                let names = key == "hooks" ? Array(value.objectValue?.keys ?? []) : [String(key.dropFirst("hooks.".count))]
                for point in names.compactMap(HookPoint.init(rawValue:)) where config.hooks[point]?.target.python != nil {
                    entry.pythonHooksToReload.insert(point)
                }
            }
            for _ in options.keys { self.publish(.updated(time: EventLoop.wallNow()), for: entry.name) }
            // Streams change in place; one the processes have no pipe for needs new processes.
            let streams = options.keys.contains { $0.hasPrefix("stdout_stream") || $0.hasPrefix("stderr_stream") }
            let streamsNeedReload = streams && !self.replaceOutputStreams(of: entry)
            // A stopped watcher stays stopped: whether it runs is decided when the reload
            // begins, not when the request arrived.
            let needsReload = streamsNeedReload || options.keys.contains { WatcherOptions.option($0)?.liveChange == .reload }
            let command: WatcherCommand =
                needsReload ? .reload(graceful: true, sequential: false, runningOnly: true) : .manage
            self.run(command, on: entry) { _ in finish(.success([:])) }
        }
    }

    /// Applies one validated `set`/`add` option to a configuration, through the table of
    /// watcher options (`rlimit_<name>` through the table of limits).
    ///
    /// - Parameter fromAdd: `add` keeps numbers as sent where `set` converts them.
    /// - Throws: Circus's `Singleton watcher has a single process` (errno 5).
    func apply(option key: String, value: JSON, to config: inout WatcherConfig, fromAdd: Bool, raw: [UInt8])
        throws(CommandError)
    {
        if key.hasPrefix("rlimit_") {
            config.rlimits[String(key.dropFirst("rlimit_".count)).lowercased()] = value.pythonInt
            return
        }
        if try applyStream(option: key, value: value, to: &config) { return }
        if try applyHook(option: key, value: value, to: &config) { return }
        guard let option = WatcherOptions.option(key) else { return }  // `retry_in`: read by nothing
        let converted = OptionValidation.value(of: key, value, fromAdd: fromAdd)
        if key == "numprocesses", config.singleton, converted.intValue > 1 {
            throw .unexpected(rawRequest: raw, CommandError.Text.singletonHasSingleProcess)
        }
        option.write(&config, converted)
    }

    /// `stdout_stream` / `stderr_stream` (a whole stream, as `add` takes it) and
    /// `stdout_stream.<key>` / `stderr_stream.<key>` (one key, as `set` takes it): the
    /// stream's keys change, and the result must be a stream this daemon can write, checked
    /// as the configuration file's streams are. Circus turns a stream whose class was
    /// given into a FileStream once a key is set (it pops `class` from the configuration);
    /// here the class stays.
    ///
    /// - Returns: false when `key` is not a stream option.
    /// - Throws: errno 3 naming the key at fault.
    private func applyStream(option key: String, value: JSON, to config: inout WatcherConfig) throws(CommandError) -> Bool {
        let stream: String
        let member: String?
        if let dot = key.firstIndex(of: ".") {
            stream = String(key[..<dot])
            member = String(key[key.index(after: dot)...])
        } else {
            stream = key
            member = nil
        }
        guard stream == "stdout_stream" || stream == "stderr_stream" else { return false }
        var keys = stream == "stdout_stream" ? config.stdoutStream : config.stderrStream
        if let member {
            keys[member] = PythonText.str(value)
        } else if case .object(let object) = value {
            keys = OrderedDictionary(uniqueKeysWithValues: object.map { ($0.key, PythonText.str($0.value)) })
        }
        do {
            _ = try StreamConfig.parse(keys)
        } catch {
            throw .message("'\(stream).\(error.key)': \(error.message)")
        }
        if stream == "stdout_stream" { config.stdoutStream = keys } else { config.stderrStream = keys }
        config.absentOptions.remove(stream + "_conf")
        return true
    }

    /// `hooks.<name>` (`"target[, ignore_failure]"`, as the configuration file's option and
    /// Circus's `set` take it) and `hooks` (an object of those, or of `[target,
    /// ignore_failure]` pairs as Circus's `add` takes them): the hook is checked as the
    /// configuration file's are (the name, the target, a declared signature); its library
    /// or Python callable is opened before the change applies (`checkLoadables`).
    ///
    /// - Returns: false when `key` is not a hook option.
    /// - Throws: errno 3 naming the hook at fault.
    private func applyHook(option key: String, value: JSON, to config: inout WatcherConfig) throws(CommandError) -> Bool {
        if key == "hooks" {
            guard case .object(let hooks) = value else { return true }  // validated: an object
            for (name, hook) in hooks { try setHook(name, hook, in: &config) }
            return true
        }
        guard key.hasPrefix("hooks.") else { return false }
        try setHook(String(key.dropFirst("hooks.".count)), value, in: &config)
        return true
    }

    private func setHook(_ name: String, _ value: JSON, in config: inout WatcherConfig) throws(CommandError) {
        let option = "'hooks.\(name)'"
        guard let point = HookPoint(rawValue: name) else { throw .message("\(option): \(HookPoint.unknown(name))") }
        let text: String
        var ignoreFailure: Bool?
        switch value {
        case .string(let string):
            text = string
        case .array(let pair) where pair.count == 2:
            guard case .string(let string) = pair[0], case .bool(let flag) = pair[1] else { fallthrough }
            text = string
            ignoreFailure = flag
        default:
            throw .message("\(option) must be \"target[, ignore_failure]\" or [target, ignore_failure]")
        }
        var spec: HookSpec
        do {
            spec = try HookSpec(point: point, option: text)
        } catch {
            throw .message("\(option): \(error.message)")
        }
        if let ignoreFailure { spec.ignoreFailure = ignoreFailure }
        config.hooks[point] = spec
    }

    /// Calls `then` (on the loop) once what `config` opens anew compared with `previous`
    /// was opened off the loop, as the configuration file's are at load: the libraries of
    /// its hooks, its Python hooks and its Python stream classes (imported, their keywords
    /// bound); with errno 3 naming the option that cannot be used.
    func checkLoadables(of config: WatcherConfig, previous: WatcherConfig?, then: @escaping (CommandError?) -> Void) {
        let streams = [
            ("stdout_stream", config.stdoutStream, previous?.stdoutStream),
            ("stderr_stream", config.stderrStream, previous?.stderrStream),
        ].filter { _, keys, old in
            guard keys != old, let parsed = try? StreamConfig.parse(keys) else { return false }
            return parsed.kind.pythonClass != nil
        }
        let hooks = config.hooks.values.filter { previous?.hooks[$0.point] != $0 }
        guard !streams.isEmpty || !hooks.isEmpty else { return then(nil) }
        let runtime = PythonRuntime(python: configuration.settings.python, environment: environment)
        let catalog = hookCatalog
        do {
            try loop.offload(to: configWorker, { () -> String? in
                for spec in hooks {
                    let problem: String?
                    if let name = spec.target.python {
                        problem = PythonHookCheck.problem(name, runtime: runtime)
                    } else {
                        do throws(HookResolveError) {
                            try catalog.resolve(spec)
                            problem = nil
                        } catch {
                            problem = error.description
                        }
                    }
                    if let problem { return "'hooks.\(spec.point.rawValue)': \(problem)" }
                }
                for (prefix, keys, _) in streams {
                    if let problem = PythonStreamCheck.problem(keys, runtime: runtime) { return "'\(prefix).class': \(problem)" }
                }
                return nil
            }, then: { [unowned self] problem in
                then(problem.map { CommandError.message($0) })
                self.drainDeferred()
            })
        } catch {
            then(.message("cannot start the thread that checks options: \(error)"))
        }
    }

    /// Every option `options` reports, sorted by name as Circus's reply is: the table's
    /// shown options, then free-form ones.
    func optionsObject(_ config: WatcherConfig) -> JSONObject {
        var all: [(String, JSON)] = []
        for option in WatcherOptions.all where option.shown {
            all.append((option.name, OptionValidation.json(option.read(config))))
        }
        for (key, value) in config.extraOptions where WatcherOptions.option(key) == nil {
            all.append((key, .string(value)))
        }
        all.sort { PythonText.precedes($0.0, $1.0) }
        return JSONObject(uniqueKeysWithValues: all)
    }
}
