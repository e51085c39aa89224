// The versions `circusd --version` prints: the one place they are written.

/// The Circus release whose behaviour circusd reproduces, and circus-swift's own version.
enum Version {
    /// Circus's version, first on the line: scripts that parse `circusd --version` see it.
    static let circus = "0.19.0"
    /// This implementation's version.
    static let circusSwift = "0.2.0"

    /// `0.19.0 (circus-swift 0.2.0)`.
    static var text: String { "\(circus) (circus-swift \(circusSwift))" }
}
