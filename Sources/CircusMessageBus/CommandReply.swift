// The answer to one command request, whoever asked: a ZeroMQ client, a plugin, the daemon.

public import CircusProtocol
import OrderedCollections
import Synchronization

/// Where one request's answer goes. A handler calls ``ok(_:)``, ``fail(_:)`` or
/// ``send(_:)`` exactly once, from any thread.
///
/// What happens then is the requester's business: the control socket encodes Circus's
/// reply (nothing for a cast) and sends it from the loop thread, a plugin gets the payload
/// on its own queue. A second answer is ignored, so a handler that races a timeout against
/// a result cannot answer twice.
public final class CommandReply: Sendable {
    /// The request being answered.
    public let request: Request
    private let sink: @Sendable (Result<JSONObject, CommandError>) -> Void
    private let answered = Atomic<Bool>(false)

    /// A reply for `request`; `sink` receives the one answer, on the thread that gives it.
    public init(request: Request, sink: @escaping @Sendable (Result<JSONObject, CommandError>) -> Void) {
        self.request = request
        self.sink = sink
    }

    /// Answers `{"status": "ok", ...payload}`.
    public func ok(_ payload: JSONObject = [:]) {
        send(.success(payload))
    }

    /// Answers Circus's error reply for `error`.
    public func fail(_ error: CommandError) {
        send(.failure(error))
    }

    /// Answers `result`.
    ///
    /// - Returns: false when the request had been answered already (nothing is sent).
    @discardableResult
    public func send(_ result: Result<JSONObject, CommandError>) -> Bool {
        guard !answered.exchange(true, ordering: .acquiringAndReleasing) else { return false }
        sink(result)
        return true
    }

    /// Whether the request has been answered.
    public var isAnswered: Bool { answered.load(ordering: .acquiring) }
}
