// circusd: the command line of the daemon. Everything it does lives in CircusDaemon;
// this file parses options, loads the configuration and hands over.

import ArgumentParser
import CircusConfig
import CircusDaemon
import CircusHooks
import CircusSystem
import Glibc
import Logging

@main
struct Circusd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "circusd",
        abstract: "Run the Circus process supervisor (circus-swift).",
        discussion: "Reads a Circus 0.19 INI file and serves Circus's ZeroMQ control protocol.",
        version: Version.text
    )

    @Option(name: .customLong("log-level"),
            help: "Log level: critical, error, warning, info or debug (default: [circus] loglevel, else info).")
    var logLevel: String?

    @Option(name: .customLong("log-output"),
            help: "Where to log: '-' or 'stdout' for stderr (as Circus), else a file path.")
    var logOutput: String?

    // Declared so that it is refused with its reason rather than as an unknown option.
    @Option(name: .customLong("logger-config"),
            help: "Python logging config: not supported (refused); use --log-level and --log-output.")
    var loggerConfig: String?

    @Flag(name: .customLong("daemon"), help: "Run in the background (double fork, stdio on /dev/null).")
    var daemon = false

    @Option(name: .customLong("pidfile"), help: "Write the daemon's pid to this file.")
    var pidfile: String?

    @Argument(help: "The configuration file (circus.ini).")
    var config: String?

    func validate() throws {
        if let logLevel, !["critical", "error", "warning", "info", "debug"].contains(logLevel.lowercased()) {
            throw ValidationError("invalid --log-level '\(logLevel)': choose critical, error, warning, info or debug")
        }
        // Refused as `loggerconfig` in the file is (an empty value asks for nothing there too).
        if let loggerConfig, !loggerConfig.isEmpty {
            throw ValidationError(
                """
                --logger-config: is not supported yet by this version of circusd: it is a Python logging \
                configuration; use --log-level and --log-output
                """)
        }
    }

    func run() throws {
        guard let config else {
            // Circus prints its usage and exits 0 without a configuration.
            print("usage: " + Circusd.usageString())
            return
        }
        var environment: [String: String] = [:]
        var environmentList: [(key: String, value: String)] = []
        var cursor = environ
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") {
                let key = String(text[..<eq])
                let value = String(text[text.index(after: eq)...])
                if environment[key] == nil { environmentList.append((key, value)) }
                environment[key] = value
            }
            cursor += 1
        }
        let cwd = WorkingDirectory.current(environment: environment) ?? "/"

        // The whole configuration is validated before anything starts, daemon or not.
        let loaded: LoadResult
        // The user and group databases, read once here (NSS may block: the loop does not
        // run yet); the daemon keeps them current from there.
        let accounts = SystemAccounts.load()
        // Hook libraries are opened and their symbols found now, before anything starts.
        let hooks = HookCatalog()
        do {
            loaded = try ConfigLoader.load(path: config, environment: environment, currentDirectory: cwd, accounts: accounts)
            try hooks.resolve(loaded.configuration)
            try PythonHookCheck.verify(loaded.configuration, environment: environmentList)
            try PythonStreamCheck.verify(loaded.configuration, environment: environmentList)
            try PythonPluginCheck.verify(loaded.configuration, environment: environmentList)
        } catch {
            fail("circusd: configuration error: \(error)")
        }
        let settings = loaded.configuration.settings
        // With --daemon the original process waits until the daemon serves or says why it
        // cannot; every failure below goes through `startupFailed` so that it hears it.
        var report: StartupReport? = nil
        if daemon {
            do { report = try Daemonizer.daemonize() } catch { fail("circusd: cannot daemonize: \(error)") }
        }
        func startupFailed(_ message: String, onStandardOutput: Bool = false) -> Never {
            if let report {
                report.failed(message, onStandardOutput: onStandardOutput)
            } else if onStandardOutput {
                print(message)
            } else {
                fail(message)
            }
            Glibc.exit(1)
        }
        // Block the signals we read through a signalfd before libzmq starts its threads.
        _ = SignalSource.blockDaemonSignals()

        let sink: LogSink
        do {
            sink = try LogSink(output: logOutput ?? settings.logoutput)
        } catch {
            startupFailed("circusd: \(error)")
        }
        // Lines still queued for the writer thread are written before the process exits
        // (registered before the pidfile's defer, so it runs after it: the very last step).
        defer { sink.flush() }
        let level = CircusLogHandler.level(named: logLevel ?? settings.loglevel)
        LoggingSystem.bootstrap { label in CircusLogHandler(label: label, sink: sink, level: level) }
        let logger = Logger(label: "circus")
        for warning in loaded.warnings { logger.warning("\(warning)") }

        if let mask = settings.umask { umask(mode_t(mask)) }
        var pid: Pidfile? = nil
        if let path = pidfile ?? settings.pidfile {
            let file = Pidfile(path: path)
            // Circus prints this one on stdout.
            do { try file.create() } catch { startupFailed(error.description, onStandardOutput: true) }
            pid = file
        }
        defer { pid?.unlink() }

        let supervisor: Supervisor
        do {
            supervisor = try Supervisor(
                configuration: loaded.configuration, environment: environmentList, currentDirectory: cwd,
                logger: logger, logSink: sink, accounts: accounts, hooks: hooks)
            try supervisor.run { report?.serving() }
        } catch {
            logger.critical("\(error)")
            pid?.unlink()
            pid = nil
            if let report {
                report.failed("circusd: \(error)")
                Glibc.exit(1)
            }
            throw ExitCode(1)
        }
    }

    private func fail(_ message: String) -> Never {
        var text = message + "\n"
        text.withUTF8 { buffer in _ = write(2, buffer.baseAddress, buffer.count) }
        Glibc.exit(1)
    }
}
