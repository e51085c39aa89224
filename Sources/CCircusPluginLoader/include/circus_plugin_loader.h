// CCircusPluginLoader: what the in-process plugin host (Swift) and the isolated plugin
// host process (circus-plugin-host, C) must do alike, written once: opening a plugin
// library and checking its descriptor, the name rules of the ABI, checking that a string
// is one JSON object, and the frames the daemon and an isolated plugin host exchange.
//
// This header includes only standard headers (the plugin ABI header stays out of the
// module, so that Swift imports it once, through CCircusPlugin): descriptor and vtable
// pointers cross as `const void *` and are cast back by the caller.

#ifndef CIRCUS_PLUGIN_LOADER_H
#define CIRCUS_PLUGIN_LOADER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - Loading

/// Which check failed (`circus_loaded_plugin.failure`); the Swift host's
/// `PluginLoadError.Kind` has one case per value.
enum circus_load_failure {
    CIRCUS_LOAD_OK = 0,
    CIRCUS_LOAD_OPEN_FAILED = 1,    ///< dlopen refused the file
    CIRCUS_LOAD_NO_ENTRY_POINT = 2, ///< no circus_plugin_describe
    CIRCUS_LOAD_REFUSED_HOST = 3,   ///< describe() returned NULL
    CIRCUS_LOAD_BAD_DESCRIPTOR = 4, ///< magic, size, name or vtable wrong
    CIRCUS_LOAD_ABI_MISMATCH = 5,   ///< another ABI major
};

/// A library opened and checked by `circus_plugin_load`.
typedef struct circus_loaded_plugin {
    int failure;                ///< a `circus_load_failure`
    char message[1024];         ///< on failure: "cannot load plugin PATH: why"
    const void *descriptor;     ///< the plugin's `circus_plugin_descriptor`
    const char *name;           ///< from the descriptor (static in the library)
    const char *version;        ///< "" when NULL
    const char *description;    ///< "" when NULL
    uint32_t abi_major, abi_minor;
    uint64_t flags;
    /// The vtable's slots; those past the plugin's struct_size are NULL.
    void *create, *start, *stop, *destroy, *reconfigure;
} circus_loaded_plugin;

/// Opens `resolved_path` (RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE; never closed), calls its
/// describe() with this header's ABI version and checks what it returned. Messages name
/// `display_path` (the path as the user wrote it). Returns 0 on success, else the
/// failure (also in `out->failure`, with `out->message`).
int circus_plugin_load(const char *display_path, const char *resolved_path, circus_loaded_plugin *out);

/// The ABI version the loader checks against (this build's plugin.h).
uint32_t circus_plugin_host_abi_major(void);
uint32_t circus_plugin_host_abi_minor(void);

// MARK: - Names

/// `[a-z0-9_]+`: plugin and instance names.
int circus_name_is_valid(const char *name, size_t len);
/// `<instance>.<verb>` with a verb of `[a-z0-9_.-]+`.
int circus_command_name_is_valid(const char *instance, size_t instance_len, const char *name, size_t len);
/// One of the ten watcher hooks a plugin may register ("before_start", ...).
int circus_hook_name_is_valid(const char *name, size_t len);
/// The hook names, comma-separated in alphabetical order, for messages.
const char *circus_hook_names(void);

// MARK: - JSON

/// Whether `text[0..len)` is exactly one JSON object (RFC 8259), surrounded by blanks
/// only. The empty string counts as `{}`, as the ABI says.
int circus_json_is_object(const char *text, size_t len);

// MARK: - The isolated plugin host's frames

/// Between circusd and a circus-plugin-host, over a SOCK_STREAM socketpair: each frame is
/// a 4-byte length (native byte order; the two ends are one machine) of what follows,
/// then one byte of type, then the type's fields in order, each either an integer (8
/// bytes, native order; statuses are sign-extended) or a string (a 4-byte length, then
/// its bytes). A frame is at most CIRCUS_FRAME_MAX bytes.
#define CIRCUS_FRAME_MAX 16777216u  // 16 MiB

enum circus_frame_type {
    // daemon -> host
    CIRCUS_FRAME_START = 1,            ///< config_json, state_dir
    CIRCUS_FRAME_EVENT = 2,            ///< topic, json
    CIRCUS_FRAME_REQUEST = 3,          ///< token, hook handle (0: command), name, args_json
    CIRCUS_FRAME_CALL_DONE = 4,        ///< call id, status, json
    CIRCUS_FRAME_RECONFIGURE = 5,      ///< config_json
    CIRCUS_FRAME_STOP = 6,             ///< (nothing)
    CIRCUS_FRAME_PING = 7,             ///< sequence number

    // host -> daemon
    CIRCUS_FRAME_HELLO = 32,           ///< name, version, description, abi_major, abi_minor, flags, has_reconfigure
    CIRCUS_FRAME_LOAD_FAILED = 33,     ///< failure, message
    CIRCUS_FRAME_STARTED = 34,         ///< status, message
    CIRCUS_FRAME_LOG = 35,             ///< level, message
    CIRCUS_FRAME_PUBLISH = 36,         ///< topic, json
    CIRCUS_FRAME_SUBSCRIBE = 37,       ///< handle, prefix
    CIRCUS_FRAME_UNSUBSCRIBE = 38,     ///< handle
    CIRCUS_FRAME_REGISTER_COMMAND = 39,///< handle, name, meta_json, flags
    CIRCUS_FRAME_UNREGISTER_COMMAND = 40, ///< handle
    CIRCUS_FRAME_REGISTER_HOOK = 41,   ///< handle, watcher pattern, hook name
    CIRCUS_FRAME_UNREGISTER_HOOK = 42, ///< handle
    CIRCUS_FRAME_REPLY = 43,           ///< token, status, json
    CIRCUS_FRAME_CALL = 44,            ///< call id, command, args_json
    CIRCUS_FRAME_DROPPED = 45,         ///< count (sent once the queue drained)
    CIRCUS_FRAME_STATS = 46,           ///< queue depth, events dropped in total
    CIRCUS_FRAME_RECONFIGURED = 47,    ///< status, message
    CIRCUS_FRAME_PONG = 48,            ///< sequence number, queue depth, events dropped in total
    CIRCUS_FRAME_STOPPED = 49,         ///< (nothing): destroy returned; the host exits
};

#ifdef __cplusplus
}
#endif

#endif
