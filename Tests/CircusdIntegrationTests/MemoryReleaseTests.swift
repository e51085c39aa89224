import CircusBus
import CircusClient
import Foundation
import Testing

/// The memory a burst of requests leaves in malloc's arenas goes back to the system once
/// the daemon is quiet.
@Suite("Memory release")
struct MemoryReleaseTests {
    /// The daemon's anonymous memory (heap, stacks), KiB.
    static func rssAnon(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("RssAnon:") }),
              let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
        else { throw HarnessError("no RssAnon in /proc/\(pid)/status") }
        return kib
    }

    @Test func memoryHeldForABurstOfClientsIsReturnedOnceTheyAreGone() async throws {
        try await withDaemon("[watcher:w]\ncmd = sleep 3600\n") { h in
            _ = try await h.call("status")
            let before = try Self.rssAnon(h.pid)
            // 400 clients connected at once, each answered: libzmq holds buffers for each
            // connection in its I/O thread, several MiB in all, freed when they close.
            let endpoint = h.controlEndpoint
            let request = Array(#"{"id":"m","command":"status","properties":{}}"#.utf8)
            try await onThread {
                var clients: [CircusConnection] = []
                defer { for client in clients { client.close() } }
                for _ in 0..<400 {
                    let client = try CircusConnection(endpoint: endpoint)
                    clients.append(client)
                    _ = try client.call(request)
                }
            }
            let peak = try Self.rssAnon(h.pid)
            #expect(peak > before + 2048, "the burst should have held memory: \(before) KiB, then \(peak) KiB")
            try await h.waitUntil("anonymous memory back within 1 MiB of \(before) KiB", timeout: 20) {
                try Self.rssAnon(h.pid) < before + 1024
            }
        }
    }
}
