// Access control over time: a tcp peer's messages wait for the owner lookup (held by the
// test through CIRCUSD_TEST_TCP_OWNER_GATE, a FIFO the lookup reads a byte from), a
// recycled descriptor does not pass one peer's identity to the next, refusals are logged
// once per peer, group changes and reloadconfig change the grants without a restart.

import CircusBus
import CircusClient
import CircusProtocol
import Foundation
import OrderedCollections
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The gate FIFO of a rig: lookups wait at it while it exists.
private func makeGate(_ rig: AccessRig) throws -> String {
    let gate = rig.dir + "/owner-gate"
    guard mkfifo(gate, 0o600) == 0 else { throw HarnessError("mkfifo: errno \(errno)") }
    return gate
}

/// Opens the write end of `fifo` once the lookup worker holds its read end (it waits at
/// the gate); throws after 10 s without one.
private func openWhenLookupWaits(_ fifo: String) async throws -> Int32 {
    let deadline = ContinuousClock.now + .seconds(10)
    while ContinuousClock.now < deadline {
        let fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        if fd >= 0 { return fd }
        guard errno == ENXIO else { throw HarnessError("open \(fifo): errno \(errno)") }
        try await Task.sleep(for: .milliseconds(5))
    }
    throw HarnessError("the owner lookup never reached the gate")
}

/// Lets one held lookup go on.
private func release(_ fd: Int32) {
    var byte: UInt8 = 1
    _ = write(fd, &byte, 1)
    close(fd)
}

/// The daemon's descriptors that hold established connections to `port` (the control
/// endpoint), from /proc/net/tcp and /proc/<pid>/fd.
private func connectionDescriptors(daemon pid: Int32, port: Int) -> [Int32] {
    let table = readProcFile("/proc/net/tcp")
    var inodes: Set<String> = []
    for line in table.split(separator: "\n").dropFirst() {
        let fields = line.split(separator: " ")
        // sl local remote st ... uid timeout inode
        guard fields.count > 9, fields[3] == "01",
              let local = fields[1].split(separator: ":").last, Int(local, radix: 16) == port
        else { continue }
        inodes.insert(String(fields[9]))
    }
    var found: [Int32] = []
    let dir = "/proc/\(pid)/fd"
    for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/\(name)"),
              target.hasPrefix("socket:["), inodes.contains(String(target.dropFirst(8).dropLast()))
        else { continue }
        if let fd = Int32(name) { found.append(fd) }
    }
    return found.sorted()
}

/// The whole of a /proc file (they report no size: read until the end).
private func readProcFile(_ path: String) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += chunk[..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Waits until `condition` returns a value (deadline 10 s).
private func poll<T>(_ what: String, _ condition: () async throws -> T?) async throws -> T {
    let deadline = ContinuousClock.now + .seconds(10)
    while true {
        if let value = try await condition() { return value }
        if ContinuousClock.now > deadline { throw HarnessError("timed out waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(20))
    }
}

/// A connection kept by the test; used from one thread at a time.
private final class Peer: @unchecked Sendable {
    let connection: CircusConnection
    init(_ connection: CircusConnection) { self.connection = connection }
}

private let gateEnvironment = ["CIRCUSD_TEST_TCP_OWNER_GATE": "%DIR%/owner-gate"]

@Suite("Access control over time", .serialized, .enabled(if: isRoot, "needs root: runs circusd as root and clients as nobody (runuser)"))
struct AccessControlLifecycleTests {
    @Test func aPeersMessagesWaitForItsLookupInOrderWhileAnotherPeerIsServed() async throws {
        try await withRig(accessConfig(), ipc: false, environment: gateEnvironment) { rig in
            // B connects and is identified before the gate exists.
            let b = try Peer(CircusConnection(endpoint: rig.endpoint, timeout: .seconds(10)))
            defer { b.connection.close() }
            let request = Array(AccessRig.request("list", id: "b1").utf8)
            let first = try await onThread { try JSONParser.parse(b.connection.call(request)) }
            expectOK(first, keys: ["watchers"])

            let gate = try makeGate(rig)
            defer { unlink(gate) }
            // A sends three requests on a new connection; its lookup waits at the gate.
            let a = rig.startClient([
                AccessRig.request("incr", ["name": "app", "waiting": true], id: "a1"),
                AccessRig.request("incr", ["name": "app", "waiting": true], id: "a2"),
                AccessRig.request("numprocesses", ["name": "app"], id: "a3"),
            ])
            let fd = try await openWhenLookupWaits(gate)
            var released = false
            defer { if !released { release(fd) } }

            // B is served while A's lookup is held...
            let status = Array(AccessRig.request("numprocesses", ["name": "app"], id: "b2").utf8)
            let served = try await onThread { try JSONParser.parse(b.connection.call(status)) }
            #expect(served["id"] == "b2")
            #expect(served["numprocesses"] == 1)
            // ...and A has had no answer: its client ends after three replies.
            #expect(a.process.isRunning)

            release(fd)
            released = true
            unlink(gate)
            let output = try await onThread { try a.finish() }
            #expect(output.status == 0, "\(output.err)")
            let replies = try output.out.split(separator: "\n").map { try JSONParser.parse(Array($0.utf8)) }
            // In the order sent: the two incr ran before the numprocesses.
            #expect(replies.map { $0["id"] } == ["a1", "a2", "a3"])
            #expect(replies.map { $0["status"] } == ["ok", "ok", "ok"])
            #expect(replies.last?["numprocesses"] == 3)
        }
    }

    @Test func aRecycledDescriptorDoesNotPassTheOldPeersIdentityOn() async throws {
        try await withRig(accessConfig(), ipc: false, environment: gateEnvironment) { rig in
            let port = try #require(Int(rig.endpoint.split(separator: ":").last ?? ""))
            let daemon = rig.process.processIdentifier
            let gate = try makeGate(rig)
            defer { unlink(gate) }

            // Root's connection sends an incr; its lookup is held, so it is not run yet.
            let root = rig.startClient([AccessRig.request("incr", ["name": "app"], id: "r")])
            let held = try await openWhenLookupWaits(gate)
            var released = false
            defer { if !released { release(held) } }
            let rootDescriptors = connectionDescriptors(daemon: daemon, port: port)
            try #require(rootDescriptors.count == 1, "one connection expected: \(rootDescriptors)")

            // Root goes away; circusd closes its descriptor.
            root.kill()
            _ = try await onThread { try root.finish() }
            _ = try await poll("the root connection closed") {
                connectionDescriptors(daemon: daemon, port: port).isEmpty ? true : nil
            }

            // nobody connects: the kernel hands circusd the same descriptor number.
            let nobody = rig.startClient([AccessRig.request("incr", ["name": "app"], id: "n")], as: "nobody")
            let nobodyDescriptors = try await poll("nobody's connection") {
                let found = connectionDescriptors(daemon: daemon, port: port)
                return found.isEmpty ? nil : found
            }
            try #require(nobodyDescriptors == rootDescriptors, "the descriptor was not reused: \(nobodyDescriptors)")

            // Both lookups answer: root's (read while root was connected) and nobody's.
            // The FIFO stays open for writing until both have read their byte: the second
            // lookup then opens it at once.
            var bytes: [UInt8] = [1, 1]
            #expect(write(held, &bytes, 2) == 2)
            let output = try await onThread { try nobody.finish() }
            close(held)
            released = true
            unlink(gate)
            #expect(output.status == 0, "\(output.err)")
            let reply = try JSONParser.parse(Array(output.out.utf8))
            expectError(reply, errno: 4, reasonContains: "uid 65534 may not send 'incr'")
            // Root's incr was read while root was connected, but looked up once it had
            // gone: its socket names nobody any more, so it did not run either.
            try await rig.waitForLog("refused incr from 127.0.0.1:")
            #expect(rig.log.contains("(unidentified: its socket was closed before the request was read; send it again)"))
            #expect(try await rig.call("numprocesses", ["name": "app"])["numprocesses"] == 1)
        }
    }

    @Test func aClosedPeersSocketIsNotTakenForRoots() async throws {
        // Once a client closes its socket, the kernel's table keeps a remnant of it with
        // uid 0 until the connection is gone. A lookup that finds it must not name root.
        try await withRig(accessConfig(), ipc: false, environment: gateEnvironment) { rig in
            let port = try #require(Int(rig.endpoint.split(separator: ":").last ?? ""))
            let gate = try makeGate(rig)
            defer { unlink(gate) }
            let nobody = rig.startClient([AccessRig.request("incr", ["name": "app"], id: "n")], as: "nobody")
            let held = try await openWhenLookupWaits(gate)
            var released = false
            defer { if !released { release(held) } }
            nobody.kill()
            _ = try await onThread { try nobody.finish() }
            _ = try await poll("the connection closed") {
                connectionDescriptors(daemon: rig.process.processIdentifier, port: port).isEmpty ? true : nil
            }
            release(held)
            released = true
            unlink(gate)
            try await rig.waitForLog("refused incr from 127.0.0.1:")
            #expect(rig.log.contains("(unidentified: its socket was closed before the request was read; send it again)"))
            #expect(try await rig.call("numprocesses", ["name": "app"])["numprocesses"] == 1)
        }
    }

    @Test func aRefusedPeerIsLoggedOncePerConnection() async throws {
        try await withRig(accessConfig(), ipc: false) { rig in
            let refused = "refused incr from uid 65534 (127.0.0.1:"
            let replies = try await rig.callMany(
                (1...3).map { AccessRig.request("incr", ["name": "app"], id: "n\($0)") }, as: "nobody")
            #expect(replies.map { $0["errno"] } == [4, 4, 4])
            // A later line of the log: every refusal above was logged (or not) before it.
            _ = try await rig.call("no-such-command-1")
            try await rig.waitForLog("unknown command: no-such-command-1")
            #expect(rig.log.components(separatedBy: refused).count - 1 == 1)

            // Another connection of the same user is another peer: logged once more.
            _ = try await rig.callMany(
                (1...2).map { AccessRig.request("incr", ["name": "app"], id: "m\($0)") }, as: "nobody")
            _ = try await rig.call("no-such-command-2")
            try await rig.waitForLog("unknown command: no-such-command-2")
            #expect(rig.log.components(separatedBy: refused).count - 1 == 2)
        }
    }

    @Test func addingAUserToAGrantedGroupGrantsItWithoutARestart() async throws {
        let ini = accessConfig("control_groups = circtest")
        let passwd = readFile("/etc/passwd")
        let groups = readFile("/etc/group")
        func groupFile(members: String) -> String { groups + "circtest:x:4242:\(members)\n" }
        /// Replaces the file as useradd and editors do (a new file renamed over it).
        func install(_ text: String, as path: String) throws {
            try text.write(toFile: path + ".new", atomically: false, encoding: .utf8)
            guard rename(path + ".new", path) == 0 else { throw HarnessError("rename \(path): errno \(errno)") }
        }
        try await withRig(ini, ipc: false, environment: ["CIRCUSD_TEST_ETC_DIR": "%DIR%/etc"], prepare: { dir in
            try FileManager.default.createDirectory(atPath: dir + "/etc", withIntermediateDirectories: true)
            try passwd.write(toFile: dir + "/etc/passwd", atomically: true, encoding: .utf8)
            try groupFile(members: "").write(toFile: dir + "/etc/group", atomically: true, encoding: .utf8)
        }) { rig in
            let refused = try await rig.call("options", ["name": "app"], as: "nobody")
            expectError(refused, errno: 4, reasonContains: "uid 65534 may not send 'options'")

            try install(groupFile(members: "daemon,nobody"), as: rig.dir + "/etc/group")
            let granted = try await poll("nobody granted through circtest") {
                let reply = try await rig.call("options", ["name": "app"], as: "nobody")
                return reply["status"] == "ok" ? reply : nil
            }
            #expect(granted["options"]?["env"]?["SECRET"] == "hunter2")

            try install(groupFile(members: "daemon"), as: rig.dir + "/etc/group")
            let again = try await poll("nobody refused again") {
                let reply = try await rig.call("options", ["name": "app"], as: "nobody")
                return reply["status"] == "error" ? reply : nil
            }
            expectError(again, errno: 4, reasonContains: "uid 65534 may not send 'options'")
        }
    }

    @Test func reloadconfigAppliesNewGrantsAndTheSocketFileMode() async throws {
        try await withRig(accessConfig(), ipc: true) { rig in
            let socket = rig.dir + "/ctl.sock"
            func mode() -> (mode: UInt32, gid: UInt32) {
                var info = stat()
                guard stat(socket, &info) == 0 else { return (0, 0) }
                return (info.st_mode & 0o777, info.st_gid)
            }
            let egid = getegid()
            #expect(mode() == (0o600, egid))

            // control_groups: the file opens to that group, and nobody (primary group
            // nogroup) may now incr.
            try rig.rewrite(accessConfig("control_groups = nogroup"))
            expectOK(try await rig.call("reloadconfig", ["waiting": true]))
            #expect(mode() == (0o660, 65534))
            expectOK(try await rig.call("incr", ["name": "app", "waiting": true], as: "nobody"), keys: ["numprocesses"])

            // readonly_users instead: anyone may connect, nobody may read but not incr.
            try rig.rewrite(accessConfig("readonly_users = nobody"))
            expectOK(try await rig.call("reloadconfig", ["waiting": true]))
            #expect(mode() == (0o666, egid))
            expectOK(try await rig.call("status", as: "nobody"), keys: ["statuses"])
            expectError(try await rig.call("incr", ["name": "app"], as: "nobody"), errno: 4,
                        reasonContains: "uid 65534 may not send 'incr'")

            // No grant: back to 0600 and the daemon's group.
            try rig.rewrite(accessConfig())
            expectOK(try await rig.call("reloadconfig", ["waiting": true]))
            #expect(mode() == (0o600, egid))
            #expect(try await rig.call("numprocesses", ["name": "app"])["numprocesses"] == 2)
        }
    }

    @Test func reloadconfigKeepsTheEndpointAndItsOwnerAsBound() async throws {
        try await withRig(accessConfig(), ipc: true) { rig in
            let moved = accessBaseConfig.replacingOccurrences(of: "%ENDPOINT%", with: "ipc://%DIR%/other.sock")
                .replacingOccurrences(of: "%GRANTS%", with: "endpoint_owner = nobody")
            try rig.rewrite(moved)
            expectOK(try await rig.call("reloadconfig", ["waiting": true]))
            try await rig.waitForLog("reloadconfig: endpoint changes take effect at the next circusd start")
            try await rig.waitForLog("reloadconfig: endpoint_owner changes take effect at the next circusd start")
            // Still served where it was bound, nothing bound at the new path, and nobody
            // gets neither the file nor control.
            #expect(access(rig.dir + "/other.sock", F_OK) != 0)
            var info = stat()
            #expect(stat(rig.dir + "/ctl.sock", &info) == 0)
            #expect(info.st_uid == geteuid())
            #expect(info.st_mode & 0o777 == 0o600)
            let options = try await rig.call("globaloptions")
            #expect(options["options"]?["endpoint"] == .string(rig.endpoint))
        }
    }
}
