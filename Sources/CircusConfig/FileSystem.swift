// The little file-system access the loader needs: read a file, expand a glob, and Python
// `os.path` string helpers. Glibc only, so the daemon stays small.

internal import Glibc

/// Why a configuration file could not be read.
enum FileReadFailure: Error, Equatable {
    case notFound
    case isDirectory
    case invalidUTF8
    case system(errno: Int32)

    /// A short human explanation (`Permission denied`, `is a directory`, ...).
    var reason: String {
        switch self {
        case .notFound: return "no such file"
        case .isDirectory: return "is a directory"
        case .invalidUTF8: return "is not valid UTF-8 text"
        case .system(let code): return String(cString: strerror(code))
        }
    }
}

/// File and path helpers with Python `os.path` semantics (internal).
enum FileSystem {
    /// Whether `path` exists, following symbolic links (Python `os.path.exists`).
    static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    /// The whole file as UTF-8 text.
    static func readText(_ path: String) -> Result<String, FileReadFailure> {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            return .failure(code == ENOENT ? .notFound : code == EISDIR ? .isDirectory : .system(errno: code))
        }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) == 0, info.st_mode & 0o170000 == 0o040000 {
            return .failure(.isDirectory)
        }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                let code = errno
                return .failure(code == EISDIR ? .isDirectory : .system(errno: code))
            }
            if count == 0 { break }
            bytes.append(contentsOf: buffer[0..<count])
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { return .failure(.invalidUTF8) }
        return .success(text)
    }

    /// glob(3) without backslash escapes (Python's `glob.glob` has none): the sorted
    /// matches, or an empty array when nothing matches.
    static func glob(_ pattern: String) -> [String] {
        var result = glob_t()
        defer { globfree(&result) }
        guard Glibc.glob(pattern, GLOB_NOESCAPE, nil, &result) == 0 else { return [] }
        var paths: [String] = []
        for index in 0..<Int(result.gl_pathc) {
            if let path = result.gl_pathv[index] {
                paths.append(String(cString: path))
            }
        }
        return paths
    }

    /// Python `os.path.dirname`.
    static func dirname(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        let head = String(path[...slash])
        if head.allSatisfy({ $0 == "/" }) { return head }
        var trimmed = Substring(head)
        while trimmed.last == "/" { trimmed = trimmed.dropLast() }
        return String(trimmed)
    }

    /// Python `os.path.join(a, b)`: `b` when absolute, else `a` and `b` joined by one `/`.
    static func join(_ a: String, _ b: String) -> String {
        if b.hasPrefix("/") { return b }
        if a.isEmpty || a.hasSuffix("/") { return a + b }
        return a + "/" + b
    }

    /// Python `os.path.normpath`: removes `.`, empty components and `x/..` pairs.
    static func normalize(_ path: String) -> String {
        if path.isEmpty { return "." }
        var leadingSlashes = 0
        if path.hasPrefix("/") {
            leadingSlashes = path.hasPrefix("//") && !path.hasPrefix("///") ? 2 : 1
        }
        var components: [Substring] = []
        for component in path.split(separator: "/", omittingEmptySubsequences: false) {
            if component.isEmpty || component == "." { continue }
            if component != ".." || (leadingSlashes == 0 && components.isEmpty) || components.last == ".." {
                components.append(component)
            } else if !components.isEmpty {
                components.removeLast()
            }
        }
        let joined = String(repeating: "/", count: leadingSlashes) + components.joined(separator: "/")
        return joined.isEmpty ? "." : joined
    }

    /// Python `os.path.abspath` against an explicit current directory.
    static func absolute(_ path: String, currentDirectory: String) -> String {
        normalize(join(currentDirectory, path))
    }
}

/// The directory a watcher runs in when `working_dir` is not set.
public enum WorkingDirectory {
    /// Circus's `get_working_dir`: `$PWD` when it names the same directory as `getcwd()`
    /// (so a symlinked path the user typed is kept), otherwise `getcwd()`.
    ///
    /// - Parameter environment: circusd's environment (for `PWD`).
    /// - Returns: nil only if `getcwd` fails (the directory was removed).
    public static func current(environment: [String: String]) -> String? {
        guard let raw = getcwd(nil, 0) else { return nil }
        let cwd = String(cString: raw)
        free(raw)
        guard let pwd = environment["PWD"] else { return cwd }
        var a = stat()
        var b = stat()
        if stat(pwd, &a) == 0, stat(cwd, &b) == 0, a.st_ino == b.st_ino, a.st_dev == b.st_dev {
            return pwd
        }
        return cwd
    }
}
