// Real processes for the resource_watcher tests: a small C program (built with `cc`) that
// burns CPU, holds memory or idles, and the `stats` answer circusd gives about them,
// measured from /proc and formatted by the daemon's own code.

import CircusProtocol
import CircusSystem
import Foundation
import Glibc
import OrderedCollections

/// A child process of the test, killed and reaped by `stop()`.
final class Hog {
    enum Mode {
        /// A busy loop.
        case cpu
        /// Holds `megabytes` of written (resident) memory, then idles.
        case memory(megabytes: Int)
        /// Idles.
        case idle
        /// Idles, with one child that burns CPU.
        case parentOfBurner
    }

    static let source = #"""
        #define _GNU_SOURCE 1
        #include <signal.h>
        #include <stdlib.h>
        #include <string.h>
        #include <sys/prctl.h>
        #include <unistd.h>
        static void burn(void) { volatile unsigned long n = 0; for (;;) n++; }
        int main(int argc, char **argv) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (strcmp(argv[1], "cpu") == 0) burn();
            if (strcmp(argv[1], "memory") == 0) {
                size_t n = (size_t)atol(argv[2]) << 20;
                char *p = malloc(n);
                if (p == NULL) return 1;
                memset(p, 1, n);
            }
            if (strcmp(argv[1], "parent") == 0 && fork() == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                burn();
            }
            for (;;) pause();
            (void)argc;
        }
        """#

    let process = Process()
    let directory: String
    var pid: Int32 { process.processIdentifier }

    /// Builds the program in a temporary directory of its own and starts it.
    init(_ mode: Mode) throws {
        directory = NSTemporaryDirectory() + "circus-hog-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let program = "\(directory)/hog"
        try Self.source.write(toFile: "\(program).c", atomically: true, encoding: .utf8)
        try runTool("cc", ["-O0", "-o", program, "\(program).c"])
        process.executableURL = URL(fileURLWithPath: program)
        switch mode {
        case .cpu: process.arguments = ["cpu"]
        case .memory(let megabytes): process.arguments = ["memory", "\(megabytes)"]
        case .idle: process.arguments = ["idle"]
        case .parentOfBurner: process.arguments = ["parent"]
        }
        try process.run()
    }

    /// Kills and reaps the process (a burner child dies with it: PR_SET_PDEATHSIG).
    func stop() {
        kill(pid, SIGKILL)
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Answers `stats <watcher>` about real processes as circusd does: /proc read by the
/// daemon's `ProcessSampler` (which remembers each pid's CPU time, so the first figure of
/// a pid is 0.0, as in Circus), formatted by `ProcessStats`.
final class StatsPeer: Sendable {
    private let sampler = ProcessSampler { uid in String(uid) }

    /// The reply to `stats <name>` for a watcher whose processes are `pids`.
    func stats(name: String, pids: [Int32]) -> JSONObject {
        let now = EventLoop.wallNow()
        let tree = ProcessTree.Snapshot()
        func sample(_ pid: Int32, withChildren: Bool) -> CircusProtocol.ProcessSample? {
            guard let raw = sampler.sample(pid) else { return nil }
            let children = withChildren ? tree.children(of: pid).compactMap { sample($0, withChildren: false) } : []
            return CircusProtocol.ProcessSample(
                pid: Int64(pid), rssBytes: Int64(raw.rss), vmsBytes: Int64(raw.vms), cpuPercent: raw.cpuPercent,
                memPercent: raw.memoryPercent, cpuTimeSeconds: raw.cpuTime, username: raw.username,
                nice: .value(Int64(raw.nice)), createTime: raw.createTime, argv: [raw.name], children: children)
        }
        let entries: [(pid: Int64, info: JSON)] = pids.enumerated().map { index, pid in
            guard let sample = sample(pid, withChildren: true) else { return (Int64(pid), ProcessStats.noSuchProcess) }
            return (Int64(pid), .object(ProcessStats.watcherProcessInfo(
                sample, now: now, started: sample.createTime ?? now, wid: Int64(index + 1))))
        }
        return ["name": .string(name), "info": .object(ProcessStats.byPid(entries))]
    }
}

/// Runs a tool found in PATH; fails with its output when it exits non-zero.
func runTool(_ tool: String, _ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [tool] + arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    do {
        try process.run()
    } catch {
        throw TestFailure("cannot run \(tool): \(error)")
    }
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TestFailure("\(tool) \(arguments.joined(separator: " ")) failed (\(process.terminationStatus)):\n\(text)")
    }
}
