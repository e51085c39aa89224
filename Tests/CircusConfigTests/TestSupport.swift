// Helpers shared by the CircusConfig tests: a temporary directory holding config files,
// and shortcuts to load them.

import CircusConfig
import OrderedCollections
import Glibc
import Testing

/// A fresh directory from mkdtemp, removed (recursively) by ``remove()``.
struct TempDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/circus-config-test.XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw TestFailure("mkdtemp failed: errno \(errno)") }
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Writes `text` to `relativePath`, creating intermediate directories.
    @discardableResult
    func write(_ relativePath: String, _ text: String) throws -> String {
        let full = path + "/" + relativePath
        var directory = ""
        for component in relativePath.split(separator: "/").dropLast() {
            directory += "/" + component
            mkdir(path + directory, 0o755)
        }
        guard let file = fopen(full, "w") else { throw TestFailure("cannot write \(full)") }
        defer { fclose(file) }
        fputs(text, file)
        return full
    }

    /// Creates a directory (and its parents).
    func makeDirectory(_ relativePath: String) {
        var directory = ""
        for component in relativePath.split(separator: "/") {
            directory += "/" + component
            mkdir(path + directory, 0o755)
        }
    }

    /// Creates a symbolic link at `relativePath` pointing to `target`.
    func symlink(_ target: String, at relativePath: String) {
        _ = Glibc.symlink(target, path + "/" + relativePath)
    }

    /// Removes the directory and everything in it.
    func remove() {
        Self.removeTree(path)
    }

    private static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if info.st_mode & 0o170000 == 0o040000, let dir = opendir(path) {
            var children: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
                }
                if name != "." && name != ".." { children.append(name) }
            }
            closedir(dir)
            for child in children { removeTree(path + "/" + child) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The environment most tests load with: small and fixed, so results do not depend on
/// the machine running the tests.
let testEnvironment: [String: String] = [
    "HOME": "/home/tester", "PATH": "/usr/bin:/bin", "USER": "tester", "PORT": "8000",
]

/// Writes `text` as `circus.ini` in a fresh directory, loads it, and cleans up.
func loadINI(
    _ text: String,
    environment: [String: String] = testEnvironment,
    extraFiles: [String: String] = [:],
    servedOnly: Bool = true
) throws -> LoadResult {
    let dir = try TempDirectory()
    defer { dir.remove() }
    for (name, content) in extraFiles { try dir.write(name, content) }
    try dir.write("circus.ini", text)
    return servedOnly
        ? try ConfigLoader.load(path: "circus.ini", environment: environment, currentDirectory: dir.path, accounts: testAccounts)
        : try ConfigLoader.parse(path: "circus.ini", environment: environment, currentDirectory: dir.path, accounts: testAccounts)
}

/// Parses `text` with the sections and settings this version does not serve yet.
func parseConfiguration(_ text: String, environment: [String: String] = testEnvironment) throws -> CircusConfiguration {
    try loadINI(text, environment: environment, servedOnly: false).configuration
}

/// Loads `text` and returns its configuration.
func loadConfiguration(_ text: String, environment: [String: String] = testEnvironment) throws -> CircusConfiguration {
    try loadINI(text, environment: environment).configuration
}

/// Loads `text` and returns the single watcher it defines.
func loadWatcher(_ text: String, environment: [String: String] = testEnvironment) throws -> WatcherConfig {
    let watchers = try loadConfiguration(text, environment: environment).watchers
    guard watchers.count == 1 else { throw TestFailure("expected one watcher, got \(watchers.count)") }
    return watchers[0]
}

/// Loads `text`, which must fail, and returns the error.
func loadError(_ text: String, environment: [String: String] = testEnvironment, extraFiles: [String: String] = [:]) -> ConfigError? {
    do {
        _ = try loadINI(text, environment: environment, extraFiles: extraFiles)
        return nil
    } catch let error as ConfigError {
        return error
    } catch {
        return nil
    }
}

/// Parses INI text (no files involved).
func parseINI(_ text: String, file: String = "t.ini") throws(ConfigError) -> IniDocument {
    try IniParser.parse(text, file: file)
}

extension IniDocument {
    /// The value of `option` in `section` (with `[DEFAULT]`), for terse expectations.
    subscript(section: String, option: String) -> String? {
        value(option, in: section)?.value
    }
}

/// The accounts the configuration tests name: a fixed table, so that these tests read no
/// user database (root and nobody with their primary groups; `staff` lists `nobody`).
struct FixedAccounts: AccountDirectory {
    let users: [String: (uid: UInt32, gid: UInt32)] = ["root": (0, 0), "nobody": (65534, 65534)]
    let groups: [String: (gid: UInt32, listed: [String])] = [
        "root": (0, []), "nogroup": (65534, []), "staff": (50, ["nobody"]),
    ]

    func uid(ofUser name: String) -> UInt32? { users[name]?.uid }
    func hasUser(uid: UInt32) -> Bool { users.values.contains { $0.uid == uid } }
    func gid(ofGroup name: String) -> UInt32? { groups[name]?.gid }
    func members(ofGroup gid: UInt32) -> Set<UInt32> {
        let listed = groups.values.filter { $0.gid == gid }.flatMap(\.listed).compactMap { users[$0]?.uid }
        return Set(users.values.filter { $0.gid == gid }.map(\.uid) + listed)
    }
}

let testAccounts = FixedAccounts()
