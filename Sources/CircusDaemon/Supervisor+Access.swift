// Who may send which command on the control endpoint.
//
// Circus lets anyone who can connect do anything, including `add` of a command that then
// runs as root. circusd names each request's sender from what the kernel says (see
// `ControlSender`) and allows: root, its own user and `endpoint_owner` everything; the
// `[circus]` grants what they grant; and nobody else anything.

import CircusBus
import CircusConfig
import CircusProtocol
import CircusSystem
import Glibc
import Logging

/// Remembers which peers were already logged as refused, so that a client retrying in a
/// loop fills no log. Bounded: past the limit it starts over (and logs again).
struct RefusalLog {
    private var logged: Set<String> = []
    private static let limit = 1024

    /// Whether this is the first refusal of `peer`.
    mutating func isFirst(_ peer: String) -> Bool {
        if logged.count >= Self.limit { logged.removeAll() }
        return logged.insert(peer).inserted
    }
}

extension Supervisor {
    /// The error to answer when `sender` may not run `command`, or nil when it may.
    func refusal(of sender: ControlSender, for command: CommandName, asSent: String) -> CommandError? {
        let access = command.access
        let error: CommandError
        switch sender {
        case .local(let uid, _):
            if Self.mayControl(uid: uid, settings: configuration.settings.access) { return nil }
            if access == .readOnly && configuration.settings.access.readOnlyUIDs.contains(uid) { return nil }
            error = .notPermitted(uid: uid, command: asSent, access: access)
        case .remote:
            // Only a non-loopback endpoint lets such peers in; circusd warned at start.
            return nil
        case .unknown(_, let reason):
            error = .unidentifiedSender(command: asSent, why: reason, access: access)
        }
        if refusals.isFirst(sender.peerKey) {
            logger.warning("refused \(asSent) from \(sender): \(error.reason) (further refusals of this peer are not logged)")
        }
        return error
    }

    /// Root, the daemon's own user, `endpoint_owner` and the control grants.
    static func mayControl(uid: UInt32, settings access: ControlAccess) -> Bool {
        uid == 0 || uid == geteuid() || uid == access.endpointOwnerUID || access.controlUIDs.contains(uid)
    }

    /// How `ControlServer` names a tcp peer: the owner of its socket in the kernel's table.
    static func identifyTCPPeer(_ fd: Int32) -> ControlSender {
        switch TCPPeer.owner(ofConnection: fd) {
        case .user(let uid, let address): return .local(uid: uid, peer: address)
        case .elsewhere(let address, let isLoopback):
            if isLoopback { return .unknown(peer: address, reason: "its socket is not in this host's TCP table") }
            return .remote(peer: address)
        case .failed(let reason): return .unknown(peer: "descriptor \(fd)", reason: reason)
        }
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

extension ControlSender {
    /// Identifies a peer for the refusal log: a connection (tcp) or a process (ipc).
    var peerKey: String { description }
}
