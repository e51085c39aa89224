// Helpers for the bus tests: temp directories, raw pthreads, and an epoll-driven
// server loop shaped like circusd's (one thread owns the ROUTER and waits in epoll).

import CircusBus
import Glibc
import Synchronization

// MARK: Temporary directories

/// Creates a fresh directory under /tmp, runs `body`, and removes the directory tree.
func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    var template = Array("/tmp/circus-bus-XXXXXX".utf8CString)
    let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard created != nil else { throw TestFailure("mkdtemp failed: errno \(errno)") }
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    defer { removeTree(path) }
    return try body(path)
}

/// `rm -rf path` with opendir/unlink/rmdir (no Foundation).
func removeTree(_ path: String) {
    if let directory = opendir(path) {
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            let child = path + "/" + name
            if entry.pointee.d_type == UInt8(DT_DIR) { removeTree(child) } else { unlink(child) }
        }
    }
    rmdir(path)
}

func fileExists(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: Threads

private final class ThreadBody {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// Starts a pthread running `body` (no Foundation `Thread`, no cooperative pool:
/// blocking zmq calls belong on a real thread).
func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(
        &thread, nil,
        { raw in
            Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, context)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    return thread
}

func join(_ thread: pthread_t) {
    pthread_join(thread, nil)
}

/// Runs `count` threads, each calling `body(index)`, and waits for all of them.
func runConcurrently(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let threads = (0..<count).map { index in startThread { body(index) } }
    threads.forEach(join)
}

/// Failures collected from several threads.
final class Failures: Sendable {
    private let list = Mutex<[String]>([])
    func record(_ failure: String) { list.withLock { $0.append(failure) } }
    var all: [String] { list.withLock { $0 } }
}

// MARK: The epoll-driven server loop

/// How the test server answers.
enum ServerMode: Sendable, CustomStringConvertible {
    /// Echo one-frame requests from inside the `drain` handler (synchronous commands).
    case echoInline
    /// Collect a batch, reply after `drain` returns, then drain again: the path where a
    /// forgotten post-reply drain loses wake-ups (asynchronous commands).
    case echoDeferred
    /// Like `echoDeferred`, but each batch is answered 2 ms later, as an asynchronous
    /// command finishing. libzmq processes its mailbox at most every ~1 ms when sending,
    /// so only a late reply reliably swallows the descriptor's signal for a request that
    /// arrived in the meantime: without the post-reply drain this mode stalls.
    case echoLate
    /// Never reply; only record (what circusd does with malformed or REQ messages).
    case silent

    var description: String {
        switch self {
        case .echoInline: "echoInline"
        case .echoDeferred: "echoDeferred"
        case .echoLate: "echoLate"
        case .silent: "silent"
        }
    }
}

/// epoll, reached through dlsym: Swift's Glibc module map does not include
/// <sys/epoll.h>, and the test target may depend only on CircusBus and CircusClient.
/// `struct epoll_event` is packed (12 bytes) on x86_64 and 16 bytes elsewhere, so
/// events live in a raw buffer.
struct Epoll {
    private typealias Create1 = @convention(c) (Int32) -> Int32
    private typealias Control = @convention(c) (Int32, Int32, Int32, UnsafeMutableRawPointer?) -> Int32
    private typealias Wait = @convention(c) (Int32, UnsafeMutableRawPointer?, Int32, Int32) -> Int32

    static let readable: UInt32 = 0x001  // EPOLLIN
    static let edgeTriggered: UInt32 = 1 << 31  // EPOLLET
    #if arch(x86_64)
        static let eventSize = 12
    #else
        static let eventSize = 16
    #endif
    private static let dataOffset = eventSize == 12 ? 4 : 8

    private let control: Control
    private let waitFunction: Wait
    let descriptor: Int32

    init() {
        func symbol<T>(_ name: String, as type: T.Type) -> T {
            guard let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else {
                preconditionFailure("dlsym(\(name)) failed")
            }
            return unsafeBitCast(address, to: type)
        }
        let create = symbol("epoll_create1", as: Create1.self)
        control = symbol("epoll_ctl", as: Control.self)
        waitFunction = symbol("epoll_wait", as: Wait.self)
        descriptor = create(0o2000000)  // EPOLL_CLOEXEC
        precondition(descriptor >= 0, "epoll_create1 failed: errno \(errno)")
    }

    func add(_ fd: Int32, events: UInt32) {
        withEvent(events: events, fd: fd) { precondition(control(descriptor, 1, fd, $0) == 0, "EPOLL_CTL_ADD failed") }
    }

    func remove(_ fd: Int32) {
        withEvent(events: 0, fd: fd) { _ = control(descriptor, 2, fd, $0) }
    }

    /// Blocks until at least one descriptor is ready; returns the ready descriptors.
    func wait() -> [Int32] {
        var buffer = [UInt8](repeating: 0, count: Self.eventSize * 8)
        while true {
            let count = buffer.withUnsafeMutableBytes { waitFunction(descriptor, $0.baseAddress, 8, -1) }
            if count < 0 {
                precondition(errno == EINTR, "epoll_wait failed: errno \(errno)")
                continue
            }
            return (0..<Int(count)).map { index in
                buffer.withUnsafeBytes {
                    $0.loadUnaligned(fromByteOffset: index * Self.eventSize + Self.dataOffset, as: Int32.self)
                }
            }
        }
    }

    func close() {
        _ = Glibc.close(descriptor)
    }

    private func withEvent(events: UInt32, fd: Int32, _ body: (UnsafeMutableRawPointer) -> Void) {
        var event = [UInt8](repeating: 0, count: Self.eventSize)
        event.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: events, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: fd, toByteOffset: Self.dataOffset, as: Int32.self)
            body(raw.baseAddress!)
        }
    }
}

/// A ROUTER served by one thread blocked in `epoll_wait`, exactly like circusd's loop.
///
/// The loop thread owns the `ControlServer` while running; the test thread touches it
/// again only after `stop()` joined the thread.
final class EpollServer: @unchecked Sendable {
    let server: ControlServer
    let mode: ServerMode
    let edgeTriggered: Bool
    var endpoint: String { server.boundEndpoint }

    /// Loop-thread state; read only after `stop()`.
    private(set) var received: [ControlMessage] = []
    private(set) var replyFailures: [BusError] = []
    private(set) var loopError: BusError?

    /// A pipe whose write end stops the loop (eventfd is not in the Glibc module either).
    private let stopPipe: (read: Int32, write: Int32)
    private var thread: pthread_t?

    init(context: ZMQContext, endpoint: String, mode: ServerMode, edgeTriggered: Bool = true) throws {
        server = try ControlServer(context: context, endpoint: endpoint)
        self.mode = mode
        self.edgeTriggered = edgeTriggered
        var fds: [Int32] = [-1, -1]
        precondition(pipe(&fds) == 0, "pipe failed")
        stopPipe = (fds[0], fds[1])
    }

    deinit {
        close(stopPipe.read)
        close(stopPipe.write)
    }

    func start() {
        thread = startThread { [self] in loop() }
    }

    /// Wakes the loop through its pipe, joins the thread and closes the server.
    func stop() {
        if let thread {
            var byte: UInt8 = 1
            _ = write(stopPipe.write, &byte, 1)
            join(thread)
        }
        thread = nil
        server.close()
    }

    private func loop() {
        let epoll = Epoll()
        defer { epoll.close() }
        epoll.add(server.fileDescriptor, events: Epoll.readable | (edgeTriggered ? Epoll.edgeTriggered : 0))
        epoll.add(stopPipe.read, events: Epoll.readable)
        defer { epoll.remove(server.fileDescriptor) }
        while true {
            let ready = epoll.wait()
            if ready.contains(stopPipe.read) { return }
            do {
                try serve()
            } catch {
                loopError = error
                return
            }
        }
    }

    private func serve() throws(BusError) {
        switch mode {
        case .echoInline:
            try server.drain { message in
                received.append(message)
                guard message.frames.count == 1 else { return }
                replying { () throws(BusError) in try server.reply(to: message.identity, message.frames[0]) }
            }
        case .silent:
            try server.drain { received.append($0) }
        case .echoDeferred, .echoLate:
            // Reply outside the handler, then drain again, until a drain finds nothing:
            // each reply may have swallowed the descriptor's signal for a new request.
            while true {
                var batch: [ControlMessage] = []
                try server.drain { batch.append($0) }
                if batch.isEmpty { return }
                received += batch
                if mode == .echoLate { usleep(2000) }
                for message in batch where message.frames.count == 1 {
                    replying { () throws(BusError) in try server.reply(to: message.identity, message.frames[0]) }
                }
            }
        }
    }

    private func replying(_ send: () throws(BusError) -> Void) {
        do { try send() } catch { replyFailures.append(error) }
    }
}

/// Single-threaded driving of a server the test owns: drain (and poll its descriptor
/// between drains) until `count` messages arrived or `timeout` passes.
func receiveMessages(
    _ server: ControlServer, count: Int, timeout: Duration = .seconds(5)
) throws -> [ControlMessage] {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    var messages: [ControlMessage] = []
    while true {
        try server.drain { messages.append($0) }
        if messages.count >= count || clock.now >= deadline { return messages }
        var poller = pollfd(fd: server.fileDescriptor, events: Int16(POLLIN), revents: 0)
        _ = poll(&poller, 1, 20)
    }
}

/// Whether `fd` polls readable within `milliseconds` (without reading it).
func descriptorBecomesReadable(_ fd: Int32, within milliseconds: Int32) -> Bool {
    var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&poller, 1, milliseconds) == 1
}

/// Percentile of sorted durations, in microseconds.
func percentileMicroseconds(_ sorted: [Duration], _ fraction: Double) -> Double {
    let index = min(sorted.count - 1, Int(Double(sorted.count) * fraction))
    let (seconds, attoseconds) = sorted[index].components
    return Double(seconds) * 1e6 + Double(attoseconds) / 1e12
}
