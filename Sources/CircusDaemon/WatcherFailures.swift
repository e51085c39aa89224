// The failures of an operation run over several watchers (start or restart of all of
// them, a glob, reload, reloadconfig), so that the command can answer why it failed
// instead of `ok`.

import CircusCore
import CircusProtocol
import OrderedCollections

/// The watchers an operation over several watchers could not serve, each with why, in
/// the order they failed.
struct WatcherFailures {
    private(set) var items: [(watcher: String, reason: String)] = []

    var isEmpty: Bool { items.isEmpty }

    /// Keeps the failure of `result`, if any, under the name of the watcher it came from.
    mutating func record(_ result: OperationResult, of watcher: String) {
        if let failure = result.failure { items.append((watcher, failure)) }
    }

    /// Keeps `reason` under `name` (a plugin instance, `plugin:NAME`, as Circus names the
    /// watcher that runs one).
    mutating func record(failure reason: String, of name: String) {
        items.append((name, reason))
    }

    mutating func append(contentsOf other: WatcherFailures) {
        items.append(contentsOf: other.items)
    }

    /// errno 6 whose reason names each watcher that failed with its cause
    /// (`bad: exec '/nonexistent/binary': No such file or directory`), joined by `; `;
    /// nil when nothing failed. Circus answers `ok` here.
    var error: CommandError? {
        guard !items.isEmpty else { return nil }
        return .operationFailed(items.map { "\($0.watcher): \($0.reason)" }.joined(separator: "; "))
    }

    /// `payload` when nothing failed, else `error`.
    func outcome(_ payload: JSONObject = [:]) -> Result<JSONObject, CommandError> {
        if let error { return .failure(error) }
        return .success(payload)
    }
}
