// Checks that refuse a configuration Circus would accept and then misbehave on: a
// section without a name (Circus runs a watcher called ""), an endpoint libzmq cannot
// bind, an `endpoint_owner` that names nobody. Each error names the file, the line and
// the option, and is raised before anything starts.

extension ConfigBuilder {
    /// Section kinds whose header carries a name after the colon.
    private static let namedSectionKinds: [(prefix: String, hint: String)] = [
        ("watcher:", "[watcher:NAME]"),
        ("socket:", "[socket:NAME]"),
        ("plugin:", "[plugin:NAME]"),
        ("env:", "[env:NAMES] (watcher names or patterns, comma-separated)"),
    ]

    /// Refuses `[watcher:]`, `[socket:]`, `[plugin:]` and `[env:]` (also with only blanks
    /// after the colon).
    static func checkSectionName(_ header: String, at location: SourceLocation) throws(ConfigError) {
        for kind in namedSectionKinds where header.hasPrefix(kind.prefix) {
            if PythonText.strip(String(header.dropFirst(kind.prefix.count))).isEmpty {
                throw ConfigError(at: location, section: header, message: "the section has no name: write \(kind.hint)")
            }
        }
    }

    /// Refuses endpoints libzmq would not bind and an `endpoint_owner` that is no user.
    func checkEndpointSettings(_ settings: CircusSettings) throws(ConfigError) {
        let checks: [(option: String, value: String, role: EndpointRole)] = [
            ("endpoint", settings.endpoint, .control),
            ("pubsub_endpoint", settings.pubsubEndpoint, .publisher),
            ("stats_endpoint", settings.statsEndpoint, .publisher),
        ]
        for check in checks {
            // Defaults are valid; only what the file says is checked.
            guard let raw = document.value(check.option, in: "circus") else { continue }
            if let problem = EndpointCheck.problem(in: check.value, role: check.role) {
                throw ConfigError(at: raw.location, section: "circus", option: check.option, message: problem)
            }
        }
        if let owner = settings.endpointOwner, let raw = document.value("endpoint_owner", in: "circus"),
           let problem = unknownUser(owner)
        {
            throw ConfigError(at: raw.location, section: "circus", option: "endpoint_owner", message: problem)
        }
    }

    /// Why `nameOrID` is not an account (Circus's `to_uid`: all digits is a uid, which
    /// must exist too), or nil when it is one.
    func unknownUser(_ nameOrID: String) -> String? {
        let isID = !nameOrID.isEmpty && nameOrID.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
        do {
            if isID {
                guard let id = UInt32(nameOrID) else { return "\(nameOrID) is not a user id" }
                return try accounts.hasUser(uid: id) ? nil : "no user has id \(nameOrID)"
            }
            return try accounts.uid(ofUser: nameOrID) != nil ? nil : "no user is named \(PythonText.repr(nameOrID))"
        } catch {
            return "cannot look up user \(PythonText.repr(nameOrID)): \(error)"
        }
    }
}
