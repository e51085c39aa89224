// A blocking connection to circusd's control endpoint, the way Python's CircusClient
// talks to it: a DEALER with a uuid4-hex identity, one frame out, one frame back.
//
// Blocking is fine here: this is for circusctl, tests and benchmarks, never the daemon.
// Requests and replies are raw bytes (UTF-8 JSON); encoding belongs to CircusProtocol.

public import CircusBus

/// A DEALER connection to a Circus control endpoint.
///
/// - Important: Not thread-safe: use one connection per thread.
public final class CircusConnection {
    /// The control endpoint, e.g. `tcp://127.0.0.1:5555` or `ipc:///run/circus/ctl.sock`.
    public let endpoint: String
    /// How long ``call(_:)`` and ``receive(timeout:)`` wait by default.
    public var timeout: Duration
    /// This client's routing identity: 32 lowercase hex digits, like Python's `uuid4().hex`.
    public let identity: [UInt8]

    private let socket: ZMQSocket

    /// Creates a DEALER (linger 0) and connects it to `endpoint`.
    ///
    /// Connecting is asynchronous in ZeroMQ: this succeeds even if no daemon is listening
    /// yet, and a request sent meanwhile is delivered once it is.
    /// - Parameters:
    ///   - endpoint: The daemon's `endpoint` setting.
    ///   - timeout: Default wait for replies (Circus's default is 5 seconds).
    ///   - context: The ZeroMQ context; the process-wide one by default.
    /// - Throws: `CircusClientError` `.connectionFailed` for a malformed endpoint.
    public init(endpoint: String, timeout: Duration = .seconds(5), context: ZMQContext = .shared)
        throws(CircusClientError)
    {
        self.endpoint = endpoint
        self.timeout = timeout
        self.identity = Self.randomIdentity()
        do {
            socket = try ZMQSocket(context: context, kind: .dealer)
            try socket.setIdentity(identity)
            try socket.connect(endpoint)
        } catch {
            throw CircusClientError(error, default: .connectionFailed)
        }
    }

    /// Sends `request` and waits up to ``timeout`` for the next reply.
    ///
    /// Replies are not matched to requests here: after a timed-out call, the late reply
    /// is what the next `receive` returns. Callers that care match on the JSON `id`, as
    /// Python's client does.
    /// - Returns: The reply's single frame.
    /// - Throws: `CircusClientError` `.timedOut` (message names the endpoint and the wait),
    ///   `.malformedReply`, `.sendFailed`, `.receiveFailed` or `.closed`.
    public func call(_ request: [UInt8]) throws(CircusClientError) -> [UInt8] {
        try send(request)
        return try receive(timeout: timeout)
    }

    /// Sends `request` without waiting for a reply (what Circus calls a cast).
    ///
    /// Returns once the request is queued; waits only if the send queue is full, and at
    /// most ``timeout``.
    /// - Throws: `CircusClientError` `.timedOut`, `.sendFailed` or `.closed`.
    public func send(_ request: [UInt8]) throws(CircusClientError) {
        do {
            try socket.send([request], timeout: timeout, what: "request to \(endpoint)")
        } catch {
            throw CircusClientError(error, default: .sendFailed)
        }
    }

    /// Waits for the next reply.
    ///
    /// - Parameter timeout: How long to wait; ``timeout`` when `nil`.
    /// - Returns: The reply's single frame.
    /// - Throws: `CircusClientError` `.timedOut`, `.malformedReply` (not one frame),
    ///   `.receiveFailed` or `.closed`.
    public func receive(timeout: Duration? = nil) throws(CircusClientError) -> [UInt8] {
        let wait = timeout ?? self.timeout
        let frames: [[UInt8]]?
        do {
            frames = try socket.receive(timeout: wait)
        } catch {
            throw CircusClientError(error, default: .receiveFailed)
        }
        guard let frames else {
            throw CircusClientError(.timedOut, message: "timed out after \(wait) waiting for a reply from \(endpoint)")
        }
        guard frames.count == 1 else {
            throw CircusClientError(
                .malformedReply, message: "\(endpoint) replied with \(frames.count) frames instead of 1")
        }
        return frames[0]
    }

    /// Closes the connection; unsent requests are discarded. Idempotent.
    public func close() {
        socket.close()
    }

    /// 16 random bytes formatted as uuid4 hex: version nibble 4, RFC 4122 variant.
    static func randomIdentity() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let digits = Array("0123456789abcdef".utf8)
        return bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0x0F)]] }
    }
}
