// Circus sockets end to end: a real HTTP server in a watcher of 4 processes sharing one
// listening socket, a Unix socket's mode, the descriptor numbers children inherit and
// see in `$(circus.sockets.NAME)`, stdin_socket, on_demand activation, reloadconfig of a
// changed socket, and the start-up refusals (unknown socket name, address in use).

import CircusProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A tiny HTTP server: serves on the socket at the descriptor given as its first argument
/// (`stdin` for fd 0) and answers every request with its pid; with `once`, serves one
/// connection and exits. It writes `ready-<pid>` in its working directory (circusd's, the
/// test's directory) just before it first waits for a connection.
private let serverScript = """
    import os, socket, sys
    fd = 0 if sys.argv[1] == "stdin" else int(sys.argv[1])
    listener = socket.socket(fileno=fd)
    listener.setblocking(True)
    open("ready-%d" % os.getpid(), "w").close()
    while True:
        conn, _ = listener.accept()
        conn.recv(4096)
        body = str(os.getpid()).encode()
        conn.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s" % (len(body), body))
        conn.close()
        if len(sys.argv) > 2 and sys.argv[2] == "once":
            sys.exit(0)
    """

/// Connects to 127.0.0.1:`port` (or the Unix socket at `path`), sends a GET and returns
/// the body: the serving process's pid.
private func fetchPid(port: Int? = nil, path: String? = nil) async throws -> Int32 {
    try await onThread {
        let fd: Int32
        let rc: Int32
        if let path {
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
            }
            rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        } else {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = loopback(port: port ?? 0)
            rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        defer { close(fd) }
        guard rc == 0 else { throw HarnessError("connect: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("GET / HTTP/1.0\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            reply += buffer[0..<n]
        }
        let text = String(decoding: reply, as: UTF8.self)
        guard let body = text.components(separatedBy: "\r\n\r\n").last, let pid = Int32(body) else {
            throw HarnessError("no pid in the reply: \(text.debugDescription)")
        }
        return pid
    }
}

/// 127.0.0.1:`port` as a socket address.
private func loopback(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
}

/// A socket listening on a free port of 127.0.0.1, so that binding that port fails.
private func holdPort() throws -> (fd: Int32, port: Int) {
    let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = loopback(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let held = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(holder, pointer, length) == 0 && listen(holder, 1) == 0 && getsockname(holder, pointer, &length) == 0
        }
    }
    guard held else {
        close(holder)
        throw HarnessError("cannot hold a port: \(String(cString: strerror(errno)))")
    }
    return (holder, Int(UInt16(bigEndian: address.sin_port)))
}

/// glibc's pidfd_open and pidfd_getfd (<sys/pidfd.h>, not in Swift's Glibc module).
@_silgen_name("pidfd_open") private func pidfdOpen(_ pid: pid_t, _ flags: UInt32) -> Int32
@_silgen_name("pidfd_getfd") private func pidfdGetfd(_ pidfd: Int32, _ targetfd: Int32, _ flags: UInt32) -> Int32

/// The `listsockets` entry named `name`.
private func listedSocket(_ h: DaemonHarness, _ name: String) async throws -> JSON {
    let reply = try await h.call("listsockets")
    guard let socket = reply["sockets"]?.arrayValue?.first(where: { $0["name"] == .string(name) }) else {
        throw HarnessError("no socket \(name) in \(reply)")
    }
    return socket
}

/// The identity of the open file behind a descriptor (`socket:[12345]`), or nil if it is closed.
private func openFile(pid: Int32, fd: Int) -> String? {
    var buffer = [CChar](repeating: 0, count: 256)
    let n = readlink("/proc/\(pid)/fd/\(fd)", &buffer, buffer.count - 1)
    guard n > 0 else { return nil }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// `[socket:web]` on 127.0.0.1, on a port the kernel picks.
private let ephemeralWebSocket = """
    [socket:web]
    host = 127.0.0.1
    port = 0

    """

@Suite("Circus sockets")
struct SocketTests {
    @Test func fourProcessesServeOneSharedSocket() async throws {
        try await withDaemon("""
            \(ephemeralWebSocket)
            [watcher:web]
            cmd = /usr/bin/python3 %DIR%/server.py $(circus.sockets.web)
            numprocesses = 4
            use_sockets = true
            """, files: ["server.py": serverScript]) { h in
            let pids = try await h.waitPids("web", count: 4)
            // Connections go to the processes waiting in accept: wait until all four do.
            try await h.waitUntil("4 servers ready") {
                pids.allSatisfy { FileManager.default.fileExists(atPath: "\(h.dir)/ready-\($0)") }
            }
            let socket = try await listedSocket(h, "web")
            #expect(socket.keys == ["fd", "name", "backlog", "host", "port"])
            #expect(socket["host"] == "127.0.0.1")
            let port = try #require(socket["port"]?.intValue.map(Int.init))
            #expect(port > 0, "the ephemeral port is read back after bind")
            // Each server blocks in accept; the kernel hands connections to the waiters in
            // turn, so a few connections reach several of them.
            var servers: [Int32: Int] = [:]
            for _ in 0..<40 {
                let pid = try await fetchPid(port: port)
                #expect(pids.contains(pid), "served by \(pid), not one of the watcher's \(pids)")
                servers[pid, default: 0] += 1
                if servers.count == 4 { break }
            }
            #expect(servers.count >= 2, "every connection went to the same process: \(servers)")
        }
    }

    @Test func childrenInheritSocketsAtTheirNumbers() async throws {
        try await withDaemon("""
            [socket:ux]
            path = %DIR%/ux.sock

            [socket:Web]
            host = 127.0.0.1
            port = 0

            [watcher:server]
            cmd = sh -c 'echo $(circus.sockets.ux) ((CIRCUS.SOCKETS.WEB)) > %DIR%/fd.txt; exec sleep 978'
            use_sockets = true

            [watcher:plain]
            cmd = sleep 977
            """) { h in
            let reply = try await h.call("listsockets")
            expectOK(reply, keys: ["sockets"])
            let sockets = reply["sockets"]?.arrayValue ?? []
            // Sorted by fd; bound in name order.
            #expect(sockets.map { $0["name"]?.stringValue ?? "" } == ["ux", "web"], "\(reply)")
            let ux = sockets.first ?? .null
            #expect(ux.keys == ["fd", "name", "backlog", "path"])
            #expect(ux["backlog"] == 2048)
            #expect(ux["path"] == .string("\(h.dir)/ux.sock"))
            var info = stat()
            #expect(stat("\(h.dir)/ux.sock", &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK)
            let fds = sockets.compactMap { $0["fd"]?.intValue.map(Int.init) }
            let written = try await h.waitFile("\(h.dir)/fd.txt") { $0.hasSuffix("\n") }
            #expect(written == fds.map(String.init).joined(separator: " ") + "\n")

            // The child holds circusd's very sockets at those numbers; a watcher without
            // use_sockets has neither.
            let server = try #require(try await h.waitPids("server", count: 1).first)
            let plain = try #require(try await h.waitPids("plain", count: 1).first)
            for fd in fds {
                let daemonSide = openFile(pid: h.pid, fd: fd)
                #expect(daemonSide?.hasPrefix("socket:[") == true, "\(daemonSide ?? "closed")")
                #expect(openFile(pid: server, fd: fd) == daemonSide)
                #expect(openFile(pid: plain, fd: fd) == nil)
            }
        }
    }

    @Test func unixSocketModeFollowsItsUmask() async throws {
        // Outside the daemon's directory, to see that circusd removes it when it quits.
        let privatePath = "/tmp/cxs-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        try await withDaemon("""
            [socket:private]
            path = \(privatePath)
            umask = 077

            [socket:default]
            path = %DIR%/default.sock

            [watcher:w]
            cmd = sleep 976
            """) { h in
            var info = stat()
            #expect(stat(privatePath, &info) == 0)
            #expect(info.st_mode & 0o777 == 0o700, "mode \(String(info.st_mode & 0o777, radix: 8))")
            // Circus's default umask, 8 (0o010): srwxrw-rwx.
            #expect(stat("\(h.dir)/default.sock", &info) == 0)
            #expect(info.st_mode & 0o777 == 0o767, "mode \(String(info.st_mode & 0o777, radix: 8))")
        }
        #expect(!FileManager.default.fileExists(atPath: privatePath), "circusd left its socket file")
    }

    @Test func stdinSocketIsTheChildsStandardInput() async throws {
        try await withDaemon("""
            [socket:ux]
            path = %DIR%/ux.sock

            [watcher:inetd]
            cmd = /usr/bin/python3 %DIR%/server.py stdin
            stdin_socket = ux
            """, files: ["server.py": serverScript]) { h in
            let pid = try #require(try await h.waitPids("inetd", count: 1).first)
            #expect(try await fetchPid(path: "\(h.dir)/ux.sock") == pid)
        }
    }

    @Test func onDemandWatchersStartOnTheirOwnSocketsOnly() async throws {
        try await withDaemon("""
            [socket:sa]
            host = 127.0.0.1
            port = 0

            [socket:sb]
            host = 127.0.0.1
            port = 0

            [watcher:aaa]
            cmd = /usr/bin/python3 %DIR%/server.py $(circus.sockets.sa) once
            use_sockets = true
            on_demand = true

            [watcher:bbb]
            cmd = /usr/bin/python3 %DIR%/server.py $(circus.sockets.sb) once
            use_sockets = true
            on_demand = true

            [watcher:manual]
            cmd = sleep 975
            """, files: ["server.py": serverScript]) { h in
            #expect(try await h.status("aaa") == "stopped")
            #expect(try await h.status("bbb") == "stopped")
            _ = try await h.waitPids("manual", count: 1)
            expectOK(try await h.call("stop", ["name": "manual", "waiting": true]), keys: ["info"])
            // Every event of that stop (its reap included) is recorded before the barrier.
            let mark = try await h.eventBarrier(on: "manual") + 1
            let sa = try #require(try await listedSocket(h, "sa")["port"]?.intValue.map(Int.init))
            let sb = try #require(try await listedSocket(h, "sb")["port"]?.intValue.map(Int.init))

            // bbb comes second in start order: Circus would never start it.
            let first = try await fetchPid(port: sb)
            try await h.waitEvent("watcher.bbb.spawn", pid: first, since: mark)
            // It served one connection and exited: stopped again, waiting for the next.
            try await h.waitEvent("watcher.bbb.stop", since: mark)
            #expect(try await h.status("aaa") == "stopped")

            let served = try await fetchPid(port: sa)
            try await h.waitEvent("watcher.aaa.spawn", pid: served, since: mark)
            let second = try await fetchPid(port: sb)
            #expect(second != first)
            try await h.waitEvents(since: mark, count: 2, "bbb spawns") { $0.topic == "watcher.bbb.spawn" }

            // The operator's stop holds: nothing started manual.
            #expect(try await h.status("manual") == "stopped")
            #expect(!h.events(since: mark).contains { $0.watcher == "manual" && $0.name != "stop" },
                    "\(h.events(since: mark).filter { $0.watcher == "manual" })")

            // Both one-shot servers are done: a start of every watcher starts manual and
            // leaves the on_demand watchers waiting, as Circus does; `start NAME` starts one.
            try await h.waitEvents(since: mark, count: 2, "bbb stops") { $0.topic == "watcher.bbb.stop" }
            try await h.waitEvent("watcher.aaa.stop", since: mark)
            let startAll = h.mark
            let started = try await h.call("start", ["waiting": true])
            #expect(started["status"] == "ok", "\(started)")
            #expect(try await h.status("manual") == "active")
            #expect(try await h.status("aaa") == "stopped")
            #expect(try await h.status("bbb") == "stopped")
            #expect(!h.events(since: startAll).contains { $0.watcher == "aaa" || $0.watcher == "bbb" })
            expectOK(try await h.call("start", ["name": "aaa", "waiting": true]), keys: ["info"])
            #expect(try await h.status("aaa") == "active")
        }
    }

    @Test func onDemandProgramThatFailsAtOnceIsNotRestartedInAHotLoop() async throws {
        try await withDaemon("""
            \(ephemeralWebSocket)
            [watcher:broken]
            cmd = sh -c 'exit 3' $(circus.sockets.web)
            use_sockets = true
            on_demand = true
            """) { h in
            let port = try #require(try await listedSocket(h, "web")["port"]?.intValue.map(Int.init))
            // A connection nobody accepts keeps the socket readable.
            let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(client) }
            var address = loopback(port: port)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            try #require(connected)
            // Each activation fails at once: the wait before the next one doubles.
            try await h.waitUntil("the third quick failure", timeout: 20) {
                h.log.contains("broken: its processes failed within 1.0s of a connection 3 times in a row; "
                    + "waiting for a connection again in 0.2s")
            }
        }
    }

    @Test func reloadconfigRebindsAChangedSocketAndRestartsOnlyItsUsers() async throws {
        let ini = { (port: Int) in
            """
            [socket:web]
            host = 127.0.0.1
            port = \(port)

            [socket:api]
            host = 127.0.0.1
            port = 0

            [watcher:web]
            cmd = /usr/bin/python3 %DIR%/server.py $(circus.sockets.web)
            numprocesses = 2
            use_sockets = true

            [watcher:api]
            cmd = /usr/bin/python3 %DIR%/server.py $(circus.sockets.api)
            use_sockets = true

            [watcher:plain]
            cmd = sleep 974
            """
        }
        let before = try freePort()
        try await withDaemon(ini(before), files: ["server.py": serverScript]) { h in
            let webPids = try await h.waitPids("web", count: 2)
            let apiPids = try await h.waitPids("api", count: 1)
            let plainPids = try await h.waitPids("plain", count: 1)
            let apiSocket = try await listedSocket(h, "api")
            #expect(webPids.contains(try await fetchPid(port: before)))

            let after = try freePort()
            try h.rewriteConfig(ini(after))
            expectOK(try await h.call("reloadconfig", ["waiting": true]))

            let web = try await listedSocket(h, "web")
            #expect(web["port"] == .int(Int64(after)))
            let newWeb = try await h.waitPids("web", count: 2)
            #expect(Set(newWeb).isDisjoint(with: webPids), "web was not restarted: \(webPids) -> \(newWeb)")
            #expect(newWeb.contains(try await fetchPid(port: after)))
            // The other sockets and watchers are untouched.
            #expect(try await listedSocket(h, "api") == apiSocket)
            #expect(try await h.childPids("api") == apiPids)
            #expect(try await h.childPids("plain") == plainPids)
            #expect(apiPids.contains(try await fetchPid(port: Int(apiSocket["port"]?.intValue ?? 0))))
        }
    }

    @Test func reloadconfigClosesRemovedSocketsAndBindsAddedOnes() async throws {
        // web, and a Unix socket with a watcher of its own, named `unix`.
        let ini = { (unix: String) in
            """
            [socket:web]
            host = 127.0.0.1
            port = 0

            [socket:\(unix)]
            path = %DIR%/\(unix).sock

            [watcher:web]
            cmd = /usr/bin/python3 %DIR%/server.py $(circus.sockets.web)
            use_sockets = true

            [watcher:\(unix)]
            cmd = /usr/bin/python3 %DIR%/server.py $(circus.sockets.\(unix))
            use_sockets = true
            """
        }
        let before = ini("old"), after = ini("new")
        try await withDaemon(before, files: ["server.py": serverScript]) { h in
            let web = try await h.waitPids("web", count: 1)
            let webSocket = try await listedSocket(h, "web")
            _ = try await h.waitPids("old", count: 1)
            #expect(FileManager.default.fileExists(atPath: "\(h.dir)/old.sock"))

            try h.rewriteConfig(after)
            expectOK(try await h.call("reloadconfig", ["waiting": true]))
            let names = try await h.call("listsockets")["sockets"]?.arrayValue?.compactMap { $0["name"]?.stringValue }
            #expect(Set(names ?? []) == ["web", "new"])
            #expect(!FileManager.default.fileExists(atPath: "\(h.dir)/old.sock"), "the removed socket's file is gone")
            let new = try await h.waitPids("new", count: 1)
            #expect(try await fetchPid(path: "\(h.dir)/new.sock") == new[0])
            // The unchanged socket and its watcher are untouched.
            #expect(try await listedSocket(h, "web") == webSocket)
            #expect(try await h.childPids("web") == web)
        }
    }

    @Test func reloadconfigReportsASocketItCannotBindAndTriesAgain() async throws {
        let ini = { (port: Int) in
            """
            [socket:web]
            host = 127.0.0.1
            port = \(port)

            [watcher:web]
            cmd = /usr/bin/python3 %DIR%/server.py $(circus.sockets.web)
            use_sockets = true

            [watcher:plain]
            cmd = sleep 972
            """
        }
        let (holder, taken) = try holdPort()
        var held = true
        defer { if held { close(holder) } }
        let first = try freePort()
        try await withDaemon(ini(first), files: ["server.py": serverScript]) { h in
            _ = try await h.waitPids("web", count: 1)
            let plain = try await h.waitPids("plain", count: 1)
            try h.rewriteConfig(ini(taken))
            let failed = try await h.call("reloadconfig", ["waiting": true])
            expectError(failed, errno: 6)
            let reason = failed["reason"]?.stringValue ?? ""
            #expect(reason.contains("socket 'web': could not bind 127.0.0.1:\(taken): Address already in use"), "\(reason)")
            #expect(reason.contains("web: socket 'web' is not bound"), "\(reason)")
            #expect(try await h.call("listsockets")["sockets"] == [])
            #expect(try await h.status("web") == "stopped")
            #expect(try await h.childPids("plain") == plain)

            // The same configuration, once the port is free: the next reloadconfig binds it.
            close(holder)
            held = false
            expectOK(try await h.call("reloadconfig", ["waiting": true]))
            #expect(try await listedSocket(h, "web")["port"] == .int(Int64(taken)))
            let web = try await h.waitPids("web", count: 1)
            #expect(web.contains(try await fetchPid(port: taken)))
        }
    }

    @Test func soReusePortGivesEachProcessItsOwnSocket() async throws {
        let port = try freePort()
        try await withDaemon("""
            [socket:web]
            host = 127.0.0.1
            port = \(port)
            so_reuseport = true

            [watcher:web]
            cmd = /usr/bin/python3 %DIR%/server.py $(circus.sockets.web)
            numprocesses = 2
            use_sockets = true
            """, files: ["server.py": serverScript]) { h in
            let pids = try await h.waitPids("web", count: 2)
            // Each process holds a socket of its own (circusd closed its copy after the
            // spawn); the kernel spreads connections between them.
            let fds = try pids.map { pid in
                try #require(Proc.cmdline(pid)?.dropFirst(2).first.flatMap { Int($0) })
            }
            let files = zip(pids, fds).map { openFile(pid: $0, fd: $1) }
            #expect(files.allSatisfy { $0?.hasPrefix("socket:[") == true }, "\(files)")
            #expect(Set(files).count == 2, "both processes hold the same socket: \(files)")
            for (pid, fd) in zip(pids, fds) { #expect(openFile(pid: h.pid, fd: fd) != openFile(pid: pid, fd: fd)) }
            var servers: Set<Int32> = []
            for _ in 0..<200 where servers.count < 2 {
                let pid = try await fetchPid(port: port)
                #expect(pids.contains(pid))
                servers.insert(pid)
            }
            #expect(servers.count == 2, "one process served every connection")
        }
    }

    @Test func ipv6DatagramAndInterfaceOptions() async throws {
        try await withDaemon("""
            [socket:v6]
            family = AF_INET6
            host = ::1
            port = 0

            [socket:dgram]
            host = 127.0.0.1
            port = 0
            type = SOCK_DGRAM
            proto = udp

            [socket:lo]
            host = 0.0.0.0
            port = 0
            interface = lo

            [watcher:w]
            cmd = sleep 971
            """) { h in
            let v6 = try await listedSocket(h, "v6")
            #expect(v6["host"] == "::1")
            #expect((v6["port"]?.intValue ?? 0) > 0)
            let dgram = try await listedSocket(h, "dgram")
            let lo = try await listedSocket(h, "lo")
            #expect(lo["host"] == "0.0.0.0")
            // The kernel says what each descriptor is: a copy of circusd's descriptor
            // (pidfd_getfd: the test process is circusd's parent) answers getsockopt.
            func option(_ socket: JSON, _ name: Int32) throws -> [UInt8] {
                let fd = Int32(socket["fd"]?.intValue ?? -1)
                let pidfd = pidfdOpen(h.pid, 0)
                guard pidfd >= 0 else { throw HarnessError("pidfd_open: \(String(cString: strerror(errno)))") }
                defer { close(pidfd) }
                let copy = pidfdGetfd(pidfd, fd, 0)
                guard copy >= 0 else { throw HarnessError("pidfd_getfd: \(String(cString: strerror(errno)))") }
                defer { close(copy) }
                var value = [UInt8](repeating: 0, count: 32)
                var length = socklen_t(value.count)
                guard getsockopt(copy, SOL_SOCKET, name, &value, &length) == 0 else {
                    throw HarnessError("getsockopt(\(name)): \(String(cString: strerror(errno)))")
                }
                return Array(value.prefix(Int(length)))
            }
            func integer(_ bytes: [UInt8]) -> Int32 { bytes.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) } }
            #expect(integer(try option(dgram, SO_TYPE)) == Int32(SOCK_DGRAM.rawValue))
            #expect(integer(try option(dgram, SO_PROTOCOL)) == Int32(IPPROTO_UDP))
            #expect(integer(try option(v6, SO_REUSEADDR)) == 1)
            #expect(integer(try option(v6, SO_ACCEPTCONN)) == 1)
            #expect(integer(try option(dgram, SO_ACCEPTCONN)) == 0, "a datagram socket does not listen")
            #expect(String(decoding: try option(lo, SO_BINDTODEVICE).prefix { $0 != 0 }, as: UTF8.self) == "lo")
        }
    }

    @Test func anExistingSocketFileIsReplacedOnlyWhenAsked() async throws {
        let dir = try DaemonHarness.makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/stale.sock"
        try "left by a dead daemon".write(toFile: path, atomically: true, encoding: .utf8)
        try """
            [circus]
            endpoint = ipc://\(dir)/ctl.sock
            pubsub_endpoint = ipc://\(dir)/pub.sock

            [socket:ux]
            path = \(path)

            [watcher:w]
            cmd = sleep 970
            """.write(toFile: "\(dir)/circus.ini", atomically: true, encoding: .utf8)
        let refused = try await runCircusd(["circus.ini"], in: dir)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("socket 'ux': could not bind '\(path)': '\(path)' already exists."), "\(refused.stderr)")
        #expect(readFile(path) == "left by a dead daemon")

        try await withDaemon("""
            [socket:ux]
            path = \(path)
            replace = true

            [watcher:w]
            cmd = sleep 970
            """) { h in
            var info = stat()
            #expect(stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK)
            let listed = try await listedSocket(h, "ux")
            #expect(listed["path"] == .string(path))
        }
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func anAddedWatcherNamingNoSocketFailsToStartSayingWhy() async throws {
        try await withDaemon("""
            \(ephemeralWebSocket)
            [watcher:w]
            cmd = sleep 969
            """) { h in
            let reply = try await h.call("add", [
                "name": "late", "cmd": "sh -c 'echo $(circus.sockets.nope)'", "start": true, "waiting": true,
            ])
            expectError(reply, errno: 6, reason: "socket 'nope' is not configured")
            #expect(try await h.status("late") == "stopped")
        }
    }

    @Test func unknownSocketNameIsAConfigurationError() async throws {
        let dir = try DaemonHarness.makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            [circus]
            endpoint = ipc://\(dir)/ctl.sock
            pubsub_endpoint = ipc://\(dir)/pub.sock

            [socket:web]
            port = 0

            [watcher:w]
            cmd = server --fd $(circus.sockets.wbe)
            use_sockets = true
            """.write(toFile: "\(dir)/circus.ini", atomically: true, encoding: .utf8)
        let run = try await runCircusd(["circus.ini"], in: dir)
        #expect(run.status == 1)
        #expect(run.stderr == "circusd: configuration error: circus.ini:9: [watcher:w] cmd: "
            + "$(circus.sockets.wbe) names no socket: the sockets are web\n")
    }

    @Test func aSocketThatCannotBeBoundStopsTheStart() async throws {
        let dir = try DaemonHarness.makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Hold a port: circusd's bind of it must fail.
        let (holder, port) = try holdPort()
        defer { close(holder) }
        try """
            [circus]
            endpoint = ipc://\(dir)/ctl.sock
            pubsub_endpoint = ipc://\(dir)/pub.sock

            [socket:ux]
            path = \(dir)/ux.sock

            [socket:web]
            host = 127.0.0.1
            port = \(port)

            [watcher:w]
            cmd = sh -c 'echo started > \(dir)/started.txt; exec sleep 973'
            """.write(toFile: "\(dir)/circus.ini", atomically: true, encoding: .utf8)
        let run = try await runCircusd(["circus.ini"], in: dir)
        #expect(run.status == 1)
        #expect(run.stderr.contains("socket 'web': could not bind 127.0.0.1:\(port): Address already in use"),
                "\(run.stderr)")
        // With --daemon the original process reports it and exits 1.
        let daemonized = try await runCircusd(["--daemon", "circus.ini"], in: dir)
        #expect(daemonized.status == 1)
        #expect(daemonized.stderr == "circusd: socket 'web': could not bind 127.0.0.1:\(port): Address already in use\n")
        #expect(!run.stderr.contains("w started"), "\(run.stderr)")
        // Nothing started, and the socket bound before the failure was closed and removed.
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/started.txt"))
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/ux.sock"))
    }
}
