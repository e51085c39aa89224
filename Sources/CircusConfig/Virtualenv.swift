// `virtualenv = DIR`: what Circus's `load_virtualenv` does to a watcher's environment,
// done once at load time as Circus does it when it creates the watcher.

internal import OrderedCollections

enum Virtualenv {
    /// The site-packages directory Circus would pick: `DIR/lib/python<ver>/site-packages`,
    /// else `DIR/lib/pypy<ver>/site-packages`. Without `virtualenv_py_ver` Circus uses its
    /// own Python's version; circusd has none, so the venv's only (or newest) Python wins.
    ///
    /// - Returns: the directory, or the directories tried (for the error message).
    static func siteDirectory(venv: String, pythonVersion: String?) -> Result<String, TriedDirectories> {
        let lib = FileSystem.join(venv, "lib")
        let candidates: [String]
        if let version = pythonVersion, !version.isEmpty {
            candidates = ["python", "pypy"].map { FileSystem.join(FileSystem.join(lib, $0 + version), "site-packages") }
        } else {
            let found = FileSystem.glob(FileSystem.join(lib, "python*/site-packages"))
                + FileSystem.glob(FileSystem.join(lib, "pypy*/site-packages"))
            candidates = found.isEmpty
                ? ["python", "pypy"].map { FileSystem.join(FileSystem.join(lib, $0 + "<version>"), "site-packages") }
                : [found.sorted(by: versionOrder).last!]
        }
        for directory in candidates where FileSystem.exists(directory) {
            return .success(directory)
        }
        return .failure(TriedDirectories(paths: candidates))
    }

    struct TriedDirectories: Error {
        var paths: [String]
    }

    /// Orders `.../python3.9/...` before `.../python3.12/...`.
    private static func versionOrder(_ a: String, _ b: String) -> Bool {
        func key(_ s: String) -> [Int] {
            s.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        }
        return key(a).lexicographicallyPrecedes(key(b))
    }

    /// Applies the venv to `env` (the watcher's env laid over circusd's, since Circus
    /// requires `copy_env`): its `bin` first in PATH; PYTHONPATH made of the existing
    /// directories named by the site-packages' `.pth` files, the existing PYTHONPATH and
    /// the site-packages directory, as Circus builds it.
    static func apply(venv: String, siteDirectory: String, to env: inout OrderedDictionary<String, String>,
                      inherited: [String: String])
    {
        let bin = FileSystem.join(venv, "bin")
        if FileSystem.exists(bin) {
            env["PATH"] = bin + ":" + (env["PATH"] ?? inherited["PATH"] ?? "")
        }
        var packages: [String] = []
        for pth in FileSystem.glob(FileSystem.join(siteDirectory, "*.pth")).sorted() {
            guard case .success(let text) = FileSystem.readText(pth) else { continue }
            // Python's `readlines()`: no empty line after the final newline.
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            if lines.last?.isEmpty == true { lines.removeLast() }
            for line in lines {
                if line.hasPrefix("#") || line.hasPrefix("import") { continue }
                let entry = String(line).trimmingSuffix(while: { $0 == " " || $0 == "\t" || $0 == "\r" })
                let path = FileSystem.normalize(FileSystem.join(siteDirectory, entry))
                if FileSystem.exists(path), !packages.contains(path) { packages.append(path) }
            }
        }
        let existing = env["PYTHONPATH"] ?? inherited["PYTHONPATH"]
        var path: String? = nil
        if !packages.isEmpty {
            let venvPath = packages.joined(separator: ":")
            path = existing.map { [venvPath, $0].joined(separator: ":") } ?? venvPath
        }
        if let p = path, !p.split(separator: ":").contains(Substring(siteDirectory)) {
            path = p + ":" + siteDirectory
        } else if path == nil {
            path = existing.map { $0 + ":" + siteDirectory } ?? siteDirectory
        }
        env["PYTHONPATH"] = path
    }
}

extension String {
    fileprivate func trimmingSuffix(while drop: (Character) -> Bool) -> String {
        var s = self
        while let last = s.last, drop(last) { s.removeLast() }
        return s
    }
}
