// Descriptor accounting of sockets and contexts. It counts every descriptor of the test
// process, so scripts/test.sh runs this suite in a process of its own: a socket that a
// concurrent test opens or closes would otherwise change the count. Counting only "our"
// descriptors is not possible: libzmq's eventfds, epoll sets and accepted ipc sockets
// are never handed to the caller, and look the same as any other test's.

import CircusBus
import CircusClient
import Glibc
import Testing

/// Run alone (`swift test --filter BusDescriptorTests`), never next to other suites.
@Suite(.serialized) struct BusDescriptorTests {
    @Test func socketsAndContextReleaseTheirDescriptors() throws {
        let before = openDescriptors()
        try withTemporaryDirectory { directory in
            do {
                let context = ZMQContext()
                let server = try EpollServer(
                    context: context, endpoint: "ipc://\(directory)/fd.sock", mode: .echoInline)
                let publisher = try EventPublisher(context: context, endpoint: "ipc://\(directory)/pub.sock")
                server.start()
                let client = try CircusConnection(endpoint: server.endpoint, context: context)
                #expect(try client.call([7]) == [7])
                // The sockets and the context's threads hold descriptors while in use.
                #expect(openDescriptors().count > before.count)
                client.close()
                publisher.close()
                server.stop()
            }
            // libzmq 4.3 leaves the socket file behind (it removes only generated
            // `ipc://*` paths); the next bind replaces the stale file.
            let context = ZMQContext()
            let again = try ControlServer(context: context, endpoint: "ipc://\(directory)/fd.sock")
            let client = try CircusConnection(endpoint: again.boundEndpoint, context: context)
            try client.send([8])
            #expect(try receiveMessages(again, count: 1).first?.frames == [[8]])
            client.close()
            again.close()
        }
        // Every context above is gone (the last reference dropped): nothing may be left.
        #expect(openDescriptors() == before)
    }
}

/// The open descriptors of this process and what each points to (`socket:[123]`,
/// `anon_inode:[eventfd]`), without the directory stream used to list them.
func openDescriptors() -> [Int32: String] {
    guard let directory = opendir("/proc/self/fd") else { return [:] }
    defer { closedir(directory) }
    let own = dirfd(directory)
    var result: [Int32: String] = [:]
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        guard let fd = Int32(name), fd != own else { continue }
        var buffer = [CChar](repeating: 0, count: 256)
        let length = readlink("/proc/self/fd/\(fd)", &buffer, 255)
        result[fd] = length > 0 ? String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
    }
    return result
}
