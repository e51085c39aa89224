// Pub/sub events as Circus publishes them: two frames, a topic and a JSON payload, with Circus's topic
// naming and payload key order, which `circusctl listen`, circusd-stats and plugins rely on.

internal import CircusConfig
public import OrderedCollections

/// Topic names of the pub/sub channel.
public enum EventTopic {
    /// The name Circus uses in topics (`res_name`): lower-cased, spaces replaced by
    /// underscores (`Web App` -> `web_app`). Other characters, dots included, are kept.
    public static func resName(_ watcherName: String) -> String {
        var result = String.UnicodeScalarView()
        for scalar in PythonText.lower(watcherName).unicodeScalars {
            result.append(scalar == " " ? "_" : scalar)
        }
        return String(result)
    }

    /// `watcher.<res_name>.<event>`, e.g. `watcher.web_app.spawn`.
    public static func watcher(name: String, event: String) -> String {
        "watcher.\(resName(name)).\(event)"
    }
}

/// An event about one watcher, with its payload fields.
public enum WatcherEvent: Hashable, Sendable {
    /// A process was spawned; `time` is when the spawn began.
    case spawn(pid: Int64, time: Double)
    /// A stop signal (or the SIGKILL escalation) was sent to a process.
    case kill(pid: Int64, time: Double)
    /// A process was reaped; `exitCode` is negative for a signal (`-15`).
    case reap(pid: Int64, time: Double, exitCode: Int64)
    /// The watcher finished stopping.
    case stop(time: Double)
    /// The watcher finished starting.
    case start(time: Double)
    /// A graceful reload finished.
    case reload(time: Double)
    /// `set` changed one option (one event per key).
    case updated(time: Double)
    /// The `add` command created the watcher.
    case add(time: Double)
    /// The `rm` command removed the watcher.
    case remove(time: Double)
    /// A hook returned (whatever it returned).
    case hookSuccess(name: String, time: Double)
    /// A hook failed; `error` is its message.
    case hookFailure(name: String, time: Double, error: String)

    /// The event name, last part of the topic.
    public var name: String {
        switch self {
        case .spawn: return "spawn"
        case .kill: return "kill"
        case .reap: return "reap"
        case .stop: return "stop"
        case .start: return "start"
        case .reload: return "reload"
        case .updated: return "updated"
        case .add: return "add"
        case .remove: return "remove"
        case .hookSuccess: return "hook_success"
        case .hookFailure: return "hook_failure"
        }
    }

    /// The payload, keys in Circus's order.
    public var payload: JSONObject {
        switch self {
        case .spawn(let pid, let time), .kill(let pid, let time):
            return ["process_pid": .int(pid), "time": .double(time)]
        case .reap(let pid, let time, let exitCode):
            return ["process_pid": .int(pid), "time": .double(time), "exit_code": .int(exitCode)]
        case .stop(let time), .start(let time), .reload(let time), .updated(let time), .add(let time),
            .remove(let time):
            return ["time": .double(time)]
        case .hookSuccess(let name, let time):
            return ["name": .string(name), "time": .double(time)]
        case .hookFailure(let name, let time, let error):
            return ["name": .string(name), "time": .double(time), "error": .string(error)]
        }
    }

    /// The two frames to publish for the watcher named `watcherName` (as configured).
    public func message(watcher watcherName: String) -> EventMessage {
        EventMessage(topic: EventTopic.watcher(name: watcherName, event: name), payload: payload)
    }
}

/// One pub/sub message: a topic frame and a JSON frame.
public struct EventMessage: Hashable, Sendable {
    /// The topic, e.g. `watcher.web_app.spawn`.
    public var topic: String
    /// The payload object.
    public var payload: JSONObject {
        didSet { encoded = nil }
    }
    /// `payloadFrame`, when `encodingPayload()` made it: an event that several subscribers
    /// serialize (the pub/sub socket, the plugins) is serialized once.
    private var encoded: EncodedPayload?

    /// A message with any topic (plugins may publish their own).
    public init(topic: String, payload: JSONObject) {
        self.topic = topic
        self.payload = payload
    }

    /// The first frame: the topic in UTF-8.
    public var topicFrame: [UInt8] { Array(topic.utf8) }

    /// The second frame: `json.dumps(payload)`.
    public var payloadFrame: [UInt8] { encoded?.bytes ?? JSONWriter.serialize(.object(payload)) }

    /// The same message carrying its serialized payload, for `payloadFrame` to return.
    public func encodingPayload() -> EventMessage {
        var copy = self
        copy.encoded = EncodedPayload(bytes: payloadFrame)
        return copy
    }

    public static func == (a: EventMessage, b: EventMessage) -> Bool {
        a.topic == b.topic && a.payload == b.payload
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(topic)
        hasher.combine(payload)
    }
}

/// Serialized payload bytes, shared by the copies of one message.
private final class EncodedPayload: Sendable {
    let bytes: [UInt8]
    init(bytes: [UInt8]) { self.bytes = bytes }
}
