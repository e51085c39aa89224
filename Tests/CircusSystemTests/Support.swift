// Helpers shared by the system-layer tests: pipes, reading a child's output, fd listings,
// and the zombie check every test ends with.

import CircusSystem
import Glibc
import Testing

/// All system-layer tests run one at a time: they count descriptors, block signals on their
/// thread and look for zombies, which concurrent tests would disturb.
@Suite(.serialized) struct CircusSystemTests {}

enum Support {
    /// A close-on-exec pipe: (read end, write end).
    static func pipe() -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        let r = fds.withUnsafeMutableBufferPointer { Glibc.pipe($0.baseAddress!) }
        precondition(r == 0, "pipe failed")
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    /// Two pipes with a byte waiting in each, so both are readable in the same loop turn.
    static func twoReadablePipes() -> (a: (read: Int32, write: Int32), b: (read: Int32, write: Int32)) {
        let a = pipe()
        let b = pipe()
        _ = write(a.write, "1", 1)
        _ = write(b.write, "2", 1)
        return (a, b)
    }

    /// Everything readable from `fd` until EOF; closes it.
    static func readAll(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        close(fd)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Runs `request` with stdout (and, if asked, stderr) on a pipe; returns the output and
    /// the exit status after reaping, and checks no zombie is left.
    static func run(_ request: SpawnRequest, captureStderr: Bool = false) throws -> (output: String, status: ProcessExitStatus) {
        var request = request
        let p = pipe()
        request.stdout = .fd(p.write)
        if captureStderr { request.stderr = .fd(p.write) }
        let child: SpawnedProcess
        do {
            child = try Spawner().spawn(request)
        } catch {
            close(p.read)
            close(p.write)
            throw error
        }
        close(p.write)
        let output = readAll(p.read)
        let status = try child.waitForExit()
        child.close()
        expectNoZombie(child.pid)
        return (output, status)
    }

    /// Kills (SIGKILL) and reaps a child, closing its pidfd.
    static func killAndReap(_ child: SpawnedProcess) {
        try? child.signal(SIGKILL)
        _ = try? child.waitForExit()
        child.close()
        expectNoZombie(child.pid)
    }

    /// `pid` is not a zombie child of this process (reaped, or never ours).
    static func expectNoZombie(_ pid: Int32, sourceLocation: SourceLocation = #_sourceLocation) {
        if let stat = ProcFS_stat(pid), stat.ppid == getpid() {
            #expect(stat.state != "Z", "pid \(pid) is a zombie", sourceLocation: sourceLocation)
        }
    }

    /// Our children that are zombies right now.
    static func zombieChildren() -> Set<Int32> {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        var result: Set<Int32> = []
        let me = getpid()
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if let pid = Int32(name), let stat = ProcFS_stat(pid), stat.ppid == me, stat.state == "Z" {
                result.insert(pid)
            }
        }
        return result
    }

    /// (state, ppid) of a pid from /proc, or nil when gone.
    static func ProcFS_stat(_ pid: Int32) -> (state: Character, ppid: Int32)? {
        guard let text = readFile("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(close, offsetBy: 2)...].split(separator: " ")
        guard fields.count > 1, let state = fields[0].first, let ppid = Int32(fields[1]) else { return nil }
        return (state, ppid)
    }

    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        return readAll(fd)
    }

    /// The descriptors open in this process.
    static func openFDs() -> [Int32] { fdNumbers(pid: nil) }

    /// The descriptors open in `pid` (nil: this process), read from /proc.
    static func fdNumbers(pid: Int32?) -> [Int32] {
        guard let dir = opendir(pid.map { "/proc/\($0)/fd" } ?? "/proc/self/fd") else { return [] }
        defer { closedir(dir) }
        let own = dirfd(dir)
        var fds: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if let fd = Int32(name), pid != nil || fd != own { fds.append(fd) }
        }
        return fds.sorted()
    }

    /// What an fd of this process points to (`pipe:[123]`, `anon_inode:[pidfd]`).
    static func fdTarget(_ fd: Int32) -> String { linkTarget("/proc/self/fd/\(fd)") }

    /// A symbolic link's target.
    static func linkTarget(_ path: String) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        let n = readlink(path, &buffer, 255)
        guard n > 0 else { return "" }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A fresh temporary directory.
    static func tempDirectory() -> String {
        var template = Array("/tmp/circus-system-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Removes a directory tree made by a test.
    static func removeTree(_ path: String) {
        _ = try? Spawner().spawn(SpawnRequest(executable: "/bin/rm", arguments: ["rm", "-rf", path])).waitAndClose()
    }

    /// Writes `text` to `path` with `mode`.
    static func writeFile(_ path: String, _ text: String, mode: mode_t = 0o644) {
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, mode)
        precondition(fd >= 0, "cannot create \(path)")
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fchmod(fd, mode)
        close(fd)
    }

    /// Sleeps for a short while (for tests that wait for a grandchild to appear).
    static func sleep(milliseconds: Int) {
        var ts = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
        var rest = timespec()
        while nanosleep(&ts, &rest) != 0 && errno == EINTR { ts = rest }
    }
}

struct SystemTestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension SpawnedProcess {
    /// Blocks until exit, closes the pidfd, returns the status.
    @discardableResult
    func waitAndClose() throws -> ProcessExitStatus {
        defer { close() }
        return try waitForExit()
    }
}
