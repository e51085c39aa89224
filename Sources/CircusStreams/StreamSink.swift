// One configured stream (a watcher's stdout or stderr) on its writer thread: where the
// bytes go, how they are rendered, when the file rotates, and what `tail` keeps.
//
// File streams write at the file's end through an explicit offset (lseek SEEK_END, then
// splice or pwrite at that offset) rather than with O_APPEND: splice(2) refuses O_APPEND
// files, and the explicit end offset still appends after anyone else writing to the file
// (the other stream of the watcher, logrotate's copytruncate).

import CCircusStreams
import CircusConfig
import Glibc

/// Where a sink's bytes go and how much of them it has lost.
final class StreamSink {
    let config: StreamConfig
    /// `stdout` or `stderr`, as Circus names the stream in its data dicts.
    let name: String
    let watcher: String
    /// The file (file classes); a temporary file when the configuration names none.
    private(set) var path: String?
    private var fd: Int32 = -1
    /// (st_dev, st_ino) of the open file (WatchedFileStream reopens when the path's differ).
    private var identity: (dev: UInt64, ino: UInt64) = (0, 0)
    private var timed: TimedRollover?
    private let colorPrefixCode: Int
    /// What `tail` returns.
    private var ring = OutputRing()
    /// File range written by splice and not yet copied into `ring` (copied when `tail`
    /// asks, or before the file is closed).
    private var unread: (start: Int, end: Int)?
    /// The current failure, reported once when it begins; nil while writes succeed.
    private var failure: String?
    private var lostBytes = 0
    private var nextOpenAttempt = 0.0
    private let report: (_ error: Bool, _ message: String) -> Void
    /// A scratch buffer for rendered output, reused for every chunk.
    private var rendered: [UInt8] = []

    /// The helper that runs a Python stream class (shared by the watcher's two streams).
    private let python: PythonStreamHelper?
    /// Whether this stream's output goes to the Python helper.
    var feedsPython: Bool { python != nil }

    init(
        config: StreamConfig, name: String, watcher: String, python: PythonStreamHelper?,
        report: @escaping (_ error: Bool, _ message: String) -> Void
    ) {
        self.config = config
        self.name = name
        self.watcher = watcher
        self.python = config.kind.pythonClass != nil ? python : nil
        self.report = report
        colorPrefixCode = config.color ?? Int.random(in: 1...7)
        if config.kind.writesFile {
            path = config.filename ?? Self.temporaryFile()
            openFile()
            if let unit = config.rotateWhen, config.kind == .timedRotatingFile {
                var st = stat()
                let modified = path.flatMap { stat($0, &st) == 0 ? Int(st.st_mtim.tv_sec) : nil }
                timed = TimedRollover(
                    unit: unit, rotateInterval: config.rotateInterval, utc: config.utc, fileModified: modified,
                    now: wallClock().seconds)
            }
        }
    }

    /// Whether pipe bytes can go to the file untouched, by splice(2).
    var canSplice: Bool {
        config.kind.writesFile && config.timeFormat == nil && fd >= 0 && failure == nil && !spliceUnsupported
    }
    /// The file refused splice (a device such as /dev/full, a filesystem without it):
    /// read and write instead.
    private var spliceUnsupported = false

    /// Whether the size rule needs each chunk's length before it is written.
    var needsChunkLength: Bool { config.kind == .file && config.maxBytes > 0 }

    // MARK: Files

    /// Circus's `tempfile.mkstemp()`: `$TMPDIR/tmpXXXXXXXX`.
    private static func temporaryFile() -> String? {
        let dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array((dir + "/tmpXXXXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { return nil }
        Glibc.close(fd)
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func openFile() {
        guard let path else {
            fail("cannot create a temporary file for \(name): \(errnoText(errno))")
            return
        }
        // Read access lets `tail` copy back what splice wrote; a write-only file still works.
        var newFD = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o666)
        if newFD < 0, errno == EACCES { newFD = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o666) }
        if newFD < 0 {
            fail("cannot open \(path): \(errnoText(errno))")
            nextOpenAttempt = monotonicSeconds() + 1
            return
        }
        fd = newFD
        var st = stat()
        if fstat(fd, &st) == 0 { identity = (UInt64(st.st_dev), UInt64(st.st_ino)) }
    }

    private func closeFile() {
        guard fd >= 0 else { return }
        copyUnreadIntoRing()
        Glibc.close(fd)
        fd = -1
    }

    /// Closes the file (no process writes to it any more, the watcher's streams were
    /// replaced, or circusd exits). Circus closes its streams when the watcher stops and
    /// opens the path again when it starts, so a file removed meanwhile is made again.
    func close() { closeFile() }

    /// Carries over what `tail` returns from the sink this one replaces (closed already,
    /// so everything it wrote is in its lines).
    func takeHistory(of old: StreamSink) {
        ring = old.ring
    }

    /// Opens the file again for a new process if it was closed.
    func reopen() {
        guard config.kind.writesFile, fd < 0 else { return }
        openFile()
    }

    /// A process starts: a Python class's `open()` is called if the watcher (re)started
    /// since its last `close()`, as Circus calls it when the watcher starts.
    func processStarting() {
        python?.open(name)
    }

    /// The watcher stopped: a Python class's `close()` is called, as Circus calls it.
    func watcherStopped() {
        python?.close(name)
    }

    /// Opens again a file that could not be opened, at most once a second.
    private func reopenIfDue() {
        guard config.kind.writesFile, fd < 0, monotonicSeconds() >= nextOpenAttempt else { return }
        openFile()
    }

    /// Rotations and reopenings due before a chunk of `length` bytes is written.
    func prepare(chunkLength length: Int) {
        guard config.kind.writesFile else { return }
        reopenIfDue()
        guard fd >= 0 else { return }
        switch config.kind {
        case .file:
            if config.maxBytes > 0 {
                let size = Int(lseek(fd, 0, SEEK_END))
                if size >= 0, size + length >= config.maxBytes { rotateBySize() }
            }
        case .watchedFile:
            var st = stat()
            let now: (UInt64, UInt64) = stat(path!, &st) == 0 ? (UInt64(st.st_dev), UInt64(st.st_ino)) : (UInt64.max, UInt64.max)
            if now != identity {
                closeFile()
                openFile()
            }
        case .timedRotatingFile:
            let now = wallClock().seconds
            if timed?.isDue(now) == true { rotateByTime(now: now) }
        case .stdout, .fancyStdout, .python:
            break
        }
    }

    /// FileStream's rollover: `name.(n-1)` → `name.n` ... `name` → `name.1`, keeping
    /// backup_count files; with none kept the file is only reopened (and keeps growing).
    private func rotateBySize() {
        closeFile()
        guard let path else { return }
        if config.backupCount > 0 {
            if config.backupCount > 1 {
                for i in stride(from: config.backupCount - 1, through: 1, by: -1) {
                    let source = "\(path).\(i)"
                    let target = "\(path).\(i + 1)"
                    if access(source, F_OK) == 0 {
                        unlink(target)
                        rename(source, target)
                    }
                }
            }
            unlink(path + ".1")
            if rename(path, path + ".1") != 0, errno != ENOENT {
                fail("cannot rotate \(path): \(errnoText(errno))")
            }
        }
        openFile()
    }

    /// TimedRotatingFileStream's rollover: the file takes the suffix of the period that
    /// ended, old ones beyond backup_count are deleted.
    private func rotateByTime(now: Int) {
        guard var schedule = timed, let path else { return }
        closeFile()
        let target = schedule.rotatedName(of: path, now: now)
        unlink(target)
        if access(path, F_OK) == 0, rename(path, target) != 0 {
            fail("cannot rotate \(path) to \(target): \(errnoText(errno))")
        }
        if config.backupCount > 0 {
            for old in schedule.filesToDelete(of: path, backupCount: config.backupCount) { unlink(old) }
        }
        openFile()
        schedule.advance(now: now)
        timed = schedule
    }

    // MARK: Writing

    /// Moves what the pipe holds straight into the file (no time_format, nobody following).
    ///
    /// - Returns: bytes moved; 0 at end of file; -EAGAIN when the pipe is empty; another
    ///   negative errno when the file could not be written (the bytes stay in the pipe).
    func splice(from pipe: Int32, length: Int) -> Int {
        let end = lseek(fd, 0, SEEK_END)
        guard end >= 0 else {
            spliceUnsupported = true
            return -Int(ESPIPE)
        }
        let start = Int(end)
        var offset = Int64(end)
        let n = circus_splice_to_file(pipe, fd, &offset, length)
        if n > 0 {
            if let range = unread, range.end == start {
                unread = (range.start, start + n)
            } else {
                copyUnreadIntoRing()
                unread = (start, start + n)
            }
            recovered()
            return n
        }
        if n == 0 { return 0 }
        let code = Int32(-n)
        if code == EAGAIN { return -Int(EAGAIN) }
        if code == EINVAL {
            spliceUnsupported = true
            return -Int(EINVAL)
        }
        fail("cannot write to \(path ?? "?"): \(errnoText(code))")
        return -Int(code)
    }

    /// Writes one chunk read from `pid`'s pipe in Circus's format for this class.
    func write(_ chunk: UnsafeRawBufferPointer, pid: Int32) {
        copyUnreadIntoRing()  // what splice wrote before comes first
        ring.append(chunk)
        switch config.kind {
        case .file, .watchedFile, .timedRotatingFile:
            guard fd >= 0 else {
                lost(chunk.count)
                return
            }
            if let format = config.timeFormat {
                rendered.removeAll(keepingCapacity: true)
                let now = wallClock()
                appendPrefixed(chunk, prefix: linePrefix(time: PythonStrftime.format(
                    format, seconds: now.seconds, microseconds: now.microseconds), pid: pid), to: &rendered)
                rendered.withUnsafeBytes { writeToFile($0, original: chunk.count) }
            } else {
                writeToFile(chunk, original: chunk.count)
            }
        case .stdout:
            writeToStdout(chunk)
        case .python:
            python?.write(chunk, stream: name, pid: pid)
        case .fancyStdout:
            rendered.removeAll(keepingCapacity: true)
            let now = wallClock()
            let time = PythonStrftime.format(
                config.timeFormat ?? StreamConfig.fancyDefaultTimeFormat, seconds: now.seconds,
                microseconds: now.microseconds)
            appendFancy(chunk, colorPrefix: colorEscape(colorPrefixCode) + linePrefix(time: time, pid: pid), to: &rendered)
            rendered.withUnsafeBytes { writeToStdout($0) }
        }
    }

    private func writeToFile(_ bytes: UnsafeRawBufferPointer, original: Int) {
        // A file that cannot seek (a FIFO, a terminal) is written in order.
        var offset = lseek(fd, 0, SEEK_END)
        var done = 0
        while done < bytes.count {
            let n = offset < 0
                ? Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
                : pwrite(fd, bytes.baseAddress! + done, bytes.count - done, offset)
            if n < 0 {
                if errno == EINTR { continue }
                fail("cannot write to \(path ?? "?"): \(errnoText(errno))")
                lost(original)
                return
            }
            done += n
            if offset >= 0 { offset += off_t(n) }
        }
        recovered()
    }

    private func writeToStdout(_ bytes: UnsafeRawBufferPointer) {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(1, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                fail("cannot write to circusd's stdout: \(errnoText(errno))")
                lost(bytes.count - done)
                return
            }
            done += n
        }
        recovered()
    }

    /// Counts bytes dropped while the stream cannot be written (never silently: the count
    /// is reported when writing works again).
    func lost(_ count: Int) {
        lostBytes += count
    }

    private func fail(_ message: String) {
        guard failure == nil else { return }
        failure = message
        report(true, "\(watcher) \(name) stream: \(message); its output is dropped until writing works again")
    }

    private func recovered() {
        guard let failed = failure else { return }
        failure = nil
        report(false, "\(watcher) \(name) stream writes again (after: \(failed)); \(lostBytes) bytes were lost")
        lostBytes = 0
    }

    // MARK: tail

    private func copyUnreadIntoRing() {
        guard let range = unread else { return }
        unread = nil
        guard fd >= 0 else { return }
        let length = min(range.end - range.start, OutputRing.capacity)
        var buffer = [UInt8](repeating: 0, count: length)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, length, off_t(range.end - length)) }
        if n > 0 { buffer.withUnsafeBytes { ring.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) } }
    }

    /// The last `count` lines captured.
    func lastLines(_ count: Int) -> [String] {
        copyUnreadIntoRing()
        return ring.lastLines(count)
    }
}

func errnoText(_ code: Int32) -> String {
    String(cString: strerror(code))
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
