/*
 * blocker.c: a plugin the daemon tests build with cc at test time, from plugin.h alone.
 *
 * Commands:
 *   <instance>.echo   answers {"echo": <its arguments>}; takes "text" (string, required)
 *   <instance>.hang   publishes plugin.<instance>.hanging, then blocks its instance's queue
 *                     for good (pause() in a loop): a plugin stuck in a callback
 */
#include <circus/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct blocker {
    const circus_host_api *api;
    circus_host *host;
    char name[64];
} blocker;

static void on_command(void *ud, circus_str name, circus_str args, circus_reply *reply) {
    blocker *b = (blocker *)ud;
    const char *verb = name.ptr + strlen(b->name) + 1;
    size_t verb_len = name.len - strlen(b->name) - 1;
    char body[600], topic[160];
    if (verb_len == 4 && memcmp(verb, "echo", 4) == 0) {
        snprintf(body, sizeof body, "{\"echo\": %.*s}", (int)args.len, args.ptr);
        b->api->reply(reply, CIRCUS_OK, circus_cstr(body));
        return;
    }
    snprintf(topic, sizeof topic, "plugin.%s.hanging", b->name);
    b->api->publish(b->host, circus_cstr(topic), circus_cstr("{}"));
    for (;;) {
        pause();
    }
}

static circus_status blocker_create(const circus_create_params *p, void **out, circus_error *err) {
    blocker *b = (blocker *)calloc(1, sizeof *b);
    if (b == NULL || p->instance_name.len >= sizeof b->name) {
        free(b);
        p->api->set_error(err, CIRCUS_E_INTERNAL, circus_cstr("cannot create"));
        return CIRCUS_E_INTERNAL;
    }
    b->api = p->api;
    b->host = p->host;
    memcpy(b->name, p->instance_name.ptr, p->instance_name.len);
    *out = b;
    return CIRCUS_OK;
}

static circus_status blocker_start(void *instance, circus_error *err) {
    blocker *b = (blocker *)instance;
    char command[128];
    (void)err;
    snprintf(command, sizeof command, "%s.echo", b->name);
    b->api->register_command(
        b->host, circus_cstr(command),
        circus_cstr("{\"help\": \"answers its arguments\", \"args\": {\"text\": {\"type\": \"string\", "
                    "\"required\": true, \"help\": \"what to echo\"}}}"),
        CIRCUS_COMMAND_F_READ_ONLY, on_command, b, NULL, NULL);
    snprintf(command, sizeof command, "%s.hang", b->name);
    b->api->register_command(b->host, circus_cstr(command), circus_cstr("{\"help\": \"blocks for good\"}"), 0,
                             on_command, b, NULL, NULL);
    return CIRCUS_OK;
}

static void blocker_destroy(void *instance) { free(instance); }

static const circus_plugin_vtable blocker_vtable = {
    sizeof(circus_plugin_vtable), 0, blocker_create, blocker_start, NULL, blocker_destroy, NULL,
};

static const circus_plugin_descriptor blocker_descriptor = {
    CIRCUS_PLUGIN_MAGIC, sizeof(circus_plugin_descriptor), CIRCUS_ABI_MAJOR, CIRCUS_ABI_MINOR,
    "blocker", "0.1.0", "daemon test fixture: echoes, or blocks its queue for good", 0, &blocker_vtable,
};

CIRCUS_EXPORT const circus_plugin_descriptor *circus_plugin_describe(uint32_t major, uint32_t minor) {
    (void)minor;
    return major == CIRCUS_ABI_MAJOR ? &blocker_descriptor : NULL;
}
