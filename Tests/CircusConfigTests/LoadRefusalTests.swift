// Configurations that Circus accepts and then misbehaves on, refused at load with the
// file, the line and the option.

import CircusConfig
import Testing

@Suite("load refusals")
struct LoadRefusalTests {
    /// (INI text, the exact error description).
    static let cases: [(String, String)] = [
        // Sections without a name: Circus would run a watcher called "".
        ("[watcher:]\ncmd = sleep 1\n",
         "circus.ini:1: [watcher:] the section has no name: write [watcher:NAME]"),
        ("[watcher:ok]\ncmd = sleep 1\n\n[watcher: ]\ncmd = sleep 2\n",
         "circus.ini:4: [watcher: ] the section has no name: write [watcher:NAME]"),
        ("[watcher:]\n",
         "circus.ini:1: [watcher:] the section has no name: write [watcher:NAME]"),
        ("[socket:]\nhost = 127.0.0.1\nport = 0\n",
         "circus.ini:1: [socket:] the section has no name: write [socket:NAME]"),
        ("[plugin:]\nuse = x.Y\n",
         "circus.ini:1: [plugin:] the section has no name: write [plugin:NAME]"),
        ("[watcher:w]\ncmd = sleep 1\n\n[env:]\nA = 1\n",
         "circus.ini:4: [env:] the section has no name: write [env:NAMES] (watcher names or patterns, comma-separated)"),
        ("[watcher:w]\ncmd = sleep 1\nname =\n",
         "circus.ini:3: [watcher:w] name: is empty"),

        // A header missing its closing bracket, which Python would read as an option.
        ("[watcher:a]\ncmd = sleep 1\n[watcher:b\ncmd = sleep 2\n",
         "circus.ini:3: a section header needs its closing ']': '[watcher:b'"),
        ("[circus]\ncheck_delay = 1\n[env\nA = 1\n",
         "circus.ini:3: a section header needs its closing ']': '[env'"),
        ("[circus]\n[]\n",
         "circus.ini:2: a section header needs a name: '[]'"),

        // Endpoints libzmq would not bind.
        ("[circus]\nendpoint = 127.0.0.1:5555\n",
         "circus.ini:2: [circus] endpoint: '127.0.0.1:5555' is not a ZeroMQ endpoint: write tcp://HOST:PORT or ipc:///PATH"),
        ("[circus]\nendpoint =\n",
         "circus.ini:2: [circus] endpoint: is empty: write tcp://HOST:PORT or ipc:///PATH"),
        ("[circus]\nendpoint = http://127.0.0.1:5555\n",
         "circus.ini:2: [circus] endpoint: 'http://127.0.0.1:5555': libzmq has no 'http' transport; use tcp:// or ipc://"),
        ("[circus]\npubsub_endpoint = tpc://127.0.0.1:5556\n",
         "circus.ini:2: [circus] pubsub_endpoint: 'tpc://127.0.0.1:5556': libzmq has no 'tpc' transport; use tcp:// or ipc://"),
        ("[circus]\nstats_endpoint = udp://127.0.0.1:5557\n",
         "circus.ini:2: [circus] stats_endpoint: 'udp://127.0.0.1:5557': libzmq binds udp only on RADIO and DISH sockets; use tcp:// or ipc://"),
        ("[circus]\nendpoint = inproc://control\n",
         "circus.ini:2: [circus] endpoint: 'inproc://control': an inproc endpoint is reachable only from inside circusd; use tcp:// or ipc://"),
        ("[circus]\nendpoint = epgm://eth0;239.192.1.1:5555\n",
         "circus.ini:2: [circus] endpoint: 'epgm://eth0;239.192.1.1:5555': epgm is a multicast transport for PUB/SUB only; the control endpoint needs tcp:// or ipc://"),
        ("[circus]\nendpoint = tcp://127.0.0.1\n",
         "circus.ini:2: [circus] endpoint: 'tcp://127.0.0.1' has no port: write tcp://HOST:PORT (PORT a number or *)"),
        ("[circus]\nendpoint = tcp://[::1]\n",
         "circus.ini:2: [circus] endpoint: 'tcp://[::1]' has no port: write tcp://HOST:PORT (PORT a number or *)"),
        ("[circus]\npubsub_endpoint = tcp://:5556\n",
         "circus.ini:2: [circus] pubsub_endpoint: 'tcp://:5556' has no host: write tcp://HOST:PORT (HOST an IP address, an interface name or *)"),
        ("[circus]\nendpoint = tcp://127.0.0.1:99999\n",
         "circus.ini:2: [circus] endpoint: 'tcp://127.0.0.1:99999': '99999' is not a port (0-65535, or * for any free port)"),
        ("[circus]\nendpoint = tcp://127.0.0.1:ctl\n",
         "circus.ini:2: [circus] endpoint: 'tcp://127.0.0.1:ctl': 'ctl' is not a port (0-65535, or * for any free port)"),
        ("[circus]\nendpoint = tcp://127.0.0.1:\n",
         "circus.ini:2: [circus] endpoint: 'tcp://127.0.0.1:': '' is not a port (0-65535, or * for any free port)"),
        ("[circus]\nendpoint = ipc://\n",
         "circus.ini:2: [circus] endpoint: 'ipc://' has no path: write ipc:///PATH"),
        ("[circus]\nendpoint = ipc:///" + String(repeating: "d", count: 107) + "\n",
         "circus.ini:2: [circus] endpoint: 'ipc:///" + String(repeating: "d", count: 107)
            + "': the socket path is 108 bytes long; a Unix socket path takes at most 107"),
        // A value inherited from [DEFAULT] points at the [DEFAULT] line.
        ("[DEFAULT]\nendpoint = ipc//x\n\n[circus]\ncheck_delay = 1\n",
         "circus.ini:2: [circus] endpoint: 'ipc//x' is not a ZeroMQ endpoint: write tcp://HOST:PORT or ipc:///PATH"),

        // endpoint_owner must name a user.
        ("[circus]\nendpoint = ipc:///tmp/x.sock\nendpoint_owner = no-such-user-circus\n",
         "circus.ini:3: [circus] endpoint_owner: no user is named 'no-such-user-circus'"),
        ("[circus]\nendpoint_owner = 4294967294\n",
         "circus.ini:2: [circus] endpoint_owner: no user has id 4294967294"),
        ("[circus]\nendpoint_owner = 99999999999\n",
         "circus.ini:2: [circus] endpoint_owner: 99999999999 is not a user id"),
        ("[circus]\nendpoint_owner =\n",
         "circus.ini:2: [circus] endpoint_owner: no user is named ''"),
    ]

    @Test(arguments: cases)
    func refusedWithLocation(_ text: String, _ expected: String) {
        #expect(loadError(text)?.description == expected)
    }

    /// Endpoints libzmq binds are accepted as they are.
    static let accepted: [String] = [
        "[circus]\nendpoint = tcp://127.0.0.1:5555\npubsub_endpoint = tcp://[::1]:0\n",
        "[circus]\npubsub_endpoint = tcp://*:*\n",
        "[circus]\nendpoint = ipc:///tmp/ctl.sock\npubsub_endpoint = ipc://@abstract\n",
        "[circus]\nendpoint = tcp://lo:65535\npubsub_endpoint = epgm://eth0;239.192.1.1:5556\n",
        "[circus]\nendpoint = ipc:///" + String(repeating: "d", count: 106) + "\n",
        "[circus]\nendpoint_owner = root\n",
        "[circus]\nendpoint_owner = 0\n",
    ]

    @Test(arguments: accepted)
    func validEndpointsLoad(_ text: String) throws {
        _ = try loadINI(text)
    }
}
