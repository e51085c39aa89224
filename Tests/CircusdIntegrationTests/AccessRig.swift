// A circusd run as root (or another user) with a config of its own, and a tiny libzmq
// client run as any user through runuser: how the access-control tests act as an
// unprivileged local user. Needs root; the suites using it are skipped otherwise.

import CircusProtocol
import Foundation
import OrderedCollections
import Testing

#if canImport(Glibc)
import Glibc
#endif

let isRoot = geteuid() == 0

/// One circusd started from a config of our own (tcp or ipc endpoint), in a 0755 temp
/// directory that `nobody` can reach, with a C client compiled into it.
final class AccessRig: @unchecked Sendable {
    let dir: String
    /// Where clients connect.
    let endpoint: String
    /// What the configuration binds (differs when `bindAllInterfaces`).
    let boundEndpoint: String
    let pubsub: String
    let process = Process()

    /// Compiles the client, writes `circus.ini` (`%DIR%`, `%ENDPOINT%` and `%PUBSUB%`
    /// substituted) and starts circusd with `environment` added to the test's (`%DIR%`
    /// substituted too); waits until root gets an answer to `list`.
    ///
    /// `umask` is the daemon's own (set by a shell that then execs it): the test process's
    /// umask is shared by every test running in parallel, so it is never changed.
    init(ini: String, ipc: Bool, daemonUser: String? = nil, bindAllInterfaces: Bool = false,
         environment: [String: String] = [:], umask daemonUmask: mode_t? = nil,
         prepare: (String) throws -> Void = { _ in }) async throws {
        dir = try DaemonHarness.makeTempDir()
        chmod(dir, 0o755)
        let port = try freePort()
        endpoint = ipc ? "ipc://\(dir)/ctl.sock" : "tcp://127.0.0.1:\(port)"
        boundEndpoint = bindAllInterfaces ? "tcp://0.0.0.0:\(port)" : endpoint
        pubsub = "tcp://127.0.0.1:\(try freePort())"
        try Self.compileClient(into: dir)
        try prepare(dir)
        try rewrite(ini)
        var command = [DaemonHarness.binary, "\(dir)/circus.ini"]
        if let daemonUmask {
            command = ["/bin/sh", "-c", "umask \(String(daemonUmask, radix: 8)) && exec \"$0\" \"$@\""] + command
        }
        if let daemonUser {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            process.arguments = ["-u", daemonUser, "--"] + command
        } else {
            process.executableURL = URL(fileURLWithPath: command[0])
            process.arguments = Array(command.dropFirst())
        }
        if !environment.isEmpty {
            var merged = ProcessInfo.processInfo.environment
            for (key, value) in environment { merged[key] = value.replacingOccurrences(of: "%DIR%", with: dir) }
            process.environment = merged
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
                let text = self.log
                await stop()
                throw HarnessError("circusd did not answer list within 10 s:\n\(text)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// (Re)writes `circus.ini` from `ini` (for reloadconfig).
    func rewrite(_ ini: String) throws {
        let text = ini.replacingOccurrences(of: "%DIR%", with: dir).replacingOccurrences(of: "%ENDPOINT%", with: boundEndpoint)
            .replacingOccurrences(of: "%PUBSUB%", with: pubsub)
        try text.write(toFile: "\(dir)/circus.ini", atomically: true, encoding: .utf8)
        chmod("\(dir)/circus.ini", 0o644)
    }

    var log: String { readFile("\(dir)/circusd.log") }

    /// Waits until the daemon's log contains `text` (deadline 10 s): log lines are
    /// written by a thread of their own, after the reply may have left.
    func waitForLog(_ text: String) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !log.contains(text) {
            if ContinuousClock.now > deadline { throw HarnessError("the log never showed \(text)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// One request's JSON text, with `id`.
    static func request(_ command: String, _ properties: JSONObject = [:], id: String = "t") -> String {
        String(decoding: JSONWriter.serialize(.object(["id": .string(id), "command": .string(command), "properties": .object(properties)])), as: UTF8.self)
    }

    /// Sends one request with the C client, as `user` (nil: as root, the test's user).
    func call(_ command: String, _ properties: JSONObject = [:], as user: String? = nil) async throws -> JSON {
        try await callMany([Self.request(command, properties)], as: user)[0]
    }

    /// Sends `requests` one after the other on one connection, then reads as many replies.
    func callMany(_ requests: [String], as user: String? = nil) async throws -> [JSON] {
        let client = startClient(requests, as: user)
        let output = try await onThread { try client.finish() }
        guard output.status == 0 else {
            throw HarnessError("client (\(user ?? "root")) \(requests): exit \(output.status): \(output.err)")
        }
        return try output.out.split(separator: "\n").map { try JSONParser.parse(Array($0.utf8)) }
    }

    /// A client run in the background: it sends `requests` on one connection, then waits
    /// (5 s at most) for as many replies.
    final class Client: @unchecked Sendable {
        let process = Process()
        private let out = Pipe(), err = Pipe()

        fileprivate init(_ client: String, _ endpoint: String, _ requests: [String], as user: String?) {
            if let user {
                process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
                process.arguments = ["-u", user, "--", client, endpoint] + requests
            } else {
                process.executableURL = URL(fileURLWithPath: client)
                process.arguments = [endpoint] + requests
            }
            process.standardOutput = out
            process.standardError = err
        }

        /// Kills the client process itself (runuser's child when run as another user), so
        /// that its connection closes now.
        func kill() {
            let pid = process.processIdentifier
            let children = readFile("/proc/\(pid)/task/\(pid)/children").split(separator: " ").compactMap { Int32($0) }
            for child in children { Glibc.kill(child, SIGKILL) }
            Glibc.kill(pid, SIGKILL)
        }

        /// Waits for the client to end (blocking: run it with `onThread`).
        func finish() throws -> (status: Int32, out: String, err: String) {
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            let stderr = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
        }
    }

    /// Starts a client as `user` (nil: root) without waiting for it.
    func startClient(_ requests: [String], as user: String? = nil) -> Client {
        let client = Client("\(dir)/client", endpoint, requests, as: user)
        do {
            try client.process.run()
        } catch {
            Issue.record("cannot run the client: \(error)")
        }
        return client
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

    /// The client: `client ENDPOINT REQUEST...` sends every request on one DEALER, then
    /// prints each reply on a line of its own; exit 4 when one does not come within 5 s.
    private static func compileClient(into dir: String) throws {
        let source = """
            #include <zmq.h>
            #include <stdio.h>
            #include <string.h>
            int main(int argc, char **argv) {
                if (argc < 3) return 2;
                void *ctx = zmq_ctx_new();
                void *s = zmq_socket(ctx, ZMQ_DEALER);
                int linger = 0, timeout = 5000;
                zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
                zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
                if (zmq_connect(s, argv[1]) != 0) { fprintf(stderr, "connect: %s\\n", zmq_strerror(zmq_errno())); return 3; }
                for (int i = 2; i < argc; i++) zmq_send(s, argv[i], strlen(argv[i]), 0);
                static char buffer[1 << 20];
                for (int i = 2; i < argc; i++) {
                    int n = zmq_recv(s, buffer, sizeof buffer - 1, 0);
                    if (n < 0) { fprintf(stderr, "no reply: %s\\n", zmq_strerror(zmq_errno())); return 4; }
                    buffer[n < (int)sizeof buffer - 1 ? n : (int)sizeof buffer - 1] = 0;
                    puts(buffer);
                    fflush(stdout);
                }
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
func freePort() throws -> Int {
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
func withRig(_ ini: String, ipc: Bool, daemonUser: String? = nil, bindAllInterfaces: Bool = false,
             environment: [String: String] = [:], umask: mode_t? = nil, prepare: (String) throws -> Void = { _ in },
             _ body: (AccessRig) async throws -> Void) async throws {
    let rig = try await AccessRig(ini: ini, ipc: ipc, daemonUser: daemonUser, bindAllInterfaces: bindAllInterfaces,
                                  environment: environment, umask: umask, prepare: prepare)
    do {
        try await body(rig)
    } catch {
        Issue.record("circusd log:\n\(rig.log)")
        await rig.stop()
        throw error
    }
    await rig.stop()
}
