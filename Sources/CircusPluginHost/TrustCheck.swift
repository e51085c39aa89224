// A plugin runs with the daemon's privileges (usually root), so before `dlopen` we make
// sure nobody else could have written the code: the library and every directory above it
// must be owned by root or by the daemon's user, and not writable by group or others.
// A world-writable directory with the sticky bit (/tmp) is accepted: there, others can
// add entries but cannot replace or rename ours.

import Glibc

enum TrustCheck {
    /// The resolved path of `path` after checking it and its directories.
    ///
    /// - Throws: `PluginLoadError` (`.openFailed` for a missing file, `.untrusted` for a
    ///   permission problem, naming the offending path and the fix).
    static func verify(_ path: String, owner daemonUID: uid_t = geteuid()) throws(PluginLoadError) -> String {
        guard let resolvedPointer = realpath(path, nil) else {
            let reason = String(cString: strerror(errno))
            throw PluginLoadError(.openFailed, path: path, message: "cannot load plugin \(path): \(reason)")
        }
        let resolved = String(cString: resolvedPointer)
        free(resolvedPointer)

        var info = stat()
        guard stat(resolved, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            throw PluginLoadError(.openFailed, path: path, message: "cannot load plugin \(path): \(reason)")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw PluginLoadError(.openFailed, path: path, message: "cannot load plugin \(path): not a regular file")
        }
        try checkOwnerAndMode(info, of: resolved, library: path, isDirectory: false, daemonUID: daemonUID)

        var directory = resolved
        while let slash = directory.lastIndex(of: "/") {
            directory = slash == directory.startIndex ? "/" : String(directory[..<slash])
            guard stat(directory, &info) == 0 else {
                let reason = String(cString: strerror(errno))
                throw PluginLoadError(.openFailed, path: path, message: "cannot load plugin \(path): \(directory): \(reason)")
            }
            try checkOwnerAndMode(info, of: directory, library: path, isDirectory: true, daemonUID: daemonUID)
            if directory == "/" { break }
        }
        return resolved
    }

    private static func checkOwnerAndMode(
        _ info: stat, of file: String, library: String, isDirectory: Bool, daemonUID: uid_t
    ) throws(PluginLoadError) {
        let what = isDirectory ? "its directory \(file)" : (file == library ? "it" : "\(file)")
        if info.st_uid != 0 && info.st_uid != daemonUID {
            let owners = daemonUID == 0 ? "root" : "root or uid \(daemonUID) (the daemon's user)"
            throw PluginLoadError(
                .untrusted, path: library,
                message: "refusing to load plugin \(library): \(what) is owned by uid \(info.st_uid), not by \(owners); "
                    + "a plugin runs with the daemon's privileges, so only they may own it (chown it)")
        }
        let othersCanWrite = info.st_mode & (S_IWGRP | S_IWOTH) != 0
        let sticky = info.st_mode & S_ISVTX != 0
        if othersCanWrite && !(isDirectory && sticky) {
            let mode = String(info.st_mode & 0o7777, radix: 8)
            throw PluginLoadError(
                .untrusted, path: library,
                message: "refusing to load plugin \(library): \(what) is writable by group or others (mode 0\(mode)); "
                    + "a plugin runs with the daemon's privileges, so only its owner may write it (chmod go-w \(file))")
        }
    }
}
