// What the host needs of an instance, wherever it runs: on an executor in this process
// (`PluginInstance`) or in a supervised circus-plugin-host process (`IsolatedInstance`).

import CircusProtocol
import CircusSystem
import Logging
import OrderedCollections

protocol HostedInstance: AnyObject, Sendable {
    var name: String { get }
    var library: PluginLibrary { get }
    var lifecycle: PluginState { get }
    var failure: String? { get }
    var queueDepth: Int { get }
    var droppedEvents: UInt64 { get }
    /// Restarts and the host process's pid, for an isolated instance.
    var isolation: (restarts: Int, pid: Int32?)? { get }

    /// Whether some subscription of the started instance wants `topic`.
    func wants(_ topic: String) -> Bool
    /// Queues an event (dropping the oldest queued event when full); with `wake` false,
    /// the instance's thread or host process hears of it at the next `wake()` (or with
    /// the next item queued with a wakeup), so a batch of events costs one wakeup.
    ///
    /// - Returns: true when the event waits for `wake()` and nothing did before it (the
    ///   caller must see to that call); false otherwise.
    func enqueueEvent(topic: String, payload: LentBytes, wake: Bool) -> Bool
    /// Hands over what was queued with `wake: false`.
    func wake()
    /// Queues a command (`handle` nil) or hook request; the outcome goes to `complete`.
    func enqueueRequest(
        name requestName: String, handle: UInt64?, arguments: JSONObject, deadline: Double,
        complete: @escaping @Sendable (RequestOutcome) -> Void)
    /// Creates and starts the instance; `completion` gets the outcome.
    func begin(config: JSONObject, stateDirectory: String,
               completion: @escaping @Sendable (Result<Void, PluginInstanceError>) -> Void)
    /// Stops and destroys it; with `final`, its thread ends too.
    func end(final: Bool, completion: @escaping @Sendable () -> Void)
    /// Applies a new config, in place or by recreating the instance.
    func reconfigure(config: JSONObject, stateDirectory: String,
                     completion: @escaping @Sendable (Result<Void, PluginInstanceError>) -> Void)
}

extension PluginHost {
    /// Tells the daemon that an instance dropped events: a warning, and the event
    /// `plugin.<instance>.dropped` with `{"count": n, "time": t}`.
    func reportDrops(instance: String, count: UInt64) {
        bus.log(.warning, instance: instance, message: "plugin \(instance) was too slow: \(count) events were dropped")
        bus.publish(EventMessage(
            topic: "plugin.\(instance).dropped",
            payload: ["count": .int(Int64(count)), "time": .double(EventLoop.wallNow())]))
    }
}
