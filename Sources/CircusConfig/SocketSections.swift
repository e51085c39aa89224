// `[socket:NAME]` sections: listening sockets circusd binds before any watcher starts and
// hands to the processes of `use_sockets` watchers at the same descriptor number, which
// `$(circus.sockets.NAME)` names in their command line.
//
// Every option is one row of `SocketOptions.all`. Values are checked here, at load, so
// that a bad socket stops circusd before anything starts; only binding (and resolving
// the host name) is left to the daemon.

internal import Glibc
public import OrderedCollections

/// A socket's address family (`family`), as Circus names it.
public enum SocketFamily: String, Hashable, Sendable, CaseIterable {
    case inet = "AF_INET"
    case inet6 = "AF_INET6"
    case unix = "AF_UNIX"
}

/// A socket's type (`type`), as Circus names it.
public enum SocketType: String, Hashable, Sendable, CaseIterable {
    case stream = "SOCK_STREAM"
    case datagram = "SOCK_DGRAM"
    case raw = "SOCK_RAW"
    case reliableDatagram = "SOCK_RDM"
    case sequencedPacket = "SOCK_SEQPACKET"

    /// Whether the socket listens (and so has a backlog): Circus calls `listen()` only
    /// for these.
    public var listens: Bool { self == .stream || self == .sequencedPacket }
}

/// A `[socket:NAME]` section, checked. NAME is lower-cased, as Circus does.
public struct SocketConfig: Hashable, Sendable {
    public var name: String
    /// Resolved with getaddrinfo when the socket is bound (ignored for Unix sockets).
    public var host: String = "localhost"
    /// 0 asks for an ephemeral port (the bound port is read back).
    public var port: Int = 8080
    public var family: SocketFamily = .inet
    public var type: SocketType = .stream
    /// `proto` as written (a protocol name), nil when not given.
    public var proto: String? = nil
    /// The protocol number `proto` names (`getprotobyname`), 0 when not given.
    public var protocolNumber: Int32 = 0
    public var backlog: Int = 2048
    /// A Unix socket's path; setting it makes the socket `AF_UNIX`.
    public var path: String? = nil
    /// The umask applied while a Unix socket is bound (Circus's default 8, that is 0o010).
    public var umask: UInt32 = 8
    /// Remove an existing file at `path` before binding.
    public var replace: Bool = false
    /// `SO_BINDTODEVICE`: bind to this network interface only.
    public var interface: String? = nil
    /// `SO_REUSEPORT`: every process of a watcher that names the socket gets a socket of
    /// its own bound to the same address (the kernel spreads connections between them).
    public var soReusePort: Bool = false
    /// Leave the descriptor blocking (Circus's default makes it non-blocking).
    public var blocking: Bool = false
    /// Every option of the section after substitution: reloadconfig compares them.
    public var raw: OrderedDictionary<String, String> = [:]
    /// Where the section starts.
    public var location: SourceLocation? = nil

    public init(name: String) { self.name = name }

    /// Whether it is a Unix socket (`path` given or `family = AF_UNIX`).
    public var isUnix: Bool { family == .unix }

    /// What reloadconfig compares: the options as written, not where they were written.
    public var comparable: OrderedDictionary<String, String> { raw }
}

/// One option of a `[socket:NAME]` section.
struct SocketOption: Sendable {
    let name: String
    /// Converts the (substituted) text into the configuration.
    let apply: @Sendable (inout SocketConfig, String) throws(ValueParseError) -> Void
}

/// The options of a `[socket:NAME]` section, with Circus's names, defaults and parsers.
enum SocketOptions {
    static let all: [SocketOption] = [
        SocketOption(name: "host") { socket, text throws(ValueParseError) in socket.host = text },
        SocketOption(name: "port") { socket, text throws(ValueParseError) in
            let port = try ValueParser.int(text)
            guard (0...65535).contains(port) else {
                throw ValueParseError(value: text, message: "\(port) is not a port number (0-65535)")
            }
            socket.port = port
        },
        SocketOption(name: "family") { socket, text throws(ValueParseError) in
            guard let family = SocketFamily(rawValue: text.uppercased()) else {
                throw ValueParseError(
                    value: text, message: "\(PythonText.repr(text)) is not a socket family (AF_INET, AF_INET6 or AF_UNIX)")
            }
            // A path makes the socket a Unix socket whatever the family says, as in Circus.
            if socket.path == nil { socket.family = family }
        },
        SocketOption(name: "type") { socket, text throws(ValueParseError) in
            guard let type = SocketType(rawValue: text.uppercased()) else {
                throw ValueParseError(
                    value: text,
                    message: "\(PythonText.repr(text)) is not a socket type (SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_RDM or SOCK_SEQPACKET)")
            }
            socket.type = type
        },
        SocketOption(name: "proto") { socket, text throws(ValueParseError) in
            guard let number = protocolNumber(text) else {
                throw ValueParseError(value: text, message: "\(PythonText.repr(text)) is not a protocol name (see /etc/protocols)")
            }
            socket.proto = text
            socket.protocolNumber = number
        },
        SocketOption(name: "backlog") { socket, text throws(ValueParseError) in
            let backlog = try ValueParser.int(text)
            guard backlog >= 0 else { throw ValueParseError(value: text, message: "must not be negative (\(backlog))") }
            socket.backlog = backlog
        },
        SocketOption(name: "path") { socket, text throws(ValueParseError) in
            guard !text.isEmpty else { throw ValueParseError(value: text, message: "is empty") }
            guard text.utf8.count <= 107 else {
                throw ValueParseError(
                    value: text, message: "the socket path is \(text.utf8.count) bytes long; a Unix socket path takes at most 107")
            }
            socket.path = text
            socket.family = .unix
        },
        SocketOption(name: "umask") { socket, text throws(ValueParseError) in socket.umask = try umask(text) },
        SocketOption(name: "replace") { socket, text throws(ValueParseError) in socket.replace = try ValueParser.bool(text) },
        SocketOption(name: "blocking") { socket, text throws(ValueParseError) in socket.blocking = try ValueParser.bool(text) },
        SocketOption(name: "so_reuseport") { socket, text throws(ValueParseError) in
            socket.soReusePort = try ValueParser.bool(text)
        },
        SocketOption(name: "interface") { socket, text throws(ValueParseError) in
            guard !text.isEmpty, text.utf8.count < 16 else {  // IFNAMSIZ
                throw ValueParseError(value: text, message: "\(PythonText.repr(text)) is not a network interface name")
            }
            socket.interface = text
        },
    ]

    private static let byName: [String: SocketOption] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    /// The option of that name, if sockets have it.
    static func option(_ name: String) -> SocketOption? { byName[name] }

    /// A socket's `umask`. Circus reads it with a decimal `int()`, so `umask = 022` means
    /// 0o26 there; a value written with a leading zero (`022`, `0o22`) is read as the octal
    /// number its writer meant, any other as Circus reads it (the default 8 is 0o010).
    static func umask(_ text: String) throws(ValueParseError) -> UInt32 {
        let stripped = PythonText.strip(text)
        let number = stripped.count > 1 && stripped.hasPrefix("0") ? try ValueParser.octal(stripped) : try ValueParser.int(stripped)
        guard (0...0o777).contains(number) else {
            throw ValueParseError(value: text, message: "\(PythonText.repr(text)) is not a umask (0 to 0o777)")
        }
        return UInt32(number)
    }

    /// `getprotobyname_r` (from /etc/protocols): the number of a protocol name.
    static func protocolNumber(_ name: String) -> Int32? {
        var entry = protoent()
        var result: UnsafeMutablePointer<protoent>? = nil
        var buffer = [CChar](repeating: 0, count: 1024)
        let rc = getprotobyname_r(name, &entry, &buffer, buffer.count, &result)
        guard rc == 0, let result else { return nil }
        return result.pointee.p_proto
    }
}

extension WatcherConfig {
    /// The texts expanded when a process is spawned that can name a socket, by option.
    var socketTemplates: [(option: String, texts: [String])] {
        func texts(_ arguments: CommandArguments?) -> [String] {
            switch arguments {
            case .string(let s)?: return [s]
            case .list(let list)?: return list
            case nil: return []
            }
        }
        return [("cmd", [cmd]), ("args", texts(args)), ("shell_args", texts(shellArgs)),
                ("executable", executable.map { [$0] } ?? [])]
    }

    /// The sockets named in `texts` (`$(circus.sockets.NAME)`, lower-cased, in order).
    static func socketNames(in texts: [String]) -> [String] {
        var names: [String] = []
        for text in texts {
            for key in Substitution.variableNames(in: text) where key.hasPrefix(socketPrefix) {
                let name = String(key.dropFirst(socketPrefix.count))
                if !names.contains(name) { names.append(name) }
            }
        }
        return names
    }

    /// The sockets the watcher's command line names (`$(circus.sockets.NAME)`, lower-cased,
    /// in order of appearance, each once), in cmd, args, shell_args and executable.
    public var namedSockets: [String] { Self.socketNames(in: socketTemplates.flatMap(\.texts)) }

    private static let socketPrefix = "circus.sockets."

    /// The sockets the watcher's processes use: those its command line names and its
    /// `stdin_socket`; with `use_sockets` and none named, every socket (its processes
    /// inherit them all). reloadconfig restarts the watcher when one of them changes, and
    /// an `on_demand` watcher starts on a connection to one of them.
    public func socketsUsed(among sockets: [String]) -> [String] {
        var used = namedSockets
        if let stdin = stdinSocket?.lowercased(), !used.contains(stdin) { used.append(stdin) }
        if used.isEmpty, useSockets { return sockets }
        return used
    }
}

extension ConfigBuilder {
    mutating func buildSocket(
        _ header: String, section: IniSection, items: OrderedDictionary<String, IniValue>
    ) throws(ConfigError) -> SocketConfig {
        // Circus takes the text after the *last* "socket:" and lower-cases it.
        let name = Self.textAfterLast("socket:", in: header).lowercased()
        var socket = SocketConfig(name: name)
        socket.location = section.location
        for (key, value) in items { socket.raw[key] = expandGlobal(value) }
        // `path` first: it decides the family whatever order the section has.
        let ordered = items.keys.filter { $0 == "path" } + items.keys.filter { $0 != "path" }
        for key in ordered {
            let value = items[key]!
            guard let option = SocketOptions.option(key) else {
                // [DEFAULT] keys reach every section (Circus keeps them too).
                if document.defaults[key] == nil {
                    warnings.append("\(value.location): [\(header)] option '\(key)' is not a socket option and is ignored")
                }
                continue
            }
            try convert(socket.raw[key]!, at: value, section: header, option: key) { (text: String) throws(ValueParseError) in
                try option.apply(&socket, text)
            }
        }
        if socket.isUnix, socket.path == nil, let family = items["family"] {
            throw ConfigError(at: family.location, section: header, option: "family", message: "AF_UNIX needs a path")
        }
        // Options of network sockets: a Unix socket cannot have them (so_reuseport = false asks nothing).
        for option in ["interface", "so_reuseport"] where socket.isUnix {
            guard let value = items[option], option == "interface" || socket.soReusePort else { continue }
            throw ConfigError(
                at: value.location, section: header, option: option,
                message: "applies to AF_INET and AF_INET6 sockets, not to the Unix socket \(PythonText.repr(socket.path ?? ""))")
        }
        return socket
    }

    /// The checks between a watcher and the sockets: every `$(circus.sockets.NAME)` and
    /// `stdin_socket` must name a configured socket (Circus leaves an unknown name as
    /// literal text in the command line, or fails at spawn), and an `on_demand` watcher
    /// needs a socket whose connections start it.
    ///
    /// - Parameter locations: where each option of the watcher was written.
    mutating func checkSockets(
        of watcher: WatcherConfig, header: String, sectionLocation: SourceLocation,
        locations: [String: SourceLocation], sockets: [SocketConfig]
    ) throws(ConfigError) {
        let names = sockets.map(\.name)
        func at(_ option: String) -> SourceLocation { locations[option] ?? sectionLocation }
        func known() -> String {
            names.isEmpty ? "there is no [socket:NAME] section" : "the sockets are " + names.joined(separator: ", ")
        }
        for (option, texts) in watcher.socketTemplates {
            for name in WatcherConfig.socketNames(in: texts) where !names.contains(name) {
                throw ConfigError(
                    at: at(option), section: header, option: option,
                    message: "$(circus.sockets.\(name)) names no socket: \(known())")
            }
        }
        if let stdin = watcher.stdinSocket, !names.contains(stdin.lowercased()) {
            throw ConfigError(
                at: at("stdin_socket"), section: header, option: "stdin_socket",
                message: "\(PythonText.repr(stdin)) names no socket: \(known())")
        }
        if !watcher.useSockets, !watcher.namedSockets.isEmpty {
            warnings.append(
                "\(at("cmd")): [\(header)] names socket \(watcher.namedSockets[0]) but use_sockets is false: "
                    + "the process gets the descriptor number with the descriptor closed")
        }
        if watcher.onDemand {
            let used = watcher.socketsUsed(among: names)
            if used.isEmpty {
                throw ConfigError(
                    at: at("on_demand"), section: header, option: "on_demand",
                    message: "the watcher uses no socket whose connections could start it: name one with "
                        + "$(circus.sockets.NAME) or stdin_socket, or set use_sockets (\(known()))")
            }
            if let shared = sockets.first(where: { used.contains($0.name) && $0.soReusePort }) {
                throw ConfigError(
                    at: at("on_demand"), section: header, option: "on_demand",
                    message: "socket \(shared.name) has so_reuseport: each process binds a socket of its own, "
                        + "so there is no socket to watch while the watcher is stopped")
            }
        }
    }
}
