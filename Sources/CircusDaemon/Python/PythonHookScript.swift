// The program the Python hook helper runs (`python -c <script> <endpoint>`). It reads one
// JSON request per line on stdin, calls the hook in a thread of its own, and writes one
// JSON answer per line on the protocol descriptor (its original stdout; the hooks' own
// prints go to stderr, so they cannot corrupt an answer).

import CircusConfig

enum PythonHookScript {
    /// Requests: `{"id", "hook", "hook_name", "watcher", "arbiter", "extra"}`; answers:
    /// `{"id", "result": bool}` or `{"id", "error": str(exception), "type": "<exception class>"}`.
    static let source = #"""
import importlib, json, logging, os, sys, threading, traceback

logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                    format="%(asctime)s %(name)s[%(process)d] [%(levelname)s] %(message)s")
ENDPOINT = sys.argv[1]
PROTOCOL = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
WRITE = threading.Lock()
HOOKS = {}


\#(PythonSource.resolveName)

class Process(object):
    """What Circus's Process offers a hook: its wid and pid."""

    def __init__(self, wid, pid):
        self.wid = wid
        self.pid = pid

    def __repr__(self):
        return "<Process wid=%s pid=%s>" % (self.wid, self.pid)


class Arbiter(object):
    """circusd, as hooks see it: its watchers' names, and commands sent to it."""

    def __init__(self, data):
        self.endpoint = ENDPOINT
        self.watcher_names = data.get("watchers", [])
        self._client = None

    def call(self, command, **properties):
        """Sends a command to circusd and returns its reply (Circus's CircusClient)."""
        if self._client is None:
            from circus.client import CircusClient
            self._client = CircusClient(endpoint=self.endpoint, timeout=30)
        return self._client.call({"command": command, "properties": properties})

    def get_watcher(self, name):
        reply = self.call("options", name=name)
        if reply.get("status") != "ok":
            return None
        pids = self.call("list", name=name).get("pids", [])
        return Watcher({"name": name, "numprocesses": reply["options"].get("numprocesses"),
                        "processes": [{"wid": None, "pid": p} for p in pids],
                        "options": reply["options"], "env": reply["options"].get("env") or {}}, self)


class Watcher(object):
    """A watcher as hooks see it: name, numprocesses, processes and pids, options, env."""

    def __init__(self, data, arbiter):
        self.arbiter = arbiter
        self.options = data.get("options", {})
        for key, value in self.options.items():
            if isinstance(key, str) and key.isidentifier():
                setattr(self, key, value)
        self.name = data["name"]
        self.numprocesses = data.get("numprocesses")
        self.env = data.get("env", {})
        self.processes = dict((p["wid"] if p["wid"] is not None else p["pid"], Process(p["wid"], p["pid"]))
                              for p in data.get("processes", []))

    @property
    def pids(self):
        return sorted(p.pid for p in self.processes.values())

    def get_active_processes(self):
        return list(self.processes.values())

    def call(self, command, **properties):
        """Sends a command about this watcher to circusd."""
        properties.setdefault("name", self.name)
        return self.arbiter.call(command, **properties)


def answer(message):
    with WRITE:
        PROTOCOL.write(json.dumps(message) + "\n")
        PROTOCOL.flush()


def run(request):
    try:
        hook = None if request.get("reload") else HOOKS.get(request["hook"])
        if hook is None:
            hook = HOOKS[request["hook"]] = resolve_name(request["hook"], reload=bool(request.get("reload")))
        arbiter = Arbiter(request.get("arbiter", {}))
        watcher = Watcher(request["watcher"], arbiter)
        result = hook(watcher=watcher, arbiter=arbiter, hook_name=request["hook_name"], **request.get("extra", {}))
        answer({"id": request["id"], "result": bool(result)})
    except BaseException as e:
        logging.getLogger("circus").error("Hook %r failed\n%s", request.get("hook_name"), traceback.format_exc())
        answer({"id": request["id"], "error": str(e), "type": type(e).__name__})


for line in sys.stdin:
    if line.strip():
        threading.Thread(target=run, args=(json.loads(line),), daemon=True).start()
"""#
}
