// Every input circusd must refuse, with the file, line, section and option in the message.

import CircusConfig
import OrderedCollections
import Testing

@Suite("configuration errors")
struct ConfigErrorTests {
    /// (INI text, the exact error description).
    static let cases: [(String, String)] = [
        // Value parsers.
        ("[watcher:w]\ncmd = x\nuse_sockets = maybe\n",
         "circus.ini:3: [watcher:w] use_sockets: 'maybe' is not a boolean"),
        ("[watcher:web]\ncmd = x\nnumprocesses = abc\n",
         "circus.ini:3: [watcher:web] numprocesses: 'abc' is not an integer"),
        ("[watcher:w]\ncmd = x\ngraceful_timeout = soon\n",
         "circus.ini:3: [watcher:w] graceful_timeout: 'soon' is not a number"),
        ("[circus]\ncheck_delay = fast\n",
         "circus.ini:2: [circus] check_delay: 'fast' is not a number"),
        ("[circus]\nhttpd_port = 80.5\n",
         "circus.ini:2: [circus] httpd_port: '80.5' is not an integer"),
        ("[circus]\ndebug = 2\n",
         "circus.ini:2: [circus] debug: '2' is not a boolean"),
        ("[watcher:w]\ncmd = x\nmax_age = old\n",
         "circus.ini:3: [watcher:w] max_age: 'old' is not an integer"),
        ("[watcher:w]\ncmd = x\nmax_retry = \n",
         "circus.ini:3: [watcher:w] max_retry: '' is not an integer"),
        // warmup_delay is an int in INI files.
        ("[circus]\nwarmup_delay = 0.5\n",
         "circus.ini:2: [circus] warmup_delay: '0.5' is not an integer"),
        ("[watcher:w]\ncmd = x\nwarmup_delay = 0.5\n",
         "circus.ini:3: [watcher:w] warmup_delay: '0.5' is not an integer"),
        ("[watcher:w]\ncmd = x\nwarmup_delay = -1\n",
         "circus.ini:3: [watcher:w] warmup_delay: must not be negative (-1)"),
        // umask.
        ("[circus]\numask = 089\n",
         "circus.ini:2: [circus] umask: '089' is not an octal number"),
        ("[circus]\numask =\n",
         "circus.ini:2: [circus] umask: '' is not an octal number"),
        ("[circus]\numask = -7\n",
         "circus.ini:2: [circus] umask: '-7' is not a umask"),
        // cmd.
        ("[watcher:w]\nnumprocesses = 1\n",
         "circus.ini:1: [watcher:w] cmd: missing: every watcher needs a command"),
        ("[watcher:w]\ncmd =\n",
         "circus.ini:2: [watcher:w] cmd: is empty"),
        ("[watcher:w]\ncmd = \"\"\n",
         "circus.ini:2: [watcher:w] cmd: is empty"),
        ("[watcher:w]\ncmd = echo \"unclosed\n",
         "circus.ini:2: [watcher:w] cmd: 'echo \"unclosed' cannot be split into words: No closing quotation"),
        ("[watcher:w]\ncmd = x\nargs = a\\\n",
         "circus.ini:3: [watcher:w] args: 'a\\\\' cannot be split into words: No escaped character"),
        // Signals, counts, flags that depend on each other.
        ("[watcher:w]\ncmd = x\nstop_signal = bogus\n",
         "circus.ini:3: [watcher:w] stop_signal: 'bogus' is not a signal"),
        ("[watcher:w]\ncmd = x\nstop_signal = RTMIN+40\n",
         "circus.ini:3: [watcher:w] stop_signal: 'RTMIN+40' is not a signal"),
        ("[watcher:w]\ncmd = x\nnumprocesses = -1\n",
         "circus.ini:3: [watcher:w] numprocesses: must not be negative (-1)"),
        ("[watcher:w]\ncmd = x\nsingleton = true\nnumprocesses = 2\n",
         "circus.ini:4: [watcher:w] numprocesses: cannot have 2 processes with a singleton watcher"),
        ("[watcher:w]\ncmd = x\ncopy_path = true\n",
         "circus.ini:3: [watcher:w] copy_path: is not supported yet by this version of circusd: circusd has no Python "
            + "sys.path to copy; set PYTHONPATH in an [env:NAME] section instead"),
        ("[watcher:w]\ncmd = x\nvirtualenv = /venv\n",
         "circus.ini:3: [watcher:w] virtualenv: virtualenv needs copy_env = true"),
        // rlimits.
        ("[watcher:w]\ncmd = x\nrlimit_bogus = 1\n",
         "circus.ini:3: [watcher:w] rlimit_bogus: 'bogus' is not a Linux resource limit (known: as, core, cpu, data, "
            + "fsize, memlock, msgqueue, nice, nofile, nproc, ofile, rss, rtprio, rttime, sigpending, stack)"),
        ("[watcher:w]\ncmd = x\nrlimit_nofile = lots\n",
         "circus.ini:3: [watcher:w] rlimit_nofile: 'lots' is not an integer"),
        ("[watcher:w]\ncmd = x\nrlimit_nofile = -5\n",
         "circus.ini:3: [watcher:w] rlimit_nofile: '-5' is not a limit (use a number >= 0, or nothing for unlimited)"),
        // Hooks.
        ("[watcher:w]\ncmd = x\nhooks.before_start = my-app.hooks.check\n",
         "circus.ini:3: [watcher:w] hooks.before_start: 'my-app.hooks.check' is not a hook target: expected "
            + "'path/to/lib.so:symbol', 'lib.so:fn(args) -> type' or a Python 'package.module.function'"),
        ("[watcher:w]\ncmd = x\nhooks.before_start = hooks.so:check, perhaps\n",
         "circus.ini:3: [watcher:w] hooks.before_start: 'perhaps' is not a boolean"),
        ("[watcher:w]\ncmd = x\nhooks.after_start =\n",
         "circus.ini:3: [watcher:w] hooks.after_start: the hook target is empty: "
            + "expected 'path/to/lib.so:symbol', 'lib.so:fn(args) -> type' or a Python 'package.module.function'"),
        ("[watcher:w]\ncmd = x\nhooks.before_launch = h.so:check\n",
         "circus.ini:3: [watcher:w] hooks.before_launch: unknown hook 'before_launch': hooks are before_start, "
            + "after_start, before_spawn, after_spawn, before_stop, after_stop, before_signal, after_signal, "
            + "before_reap, after_reap, extended_stats"),
        ("[watcher:w]\ncmd = x\nhook_timeout = 0\n",
         "circus.ini:3: [watcher:w] hook_timeout: must be more than 0 seconds"),
        // Declared signatures: types and names are checked against what the hook passes.
        ("[watcher:w]\ncmd = x\nhooks.before_signal = ./h.so:check(pid: int, signum: quux) -> bool\n",
         "circus.ini:3: [watcher:w] hooks.before_signal: unknown type 'quux' for signum: use one of int, int32_t, "
            + "int64_t, long, unsigned, uint64_t, double, float, bool, const char *"),
        ("[watcher:w]\ncmd = x\nhooks.before_start = ./h.so:check(pid: int) -> bool\n",
         "circus.ini:3: [watcher:w] hooks.before_start: before_start passes no argument 'pid': it passes watcher, hook_name"),
        ("[watcher:w]\ncmd = x\nhooks.after_spawn = ./h.so:check(pid: int, pid: long) -> bool\n",
         "circus.ini:3: [watcher:w] hooks.after_spawn: parameter 'pid' is declared twice"),
        ("[watcher:w]\ncmd = x\nhooks.after_spawn = ./h.so:check(pid: double) -> bool\n",
         "circus.ini:3: [watcher:w] hooks.after_spawn: pid cannot be passed as double: declare it as an integer type "
            + "(int, int64_t, ...)"),
        ("[watcher:w]\ncmd = x\nhooks.after_spawn = ./h.so:check(watcher) -> bool\n",
         "circus.ini:3: [watcher:w] hooks.after_spawn: parameter 'watcher' is not 'name: type' (for example 'pid: int')"),
        ("[watcher:w]\ncmd = x\nhooks.after_spawn = ./h.so:check(pid: int) -> double\n",
         "circus.ini:3: [watcher:w] hooks.after_spawn: return type 'double' is not one of bool, int (or another "
            + "integer type), void"),
        // Streams.
        ("[watcher:w]\ncmd = x\nstdout_stream = FileStream\n",
         "circus.ini:3: [watcher:w] stdout_stream: not a stream option: use stdout_stream.<key> or stderr_stream.<key>"),
        // Names.
        ("[watcher:Web]\ncmd = x\n[watcher:web]\ncmd = y\n",
         "circus.ini:3: [watcher:web] watcher name 'web' clashes with 'Web' of [watcher:Web]: "
            + "watcher names must differ in more than letter case"),
        ("[watcher:a]\ncmd = x\n[watcher:b]\ncmd = y\nname = a\n",
         "circus.ini:3: [watcher:b] watcher name 'a' clashes with 'a' of [watcher:a]: "
            + "watcher names must differ in more than letter case"),
        ("[socket:Web]\nport = 1\n[socket:web]\nport = 2\n",
         "circus.ini:3: [socket:web] socket name 'web' clashes with 'web' of [socket:Web]: "
            + "socket names must differ in more than letter case"),
        // Sockets and plugins.
        ("[socket:s]\nport = http\n",
         "circus.ini:2: [socket:s] port: 'http' is not an integer"),
        ("[socket:s]\nport = 70000\n",
         "circus.ini:2: [socket:s] port: 70000 is not a port number (0-65535)"),
        ("[socket:s]\nfamily = AF_PACKET\n",
         "circus.ini:2: [socket:s] family: 'AF_PACKET' is not a socket family (AF_INET, AF_INET6 or AF_UNIX)"),
        ("[socket:s]\ntype = stream\n",
         "circus.ini:2: [socket:s] type: 'stream' is not a socket type "
            + "(SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_RDM or SOCK_SEQPACKET)"),
        ("[socket:s]\nreplace = maybe\n",
         "circus.ini:2: [socket:s] replace: 'maybe' is not a boolean"),
        ("[socket:s]\nproto = nosuchproto\n",
         "circus.ini:2: [socket:s] proto: 'nosuchproto' is not a protocol name (see /etc/protocols)"),
        ("[socket:s]\numask = 0999\n",
         "circus.ini:2: [socket:s] umask: '0999' is not an octal number"),
        ("[socket:s]\numask = 1000\n",
         "circus.ini:2: [socket:s] umask: '1000' is not a umask (0 to 0o777)"),
        ("[socket:s]\nfamily = AF_UNIX\n",
         "circus.ini:2: [socket:s] family: AF_UNIX needs a path"),
        ("[socket:s]\npath = /tmp/s.sock\nso_reuseport = true\n",
         "circus.ini:3: [socket:s] so_reuseport: applies to AF_INET and AF_INET6 sockets, not to the Unix socket '/tmp/s.sock'"),
        ("[socket:s]\npath = /tmp/s.sock\ninterface = lo\n",
         "circus.ini:3: [socket:s] interface: applies to AF_INET and AF_INET6 sockets, not to the Unix socket '/tmp/s.sock'"),
        ("[socket:s]\nbacklog = -1\n",
         "circus.ini:2: [socket:s] backlog: must not be negative (-1)"),
        ("[socket:s]\ninterface = averyveryverylongname\n",
         "circus.ini:2: [socket:s] interface: 'averyveryverylongname' is not a network interface name"),
        // Watchers and sockets.
        ("[socket:web]\nport = 0\n[watcher:w]\ncmd = server --fd $(circus.sockets.Wbe)\nuse_sockets = true\n",
         "circus.ini:4: [watcher:w] cmd: $(circus.sockets.wbe) names no socket: the sockets are web"),
        ("[watcher:w]\ncmd = server\nargs = --fd ((circus.sockets.web))\n",
         "circus.ini:3: [watcher:w] args: $(circus.sockets.web) names no socket: there is no [socket:NAME] section"),
        ("[socket:web]\nport = 0\n[watcher:w]\ncmd = server\nstdin_socket = api\n",
         "circus.ini:5: [watcher:w] stdin_socket: 'api' names no socket: the sockets are web"),
        ("[socket:web]\nport = 0\n[watcher:w]\ncmd = server\non_demand = true\n",
         "circus.ini:5: [watcher:w] on_demand: the watcher uses no socket whose connections could start it: name one "
            + "with $(circus.sockets.NAME) or stdin_socket, or set use_sockets (the sockets are web)"),
        ("[socket:web]\nport = 0\nso_reuseport = true\n[watcher:w]\ncmd = server $(circus.sockets.web)\n"
            + "use_sockets = true\non_demand = true\n",
         "circus.ini:7: [watcher:w] on_demand: socket web has so_reuseport: each process binds a socket of its own, "
            + "so there is no socket to watch while the watcher is stopped"),
        ("[plugin:p]\npriority = 1\n",
         "circus.ini:1: [plugin:p] use: missing: a plugin needs 'use'"),
        ("[plugin:p]\nuse = mine.Plugin\npriority = high\n",
         "circus.ini:3: [plugin:p] priority: 'high' is not an integer"),
        // Syntax.
        ("orphan = 1\n[circus]\n",
         "circus.ini:1: line before any [section] header: 'orphan = 1'"),
        ("[circus]\nnot an option\n",
         "circus.ini:2: [circus] malformed line (expected 'name = value', a [section] header or a comment): 'not an option'"),
    ]

    @Test("invalid configurations are refused with file:line: [section] option: message", arguments: cases)
    func refused(_ text: String, _ expected: String) {
        let error = loadError(text)
        #expect(error?.description == expected)
    }

    @Test("a bad value inherited from [DEFAULT] points at its line, in the section that used it")
    func errorFromDefault() {
        let error = loadError("[DEFAULT]\nnumprocesses = many\n[watcher:w]\ncmd = x\n")
        #expect(error == ConfigError(
            file: "circus.ini", line: 2, section: "watcher:w", option: "numprocesses", message: "'many' is not an integer"))
    }

    @Test("substituted values are checked after substitution")
    func errorAfterSubstitution() {
        let error = loadError("[env]\nN = lots\n[watcher:w]\ncmd = x\nnumprocesses = $(circus.env.N)\n")
        #expect(error?.description == "circus.ini:5: [watcher:w] numprocesses: 'lots' is not an integer")
    }

    @Test("description leaves out the parts that are nil")
    func descriptionParts() {
        #expect(ConfigError(message: "m").description == "m")
        #expect(ConfigError(file: "f", line: 3, message: "m").description == "f:3: m")
        #expect(ConfigError(section: "s", option: "o", message: "m").description == "[s] o: m")
        #expect(ConfigError(at: SourceLocation(file: "a.ini", line: 9), section: "circus", option: "x", message: "bad").description
            == "a.ini:9: [circus] x: bad")
    }
}
