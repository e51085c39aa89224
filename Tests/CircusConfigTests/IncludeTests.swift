// include / include_dir: globs relative to the main file, reading order, and
// first definition wins across files.

import CircusConfig
import OrderedCollections
import Glibc
import Testing

@Suite("include and include_dir")
struct IncludeTests {
    /// A tree with a main file, `include` globs (one multi-level), and an `include_dir`.
    private func makeTree(_ dir: TempDirectory) throws {
        try dir.write("etc/circus.ini", """
            [circus]
            include = conf.d/*.ini sub/*/*.ini nomatch/*.ini
            include_dir = incdir
            check_delay = 2

            [watcher:main]
            cmd = sleep 1
            numprocesses = 1
            """)
        try dir.write("etc/conf.d/01.ini", """
            [circus]
            check_delay = 99
            warmup_delay = 4

            [watcher:main]
            cmd = sleep 99
            numprocesses = 5
            priority = 9

            [watcher:fromconf]
            cmd = sleep 2
            """)
        try dir.write("etc/conf.d/02.ini", "[watcher:second]\ncmd = sleep 2\n[env:main]\nFROM02 = yes\n")
        try dir.write("etc/sub/a/x.ini", "[watcher:suba]\ncmd = sleep 3\n")
        try dir.write("etc/sub/b/y.ini", "[watcher:subb]\ncmd = sleep 4\n")
        try dir.write("etc/incdir/z.ini", "[watcher:incdir]\ncmd = sleep 5\n[circus]\ninclude = ../never/*.ini\n")
        try dir.write("etc/incdir/ignored.txt", "[watcher:txt]\ncmd = no\n")
        try dir.write("etc/never/n.ini", "[watcher:never]\ncmd = no\n")
    }

    @Test("globs relative to the main file's directory; order main, include, include_dir")
    func includeOrderAndGlobs() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        try makeTree(dir)
        let result = try ConfigLoader.load(path: "etc/circus.ini", environment: [:], currentDirectory: dir.path, accounts: testAccounts)
        #expect(result.files == [
            "etc/circus.ini", "etc/conf.d/01.ini", "etc/conf.d/02.ini", "etc/sub/a/x.ini", "etc/sub/b/y.ini", "etc/incdir/z.ini",
        ])
        let config = result.configuration
        #expect(config.path == dir.path + "/etc/circus.ini")
        #expect(config.watchers.map(\.name) == ["fromconf", "incdir", "main", "second", "suba", "subb"])
        #expect(config.settings.include == ["conf.d/*.ini", "sub/*/*.ini", "nomatch/*.ini"])
        #expect(config.settings.includeDir == ["incdir"])
        #expect(result.warnings == [
            "'etc/nomatch/*.ini' does not lead to any config. Make sure include paths are relative to the main config file"
        ])
    }

    @Test("includes add options and sections but never override the main file")
    func firstDefinitionWinsAcrossFiles() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        try makeTree(dir)
        let config = try ConfigLoader.load(path: "etc/circus.ini", environment: [:], currentDirectory: dir.path, accounts: testAccounts).configuration
        #expect(config.settings.checkDelay == 2)  // main file wins
        #expect(config.settings.warmupDelay == 4)  // include fills a gap
        let main = config.watchers.first { $0.name == "main" }!
        #expect(main.cmd == "sleep 1")
        #expect(main.numprocesses == 1)
        #expect(main.priority == 9)
        #expect(main.env == ["FROM02": "yes"])
        #expect(main.location == SourceLocation(file: "etc/circus.ini", line: 6))
        let fromconf = config.watchers.first { $0.name == "fromconf" }!
        #expect(fromconf.location == SourceLocation(file: "etc/conf.d/01.ini", line: 10))
    }

    @Test("an absolute main path names includes absolutely; absolute include patterns work")
    func absolutePaths() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        try dir.write("other/abs.ini", "[watcher:abs]\ncmd = x\n")
        try dir.write("main/circus.ini", "[circus]\ninclude = \(dir.path)/other/*.ini local.ini\n")
        try dir.write("main/local.ini", "[watcher:local]\ncmd = y\n")
        let result = try ConfigLoader.load(path: dir.path + "/main/circus.ini", environment: [:], currentDirectory: "/", accounts: testAccounts)
        #expect(result.files == [dir.path + "/main/circus.ini", dir.path + "/other/abs.ini", dir.path + "/main/local.ini"])
        #expect(result.configuration.watchers.map(\.name) == ["abs", "local"])
    }

    @Test("includes of included files are not followed")
    func includesAreNotRecursive() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        try dir.write("circus.ini", "[circus]\ninclude_dir = d\n")
        try dir.write("d/a.ini", "[circus]\ninclude = ../e/*.ini\n[watcher:a]\ncmd = x\n")
        try dir.write("e/b.ini", "[watcher:b]\ncmd = x\n")
        let result = try ConfigLoader.load(path: "circus.ini", environment: [:], currentDirectory: dir.path, accounts: testAccounts)
        #expect(result.configuration.watchers.map(\.name) == ["a"])
        #expect(result.configuration.settings.include == [])
        #expect(result.files == ["circus.ini", "d/a.ini"])
    }

    /// Root reads any file, so as root the load runs in a child process that has become
    /// `nobody` first; either way the same error must come out.
    @Test("an include without read permission is an error")
    func permissionDenied() async throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        try dir.write("circus.ini", "[circus]\ninclude = secret.ini\n")
        let secret = try dir.write("secret.ini", "[watcher:w]\ncmd = x\n")
        chmod(secret, 0)
        chmod(dir.path, 0o755)  // nobody must reach circus.ini itself
        let expected = ConfigError(
            file: "circus.ini", line: 2, section: "circus", option: "include",
            message: "cannot read 'secret.ini': Permission denied")
        guard geteuid() == 0 else {
            #expect(throws: expected) {
                try ConfigLoader.load(path: "circus.ini", environment: [:], currentDirectory: dir.path, accounts: testAccounts)
            }
            return
        }
        await #expect(processExitsWith: .success) { [path = dir.path as String] in
            guard setgid(65534) == 0, setuid(65534) == 0 else { exit(2) }
            do {
                _ = try ConfigLoader.load(path: "circus.ini", environment: [:], currentDirectory: path, accounts: testAccounts)
                print("loaded a file nobody may read")
                exit(3)
            } catch {
                let wanted = ConfigError(
                    file: "circus.ini", line: 2, section: "circus", option: "include",
                    message: "cannot read 'secret.ini': Permission denied")
                if (error as? ConfigError) == wanted { exit(0) }
                print("wrong error: \(error)")
                exit(4)
            }
        }
    }

    @Test("include patterns may use $(circus.env.*) from the environment")
    func includeWithVariables() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        try dir.write("circus.ini", "[circus]\ninclude = $(circus.env.CONFDIR)/*.ini\n")
        try dir.write("d/w.ini", "[watcher:w]\ncmd = x\n")
        let config = try ConfigLoader.load(path: "circus.ini", environment: ["CONFDIR": "d"], currentDirectory: dir.path, accounts: testAccounts).configuration
        #expect(config.watchers.map(\.name) == ["w"])
    }

    @Test("a pattern matching nothing is a warning, not an error")
    func noMatchIsWarning() throws {
        let result = try loadINI("[circus]\ninclude = missing.ini\ninclude_dir = nodir\n[watcher:w]\ncmd = x\n")
        #expect(result.warnings == [
            "'missing.ini' does not lead to any config. Make sure include paths are relative to the main config file",
            "'nodir/*.ini' does not lead to any config. Make sure include paths are relative to the main config file",
        ])
    }

    @Test("errors in an included file name that file and line")
    func errorInInclude() {
        let error = loadError("[circus]\ninclude = bad.ini\n", extraFiles: ["bad.ini": "[watcher:w]\ncmd = x\nnumprocesses = many\n"])
        #expect(error?.description == "bad.ini:3: [watcher:w] numprocesses: 'many' is not an integer")
    }

    @Test("an include that matches but cannot be read is an error at the include option")
    func unreadableInclude() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        try dir.write("circus.ini", "[circus]\ninclude = conf.d/*.ini\n")
        dir.makeDirectory("conf.d/dir.ini")
        do {
            _ = try ConfigLoader.load(path: "circus.ini", environment: [:], currentDirectory: dir.path, accounts: testAccounts)
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "circus.ini:2: [circus] include: cannot read 'conf.d/dir.ini': is a directory")
        }
    }

    @Test("a dangling symbolic link matched by include_dir is an error")
    func danglingInclude() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        try dir.write("circus.ini", "[circus]\ninclude_dir = conf.d\n")
        dir.makeDirectory("conf.d")
        dir.symlink("/nonexistent/target.ini", at: "conf.d/gone.ini")
        do {
            _ = try ConfigLoader.load(path: "circus.ini", environment: [:], currentDirectory: dir.path, accounts: testAccounts)
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "circus.ini:2: [circus] include_dir: cannot read 'conf.d/gone.ini': no such file")
        }
    }

    @Test("the main file must exist")
    func missingMainFile() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        do {
            _ = try ConfigLoader.load(path: "nope.ini", environment: [:], currentDirectory: dir.path, accounts: testAccounts)
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "the configuration file 'nope.ini' does not exist")
            #expect(error.file == nil && error.line == nil)
        }
    }

    @Test("a main file that is a directory is an error")
    func mainFileIsDirectory() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        dir.makeDirectory("conf.ini")
        #expect(throws: ConfigError(file: "conf.ini", message: "cannot read the configuration file: is a directory")) {
            try ConfigLoader.load(path: "conf.ini", environment: [:], currentDirectory: dir.path, accounts: testAccounts)
        }
    }
}

@Suite("WorkingDirectory")
struct WorkingDirectoryTests {
    @Test("$PWD is kept when it names the current directory (symlinks preserved), else getcwd()")
    func current() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let cwd = try #require(getcwd(nil, 0))
        let real = String(cString: cwd)
        free(cwd)
        dir.symlink(real, at: "link")
        #expect(WorkingDirectory.current(environment: ["PWD": dir.path + "/link"]) == dir.path + "/link")
        #expect(WorkingDirectory.current(environment: ["PWD": dir.path]) == real)
        #expect(WorkingDirectory.current(environment: [:]) == real)
    }
}
