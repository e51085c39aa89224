// The log sink's writer thread: lines keep their order, a full queue drops lines and says
// how many, reopen goes through the same queue, flush writes everything queued.

@testable import CircusDaemon
import CircusSystem
import Glibc
import Logging
import Testing

@Suite("Log writer")
struct LogWriterTests {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func tempDirectory() throws -> String {
        var template = Array("/tmp/circus-logw-XXXXXX".utf8CString)
        guard let dir = mkdtemp(&template) else { throw Failure("mkdtemp failed") }
        return String(cString: dir)
    }

    static func remove(_ dir: String, files: [String]) {
        for file in files { unlink(dir + "/" + file) }
        rmdir(dir)
    }

    static func readFile(_ path: String) -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = Glibc.read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The message part of each line (after `circus[pid] [LEVEL] `).
    static func messages(_ text: String) -> [String] {
        text.split(separator: "\n").map { line in
            let parts = line.split(separator: "] ", maxSplits: 2, omittingEmptySubsequences: false)
            return parts.count == 3 ? String(parts[2]) : String(line)
        }
    }

    /// A FIFO in `dir` whose read end the test holds without reading, with a 4 KiB pipe:
    /// the log writer blocks once it is full. Returns the path, the read end and the size.
    static func unreadFIFO(in dir: String) throws -> (path: String, reader: Int32, pipeSize: Int32) {
        let path = dir + "/fifo"
        guard mkfifo(path, 0o600) == 0 else { throw Failure("mkfifo: \(errno)") }
        let reader = open(path, O_RDONLY | O_NONBLOCK)
        guard reader >= 0 else { throw Failure("open fifo: \(errno)") }
        let pipeSize = fcntl(reader, 1031 /* F_SETPIPE_SZ */, 4096)
        guard pipeSize > 0 else {
            close(reader)
            throw Failure("F_SETPIPE_SZ: \(errno)")
        }
        return (path, reader, pipeSize)
    }

    @Test func linesFromSeveralThreadsKeepEachThreadsOrderAndFlushWritesThemAll() throws {
        let dir = try Self.tempDirectory()
        defer { Self.remove(dir, files: ["circus.log"]) }
        let sink = try LogSink(output: dir + "/circus.log")
        let threads = (0..<2).map { t in
            Thread.start {
                let logger = Logger(label: "circus") { CircusLogHandler(label: $0, sink: sink, level: .info) }
                for i in 0..<500 { logger.info("t\(t) line \(i)") }
            }
        }
        for thread in threads { thread.join() }
        sink.flush()
        let lines = Self.messages(Self.readFile(dir + "/circus.log"))
        #expect(lines.count == 1000)
        for t in 0..<2 {
            #expect(lines.filter { $0.hasPrefix("t\(t) ") } == (0..<500).map { "t\(t) line \($0)" })
        }
        #expect(sink.droppedCount == 0)
    }

    @Test func aBlockedWriterDropsWhatDoesNotFitAndSaysHowMany() throws {
        let dir = try Self.tempDirectory()
        defer { Self.remove(dir, files: ["fifo"]) }
        let (path, reader, pipeSize) = try Self.unreadFIFO(in: dir)
        defer { close(reader) }

        let sink = try LogSink(output: path, capacity: 4)
        let logger = Logger(label: "circus") { CircusLogHandler(label: $0, sink: sink, level: .info) }
        // One line longer than the pipe: the writer fills the pipe and blocks on the rest.
        let big = String(repeating: "x", count: Int(pipeSize) + 100)
        logger.info("\(big)")
        var available: Int32 = 0
        let deadline = EventLoop.monotonicNow() + 10
        while ioctl(reader, UInt(FIONREAD), &available) == 0, available < pipeSize, EventLoop.monotonicNow() < deadline {
            usleep(1000)
        }
        #expect(available == pipeSize)
        // The big line is still being written (it counts), three more fit, five do not.
        for i in 1...8 { logger.info("line \(i)") }
        #expect(sink.droppedCount == 5)

        // Read until the notice arrives: the writer catches up once the pipe drains.
        var text: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        let readDeadline = EventLoop.monotonicNow() + 10
        while !String(decoding: text, as: UTF8.self).contains("dropped"), EventLoop.monotonicNow() < readDeadline {
            let n = Glibc.read(reader, &chunk, chunk.count)
            if n > 0 { text += chunk[..<n] } else { usleep(1000) }
        }
        logger.info("after")
        sink.flush()
        while true {
            let n = Glibc.read(reader, &chunk, chunk.count)
            if n <= 0 { break }
            text += chunk[..<n]
        }
        #expect(Self.messages(String(decoding: text, as: UTF8.self)) == [
            big, "line 1", "line 2", "line 3", "5 log lines dropped: the log output was too slow", "after",
        ])
    }

    @Test func aDropNoticeIsWrittenOnceTheWriterCatchesUp() throws {
        let dir = try Self.tempDirectory()
        defer { Self.remove(dir, files: ["fifo"]) }
        let (path, reader, pipeSize) = try Self.unreadFIFO(in: dir)
        defer { close(reader) }
        let sink = try LogSink(output: path, capacity: 2)
        let logger = Logger(label: "circus") { CircusLogHandler(label: $0, sink: sink, level: .info) }
        let big = String(repeating: "y", count: Int(pipeSize) + 100)
        logger.info("\(big)")
        var available: Int32 = 0
        let deadline = EventLoop.monotonicNow() + 10
        while ioctl(reader, UInt(FIONREAD), &available) == 0, available < pipeSize, EventLoop.monotonicNow() < deadline {
            usleep(1000)
        }
        logger.info("kept")
        logger.info("lost")
        #expect(sink.droppedCount == 1)
        // Drain the pipe until "kept" is written: the queue is empty again, and the writer
        // wrote the notice right after it (nothing came later to carry it).
        var text: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        let readDeadline = EventLoop.monotonicNow() + 10
        while !String(decoding: text, as: UTF8.self).contains("1 log line dropped"), EventLoop.monotonicNow() < readDeadline {
            let n = Glibc.read(reader, &chunk, chunk.count)
            if n > 0 { text += chunk[..<n] } else { usleep(1000) }
        }
        #expect(Self.messages(String(decoding: text, as: UTF8.self)) == [
            big, "kept", "1 log line dropped: the log output was too slow",
        ])
    }

    @Test func reopenKeepsItsPlaceAmongTheLines() throws {
        let dir = try Self.tempDirectory()
        defer { Self.remove(dir, files: ["circus.log", "circus.log.1"]) }
        let sink = try LogSink(output: dir + "/circus.log")
        let logger = Logger(label: "circus") { CircusLogHandler(label: $0, sink: sink, level: .info) }
        logger.info("before")
        sink.flush()
        // logrotate moves the file away, then sends USR1.
        #expect(rename(dir + "/circus.log", dir + "/circus.log.1") == 0)
        logger.info("still to the old file")
        sink.reopen()
        logger.info("to the new file")
        sink.flush()
        #expect(Self.messages(Self.readFile(dir + "/circus.log.1")) == ["before", "still to the old file"])
        #expect(Self.messages(Self.readFile(dir + "/circus.log")) == ["to the new file"])
    }
}

/// A joinable thread for the tests (the test bodies must not block the cooperative pool
/// waiting on each other).
final class Thread: @unchecked Sendable {
    private var handle = pthread_t()
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    static func start(_ body: @escaping @Sendable () -> Void) -> Thread {
        let thread = Thread()
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        pthread_create(&thread.handle, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box)
        return thread
    }

    func join() { pthread_join(handle, nil) }
}
