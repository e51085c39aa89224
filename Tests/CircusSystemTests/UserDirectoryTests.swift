// The user/group snapshot the daemon spawns from: lookups, group lists, error texts, and
// the refresh when the passwd or group file changes (read again on a worker, noticed by
// inotify on the loop). A files source in a temp dir stands in for /etc.

@testable import CircusSystem
import Glibc
import Testing

extension CircusSystemTests {
    @Suite struct UserDirectoryTests {
        static let passwd = """
            alice:x:1001:1001:Alice:/home/alice:/bin/sh
            bob:x:1002:100::/home/bob:/bin/sh

            """
        static let group = """
            alice:x:1001:
            users:x:100:
            staff:x:50:alice,bob

            """

        /// Runs `loop` until `condition` holds after a reload, or 10 s passed.
        static func runUntil(_ loop: EventLoop, _ condition: @escaping () -> Bool) {
            let deadline = loop.schedule(after: 10) { loop.stop() }
            var check: (() -> Void)!
            check = {
                if condition() { loop.stop() } else { _ = loop.schedule(after: 0.005, check) }
            }
            check()
            loop.run()
            loop.cancel(deadline)
        }

        @Test func lookupsGroupListsAndErrorsComeFromTheSnapshot() throws {
            let dir = Support.tempDirectory()
            defer { Support.removeTree(dir) }
            Support.writeFile(dir + "/passwd", Self.passwd)
            Support.writeFile(dir + "/group", Self.group)
            let users = UserDirectory(source: .files(passwd: dir + "/passwd", group: dir + "/group")).snapshot

            #expect(try users.user("alice") == UserDatabase.User(uid: 1001, gid: 1001, name: "alice"))
            #expect(try users.user("1002") == UserDatabase.User(uid: 1002, gid: 100, name: "bob"))
            #expect(try users.group("staff") == UserDatabase.Group(gid: 50, name: "staff"))
            #expect(try users.group("100").name == "users")
            #expect(users.groupList(user: "alice", gid: 1001) == [1001, 50])
            #expect(users.groupList(user: "bob", gid: 100) == [100, 50])
            #expect(users.userName(uid: 1002) == "bob")
            #expect(users.userName(uid: 4242) == "4242")

            let unknown = #expect(throws: UserDatabaseError.self) { try users.user("carol") }
            #expect(unknown?.description == "unknown user 'carol'")
            #expect(unknown?.code == .unknownUser)
            #expect((#expect(throws: UserDatabaseError.self) { try users.user("4242") })?.description == "unknown user id 4242")
            let group = #expect(throws: UserDatabaseError.self) { try users.group("wheel2") }
            #expect(group?.description == "unknown group 'wheel2'")
            #expect(group?.code == .unknownGroup)
        }

        @Test func groupMembersArePrimaryAndListedUsers() throws {
            let dir = Support.tempDirectory()
            defer { Support.removeTree(dir) }
            Support.writeFile(dir + "/passwd", Self.passwd)
            Support.writeFile(dir + "/group", Self.group)
            let users = UserDirectory(source: .files(passwd: dir + "/passwd", group: dir + "/group")).snapshot
            #expect(users.members(ofGroup: 50) == [1001, 1002])
            #expect(users.members(ofGroup: 100) == [1002])
            #expect(users.members(ofGroup: 1001) == [1001])
            #expect(users.members(ofGroup: 4242) == [])
        }

        @Test func theSystemSnapshotAgreesWithNSS() throws {
            let users = UserDirectory(source: .system, users: ["nobody"]).snapshot
            #expect(try users.user("root") == UserDatabase.user("root"))
            #expect(try users.user("0") == UserDatabase.user("root"))
            #expect(try users.group("root") == UserDatabase.group("root"))
            let nobody = try UserDatabase.user("nobody")
            #expect(try users.user("nobody") == nobody)
            #expect(users.groupList(user: "nobody", gid: nobody.gid) == UserDatabase.groupList(user: "nobody", gid: nobody.gid))
            #expect(users.userName(uid: 0) == UserDatabase.userName(uid: 0))
            #expect(throws: UserDatabaseError.self) { try users.user("bob-no-such-user") }
        }

        @Test func aReplacedOrRewrittenFileIsReadAgainOnTheWorker() throws {
            let dir = Support.tempDirectory()
            defer { Support.removeTree(dir) }
            Support.writeFile(dir + "/passwd", Self.passwd)
            Support.writeFile(dir + "/group", Self.group)
            let directory = UserDirectory(source: .files(passwd: dir + "/passwd", group: dir + "/group"))
            let loop = try EventLoop()
            let worker = SerialWorker(name: "users")
            defer { worker.shutdown() }
            let loopThread = pthread_self()
            var reloads = 0
            let watch = try UserDirectoryWatch(directory, loop: loop, worker: worker) {
                #expect(pthread_equal(pthread_self(), loopThread) != 0)
                reloads += 1
            }
            defer { watch.close() }
            #expect(throws: UserDatabaseError.self) { try directory.snapshot.user("carol") }

            // useradd's way: a new file renamed over the old one.
            Support.writeFile(dir + "/passwd.new", Self.passwd + "carol:x:1003:1003::/home/carol:/bin/sh\n")
            #expect(rename(dir + "/passwd.new", dir + "/passwd") == 0)
            Self.runUntil(loop) { (try? directory.snapshot.user("carol")) != nil }
            #expect(try directory.snapshot.user("carol").uid == 1003)
            #expect(reloads >= 1)

            // An editor's way: the file rewritten in place.
            Support.writeFile(dir + "/group", Self.group.replacingOccurrences("alice,bob", "alice,bob,carol"))
            Self.runUntil(loop) { directory.snapshot.groupList(user: "carol", gid: 1003) == [1003, 50] }
            #expect(directory.snapshot.groupList(user: "carol", gid: 1003) == [1003, 50])
            #expect(try directory.snapshot.user("alice").uid == 1001)
        }

        @Test func aReapedPidLeavesTheSamplersHistoryAtTheNextSample() throws {
            let sampler = ProcessSampler()
            let child = try Spawner().spawn(SpawnRequest(executable: "/bin/sleep", arguments: ["/bin/sleep", "30"]))
            #expect(sampler.sample(child.pid) != nil)
            #expect(sampler.sample(getpid()) != nil)
            #expect(sampler.rememberedPids == [child.pid, getpid()])
            // Alive but not sampled this time: kept.
            sampler.forgetExited(keeping: [])
            #expect(sampler.rememberedPids == [child.pid, getpid()])
            Support.killAndReap(child)
            sampler.forgetExited(keeping: [getpid()])
            #expect(sampler.rememberedPids == [getpid()])
        }
    }
}

extension String {
    fileprivate func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
