// The program that runs a watcher's Python stream classes (`python -c <script> <spec>
// <report fd>`). Circus creates a stream object per stream when it loads the watcher,
// calls `open()` (if the class has one) when the watcher starts, calls the object with
// `{"data": bytes, "pid": pid, "name": "stdout"|"stderr"}` for every chunk read from a
// process's pipe, and `close()` (if it has one) when the watcher stops. This helper does
// the same with the frames circusd writes on its stdin, and reports failures as JSON
// lines on the report descriptor; its stdout and stderr are circusd's, as in Circus.

import CircusConfig

/// The frames of the stream helper's stdin and the script that reads them.
enum PythonStreamScript {
    /// What a frame asks for.
    enum Operation: UInt8 {
        /// Call the stream with the frame's bytes.
        case data = 0
        /// Call `open()`, if the class has one.
        case open = 1
        /// Call `close()`, if the class has one.
        case close = 2
    }

    /// Which stream a frame is for (the index in the script's `NAMES`).
    static func index(of stream: String) -> UInt8 { stream == "stderr" ? 1 : 0 }

    /// A frame's header: operation, stream index, pid (int32), length (uint32), little endian.
    static let headerSize = 10

    /// Writes a frame header into `header`.
    static func header(_ operation: Operation, stream: String, pid: Int32, length: Int) -> [UInt8] {
        var bytes: [UInt8] = [operation.rawValue, index(of: stream)]
        withUnsafeBytes(of: pid.littleEndian) { bytes += $0 }
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: length).littleEndian) { bytes += $0 }
        return bytes
    }

    /// Exit status of a helper whose stream could not be created.
    static let constructionFailed: Int32 = 3

    /// argv[1]: `{"watcher": name, "streams": {"stdout": {"class": path, "options": {...}}}}`;
    /// argv[2]: the report descriptor; argv[3]: circusd's pid. Reports: `{"stream", "error", "traceback"}` when a
    /// stream fails (once until it works again), `{"stream", "recovered", "lost"}` after.
    static let source = #"""
import ctypes, json, logging, os, signal, struct, sys, traceback

# circusd ends the helper by closing its stdin, once the last bytes are written: an
# interrupt meant for circusd (Ctrl-C in its terminal) must not cut that short. But a
# helper must not outlive circusd (a class stuck in a call never reads that end):
# PR_SET_PDEATHSIG ends it with circusd, and one whose circusd is already gone leaves.
signal.signal(signal.SIGINT, signal.SIG_IGN)
try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)
except Exception:
    pass
if os.getppid() != int(sys.argv[3]):
    sys.exit(0)
logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                    format="%(asctime)s %(name)s[%(process)d] [%(levelname)s] %(message)s")
SPEC = json.loads(sys.argv[1])
REPORT = os.fdopen(int(sys.argv[2]), "w")
NAMES = ("stdout", "stderr")
HEADER = struct.Struct("<BBiI")


\#(PythonSource.resolveName)

def report(**fields):
    REPORT.write(json.dumps(fields) + "\n")
    REPORT.flush()


def described(e):
    return "%s: %s" % (type(e).__name__, e)


streams = {}
for name, conf in SPEC["streams"].items():
    try:
        streams[name] = resolve_name(conf["class"])(**conf["options"])
    except Exception as e:
        report(stream=name, error="cannot create %s: %s" % (conf["class"], described(e)),
               traceback=traceback.format_exc())
        sys.exit(3)

failing = {}
lost = {}
source = sys.stdin.buffer
while True:
    head = source.read(HEADER.size)
    if len(head) < HEADER.size:
        break
    op, which, pid, length = HEADER.unpack(head)
    data = source.read(length) if length else b""
    name = NAMES[which]
    stream = streams.get(name)
    if stream is None:
        continue
    try:
        if op == 0:
            stream({"data": data, "pid": pid, "name": name})
        elif op == 1:
            if hasattr(stream, "open"):
                stream.open()
        elif op == 2:
            if hasattr(stream, "close"):
                stream.close()
    except Exception as e:
        lost[name] = lost.get(name, 0) + len(data)
        if name not in failing:
            failing[name] = described(e)
            report(stream=name, error=failing[name], traceback=traceback.format_exc())
    else:
        if op == 0 and name in failing:
            report(stream=name, recovered=failing.pop(name), lost=lost.pop(name, 0))
sys.stdout.flush()
"""#
}
