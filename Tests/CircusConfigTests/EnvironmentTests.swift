// [env] / [env:PATTERNS] sections and where each substitution engine applies.
// Expected values were checked against Python Circus 0.19's `get_config` followed
// by `parse_env_dict`.

import CircusConfig
import OrderedCollections
import Testing

@Suite("environment sections and substitution in configs")
struct EnvironmentTests {
    static let config = """
        [env]
        PATH = /opt/bin:$PATH
        HOMEISH = $(circus.env.HOME)/x
        LOWER = $home
        BRACE = ${HOME}
        UNSET = $NOPE_NOT_SET
        http_proxy = proxy

        [env:web*, api]
        WEBVAR = web-$(circus.env.USER)
        PATH = /web/bin

        [env:*]
        ALL = all
        WEBVAR = overridden-by-later

        [env:api]
        APIONLY = $HOME and $(circus.env.webvar)

        [watcher:web1]
        cmd = echo $(circus.env.WEBVAR) $(circus.env.all) $(CIRCUS.ENV.PATH) ((circus.env.homeish)) $(circus.env.HOME)
        logfile = /tmp/$(circus.env.all).log
        free = $(circus.env.ALL)

        [watcher:api]
        cmd = echo $(circus.env.APIONLY)
        copy_env = true

        [watcher:other]
        cmd = echo $(circus.env.ALL) $(circus.env.WEBVAR)
        """

    @Test("[env], matching [env:...] sections in order, then $VAR expansion")
    func watcherEnvironments() throws {
        let config = try loadConfiguration(Self.config)
        let byName = Dictionary(uniqueKeysWithValues: config.watchers.map { ($0.name, $0) })
        #expect(byName["web1"]!.env == [
            "PATH": "/web/bin", "HOMEISH": "/home/tester/x", "LOWER": "$home", "BRACE": "${HOME}", "UNSET": "",
            "http_proxy": "proxy", "WEBVAR": "overridden-by-later", "ALL": "all",
        ])
        // Values of [env:...] are raw: engine (a) does not run on them; $VAR does.
        #expect(byName["api"]!.env["APIONLY"] == "/home/tester and $(circus.env.webvar)")
        // copy_env does not put the process environment into `env`: the daemon overlays it.
        #expect(byName["api"]!.env["USER"] == nil)
        #expect(byName["other"]!.env["WEBVAR"] == "overridden-by-later")
        #expect(byName["other"]!.env["PATH"] == "/opt/bin:/usr/bin:/bin")  // $VAR from the process environment
        #expect(Array(byName["other"]!.env.keys) == ["PATH", "HOMEISH", "LOWER", "BRACE", "UNSET", "http_proxy", "ALL", "WEBVAR"])
    }

    @Test("watcher strings see [env:NAME] over [env] over the process environment")
    func watcherSubstitution() throws {
        let config = try loadConfiguration(Self.config)
        let byName = Dictionary(uniqueKeysWithValues: config.watchers.map { ($0.name, $0) })
        let web = byName["web1"]!
        #expect(web.cmd == "echo overridden-by-later all /web/bin /home/tester/x /home/tester")
        #expect(web.extraOptions["logfile"] == "/tmp/all.log")
        #expect(web.extraOptions["free"] == "all")
        // Raw [env:api] value: $VAR expansion is for the child env only, and no rescan.
        #expect(byName["api"]!.cmd == "echo $HOME and $(circus.env.webvar)")
    }

    @Test("the global env is [env] expanded against the process environment")
    func globalEnv() throws {
        let config = try loadConfiguration(Self.config)
        #expect(config.globalEnv["HOMEISH"] == "/home/tester/x")
        #expect(config.globalEnv["PATH"] == "/opt/bin:$PATH")
        #expect(config.globalEnv.count == 6)
    }

    @Test("typed options see only the global env; strings see the watcher env")
    func typedOptionsUseGlobalEnv() throws {
        let w = try loadWatcher("""
            [env]
            N = 2
            X = global
            [env:w]
            N = 5
            X = local
            [watcher:w]
            cmd = echo $(circus.env.X)
            numprocesses = $(circus.env.N)
            executable = $(circus.env.X)
            """)
        #expect(w.numprocesses == 2)
        #expect(w.executable == "global")  // expanded in Circus's first pass
        #expect(w.cmd == "echo local")
    }

    @Test("per-process variables survive loading for spawn time")
    func perProcessVariables() throws {
        let w = try loadWatcher("""
            [socket:web]
            port = 0
            [watcher:w]
            use_sockets = true
            cmd = server --fd $(circus.sockets.web) --id ((circus.wid)) $(circus.env.missing) $(wid)
            args = $(circus.wid) $(circus.numprocesses)
            """)
        #expect(w.cmd == "server --fd $(circus.sockets.web) --id ((circus.wid)) $(circus.env.missing) $(wid)")
        #expect(w.args == .string("$(circus.wid) $(circus.numprocesses)"))
    }

    @Test("[env:PATTERNS] matching: commas, spaces, wildcards, case-sensitive", arguments: [
        ("web", true), ("web2", true), ("Web", false), ("api", true), ("x", false), ("a-b", true), ("axb", false),
    ])
    func envPatterns(_ name: String, _ matches: Bool) throws {
        let w = try loadWatcher("[env:web*,  api , a-[b]]\nK = v\n[watcher:\(name)]\ncmd = x\n")
        #expect((w.env["K"] == "v") == matches)
    }

    @Test("[env] values see the process environment only, never [env] itself")
    func envSelfReference() throws {
        let config = try loadConfiguration("[env]\nA = a\nB = $(circus.env.A)-$(circus.env.USER)\n[watcher:w]\ncmd = x\n")
        #expect(config.globalEnv["B"] == "$(circus.env.A)-tester")
    }

    @Test("[DEFAULT] keys land in [env] and [env:...]")
    func defaultsInEnv() throws {
        let w = try loadWatcher("[DEFAULT]\nshared = d\n[env:w]\nK = v\n[watcher:w]\ncmd = x\n")
        #expect(w.env == ["shared": "d", "K": "v"])
        #expect(w.extraOptions["shared"] == "d")
    }

    @Test("env names are case-insensitive in substitution; the later of two wins")
    func caseInsensitiveNames() throws {
        let w = try loadWatcher("[env]\nname = lower\nNAME = upper\n[watcher:w]\ncmd = $(circus.env.Name)\n")
        #expect(w.cmd == "upper")
        #expect(w.env == ["name": "lower", "NAME": "upper"])
    }

    @Test("an [env:...] section that matches no watcher is reported")
    func unmatchedEnvSection() throws {
        let result = try loadINI("[env:nothing*]\nA = 1\n[watcher:w]\ncmd = x\n")
        #expect(result.warnings == ["circus.ini:1: section [env:nothing*] matches no watcher"])
    }

    @Test("no __name__ ever reaches an environment or the options")
    func noNameArtefact() throws {
        let w = try loadWatcher("[env]\nA = 1\n[env:w]\nB = 2\n[watcher:w]\ncmd = x\n")
        #expect(w.env == ["A": "1", "B": "2"])
        #expect(w.extraOptions.isEmpty)
    }
}
