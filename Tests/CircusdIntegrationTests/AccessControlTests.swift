// Access control on the control endpoint, tried the way an unprivileged local user would:
// a tiny libzmq client run as `nobody` (through runuser) against a circusd run as root,
// over loopback tcp and over ipc (see AccessRig.swift). Needs root (to run circusd as
// root and switch to nobody); skipped otherwise, saying so.

import CircusProtocol
import Foundation
import OrderedCollections
import Testing

#if canImport(Glibc)
import Glibc
#endif

let accessBaseConfig = """
    [circus]
    endpoint = %ENDPOINT%
    pubsub_endpoint = %PUBSUB%
    %GRANTS%

    [watcher:app]
    cmd = sleep 600

    [env:app]
    SECRET = hunter2
    """

func accessConfig(_ grants: String = "") -> String { accessBaseConfig.replacingOccurrences(of: "%GRANTS%", with: grants) }

/// The `add` an attacker sends: a watcher that records who it runs as.
func evilAdd(_ rig: AccessRig, name: String = "evil") -> JSONObject {
    ["name": .string(name), "cmd": .string("sh -c 'id > \(rig.dir)/\(name).marker'"), "start": true]
}

/// Refused `add` and `options`; afterwards (a later reply) nothing was added or run.
func expectAddAndOptionsRefused(_ rig: AccessRig, uid: Int, grant: String = "control_users or control_groups in [circus] (root, circusd's own user and endpoint_owner may send every command)") async throws {
    let add = try await rig.call("add", evilAdd(rig), as: "nobody")
    expectError(add, errno: 4, reason: "uid \(uid) may not send 'add': grant it with \(grant)")
    let options = try await rig.call("options", ["name": "app"], as: "nobody")
    expectError(options, errno: 4, reason: "uid \(uid) may not send 'options': grant it with \(grant)")
    #expect(options["options"] == nil)
    // Requests are handled in order: this later reply follows whatever the add did.
    #expect(try await rig.watcherNames() == ["app"])
    #expect(!FileManager.default.fileExists(atPath: "\(rig.dir)/evil.marker"))
}

@Suite("Access control on the control endpoint", .serialized, .enabled(if: isRoot, "needs root: runs circusd as root and a client as nobody (runuser)"))
struct AccessControlTests {
    private let nobody = 65534

    @Test func nobodyIsRefusedAddAndOptionsOverTCP() async throws {
        try await withRig(accessConfig(), ipc: false) { rig in
            try await expectAddAndOptionsRefused(rig, uid: nobody)
            let status = try await rig.call("status", as: "nobody")
            expectError(status, errno: 4, reasonContains: "uid 65534 may not send 'status'")
            // Logged once per peer: two refusals on one connection would log one line;
            // here each client run is a new connection, so each is logged.
            #expect(rig.log.contains("refused add from uid 65534 (127.0.0.1:"))
        }
    }

    @Test func nobodyIsRefusedOverIPCWhereReadOnlyUsersMayConnect() async throws {
        try await withRig(accessConfig("readonly_users = nobody"), ipc: true) { rig in
            var info = stat()
            #expect(stat("\(rig.dir)/ctl.sock", &info) == 0)
            #expect(info.st_mode & 0o777 == 0o666, "readonly_users needs others to connect")
            try await expectAddAndOptionsRefused(rig, uid: nobody)
            let status = try await rig.call("status", as: "nobody")
            expectOK(status, keys: ["statuses"])
            let incr = try await rig.call("incr", ["name": "app", "waiting": true], as: "nobody")
            expectError(incr, errno: 4, reason: "uid 65534 may not send 'incr': grant it with control_users or control_groups in [circus] (root, circusd's own user and endpoint_owner may send every command)")
            let get = try await rig.call("get", ["name": "app", "keys": ["env"]], as: "nobody")
            expectError(get, errno: 4, reasonContains: "may not send 'get'")
            // Later reply: still one process.
            #expect(try await rig.call("numprocesses", ["name": "app"])["numprocesses"] == 1)
        }
    }

    @Test func readOnlyUsersGetStatusButNotIncrOverTCP() async throws {
        try await withRig(accessConfig("readonly_users = nobody"), ipc: false) { rig in
            expectOK(try await rig.call("status", as: "nobody"), keys: ["statuses"])
            expectOK(try await rig.call("globaloptions", as: "nobody"), keys: ["options"])
            let incr = try await rig.call("incr", ["name": "app"], as: "nobody")
            expectError(incr, errno: 4, reason: "uid 65534 may not send 'incr': grant it with control_users or control_groups in [circus] (root, circusd's own user and endpoint_owner may send every command)")
            #expect(try await rig.call("numprocesses", ["name": "app"])["numprocesses"] == 1)
        }
    }

    @Test func controlUsersMayAddOverTCPAndIPC() async throws {
        for ipc in [false, true] {
            try await withRig(accessConfig("control_users = nobody"), ipc: ipc) { rig in
                let add = try await rig.call("add", evilAdd(rig, name: "granted"), as: "nobody")
                expectOK(add)
                let options = try await rig.call("options", ["name": "app"], as: "nobody")
                #expect(options["options"]?["env"]?["SECRET"] == "hunter2")
                #expect(try await rig.watcherNames() == ["app", "granted"])
            }
        }
    }

    @Test func rootKeepsFullControl() async throws {
        try await withRig(accessConfig(), ipc: false) { rig in
            #expect(try await rig.call("add", ["name": "extra", "cmd": "sleep 600", "start": true, "waiting": true])["status"] == "ok")
            expectOK(try await rig.call("incr", ["name": "app", "waiting": true]), keys: ["numprocesses"])
            #expect(try await rig.call("options", ["name": "app"])["options"]?["env"]?["SECRET"] == "hunter2")
        }
    }

    @Test func theDaemonsOwnUserKeepsFullControl() async throws {
        // circusd run as nobody: nobody (its own uid) may do anything, and root too.
        try await withRig(accessConfig(), ipc: false, daemonUser: "nobody") { rig in
            expectOK(try await rig.call("incr", ["name": "app", "waiting": true], as: "nobody"), keys: ["numprocesses"])
            #expect(try await rig.call("options", ["name": "app"], as: "nobody")["options"]?["env"]?["SECRET"] == "hunter2")
            expectOK(try await rig.call("decr", ["name": "app", "waiting": true]), keys: ["numprocesses"])
        }
    }

    @Test func controlSocketFileIs0600ByDefaultAnd0660ForOneGroup() async throws {
        // The daemon runs with umask 0: the socket's mode must not depend on the umask.
        try await withRig(accessConfig(), ipc: true, umask: 0) { rig in
            var info = stat()
            #expect(stat("\(rig.dir)/ctl.sock", &info) == 0)
            #expect(info.st_mode & 0o777 == 0o600)
            // nobody cannot even connect: the client times out (exit 4).
            await #expect(throws: HarnessError.self) { try await rig.call("status", as: "nobody") }
        }
        try await withRig(accessConfig("control_groups = nogroup"), ipc: true, umask: 0) { rig in
            var info = stat()
            #expect(stat("\(rig.dir)/ctl.sock", &info) == 0)
            #expect(info.st_mode & 0o777 == 0o660)
            #expect(info.st_gid == 65534)
            // nobody's primary group is nogroup: granted control.
            expectOK(try await rig.call("incr", ["name": "app", "waiting": true], as: "nobody"), keys: ["numprocesses"])
        }
    }

    @Test func aNonLoopbackEndpointIsWarnedAndShownButLocalPeersAreStillChecked() async throws {
        try await withRig(accessConfig(), ipc: false, bindAllInterfaces: true) { rig in
            #expect(rig.log.contains("endpoint \(rig.boundEndpoint) is not loopback: peers on other hosts cannot be identified"))
            let options = try await rig.call("globaloptions")
            #expect(options["options"]?["control_access"] == "unchecked for peers on other hosts (endpoint is not loopback)")
            // nobody on this host is found in the socket table and refused as before.
            try await expectAddAndOptionsRefused(rig, uid: nobody)
        }
    }

    @Test func aLoopbackEndpointShowsNoControlAccessKey() async throws {
        try await withRig(accessConfig(), ipc: false) { rig in
            let options = try await rig.call("globaloptions")
            #expect(options["options"]?.keys.sorted() == ["check_delay", "endpoint", "multicast_endpoint", "pubsub_endpoint", "stats_endpoint"])
            #expect(!rig.log.contains("is not loopback"))
        }
    }
}
