// An ipc:// bind never takes a path away from a process that serves it, and never
// deletes a file that is not a socket.

import CircusBus
import CircusClient
import Glibc
import Testing

// Inside the serialized BusTests: another suite counts open descriptors meanwhile.
extension BusTests {
    @Suite struct IPCEndpointProbeTests {
        @Test func aServedPathIsRefusedNamingThePid() throws {
            try withTemporaryDirectory { directory in
                let context = ZMQContext()
                let endpoint = "ipc://\(directory)/control.sock"
                let first = try ControlServer(context: context, endpoint: endpoint)
                defer { first.close() }
                var before = stat()
                #expect(lstat("\(directory)/control.sock", &before) == 0)
                for attempt in 0..<2 {
                    let error = try #require(throws: BusError.self) {
                        if attempt == 0 {
                            _ = try ControlServer(context: context, endpoint: endpoint)
                        } else {
                            _ = try EventPublisher(context: context, endpoint: endpoint)
                        }
                    }
                    #expect(error.code == .bindFailed)
                    #expect(error.errorNumber == EADDRINUSE)
                    #expect(error.message == "cannot bind \(endpoint): pid \(getpid()) is serving it (another circusd?)")
                }
                // Still the same socket file, still served.
                var after = stat()
                #expect(lstat("\(directory)/control.sock", &after) == 0)
                #expect(after.st_ino == before.st_ino)
                let reply = try onThreadEcho(server: first) {
                    let client = try CircusConnection(endpoint: endpoint, timeout: .seconds(5), context: context)
                    defer { client.close() }
                    return try client.call(Array("ping".utf8))
                }
                #expect(reply == Array("ping".utf8))
            }
        }

        @Test func aFileThatIsNotASocketIsNeitherBoundNorDeleted() throws {
            try withTemporaryDirectory { directory in
                let path = "\(directory)/notes.txt"
                let file = fopen(path, "w")
                fputs("keep me\n", file)
                fclose(file)
                let error = try #require(throws: BusError.self) {
                    _ = try ControlServer(context: ZMQContext(), endpoint: "ipc://\(path)")
                }
                #expect(error.message == "cannot bind ipc://\(path): \(path) exists and is not a socket (binding would delete it)")
                #expect(access(path, F_OK) == 0)
            }
        }
    }
}

/// Runs `call` on a thread while this thread answers one request on `server` by echoing it.
private func onThreadEcho(server: ControlServer, _ call: @escaping @Sendable () throws -> [UInt8]) throws -> [UInt8] {
    final class Box: @unchecked Sendable { var result: Result<[UInt8], any Error>? }
    let box = Box()
    let thread = startThread { box.result = Result { try call() } }
    var answered = false
    let deadline = ContinuousClock.now + .seconds(5)
    while !answered, ContinuousClock.now < deadline {
        answered = try server.drain { message in
            try? server.reply(to: message.identity, message.frames.last ?? [])
        } > 0
        if !answered { usleep(5_000) }
    }
    pthread_join(thread, nil)
    return try box.result!.get()
}
