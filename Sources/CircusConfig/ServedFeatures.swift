// What this version of circusd serves of a configuration, and the refusal of the rest:
// a feature that is set but not served is a load error naming file, line and option,
// never a setting that is accepted and silently does nothing.

internal import OrderedCollections

extension ConfigBuilder {
    /// `[circus]` options that ask for something this version does not do, with why. Each
    /// is refused only when its value asks for the feature (`statsd = false` asks nothing).
    static let unservedSettings: [(option: String, requests: @Sendable (String) -> Bool, reason: String)] = [
        ("statsd", { (try? ValueParser.bool($0)) == true }, "the stats stream (circusd-stats) is not served yet"),
        // Setting stats_endpoint at all turns statsd on, as in Circus.
        ("stats_endpoint", { _ in true }, "it turns on the stats stream (circusd-stats), which is not served yet"),
        ("httpd", { (try? ValueParser.bool($0)) == true }, "the circus-web dashboard is not served"),
        ("multicast_endpoint", { !$0.isEmpty },
         "UDP discovery is not served yet; leave the option empty (circusd does not announce itself)"),
        ("loggerconfig", { !$0.isEmpty },
         "it is a Python logging configuration; use loglevel and logoutput"),
        ("prereload_fn", { !$0.isEmpty }, "it names a Python function, and circusd runs no Python"),
    ]

    /// Refuses the `[circus]` options this version does not serve yet.
    ///
    /// - Throws: ``ConfigError`` at the first one, in file order.
    func refuseUnserved() throws(ConfigError) {
        for (option, requests, reason) in Self.unservedSettings {
            guard let value = document.value(option, in: "circus") else { continue }
            let text = Substitution.replace(value.value, table: globalTable)
            if requests(text) {
                throw ConfigError(
                    at: value.location, section: "circus", option: option,
                    message: "is not supported yet by this version of circusd: \(reason)")
            }
        }
    }
}
