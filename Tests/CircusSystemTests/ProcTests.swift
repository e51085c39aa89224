// /proc readers: the process tree and per-process samples.

@testable import CircusSystem
import Glibc
import Testing

extension CircusSystemTests {
    @Suite struct ProcTests {
        @Test func processTreeFindsAGrandchild() throws {
            let shell = try Spawner().spawn(SpawnRequest(
                executable: "/bin/sh", arguments: ["sh", "-c", "/bin/sleep 30 & exec /bin/sleep 31"], stdin: .null))
            var grandchildren: [Int32] = []
            for _ in 0..<200 where grandchildren.isEmpty {
                grandchildren = ProcessTree.children(of: shell.pid).filter { ProcessSampler.commandName(pid: $0, fallback: "") == "sleep" }
                if grandchildren.isEmpty { Support.sleep(milliseconds: 10) }
            }
            #expect(grandchildren.count == 1)
            guard let sleeper = grandchildren.first else {
                Support.killAndReap(shell)
                return
            }
            #expect(ProcessTree.children(of: shell.pid) == [sleeper])
            #expect(ProcessTree.childrenByScanning(of: shell.pid) == [sleeper])
            #expect(ProcessTree.parent(of: sleeper) == shell.pid)
            let mine = ProcessTree.descendants(of: getpid())
            #expect(mine.contains(shell.pid) && mine.contains(sleeper))
            #expect(mine.firstIndex(of: shell.pid)! < mine.firstIndex(of: sleeper)!)
            #expect(ProcessTree.descendants(of: shell.pid) == [sleeper])
            let snapshot = ProcessTree.Snapshot()
            #expect(snapshot.children(of: shell.pid) == [sleeper])
            #expect(snapshot.descendants(of: shell.pid) == [sleeper])
            #expect(snapshot.descendants(of: getpid()).contains(sleeper))

            // The recursive SIGKILL of the stop procedure: grandchild first, then the worker.
            for pid in ProcessTree.descendants(of: shell.pid).reversed() {
                try ChildMonitor.signal(pid: pid, SIGKILL)
            }
            try? shell.signal(SIGKILL)
            // The worker (the shell became `sleep 31`) does not reap or wait for its child:
            // only our SIGKILL ends it.
            let status = try shell.waitAndClose()
            #expect(status == .signaled(SIGKILL, coreDumped: false), "\(status)")
            Support.expectNoZombie(shell.pid)
            #expect(ProcessTree.children(of: shell.pid).isEmpty)
            #expect(ProcessTree.children(of: 999_999_999).isEmpty)
        }

        @Test(arguments: [
            ("12 345 6789 ", [12, 345, 6789] as [Int32]), ("7\n", [7]), ("", []), (" 1  2", [1, 2]),
        ])
        func numbersOfAChildrenFile(_ text: String, _ expected: [Int32]) throws {
            var template = Array("/tmp/procfs-XXXXXX".utf8CString)
            let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            try #require(fd >= 0)
            let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            defer { unlink(path) }
            _ = text.withCString { write(fd, $0, strlen($0)) }
            close(fd)
            #expect(ProcFS.readNumbers(path) == expected)
            #expect(ProcFS.readNumbers(path + ".missing") == nil)
        }

        @Test func aFileLongerThanOneReadIsReadWhole() throws {
            // /proc/self/maps of a Swift test process is well over the 4 KiB read size.
            let maps = try #require(ProcFS.read("/proc/self/maps"))
            #expect(maps.count > 4096)
            #expect(maps.last == UInt8(ascii: "\n"))
            #expect(String(decoding: maps, as: UTF8.self).contains("[stack]"))
        }

        @Test func samplerReadsOurOwnProcess() throws {
            let sampler = ProcessSampler()
            let now = EventLoop.wallNow()
            let first = try #require(sampler.sample(getpid()))
            #expect(first.pid == getpid())
            #expect(first.rss > 1 << 20)
            #expect(first.vms >= first.rss)
            #expect(first.createTime <= now + 1 && first.createTime > now - 86_400)
            #expect(first.uid == getuid())
            #expect(first.username == UserDatabase.userName(uid: getuid()))
            #expect(first.nice == getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0))
            #expect(!first.isZombie)
            #expect(first.cpuPercent == 0.0)  // psutil: the first call has nothing to compare
            #expect(first.memoryPercent > 0 && first.memoryPercent < 100)
            #expect(ProcessSampler.totalMemory > 0)

            let argv0 = Support.readFile("/proc/self/cmdline")?.split(separator: "\0").first ?? ""
            #expect(first.name == String(argv0.split(separator: "/").last ?? ""))

            // Burn some CPU, then the second sample has a positive percentage.
            let start = EventLoop.monotonicNow()
            var x: UInt64 = 1
            while EventLoop.monotonicNow() - start < 0.1 { x = x &* 6364136223846793005 &+ 1 }
            #expect(x != 0)
            let second = try #require(sampler.sample(getpid()))
            #expect(second.cpuPercent > 0)
            #expect(second.cpuTime >= first.cpuTime)
        }

        @Test func samplerNamesAChildAndForgetsAVanishedOne() throws {
            let sampler = ProcessSampler()
            let child = try Spawner().spawn(SpawnRequest(executable: "/bin/sleep", arguments: ["/bin/sleep", "30"]))
            let sample = try #require(sampler.sample(child.pid))
            #expect(sample.name == "sleep")
            #expect(abs(sample.createTime - EventLoop.wallNow()) < 5)
            Support.killAndReap(child)
            #expect(sampler.sample(child.pid) == nil)
        }
    }
}
