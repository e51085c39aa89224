// A watcher's Python stream classes, run in a Python helper process of their own.
//
// Circus calls a custom stream class inside circusd; a slow one holds up every watcher.
// Here each watcher that names one gets a helper process, fed by the watcher's writer
// thread: a slow or stuck class holds up that watcher's output only (its pipes fill, as
// with a slow disk), never the supervisor or another watcher. The helper's stdin carries
// framed chunks; a second pipe brings back its failure reports, read by the writer's
// loop. Everything here runs on the writer thread.

import CircusConfig
import CircusSystem
import CircusProtocol
import DequeModule
import Glibc
import OrderedCollections

/// One watcher's Python stream objects, in a helper process started on demand.
final class PythonStreamHelper {
    private let runtime: PythonRuntime?
    private let watcher: String
    /// The helper's argv[1]: the classes and their keyword arguments.
    private let spec: String
    private let loop: EventLoop
    private let report: (_ error: Bool, _ message: String) -> Void

    private var process: SpawnedProcess?
    /// The write end of the helper's stdin.
    private var input: Int32 = -1
    /// The read end of the report pipe, and its registration with the writer's loop.
    private var reports: Int32 = -1
    private var reportRegistration: EventLoop.Registration?
    /// The helper's pidfd in the writer's loop: its end is noticed when it happens, not
    /// at the next write.
    private var exitRegistration: EventLoop.Registration?
    private var reportBuffer: [UInt8] = []
    /// Frame bytes the helper's input did not take yet (its pipe was full: the class is
    /// slower than the output), written when the pipe has room again; and where each of
    /// their frames ends, with its payload's length (what is lost if the helper dies).
    private var pending: [UInt8] = []
    private var pendingOffset = 0
    private var pendingFrames: Deque<(end: Int, data: Int)> = []
    /// The helper's input in the writer's loop, while bytes are pending.
    private var inputRegistration: EventLoop.Registration?
    /// Called on the writer thread when the helper has taken every pending byte (or ended).
    var onDrained: (() -> Void)?
    /// Whether the helper's input is full. The writer then leaves the pipes of the Python
    /// streams unread, so a slow class fills them and holds up its watcher's processes
    /// (nothing is lost, nothing is buffered without bound), while the writer's thread goes
    /// on serving the watcher's other streams and `tail`.
    var isBlocked: Bool { pendingOffset < pending.count }
    /// Streams whose `open()` was asked for since the last `close()` (sent again to a
    /// helper started anew, whose objects are new).
    private var opened: Set<String> = []
    /// Why the helper is not running, once that was reported; and the bytes dropped since.
    private var down: String?
    private var lostBytes = 0
    /// When the helper may be started again after it ended, and the wait after the next end.
    private var nextStart = 0.0
    private var startedAt = 0.0
    private var backoff = PythonStreamHelper.firstBackoff
    static let firstBackoff = 1.0
    static let maximumBackoff = 30.0
    /// How long a shutdown waits for the helper to take its input and end.
    static let shutdownGrace = 5.0

    /// - Parameters:
    ///   - streams: the stream names (`stdout`, `stderr`) with their Python class configuration.
    ///   - runtime: the Python to run; nil reports that none was given.
    init(
        watcher: String, streams: [(String, StreamConfig)], runtime: PythonRuntime?, loop: EventLoop,
        report: @escaping (_ error: Bool, _ message: String) -> Void
    ) {
        self.watcher = watcher
        self.runtime = runtime
        self.loop = loop
        self.report = report
        var classes = JSONObject()
        for (name, config) in streams {
            guard let path = config.kind.pythonClass else { continue }
            var options = JSONObject()
            for (key, value) in config.pythonOptions { options[key] = .string(value) }
            classes[name] = .object(["class": .string(path), "options": .object(options)])
        }
        spec = JSONWriter.string(.object(["watcher": .string(watcher), "streams": .object(classes)]))
    }

    // MARK: Calls on the stream objects

    /// Hands a chunk `pid` wrote to `stream`'s object; counted as lost while the helper
    /// cannot run.
    func write(_ chunk: UnsafeRawBufferPointer, stream: String, pid: Int32) {
        guard running() else {
            lostBytes += chunk.count
            return
        }
        if send(.data, stream: stream, pid: pid, chunk) { recovered() } else { lostBytes += chunk.count }
    }

    /// Calls `open()` on `stream`'s object (Circus does when the watcher starts), once
    /// until the next `close`.
    func open(_ stream: String) {
        guard !opened.contains(stream) else { return }
        opened.insert(stream)
        // A helper started now calls open() on every opened stream itself.
        if process != nil { _ = send(.open, stream: stream, pid: 0, nil) } else { _ = running() }
    }

    /// Calls `close()` on `stream`'s object (Circus does when the watcher stops).
    func close(_ stream: String) {
        guard opened.remove(stream) != nil, process != nil else { return }
        _ = send(.close, stream: stream, pid: 0, nil)
    }

    /// Closes the objects, ends the helper (end of its input, after what is pending) and
    /// waits for it.
    func shutdown() {
        for stream in opened.sorted() { close(stream) }
        guard process != nil else { return }
        // A class stuck in a call is not waited for without end: the streams are being
        // replaced, or circusd exits.
        waitUntilDrained(within: Self.shutdownGrace)
        guard process != nil else { return }
        dropPending()
        Glibc.close(input)
        input = -1
        stopped(reason: nil, wait: Self.shutdownGrace, shutdown: true)
    }

    // MARK: The helper process

    /// Whether the helper runs, starting it if it is due.
    private func running() -> Bool {
        if process != nil { return true }
        guard monotonicSeconds() >= nextStart else { return false }
        if let problem = start() {
            stopped(reason: problem, wait: 0)
            return false
        }
        for stream in opened.sorted() { _ = send(.open, stream: stream, pid: 0, nil) }
        return process != nil
    }

    /// Starts the helper; returns why it could not.
    private func start() -> String? {
        guard let runtime else {
            return "no Python is configured to run the stream class"
        }
        var toHelper: [Int32] = [-1, -1]
        var fromHelper: [Int32] = [-1, -1]
        // Close-on-exec is set right after pipe(): every child circusd starts closes the
        // descriptors it was not given anyway.
        guard pipe(&toHelper) == 0 else { return "cannot create a pipe: \(errnoText(errno))" }
        guard pipe(&fromHelper) == 0 else {
            toHelper.forEach { _ = Glibc.close($0) }
            return "cannot create a pipe: \(errnoText(errno))"
        }
        for fd in toHelper + fromHelper { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var request = runtime.request([
            "-c", PythonStreamScript.source, spec, String(fromHelper[1]), String(getpid()),
        ])
        request.stdin = .fd(toHelper[0])
        request.keepFDs = [fromHelper[1]]
        // The helper is ended by the end of its input, after the last bytes: a signal sent
        // to circusd's process group (Ctrl-C) must not reach it first.
        request.newSession = true
        let started: SpawnedProcess
        do {
            started = try ChildMonitor.spawnOwned(request)
        } catch {
            (toHelper + fromHelper).forEach { _ = Glibc.close($0) }
            return runtime.cannotRun("stream classes", error)
        }
        Glibc.close(toHelper[0])
        Glibc.close(fromHelper[1])
        // Both ends the writer's loop watches: a full or empty pipe never blocks its thread.
        for fd in [toHelper[1], fromHelper[0]] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        process = started
        startedAt = monotonicSeconds()
        input = toHelper[1]
        reports = fromHelper[0]
        reportRegistration = try? loop.register(fd: reports) { [unowned self] _ in self.readReports() }
        exitRegistration = try? loop.register(fd: started.pidfd) { [unowned self] _ in
            self.stopped(reason: nil, wait: 1)
        }
        return nil
    }

    /// Writes one frame, or keeps what the helper's input does not take now; false when
    /// the helper has ended (it is reaped and reported).
    private func send(
        _ operation: PythonStreamScript.Operation, stream: String, pid: Int32, _ payload: UnsafeRawBufferPointer?
    ) -> Bool {
        let header = PythonStreamScript.header(operation, stream: stream, pid: pid, length: payload?.count ?? 0)
        let wrote = header.withUnsafeBytes { writeOrKeep($0) } && (payload.map { writeOrKeep($0) } ?? true)
        if !wrote {
            stopped(reason: nil, wait: 1)
            return false
        }
        if isBlocked { pendingFrames.append((pending.count, payload?.count ?? 0)) }
        return true
    }

    /// Writes what the helper's input takes of `bytes` (nothing while bytes are pending:
    /// order is kept) and keeps the rest; false when the helper has ended.
    private func writeOrKeep(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while !isBlocked, done < bytes.count {
            let n = Glibc.write(input, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { break }
                return false
            }
            done += n
        }
        guard done < bytes.count else { return true }
        pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[done...]))
        if inputRegistration == nil {
            inputRegistration = try? loop.register(fd: input, events: .writable) { [unowned self] _ in
                self.writePending()
            }
        }
        return true
    }

    /// Writes pending bytes while the helper's input takes them; once all are written,
    /// stops watching it and tells the writer.
    private func writePending() {
        while isBlocked {
            let n = pending.withUnsafeBytes { Glibc.write(input, $0.baseAddress! + pendingOffset, $0.count - pendingOffset) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { return }
                return stopped(reason: nil, wait: 1)
            }
            pendingOffset += n
            while let first = pendingFrames.first, first.end <= pendingOffset { pendingFrames.removeFirst() }
        }
        dropPending()
        onDrained?()
    }

    /// Waits (blocking the writer thread) until the helper has taken what is pending, has
    /// ended, or `seconds` passed: for circusd's exit, and before the helper's input is closed.
    func waitUntilDrained(within seconds: Double = .infinity) {
        let deadline = monotonicSeconds() + seconds
        while isBlocked {
            let left = deadline - monotonicSeconds()
            guard left > 0 else { return }
            var fd = pollfd(fd: input, events: Int16(POLLOUT), revents: 0)
            let timeout = left.isFinite ? Int32(min(left * 1000, 60_000)) + 1 : -1
            if poll(&fd, 1, timeout) < 0, errno != EINTR { return }
            writePending()
        }
    }

    /// Forgets the pending bytes, counting the payloads of frames the helper never got
    /// as lost (none once all were written), and stops watching the helper's input.
    private func dropPending() {
        lostBytes += pendingFrames.reduce(0) { $0 + $1.data }
        pending = []
        pendingOffset = 0
        pendingFrames.removeAll()
        if let registration = inputRegistration { loop.unregister(registration) }
        inputRegistration = nil
    }

    /// The helper ended or must not run: reads what it reported last, reaps it (after
    /// `wait` seconds it is killed), reports why once, and schedules the next start.
    private func stopped(reason: String?, wait: Double, shutdown: Bool = false) {
        var why = reason
        if let started = process {
            let wasBlocked = isBlocked
            dropPending()
            if wasBlocked { onDrained?() }
            if input >= 0 { Glibc.close(input) }
            input = -1
            if let registration = exitRegistration { loop.unregister(registration) }
            exitRegistration = nil
            let status = Self.reap(started, within: wait)
            ChildMonitor.unmarkOwned(started.pid)
            started.close()
            readReports()
            if let registration = reportRegistration { loop.unregister(registration) }
            reportRegistration = nil
            Glibc.close(reports)
            reports = -1
            process = nil
            if why == nil, !shutdown { why = "the Python stream helper ended (\(status))" }
        }
        guard let why else { return }  // a shutdown
        // A helper that ran a while is started again with the next output; one that ends
        // as soon as it starts (a class that cannot be made) is retried less and less often.
        let now = monotonicSeconds()
        let next: String
        if reason == nil, now - startedAt >= Self.firstBackoff {
            backoff = Self.firstBackoff
            nextStart = now
            next = "it starts again with the next output"
        } else {
            nextStart = now + backoff
            next = "next try in \(Int(backoff)) s"
            backoff = min(backoff * 2, Self.maximumBackoff)
        }
        if down == nil {
            down = why
            report(true, "\(watcher) Python stream: \(why); its output is dropped until the helper runs again (\(next))")
        }
    }

    /// Waits up to `seconds` for `process` to end, then kills it.
    private static func reap(_ process: SpawnedProcess, within seconds: Double) -> ProcessExitStatus {
        if seconds.isFinite {
            var fd = pollfd(fd: process.pidfd, events: Int16(POLLIN), revents: 0)
            let milliseconds = Int32(max(0, seconds * 1000))
            while poll(&fd, 1, milliseconds) < 0, errno == EINTR {}
            if fd.revents == 0 { try? process.signal(SIGKILL) }
        }
        return (try? process.waitForExit()) ?? .unknown
    }

    private func recovered() {
        guard let was = down else { return }
        down = nil
        backoff = Self.firstBackoff
        report(false, "\(watcher) Python stream runs again (after: \(was)); \(lostBytes) bytes were lost")
        lostBytes = 0
    }

    /// Reads the helper's reports: a stream that raised (once until it works again), and
    /// its recovery.
    private func readReports() {
        guard reports >= 0 else { return }
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(reports, $0.baseAddress!, $0.count) }
            if n > 0 {
                reportBuffer += chunk[0..<n]
                continue
            }
            if n < 0, errno == EINTR { continue }
            if n == 0, let registration = reportRegistration {
                // The helper closed it (it is ending): epoll would report the end forever.
                loop.unregister(registration)
                reportRegistration = nil
            }
            break
        }
        while let newline = reportBuffer.firstIndex(of: 0x0A) {
            let line = Array(reportBuffer[..<newline])
            reportBuffer.removeSubrange(...newline)
            guard let message = try? JSONParser.parse(line) else { continue }
            let stream = message["stream"]?.stringValue ?? "?"
            if let error = message["error"]?.stringValue {
                let trace = message["traceback"]?.stringValue.map { "\n" + $0 } ?? ""
                report(true, "\(watcher) \(stream) stream: \(error); its output is dropped until a call succeeds\(trace)")
            } else if let was = message["recovered"]?.stringValue {
                let lost = message["lost"]?.intValue ?? 0
                report(false, "\(watcher) \(stream) stream writes again (after: \(was)); \(lost) bytes were lost")
            }
        }
    }
}
