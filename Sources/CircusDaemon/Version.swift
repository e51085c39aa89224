// The versions `circusd --version` and `circus-plugin --version` print: the one place
// they are written.

/// The Circus release whose behaviour circusd reproduces, and circus-swift's own version.
public enum Version {
    /// Circus's version, first on the line: scripts that parse `circusd --version` see it.
    public static let circus = "0.19.0"
    /// This implementation's version.
    public static let circusSwift = "0.2.0"

    /// `0.19.0 (circus-swift 0.2.0)`.
    public static var text: String { "\(circus) (circus-swift \(circusSwift))" }
}
