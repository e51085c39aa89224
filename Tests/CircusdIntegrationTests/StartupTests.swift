// circusd's start-up checks, driven through the built binary: a second daemon on the
// same pidfile or the same ipc endpoint is refused (in the foreground and with --daemon,
// whose original process now waits for the verdict), the first one keeps serving, and
// the control socket refuses oversized requests without stopping.

import CircusProtocol
import Foundation
import OrderedCollections
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Runs circusd to completion with `arguments` in `dir` (deadline 10 s).
func runCircusd(_ arguments: [String], in dir: String, environment: [String: String] = [:]) async throws
    -> (status: Int32, stdout: String, stderr: String)
{
    let process = Process()
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    }
    process.executableURL = URL(fileURLWithPath: DaemonHarness.binary)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: dir)
    let out = "\(dir)/run-\(UUID().uuidString).out"
    let err = "\(dir)/run-\(UUID().uuidString).err"
    _ = FileManager.default.createFile(atPath: out, contents: nil)
    _ = FileManager.default.createFile(atPath: err, contents: nil)
    process.standardOutput = FileHandle(forWritingAtPath: out)
    process.standardError = FileHandle(forWritingAtPath: err)
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let deadline = ContinuousClock.now + .seconds(10)
    while process.isRunning {
        if ContinuousClock.now > deadline {
            kill(process.processIdentifier, SIGKILL)
            throw HarnessError("circusd \(arguments) did not exit within 10 s")
        }
        try await Task.sleep(for: .milliseconds(20))
    }
    return (process.terminationStatus, readFile(out), readFile(err))
}

/// Pids of live processes whose command line names `path` (a config only one run uses).
private func processes(naming path: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap(Int32.init).filter { pid in
        Proc.isAlive(pid) && (Proc.cmdline(pid) ?? []).contains(path)
    }
}

/// Waits until no process runs `config` (a refused daemon ends right after reporting);
/// kills any left after 5 s, by pid, and records the failure.
private func expectNoDaemon(running config: String, sourceLocation: SourceLocation = #_sourceLocation) async {
    let deadline = ContinuousClock.now + .seconds(5)
    while !processes(naming: config).isEmpty, ContinuousClock.now < deadline {
        try? await Task.sleep(for: .milliseconds(20))
    }
    let left = processes(naming: config)
    for pid in left { kill(pid, SIGKILL) }
    #expect(left.isEmpty, "a refused circusd kept running: \(left)", sourceLocation: sourceLocation)
}

/// The inode of a file (a socket file replaced by another daemon gets a new one).
private func inode(_ path: String) -> UInt64? {
    var info = stat()
    guard lstat(path, &info) == 0 else { return nil }
    return UInt64(info.st_ino)
}

private func owner(_ path: String) -> uid_t? {
    var info = stat()
    guard lstat(path, &info) == 0 else { return nil }
    return info.st_uid
}

@Suite("Start-up checks") struct StartupTests {
    @Test func versionNamesCircusAndCircusSwift() async throws {
        let dir = try DaemonHarness.makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try await runCircusd(["--version"], in: dir)
        #expect(run.status == 0)
        #expect(run.stdout == "0.19.0 (circus-swift 0.2.0)\n")
        #expect(run.stderr == "")
    }

    @Test(arguments: [false, true])
    func secondDaemonOnTheSamePidfileIsRefused(daemonize: Bool) async throws {
        try await withDaemon(sleeperINI, arguments: ["--pidfile", "%DIR%/circusd.pid"]) { h in
            let pidfile = "\(h.dir)/circusd.pid"
            #expect(readFile(pidfile) == "\(h.pid)\n")
            let second = "\(h.dir)/second.ini"
            try readFile(h.configPath).write(toFile: second, atomically: true, encoding: .utf8)
            let control = inode("\(h.dir)/ctl.sock")

            let run = try await runCircusd((daemonize ? ["--daemon"] : []) + ["--pidfile", pidfile, second], in: h.dir)
            #expect(run.status == 1)
            // Circus prints this one on stdout; with --daemon the original process relays it.
            #expect(run.stdout == "pid file '\(pidfile)' is in use: it names pid \(h.pid), which is running\n",
                    "stderr: \(run.stderr)")
            await expectNoDaemon(running: second)

            // The first daemon is untouched: same pidfile, same socket, and it answers.
            #expect(readFile(pidfile) == "\(h.pid)\n")
            #expect(inode("\(h.dir)/ctl.sock") == control)
            let state = try await h.status("sleeper")
            #expect(state == "active")
        }
    }

    enum Shared: String, CaseIterable, Sendable { case control, pubsub }

    @Test(arguments: Shared.allCases, [false, true])
    func secondDaemonOnTheSameIpcEndpointIsRefused(shared: Shared, daemonize: Bool) async throws {
        try await withDaemon(sleeperINI) { h in
            let control = "\(h.dir)/ctl.sock"
            let pubsub = "\(h.dir)/pub.sock"
            let before = (inode(control), inode(pubsub))
            #expect(before.0 != nil && before.1 != nil)
            let second = "\(h.dir)/second.ini"
            let endpoints = shared == .control
                ? (h.controlEndpoint, "ipc://\(h.dir)/pub2.sock")
                : ("ipc://\(h.dir)/ctl2.sock", h.pubsubEndpoint)
            try DaemonHarness.renderConfig(sleeperINI, dir: h.dir, control: endpoints.0, pubsub: endpoints.1)
                .write(toFile: second, atomically: true, encoding: .utf8)

            let run = try await runCircusd((daemonize ? ["--daemon"] : []) + [second], in: h.dir)
            #expect(run.status == 1)
            let option = shared == .control ? "endpoint" : "pubsub_endpoint"
            let endpoint = shared == .control ? h.controlEndpoint : h.pubsubEndpoint
            let message = "\(option): cannot bind \(endpoint): pid \(h.pid) is serving it (another circusd?)"
            if daemonize {
                #expect(run.stderr == "circusd: \(message)\n")
            } else {
                #expect(run.stderr.contains("[CRITICAL] \(message)\n"), "stderr: \(run.stderr)")
            }
            await expectNoDaemon(running: second)

            // Neither socket file was replaced, and the first daemon still serves both.
            #expect(inode(control) == before.0)
            #expect(inode(pubsub) == before.1)
            let mark = h.mark
            let state = try await h.status("sleeper")
            #expect(state == "active")
            expectOK(try await h.call("stop", ["name": "sleeper", "waiting": true]), keys: ["info"])
            try await h.waitEvent("watcher.sleeper.stop", since: mark)
        }
    }

    @Test(arguments: [false, true])
    func tcpEndpointInUseFailsAtBindWithAClearMessage(daemonize: Bool) async throws {
        let dir = try DaemonHarness.makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Someone else listens on a port of 127.0.0.1.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(listener, pointer, length) == 0 && listen(listener, 4) == 0
                    && getsockname(listener, pointer, &length) == 0
            }
        }
        #expect(bound)
        let port = UInt16(bigEndian: address.sin_port)

        let config = "\(dir)/tcp.ini"
        try DaemonHarness.renderConfig(markerINI, dir: dir, control: "tcp://127.0.0.1:\(port)", pubsub: "ipc://\(dir)/pub.sock")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let run = try await runCircusd((daemonize ? ["--daemon"] : []) + [config], in: dir)
        #expect(run.status == 1)
        let message = "endpoint: cannot bind tcp://127.0.0.1:\(port): Address already in use (another process listens on that port)"
        if daemonize {
            #expect(run.stderr == "circusd: \(message)\n")
        } else {
            #expect(run.stderr.contains("[CRITICAL] \(message)\n"), "stderr: \(run.stderr)")
        }
        await expectNoDaemon(running: config)
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/spawned"), "a watcher was started")
    }

    @Test(.enabled(if: getuid() == 0, "giving a socket file to another user needs root"))
    func endpointOwnerOwnsTheSocketFiles() async throws {
        guard let nobody = getpwnam("nobody")?.pointee.pw_uid else {
            Issue.record("no 'nobody' user on this system")
            return
        }
        try await withDaemon("[circus]\nendpoint_owner = nobody\n\n" + sleeperINI) { h in
            #expect(owner("\(h.dir)/ctl.sock") == nobody)
            #expect(owner("\(h.dir)/pub.sock") == nobody)
            let state = try await h.status("sleeper")
            #expect(state == "active")
        }
    }

    @Test func oversizedRequestIsDroppedAndOthersAreStillServed() async throws {
        try await withDaemon(sleeperINI) { h in
            _ = try await h.waitPids("sleeper", count: 2)
            // A 17 MiB stop request: libzmq drops the connection on reading the frame's
            // size, so no reply comes and the watcher is not stopped.
            let big = String(repeating: "x", count: 17 << 20)
            let oversized = JSONWriter.serialize(
                .object(["id": .string(big), "command": "stop", "properties": ["name": "sleeper"]]))
            #expect(oversized.count > 16 << 20)
            #expect(try await h.raw(oversized, timeout: .seconds(3)) == nil)
            // Another client is served, and the stop never happened.
            let state = try await h.status("sleeper")
            #expect(state == "active")
            // A request just under the limit is answered in full.
            let large = String(repeating: "y", count: (16 << 20) - 100)
            let reply = try await h.call("status", ["name": "sleeper"], id: .string(large), timeout: .seconds(20))
            #expect(reply["status"] == "active")
            #expect(reply["id"]?.stringValue == large)
        }
    }
}
