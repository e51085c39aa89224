/*
 * example.c: a template circus plugin in C.
 *
 * It counts watcher events (it subscribes to the "watcher." topic prefix), answers the
 * command "<instance>.count" with that count, and every interval_ms publishes
 * "plugin.<instance>.tick" with the count so far.
 *
 * Config ([plugin:NAME] section, given as a JSON object):
 *   interval_ms   how often to publish a tick, in milliseconds (default 1000).
 *
 * Copy this file to start a plugin of your own: it includes only <circus/plugin.h>
 * and the C library, and every callback below runs on the instance's own serial
 * queue, so the instance needs no locks.
 */
#include <circus/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct example {
    const circus_host_api *api;   /* the host's table, valid until destroy()        */
    circus_host *host;            /* passed back on every api call                  */
    char name[64];                /* the instance name, copied (rule 1: borrowed)   */
    char command[80];             /* "<name>.count"                                 */
    char tick_topic[80];          /* "plugin.<name>.tick"                           */
    uint64_t interval_ms;
    uint64_t events;              /* watcher events seen                            */
    uint64_t ticks;               /* timer firings                                  */
} example;

/* Logs one line through the host (plugins never write to stdout or stderr). */
static void say(example *ex, circus_log_level level, const char *text) {
    ex->api->log(ex->host, level, circus_cstr(text));
}

/* ---- configuration --------------------------------------------------------------- */

/* Finds "key": <unsigned integer> in a flat JSON object. A real plugin would use a
 * JSON library; this is enough for one optional number. Returns 1 if absent, 0 if
 * found and valid, -1 if present but not a positive integer. */
static int config_uint(circus_str json, const char *key, uint64_t *out) {
    char pattern[64];
    char buffer[512];
    const char *at;
    char *end;
    unsigned long long value;
    size_t n = json.len < sizeof buffer - 1 ? json.len : sizeof buffer - 1;

    memcpy(buffer, json.ptr != NULL ? json.ptr : "", n);
    buffer[n] = '\0';
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    at = strstr(buffer, pattern);
    if (at == NULL) {
        return 1;
    }
    at += strlen(pattern);
    while (*at == ' ' || *at == ':') {
        at++;
    }
    value = strtoull(at, &end, 10);
    if (end == at || value == 0) {
        return -1;
    }
    *out = (uint64_t)value;
    return 0;
}

/* ---- callbacks: all run on the instance's queue ---------------------------------- */

static void on_watcher_event(void *ud, circus_str topic, circus_str json) {
    example *ex = (example *)ud;
    (void)topic;
    (void)json;
    ex->events++;
}

static void on_count(void *ud, circus_str name, circus_str args_json, circus_reply *reply) {
    example *ex = (example *)ud;
    char body[128];
    (void)name;
    (void)args_json;
    snprintf(body, sizeof body, "{\"count\": %llu, \"ticks\": %llu}",
             (unsigned long long)ex->events, (unsigned long long)ex->ticks);
    /* Exactly one reply per request; here at once, but it could come later from any thread. */
    ex->api->reply(reply, CIRCUS_OK, circus_cstr(body));
}

static void on_tick(void *ud, circus_handle timer) {
    example *ex = (example *)ud;
    char body[128];
    (void)timer;
    ex->ticks++;
    snprintf(body, sizeof body, "{\"count\": %llu, \"time\": %.1f}",
             (unsigned long long)ex->events, (double)time(NULL));
    ex->api->publish(ex->host, circus_cstr(ex->tick_topic), circus_cstr(body));
}

/* ---- lifecycle --------------------------------------------------------------------- */

static circus_status example_create(const circus_create_params *p, void **out, circus_error *err) {
    example *ex;
    uint64_t interval = 1000;

    if (p->instance_name.len >= sizeof ex->name) {
        p->api->set_error(err, CIRCUS_E_INVALID, circus_cstr("instance name too long"));
        return CIRCUS_E_INVALID;
    }
    if (config_uint(p->config_json, "interval_ms", &interval) < 0) {
        /* Name the key: the user reads this next to the config file. */
        p->api->set_error(err, CIRCUS_E_INVALID,
                          circus_cstr("interval_ms must be a positive number of milliseconds"));
        return CIRCUS_E_INVALID;
    }
    ex = (example *)calloc(1, sizeof *ex);
    if (ex == NULL) {
        p->api->set_error(err, CIRCUS_E_INTERNAL, circus_cstr("out of memory"));
        return CIRCUS_E_INTERNAL;
    }
    ex->api = p->api;
    ex->host = p->host;
    memcpy(ex->name, p->instance_name.ptr, p->instance_name.len);
    snprintf(ex->command, sizeof ex->command, "%s.count", ex->name);
    snprintf(ex->tick_topic, sizeof ex->tick_topic, "plugin.%s.tick", ex->name);
    ex->interval_ms = interval;
    *out = ex;
    return CIRCUS_OK;
}

static circus_status example_start(void *instance, circus_error *err) {
    example *ex = (example *)instance;
    const circus_host_api *api = ex->api;
    circus_status st;

    /* No dtors: ex outlives every registration (the host ends them all before destroy). */
    st = api->subscribe(ex->host, circus_cstr("watcher."), on_watcher_event, ex, NULL, NULL);
    if (st == CIRCUS_OK) {
        st = api->register_command(
            ex->host, circus_cstr(ex->command),
            circus_cstr("{\"help\": \"how many watcher events this instance has seen\", \"args\": {}}"),
            CIRCUS_COMMAND_F_READ_ONLY, on_count, ex, NULL, NULL);
    }
    if (st == CIRCUS_OK) {
        st = api->add_timer(ex->host, ex->interval_ms, ex->interval_ms, on_tick, ex, NULL, NULL);
    }
    if (st != CIRCUS_OK) {
        api->set_error(err, st, circus_cstr("could not register with the host"));
        return st;
    }
    say(ex, CIRCUS_LOG_INFO, "counting watcher events");
    return CIRCUS_OK;
}

static void example_destroy(void *instance) {
    free(instance);
}

/* ---- the descriptor: static, immutable, the library's only export ----------------- */

static const circus_plugin_vtable example_vtable = {
    sizeof(circus_plugin_vtable), 0,
    example_create,
    example_start,
    NULL,              /* stop: nothing of its own to stop (no threads)          */
    example_destroy,
    NULL,              /* reconfigure: NULL, so a new config recreates it         */
};

static const circus_plugin_descriptor example_descriptor = {
    CIRCUS_PLUGIN_MAGIC,
    sizeof(circus_plugin_descriptor),
    CIRCUS_ABI_MAJOR, CIRCUS_ABI_MINOR,
    "example",
    "1.0.0",
    "counts watcher events; a template for plugins in C",
    CIRCUS_PLUGIN_F_MULTI_INSTANCE,
    &example_vtable,
};

CIRCUS_EXPORT const circus_plugin_descriptor *
circus_plugin_describe(uint32_t host_abi_major, uint32_t host_abi_minor) {
    (void)host_abi_minor; /* we use nothing newer than 1.0, so any 1.x host will do */
    if (host_abi_major != CIRCUS_ABI_MAJOR) {
        return NULL;
    }
    return &example_descriptor;
}
