import CircusSystem
import Glibc
import Testing

extension CircusSystemTests {
    @Suite struct MemoryTrimTests {
        /// Resident pages of this process's file-backed code mappings, from /proc/self/smaps.
        static func residentCodeKiB() -> Int {
            guard let smaps = Support.readFile("/proc/self/smaps") else { return -1 }
            var total = 0
            var inCode = false
            for line in smaps.split(separator: "\n") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                if let first = fields.first, first.contains("-"), fields.count >= 2 {
                    inCode = fields[1] == "r-xp" && fields.count >= 6 && fields[5].hasPrefix("/")
                } else if inCode, line.hasPrefix("Rss:"), fields.count >= 2, let kib = Int(fields[1]) {
                    total += kib
                }
            }
            return total
        }

        @Test func codePagesAreReleasedAndComeBackWhenUsed() throws {
            let advised = MemoryTrim.releaseStartupPages()
            #expect(advised > 0, "the test binary has file-backed code mappings")
            // Reading smaps runs code, which faults some pages back: still far below the
            // whole mapped code, which is what a trim that did nothing would leave.
            let resident = Self.residentCodeKiB()
            #expect(resident >= 0 && resident * 1024 < advised / 2, "resident \(resident) KiB of \(advised / 1024) KiB")
            // Code still runs after the trim: spawn and reap a child.
            let child = try Spawner().spawn(SpawnRequest(executable: "/bin/true"))
            #expect(try child.waitForExit() == .exited(0))
            child.close()
        }
    }
}
