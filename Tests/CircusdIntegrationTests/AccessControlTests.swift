// Access control on the control endpoint, tried the way an unprivileged local user would:
// a tiny libzmq client run as `nobody` (through runuser) against a circusd run as root,
// over loopback tcp and over ipc. Needs root (to run circusd as root and switch to
// nobody); skipped otherwise, saying so.

import CircusProtocol
import Foundation
import OrderedCollections
import Testing

#if canImport(Glibc)
import Glibc
#endif

private let isRoot = geteuid() == 0

/// One circusd started from a config of our own (tcp or ipc endpoint), in a 0755 temp
/// directory that `nobody` can reach, with a C client compiled into it.
private final class AccessRig: @unchecked Sendable {
    let dir: String
    /// Where clients connect.
    let endpoint: String
    /// What the configuration binds (differs when `bindAllInterfaces`).
    let boundEndpoint: String
    let process = Process()

    /// Compiles the client, writes `circus.ini` (`%DIR%` and `%ENDPOINT%` substituted) and
    /// starts circusd; waits until root gets an answer to `list`.
    init(ini: String, ipc: Bool, daemonUser: String? = nil, bindAllInterfaces: Bool = false) async throws {
        dir = try DaemonHarness.makeTempDir()
        chmod(dir, 0o755)
        let port = try freePort()
        endpoint = ipc ? "ipc://\(dir)/ctl.sock" : "tcp://127.0.0.1:\(port)"
        boundEndpoint = bindAllInterfaces ? "tcp://0.0.0.0:\(port)" : endpoint
        let pubsub = "tcp://127.0.0.1:\(try freePort())"
        try Self.compileClient(into: dir)
        let text = ini.replacingOccurrences(of: "%DIR%", with: dir).replacingOccurrences(of: "%ENDPOINT%", with: boundEndpoint)
            .replacingOccurrences(of: "%PUBSUB%", with: pubsub)
        try text.write(toFile: "\(dir)/circus.ini", atomically: true, encoding: .utf8)
        chmod("\(dir)/circus.ini", 0o644)
        if let daemonUser {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            process.arguments = ["-u", daemonUser, "--", DaemonHarness.binary, "\(dir)/circus.ini"]
        } else {
            process.executableURL = URL(fileURLWithPath: DaemonHarness.binary)
            process.arguments = ["\(dir)/circus.ini"]
        }
        process.currentDirectoryURL = URL(fileURLWithPath: dir)
        let log = "\(dir)/circusd.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: log)
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            if let reply = try? await call("list", as: daemonUser), reply["status"] == "ok" { break }
            if ContinuousClock.now > deadline || !process.isRunning {
                await stop()
                throw HarnessError("circusd did not answer list within 10 s:\n\(readFile(log))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    var log: String { readFile("\(dir)/circusd.log") }

    /// Sends one request with the C client, as `user` (nil: as root, the test's user).
    func call(_ command: String, _ properties: JSONObject = [:], as user: String? = nil) async throws -> JSON {
        let request = String(decoding: JSONWriter.serialize(.object(["id": "t", "command": .string(command), "properties": .object(properties)])), as: UTF8.self)
        let client = "\(dir)/client"
        let endpoint = self.endpoint
        let output: (status: Int32, out: String, err: String) = try await onThread {
            let process = Process()
            if let user {
                process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
                process.arguments = ["-u", user, "--", client, endpoint, request]
            } else {
                process.executableURL = URL(fileURLWithPath: client)
                process.arguments = [endpoint, request]
            }
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            let stderr = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
        }
        guard output.status == 0 else {
            throw HarnessError("client (\(user ?? "root")) \(command): exit \(output.status): \(output.err)")
        }
        return try JSONParser.parse(Array(output.out.utf8))
    }

    /// The watcher names `list` shows (asked as root).
    func watcherNames() async throws -> [String] {
        try await call("list")["watchers"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    /// Quits the daemon (as root) and waits for it; kills it by pid if it lingers.
    func stop() async {
        if process.isRunning { _ = try? await call("quit", ["waiting": true]) }
        let deadline = ContinuousClock.now + .seconds(10)
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(atPath: dir)
    }

    private static func compileClient(into dir: String) throws {
        let source = """
            #include <zmq.h>
            #include <stdio.h>
            #include <string.h>
            int main(int argc, char **argv) {
                if (argc != 3) return 2;
                void *ctx = zmq_ctx_new();
                void *s = zmq_socket(ctx, ZMQ_DEALER);
                int linger = 0, timeout = 5000;
                zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
                zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
                if (zmq_connect(s, argv[1]) != 0) { fprintf(stderr, "connect: %s\\n", zmq_strerror(zmq_errno())); return 3; }
                zmq_send(s, argv[2], strlen(argv[2]), 0);
                static char buffer[1 << 20];
                int n = zmq_recv(s, buffer, sizeof buffer - 1, 0);
                if (n < 0) { fprintf(stderr, "no reply: %s\\n", zmq_strerror(zmq_errno())); return 4; }
                buffer[n < (int)sizeof buffer - 1 ? n : (int)sizeof buffer - 1] = 0;
                puts(buffer);
                zmq_close(s);
                zmq_ctx_term(ctx);
                return 0;
            }
            """
        try source.write(toFile: "\(dir)/client.c", atomically: true, encoding: .utf8)
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/cc")
        cc.arguments = ["\(dir)/client.c", "-o", "\(dir)/client", "-lzmq"]
        try cc.run()
        cc.waitUntilExit()
        guard cc.terminationStatus == 0 else { throw HarnessError("cannot compile the test client with cc") }
        chmod("\(dir)/client", 0o755)
    }
}

/// A port nobody listens on right now (bound to 0, read, closed).
private func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw HarnessError("cannot find a free port: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Runs `body` with a rig, always stopping it.
private func withRig(_ ini: String, ipc: Bool, daemonUser: String? = nil, bindAllInterfaces: Bool = false,
                     _ body: (AccessRig) async throws -> Void) async throws {
    let rig = try await AccessRig(ini: ini, ipc: ipc, daemonUser: daemonUser, bindAllInterfaces: bindAllInterfaces)
    do {
        try await body(rig)
    } catch {
        Issue.record("circusd log:\n\(rig.log)")
        await rig.stop()
        throw error
    }
    await rig.stop()
}

private let baseConfig = """
    [circus]
    endpoint = %ENDPOINT%
    pubsub_endpoint = %PUBSUB%
    %GRANTS%

    [watcher:app]
    cmd = sleep 600

    [env:app]
    SECRET = hunter2
    """

private func config(_ grants: String = "") -> String { baseConfig.replacingOccurrences(of: "%GRANTS%", with: grants) }

/// The `add` an attacker sends: a watcher that records who it runs as.
private func evilAdd(_ rig: AccessRig, name: String = "evil") -> JSONObject {
    ["name": .string(name), "cmd": .string("sh -c 'id > \(rig.dir)/\(name).marker'"), "start": true]
}

/// Refused `add` and `options`; afterwards (a later reply) nothing was added or run.
private func expectAddAndOptionsRefused(_ rig: AccessRig, uid: Int, grant: String = "control_users or control_groups in [circus]") async throws {
    let add = try await rig.call("add", evilAdd(rig), as: "nobody")
    expectError(add, errno: 4, reason: "uid \(uid) may not send 'add': grant it with \(grant)")
    let options = try await rig.call("options", ["name": "app"], as: "nobody")
    expectError(options, errno: 4, reason: "uid \(uid) may not send 'options': grant it with \(grant)")
    #expect(options["options"] == nil)
    // Requests are handled in order: this later reply follows whatever the add did.
    #expect(try await rig.watcherNames() == ["app"])
    #expect(!FileManager.default.fileExists(atPath: "\(rig.dir)/evil.marker"))
}

@Suite("Access control on the control endpoint", .serialized, .enabled(if: isRoot, "needs root: runs circusd as root and a client as nobody (runuser)"))
struct AccessControlTests {
    private let nobody = 65534

    @Test func nobodyIsRefusedAddAndOptionsOverTCP() async throws {
        try await withRig(config(), ipc: false) { rig in
            try await expectAddAndOptionsRefused(rig, uid: nobody)
            let status = try await rig.call("status", as: "nobody")
            expectError(status, errno: 4, reasonContains: "uid 65534 may not send 'status'")
            // Logged once per peer: two refusals on one connection would log one line;
            // here each client run is a new connection, so each is logged.
            #expect(rig.log.contains("refused add from uid 65534 (127.0.0.1:"))
        }
    }

    @Test func nobodyIsRefusedOverIPCWhereReadOnlyUsersMayConnect() async throws {
        try await withRig(config("readonly_users = nobody"), ipc: true) { rig in
            var info = stat()
            #expect(stat("\(rig.dir)/ctl.sock", &info) == 0)
            #expect(info.st_mode & 0o777 == 0o666, "readonly_users needs others to connect")
            try await expectAddAndOptionsRefused(rig, uid: nobody)
            let status = try await rig.call("status", as: "nobody")
            expectOK(status, keys: ["statuses"])
            let incr = try await rig.call("incr", ["name": "app", "waiting": true], as: "nobody")
            expectError(incr, errno: 4, reason: "uid 65534 may not send 'incr': grant it with control_users or control_groups in [circus]")
            let get = try await rig.call("get", ["name": "app", "keys": ["env"]], as: "nobody")
            expectError(get, errno: 4, reasonContains: "may not send 'get'")
            // Later reply: still one process.
            #expect(try await rig.call("numprocesses", ["name": "app"])["numprocesses"] == 1)
        }
    }

    @Test func readOnlyUsersGetStatusButNotIncrOverTCP() async throws {
        try await withRig(config("readonly_users = nobody"), ipc: false) { rig in
            expectOK(try await rig.call("status", as: "nobody"), keys: ["statuses"])
            expectOK(try await rig.call("globaloptions", as: "nobody"), keys: ["options"])
            let incr = try await rig.call("incr", ["name": "app"], as: "nobody")
            expectError(incr, errno: 4, reason: "uid 65534 may not send 'incr': grant it with control_users or control_groups in [circus]")
            #expect(try await rig.call("numprocesses", ["name": "app"])["numprocesses"] == 1)
        }
    }

    @Test func controlUsersMayAddOverTCPAndIPC() async throws {
        for ipc in [false, true] {
            try await withRig(config("control_users = nobody"), ipc: ipc) { rig in
                let add = try await rig.call("add", evilAdd(rig, name: "granted"), as: "nobody")
                expectOK(add)
                let options = try await rig.call("options", ["name": "app"], as: "nobody")
                #expect(options["options"]?["env"]?["SECRET"] == "hunter2")
                #expect(try await rig.watcherNames() == ["app", "granted"])
            }
        }
    }

    @Test func rootKeepsFullControl() async throws {
        try await withRig(config(), ipc: false) { rig in
            #expect(try await rig.call("add", ["name": "extra", "cmd": "sleep 600", "start": true, "waiting": true])["status"] == "ok")
            expectOK(try await rig.call("incr", ["name": "app", "waiting": true]), keys: ["numprocesses"])
            #expect(try await rig.call("options", ["name": "app"])["options"]?["env"]?["SECRET"] == "hunter2")
        }
    }

    @Test func theDaemonsOwnUserKeepsFullControl() async throws {
        // circusd run as nobody: nobody (its own uid) may do anything, and root too.
        try await withRig(config(), ipc: false, daemonUser: "nobody") { rig in
            expectOK(try await rig.call("incr", ["name": "app", "waiting": true], as: "nobody"), keys: ["numprocesses"])
            #expect(try await rig.call("options", ["name": "app"], as: "nobody")["options"]?["env"]?["SECRET"] == "hunter2")
            expectOK(try await rig.call("decr", ["name": "app", "waiting": true]), keys: ["numprocesses"])
        }
    }

    @Test func controlSocketFileIs0600ByDefaultAnd0660ForOneGroup() async throws {
        let savedMask = umask(0)  // the daemon inherits it: the mode must not depend on it
        defer { umask(savedMask) }
        try await withRig(config(), ipc: true) { rig in
            var info = stat()
            #expect(stat("\(rig.dir)/ctl.sock", &info) == 0)
            #expect(info.st_mode & 0o777 == 0o600)
            // nobody cannot even connect: the client times out (exit 4).
            await #expect(throws: HarnessError.self) { try await rig.call("status", as: "nobody") }
        }
        try await withRig(config("control_groups = nogroup"), ipc: true) { rig in
            var info = stat()
            #expect(stat("\(rig.dir)/ctl.sock", &info) == 0)
            #expect(info.st_mode & 0o777 == 0o660)
            #expect(info.st_gid == 65534)
            // nobody's primary group is nogroup: granted control.
            expectOK(try await rig.call("incr", ["name": "app", "waiting": true], as: "nobody"), keys: ["numprocesses"])
        }
    }

    @Test func aNonLoopbackEndpointIsWarnedAndShownButLocalPeersAreStillChecked() async throws {
        try await withRig(config(), ipc: false, bindAllInterfaces: true) { rig in
            #expect(rig.log.contains("endpoint \(rig.boundEndpoint) is not loopback: peers on other hosts cannot be identified"))
            let options = try await rig.call("globaloptions")
            #expect(options["options"]?["control_access"] == "unchecked for peers on other hosts (endpoint is not loopback)")
            // nobody on this host is found in the socket table and refused as before.
            try await expectAddAndOptionsRefused(rig, uid: nobody)
        }
    }

    @Test func aLoopbackEndpointShowsNoControlAccessKey() async throws {
        try await withRig(config(), ipc: false) { rig in
            let options = try await rig.call("globaloptions")
            #expect(options["options"]?.keys.sorted() == ["check_delay", "endpoint", "multicast_endpoint", "pubsub_endpoint", "stats_endpoint"])
            #expect(!rig.log.contains("is not loopback"))
        }
    }
}
