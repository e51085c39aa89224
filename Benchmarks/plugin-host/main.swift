// What isolation costs: the example plugin (Plugins/example-c, built with cc) run in
// process and in a circus-plugin-host process, fed events and asked its `count`.
//
//   swift build -c release --product plugin-host-bench
//   .build/release/plugin-host-bench [events] [round-trips]
//
// Events: `events` watcher events delivered back to back (queue large enough that none
// is dropped), timed until a `count` queued behind them answers with all of them.
// Round trips: sequential `count` requests, each waiting for its reply; p50 and p99.
// Prints a markdown table; each figure is the median of 3 runs.

import CircusPluginHost
import CircusProtocol
import CircusSystem
import Glibc
import Logging
import OrderedCollections
import Synchronization

/// A bus that answers nothing and drops what plugins send: only the host is measured.
final class QuietBus: PluginBus {
    func publish(_ event: EventMessage) {}
    func runCommand(_ name: String, arguments: JSONObject, from instance: String,
                    reply: @escaping @Sendable (Result<JSONObject, CommandError>) -> Void) {
        reply(.failure(.unknownCommand(name)))
    }
    func registerCommand(_ command: PluginCommand) {}
    func unregisterCommand(named name: String) {}
    func registerHook(_ hook: PluginHook) {}
    func unregisterHook(_ id: PluginHookID) {}
    func log(_ level: Logger.Level, instance: String, message: String) {}
}

/// Waits for one value set from another thread.
final class Box<T: Sendable>: Sendable {
    private let value = Mutex<T?>(nil)
    func put(_ v: T) { value.withLock { $0 = v } }
    func wait() -> T {
        while true {
            if let v = value.withLock({ $0 }) { return v }
            sched_yield()
        }
    }
}

func run(_ command: String) {
    guard system(command) == 0 else { fatalError("failed: \(command)") }
}

let arguments = CommandLine.arguments
let eventCount = arguments.count > 1 ? Int(arguments[1]) ?? 200_000 : 200_000
let roundTrips = arguments.count > 2 ? Int(arguments[2]) ?? 5_000 : 5_000
let root: String = {
    var path = #filePath
    for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
    return path
}()
var template = Array("/tmp/plugin-bench-XXXXXX".utf8CString)
_ = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
let directory = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
let library = directory + "/example.so"
run("cc -std=c99 -O2 -I \(root)/include -fPIC -shared -fvisibility=hidden -o \(library) \(root)/Plugins/example-c/example.c")

func count(_ host: PluginHost) -> Int64 {
    let box = Box<Result<JSONObject, PluginRequestError>>()
    host.invokeCommand(named: "counter.count", arguments: [:], deadline: .seconds(600)) { box.put($0) }
    let result = box.wait()
    guard case .success(let reply) = result, let n = reply["count"]?.intValue else { fatalError("count failed: \(result)") }
    return n
}

func measure(isolated: Bool) throws -> (eventsPerSecond: Double, p50: Double, p99: Double) {
    var configuration = PluginHost.Configuration()
    configuration.queueCapacity = eventCount + 16
    let host = try PluginHost(bus: QuietBus(), configuration: configuration)
    let loaded = try host.load(library, isolated: isolated)
    let started = Box<Result<Void, PluginInstanceError>>()
    try host.startInstance("counter", of: loaded, config: ["interval_ms": 3_600_000], stateDirectory: directory,
                           isolate: isolated) { started.put($0) }
    try started.wait().get()
    let event = EventMessage(topic: "watcher.web.spawn", payload: ["process_pid": 1234, "time": 1.5])
    let began = EventLoop.monotonicNow()
    for _ in 0..<eventCount { host.deliver(event) }
    guard count(host) == Int64(eventCount) else { fatalError("events were lost") }
    let rate = Double(eventCount) / (EventLoop.monotonicNow() - began)
    var samples: [Double] = []
    for _ in 0..<roundTrips {
        let t = EventLoop.monotonicNow()
        _ = count(host)
        samples.append((EventLoop.monotonicNow() - t) * 1e6)
    }
    samples.sort()
    let stopped = Box<Bool>()
    host.stopInstance("counter") { stopped.put(true) }
    _ = stopped.wait()
    host.shutdown()
    return (rate, samples[samples.count / 2], samples[samples.count * 99 / 100])
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

print("| mode | events/s | count round trip p50 (µs) | p99 (µs) |")
print("|---|---|---|---|")
for isolated in [false, true] {
    var runs: [(Double, Double, Double)] = []
    for _ in 0..<3 { runs.append(try measure(isolated: isolated)) }
    print("| \(isolated ? "isolated" : "in process") | \(Int(median(runs.map(\.0)))) | "
        + "\(Int(median(runs.map(\.1)))) | \(Int(median(runs.map(\.2)))) |")
}
run("rm -rf \(directory)")
