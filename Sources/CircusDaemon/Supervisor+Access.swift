// Who may send which command on the control endpoint.
//
// Circus lets anyone who can connect do anything, including `add` of a command that then
// runs as root. circusd names each request's sender from what the kernel says (see
// `ControlSender`) and allows: root, its own user and `endpoint_owner` everything; the
// `[circus]` grants what they grant; and nobody else anything. Circus's endpoint_owner
// only owns the socket file (and may `add` only watchers running as itself); giving it
// every command too is circusd's choice, since whoever owns the file was meant to
// control the daemon, and the refusal message says so.

import CircusBus
import CircusConfig
import CircusProtocol
import CircusSystem
import Glibc
import Logging

/// What the access check keeps between requests: the peers already logged as refused,
/// and the grants with group membership as the current user snapshot tells.
struct AccessCheck {
    private var logged: Set<String> = []
    private static let limit = 1024
    private var cache: (generation: UInt64, configured: ControlAccess, current: ControlAccess)?

    /// Whether this is the first refusal of `peer`. Bounded: past the limit it starts over
    /// (and logs again), so that a client retrying in a loop fills no log.
    mutating func isFirstRefusal(_ peer: String) -> Bool {
        if logged.count >= Self.limit { logged.removeAll() }
        return logged.insert(peer).inserted
    }

    /// `configured` with the members of its groups as `users` has them now: computed again
    /// when the databases were read again (a user added to a granted group is allowed
    /// without a reload) or the configuration changed.
    mutating func grants(_ configured: ControlAccess, users: UserDirectory) -> ControlAccess {
        let generation = users.generation
        if let cache, cache.generation == generation, cache.configured == configured { return cache.current }
        let snapshot = users.snapshot
        let current = configured.withMembers { snapshot.members(ofGroup: $0) }
        cache = (generation, configured, current)
        return current
    }
}

extension Supervisor {
    /// The error to answer when `sender` may not run `command`, or nil when it may.
    func refusal(of sender: ControlSender, access: CommandAccess, asSent: String) -> CommandError? {
        let error: CommandError
        switch sender {
        case .local(let uid, _):
            if uid == 0 || uid == geteuid() { return nil }
            let grants = accessCheck.grants(configuration.settings.access, users: users)
            if Self.mayControl(uid: uid, settings: grants) { return nil }
            if access == .readOnly && grants.readOnlyUIDs.contains(uid) { return nil }
            error = .notPermitted(uid: uid, command: asSent, access: access)
        case .remote:
            // Only a non-loopback endpoint lets such peers in; circusd warned at start.
            return nil
        case .unknown(_, let reason):
            error = .unidentifiedSender(command: asSent, why: reason, access: access)
        }
        if accessCheck.isFirstRefusal(sender.peerKey) {
            logger.warning("refused \(asSent) from \(sender): \(error.reason) (further refusals of this peer are not logged)")
        }
        return error
    }

    /// Gives an `ipc://` control socket file the mode (and group) that lets exactly the
    /// granted users connect (see `ControlAccess.socketFileMode`), whatever the umask. The
    /// mode is narrowed to 0600 before the group changes, so that no group that is not
    /// granted can connect in between.
    func restrictControlSocketFile(_ settings: CircusSettings) throws(DaemonError) {
        guard settings.endpoint.hasPrefix("ipc://") else { return }
        let path = String(settings.endpoint.dropFirst("ipc://".count))
        guard !path.hasPrefix("@"), path != "*" else { return }
        let (mode, group) = settings.access.socketFileMode
        if chmod(path, 0o600) != 0 {
            throw DaemonError("endpoint: cannot set the mode of \(path): \(errnoDescription(errno))")
        }
        // Without a granted group the file goes back to the daemon's own group.
        if chown(path, uid_t(bitPattern: -1), group ?? getegid()) != 0 {
            throw DaemonError("control_groups: cannot give endpoint \(path) to group \(group ?? getegid()): \(errnoDescription(errno))")
        }
        if mode != 0o600, chmod(path, mode_t(mode)) != 0 {
            throw DaemonError("endpoint: cannot set the mode of \(path): \(errnoDescription(errno))")
        }
    }

    /// reloadconfig: the new grants apply to the next request, and the ipc control socket
    /// file gets the mode and group they call for. `endpoint_owner` stays as at start, like
    /// the endpoints (Circus never binds again nor gives the file away on reloadconfig).
    func applyControlAccess(_ new: inout CircusSettings, old: CircusSettings) {
        if new.endpointOwner != old.endpointOwner {
            logger.warning("reloadconfig: endpoint_owner changes take effect at the next circusd start")
            new.endpointOwner = old.endpointOwner
            new.access.endpointOwnerUID = old.access.endpointOwnerUID
        }
        guard new.access.socketFileMode != old.access.socketFileMode else { return }
        do {
            try restrictControlSocketFile(new)
            let (mode, group) = new.access.socketFileMode
            logger.info("reloadconfig: control socket file is now 0\(String(mode, radix: 8))\(group.map { " for group \($0)" } ?? "")")
        } catch {
            logger.error("reloadconfig: \(error)")
        }
    }

    /// Root, the daemon's own user, `endpoint_owner` and the control grants.
    static func mayControl(uid: UInt32, settings access: ControlAccess) -> Bool {
        uid == 0 || uid == geteuid() || uid == access.endpointOwnerUID || access.controlUIDs.contains(uid)
    }

    /// Whether a `tcp://` endpoint accepts connections from other hosts: its senders
    /// cannot all be identified. ipc endpoints are local by nature.
    static func acceptsRemotePeers(_ endpoint: String) -> Bool {
        guard endpoint.hasPrefix("tcp://") else { return false }
        var host = Substring(endpoint.dropFirst("tcp://".count))
        // Drop the port, then IPv6 brackets.
        if let colon = host.lastIndex(of: ":") { host = host[..<colon] }
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        if host == "localhost" || host == "::1" || host == "lo" { return false }
        if host.hasPrefix("127."), host.split(separator: ".").count == 4 { return false }
        return true
    }

    /// The value `globaloptions` shows as `control_access` when the endpoint is not
    /// loopback (the key is absent otherwise, as Circus has none).
    static let uncheckedRemoteAccess = "unchecked for peers on other hosts (endpoint is not loopback)"
}

/// How the control server names a tcp peer: the owner of its socket in the kernel's table.
///
/// The connection's addresses are read on the loop thread when its first message arrives.
/// NETLINK_SOCK_DIAG answers at once (the kernel replies before `sendto` returns); where
/// netlink is not available the text table in /proc is read on a worker thread, and the
/// connection's messages wait for that answer (other connections' do not).
final class TCPPeerIdentifier {
    private let loop: EventLoop
    /// Reads /proc/net/tcp{,6} when netlink cannot answer. Starts with its first job.
    private let worker = SerialWorker(name: "tcp peers")
    /// A FIFO the worker reads one byte from before each lookup, and netlink skipped: only
    /// for the test proving that a connection's messages wait for its lookup, in order,
    /// while other connections are served (it holds the lookup as long as it wants,
    /// without timing). Set by the environment variable `CIRCUSD_TEST_TCP_OWNER_GATE`,
    /// read once when the daemon starts; never set it in production.
    private let testGate: String?

    init(loop: EventLoop) {
        self.loop = loop
        testGate = getenv("CIRCUSD_TEST_TCP_OWNER_GATE").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// A ``TCPPeerLookup``.
    func lookUp(_ fd: Int32, later: @escaping (ControlSender) -> Void) -> ControlSender? {
        let connection: TCPConnection
        switch TCPConnection.of(socket: fd) {
        case .success(let found): connection = found
        case .failure(let failure): return .unknown(peer: "descriptor \(fd)", reason: failure.reason)
        }
        if testGate == nil, let owner = TCPPeer.ownerFromNetlink(connection) { return Self.sender(owner) }
        let gate = testGate
        do {
            try loop.offload(to: worker, {
                if let gate { Self.wait(at: gate) }
                return TCPPeer.ownerFromProc(connection)
            }, then: { owner in later(Self.sender(owner)) })
        } catch {
            return .unknown(peer: connection.peerAddress, reason: "cannot start the thread that reads the TCP table: \(error)")
        }
        return nil
    }

    private static func sender(_ owner: TCPPeer.Owner) -> ControlSender {
        switch owner {
        case .user(let uid, let address): return .local(uid: uid, peer: address)
        case .elsewhere(let address, let isLoopback):
            if isLoopback { return .unknown(peer: address, reason: "its socket is not in this host's TCP table") }
            return .remote(peer: address)
        case .closed(let address):
            return .unknown(peer: address, reason: "its socket was closed before the request was read; send it again")
        case .failed(let reason): return .unknown(peer: "tcp peer", reason: reason)
        }
    }

    private static func wait(at path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        var byte: UInt8 = 0
        while read(fd, &byte, 1) < 0 && errno == EINTR {}
        _ = close(fd)
    }
}

extension ControlSender {
    /// Identifies a peer for the refusal log: a connection (tcp) or a process (ipc).
    var peerKey: String { description }
}
