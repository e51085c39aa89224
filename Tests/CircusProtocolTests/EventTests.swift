// Pub/sub topics and payloads, as Circus publishes them.

import CircusProtocol
import OrderedCollections
import Testing

@Suite("Events")
struct EventTests {
    @Test(
        "topics use the lower-cased name with spaces as underscores",
        arguments: [
            ("Web App", "spawn", "watcher.web_app.spawn"),
            ("sleeper", "reap", "watcher.sleeper.reap"),
            ("plugin:flapping", "spawn", "watcher.plugin:flapping.spawn"),
            ("My  Big.App", "stop", "watcher.my__big.app.stop"),
            ("ΟΔΟΣ X", "kill", "watcher.οδος_x.kill"),
            ("Tab\tName", "add", "watcher.tab\tname.add"),
        ]
    )
    func topic(name: String, event: String, expected: String) {
        #expect(EventTopic.watcher(name: name, event: event) == expected)
    }

    @Test(
        "payloads keep Circus's key order",
        arguments: [
            (WatcherEvent.spawn(pid: 7662, time: 1795976050.65), "spawn", #"{"process_pid": 7662, "time": 1795976050.65}"#),
            (.kill(pid: 19488, time: 1795976278.53), "kill", #"{"process_pid": 19488, "time": 1795976278.53}"#),
            (.reap(pid: 8121, time: 30.0, exitCode: -15), "reap", #"{"process_pid": 8121, "time": 30.0, "exit_code": -15}"#),
            (.stop(time: 1.5), "stop", #"{"time": 1.5}"#),
            (.start(time: 1.5), "start", #"{"time": 1.5}"#),
            (.reload(time: 1.5), "reload", #"{"time": 1.5}"#),
            (.updated(time: 1.5), "updated", #"{"time": 1.5}"#),
            (.add(time: 1.5), "add", #"{"time": 1.5}"#),
            (.remove(time: 1.5), "remove", #"{"time": 1.5}"#),
            (.hookSuccess(name: "before_stop", time: 2.0), "hook_success", #"{"name": "before_stop", "time": 2.0}"#),
            (.hookFailure(name: "after_start", time: 2.0, error: "boom é"), "hook_failure",
             #"{"name": "after_start", "time": 2.0, "error": "boom \u00e9"}"#),
        ]
    )
    func payload(event: WatcherEvent, name: String, json: String) {
        #expect(event.name == name)
        let message = event.message(watcher: "Web App")
        #expect(message.topic == "watcher.web_app.\(name)")
        #expect(message.topicFrame == Array("watcher.web_app.\(name)".utf8))
        #expect(String(decoding: message.payloadFrame, as: UTF8.self) == json)
    }

    @Test func aPayloadEncodedOnceIsTheSameFrameAndAChangeDropsIt() {
        let message = EventMessage(topic: "watcher.w.spawn", payload: ["process_pid": 42, "time": .double(1.5)])
        let encoded = message.encodingPayload()
        #expect(encoded == message)
        #expect(encoded.hashValue == message.hashValue)
        #expect(String(decoding: encoded.payloadFrame, as: UTF8.self) == #"{"process_pid": 42, "time": 1.5}"#)
        var changed = encoded
        changed.payload["process_pid"] = 43
        #expect(String(decoding: changed.payloadFrame, as: UTF8.self) == #"{"process_pid": 43, "time": 1.5}"#)
        #expect(changed != message)
    }
}
