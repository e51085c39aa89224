// Building the typed model: [circus], watchers, sockets, plugins.
// Expected values were checked against Python Circus 0.19's `get_config`.

import CircusConfig
import OrderedCollections
import Testing

@Suite("[circus] settings")
struct CircusSettingsTests {
    @Test("defaults when [circus] is absent or empty")
    func defaults() throws {
        for text in ["[watcher:w]\ncmd = x\n", "[circus]\n[watcher:w]\ncmd = x\n"] {
            let settings = try loadConfiguration(text).settings
            #expect(settings == CircusSettings())
            #expect(settings.checkDelay == 5.0)
            #expect(settings.endpoint == "tcp://127.0.0.1:5555")
            #expect(settings.pubsubEndpoint == "tcp://127.0.0.1:5556")
            #expect(settings.statsEndpoint == "tcp://127.0.0.1:5557")
            #expect(settings.multicastEndpoint == "udp://237.219.251.97:12027")
            #expect(settings.statsd == false)
            #expect(settings.umask == nil)
        }
    }

    @Test("every option, typed, with $(circus.env.*) from the environment and [env]")
    func allOptions() throws {
        let settings = try parseConfiguration("""
            [env]
            SOCKDIR = /run/circus
            SOCKOWNER = root
            [circus]
            check_delay = 2.5
            endpoint = tcp://127.0.0.1:$(circus.env.PORT)
            endpoint_owner = $(circus.env.SOCKOWNER)
            pubsub_endpoint : ipc://$(circus.env.sockdir)/pub.sock
            multicast_endpoint =
            statsd = yes
            umask = 027
            warmup_delay = 3
            httpd = 1
            httpd_host = 0.0.0.0
            httpd_port = 9000
            debug = on
            debug_gc = true
            pidfile = /tmp/circus.pid   ; comment
            loglevel = debug;notcomment
            logoutput = -
            loggerconfig = /etc/log.ini
            fqdn_prefix = prefix
            ssh_server = user@host
            """).settings
        #expect(settings.checkDelay == 2.5)
        #expect(settings.endpoint == "tcp://127.0.0.1:8000")
        #expect(settings.endpointOwner == "root")
        #expect(settings.pubsubEndpoint == "ipc:///run/circus/pub.sock")
        #expect(settings.multicastEndpoint == "")
        #expect(settings.statsd)
        #expect(settings.umask == 0o27)
        #expect(settings.warmupDelay == 3)
        #expect(settings.httpd)
        #expect(settings.httpdHost == "0.0.0.0")
        #expect(settings.httpdPort == 9000)
        #expect(settings.debug)
        #expect(settings.debugGc)
        #expect(settings.pidfile == "/tmp/circus.pid")
        #expect(settings.loglevel == "debug;notcomment")
        #expect(settings.logoutput == "-")
        #expect(settings.loggerconfig == "/etc/log.ini")
        #expect(settings.fqdnPrefix == "prefix")
        #expect(settings.sshServer == "user@host")
    }

    // An empty stats_endpoint also turns statsd on in Circus; we refuse it at load.
    @Test("setting stats_endpoint turns statsd on", arguments: ["tcp://127.0.0.1:6000"])
    func statsEndpointForcesStatsd(_ endpoint: String) throws {
        let settings = try parseConfiguration("[circus]\nstatsd = false\nstats_endpoint = \(endpoint)\n").settings
        #expect(settings.statsd)
        #expect(settings.statsEndpoint == endpoint)
    }

    @Test("umask is octal", arguments: [("022", UInt32(0o22)), ("0o22", 0o22), ("0", 0), ("777", 0o777), (" 7 ", 7)])
    func umask(_ text: String, _ expected: UInt32) throws {
        #expect(try loadConfiguration("[circus]\numask = \(text)\n").settings.umask == expected)
    }

    @Test("[DEFAULT] applies to [circus] only when [circus] exists")
    func defaultsAndCircus() throws {
        #expect(try loadConfiguration("[DEFAULT]\ncheck_delay = 7\n[watcher:w]\ncmd = x\n").settings.checkDelay == 5)
        #expect(try loadConfiguration("[DEFAULT]\ncheck_delay = 7\n[circus]\n[watcher:w]\ncmd = x\n").settings.checkDelay == 7)
    }
}

@Suite("watchers")
struct WatcherTests {
    @Test("defaults are Circus's INI defaults; working_dir is the current directory")
    func defaults() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        try dir.write("circus.ini", "[watcher:w]\ncmd = sleep 1\n")
        let w = try ConfigLoader.load(path: "circus.ini", environment: [:], currentDirectory: dir.path, accounts: testAccounts).configuration.watchers[0]
        var expected = WatcherConfig(name: "w", cmd: "sleep 1")
        expected.workingDir = dir.path
        expected.location = SourceLocation(file: "circus.ini", line: 1)
        expected.optionLocations = ["cmd": SourceLocation(file: "circus.ini", line: 2)]
        #expect(w == expected)
        #expect(w.numprocesses == 1)
        #expect(w.stopSignal == 15)
        #expect(w.maxRetry == 5)
        #expect(w.gracefulTimeout == 30)
        #expect(w.autostart && w.respawn && w.closeChildStdin && w.checkFlapping)
        #expect(!w.shell && !w.copyEnv && !w.useSockets && !w.singleton)
        #expect(w.maxAgeVariance == 30)
        #expect(w.args == nil)
    }

    @Test("every typed option")
    func typedOptions() throws {
        let w = try loadWatcher("""
            [watcher:web]
            cmd = python -m http.server
            args = --bind 127.0.0.1
            numprocesses = 3
            warmup_delay = 2
            working_dir = /srv
            shell = true
            shell_args = -x
            uid = nobody
            gid = nogroup
            executable = /usr/bin/python3
            copy_env = true
            copy_path = false
            send_hup = on
            stop_signal = quit
            stop_children = 1
            max_retry = -1
            graceful_timeout = 1.5
            priority = 7
            singleton = false
            use_sockets = FALSE
            on_demand = no
            autostart = off
            respawn = false
            close_child_stdin = false
            close_child_stdout = yes
            close_child_stderr = yes
            check_flapping = false
            max_age = 60
            max_age_variance = 5
            """)
        #expect(w.name == "web")
        #expect(w.cmd == "python -m http.server")
        #expect(w.args == .string("--bind 127.0.0.1"))
        #expect(w.numprocesses == 3)
        #expect(w.warmupDelay == 2)
        #expect(w.workingDir == "/srv")
        #expect(w.shell)
        #expect(w.shellArgs == .string("-x"))
        #expect(w.uid == "nobody")
        #expect(w.gid == "nogroup")
        #expect(w.executable == "/usr/bin/python3")
        #expect(w.copyEnv && !w.copyPath)
        #expect(w.sendHup)
        #expect(w.stopSignal == 3)
        #expect(w.stopChildren)
        #expect(w.maxRetry == -1)
        #expect(w.gracefulTimeout == 1.5)
        #expect(w.priority == 7)
        #expect(!w.singleton)
        #expect(!w.useSockets && !w.onDemand)
        #expect(!w.autostart && !w.respawn && !w.closeChildStdin)
        #expect(w.closeChildStdout && w.closeChildStderr)
        #expect(!w.checkFlapping)
        #expect(w.maxAge == 60)
        #expect(w.maxAgeVariance == 5)
        // check_flapping is free-form in Circus, so `options` reports it.
        #expect(w.extraOptions == ["check_flapping": "false"])
        #expect(w.location == SourceLocation(file: "circus.ini", line: 1))
    }

    @Test("stop_signal forms", arguments: [
        ("9", Int32(9)), ("9 ", 9), ("TERM", 15), ("sigterm", 15), ("SIGKILL", 9), ("quit", 3), ("RTMIN+1", 35), ("rtmin+2", 36),
        ("hup", 1), ("CLD", 17),
    ])
    func stopSignal(_ text: String, _ expected: Int32) throws {
        #expect(try loadWatcher("[watcher:w]\ncmd = x\nstop_signal = \(text)\n").stopSignal == expected)
    }

    @Test("watchers are sorted by name in plain code-point order")
    func sortedByName() throws {
        let names = try loadConfiguration("""
            [watcher:web]
            cmd = x
            [watcher:Alpha]
            cmd = x
            [watcher:beta]
            cmd = x
            [watcher:B]
            cmd = x
            [watcher:_u]
            cmd = x
            """).watchers.map(\.name)
        #expect(names == ["Alpha", "B", "_u", "beta", "web"])
    }

    @Test("names keep case and spaces; only the first 'watcher:' is removed")
    func names() throws {
        let names = try loadConfiguration("""
            [watcher:My Web App]
            cmd = x
            [watcher:watcher:x]
            cmd = x
            """).watchers.map(\.name)
        #expect(names == ["My Web App", "watcher:x"])
    }

    @Test("a 'name' option renames the watcher, as in Circus")
    func nameOption() throws {
        #expect(try loadWatcher("[watcher:a]\ncmd = x\nname = b\n").name == "b")
    }

    @Test("free-form options keep order, case and values (after substitution)")
    func freeFormOptions() throws {
        let w = try loadWatcher("""
            [watcher:w]
            cmd = x
            flapping.max_retry = 2
            CMD = upper-case is another option
            retry_in = 3
            home = $(circus.env.HOME)
            """)
        #expect(Array(w.extraOptions.keys) == ["flapping.max_retry", "CMD", "retry_in", "home"])
        #expect(w.extraOptions["CMD"] == "upper-case is another option")
        #expect(w.extraOptions["home"] == "/home/tester")
        #expect(w.cmd == "x")
    }

    @Test("hooks: point, target, declared signature, ignore_failure and line")
    func hooks() throws {
        let w = try loadWatcher("""
            [watcher:w]
            cmd = x
            hooks.before_start = ./h.so:check, true
            hooks.before_signal = /opt/h.so:veto(signum: int32_t, pid: long, watcher: const char*) -> bool
            hook_timeout = 2.5
            """)
        #expect(Array(w.hooks.keys) == [.beforeStart, .beforeSignal])
        let start = try #require(w.hooks[.beforeStart])
        #expect(start.target.library == "./h.so" && start.target.symbol == "check")
        #expect(start.signature == nil && start.ignoreFailure && w.location(of: "hooks.before_start")?.line == 3)
        let signal = try #require(w.hooks[.beforeSignal])
        #expect(signal.signature?.parameters.map(\.argument) == [.signum, .pid, .watcher])
        #expect(signal.signature?.parameters.map(\.type) == [.int32, .long, .string])
        #expect(signal.signature?.returnType == .bool)
        // Circus ignores failures of before_signal whatever `, true` says; not of before_start.
        #expect(signal.failureIgnored && !signal.ignoreFailure)
        #expect(w.hookTimeout == 2.5)
        #expect(w.extraOptions.isEmpty)
    }

    @Test("rlimits: known names, lower-cased; empty or -1 means unlimited")
    func rlimits() throws {
        let w = try loadWatcher("""
            [watcher:w]
            cmd = x
            rlimit_nofile = 77
            rlimit_CORE =
            rlimit_as = -1
            rlimit_nproc =  100_000 
            """)
        #expect(w.rlimits == ["nofile": 77, "core": nil, "as": nil, "nproc": 100_000])
    }

    @Test("working_dir: default and empty mean the current directory")
    func workingDir() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        try dir.write("circus.ini", "[watcher:a]\ncmd = x\nworking_dir =\n[watcher:b]\ncmd = x\nworking_dir = $(circus.env.HOME)\n")
        let watchers = try ConfigLoader.load(path: "circus.ini", environment: testEnvironment, currentDirectory: dir.path, accounts: testAccounts)
            .configuration.watchers
        #expect(watchers[0].workingDir == dir.path)
        #expect(watchers[1].workingDir == "/home/tester")
    }

    @Test("[DEFAULT] options reach every watcher")
    func defaultsInWatchers() throws {
        let watchers = try loadConfiguration("""
            [DEFAULT]
            numprocesses = 2
            shared = fromdefault
            [watcher:a]
            cmd = x
            [watcher:b]
            cmd = y
            numprocesses = 4
            """).watchers
        #expect(watchers.map(\.numprocesses) == [2, 4])
        #expect(watchers.map { $0.extraOptions["shared"] } == ["fromdefault", "fromdefault"])
    }

    @Test("empty watcher sections are skipped with a warning")
    func emptySections() throws {
        let result = try loadINI("[watcher:empty]\n[watcher:w]\ncmd = x\n")
        #expect(result.configuration.watchers.map(\.name) == ["w"])
        #expect(result.warnings.contains { $0.contains("[watcher:empty] is empty") })
    }

    @Test("options Circus never reports are ignored with a warning", arguments: ["env", "rlimits", "hooks", "prereload_fn", "loop"])
    func ignoredOptions(_ option: String) throws {
        let result = try loadINI("[watcher:w]\ncmd = x\n\(option) = something\n")
        #expect(result.configuration.watchers[0].extraOptions.isEmpty)
        #expect(result.warnings.contains { $0.hasPrefix("circus.ini:3: [watcher:w] option '\(option)' is ignored") })
    }

    @Test("sections Circus does not know are ignored with a warning (prefixes are case-sensitive)")
    func unknownSections() throws {
        let result = try loadINI("[Watcher:w2]\ncmd = x\n[something]\na = 1\n[watcher:w]\ncmd = x\n")
        #expect(result.configuration.watchers.map(\.name) == ["w"])
        #expect(result.warnings.contains("circus.ini:1: section [Watcher:w2] is not a Circus section and is ignored"))
        #expect(result.warnings.contains("circus.ini:3: section [something] is not a Circus section and is ignored"))
    }

    @Test("args and shell_args stay strings, split at spawn time")
    func argsStayStrings() throws {
        let w = try loadWatcher("[socket:web]\nport = 0\n[watcher:w]\nuse_sockets = 1\ncmd = foo\nargs = --fd $(circus.sockets.web)\nshell_args = \"bar baz\" qux\n")
        #expect(w.args == .string("--fd $(circus.sockets.web)"))
        #expect(w.shellArgs == .string("\"bar baz\" qux"))
        #expect(try Shlex.split("\"bar baz\" qux") == ["bar baz", "qux"])
    }
}

@Suite("sockets and plugins")
struct SocketPluginTests {
    @Test("socket options, name lower-cased, values substituted")
    func socketOptions() throws {
        let sockets = try parseConfiguration("""
            [env]
            SOCKDIR = /run/s
            [socket:MySock]
            host = 127.0.0.1
            port = 8888
            family = af_inet6
            type = sock_dgram
            proto = udp
            backlog = 10
            umask = 022
            replace = true
            so_reuseport = yes
            blocking = 1
            interface = eth0
            [socket:unix]
            path = $(circus.env.SOCKDIR)/u.sock
            """).sockets
        #expect(sockets.map(\.name) == ["mysock", "unix"])
        let s = sockets[0]
        #expect(s.host == "127.0.0.1")
        #expect(s.port == 8888)
        #expect(s.family == .inet6)
        #expect(s.type == .datagram)
        #expect(s.proto == "udp" && s.protocolNumber == 17)
        #expect(s.backlog == 10)
        // A leading zero reads as octal (Circus reads 022 as decimal 22, that is 0o26).
        #expect(s.umask == 0o22)
        #expect(s.replace && s.soReusePort && s.blocking)
        #expect(s.interface == "eth0")
        #expect(s.raw["family"] == "af_inet6")
        #expect(s.location == SourceLocation(file: "circus.ini", line: 3))
        let u = sockets[1]
        #expect(u.path == "/run/s/u.sock")
        #expect(u.family == .unix)
        #expect(u.port == 8080 && u.host == "localhost" && u.umask == 8 && u.backlog == 2048)
        #expect(!u.replace && !u.soReusePort && !u.blocking)
    }

    @Test("umask: a leading zero reads as octal, other values as Circus reads them (decimal)", arguments: [
        ("0", UInt32(0)), ("8", 8), ("18", 18), ("022", 0o22), ("0o22", 0o22), ("077", 0o77), ("010", 8),
    ])
    func socketUmask(text: String, mask: UInt32) throws {
        #expect(try parseConfiguration("[socket:u]\npath = /tmp/u.sock\numask = \(text)\n").sockets.first?.umask == mask)
    }

    @Test("a path makes the socket AF_UNIX whatever the family says")
    func pathWinsOverFamily() throws {
        let s = try parseConfiguration("[socket:u]\nfamily = AF_INET6\npath = /tmp/u.sock\n").sockets[0]
        #expect(s.family == .unix && s.path == "/tmp/u.sock")
    }

    @Test("the sockets a watcher uses: named in cmd or args (any case), stdin_socket, or all with use_sockets")
    func socketsUsed() throws {
        let config = try parseConfiguration("""
            [socket:web]
            port = 0
            [socket:api]
            port = 0
            [socket:in]
            port = 0
            [watcher:a]
            cmd = server --fd $(circus.sockets.WEB)
            args = ((circus.sockets.api)) $(circus.sockets.web)
            use_sockets = true
            [watcher:b]
            cmd = server
            stdin_socket = In
            use_sockets = true
            [watcher:c]
            cmd = server
            use_sockets = true
            """)
        let names = config.sockets.map(\.name)
        #expect(config.watchers.map { $0.socketsUsed(among: names) } == [["web", "api"], ["in"], ["api", "in", "web"]])
    }

    @Test("socket name is the text after the last 'socket:', as in Circus")
    func socketNameQuirk() throws {
        #expect(try parseConfiguration("[socket:a socket:B]\nport = 1\n").sockets.map(\.name) == ["b"])
    }

    @Test("sockets are sorted by name")
    func socketsSorted() throws {
        let names = try parseConfiguration("[socket:z]\nport = 1\n[socket:A]\nport = 2\n[socket:m]\nport = 3\n").sockets.map(\.name)
        #expect(names == ["a", "m", "z"])
    }

    @Test("plugins: full header as name, use, priority, other options; sorted")
    func plugins() throws {
        let plugins = try parseConfiguration("""
            [plugin:z]
            use = /usr/lib/circus/plug.so
            priority = 5
            key = $(circus.env.HOME)
            [plugin:A]
            use = circus.plugins.flapping.Flapping
            max_retry = 3
            """).plugins
        #expect(plugins.map(\.name) == ["plugin:A", "plugin:z"])
        #expect(plugins[0].use == "circus.plugins.flapping.Flapping")
        #expect(plugins[0].priority == 1)
        #expect(plugins[0].options == ["max_retry": "3"])
        #expect(plugins[0].source == .shipped(name: "flapping"))
        #expect(plugins[1].priority == 5)
        #expect(plugins[1].options == ["priority": "5", "key": "/home/tester"])
        #expect(plugins[1].source == .library(path: "/usr/lib/circus/plug.so"))
        #expect(plugins[1].location == SourceLocation(file: "circus.ini", line: 1))
    }

    @Test("[DEFAULT] keys reach sockets and plugins; empty sections are skipped")
    func defaultsEverywhere() throws {
        let config = try parseConfiguration("[DEFAULT]\nshared = d\n[socket:s]\n[plugin:p]\nuse = statsd\n[plugin:empty]\nuse = watchdog\n")
        #expect(config.sockets.first?.raw["shared"] == "d")
        #expect(config.plugins.first?.options["shared"] == "d")
        let skipped = try parseConfiguration("[socket:s]\n[plugin:p]\n[watcher:w]\ncmd = x\n")
        #expect(skipped.sockets.isEmpty && skipped.plugins.isEmpty)
    }
}
