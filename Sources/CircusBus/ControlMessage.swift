// One request as the ROUTER saw it.

/// A multipart message received by ``ControlServer``: who sent it, and what.
///
/// A well-formed Circus request comes from a DEALER and has exactly one frame (the
/// JSON). A REQ client prepends an empty delimiter, so it arrives as two frames
/// (`[[], json]`); Circus answers nothing but exactly one frame, and so must circusd.
/// This type reports frames faithfully and leaves that decision to the daemon.
public struct ControlMessage: Hashable, Sendable {
    /// The peer's routing identity (Python clients use 32 lowercase hex digits;
    /// libzmq generates 5 bytes starting with `0x00` for peers that set none).
    public var identity: [UInt8]
    /// The frames after the identity, in order.
    public var frames: [[UInt8]]
    /// Who sent it, as the kernel tells (see ``ControlSender``).
    public var sender: ControlSender

    /// Creates a message.
    public init(identity: [UInt8], frames: [[UInt8]], sender: ControlSender) {
        self.identity = identity
        self.frames = frames
        self.sender = sender
    }

    /// The identity for log lines: as text when it is printable ASCII, else as hex.
    public var identityDescription: String { describeIdentity(identity) }
}

/// Printable ASCII identities (Python's uuid4 hex) as text, binary ones as `0x…` hex.
func describeIdentity(_ identity: [UInt8]) -> String {
    if !identity.isEmpty, identity.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
        return String(decoding: identity, as: UTF8.self)
    }
    let digits: [Character] = Array("0123456789abcdef")
    var text = "0x"
    for byte in identity {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0x0F)])
    }
    return text
}
