// `--logger-config` is refused as `loggerconfig` in the file is: a clear message and a
// non-zero exit before anything starts, never an option accepted and ignored.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("--logger-config refusal") struct LoggerConfigRefusalTests {
    /// Runs circusd with `arguments` (`%DIR%` is a fresh directory holding `circus.ini`
    /// written from `ini`) and returns its exit status, stderr and the directory's files.
    func run(_ arguments: [String], ini: String) async throws -> (status: Int32, stderr: String, files: [String]) {
        let dir = try DaemonHarness.makeTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = DaemonHarness.renderConfig(
            ini, dir: dir, control: "ipc://\(dir)/ctl.sock", pubsub: "ipc://\(dir)/pub.sock")
        try config.write(toFile: dir + "/circus.ini", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DaemonHarness.binary)
        process.arguments = arguments.map { $0.replacingOccurrences(of: "%DIR%", with: dir) } + [dir + "/circus.ini"]
        _ = FileManager.default.createFile(atPath: dir + "/err", contents: nil)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: dir + "/err")
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + .seconds(10)
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                throw HarnessError("circusd \(arguments) did not exit within 10 s")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        return (process.terminationStatus, readFile(dir + "/err"), files)
    }

    static let ini = """
        [watcher:sleeper]
        cmd = sleep 1030
        """

    @Test func theFlagIsRefusedBeforeAnythingStarts() async throws {
        let result = try await run(["--logger-config", "/etc/logging.ini", "--pidfile", "%DIR%/circusd.pid"],
                                   ini: Self.ini)
        #expect(result.status == 64)
        #expect(result.stderr.hasPrefix(
            "Error: --logger-config: is not supported yet by this version of circusd: it is a Python logging "
                + "configuration; use --log-level and --log-output\n"), "\(result.stderr)")
        // No pidfile, no socket, no log: circusd stopped at its command line.
        #expect(result.files == ["circus.ini", "err"])
    }

    /// The file says the same of its own option (an empty value asks for nothing in both).
    @Test func theFileOptionIsRefusedWithTheSameReason() async throws {
        let result = try await run([], ini: "[circus]\nloggerconfig = /etc/logging.ini\n\n" + Self.ini)
        #expect(result.status == 1)
        #expect(result.stderr.contains(
            "[circus] loggerconfig: is not supported yet by this version of circusd: it is a Python logging "
                + "configuration; use loglevel and logoutput"), "\(result.stderr)")
        #expect(result.files == ["circus.ini", "err"])
    }

    @Test func anEmptyValueAsksForNothing() async throws {
        try await withDaemon(Self.ini, arguments: ["--logger-config", ""]) { h in
            try await h.waitPids("sleeper", count: 1)
            // A warning about it would come before this line.
            try await h.waitFile(h.logPath) { $0.contains("Arbiter now waiting for commands") }
            #expect(!readFile(h.logPath).lowercased().contains("loggerconfig"), "\(readFile(h.logPath))")
        }
    }
}
