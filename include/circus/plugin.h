/*
 * circus/plugin.h: the stable C ABI between circusd and its plugins, version 1.
 *
 * A plugin is a shared library that includes this header only, links nothing of
 * circusd, and exports one function, circus_plugin_describe(). Everything else
 * crosses through two tables of function pointers: the host's (circus_host_api,
 * handed to create()) and the plugin's (circus_plugin_vtable, named by the
 * descriptor). The same library runs inside circusd or inside an isolated plugin
 * host process, unchanged: everything that flows is a message (a topic and a JSON
 * object, a command name and JSON arguments, a JSON reply).
 *
 * Rules of this header, so that it stays compatible for years:
 *  - C99 and C++ alike; it includes <stddef.h> and <stdint.h> only.
 *  - No varargs, no bit-fields, no enums inside structs (fixed-width integers),
 *    no struct passed by value except circus_str.
 *  - Every struct that crosses the boundary starts with `uint32_t struct_size`,
 *    set by whoever fills the struct to the sizeof it was compiled with.
 *  - Within one major version, members are only ever appended (to the end of a
 *    struct or of a table). A reader checks struct_size before touching a member
 *    (CIRCUS_HAS) and treats a missing pointer member as NULL.
 *  - Nothing unwinds across any function below: no C++ exception, no longjmp, no
 *    Rust panic. C++ plugins wrap every entry point in try { } catch (...).
 *
 * Versions. The host and the plugin must have the same CIRCUS_ABI_MAJOR; the
 * host refuses any other, naming both. Minors only add. A plugin built against
 * an older minor loads in a newer host (the slots it lacks count as NULL). A
 * plugin built against a newer minor is told the host's version by
 * circus_plugin_describe(); by returning a descriptor it promises to test
 * CIRCUS_HOST_HAS(api, member) before calling any member newer than that host.
 *
 * The five memory rules.
 *  1. Every pointer and circus_str the host passes into a plugin function is
 *     borrowed: valid until that function returns. Copy what you keep. Strings
 *     from the host are also NUL-terminated (not counted in len).
 *  2. Every pointer and circus_str a plugin passes into a host function is copied
 *     by the host before the function returns. The plugin keeps its buffer.
 *  3. Whoever allocates frees. No free() crosses the boundary; there is no shared
 *     allocator.
 *  4. A `void *ud` passed together with a circus_dtor_fn belongs to the host once
 *     the call returns CIRCUS_OK: the host calls the dtor (if not NULL) exactly
 *     once, on the instance's queue, when the registration ends (cancelled,
 *     one-shot done, or the instance destroyed; always before destroy()). If the
 *     call fails, the plugin still owns ud and no dtor is called.
 *  5. The instance pointer create() returns belongs to the plugin until destroy().
 *
 * Threads. All callbacks into one instance (vtable functions, events, command
 * and hook requests, timers, fd readiness, call results, posted tasks, dtors)
 * run on that instance's own serial queue: one at a time, in FIFO order, never
 * re-entrantly. If a host call made inside a callback would cause another
 * callback, that callback is queued, not run inside the call. The queue is a
 * dedicated thread, so a callback may block, but it delays only its own
 * instance: aim for under 10 ms; the host warns above 100 ms. Put blocking work
 * on your own threads and come back with post(). Every circus_host_api function
 * is thread-safe and may be called from any thread from the start of create().
 * Once stop() has returned (or create() or start() failed), the functions that
 * register, send or post fail with CIRCUS_E_CANCELLED; log() and set_error()
 * keep working until destroy() returns. Join your threads in stop().
 * Forbidden in-process, because they are process-wide: fork/system/popen,
 * changing signal dispositions or masks, setenv/putenv, chdir, setuid, exit,
 * writing to fd 1 or 2 (use log()). Open descriptors with O_CLOEXEC. Such a
 * plugin sets CIRCUS_PLUGIN_F_REQUIRE_ISOLATION.
 *
 * Errors. Every fallible function returns a circus_status: CIRCUS_OK (0) or a
 * negative CIRCUS_E_* code. Functions that can fail for a reason a user must
 * read also take a circus_error sink, filled with api->set_error().
 */
#ifndef CIRCUS_PLUGIN_H
#define CIRCUS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- versions and identification ------------------------------------------ */

#define CIRCUS_ABI_MAJOR 1u                  /* must match the host's exactly    */
#define CIRCUS_ABI_MINOR 0u                  /* minors only append members       */
#define CIRCUS_PLUGIN_MAGIC 0x43524350u      /* "CRCP": first field of a descriptor */
#define CIRCUS_PLUGIN_ENTRY "circus_plugin_describe"  /* the one exported symbol */

#if defined(__GNUC__) || defined(__clang__)
#  define CIRCUS_EXPORT __attribute__((visibility("default")))
#else
#  define CIRCUS_EXPORT
#endif

/* ---- status codes: 0 is success, negative is failure ------------------------ */

typedef int32_t circus_status;
#define CIRCUS_OK              0   /* done                                          */
#define CIRCUS_E_INVALID      -1   /* bad argument, bad JSON, name outside the
                                      instance's namespace, wrong state            */
#define CIRCUS_E_NOT_FOUND    -2   /* no such command, handle or reply token       */
#define CIRCUS_E_UNSUPPORTED  -3   /* feature absent in this host or this mode     */
#define CIRCUS_E_BUSY         -4   /* the instance's queue is full: retry later    */
#define CIRCUS_E_TIMEOUT      -5   /* no answer before the deadline                */
#define CIRCUS_E_INTERNAL     -6   /* the host or the plugin failed; see message   */
#define CIRCUS_E_CANCELLED    -7   /* the instance (or the host) is going away     */

/* ---- log levels (the swift-log levels) --------------------------------------- */

typedef int32_t circus_log_level;
#define CIRCUS_LOG_TRACE    0
#define CIRCUS_LOG_DEBUG    1
#define CIRCUS_LOG_INFO     2
#define CIRCUS_LOG_NOTICE   3
#define CIRCUS_LOG_WARNING  4
#define CIRCUS_LOG_ERROR    5
#define CIRCUS_LOG_CRITICAL 6

/* ---- fd readiness bits (the same values as POLLIN/POLLOUT/... on Linux) ------- */

#define CIRCUS_FD_READABLE 0x001u          /* data to read, or the peer closed     */
#define CIRCUS_FD_WRITABLE 0x004u          /* room to write                         */
#define CIRCUS_FD_ERROR    0x008u          /* error condition (always reported)     */
#define CIRCUS_FD_HANGUP   0x010u          /* hang-up (always reported)             */

/* ---- basic types ------------------------------------------------------------- */

/* UTF-8 bytes and their length (no NUL counted). ptr may be NULL when len is 0.
 * JSON arguments are always one JSON object; an empty string means {}.          */
typedef struct circus_str {
    const char *ptr;
    size_t len;
} circus_str;

typedef struct circus_host  circus_host;   /* opaque: the host side of one instance */
typedef struct circus_reply circus_reply;  /* opaque: a pending answer; reply once  */
typedef struct circus_error circus_error;  /* opaque: an error sink; set_error()    */
typedef uint64_t circus_handle;            /* a registration's id; 0 is "none"      */

/* Callbacks. `ud` is the userdata given when registering. All run on the
 * instance's queue (see Threads above).                                         */

/* Ends a registration's userdata (rule 4). */
typedef void (*circus_dtor_fn)(void *ud);
/* An event whose topic starts with the subscribed prefix. json is the payload
 * object, exactly as subscribers of the pub/sub socket see it.                  */
typedef void (*circus_event_fn)(void *ud, circus_str topic, circus_str json);
/* A command or hook request. name is the command name ("<instance>.<verb>") or
 * the hook name ("before_start"); args_json its arguments. The plugin must
 * answer with api->reply(reply, ...) exactly once, now or later, from any thread.
 * The token stays valid until it is answered; a reply after the requester's
 * deadline is accepted and dropped.                                             */
typedef void (*circus_request_fn)(void *ud, circus_str name, circus_str args_json,
                                  circus_reply *reply);
/* The answer to api->call(): st as documented there, json the reply object.     */
typedef void (*circus_result_fn)(void *ud, circus_status st, circus_str json);
/* A timer fired. */
typedef void (*circus_timer_fn)(void *ud, circus_handle timer);
/* fd is ready; revents holds CIRCUS_FD_* bits. Level-triggered: consume what
 * made it ready or you are called again.                                        */
typedef void (*circus_fd_fn)(void *ud, int fd, uint32_t revents);
/* A task handed to post(). */
typedef void (*circus_task_fn)(void *ud);

/* ---- host -> plugin: the function table (append-only) ----------------------- */

/* Flags for register_command. */
#define CIRCUS_COMMAND_F_READ_ONLY (1ull << 0)  /* only reads state: read-only
                                                   control clients may call it;
                                                   without it, control access
                                                   is required                    */

typedef struct circus_host_api {
    uint32_t struct_size;                 /* sizeof as compiled into the host     */
    uint32_t abi_major;                   /* the host's CIRCUS_ABI_MAJOR          */
    uint32_t abi_minor;                   /* the host's CIRCUS_ABI_MINOR          */
    uint32_t reserved0;                   /* 0                                    */

    /* -- diagnostics -- */

    /* Logs msg (one line, no trailing newline needed) with the instance's name. */
    void (*log)(circus_host *h, circus_log_level level, circus_str msg);
    /* Fills an error sink handed to the plugin (create, start, reconfigure).
     * The host copies msg; the last call wins. err may be NULL (ignored).       */
    void (*set_error)(circus_error *err, circus_status code, circus_str msg);

    /* -- events -- */

    /* Publishes an event to every subscriber (pub/sub socket, other plugins,
     * this one too if subscribed). topic must start with "plugin.<instance>."
     * (else CIRCUS_E_INVALID); json must be a JSON object (else
     * CIRCUS_E_INVALID). Payloads should carry "time" (Unix seconds, float).  */
    circus_status (*publish)(circus_host *h, circus_str topic, circus_str json);
    /* Calls fn for every event whose topic starts with topic_prefix ("" = all;
     * "watcher." = every watcher event). *out (may be NULL) gets the handle.
     * Events are queued on a bounded queue: when a slow instance lets it fill,
     * the oldest events are dropped, and once it drains the host publishes
     * "plugin.<instance>.dropped" with {"count": n, "time": t}.               */
    circus_status (*subscribe)(circus_host *h, circus_str topic_prefix,
                               circus_event_fn fn, void *ud, circus_dtor_fn dtor,
                               circus_handle *out);
    /* Ends a subscription (same as cancel(), for subscriptions only).          */
    circus_status (*unsubscribe)(circus_host *h, circus_handle subscription);

    /* -- commands (reachable from circusctl and the control socket) -- */

    /* Registers the command `name`, which must be "<instance>.<verb>" with
     * verb made of [a-z0-9_.-]. meta_json is a JSON object
     * {"help": "one line", "args": {"<arg>": {"type": "string|integer|number|
     * boolean|object|array", "required": bool, "help": "..."}}}; "" means {}.
     * flags: CIRCUS_COMMAND_F_*. Requests arrive through fn. A name already
     * registered gives CIRCUS_E_INVALID. *out (may be NULL) gets the handle.    */
    circus_status (*register_command)(circus_host *h, circus_str name,
                                      circus_str meta_json, uint64_t flags,
                                      circus_request_fn fn, void *ud,
                                      circus_dtor_fn dtor, circus_handle *out);
    /* Answers a request, exactly once, from any thread. st CIRCUS_OK: json is
     * the reply object (the host adds "status": "ok" and "time"). st < 0: the
     * requester gets an error; json may carry {"reason": "..."}, shown to the
     * user. A second answer, or an unknown token, gives CIRCUS_E_NOT_FOUND;
     * st CIRCUS_OK with json that is not an object gives CIRCUS_E_INVALID and
     * leaves the request pending (answer it again, correctly). A
     * hook is answered with CIRCUS_OK and {"allow": true} or {"allow": false};
     * any other answer counts as the hook failing.                              */
    circus_status (*reply)(circus_reply *reply, circus_status st, circus_str json);
    /* Runs a daemon command (built-in or another plugin's) asynchronously, as
     * the control socket would: command "stop", args_json {"name": "web"}.
     * done(ud, st, json) is called exactly once on this instance's queue, never
     * inside call() itself; json is the reply object ({"status": "ok", ...} or
     * {"status": "error", "reason": ...}) and st is CIRCUS_OK when the status
     * is "ok", else CIRCUS_E_NOT_FOUND (no such command), CIRCUS_E_INVALID (bad
     * arguments), CIRCUS_E_TIMEOUT, CIRCUS_E_BUSY, CIRCUS_E_CANCELLED (the
     * instance is being destroyed; done still runs, before destroy) or
     * CIRCUS_E_INTERNAL. If call() fails, done is never called.                 */
    circus_status (*call)(circus_host *h, circus_str command, circus_str args_json,
                          circus_result_fn done, void *ud);

    /* -- watcher hooks -- */

    /* Asks to be consulted for hook_name ("before_start", "after_start",
     * "before_spawn", "after_spawn", "before_stop", "after_stop",
     * "before_signal", "after_signal", "before_reap", "after_reap") of every
     * watcher whose name matches watcher_glob (fnmatch: "*", "web*"). fn gets
     * name = hook_name and args_json = the hook request
     * {"watcher": "web", "hook": "before_start", "time": t, ...} with "pid",
     * "signum" where the hook has them. Answer with reply() (see there) before
     * the hook's deadline; a timeout or an error is a hook failure, which the
     * watcher's ignore_hook_failure option decides about, as in Circus.
     * *out (may be NULL) gets the handle.                                        */
    circus_status (*register_hook)(circus_host *h, circus_str watcher_glob,
                                   circus_str hook_name, circus_request_fn fn,
                                   void *ud, circus_dtor_fn dtor, circus_handle *out);

    /* -- scheduling: every callback below runs on this instance's queue -- */

    /* Calls fn after delay_ms, then every repeat_ms (0: once; the registration
     * then ends after fn returns and the dtor runs). *out (may be NULL) gets
     * the handle, also passed to fn.                                            */
    circus_status (*add_timer)(circus_host *h, uint64_t delay_ms, uint64_t repeat_ms,
                               circus_timer_fn fn, void *ud, circus_dtor_fn dtor,
                               circus_handle *out);
    /* Calls fn whenever fd is ready for events (CIRCUS_FD_READABLE and/or
     * CIRCUS_FD_WRITABLE). The host does not own fd: cancel the watch, on the
     * instance's queue, before closing it. An fd watched twice, a closed fd or
     * other event bits give CIRCUS_E_INVALID.                                   */
    circus_status (*watch_fd)(circus_host *h, int fd, uint32_t events,
                              circus_fd_fn fn, void *ud, circus_dtor_fn dtor,
                              circus_handle *out);
    /* Ends any registration of this instance by its handle: subscription,
     * command, hook, timer or fd watch. Called on the queue, its callback is
     * not called again after cancel() returns (from another thread, one call
     * already starting may still run); its dtor runs later on the queue.
     * CIRCUS_E_NOT_FOUND for a handle already ended.                            */
    circus_status (*cancel)(circus_host *h, circus_handle handle);
    /* Runs fn(ud) on this instance's queue, after what is already queued, then
     * dtor(ud) if not NULL. The call meant for the plugin's own threads. If
     * the instance is stopped before fn runs, only dtor runs. Fails with
     * CIRCUS_E_BUSY when the queue is full, CIRCUS_E_CANCELLED once the
     * instance is being destroyed (then nothing runs; ud is still yours).       */
    circus_status (*post)(circus_host *h, circus_task_fn fn, void *ud,
                          circus_dtor_fn dtor);

    /* Members of minor versions after 1.0 are appended here. Test for them with
     * CIRCUS_HOST_HAS(api, member) before calling them.                          */
} circus_host_api;

/* True when struct *p (of type `type`, starting with struct_size) has `member`. */
#define CIRCUS_HAS(p, type, member) \
    ((p)->struct_size >= offsetof(type, member) + sizeof(((type *)0)->member))
#define CIRCUS_HOST_HAS(api, member) CIRCUS_HAS(api, circus_host_api, member)

/* ---- the input of create() ---------------------------------------------------- */

typedef struct circus_create_params {
    uint32_t struct_size;                 /* sizeof as compiled into the host     */
    uint32_t reserved0;                   /* 0                                    */
    const circus_host_api *api;           /* valid until destroy() returns        */
    circus_host *host;                    /* pass back to every api call          */
    circus_str instance_name;             /* NAME of [plugin:NAME], [a-z0-9_]+    */
    circus_str config_json;               /* that section as a JSON object, with
                                             circus variables already expanded   */
    circus_str state_dir;                 /* an existing writable directory, this
                                             instance's own                      */
} circus_create_params;

/* ---- plugin -> host: the vtable (NULL slot = not implemented) --------------- */

typedef struct circus_plugin_vtable {
    uint32_t struct_size;                 /* sizeof as compiled into the plugin   */
    uint32_t reserved0;                   /* 0                                    */
    /* Required. Checks config_json (naming the bad key in err), builds the
     * instance, may register subscriptions, commands, hooks and timers. On
     * failure return < 0, fill err; destroy is not called and whatever was
     * registered is released. Must not keep p: copy what it needs.             */
    circus_status (*create)(const circus_create_params *p, void **out_instance,
                            circus_error *err);
    /* Optional. Begins work (start threads, open sockets). Events are delivered
     * once start succeeded. On failure: registrations released, then destroy. */
    circus_status (*start)(void *instance, circus_error *err);
    /* Optional. Stop producing work and join your own threads. After it, the
     * host ends every registration (dtors), answers pending requests with
     * CIRCUS_E_CANCELLED, completes pending call()s with CIRCUS_E_CANCELLED,
     * drops posted tasks (running their dtors), then calls destroy.             */
    void (*stop)(void *instance);
    /* Required. Frees the instance. No callback follows it.                    */
    void (*destroy)(void *instance);
    /* Optional. Applies a changed config section in place; on failure the old
     * config stays and err says why. NULL: the host destroys the instance and
     * creates a new one with the new config.                                    */
    circus_status (*reconfigure)(void *instance, circus_str config_json,
                                 circus_error *err);
    /* Slots of minor versions after 1.0 are appended here; a host reading an
     * older plugin's vtable treats slots past its struct_size as NULL.          */
} circus_plugin_vtable;

/* ---- the descriptor ------------------------------------------------------------ */

#define CIRCUS_PLUGIN_F_REQUIRE_ISOLATION (1ull << 0)  /* never load in-process:
                                                          run it in a plugin host
                                                          process                */
#define CIRCUS_PLUGIN_F_MULTI_INSTANCE    (1ull << 1)  /* several [plugin:x]
                                                          sections may use it    */

typedef struct circus_plugin_descriptor {
    uint32_t magic;                       /* CIRCUS_PLUGIN_MAGIC                  */
    uint32_t struct_size;                 /* sizeof as compiled into the plugin   */
    uint32_t abi_major;                   /* CIRCUS_ABI_MAJOR when compiled       */
    uint32_t abi_minor;                   /* CIRCUS_ABI_MINOR when compiled       */
    const char *name;                     /* [a-z0-9_]+, NUL-terminated           */
    const char *version;                  /* the plugin's own version ("1.2.0")   */
    const char *description;              /* one line                             */
    uint64_t flags;                       /* CIRCUS_PLUGIN_F_*                    */
    const circus_plugin_vtable *vtable;   /* never NULL                           */
} circus_plugin_descriptor;

/* The single required export, looked up by the name CIRCUS_PLUGIN_ENTRY.
 * It must be pure: no allocation, no threads, no I/O; it may be called more
 * than once. Return NULL if the plugin cannot run on this host's ABI. The
 * descriptor, its strings and the vtable are static and never change.          */
typedef const circus_plugin_descriptor *(*circus_plugin_describe_fn)(
    uint32_t host_abi_major, uint32_t host_abi_minor);
CIRCUS_EXPORT const circus_plugin_descriptor *
circus_plugin_describe(uint32_t host_abi_major, uint32_t host_abi_minor);

/* ---- hooks named in config: hooks.before_start = /path/lib.so:symbol --------- */

/* The fixed signature of a hook function named in a watcher's config. The
 * library needs no descriptor: the host looks up the symbol and calls it on a
 * queue of its own (one per library), never on the daemon's loop, with the
 * hook's deadline; a call that outlives it counts as a hook failure.
 * It returns synchronously:
 *   CIRCUS_HOOK_ALLOW (1)  go on,
 *   CIRCUS_HOOK_DENY  (0)  refuse (before_start: the watcher does not start),
 *   < 0 (circus_status)    the hook failed; err may say why. The watcher's
 *                          ignore_hook_failure option decides, as in Circus.
 * Through call->api only log() and set_error() may be used (with call->host
 * and err); every other member fails with CIRCUS_E_UNSUPPORTED.               */
#define CIRCUS_HOOK_DENY  0
#define CIRCUS_HOOK_ALLOW 1

typedef struct circus_hook_call {
    uint32_t struct_size;                 /* sizeof as compiled into the host     */
    uint32_t reserved0;                   /* 0                                    */
    const circus_host_api *api;           /* for log() and set_error()            */
    circus_host *host;                    /* pass to api->log()                   */
    circus_str hook_name;                 /* "before_start", ...                  */
    circus_str watcher_name;              /* "web"                                */
    circus_str request_json;              /* as for register_hook: {"watcher":
                                             "web", "hook": "before_start",
                                             "time": t, "pid": ..., ...}          */
} circus_hook_call;

typedef int32_t (*circus_hook_fn)(const circus_hook_call *call, circus_error *err);

/* ---- helpers ---------------------------------------------------------------------- */

/* A circus_str over ptr[0..len). */
static inline circus_str circus_str_make(const char *ptr, size_t len) {
    circus_str s;
    s.ptr = ptr;
    s.len = len;
    return s;
}

/* A circus_str over a NUL-terminated string (NULL gives the empty string). */
static inline circus_str circus_cstr(const char *s) {
    size_t n = 0;
    if (s != NULL) {
        while (s[n] != '\0') {
            n++;
        }
    }
    return circus_str_make(s, n);
}

#ifdef __cplusplus
}
#endif

#endif /* CIRCUS_PLUGIN_H */
