// Reply envelopes, built as Circus builds them: a Python dict filled in a fixed order,
// then `json.dumps`. Key order is therefore part of the wire format.

public import OrderedCollections

/// Builders of control replies (one ZeroMQ frame each).
public enum Reply {
    /// The success envelope: `{"status": "ok", "time": t, <payload...>, "id": id}`.
    ///
    /// The payload is merged as Python's `dict.update` does: a payload key that is
    /// already in the envelope replaces its value in place, so a `status` payload key
    /// (the `status <name>` command) gives `{"status": "active", "time": t, "id": id}`.
    /// `id` is assigned last, again in place if the payload had one.
    ///
    /// - Parameters:
    ///   - id: the request's `id` (`.null` when it had none).
    ///   - time: the current Unix time, as a float.
    ///   - payload: what the command returned.
    /// - Returns: the JSON bytes to send.
    public static func ok(id: JSON, time: Double, payload: JSONObject = [:]) -> [UInt8] {
        JSONWriter.serialize(.object(okEnvelope(id: id, time: time, payload: payload)))
    }

    /// The success envelope for a command returning a list, which Circus wraps as
    /// `{"results": [...]}` (no built-in command does this; plugins may).
    public static func ok(id: JSON, time: Double, results: [JSON]) -> [UInt8] {
        ok(id: id, time: time, payload: ["results": .array(results)])
    }

    /// The error envelope: `{"status": "error", "reason": r, "tb": tb, "time": t,
    /// "errno": n, "id": id}`.
    ///
    /// - Parameters:
    ///   - id: the request's `id`; `.null` for `json invalid`.
    ///   - time: the current Unix time, as a float.
    ///   - error: the reason, errno and traceback (usually null).
    /// - Returns: the JSON bytes to send.
    public static func error(id: JSON, time: Double, error: CommandError) -> [UInt8] {
        JSONWriter.serialize(.object(errorEnvelope(id: id, time: time, error: error)))
    }

    /// The success envelope as an object, before serialisation.
    public static func okEnvelope(id: JSON, time: Double, payload: JSONObject = [:]) -> JSONObject {
        var envelope: JSONObject = ["status": "ok", "time": .double(time)]
        envelope.reserveCapacity(payload.count + 3)
        for (key, value) in payload { envelope[key] = value }
        envelope["id"] = id
        return envelope
    }

    /// The error envelope as an object, before serialisation.
    public static func errorEnvelope(id: JSON, time: Double, error: CommandError) -> JSONObject {
        [
            "status": "error",
            "reason": .string(error.reason),
            "tb": error.traceback.map(JSON.string) ?? .null,
            "time": .double(time),
            "errno": .int(Int64(error.code.rawValue)),
            "id": id,
        ]
    }
}
