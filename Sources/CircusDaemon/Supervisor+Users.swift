// The user and group databases as the daemon sees them: read once at start-up (NSS may
// block, which is fine before the loop runs), then refreshed on the users worker whenever
// /etc/passwd or /etc/group changes, so a spawn never calls NSS on the loop thread. The
// control grants of `control_groups` and `readonly_groups` follow the same snapshot.

import CircusConfig
import CircusSystem
import Logging

extension Supervisor {
    /// The databases, with the names the configuration refers to looked up one by one too
    /// (NSS sources that do not enumerate, such as LDAP, still answer those).
    static func loadUsers(for configuration: CircusConfiguration, initial: UserSnapshot) -> UserDirectory {
        var users: Set<String> = []
        var groups: Set<String> = []
        for watcher in configuration.watchers {
            // A templated uid (`$(circus.env.X)`) is only known at spawn time.
            if let uid = watcher.uid, !uid.contains("$(") { users.insert(uid) }
            if let gid = watcher.gid, !gid.contains("$(") { groups.insert(gid) }
        }
        return UserDirectory(source: SystemAccounts.source, initial: initial, users: users, groups: groups)
    }

    /// Starts refreshing `users` when the databases change.
    func watchUsers() {
        do {
            userWatch = try UserDirectoryWatch(users, loop: loop, worker: userWorker) { [unowned self] in
                self.logger.debug("user and group databases read again")
            }
        } catch {
            logger.warning("cannot watch \(users.source.watchedFiles.joined(separator: " and ")) (\(error)): user and group changes need a restart")
        }
    }

    /// A user or group the snapshot did not know: look it up by name in a refresh started
    /// now (once per name), so a retried spawn finds it if NSS knows it after all.
    func lookUpLater(user: String? = nil, group: String? = nil) {
        if users.want(users: user.map { [$0] } ?? [], groups: group.map { [$0] } ?? []) {
            userWatch?.reload()
        }
    }
}
