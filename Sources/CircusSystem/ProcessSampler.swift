// Per-process figures for the `stats`/`dstats` commands and the stats stream, read from
// /proc the way psutil reads them, so the numbers match Circus's.
//
// Reading /proc for a thousand processes takes a good fraction of a second: the daemon
// samples on a worker thread, never on its loop (see `SerialWorker`).

import Glibc
import Synchronization

/// One reading of a process, in raw units; the daemon formats them (`24.71M`, `0:02.89`).
public struct ProcessSample: Hashable, Sendable {
    /// The sampled process.
    public let pid: Int32
    /// Resident set size in bytes (psutil `memory_info().rss`, from statm).
    public let rss: UInt64
    /// Virtual memory size in bytes (psutil `memory_info().vms`).
    public let vms: UInt64
    /// User CPU seconds.
    public let userTime: Double
    /// System CPU seconds.
    public let systemTime: Double
    /// Start time, epoch seconds (psutil `create_time()`: boot time + starttime / CLK_TCK).
    public let createTime: Double
    /// Nice value.
    public let nice: Int32
    /// Real uid (psutil `uids().real`).
    public let uid: UInt32
    /// The real uid's user name, or the number as text when it has no passwd entry.
    public let username: String
    /// Circus's `cmdline`: basename of the first word of argv[0] (`sleep`, `python3`); the
    /// kernel's command name when argv is empty (zombies, kernel threads).
    public let name: String
    /// True for a zombie (Circus reports `nice` as `"Zombie"` then).
    public let isZombie: Bool
    /// rss as a percentage of physical memory (psutil `memory_percent()`), unrounded.
    public let memoryPercent: Double
    /// CPU use since the previous sample of this pid by the same sampler, in percent of one
    /// CPU, rounded to 0.1 (psutil `cpu_percent(interval=None)`); 0.0 on the first sample.
    public let cpuPercent: Double

    /// user + system seconds (Circus's `ctime` source).
    public var cpuTime: Double { userTime + systemTime }
}

/// Reads `ProcessSample`s, remembering each pid's previous CPU time for `cpuPercent`.
///
/// The history is the sampler's own (like psutil's per-Process state); the daemon uses it
/// from its stats worker only. It does not grow with exited processes: `forgetExited(keeping:)`
/// drops the pids that are gone.
public final class ProcessSampler: Sendable {
    private struct Previous {
        var wall: Double
        var cpu: Double
        var createTime: Double
    }

    private let previous = Mutex<[Int32: Previous]>([:])
    private let userName: @Sendable (UInt32) -> String

    /// Clock ticks per second for /proc times.
    public static let clockTicks: Double = {
        let t = sysconf(Int32(_SC_CLK_TCK))
        return t > 0 ? Double(t) : 100
    }()

    /// Page size in bytes for statm.
    public static let pageSize: UInt64 = UInt64(max(sysconf(Int32(_SC_PAGESIZE)), 4096))

    /// Boot time, epoch seconds (`btime` in /proc/stat).
    public static let bootTime: Double = {
        guard let text = ProcFS.readString("/proc/stat") else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).split(separator: " ").first ?? "") ?? 0
        }
        return 0
    }()

    /// Physical memory in bytes (psutil `virtual_memory().total`, which is sysinfo's
    /// totalram, the same figure as `MemTotal` in /proc/meminfo).
    public static let totalMemory: UInt64 = {
        guard let text = ProcFS.readString("/proc/meminfo") else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("MemTotal:") {
            let kb = line.dropFirst(9).split(separator: " ").first.flatMap { UInt64($0) } ?? 0
            return kb * 1024
        }
        return 0
    }()

    /// Creates an empty sampler.
    ///
    /// - Parameter userName: the name of a uid (a `UserDirectory` snapshot in the daemon, so
    ///   sampling never waits on NSS); NSS directly by default.
    public init(userName: @escaping @Sendable (UInt32) -> String = { UserDatabase.userName(uid: $0) }) {
        self.userName = userName
    }

    /// Reads `pid` now.
    ///
    /// - Returns: nil when the process does not exist (or vanished while being read).
    public func sample(_ pid: Int32) -> ProcessSample? {
        guard let stat = ProcFS.statFields(pid), stat.fields.count > 19,
              let statm = ProcFS.readString("/proc/\(pid)/statm"),
              let status = ProcFS.readString("/proc/\(pid)/status")
        else {
            previous.withLock { $0[pid] = nil }
            return nil
        }
        let f = stat.fields  // f[k] is proc(5) field k + 3
        let state = f[0]
        let utime = (Double(f[11]) ?? 0) / Self.clockTicks
        let stime = (Double(f[12]) ?? 0) / Self.clockTicks
        let nice = Int32(f[16]) ?? 0
        let start = (Double(f[19]) ?? 0) / Self.clockTicks
        let createTime = Self.bootTime + start

        let pages = statm.split(separator: " ")
        let vms = (UInt64(pages.first ?? "") ?? 0) * Self.pageSize
        let rss = (UInt64(pages.dropFirst().first ?? "") ?? 0) * Self.pageSize

        var uid: UInt32 = 0
        for line in status.split(separator: "\n") where line.hasPrefix("Uid:") {
            uid = UInt32(line.dropFirst(4).split(whereSeparator: { $0 == "\t" || $0 == " " }).first ?? "") ?? 0
            break
        }

        let cpu = utime + stime
        let wall = EventLoop.monotonicNow()
        let percent = previous.withLock { previous in
            var percent = 0.0
            // A different create time means the pid was reused: start over.
            if let last = previous[pid], last.createTime == createTime {
                let dt = wall - last.wall
                if dt > 0 { percent = ((cpu - last.cpu) / dt * 100 * 10).rounded() / 10 }
            }
            previous[pid] = Previous(wall: wall, cpu: cpu, createTime: createTime)
            return percent
        }

        let total = Self.totalMemory
        return ProcessSample(
            pid: pid, rss: rss, vms: vms, userTime: utime, systemTime: stime, createTime: createTime,
            nice: nice, uid: uid, username: userName(uid),
            name: Self.commandName(pid: pid, fallback: stat.comm), isZombie: state == "Z",
            memoryPercent: total > 0 ? Double(rss) / Double(total) * 100 : 0, cpuPercent: max(percent, 0))
    }

    /// Drops the CPU history of every pid not in `sampled` whose process is gone (reaped),
    /// so the history holds live processes only. A pid reused since is recognised by its
    /// create time at its next sample.
    public func forgetExited(keeping sampled: Set<Int32>) {
        let remembered = previous.withLock { Array($0.keys) }
        let gone = remembered.filter { !sampled.contains($0) && access("/proc/\($0)", F_OK) != 0 }
        guard !gone.isEmpty else { return }
        previous.withLock { for pid in gone { $0[pid] = nil } }
    }

    /// The pids whose CPU history is kept (for tests).
    public var rememberedPids: Set<Int32> { previous.withLock { Set($0.keys) } }

    /// Circus's `cmdline` field: basename of the first space-separated word of argv[0].
    static func commandName(pid: Int32, fallback: String) -> String {
        guard let raw = ProcFS.read("/proc/\(pid)/cmdline"), !raw.isEmpty else { return fallback }
        let argv0 = raw.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false).first ?? []
        let word = argv0.split(separator: UInt8(ascii: " "), maxSplits: 1).first ?? argv0[...]
        let base = word.split(separator: UInt8(ascii: "/")).last ?? word
        let name = String(decoding: base, as: UTF8.self)
        return name.isEmpty ? fallback : name
    }
}
