// The pidfile rules of Circus's pidfile.py, user/group lookups, and daemonizing.

@testable import CircusSystem
import Glibc
import Testing

extension CircusSystemTests {
    @Suite struct PidfileTests {
        @Test func createWritesPidWithMode0644() throws {
            let dir = Support.tempDirectory()
            defer { Support.removeTree(dir) }
            let old = umask(0o077)  // the explicit chmod must win over the umask
            defer { umask(old) }
            let pidfile = Pidfile(path: "\(dir)/circusd.pid")
            try pidfile.create()
            #expect(Support.readFile(pidfile.path) == "\(getpid())\n")
            var st = stat()
            stat(pidfile.path, &st)
            #expect(st.st_mode & 0o777 == 0o644)
            try pidfile.create()  // our own pid: accepted
            pidfile.unlink()
            #expect(access(pidfile.path, F_OK) != 0)
        }

        @Test func livePidOfAnotherProcessIsStale() throws {
            let dir = Support.tempDirectory()
            defer { Support.removeTree(dir) }
            let other = try Spawner().spawn(SpawnRequest(executable: "/bin/sleep", arguments: ["sleep", "30"]))
            defer { Support.killAndReap(other) }
            let path = "\(dir)/circusd.pid"
            Support.writeFile(path, "\(other.pid)\n")
            let error = #expect(throws: PidfileError.self) { try Pidfile(path: path).create() }
            #expect(error?.description == "pid file '\(path)' is in use: it names pid \(other.pid), which is running")
            #expect(error?.code == .stale)
            // unlink leaves a file that names someone else.
            Pidfile(path: path).unlink()
            #expect(Support.readFile(path) == "\(other.pid)\n")
        }

        @Test func deadEmptyAndNonNumericAreOverwritten() throws {
            let dir = Support.tempDirectory()
            defer { Support.removeTree(dir) }
            let dead = try Spawner().spawn(SpawnRequest(executable: "/bin/true"))
            try dead.waitAndClose()
            let path = "\(dir)/circusd.pid"
            for content in ["\(dead.pid)\n", "", "not a pid\n", "-5", "0"] {
                Support.writeFile(path, content)
                try Pidfile(path: path).create()
                #expect(Support.readFile(path) == "\(getpid())\n", "content \(content.debugDescription)")
            }
            // A non-numeric file counts as ours for unlink (Circus: ValueError -> our pid).
            Support.writeFile(path, "garbage")
            Pidfile(path: path).unlink()
            #expect(access(path, F_OK) != 0)
        }

        @Test func missingDirectory() {
            let error = #expect(throws: PidfileError.self) { try Pidfile(path: "/nonexistent-dir/sub/circusd.pid").create() }
            #expect(error?.description == "/nonexistent-dir/sub doesn't exist. Can't create pidfile")
            #expect(error?.code == .missingDirectory)
            #expect(Pidfile.dirname("/x.pid") == "/")
            #expect(Pidfile.dirname("x.pid") == "")
            #expect(Pidfile.dirname("a//b/c.pid") == "a//b")
        }
    }

    @Suite struct UserDatabaseTests {
        @Test func usersByNameAndNumber() throws {
            let root = try UserDatabase.user("root")
            #expect(root == UserDatabase.User(uid: 0, gid: 0, name: "root"))
            #expect(try UserDatabase.user("0") == root)
            let nobody = try UserDatabase.user("nobody")
            #expect(nobody.uid == 65534)
            #expect(UserDatabase.userName(uid: 0) == "root")
            #expect(UserDatabase.userName(uid: 4_000_000) == "4000000")

            let unknown = #expect(throws: UserDatabaseError.self) { try UserDatabase.user("bob-no-such-user") }
            #expect(unknown?.description == "unknown user 'bob-no-such-user'")
            #expect(unknown?.code == .unknownUser)
            let unknownID = #expect(throws: UserDatabaseError.self) { try UserDatabase.user("4000000") }
            #expect(unknownID?.description == "unknown user id 4000000")
        }

        @Test func groups() throws {
            #expect(try UserDatabase.group("0").name == "root")
            #expect(try UserDatabase.group("root").gid == 0)
            let unknown = #expect(throws: UserDatabaseError.self) { try UserDatabase.group("no-such-group-x") }
            #expect(unknown?.description == "unknown group 'no-such-group-x'")
            #expect(unknown?.code == .unknownGroup)
            let list = UserDatabase.groupList(user: "root", gid: 0)
            #expect(list.first == 0)
            let nobody = try UserDatabase.user("nobody")
            #expect(UserDatabase.groupList(user: "nobody", gid: nobody.gid).contains(nobody.gid))
        }
    }

    @Suite struct DaemonizerTests {
        /// Daemonizes inside an exit-test child (a fresh process): the child waits for the
        /// grandchild's report and exits 0 when it says it serves; the grandchild records
        /// what it looks like before exiting.
        @Test func daemonizeDetachesWithDevNullStdio() async throws {
            let marker = "/tmp/circus-system-daemonize-\(getpid())"
            unlink(marker)
            defer { unlink(marker) }
            await #expect(processExitsWith: .success) { [marker = marker as String] in
                let original = getpid()
                let report = try Daemonizer.daemonize()
                // Only the grandchild gets here.
                report.serving()
                let fds = Support.openFDs()
                let line = "\(getpid() != original) \(getsid(0) != original) \(getsid(0) != getpid()) "
                    + "\(fds) \(Support.fdTarget(0)) \(Support.fdTarget(1)) \(Support.fdTarget(2))\n"
                Support.writeFile(marker + ".tmp", line)
                rename(marker + ".tmp", marker)
                _exit(0)
            }
            var text: String?
            for _ in 0..<300 where text == nil {
                text = Support.readFile(marker)
                if text == nil { Support.sleep(milliseconds: 10) }
            }
            // New pid, a new session that it does not lead (so it can never reacquire a
            // terminal), exactly 0-2 open and all /dev/null.
            #expect(text == "true true true [0, 1, 2] /dev/null /dev/null /dev/null\n")
        }

        /// A daemon that reports a failure makes the original process exit 1.
        @Test func reportedFailureMakesTheOriginalProcessExitOne() async throws {
            await #expect(processExitsWith: .exitCode(1)) {
                let report = try Daemonizer.daemonize()
                report.failed("cannot start")
                _exit(0)
            }
        }

        /// A daemon that ends without a report also makes it exit 1.
        @Test func silentDaemonMakesTheOriginalProcessExitOne() async throws {
            await #expect(processExitsWith: .exitCode(1)) {
                _ = try Daemonizer.daemonize()
                _exit(0)
            }
        }
    }
}
