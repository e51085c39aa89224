// Opening a plugin library and checking what its describe() returned. The in-process host
// and circus-plugin-host both call this, so a library is judged the same way, with the
// same messages, wherever it runs. A library is never unloaded (dlclose would leave
// timers, threads and atexit handlers pointing into unmapped code).

#define _GNU_SOURCE
#include "circus_plugin_loader.h"

#include <circus/plugin.h>

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

uint32_t circus_plugin_host_abi_major(void) { return CIRCUS_ABI_MAJOR; }
uint32_t circus_plugin_host_abi_minor(void) { return CIRCUS_ABI_MINOR; }

static int fail(circus_loaded_plugin *out, const char *path, int failure, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(circus_loaded_plugin *out, const char *path, int failure, const char *fmt, ...) {
    int used = snprintf(out->message, sizeof out->message, "cannot load plugin %s: ", path);
    if (used < 0 || (size_t)used >= sizeof out->message) used = 0;
    va_list args;
    va_start(args, fmt);
    vsnprintf(out->message + used, sizeof out->message - (size_t)used, fmt, args);
    va_end(args);
    out->failure = failure;
    return failure;
}

// Whether the vtable of `size` bytes reaches all of member `m`.
#define VTABLE_HAS(size, m) \
    ((size) >= offsetof(circus_plugin_vtable, m) + sizeof(((circus_plugin_vtable *)0)->m))

int circus_plugin_load(const char *path, const char *resolved, circus_loaded_plugin *out) {
    memset(out, 0, sizeof *out);
    dlerror();
    void *handle = dlopen(resolved, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (handle == NULL) {
        const char *why = dlerror();
        return fail(out, path, CIRCUS_LOAD_OPEN_FAILED, "%s", why != NULL ? why : "dlopen failed");
    }
    // Never dlclose: see the file comment.
    void *entry = dlsym(handle, CIRCUS_PLUGIN_ENTRY);
    if (entry == NULL) {
        return fail(out, path, CIRCUS_LOAD_NO_ENTRY_POINT,
                    "it exports no %s function; is it a circus plugin? (build it with -fvisibility=hidden and "
                    "mark the entry point CIRCUS_EXPORT)", CIRCUS_PLUGIN_ENTRY);
    }
    circus_plugin_describe_fn describe;
    memcpy(&describe, &entry, sizeof describe);
    const circus_plugin_descriptor *raw = describe(CIRCUS_ABI_MAJOR, CIRCUS_ABI_MINOR);
    if (raw == NULL) {
        return fail(out, path, CIRCUS_LOAD_REFUSED_HOST,
                    "%s returned NULL: the plugin does not support this host's plugin ABI %u.%u; use a version "
                    "of the plugin built for it", CIRCUS_PLUGIN_ENTRY, CIRCUS_ABI_MAJOR, CIRCUS_ABI_MINOR);
    }

    // The fixed head first: magic and struct_size say how much more may be read.
    uint32_t head[4];
    memcpy(head, raw, sizeof head);
    uint32_t magic = head[0], size = head[1], major = head[2], minor = head[3];
    if (magic != CIRCUS_PLUGIN_MAGIC) {
        return fail(out, path, CIRCUS_LOAD_BAD_DESCRIPTOR,
                    "its descriptor has magic 0x%x, expected 0x%x; the library is corrupt or not a circus plugin",
                    magic, CIRCUS_PLUGIN_MAGIC);
    }
    if (major != CIRCUS_ABI_MAJOR) {
        return fail(out, path, CIRCUS_LOAD_ABI_MISMATCH,
                    "it was built for plugin ABI %u.%u, and this circusd provides plugin ABI %u.%u; the major "
                    "versions must match: rebuild the plugin against this circusd's circus/plugin.h",
                    major, minor, CIRCUS_ABI_MAJOR, CIRCUS_ABI_MINOR);
    }
    size_t minimum = offsetof(circus_plugin_descriptor, vtable) + sizeof(void *);
    if (size < minimum) {
        return fail(out, path, CIRCUS_LOAD_BAD_DESCRIPTOR,
                    "its descriptor's struct_size is %u bytes, smaller than the %zu of ABI %u.0; set it to "
                    "sizeof(circus_plugin_descriptor)", size, minimum, CIRCUS_ABI_MAJOR);
    }
    // Every field of the 1.0 descriptor is present; newer fields past them are ignored.
    if (raw->name == NULL) return fail(out, path, CIRCUS_LOAD_BAD_DESCRIPTOR, "its descriptor has no name");
    if (!circus_name_is_valid(raw->name, strlen(raw->name))) {
        return fail(out, path, CIRCUS_LOAD_BAD_DESCRIPTOR, "its name \"%s\" is not made of [a-z0-9_] only",
                    raw->name);
    }
    const circus_plugin_vtable *vtable = raw->vtable;
    if (vtable == NULL) {
        return fail(out, path, CIRCUS_LOAD_BAD_DESCRIPTOR, "plugin %s's descriptor has no vtable", raw->name);
    }
    // Slots past the vtable's struct_size (a plugin built against an older minor) are NULL.
    uint32_t vsize = vtable->struct_size;
    if (!VTABLE_HAS(vsize, destroy)) {
        return fail(out, path, CIRCUS_LOAD_BAD_DESCRIPTOR,
                    "plugin %s's vtable struct_size is %u bytes, smaller than the %zu that reach its required "
                    "create and destroy slots; set it to sizeof(circus_plugin_vtable)",
                    raw->name, vsize, offsetof(circus_plugin_vtable, destroy) + sizeof(void *));
    }
    if (vtable->create == NULL) {
        return fail(out, path, CIRCUS_LOAD_BAD_DESCRIPTOR,
                    "plugin %s's vtable has no create function (a required slot)", raw->name);
    }
    if (vtable->destroy == NULL) {
        return fail(out, path, CIRCUS_LOAD_BAD_DESCRIPTOR,
                    "plugin %s's vtable has no destroy function (a required slot)", raw->name);
    }
    out->descriptor = raw;
    out->name = raw->name;
    out->version = raw->version != NULL ? raw->version : "";
    out->description = raw->description != NULL ? raw->description : "";
    out->abi_major = major;
    out->abi_minor = minor;
    out->flags = raw->flags;
    // Function pointers as void * (POSIX guarantees they convert, as dlsym's do).
    memcpy(&out->create, &vtable->create, sizeof out->create);
    memcpy(&out->destroy, &vtable->destroy, sizeof out->destroy);
    if (VTABLE_HAS(vsize, start)) memcpy(&out->start, &vtable->start, sizeof out->start);
    if (VTABLE_HAS(vsize, stop)) memcpy(&out->stop, &vtable->stop, sizeof out->stop);
    if (VTABLE_HAS(vsize, reconfigure)) memcpy(&out->reconfigure, &vtable->reconfigure, sizeof out->reconfigure);
    out->failure = CIRCUS_LOAD_OK;
    return 0;
}

// MARK: - Names

static int is_name_byte(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

int circus_name_is_valid(const char *name, size_t len) {
    if (len == 0) return 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_name_byte((unsigned char)name[i])) return 0;
    }
    return 1;
}

int circus_command_name_is_valid(const char *instance, size_t instance_len, const char *name, size_t len) {
    if (len < instance_len + 2 || memcmp(name, instance, instance_len) != 0 || name[instance_len] != '.') return 0;
    for (size_t i = instance_len + 1; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!is_name_byte(c) && c != '.' && c != '-') return 0;
    }
    return 1;
}

static const char *const hook_names[] = {
    "after_reap", "after_signal", "after_spawn", "after_start", "after_stop",
    "before_reap", "before_signal", "before_spawn", "before_start", "before_stop",
};

int circus_hook_name_is_valid(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof hook_names / sizeof hook_names[0]; i++) {
        if (strlen(hook_names[i]) == len && memcmp(hook_names[i], name, len) == 0) return 1;
    }
    return 0;
}

const char *circus_hook_names(void) {
    return "after_reap, after_signal, after_spawn, after_start, after_stop, before_reap, before_signal, "
           "before_spawn, before_start, before_stop";
}
