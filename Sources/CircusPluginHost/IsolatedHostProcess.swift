// Starting a circus-plugin-host: a socketpair (its end kept open in the child at the same
// number), the daemon's environment, a session of its own (a signal to circusd's group
// never reaches it), and the library's paths. Also the one-shot `--describe` run that
// loads a library out of process, checks it and says what it is.

import CCircusPluginLoader
import CircusSystem
import Glibc

enum IsolatedHostProcess {
    /// A started host process, the daemon's end of its socket, and the read end of a pipe
    /// on its stdout and stderr (both non-blocking, close-on-exec), if asked for.
    struct Started {
        var process: SpawnedProcess
        var socket: Int32
        var output: Int32?
    }

    /// Where circus-plugin-host is by default: next to the running executable (circusd,
    /// circus-plugin or a test bundle built by SwiftPM).
    static var defaultExecutable: String { PluginHost.executableDirectory + "/circus-plugin-host" }

    /// Starts `executable` for `library` with `extra` arguments. With `captureOutput`,
    /// what the plugin writes to stdout or stderr (which it should not: it has `log`)
    /// comes through `output` rather than landing in circusd's own.
    ///
    /// - Throws: `SystemError` for the socketpair or the pipe, `SpawnError` when the host
    ///   cannot be run.
    static func start(executable: String, library: PluginLibrary.Paths, extra: [String], captureOutput: Bool)
        throws -> Started {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw SystemError("socketpair", errno: errno)
        }
        defer { close(fds[1]) }
        var output: [Int32] = [-1, -1]
        if captureOutput {
            guard pipe(&output) == 0 else {
                close(fds[0])
                throw SystemError("pipe", errno: errno)
            }
            for fd in output { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
        defer { if output[1] >= 0 { close(output[1]) } }
        var request = SpawnRequest(
            executable: executable,
            arguments: [executable, "--fd", String(fds[1]), "--library", library.resolved, "--path", library.given] + extra,
            stdin: .null, stdout: captureOutput ? .fd(output[1]) : .null, stderr: captureOutput ? .fd(output[1]) : .null,
            keepFDs: [fds[1]], newSession: true)
        request.environment = currentEnvironment()
        do {
            let process = try ChildMonitor.spawnOwned(request)
            for fd in [fds[0], output[0]] where fd >= 0 { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
            return Started(process: process, socket: fds[0], output: output[0] >= 0 ? output[0] : nil)
        } catch {
            close(fds[0])
            if output[0] >= 0 { close(output[0]) }
            throw error
        }
    }

    /// Loads the library in a host process that only describes it, and returns what it
    /// said; the same checks and messages as an in-process load.
    static func describe(path: String, resolvedPath: String, executable: String) throws(PluginLoadError)
        -> PluginLibrary.Description {
        func fail(_ why: String) -> PluginLoadError {
            PluginLoadError(.openFailed, path: path, message: "cannot load plugin \(path): \(why)")
        }
        let started: Started
        do {
            started = try start(executable: executable, library: .init(given: path, resolved: resolvedPath),
                                extra: ["--describe"], captureOutput: false)
        } catch {
            throw fail("cannot run the plugin host \(executable): \(error)")
        }
        // Waited for here (owned since its spawn): not an orphan for the daemon's monitor.
        defer {
            close(started.socket)
            _ = try? started.process.waitForExit()
            started.process.close()
            ChildMonitor.unmarkOwned(started.process.pid)
        }
        var assembler = FrameAssembler()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let frame: FrameReader?
            do {
                frame = try assembler.next()
            } catch {
                throw fail("the plugin host sent a malformed frame")
            }
            if var frame {
                switch frame.type {
                case CIRCUS_FRAME_HELLO.rawValue:
                    return readHello(&frame)
                case CIRCUS_FRAME_LOAD_FAILED.rawValue:
                    let failure = Int32(truncatingIfNeeded: frame.integer())
                    throw PluginLoadError(.init(loaderFailure: failure), path: path, message: frame.string())
                default:
                    continue
                }
            }
            // The host describes a library in milliseconds; a library whose loading hangs
            // (a constructor that blocks) is given ten seconds.
            var poller = pollfd(fd: started.socket, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 10_000)
            if ready == 0 {
                _ = try? started.process.signal(SIGKILL)
                throw fail("the plugin host did not describe it within 10 s (does loading it block?)")
            }
            let n = read(started.socket, &buffer, buffer.count)
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            if n <= 0 {
                let status = (try? started.process.waitForExit()).map { "\($0)" } ?? "ended"
                throw fail("the plugin host \(status) while loading it")
            }
            buffer.withUnsafeBytes { assembler.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }

    static func readHello(_ frame: inout FrameReader) -> PluginLibrary.Description {
        let name = frame.string(), version = frame.string(), summary = frame.string()
        let major = UInt32(truncatingIfNeeded: frame.integer()), minor = UInt32(truncatingIfNeeded: frame.integer())
        let flags = frame.integer()
        let canReconfigure = frame.integer() != 0
        return .init(name: name, version: version, summary: summary, abiMajor: major, abiMinor: minor,
                     flags: flags, canReconfigure: canReconfigure)
    }

    /// The daemon's environment, for the host (a plugin may read HOME, PATH, ...).
    static func currentEnvironment() -> [(key: String, value: String)] {
        var result: [(key: String, value: String)] = []
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let eq = text.firstIndex(of: "=") {
                result.append((String(text[..<eq]), String(text[text.index(after: eq)...])))
            }
            entry += 1
        }
        return result
    }
}

extension PluginLibrary {
    /// A library's path as given and as resolved.
    struct Paths {
        var given: String
        var resolved: String
    }

    var paths: Paths { Paths(given: path, resolved: resolvedPath) }
}
