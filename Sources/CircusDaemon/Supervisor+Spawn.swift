// Turns a watcher's configuration into one spawn request: the command line with its
// per-process variables expanded, the environment, ids, limits and descriptors.

import CircusConfig
import CircusProtocol
import CircusSystem
import OrderedCollections

extension Supervisor {
    /// The environment a process of `config` gets: with `copy_env`, circusd's environment
    /// overlaid by the watcher's; without it, only the watcher's (`[env]` sections), as in
    /// Circus (no PATH, no HOME).
    func childEnvironment(for config: WatcherConfig) -> OrderedDictionary<String, String> {
        var env: OrderedDictionary<String, String> = [:]
        if config.copyEnv {
            for (key, value) in environment { env[key] = value }
        }
        for (key, value) in config.env { env[key] = value }
        return env
    }

    /// Per-process template variables: `$(circus.wid)`, `$(circus.env.X)`,
    /// `$(circus.sockets.X)`, the free-form options and every option the table marks as a
    /// spawn variable, as Python's `str()` writes them (`True`, `None`, `30.0`).
    func spawnVariables(for config: WatcherConfig, wid: Int, env: OrderedDictionary<String, String>,
                        sockets: OrderedDictionary<String, String>)
        -> OrderedDictionary<String, SubstitutionValue>
    {
        var variables: OrderedDictionary<String, SubstitutionValue> = [:]
        for (key, value) in config.extraOptions { variables[key] = .string(value) }
        for option in WatcherOptions.all where option.spawnVariable {
            variables[option.name] = .string(pythonText(option.read(config)))
        }
        variables["wid"] = .string(String(wid))
        variables["env"] = .dictionary(env)
        variables["sockets"] = .dictionary(sockets)
        return variables
    }

    /// Whether any text expanded at spawn time may hold a variable.
    static func hasTemplates(_ config: WatcherConfig) -> Bool {
        // `$(`, `((` or `$WID`, looked for byte by byte: this runs for every spawn.
        func marked(_ text: String) -> Bool {
            var previous: UInt8 = 0
            for byte in text.utf8 {
                if byte == UInt8(ascii: "("), previous == UInt8(ascii: "$") || previous == UInt8(ascii: "(") { return true }
                if byte == UInt8(ascii: "W"), previous == UInt8(ascii: "$"), text.contains("$WID") { return true }
                previous = byte
            }
            return false
        }
        func marked(_ args: CommandArguments?) -> Bool {
            switch args {
            case .string(let s)?: return marked(s)
            case .list(let list)?: return list.contains(where: marked)
            case nil: return false
            }
        }
        return marked(config.cmd) || marked(config.args) || marked(config.shellArgs)
            || config.executable.map(marked) == true || config.uid.map(marked) == true
            || config.gid.map(marked) == true
    }

    /// Builds the spawn request for worker `wid` of `config`, with the descriptors
    /// `sockets` gives it.
    ///
    /// - Throws: `SpawnFailure` for a command line that does not split, an unknown user
    ///   or group; the watcher reports it like an exec failure.
    func makeSpawnRequest(for config: WatcherConfig, wid: Int, sockets: SpawnSockets) throws(SpawnFailure)
        -> SpawnRequest
    {
        let env = childEnvironment(for: config)
        // Most commands have no template at all: skip building the variable table then
        // (respawn latency is what a supervisor is judged by).
        let table = Self.hasTemplates(config)
            ? Substitution.Table(ordered: spawnVariables(for: config, wid: wid, env: env, sockets: sockets.numbers)) : nil
        func expand(_ text: String) -> String {
            guard let table else { return text }
            // `$WID` is Circus's deprecated spelling of `$(circus.wid)`.
            return Substitution.replace(text, table: table).replacing("$WID", with: String(wid))
        }
        let command = table == nil
            ? config.cmd : expand(Substitution.replace(config.cmd, variables: ["env": .dictionary(config.env)]))
        var extra: [String] = []
        var extraText = ""
        do {
            switch config.args {
            case .string(let s)?:
                extraText = expand(s)
                extra = try Shlex.split(extraText)
            case .list(let list)?:
                extra = list.map(expand)
                extraText = Shlex.join(extra)
            case nil:
                break
            }
        } catch {
            throw SpawnFailure(message: "args of '\(config.name)': \(error)")
        }

        var arguments: [String]
        var executable: String
        if config.shell {
            // `shell = true` runs the command through the shell, as its name promises
            // (Circus quotes every word, which disables the shell; see README).
            let line = extraText.isEmpty ? command : command + " " + extraText
            arguments = ["/bin/sh", "-c", line]
            switch config.shellArgs {
            case .string(let s)?:
                do { arguments += try Shlex.split(expand(s)) } catch {
                    throw SpawnFailure(message: "shell_args of '\(config.name)': \(error)")
                }
            case .list(let list)?:
                arguments += list.map(expand)
            case nil:
                break
            }
            executable = "/bin/sh"
        } else {
            do {
                arguments = try Shlex.split(command) + extra
            } catch {
                throw SpawnFailure(message: "cmd of '\(config.name)': \(error)")
            }
            guard let first = arguments.first else {
                throw SpawnFailure(message: "cmd of '\(config.name)' is empty")
            }
            executable = config.executable.map(expand) ?? first
        }

        var uid: UInt32? = nil
        var gid: UInt32? = nil
        var groups: [UInt32]? = nil
        // From the snapshot: NSS is never asked on the loop thread.
        let accounts = users.snapshot
        let uidText = config.uid.map(expand)
        let gidText = config.gid.map(expand)
        do {
            if let uidText {
                let user = try accounts.user(uidText)
                uid = user.uid
                gid = user.gid
                groups = accounts.groupList(user: user.name, gid: user.gid)
            }
            if let gidText {
                gid = try accounts.group(gidText).gid
                if uid == nil { groups = [] }
            }
        } catch {
            lookUpLater(user: error.code == .unknownUser ? uidText : nil, group: error.code == .unknownGroup ? gidText : nil)
            throw SpawnFailure(message: error.description)
        }

        let limits = config.rlimits.compactMap { name, value in
            ResourceLimits.number(name).map { ResourceLimit(resource: $0, name: name, value: value) }
        }
        return SpawnRequest(
            executable: executable,
            arguments: arguments,
            environment: env.map { (key: $0.key, value: $0.value) },
            searchPath: env["PATH"] ?? SpawnRequest.defaultSearchPath,
            workingDirectory: config.workingDir ?? currentDirectory,
            uid: uid,
            gid: gid,
            supplementaryGroups: groups,
            resourceLimits: limits,
            stdin: sockets.stdin.map(StdioMode.fd) ?? (config.closeChildStdin ? .null : .inherit),
            stdout: config.closeChildStdout ? .null : .inherit,
            stderr: config.closeChildStderr ? .null : .inherit,
            keepFDs: sockets.keep,
            newSession: true
        )
    }
}

/// A scalar option value as Python's `str()` writes it.
func pythonText(_ value: OptionValue) -> String {
    switch value {
    case .none: return "None"
    case .bool(let b): return b ? "True" : "False"
    case .int(let n): return String(n)
    case .float(let x): return PythonFloat.repr(x)
    case .string(let s): return s
    case .list(let l): return "[" + l.map { PythonText.repr(JSON.string($0)) }.joined(separator: ", ") + "]"
    case .dictionary: return "{...}"
    }
}
