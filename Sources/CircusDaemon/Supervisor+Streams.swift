// Output streams on the supervisor's side: a pipe per configured stream per process, whose
// read end goes to the watcher's writer thread (CircusStreams); and `tail`, which reads
// what a watcher's streams captured and lets a client follow new lines on the pub/sub
// socket. The loop thread only makes pipes and hands them over: it never touches a file.

import CircusConfig
import CircusCore
import CircusMessageBus
import CircusProtocol
import CircusStreams
import CircusSystem
import Glibc
import Logging
import OrderedCollections

/// The writers of the watchers that have streams, by watcher key (loop thread only).
final class OutputStreams {
    struct Entry {
        /// The stream keys the writer was made from (compared at each spawn, cheaply).
        var stdoutKeys: OrderedDictionary<String, String>
        var stderrKeys: OrderedDictionary<String, String>
        var writer: StreamWriter
    }
    var writers: [String: Entry] = [:]
    /// Writers whose watcher got other streams or went away: they end once their pipes
    /// are drained, and circusd's exit waits for them.
    var retired: [StreamWriter] = []

    /// How long a `tail` follow lasts unless sent again.
    static let followLease = 30.0
    /// Lines `tail` returns when the request does not say.
    static let defaultLines = 10
    /// How long circusd's exit waits for the writers to take what is left in the pipes.
    static let exitDeadline = 5.0
}

/// The read and write ends of one process's stream pipes.
struct OutputPipes {
    var stdout: (read: Int32, write: Int32)?
    var stderr: (read: Int32, write: Int32)?

    /// Closes the write ends (the child has its copies) and returns the read ends.
    func closeWriteEnds() {
        if let stdout { close(stdout.write) }
        if let stderr { close(stderr.write) }
    }

    func closeAll() {
        closeWriteEnds()
        if let stdout { close(stdout.read) }
        if let stderr { close(stderr.read) }
    }
}

extension Supervisor {
    /// The writer for `entry`'s current stream configuration, made (and the previous one
    /// retired) when it changed; nil when the watcher has no stream.
    func outputWriter(for entry: WatcherEntry) throws(SpawnFailure) -> StreamWriter? {
        // Every spawn asks: a watcher without streams is answered without a lookup.
        let noStreams = entry.machine.config.stdoutStream.isEmpty && entry.machine.config.stderrStream.isEmpty
        if noStreams, outputs.writers.isEmpty { return nil }
        let current = outputs.writers[entry.key]
        if let current, current.stdoutKeys == entry.machine.config.stdoutStream,
           current.stderrKeys == entry.machine.config.stderrStream
        {
            return current.writer
        }
        if noStreams, current == nil { return nil }
        let config = entry.config
        retireOutputWriters { $0 == entry.key || self.watcher(named: $0) == nil }
        let stdout: StreamConfig?
        let stderr: StreamConfig?
        do {
            // Checked when the configuration was loaded, or when `set` or `add` arrived.
            (stdout, stderr) = try config.outputStreams()
        } catch {
            throw SpawnFailure(message: "\(config.name): stream option \(error.key): \(error.message)")
        }
        if stdout == nil, stderr == nil { return nil }
        let logger = self.logger
        let name = config.name
        let bus = self.bus.remote
        let writer: StreamWriter
        do {
            writer = try StreamWriter(
                watcher: name, stdout: stdout, stderr: stderr,
                python: PythonRuntime(python: configuration.settings.python, environment: environment),
                report: { error, message in
                    if error { logger.error("\(message)") } else { logger.info("\(message)") }
                },
                lines: { batch in
                    bus.publish(EventMessage(topic: "tail.\(name)", payload: [
                        "stream": .string(batch.stream), "pid": .int(Int64(batch.pid)),
                        "lines": .array(batch.lines.map { .string($0) }), "time": .double(EventLoop.wallNow()),
                    ]))
                })
        } catch {
            throw SpawnFailure(message: "cannot start the output writer of '\(name)': \(error)")
        }
        outputs.writers[entry.key] = OutputStreams.Entry(
            stdoutKeys: config.stdoutStream, stderrKeys: config.stderrStream, writer: writer)
        return writer
    }

    /// Gives the running writer of `entry` the streams a `set` gave its configuration, in
    /// place, as Circus swaps the stream objects of a running watcher.
    ///
    /// - Returns: false when the processes must be restarted to have them: a stream they
    ///   have no pipe for (the watcher had none, as Circus then reloads the watcher too).
    func replaceOutputStreams(of entry: WatcherEntry) -> Bool {
        let config = entry.machine.config
        guard var current = outputs.writers[entry.key] else { return entry.machine.processes.isEmpty }
        if current.stdoutKeys == config.stdoutStream, current.stderrKeys == config.stderrStream { return true }
        // Checked when `set` arrived.
        guard let (stdout, stderr) = try? config.outputStreams(),
              stdout == nil || current.writer.stdoutConfig != nil, stderr == nil || current.writer.stderrConfig != nil
        else { return entry.machine.processes.isEmpty }
        current.writer.replaceStreams(stdout: stdout, stderr: stderr)
        current.stdoutKeys = config.stdoutStream
        current.stderrKeys = config.stderrStream
        outputs.writers[entry.key] = current
        return true
    }

    /// Retires the writers of the watcher keys `which` selects.
    private func retireOutputWriters(_ which: (String) -> Bool) {
        outputs.retired.removeAll { $0.hasEnded }
        for (key, old) in outputs.writers where which(key) {
            old.writer.retire()
            outputs.retired.append(old.writer)
            outputs.writers[key] = nil
        }
    }

    /// Makes the pipes for a process of `entry` and points the request's stdout and stderr
    /// at their write ends. `close_child_stdout`/`close_child_stderr` win, as in Circus
    /// (the child's descriptor goes to /dev/null and its stream gets nothing).
    func openOutputPipes(for entry: WatcherEntry, request: inout SpawnRequest) throws(SpawnFailure)
        -> (StreamWriter, OutputPipes)?
    {
        guard let writer = try outputWriter(for: entry) else { return nil }
        var pipes = OutputPipes()
        func makePipe(_ stream: String) throws(SpawnFailure) -> (read: Int32, write: Int32) {
            do {
                return try StreamWriter.makePipe()
            } catch {
                pipes.closeAll()
                throw SpawnFailure(message: "cannot make the \(stream) pipe of '\(entry.name)': \(error)")
            }
        }
        if writer.stdoutConfig != nil, !entry.config.closeChildStdout {
            let pipe = try makePipe("stdout")
            pipes.stdout = pipe
            request.stdout = .fd(pipe.write)
        }
        if writer.stderrConfig != nil, !entry.config.closeChildStderr {
            let pipe = try makePipe("stderr")
            pipes.stderr = pipe
            request.stderr = .fd(pipe.write)
        }
        return (writer, pipes)
    }

    /// After a spawn: the child holds the write ends, the writer gets the read ends.
    func handOverOutputPipes(_ output: (StreamWriter, OutputPipes)?, pid: Int32?) {
        guard let (writer, pipes) = output.map({ ($0.0, $0.1) }) else { return }
        guard let pid else { return pipes.closeAll() }
        pipes.closeWriteEnds()
        writer.attach(pid: pid, stdout: pipes.stdout?.read, stderr: pipes.stderr?.read)
    }

    /// The watcher stopped: its writer calls a Python stream class's `close()`, as Circus does.
    func outputWatcherStopped(_ entry: WatcherEntry) {
        outputs.writers[entry.key]?.writer.watcherStopped()
    }

    /// At exit, once the children are gone: every writer takes what its pipes still hold,
    /// then closes its files; circusd waits for them up to `OutputStreams.exitDeadline`.
    func finishOutputStreams() {
        let deadline = EventLoop.monotonicNow() + OutputStreams.exitDeadline
        for writer in outputs.writers.values.map(\.writer) + outputs.retired
        where !writer.finish(deadline: deadline) {
            let seconds = Int(OutputStreams.exitDeadline)
            logger.warning(
                "the output of \(writer.watcher) was still being written after \(seconds) s (its file does not take writes); circusd exits without the rest")
        }
        outputs.writers = [:]
        outputs.retired = []
    }

    // MARK: - tail

    /// Registers `tail`, circusd's own command.
    func registerTailCommand() {
        let command = RegisteredCommand(
            name: "tail",
            help: "Get the last lines a watcher's output streams captured; follow publishes new lines as tail.<name> events",
            arguments: [
                CommandArgument("name", "string", required: true, "the watcher"),
                CommandArgument("lines", "integer", "how many lines of each stream (default 10)"),
                CommandArgument(
                    "follow", "boolean",
                    "true: publish new lines on the pub/sub socket for 30 s (send again to renew); false: stop"),
            ],
            access: .control, origin: .core
        ) { [unowned self] request, respond in self.tail(request.properties, respond) }
        do {
            try bus.commands.register(command)
        } catch {
            preconditionFailure("core command registered twice: \(error)")
        }
    }

    private func tail(_ props: JSONObject, _ respond: CommandReply) {
        do throws(CommandError) {
            let entry = try requireWatcher(props)
            var count = OutputStreams.defaultLines
            if let lines = props["lines"] {
                guard let n = lines.pythonInt, n >= 0 else { throw .message("'lines' must be a non-negative integer") }
                count = Int(truncatingIfNeeded: n)
            }
            let follow: Bool?
            switch props["follow"] {
            case nil: follow = nil
            case .bool(let b)?: follow = b
            default: throw .notABoolean("follow")
            }
            retireOutputWriters { self.watcher(named: $0) == nil }
            // Made here if no process ran yet, so that a follow starting now is kept.
            let found: StreamWriter?
            do {
                found = try outputWriter(for: entry)
            } catch {
                throw .message(error.message)
            }
            guard let writer = found else {
                throw .message("watcher \(PythonText.repr(entry.name)) has no output stream: its output is not captured")
            }
            if let follow {
                writer.follow(until: follow ? EventLoop.monotonicNow() + OutputStreams.followLease : 0)
            }
            let streams = writer.configs.map(\.0)
            writer.tail(count) { lines in
                respond.ok(tailPayload(lines, streams: streams, follow: follow))
            }
        } catch {
            fail(respond, error)
        }
    }
}

/// `{"stdout": [...], "stderr": [...], "follow": seconds}`: the lines of each of
/// `streams`, and with `follow`, how long the lease lasts (0 once stopped).
private func tailPayload(_ lines: [String: [String]], streams: [String], follow: Bool?) -> JSONObject {
    var payload = JSONObject()
    for name in streams { payload[name] = .array((lines[name] ?? []).map { .string($0) }) }
    if let follow { payload["follow"] = .double(follow ? OutputStreams.followLease : 0) }
    return payload
}
