// Watcher options: `get`, `options` and `set`, and the conversions between a watcher's
// configuration and the option values on the wire.

import CircusBus
import CircusConfig
import CircusCore
import CircusProtocol
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

    func set(_ props: JSONObject, _ respond: Responder) throws(CommandError) {
        let entry = try requireWatcher(props)
        guard case .object = try props.require("options") else { throw .optionsNotAnObject }
        let options = try OptionValidation.validate(options: props["options"]!)
        var config = entry.config
        var needsReload = false
        for (key, value) in options {
            try apply(option: key, value: value, to: &config, raw: respond.request.raw)
            if Self.reloadingOptions.contains(key) { needsReload = true }
        }
        let changedKeys = Array(options.keys)
        runJob(respond, scope: .watchers([entry.key])) { [unowned self] finish in
            entry.machine.replaceConfig(config)
            for _ in changedKeys { self.publish(.updated(time: EventLoop.wallNow()), for: entry.name) }
            let command: WatcherCommand =
                needsReload && entry.machine.status != .stopped ? .reload(graceful: true, sequential: false) : .manage
            self.run(command, on: entry) { _ in finish(.success([:])) }
        }
    }

    /// Options whose change needs new processes (spec 6.21: "graceful reload").
    static let reloadingOptions: Set<String> = [
        "working_dir", "uid", "gid", "shell", "env", "cmd", "args", "max_age", "max_age_variance",
    ]

    /// Applies one validated `set`/`add` option to a configuration.
    func apply(option key: String, value: JSON, to config: inout WatcherConfig, raw: [UInt8]) throws(CommandError) {
        func string(_ v: JSON) -> String? {
            switch v {
            case .null: return nil
            case .string(let s): return s
            default: return JSONWriter.string(v)
            }
        }
        switch key {
        case "numprocesses":
            let n = Int(value.pythonInt ?? 0)
            if config.singleton, n > 1 {
                throw .unexpected(rawRequest: raw, CommandError.Text.singletonHasSingleProcess)
            }
            config.numprocesses = max(0, n)
        case "warmup_delay": config.warmupDelay = value.doubleValue ?? 0
        case "working_dir": config.workingDir = string(value)
        case "uid": config.uid = string(value)
        case "gid": config.gid = string(value)
        case "send_hup": config.sendHup = value.isTruthy
        case "stop_signal":
            guard let n = value.pythonInt else { throw .notAnInteger(key) }
            config.stopSignal = Int32(truncatingIfNeeded: n)
        case "stop_children": config.stopChildren = value.isTruthy
        case "shell": config.shell = value.isTruthy
        case "env":
            var env = OrderedDictionary<String, String>()
            for (k, v) in value.objectValue ?? [:] { env[k] = v.stringValue ?? "" }
            config.env = env
        case "cmd": config.cmd = string(value) ?? ""
        case "args":
            if case .array(let list) = value { config.args = .list(list.compactMap(string)) } else {
                config.args = string(value).map(CommandArguments.string)
            }
        case "copy_env": config.copyEnv = value.isTruthy
        case "max_retry": config.maxRetry = Int(value.pythonInt ?? 5)
        case "graceful_timeout": config.gracefulTimeout = value.doubleValue ?? 30
        case "max_age": config.maxAge = Int(value.pythonInt ?? 0)
        case "max_age_variance": config.maxAgeVariance = Int(value.pythonInt ?? 30)
        case "respawn": config.respawn = value.isTruthy
        case "singleton": config.singleton = value.isTruthy
        case "close_child_stdin": config.closeChildStdin = value.isTruthy
        case "close_child_stdout": config.closeChildStdout = value.isTruthy
        case "close_child_stderr": config.closeChildStderr = value.isTruthy
        case "retry_in": break  // accepted by Circus, used by nothing
        case "hooks":
            for (name, target) in value.objectValue ?? [:] {
                let text = target.arrayValue.flatMap { $0.first?.stringValue } ?? target.stringValue ?? ""
                config.hooks[name] = HookSpec(target: text, ignoreFailure: target.arrayValue?.dropFirst().first?.isTruthy ?? false)
            }
        case "stdout_stream", "stderr_stream":
            var stream = OrderedDictionary<String, String>()
            for (k, v) in value.objectValue ?? [:] { stream[k] = string(v) ?? "" }
            if key == "stdout_stream" { config.stdoutStream = stream } else { config.stderrStream = stream }
        default:
            if key.hasPrefix("rlimit_") {
                config.rlimits[String(key.dropFirst(7)).lowercased()] = value.pythonInt
            } else if key.hasPrefix("stdout_stream.") {
                config.stdoutStream[String(key.dropFirst("stdout_stream.".count))] = string(value) ?? ""
            } else if key.hasPrefix("stderr_stream.") {
                config.stderrStream[String(key.dropFirst("stderr_stream.".count))] = string(value) ?? ""
            } else if key.hasPrefix("hooks.") {
                config.hooks[String(key.dropFirst(6))] = HookSpec(target: string(value) ?? "", ignoreFailure: false)
            } else {
                config.extraOptions[key] = string(value) ?? ""
            }
        }
    }

    /// Every option `options` reports (spec 3.6), sorted by name as Circus's reply is.
    func optionsObject(_ config: WatcherConfig) -> JSONObject {
        func opt(_ s: String?) -> JSON { s.map(JSON.string) ?? .null }
        func args(_ a: CommandArguments?, fallback: JSON) -> JSON {
            switch a {
            case .string(let s)?: return .string(s)
            case .list(let l)?: return .array(l.map(JSON.string))
            case nil: return fallback
            }
        }
        func stream(_ s: OrderedDictionary<String, String>) -> JSON {
            var o = JSONObject()
            for (k, v) in s where k != "class" { o[k] = .string(v) }
            return .object(o)
        }
        let warmup: JSON = config.warmupDelay == config.warmupDelay.rounded() && config.location != nil
            ? .int(Int64(config.warmupDelay)) : .double(config.warmupDelay)
        var env = JSONObject()
        for (k, v) in config.env { env[k] = .string(v) }
        var all: [(String, JSON)] = [
            ("args", args(config.args, fallback: config.location == nil ? .null : "")),
            ("close_child_stderr", .bool(config.closeChildStderr)),
            ("close_child_stdin", .bool(config.closeChildStdin)),
            ("close_child_stdout", .bool(config.closeChildStdout)),
            ("cmd", .string(config.cmd)), ("copy_env", .bool(config.copyEnv)), ("env", .object(env)),
            ("executable", opt(config.executable)), ("gid", opt(config.gid)),
            ("graceful_timeout", .double(config.gracefulTimeout)), ("max_age", .int(Int64(config.maxAge))),
            ("max_age_variance", .int(Int64(config.maxAgeVariance))), ("max_retry", .int(Int64(config.maxRetry))),
            ("numprocesses", .int(Int64(config.numprocesses))), ("on_demand", .bool(config.onDemand)),
            ("priority", .int(Int64(config.priority))), ("respawn", .bool(config.respawn)),
            ("send_hup", .bool(config.sendHup)), ("shell", .bool(config.shell)),
            ("shell_args", args(config.shellArgs, fallback: .null)), ("singleton", .bool(config.singleton)),
            ("stderr_stream_conf", stream(config.stderrStream)), ("stdout_stream_conf", stream(config.stdoutStream)),
            ("stop_children", .bool(config.stopChildren)), ("stop_signal", .int(Int64(config.stopSignal))),
            ("uid", opt(config.uid)), ("use_sockets", .bool(config.useSockets)), ("warmup_delay", warmup),
            ("working_dir", opt(config.workingDir ?? currentDirectory)),
        ]
        for (key, value) in config.extraOptions where !all.contains(where: { $0.0 == key }) {
            all.append((key, .string(value)))
        }
        all.sort { PythonText.precedes($0.0, $1.0) }
        return JSONObject(uniqueKeysWithValues: all)
    }
}
