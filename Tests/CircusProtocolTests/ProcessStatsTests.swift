// Process info formatting; expectations from Circus's util.py under Python 3.11.

import CircusProtocol
import OrderedCollections
import Testing

@Suite("Process statistics")
struct ProcessStatsTests {
    @Test(
        "bytes2human",
        arguments: [
            (0 as Int64, "0B"), (1, "1B"), (1023, "1023B"), (1024, "1.00K"), (1025, "1.00K"), (1536, "1.50K"),
            (1_048_575, "1024.00K"), (1_048_576, "1.00M"), (8_965_325, "8.55M"), (25_910_000, "24.71M"),
            (124_256_256, "118.50M"), (1 << 30, "1.00G"), (5 << 40, "5.00T"), (1 << 50, "1.00P"), (1 << 60, "1.00E"),
            (.max, "8.00E"), (-5, "-5B"),
        ]
    )
    func bytes2human(bytes: Int64, expected: String) {
        #expect(ProcessStats.bytes2human(bytes) == expected)
    }

    @Test(
        "ctime, quirks included",
        arguments: [
            (0.0, "0:00.0"), (0.005, "0:00.50"), (0.1, "0:00.10"), (0.2, "0:00.20"), (2.89, "0:02.89"),
            (2.92, "0:02.92"), (0.000007, "0:00.7"), (59.999999, "0:59.99"), (61.5, "1:01.50"), (3661.25, "1:01.25"),
            (86400.5, "0:00.50"), (0.0000005, "0:00.0"), (0.0000015, "0:00.2"), (.nan, "N/A"),
        ] as [(Double, String)]
    )
    func ctime(seconds: Double, expected: String) {
        #expect(ProcessStats.ctime(cpuSeconds: seconds) == expected)
    }

    @Test(
        "cmdline is the base name of argv[0]'s first shell word",
        arguments: [
            (["/usr/bin/python3", "-u", "app.py"], "python3" as JSON), (["sleep", "1000"], "sleep"),
            (["/usr/bin/python3 -m http.server"], "python3"), (["'/opt/my app/run' x"], "run"), (["  "], "N/A"),
            ([], "N/A"), (nil, "N/A"), (["a\\ b/c\\ d"], "c d"), (["\"x y\"/z"], "z"),
        ] as [([String]?, JSON)]
    )
    func commandName(argv: [String]?, expected: JSON) {
        #expect(ProcessStats.commandName(argv: argv) == expected)
    }

    static let x2Sample = ProcessSample(
        pid: 16115, rssBytes: 8_965_325, vmsBytes: 12_803_113, cpuPercent: 0.0, memPercent: 0.0351234,
        cpuTimeSeconds: 0.1, username: "root", nice: .value(0), createTime: 1795976050.53,
        argv: ["python", "-c", "..."]
    )

    @Test("stats <name> <pid> info matches capture x2")
    func watcherProcessInfo() {
        let info = ProcessStats.watcherProcessInfo(
            Self.x2Sample, now: 1795976064.7514281, started: 1795976051.3421025, wid: 2)
        let reply = Reply.ok(id: "x2", time: 1795976064.7532334, payload: ["process": 16115, "info": .object(info)])
        #expect(
            String(decoding: reply, as: UTF8.self)
                == #"{"status": "ok", "time": 1795976064.7532334, "process": 16115, "info": {"mem_info1": "8.55M", "mem_info2": "12.21M", "cpu": 0.0, "mem": 0.035, "ctime": "0:00.10", "pid": 16115, "username": "root", "nice": 0, "create_time": 1795976050.53, "age": 13.40932559967041, "cmdline": "python", "children": [], "started": 1795976051.3421025, "wid": 2}, "id": "x2"}"#
        )
    }

    @Test("dstats info matches capture x5")
    func dstatsInfo() {
        let sample = ProcessSample(
            pid: 7019, rssBytes: 27_095_204, vmsBytes: 124_256_256, cpuPercent: 0.0, memPercent: 0.10712,
            cpuTimeSeconds: 2.92, username: "root", nice: .value(0), createTime: 1795975950.85,
            argv: ["/usr/local/bin/python3", "/usr/local/bin/circusd"]
        )
        let reply = Reply.ok(id: "x5", time: 1795976064.9639525, payload: ["info": .object(ProcessStats.info(sample, now: 1795976064.9639423))])
        #expect(
            String(decoding: reply, as: UTF8.self)
                == #"{"status": "ok", "time": 1795976064.9639525, "info": {"mem_info1": "25.84M", "mem_info2": "118.50M", "cpu": 0.0, "mem": 0.107, "ctime": "0:02.92", "pid": 7019, "username": "root", "nice": 0, "create_time": 1795975950.85, "age": 114.11394238471985, "cmdline": "python3", "children": []}, "id": "x5"}"#
        )
    }

    @Test("children, unavailable fields, zombies and the stream payload")
    func variants() {
        var sample = Self.x2Sample
        sample.children = [ProcessSample(pid: 42, rssBytes: 100, nice: .zombie, createTime: 10.0, argv: ["sh"])]
        let info = ProcessStats.watcherProcessInfo(sample, now: 20.0, started: 15.0, wid: 1)
        #expect(info.keys.elements == [
            "mem_info1", "mem_info2", "cpu", "mem", "ctime", "pid", "username", "nice", "create_time", "age", "cmdline",
            "children", "started", "wid",
        ])
        #expect(info["age"] == 5.0)
        let child = info["children"]?.arrayValue?.first?.objectValue
        #expect(child?["mem_info1"] == "100B")
        #expect(child?["mem_info2"] == "N/A")
        #expect(child?["cpu"] == "N/A")
        #expect(child?["ctime"] == "N/A")
        #expect(child?["username"] == "N/A")
        #expect(child?["nice"] == "Zombie")
        #expect(child?["age"] == 10.0)
        #expect(child?["children"] == [])

        let bare = ProcessStats.info(ProcessSample(pid: 1), now: 0)
        #expect(bare["create_time"] == "N/A")
        #expect(bare["age"] == "N/A")
        #expect(bare["nice"] == "N/A")
        #expect(bare["cmdline"] == "N/A")

        let stream = ProcessStats.streamInfo(ProcessSample(pid: 16126), now: 0, name: "circusd")
        #expect(stream.keys.elements.suffix(3) == ["children", "subtopic", "name"])
        #expect(stream["subtopic"] == 16126)
        #expect(stream["name"] == "circusd")
        #expect(ProcessStats.streamInfo(ProcessSample(pid: 1), now: 0)["name"] == .null)

        let byPid = ProcessStats.byPid([(pid: 16126, info: ProcessStats.noSuchProcess), (pid: 7, info: [:])])
        #expect(JSONWriter.string(.object(byPid)) == #"{"16126": "No such process (stopped?)", "7": {}}"#)
    }
}
