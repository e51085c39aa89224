// Endpoint addresses checked at load time, so that a typo in `endpoint`,
// `pubsub_endpoint` or `stats_endpoint` is reported with its file and line before
// anything starts, rather than as a bind failure (or, for Circus, a traceback).

/// What a configured ZeroMQ endpoint is bound for: the transports libzmq accepts depend
/// on the socket type.
enum EndpointRole {
    /// The control endpoint: a ROUTER, which needs a connection-oriented transport.
    case control
    /// The pub/sub and stats endpoints: PUB sockets, which multicast transports also carry.
    case publisher
}

/// Checks the text of a ZeroMQ endpoint against what libzmq's bind accepts.
enum EndpointCheck {
    /// Transports every role accepts. libzmq decides at bind whether this build and
    /// kernel offer tipc, vmci and ws (the error then names the endpoint).
    private static let connectionTransports: Set<String> = ["tcp", "ipc", "tipc", "vmci", "ws", "wss"]
    /// Multicast transports: libzmq binds them on PUB sockets only.
    private static let multicastTransports: Set<String> = ["pgm", "epgm", "norm"]
    /// `sizeof(sockaddr_un.sun_path)` minus the terminating NUL.
    static let maximumSocketPathBytes = 107

    /// Why `endpoint` cannot be bound for `role`, or nil when it can be tried.
    ///
    /// Checks the transport, a tcp address's `HOST:PORT` shape and port range, and an
    /// ipc path's presence and length. Whether a tcp host names a local interface is
    /// left to the bind.
    static func problem(in endpoint: String, role: EndpointRole) -> String? {
        let shown = PythonText.repr(endpoint)
        guard !endpoint.isEmpty else { return "is empty: write tcp://HOST:PORT or ipc:///PATH" }
        guard let separator = endpoint.firstRange(of: "://") else {
            return "\(shown) is not a ZeroMQ endpoint: write tcp://HOST:PORT or ipc:///PATH"
        }
        let scheme = String(endpoint[..<separator.lowerBound])
        let address = String(endpoint[separator.upperBound...])
        switch scheme {
        case "tcp":
            return tcpProblem(address, shown: shown)
        case "ipc":
            if address.isEmpty { return "\(shown) has no path: write ipc:///PATH" }
            let bytes = address.utf8.count
            if bytes > maximumSocketPathBytes {
                return "\(shown): the socket path is \(bytes) bytes long; "
                    + "a Unix socket path takes at most \(maximumSocketPathBytes)"
            }
            return nil
        case "inproc":
            return "\(shown): an inproc endpoint is reachable only from inside circusd; use tcp:// or ipc://"
        case "udp":
            return "\(shown): libzmq binds udp only on RADIO and DISH sockets; use tcp:// or ipc://"
        case _ where multicastTransports.contains(scheme):
            if role == .publisher { return nil }
            return "\(shown): \(scheme) is a multicast transport for PUB/SUB only; "
                + "the control endpoint needs tcp:// or ipc://"
        case _ where connectionTransports.contains(scheme):
            return nil
        default:
            return "\(shown): libzmq has no \(PythonText.repr(scheme)) transport; use tcp:// or ipc://"
        }
    }

    /// `HOST:PORT` with a non-empty host and a port that is `*` or 0-65535 (libzmq
    /// would silently take 99999 modulo 65536).
    private static func tcpProblem(_ address: String, shown: String) -> String? {
        guard let colon = address.lastIndex(of: ":"), !address.hasSuffix("]") else {
            return "\(shown) has no port: write tcp://HOST:PORT (PORT a number or *)"
        }
        let host = address[..<colon]
        let port = address[address.index(after: colon)...]
        if host.isEmpty {
            return "\(shown) has no host: write tcp://HOST:PORT (HOST an IP address, an interface name or *)"
        }
        if port == "*" { return nil }
        guard !port.isEmpty, port.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let number = Int(port),
              number <= 65535
        else {
            return "\(shown): \(PythonText.repr(String(port))) is not a port (0-65535, or * for any free port)"
        }
        return nil
    }
}
