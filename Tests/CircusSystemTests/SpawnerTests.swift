// Spawning real children: exit codes, exec errors, PATH search, environment, cwd, umask,
// rlimits, sessions, ids, stdio and descriptor inheritance.

import CCircusSys
@testable import CircusSystem
import Glibc
import Synchronization
import Testing

/// How often the SIGUSR1 handler of `noHandlerOfTheParentRunsInTheChildBeforeExec` ran.
private let parentHandlerRuns = Atomic<Int>(0)

extension CircusSystemTests {
    @Suite struct SpawnerTests {
        let spawner = Spawner()

        @Test func exitCodes() throws {
            let three = try Support.run(SpawnRequest(executable: "/bin/sh", arguments: ["sh", "-c", "exit 3"]))
            #expect(three.status == .exited(3))
            #expect(three.status.exitCode == 3)

            for signo in [SIGTERM, SIGKILL] {
                let child = try spawner.spawn(SpawnRequest(executable: "/bin/sleep", arguments: ["sleep", "30"]))
                try child.signal(signo)
                let status = try child.waitAndClose()
                #expect(status.exitCode == -signo)
                Support.expectNoZombie(child.pid)
            }
        }

        @Test func missingBinaryFailsWithoutZombie() throws {
            let before = Support.openFDs().count
            let zombiesBefore = Support.zombieChildren()
            let request = SpawnRequest(executable: "missing-binary", searchPath: "/bin:/usr/bin")
            let error = #expect(throws: SpawnError.self) { try spawner.spawn(request) }
            #expect(error?.description == "exec 'missing-binary': No such file or directory")
            #expect(error?.code == .exec)
            #expect(error?.errno == ENOENT)
            // The failed child was reaped inside spawn: no new zombie child of ours.
            #expect(Support.zombieChildren().subtracting(zombiesBefore).isEmpty)
            #expect(Support.openFDs().count == before)

            let absolute = #expect(throws: SpawnError.self) {
                try spawner.spawn(SpawnRequest(executable: "/nonexistent/tool"))
            }
            #expect(absolute?.description == "exec '/nonexistent/tool': No such file or directory")
        }

        @Test func searchPath() throws {
            let dir = Support.tempDirectory()
            defer { Support.removeTree(dir) }
            Support.writeFile("\(dir)/greet", "#!/bin/sh\necho found-in-custom-path\n", mode: 0o755)

            // A custom PATH: the missing directory is skipped (ENOENT), the next one is used.
            let custom = try Support.run(SpawnRequest(executable: "greet", searchPath: "/nonexistent:\(dir)"))
            #expect(custom.output == "found-in-custom-path\n")

            // The child's own PATH from its environment.
            let fromEnv = try Support.run(SpawnRequest(executable: "greet", environment: [("PATH", dir)]))
            #expect(fromEnv.output == "found-in-custom-path\n")

            // No PATH anywhere: /bin:/usr/bin.
            let fallback = try Support.run(SpawnRequest(executable: "echo", arguments: ["echo", "fallback"], environment: [("FOO", "1")]))
            #expect(fallback.output == "fallback\n")

            // EACCES is remembered but a later directory still wins; alone, it is the error.
            let other = Support.tempDirectory()
            defer { Support.removeTree(other) }
            Support.writeFile("\(other)/greet", "not executable\n", mode: 0o644)
            let skipped = try Support.run(SpawnRequest(executable: "greet", searchPath: "\(other):\(dir)"))
            #expect(skipped.output == "found-in-custom-path\n")
            let denied = #expect(throws: SpawnError.self) {
                try spawner.spawn(SpawnRequest(executable: "greet", searchPath: "\(other):/nonexistent"))
            }
            #expect(denied?.description == "exec 'greet': Permission denied")
        }

        @Test func environmentExactlyAsGiven() throws {
            let env = [("FOO", "bar"), ("EMPTY", ""), ("WITH_EQ", "a=b c"), ("PATH", "/usr/bin:/bin")]
            let result = try Support.run(SpawnRequest(executable: "/usr/bin/env", environment: env))
            #expect(result.output == "FOO=bar\nEMPTY=\nWITH_EQ=a=b c\nPATH=/usr/bin:/bin\n")

            let empty = try Support.run(SpawnRequest(executable: "/usr/bin/env", environment: []))
            #expect(empty.output == "")

            var request = SpawnRequest(executable: "/usr/bin/env")
            let accepted = request.setEnvironment(["A=1", "B=x=y"])
            #expect(accepted)
            #expect(try Support.run(request).output == "A=1\nB=x=y\n")
            let refused = !request.setEnvironment(["NOEQUALS"])
            #expect(refused)
        }

        @Test func workingDirectoryAndUmask() throws {
            let dir = Support.tempDirectory()
            defer { Support.removeTree(dir) }
            let pwd = try Support.run(SpawnRequest(executable: "/bin/pwd", workingDirectory: dir))
            #expect(pwd.output == "\(dir)\n")

            let error = #expect(throws: SpawnError.self) {
                try spawner.spawn(SpawnRequest(executable: "/bin/true", workingDirectory: "/nope"))
            }
            #expect(error?.description == "chdir('/nope'): No such file or directory")

            let umask = try Support.run(SpawnRequest(executable: "/bin/sh", arguments: ["sh", "-c", "umask"], umask: 0o027))
            #expect(umask.output == "0027\n")
        }

        @Test func resourceLimits() throws {
            let limited = try Support.run(SpawnRequest(
                executable: "/bin/sh", arguments: ["sh", "-c", "ulimit -n; ulimit -c"],
                resourceLimits: [ResourceLimit(resource: Int32(RLIMIT_NOFILE.rawValue), name: "nofile", value: 77), ResourceLimit(resource: Int32(RLIMIT_CORE.rawValue), name: "core", value: nil)]))
            #expect(limited.output == "77\nunlimited\n")

            // Unlimited NOFILE is refused by the kernel; Circus falls back to the hard limit.
            var hard = rlimit()
            getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &hard)
            let unlimited = try Support.run(SpawnRequest(
                executable: "/bin/sh", arguments: ["sh", "-c", "ulimit -n"],
                resourceLimits: [ResourceLimit(resource: Int32(RLIMIT_NOFILE.rawValue), name: "nofile", value: nil)]))
            #expect(unlimited.output == "\(hard.rlim_max)\n")

            let tooBig = #expect(throws: SpawnError.self) {
                try spawner.spawn(SpawnRequest(executable: "/bin/true", resourceLimits: [ResourceLimit(resource: Int32(RLIMIT_NOFILE.rawValue), name: "nofile", value: 1 << 40)]))
            }
            #expect(tooBig?.description == "setrlimit(RLIMIT_NOFILE): Operation not permitted")
            #expect(tooBig?.code == .setrlimit)

        }

        @Test func newSession() throws {
            let child = try spawner.spawn(SpawnRequest(executable: "/bin/sleep", arguments: ["sleep", "30"]))
            defer { Support.killAndReap(child) }
            #expect(getsid(child.pid) == child.pid)
            #expect(getpgid(child.pid) == child.pid)

            let same = try spawner.spawn(SpawnRequest(executable: "/bin/sleep", arguments: ["sleep", "30"], newSession: false))
            defer { Support.killAndReap(same) }
            #expect(getsid(same.pid) == getsid(0))
        }

        @Test(.enabled(if: geteuid() == 0, "only root may switch a child to another user"))
        func userAndGroups() throws {
            let nobody = try UserDatabase.user("nobody")
            let groups = UserDatabase.groupList(user: nobody.name, gid: nobody.gid)
            let result = try Support.run(SpawnRequest(
                executable: "/usr/bin/id", uid: nobody.uid, gid: nobody.gid, supplementaryGroups: groups))
            let group = try UserDatabase.group(id: nobody.gid)
            #expect(result.output == "uid=\(nobody.uid)(nobody) gid=\(nobody.gid)(\(group.name)) groups=\(nobody.gid)(\(group.name))\n")
        }

        /// A daemon that may not switch users reports which call failed. Root may switch to
        /// anyone, so as root this runs in a child process that has become `nobody` first.
        @Test func credentialFailuresNameTheCall() async throws {
            guard geteuid() == 0 else {
                try Self.expectCredentialFailures()
                return
            }
            await #expect(processExitsWith: .success) {
                guard setgid(65534) == 0, setuid(65534) == 0 else { exit(2) }
                do {
                    try Self.expectCredentialFailures()
                } catch {
                    exit(3)
                }
                exit(0)
            }
        }

        /// Spawns as root (uid 0, then gid 0) and checks each refusal; in an exit test a
        /// failed expectation also fails the process.
        static func expectCredentialFailures() throws {
            let asRoot = #expect(throws: SpawnError.self) {
                try Spawner().spawn(SpawnRequest(executable: "/bin/true", uid: 0))
            }
            #expect(asRoot?.description == "setuid(0): Operation not permitted")
            #expect(asRoot?.errno == EPERM)
            var request = SpawnRequest(executable: "/bin/true")
            request.gid = 0
            let groupRoot = #expect(throws: SpawnError.self) { try Spawner().spawn(request) }
            #expect(groupRoot?.description == "setgid(0): Operation not permitted")
            if asRoot?.description != "setuid(0): Operation not permitted"
                || groupRoot?.description != "setgid(0): Operation not permitted"
            {
                throw SystemTestFailure("\(String(describing: asRoot)) / \(String(describing: groupRoot))")
            }
        }

        @Test func stdioModes() throws {
            // /dev/null on stdin; stdout and stderr both to one pipe.
            let result = try Support.run(SpawnRequest(
                executable: "/bin/sh", arguments: ["sh", "-c", "readlink /proc/self/fd/0; echo err >&2"],
                stdin: .null), captureStderr: true)
            #expect(result.output == "/dev/null\nerr\n")

            // Inherited stdin: the same file as ours.
            let ours = Support.fdTarget(0)
            let inherited = try Support.run(SpawnRequest(
                executable: "/bin/readlink", arguments: ["readlink", "/proc/self/fd/0"], stdin: .inherit))
            #expect(inherited.output == "\(ours)\n")

            // A pipe on stdin.
            let input = Support.pipe()
            let output = Support.pipe()
            let cat = try spawner.spawn(SpawnRequest(executable: "/bin/cat", stdin: .fd(input.read), stdout: .fd(output.write)))
            close(input.read)
            close(output.write)
            _ = "piped\n".utf8CString.withUnsafeBytes { write(input.write, $0.baseAddress, 6) }
            close(input.write)
            #expect(Support.readAll(output.read) == "piped\n")
            #expect(try cat.waitAndClose() == .exited(0))

            // Sources below 3 are the daemon's descriptors even when another slot is dup'ed
            // over that number first: stdin from our 2, stderr from our 0.
            let crossed = try Support.run(SpawnRequest(
                executable: "/bin/readlink", arguments: ["readlink", "/proc/self/fd/0", "/proc/self/fd/2"],
                stdin: .fd(2), stderr: .fd(0)))
            #expect(crossed.output == "\(Support.fdTarget(2))\n\(Support.fdTarget(0))\n")
        }

        @Test func keptDescriptorsAndNothingElse() throws {
            let kept = Support.pipe()  // close-on-exec in the parent, as circus sockets are not
            let leaky = open("/dev/null", O_RDONLY)  // NOT close-on-exec: must still be closed
            defer {
                close(kept.read)
                close(kept.write)
                close(leaky)
            }
            // A shell that reports when it is up (the dynamic loader briefly opens fd 3 right
            // after exec), then waits on its stdin.
            let input = Support.pipe()
            let output = Support.pipe()
            let child = try spawner.spawn(SpawnRequest(
                executable: "/bin/sh", arguments: ["sh", "-c", "echo ready; read x"],
                stdin: .fd(input.read), stdout: .fd(output.write), keepFDs: [kept.write]))
            close(input.read)
            close(output.write)
            var ready = [UInt8](repeating: 0, count: 6)
            #expect(read(output.read, &ready, 6) == 6)
            // Read from outside: 0, 1, 2, the kept fd at its number, and nothing else.
            let listed = Support.fdNumbers(pid: child.pid)
            #expect(listed == [0, 1, 2, kept.write].sorted())
            #expect(Support.linkTarget("/proc/\(child.pid)/fd/\(kept.write)") == Support.fdTarget(kept.write))
            close(input.write)  // EOF: the shell's read returns and it exits
            #expect(try child.waitAndClose() == .exited(1))
            close(output.read)
            Support.expectNoZombie(child.pid)

            // A kept fd that is not open is an error naming it.
            let bad = #expect(throws: SpawnError.self) {
                try spawner.spawn(SpawnRequest(executable: "/bin/true", keepFDs: [900]))
            }
            #expect(bad?.description == "keep fd 900: Bad file descriptor")
            #expect(throws: SpawnError.self) { try spawner.spawn(SpawnRequest(executable: "/bin/true", keepFDs: [1])) }
        }

        /// The child is cloned sharing the daemon's descriptor table and copies only the fds
        /// below the highest one it needs (CLOSE_RANGE_UNSHARE): with hundreds of fds open
        /// on both sides of a kept one, it still ends up with exactly 0, 1, 2 and the kept
        /// fd, and the parent's table (its stdio included) is untouched by the child's
        /// dup2s and closes.
        @Test func aChildOfADaemonWithManyDescriptorsGetsOnlyItsOwn() throws {
            let stdioBefore = (0...2).map { Support.fdTarget(Int32($0)) }
            var many = (0..<150).map { _ in open("/dev/null", O_RDONLY | O_CLOEXEC) }
            let kept = Support.pipe()
            many += (0..<150).map { _ in open("/dev/null", O_RDONLY) }  // not close-on-exec
            defer {
                for fd in many { close(fd) }
                close(kept.read)
                close(kept.write)
            }
            #expect(many.allSatisfy { $0 >= 0 })
            #expect(many.contains { $0 > kept.write } && many.contains { $0 < kept.read })
            let input = Support.pipe()
            let output = Support.pipe()
            let child = try spawner.spawn(SpawnRequest(
                executable: "/bin/sh", arguments: ["sh", "-c", "echo ready; read x"],
                stdin: .fd(input.read), stdout: .fd(output.write), stderr: .null, keepFDs: [kept.write]))
            close(input.read)
            close(output.write)
            var ready = [UInt8](repeating: 0, count: 6)
            #expect(read(output.read, &ready, 6) == 6)
            #expect(Support.fdNumbers(pid: child.pid) == [0, 1, 2, kept.write].sorted())
            close(input.write)
            #expect(try child.waitAndClose() == .exited(1))
            close(output.read)
            // Every fd of the parent is still open, and its stdio is what it was.
            #expect(many.allSatisfy { fcntl($0, F_GETFD) >= 0 })
            #expect(fcntl(kept.read, F_GETFD) >= 0 && fcntl(kept.write, F_GETFD) >= 0)
            #expect((0...2).map { Support.fdTarget(Int32($0)) } == stdioBefore)
        }

        @Test func noDescriptorLeakAfterManySpawns() throws {
            func pidfdCount() -> Int { Support.openFDs().filter { Support.fdTarget($0).contains("pidfd") }.count }
            let before = Support.openFDs().count
            let pidfdsBefore = pidfdCount()
            let zombiesBefore = Support.zombieChildren()
            for _ in 0..<100 {
                let child = try spawner.spawn(SpawnRequest(executable: "/bin/true", stdin: .null))
                #expect(try child.waitAndClose() == .exited(0))
            }
            for _ in 0..<10 {
                _ = try? spawner.spawn(SpawnRequest(executable: "missing-binary", stdin: .null))
            }
            #expect(pidfdCount() == pidfdsBefore)
            #expect(Support.zombieChildren().subtracting(zombiesBefore).isEmpty)
            // The system tests run in a process of their own (scripts/test.sh), one at a time:
            // every descriptor here is ours, and the count must be back at once.
            #expect(Support.openFDs().count == before)
        }

        @Test func invalidRequests() {
            #expect(throws: SpawnError.self) {
                try spawner.spawn(SpawnRequest(executable: "/bin/echo", arguments: ["echo", "a\0b"]))
            }
            #expect(throws: SpawnError.self) {
                try spawner.spawn(SpawnRequest(executable: "/bin/true", environment: [("A=B", "c")]))
            }
            #expect(throws: SpawnError.self) {
                try spawner.spawn(SpawnRequest(executable: "/bin/true", arguments: []))
            }
        }

        @Test func noHandlerOfTheParentRunsInTheChildBeforeExec() throws {
            // The child shares our memory until it execs: a signal it gets once its mask is
            // cleared must meet the default disposition (here: death by SIGUSR1), never our
            // handler, which would run on the parent's data.
            let old = signal(SIGUSR1, { _ in parentHandlerRuns.add(1, ordering: .relaxed) })
            defer { signal(SIGUSR1, old) }
            var request = SpawnRequest(executable: "/bin/true")
            request.raisesSignalBeforeExec = true
            let result = try Support.run(request)
            #expect(result.status == .signaled(SIGUSR1, coreDumped: false))
            #expect(parentHandlerRuns.load(ordering: .relaxed) == 0)
        }

        @Test func childSignalStateIsClean() throws {
            // The test process may ignore SIGPIPE (the daemon does); the child must not.
            let old = signal(SIGPIPE, SIG_IGN)
            defer { signal(SIGPIPE, old) }
            var blocked = sigset_t()
            sigemptyset(&blocked)
            sigaddset(&blocked, SIGUSR2)
            var previous = sigset_t()
            pthread_sigmask(SIG_BLOCK, &blocked, &previous)
            defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
            let result = try Support.run(SpawnRequest(
                executable: "/bin/sh", arguments: ["sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status"]))
            // Nothing blocked; SIGPIPE (bit 13) not ignored.
            #expect(result.output.contains("SigBlk:\t0000000000000000"))
            let ignored = result.output.split(separator: "\n").first { $0.hasPrefix("SigIgn:") }
            let mask = UInt64(ignored?.split(separator: "\t").last ?? "", radix: 16) ?? 0
            #expect(mask & (1 << (UInt64(SIGPIPE) - 1)) == 0)
        }
    }
}
