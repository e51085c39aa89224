// Turns a SpawnRequest into the C attribute block and makes the one call to circus_spawn.

import CCircusSys
import Glibc

/// A started child: its pid and a pidfd that refers to exactly this process.
///
/// The pidfd is owned by whoever holds this value: hand it to a `ChildMonitor` (which closes
/// it after reaping), or reap with `waitForExit()` and `close()` yourself.
public struct SpawnedProcess: Hashable, Sendable {
    /// The child's process id.
    public let pid: Int32
    /// A close-on-exec pidfd for the child.
    public let pidfd: Int32

    /// Wraps an existing pid and pidfd.
    public init(pid: Int32, pidfd: Int32) {
        self.pid = pid
        self.pidfd = pidfd
    }

    /// Sends `signo` through the pidfd, so a recycled pid can never be hit.
    ///
    /// - Throws: `SystemError` with ESRCH once the process has been reaped.
    public func signal(_ signo: Int32) throws(SystemError) {
        let r = circus_pidfd_send_signal(pidfd, signo)
        if r < 0 { throw SystemError("pidfd_send_signal(\(pid), \(signo))", errno: -r) }
    }

    /// Reaps the process if it has ended, without blocking.
    ///
    /// - Returns: the status, or nil while it still runs.
    public func tryReap() throws(SystemError) -> ProcessExitStatus? {
        try ended("waitid(P_PIDFD, \(pid))") { circus_pidfd_wait(pidfd, 1, &$0, &$1) }
    }

    /// The exit status if the process has ended, without reaping it: it stays a zombie (its
    /// pid cannot be reused) until `tryReap` or `waitForExit`. Nil while it runs.
    public func peekExit() throws(SystemError) -> ProcessExitStatus? {
        try ended("waitid(P_PIDFD, \(pid), WNOWAIT)") { circus_pidfd_peek(pidfd, &$0, &$1) }
    }

    /// Runs a non-blocking `waitid` (1: ended, 0: running, or a negative errno), again on
    /// EINTR; a child that is not ours (ECHILD) has an unknown status.
    private func ended(_ what: @autoclosure () -> String, _ wait: (inout Int32, inout Int32) -> Int32)
        throws(SystemError) -> ProcessExitStatus?
    {
        var code: Int32 = 0
        var status: Int32 = 0
        while true {
            let r = wait(&code, &status)
            if r == 1 { return ProcessExitStatus(code: code, status: status) }
            if r == 0 { return nil }
            if r == -EINTR { continue }
            if r == -ECHILD { return .unknown }
            throw SystemError(what(), errno: -r)
        }
    }

    /// Blocks until the process ends and reaps it. For tests and the emergency stop; the
    /// daemon waits through `ChildMonitor` instead.
    public func waitForExit() throws(SystemError) -> ProcessExitStatus {
        var code: Int32 = 0
        var status: Int32 = 0
        while true {
            let r = circus_pidfd_wait(pidfd, 0, &code, &status)
            if r == 1 { return ProcessExitStatus(code: code, status: status) }
            if r == -EINTR || r == 0 { continue }
            if r == -ECHILD { return .unknown }
            throw SystemError("waitid(P_PIDFD, \(pid))", errno: -r)
        }
    }

    /// Closes the pidfd. Do it once, after reaping (an unreaped child stays a zombie).
    public func close() {
        _ = Glibc.close(pidfd)
    }
}

/// Starts processes with `circus_spawn` (clone + exec in C; see `circus_sys.h`).
///
/// A value type with no state, so the daemon can hold one, and tests can substitute a fake
/// behind a protocol of their own.
public struct Spawner: Sendable {
    /// Creates a spawner.
    public init() {}

    /// Starts `request`'s program and returns once it has been exec'd.
    ///
    /// Synchronous by design: the child's exec result is known before this returns, so a
    /// missing binary is an error here rather than a process that dies with 127.
    ///
    /// - Throws: `SpawnError` naming the failing step; nothing is left behind (no zombie, no
    ///   descriptor).
    public func spawn(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess {
        // Validate and resolve everything that can be checked without the child.
        var limits: [circus_rlimit] = []
        limits.reserveCapacity(request.resourceLimits.count)
        for limit in request.resourceLimits {
            limits.append(circus_rlimit(resource: limit.resource, value: limit.value ?? UInt64.max))
        }
        let keep = Array(Set(request.keepFDs)).sorted()
        if let bad = keep.first(where: { $0 < 3 }) {
            throw .invalid("cannot keep fd \(bad): use the stdin/stdout/stderr modes for 0-2")
        }
        var stdio: (Int32, Int32, Int32) = (0, 0, 0)
        for (i, mode) in [request.stdin, request.stdout, request.stderr].enumerated() {
            let value: Int32
            switch mode {
            case .inherit: value = CIRCUS_STDIO_INHERIT
            case .null: value = CIRCUS_STDIO_DEVNULL
            case .fd(let fd):
                guard fd >= 0 else { throw .invalid("invalid fd \(fd) for \(Self.stdioNames[i])") }
                value = fd
            }
            switch i {
            case 0: stdio.0 = value
            case 1: stdio.1 = value
            default: stdio.2 = value
            }
        }
        for entry in request.environment where entry.key.utf8.contains(UInt8(ascii: "=")) {
            throw .invalid("illegal environment variable name '\(entry.key)'")
        }
        if request.arguments.isEmpty { throw .invalid("empty argument list") }

        let paths = request.candidatePaths
        let block = try CStringBlock(
            paths: paths, arguments: request.arguments, environment: request.environment,
            workingDirectory: request.workingDirectory)
        defer { block.deallocate() }

        let groups = request.supplementaryGroups ?? []
        var pidfd: Int32 = -1
        var stage: Int32 = 0
        let pid: Int32 = limits.withUnsafeBufferPointer { limitBuffer in
            groups.withUnsafeBufferPointer { groupBuffer in
                keep.withUnsafeBufferPointer { keepBuffer in
                    var attr = circus_spawn_attr(
                        paths: block.paths,
                        path_count: paths.count,
                        argv: block.argv,
                        envp: block.envp,
                        cwd: block.cwd,
                        rlimits: limitBuffer.baseAddress,
                        rlimit_count: limitBuffer.count,
                        groups: groupBuffer.baseAddress,
                        group_count: groupBuffer.count,
                        set_groups: request.supplementaryGroups == nil ? 0 : 1,
                        gid: request.gid.map { Int64($0) } ?? -1,
                        uid: request.uid.map { Int64($0) } ?? -1,
                        umask_value: request.umask.map { Int32($0 & 0o777) } ?? -1,
                        stdio: stdio,
                        keep_fds: keepBuffer.baseAddress,
                        keep_fd_count: keepBuffer.count,
                        flags: (request.newSession ? CIRCUS_SPAWN_SETSID : 0)
                            | (request.raisesSignalBeforeExec ? CIRCUS_SPAWN_TEST_RAISE_BEFORE_EXEC : 0)
                    )
                    return circus_spawn(&attr, &pidfd, &stage)
                }
            }
        }
        if pid > 0 { return SpawnedProcess(pid: pid, pidfd: pidfd) }
        throw Self.error(for: request, paths: paths, errno: -pid, stage: stage)
    }

    static let stdioNames = ["stdin", "stdout", "stderr"]

    /// Words the child's failure the way the brief's examples do.
    static func error(for request: SpawnRequest, paths: [String], errno code: Int32, stage value: Int32) -> SpawnError {
        let stage = circus_spawn_stage_of(value)
        let index = Int(circus_spawn_index_of(value))
        let reason = errnoDescription(code)
        func make(_ c: SpawnError.Code, _ what: String) -> SpawnError {
            SpawnError(code: c, errno: code, message: "\(what): \(reason)")
        }
        switch UInt32(stage) {
        case CIRCUS_STAGE_CLONE.rawValue:
            return make(.clone, "clone")
        case CIRCUS_STAGE_SIGNALS.rawValue:
            return make(.signals, "reset signal \(index)")
        case CIRCUS_STAGE_STDIO.rawValue:
            let slot = min(max(index, 0), 2)
            let mode = [request.stdin, request.stdout, request.stderr][slot]
            if case .fd(let fd) = mode { return make(.stdio, "dup2(\(fd), \(slot))") }
            return make(.stdio, "open('/dev/null') for \(stdioNames[slot])")
        case CIRCUS_STAGE_CHDIR.rawValue:
            return make(.chdir, "chdir('\(request.workingDirectory ?? "")')")
        case CIRCUS_STAGE_SETSID.rawValue:
            return make(.setsid, "setsid()")
        case CIRCUS_STAGE_RLIMIT.rawValue:
            let name = index < request.resourceLimits.count ? request.resourceLimits[index].canonicalName : "?"
            return make(.setrlimit, "setrlimit(RLIMIT_\(name))")
        case CIRCUS_STAGE_SETGROUPS.rawValue:
            let list = (request.supplementaryGroups ?? []).map(String.init).joined(separator: ", ")
            return make(.setgroups, "setgroups([\(list)])")
        case CIRCUS_STAGE_SETGID.rawValue:
            return make(.setgid, "setgid(\(request.gid.map(String.init) ?? "?"))")
        case CIRCUS_STAGE_SETUID.rawValue:
            return make(.setuid, "setuid(\(request.uid.map(String.init) ?? "?"))")
        case CIRCUS_STAGE_KEEP_FD.rawValue:
            let keep = Array(Set(request.keepFDs)).sorted()
            return make(.keepFD, "keep fd \(index < keep.count ? String(keep[index]) : "?")")
        case CIRCUS_STAGE_CLOSE_FDS.rawValue:
            return make(.closeFDs, "close_range")
        default:
            return make(.exec, "exec '\(request.executable)'")
        }
    }
}

/// Every string the child needs, NUL-terminated in one allocation, with the pointer vectors
/// in front: one malloc per spawn instead of one per string.
struct CStringBlock {
    private let storage: UnsafeMutableRawPointer
    let paths: UnsafePointer<UnsafePointer<CChar>>
    let argv: UnsafePointer<UnsafePointer<CChar>?>
    let envp: UnsafePointer<UnsafePointer<CChar>?>
    let cwd: UnsafePointer<CChar>?

    init(
        paths: [String], arguments: [String], environment: [(key: String, value: String)],
        workingDirectory: String?
    ) throws(SpawnError) {
        let pointerCount = paths.count + (arguments.count + 1) + (environment.count + 1)
        var byteCount = 0
        for s in paths { byteCount += s.utf8.count + 1 }
        for s in arguments { byteCount += s.utf8.count + 1 }
        for e in environment { byteCount += e.key.utf8.count + e.value.utf8.count + 2 }
        if let workingDirectory { byteCount += workingDirectory.utf8.count + 1 }
        let pointerBytes = pointerCount * MemoryLayout<UnsafePointer<CChar>?>.stride
        storage = UnsafeMutableRawPointer.allocate(byteCount: pointerBytes + byteCount, alignment: 16)

        let vector = storage.bindMemory(to: UnsafePointer<CChar>?.self, capacity: pointerCount)
        let text = (storage + pointerBytes).assumingMemoryBound(to: CChar.self)
        var cursor = 0
        var failure: String?

        // Copies `s` (and an optional `=`-joined second part) at the cursor; returns its start.
        func append(_ s: String, _ more: String? = nil) -> UnsafePointer<CChar> {
            let start = text + cursor
            for (i, part) in [s, more].enumerated() {
                guard var part else { continue }
                if i == 1 { text[cursor] = CChar(UInt8(ascii: "=")); cursor += 1 }
                part.withUTF8 { bytes in
                    guard let base = bytes.baseAddress, bytes.count > 0 else { return }
                    if memchr(base, 0, bytes.count) != nil { failure = s }
                    UnsafeMutableRawPointer(text + cursor).copyMemory(from: base, byteCount: bytes.count)
                    cursor += bytes.count
                }
            }
            text[cursor] = 0
            cursor += 1
            return UnsafePointer(start)
        }

        var slot = 0
        let pathsStart = slot
        for s in paths { vector[slot] = append(s); slot += 1 }
        let argvStart = slot
        for s in arguments { vector[slot] = append(s); slot += 1 }
        vector[slot] = nil; slot += 1
        let envStart = slot
        for e in environment { vector[slot] = append(e.key, e.value); slot += 1 }
        vector[slot] = nil
        cwd = workingDirectory.map { append($0) }

        self.paths = UnsafeRawPointer(vector + pathsStart).assumingMemoryBound(to: UnsafePointer<CChar>.self)
        argv = UnsafePointer(vector + argvStart)
        envp = UnsafePointer(vector + envStart)
        if let failure {
            storage.deallocate()
            throw .invalid("embedded NUL byte in '\(failure.split(separator: "\0").joined(separator: "\\0"))'")
        }
    }

    func deallocate() { storage.deallocate() }
}
