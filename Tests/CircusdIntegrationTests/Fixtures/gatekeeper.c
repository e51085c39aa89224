/*
 * gatekeeper.c: a plugin that registers watcher hooks (register_hook), built with cc at test
 * time from plugin.h alone.
 *
 *   before_start of watchers "guarded*": allows, except for a watcher named "guarded_no";
 *   after_start of "guarded*": answers without an "allow" (a failing plugin hook).
 */
#include <circus/plugin.h>

#include <stdlib.h>
#include <string.h>

static const circus_host_api *api;

static void on_before_start(void *ud, circus_str name, circus_str args, circus_reply *reply) {
    (void)ud;
    (void)name;
    const char *needle = "\"watcher\": \"guarded_no\"";
    int refuse = 0;
    for (size_t i = 0; i + strlen(needle) <= args.len; i++) {
        if (memcmp(args.ptr + i, needle, strlen(needle)) == 0) refuse = 1;
    }
    api->reply(reply, CIRCUS_OK, circus_cstr(refuse ? "{\"allow\": false}" : "{\"allow\": true}"));
}

static void on_after_start(void *ud, circus_str name, circus_str args, circus_reply *reply) {
    (void)ud;
    (void)name;
    (void)args;
    api->reply(reply, CIRCUS_OK, circus_cstr("{\"maybe\": true}"));
}

static circus_status gate_create(const circus_create_params *p, void **out, circus_error *err) {
    (void)err;
    api = p->api;
    *out = p->host;
    return CIRCUS_OK;
}

static circus_status gate_start(void *instance, circus_error *err) {
    circus_host *host = (circus_host *)instance;
    (void)err;
    api->register_hook(host, circus_cstr("guarded*"), circus_cstr("before_start"), on_before_start, NULL, NULL, NULL);
    api->register_hook(host, circus_cstr("guarded*"), circus_cstr("after_start"), on_after_start, NULL, NULL, NULL);
    return CIRCUS_OK;
}

static void gate_destroy(void *instance) { (void)instance; }

static const circus_plugin_vtable gate_vtable = {
    sizeof(circus_plugin_vtable), 0, gate_create, gate_start, NULL, gate_destroy, NULL,
};

static const circus_plugin_descriptor gate_descriptor = {
    CIRCUS_PLUGIN_MAGIC, sizeof(circus_plugin_descriptor), CIRCUS_ABI_MAJOR, CIRCUS_ABI_MINOR,
    "gatekeeper", "0.1.0", "daemon test fixture: watcher hooks registered by a plugin", 0, &gate_vtable,
};

CIRCUS_EXPORT const circus_plugin_descriptor *circus_plugin_describe(uint32_t major, uint32_t minor) {
    (void)minor;
    return major == CIRCUS_ABI_MAJOR ? &gate_descriptor : NULL;
}
