// The thread that moves one watcher's output from its processes' pipes to its streams.
//
// Each watcher with a stream gets its own writer thread with its own epoll loop, so a
// slow disk or a chatty child holds up only that watcher's output: the supervisor's loop
// only creates pipes and hands their read ends over. A pipe is read until every process
// holding its write end has closed it (end of file), so every byte a child wrote before
// it died reaches the stream, whenever it died; at circusd's exit `finish()` takes what
// is still in the pipes before the files are closed.

import CCircusStreams
public import CircusConfig
public import CircusSystem
import Glibc
import Synchronization

/// Lines a follower of `tail` gets: one batch from one process's stream.
public struct FollowedLines: Sendable {
    /// `stdout` or `stderr`.
    public let stream: String
    public let pid: Int32
    public let lines: [String]
}

/// One watcher's output streams, written on a thread of their own.
public final class StreamWriter: @unchecked Sendable {
    // Everything below `remote` is touched on the writer thread only (the thread runs
    // `loop`; other threads post to it).
    /// The watcher, for messages and follow events.
    public let watcher: String
    /// The streams the writer writes to: those it was made for, or those `replaceStreams`
    /// gave it. Read and changed by the thread that owns the writer (the supervisor's loop);
    /// the writer thread works from the copies posted to it.
    public private(set) var stdoutConfig: StreamConfig?
    public private(set) var stderrConfig: StreamConfig?
    /// For the Python helper of streams that `replaceStreams` gives the writer.
    private let runtime: PythonRuntime?
    private let report: @Sendable (_ error: Bool, _ message: String) -> Void
    private let remote: EventLoop.Remote
    private let loopBox: LoopBox
    private var thread: OSThread?
    private var sinks: [String: StreamSink] = [:]
    /// Runs the watcher's Python stream classes, when it has any.
    private var python: PythonStreamHelper?
    private var pipes: [Int32: PipeState] = [:]
    /// Pipes of Python streams left unread while the helper's input is full (out of the
    /// loop: epoll would report them ready, or ended, at every turn).
    private var paused: Set<Int32> = []
    private var retiring = false
    /// The watcher stopped while its processes' pipes still held output.
    private var stopPending = false
    private var finished = false
    /// Bytes moved in the current loop turn, and whether the end of the turn looks at them.
    private var movedThisTurn = 0
    private var turnWatched = false
    /// A turn that moved less than this is followed by a nap of `batchingNap` (see `moved`).
    static let smallTurn = 16 * 1024
    static let batchingNap: useconds_t = 200
    /// Set when the thread has ended (a retired writer whose pipes were all drained).
    private let ended = Atomic<Bool>(false)
    /// Whether the writer thread has ended; safe from any thread.
    public var hasEnded: Bool { ended.load(ordering: .acquiring) }
    /// Monotonic deadline of the follow lease, as Double bits; 0 when nobody follows.
    private let followDeadline = Atomic<UInt64>(0)
    private let onLines: @Sendable (FollowedLines) -> Void
    /// Reads land here: as large as a pipe's capacity (256 KiB, see `makePipe`), so one
    /// read takes all a pipe holds and never splits a write of up to PIPE_BUF bytes.
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)

    private final class LoopBox: @unchecked Sendable {
        let loop: EventLoop
        init(_ loop: EventLoop) { self.loop = loop }
    }

    private struct PipeState {
        let fd: Int32
        let pid: Int32
        let stream: String
        var registration: EventLoop.Registration?
        /// A line begun and not yet ended, kept only while someone follows.
        var partial: [UInt8] = []
    }

    /// Starts the writer thread of `watcher` and opens its files on it.
    ///
    /// - Parameters:
    ///   - python: the Python that runs a Python stream class (started with the first chunk).
    ///   - report: a failure (`error` true) or a recovery, on the writer thread; each
    ///     failure is reported once when it begins, not per chunk.
    ///   - lines: lines for `tail` followers, on the writer thread.
    /// - Throws: `SystemError` when the thread or its epoll cannot be created.
    public init(
        watcher: String, stdout: StreamConfig?, stderr: StreamConfig?, python runtime: PythonRuntime? = nil,
        report: @escaping @Sendable (_ error: Bool, _ message: String) -> Void,
        lines: @escaping @Sendable (FollowedLines) -> Void
    ) throws(SystemError) {
        self.watcher = watcher
        stdoutConfig = stdout
        stderrConfig = stderr
        self.runtime = runtime
        self.report = report
        onLines = lines
        let loop = try EventLoop()
        remote = loop.remote
        loopBox = LoopBox(loop)
        let box = loopBox
        // The thread keeps the writer alive until its loop ends (a retired writer outlives
        // the supervisor's reference to it until its pipes are drained).
        thread = try OSThread.start(name: "out:\(watcher)") { [self] in
            box.loop.run()
            self.closeAll()
            self.ended.store(true, ordering: .releasing)
        }
        let streams = configs
        remote.post { [self] in makeSinks(streams) }
    }

    /// Gives the running processes' output other streams, as Circus's `set` of a
    /// `stdout_stream.<key>` swaps the stream object of a running watcher: the old streams
    /// are closed (a Python class's `close()` is called), and what the pipes hold from now
    /// on goes to the new ones (a new Python object is opened if processes run). `tail`
    /// keeps the lines captured so far. A stream the writer did not have cannot be added
    /// this way (the processes have no pipe for it): the supervisor restarts them instead.
    public func replaceStreams(stdout: StreamConfig?, stderr: StreamConfig?) {
        stdoutConfig = stdout
        stderrConfig = stderr
        let streams = configs
        remote.post { [self] in
            let previous = sinks
            for sink in previous.values { sink.watcherStopped() }
            python?.shutdown()
            python = nil
            for sink in previous.values { sink.close() }
            sinks = [:]
            makeSinks(streams)
            for (name, sink) in sinks {
                if let old = previous[name] { sink.takeHistory(of: old) }
                if !pipes.isEmpty { sink.processStarting() }
            }
            resumePipes()
        }
    }

    /// Puts pipe `fd` in the writer's loop; false when it cannot be (writer thread).
    private func watch(_ fd: Int32) -> Bool {
        do {
            pipes[fd]?.registration = try loopBox.loop.register(fd: fd) { [unowned self] _ in self.service(fd) }
            return true
        } catch {
            return false
        }
    }

    /// Leaves pipe `fd` unread until the Python helper takes more (writer thread).
    private func pause(_ fd: Int32) {
        guard let registration = pipes[fd]?.registration else { return }
        loopBox.loop.unregister(registration)
        pipes[fd]?.registration = nil
        paused.insert(fd)
    }

    /// Reads the paused pipes again (writer thread).
    private func resumePipes() {
        let waiting = paused
        paused = []
        for fd in waiting where pipes[fd] != nil {
            if !watch(fd) { closePipe(fd) }
        }
    }

    /// Makes the sinks of `streams`, and the helper of their Python classes (writer thread).
    private func makeSinks(_ streams: [(String, StreamConfig)]) {
        if streams.contains(where: { $0.1.kind.pythonClass != nil }) {
            let helper = PythonStreamHelper(
                watcher: watcher, streams: streams, runtime: runtime, loop: loopBox.loop, report: report)
            helper.onDrained = { [unowned self] in resumePipes() }
            python = helper
        }
        for (name, config) in streams {
            sinks[name] = StreamSink(config: config, name: name, watcher: watcher, python: python, report: report)
        }
    }

    deinit {
        buffer.deallocate()
    }

    /// Makes a pipe for one stream of a process: close-on-exec (the spawn gives the write
    /// end to the child as its stdout or stderr), the read end non-blocking.
    ///
    /// - Throws: `SystemError` (EMFILE, ENFILE).
    public static func makePipe() throws(SystemError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        let r = circus_output_pipe(&fds)
        if r < 0 { throw SystemError("pipe2", errno: -r) }
        return (fds[0], fds[1])
    }

    /// Hands over the read ends of a new process's pipes (the writer closes them).
    public func attach(pid: Int32, stdout: Int32?, stderr: Int32?) {
        remote.post { [self] in
            if pipes.isEmpty { for sink in sinks.values { sink.reopen() } }
            // A process started while the last stop's pipes were still draining: the
            // stream objects stay open (no close() and open() between the two runs).
            stopPending = false
            for sink in sinks.values { sink.processStarting() }
            for (name, fd) in [("stdout", stdout), ("stderr", stderr)] {
                guard let fd else { continue }
                pipes[fd] = PipeState(fd: fd, pid: pid, stream: name)
                if !watch(fd) {
                    pipes[fd] = nil
                    close(fd)
                }
            }
        }
    }

    /// Publishes new lines through `lines` until `deadline` (monotonic seconds; 0 stops).
    public func follow(until deadline: Double) {
        followDeadline.store(deadline.bitPattern, ordering: .releasing)
    }

    /// Whether someone follows now (checked per chunk: nothing else is done when nobody does).
    private var following: Bool {
        let bits = followDeadline.load(ordering: .acquiring)
        return bits != 0 && Double(bitPattern: bits) > monotonicSeconds()
    }

    /// Answers with the last `count` lines of each stream (`stdout`, `stderr`), on the
    /// writer thread.
    public func tail(_ count: Int, reply: @escaping @Sendable ([String: [String]]) -> Void) {
        remote.post { [self] in
            var result: [String: [String]] = [:]
            for (name, sink) in sinks { result[name] = sink.lastLines(count) }
            reply(result)
        }
    }

    /// The configured streams, by name (`stdout`, `stderr`).
    public var configs: [(String, StreamConfig)] {
        [("stdout", stdoutConfig), ("stderr", stderrConfig)].compactMap { name, config in config.map { (name, $0) } }
    }

    /// The watcher stopped (Circus then calls a Python stream class's `close()`): once
    /// the stopped processes' pipes are drained, so that their last bytes come first.
    public func watcherStopped() {
        remote.post { [self] in
            if pipes.isEmpty {
                for sink in sinks.values { sink.watcherStopped() }
            } else {
                stopPending = true
            }
        }
    }

    /// The watcher got new streams: this writer ends once its pipes are drained.
    public func retire() {
        remote.post { [self] in
            retiring = true
            if pipes.isEmpty { loopBox.loop.stop() }
        }
    }

    /// Takes everything the pipes hold now, closes the files and ends the thread. For
    /// circusd's exit, once the children are gone.
    ///
    /// - Parameter deadline: monotonic seconds after which it stops waiting (a file on a
    ///   hung disk must not keep circusd from exiting).
    /// - Returns: false when the thread was still writing at the deadline (it is left to
    ///   the process's exit).
    public func finish(deadline: Double) -> Bool {
        remote.post { [self] in
            for fd in Array(pipes.keys) { service(fd, untilEmpty: true) }
            loopBox.loop.stop()
        }
        while !hasEnded {
            if monotonicSeconds() >= deadline { return false }
            usleep(1000)
        }
        thread?.join()
        thread = nil
        return true
    }

    // MARK: - Writer thread

    private func closeAll() {
        guard !finished else { return }
        finished = true
        for fd in Array(pipes.keys) { closePipe(fd) }
        for sink in sinks.values { sink.close() }
        sinks = [:]
        python?.shutdown()
        python = nil
    }

    private func closePipe(_ fd: Int32) {
        guard let state = pipes.removeValue(forKey: fd) else { return }
        paused.remove(fd)
        if let registration = state.registration { loopBox.loop.unregister(registration) }
        close(fd)
        guard pipes.isEmpty else { return }
        if stopPending {
            stopPending = false
            for sink in sinks.values { sink.watcherStopped() }
        }
        if retiring {
            loopBox.loop.stop()
        } else {
            // No process writes any more (the watcher stopped, or its processes all ended):
            // the files are opened again by the next process.
            for sink in sinks.values { sink.close() }
        }
    }

    /// Moves what pipe `fd` holds to its stream: at most 16 chunks per wakeup, so that one
    /// chatty process does not starve the watcher's others (epoll calls again while data is
    /// left), or everything with `untilEmpty`.
    private func service(_ fd: Int32, untilEmpty: Bool = false) {
        guard let state = pipes[fd], let sink = sinks[state.stream] else {
            closePipe(fd)
            return
        }
        var rounds = 0
        while untilEmpty || rounds < 16 {
            rounds += 1
            if sink.feedsPython, let python, python.isBlocked {
                // At exit, what the pipe holds is waited for; otherwise it waits in the pipe.
                guard untilEmpty else { return pause(fd) }
                python.waitUntilDrained()
            }
            let followed = following
            if !followed, !pipes[fd]!.partial.isEmpty { pipes[fd]!.partial = [] }
            if sink.canSplice, !followed {
                var length = 1 << 20
                var known = true
                if sink.needsChunkLength {
                    // The size rule needs the chunk's length; an empty pipe (or its end) is
                    // left to read() below, which tells them apart.
                    var available: Int32 = 0
                    known = ioctl(fd, UInt(FIONREAD), &available) == 0 && available > 0
                    length = Int(available)
                }
                if known { sink.prepare(chunkLength: length) }
                if known, sink.canSplice {
                    let n = sink.splice(from: fd, length: length)
                    if n > 0 { moved(n, untilEmpty: untilEmpty) }
                    // Less than asked for: the pipe is empty now (its capacity is below
                    // 1 MiB); epoll says when more comes, without one more call to find out.
                    if n > 0, n < length, !untilEmpty { return }
                    if n > 0 { continue }
                    if n == 0 { return endOfPipe(fd) }
                    if n == -Int(EAGAIN) { return }
                    // The file failed: the bytes are still in the pipe; read and count them below.
                }
            }
            let n = read(fd, buffer.baseAddress!, buffer.count)
            if n == 0 { return endOfPipe(fd) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { return }
                return endOfPipe(fd)
            }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            moved(n, untilEmpty: untilEmpty)
            sink.prepare(chunkLength: n)
            sink.write(chunk, pid: state.pid)
            if followed { publishLines(chunk, fd: fd) }
        }
    }

    /// Counts bytes moved in this turn. A turn that moved only a little (a program writing
    /// many small pieces, each waking this thread) ends with a nap of 200 µs, in which a
    /// busy writer's next pieces gather in its pipe (256 KiB hold 200 µs of 1.2 GB/s): the
    /// next turn moves them with one call instead of one wakeup each. Output is delayed by
    /// at most the nap; this thread is the watcher's own, so nothing else waits.
    private func moved(_ count: Int, untilEmpty: Bool) {
        movedThisTurn += count
        guard !turnWatched, !untilEmpty else { return }
        turnWatched = true
        loopBox.loop.atEndOfTurn { [unowned self] in
            if movedThisTurn < Self.smallTurn, !following { usleep(Self.batchingNap) }
            movedThisTurn = 0
            turnWatched = false
        }
    }

    private func endOfPipe(_ fd: Int32) {
        if let state = pipes[fd], !state.partial.isEmpty, following {
            onLines(FollowedLines(stream: state.stream, pid: state.pid, lines: [String(decoding: state.partial, as: UTF8.self)]))
        }
        closePipe(fd)
    }

    /// Splits a chunk into complete lines for followers; a line's start waits for its end.
    private func publishLines(_ chunk: UnsafeRawBufferPointer, fd: Int32) {
        guard var state = pipes[fd], let base = chunk.baseAddress else { return }
        var lines: [String] = []
        var start = 0
        while start < chunk.count {
            guard let found = memchr(base + start, Int32(UInt8(ascii: "\n")), chunk.count - start) else { break }
            let stop = base.distance(to: UnsafeRawPointer(found))
            if state.partial.isEmpty {
                lines.append(String(decoding: UnsafeRawBufferPointer(rebasing: chunk[start..<stop]), as: UTF8.self))
            } else {
                state.partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[start..<stop]))
                lines.append(String(decoding: state.partial, as: UTF8.self))
                state.partial = []
            }
            start = stop + 1
        }
        if start < chunk.count { state.partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[start...])) }
        pipes[fd] = state
        if !lines.isEmpty { onLines(FollowedLines(stream: state.stream, pid: state.pid, lines: lines)) }
    }
}
