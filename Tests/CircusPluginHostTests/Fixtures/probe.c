/*
 * probe.c: a plugin the host tests build with cc at test time, from plugin.h alone.
 *
 * Build variants (-D):
 *   PROBE_MAJOR=n         claim ABI major n in the descriptor
 *   PROBE_OLD_VTABLE      a vtable as an older minor had it: struct_size stops before
 *                         reconfigure (and reconfigure is not there)
 *   PROBE_NEWER_MINOR     claim a newer minor, with a descriptor larger than ours
 *   PROBE_ISOLATED        set CIRCUS_PLUGIN_F_REQUIRE_ISOLATION
 *
 * Config (paths, so that the same test runs in process and isolated):
 *   {"block_path": "/path/fifo"}  read a byte from that FIFO when the event
 *                                 "watcher.test.block" arrives (blocking the
 *                                 instance's queue until the test writes one);
 *   {"watch_path": "/path/fifo"}  watch that FIFO and publish each byte read.
 *
 * It journals its lifecycle and dtors, comma-separated, into <state_dir>/journal.
 * Commands "crash" (a segfault) and "hang" (a callback that never returns) are for
 * the isolated host's supervision.
 */
#include <circus/plugin.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#ifndef PROBE_MAJOR
#define PROBE_MAJOR CIRCUS_ABI_MAJOR
#endif

#ifdef PROBE_ISOLATED
#define PROBE_FLAGS (CIRCUS_PLUGIN_F_MULTI_INSTANCE | CIRCUS_PLUGIN_F_REQUIRE_ISOLATION)
#else
#define PROBE_FLAGS CIRCUS_PLUGIN_F_MULTI_INSTANCE
#endif

static char journal_path[1024];

static void note(const char *what) {
    int fd = open(journal_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    off_t size;
    if (fd < 0) {
        return;
    }
    size = lseek(fd, 0, SEEK_END);
    if (size > 0) {
        (void)!write(fd, ",", 1);
    }
    (void)!write(fd, what, strlen(what));
    close(fd);
}

/* A string option of the (flat) config: {"key": "value"}. */
static int config_string(const char *config, const char *key, char *out, size_t cap) {
    char pattern[64];
    const char *at, *end;
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    at = strstr(config, pattern);
    if (at == NULL) {
        return 0;
    }
    at += strlen(pattern);
    while (*at == ' ' || *at == ':') {
        at++;
    }
    if (*at++ != '"') {
        return 0;
    }
    end = strchr(at, '"');
    if (end == NULL || (size_t)(end - at) >= cap) {
        return 0;
    }
    memcpy(out, at, (size_t)(end - at));
    out[end - at] = '\0';
    return 1;
}

typedef struct probe {
    const circus_host_api *api;
    circus_host *host;
    char name[64];
    char block_path[512];
    int watch_fd;
    circus_reply *posted;      /* answered by a task posted from another thread   */
    uint64_t events;
    circus_reply *held;        /* a request left unanswered (probe.never)         */
} probe;

static void answer(probe *p, circus_reply *reply, const char *fmt, long long value) {
    char body[256];
    snprintf(body, sizeof body, fmt, value);
    p->api->reply(reply, CIRCUS_OK, circus_cstr(body));
}

/* The host calls these when it ends the registrations, before destroy. */
static void dtor_subscription(void *ud) { (void)ud; note("dtor:subscription"); }
static void dtor_command(void *ud) { (void)ud; note("dtor:command"); }
static void dtor_timer(void *ud) { (void)ud; note("dtor:timer"); }

static const circus_host_api *probe_api;

static void on_event(void *ud, circus_str topic, circus_str json) {
    probe *p = (probe *)ud;
    char t[128], body[600], out[160];
    size_t n = topic.len < sizeof t - 1 ? topic.len : sizeof t - 1;
    memcpy(t, topic.ptr, n);
    t[n] = '\0';
    p->events++;
    if (strcmp(t, "watcher.test.block") == 0) {
        char byte;
        snprintf(out, sizeof out, "plugin.%s.blocked", p->name);
        p->api->publish(p->host, circus_cstr(out), circus_cstr("{}"));
        /* Blocks the instance's queue until the test writes a byte. */
        {
            int fd = open(p->block_path, O_RDONLY | O_CLOEXEC);
            while (fd >= 0 && read(fd, &byte, 1) < 0) {
            }
            if (fd >= 0) {
                close(fd);
            }
        }
        return;
    }
    snprintf(out, sizeof out, "plugin.%s.seen", p->name);
    snprintf(body, sizeof body, "{\"topic\": \"%s\", \"event\": %.*s}", t, (int)json.len, json.ptr);
    p->api->publish(p->host, circus_cstr(out), circus_cstr(body));
}

static void on_call_done(void *ud, circus_status st, circus_str json) {
    circus_reply *reply = (circus_reply *)ud;
    char body[600];
    snprintf(body, sizeof body, "{\"st\": %d, \"reply\": %.*s}", (int)st, (int)json.len, json.ptr);
    /* The reply token outlives the request callback: answer it now. */
    probe_api->reply(reply, CIRCUS_OK, circus_cstr(body));
}

static void on_readable(void *ud, int fd, uint32_t revents) {
    probe *p = (probe *)ud;
    char byte = 0, topic[160], body[64];
    (void)revents;
    if (read(fd, &byte, 1) != 1) {
        return;
    }
    snprintf(topic, sizeof topic, "plugin.%s.readable", p->name);
    snprintf(body, sizeof body, "{\"byte\": %d}", (int)byte);
    p->api->publish(p->host, circus_cstr(topic), circus_cstr(body));
}

/* Runs on the instance's queue, posted from a thread of the plugin's own. */
static void posted_task(void *ud) {
    probe *p = (probe *)ud;
    p->api->reply(p->posted, CIRCUS_OK, circus_cstr("{\"posted\": true}"));
    p->posted = NULL;
}

static void posted_dtor(void *ud) { (void)ud; note("dtor:task"); }

static void *poster(void *ud) {
    probe *p = (probe *)ud;
    if (p->api->post(p->host, posted_task, p, posted_dtor) != CIRCUS_OK) {
        p->api->reply(p->posted, CIRCUS_E_INTERNAL, circus_cstr("{\"reason\": \"post failed\"}"));
    }
    return NULL;
}

static void on_command(void *ud, circus_str name, circus_str args, circus_reply *reply) {
    probe *p = (probe *)ud;
    const char *verb = name.ptr + strlen(p->name) + 1;
    size_t verb_len = name.len - strlen(p->name) - 1;
    char topic[160];
    (void)args;
#define IS(v) (verb_len == strlen(v) && memcmp(verb, v, verb_len) == 0)
    if (IS("count")) {
        answer(p, reply, "{\"count\": %lld}", (long long)p->events);
    } else if (IS("publish_outside")) {
        answer(p, reply, "{\"rc\": %lld}",
               (long long)p->api->publish(p->host, circus_cstr("watcher.web.spawn"), circus_cstr("{}")));
    } else if (IS("publish_inside")) {
        snprintf(topic, sizeof topic, "plugin.%s.hello", p->name);
        answer(p, reply, "{\"rc\": %lld}",
               (long long)p->api->publish(p->host, circus_cstr(topic), circus_cstr("{\"hi\": 1}")));
    } else if (IS("never")) {
        p->held = reply;   /* no answer now */
    } else if (IS("answer_held")) {
        circus_status st = p->held == NULL ? CIRCUS_E_NOT_FOUND
                                           : p->api->reply(p->held, CIRCUS_OK, circus_cstr("{\"late\": true}"));
        answer(p, reply, "{\"rc\": %lld}", (long long)st);
    } else if (IS("post_from_thread")) {
        pthread_t thread;
        p->posted = reply;
        pthread_create(&thread, NULL, poster, p);
        pthread_detach(thread);
    } else if (IS("print")) {
        /* What a plugin must not do (it has log()), captured when isolated. */
        fputs("the probe on stdout\n", stdout);
        fflush(stdout);
        fputs("the probe on stderr\n", stderr);
        answer(p, reply, "{\"printed\": %lld}", 2);
    } else if (IS("crash")) {
        *(volatile int *)0 = 1;
    } else if (IS("hang")) {
        for (;;) {
            pause();
        }
    } else if (IS("fail")) {
        p->api->reply(reply, CIRCUS_E_INVALID, circus_cstr("{\"reason\": \"probe refuses\"}"));
    } else if (IS("call_daemon")) {
        circus_status st = p->api->call(p->host, circus_cstr("status"), circus_cstr("{\"name\": \"web\"}"),
                                        on_call_done, reply);
        if (st != CIRCUS_OK) {
            answer(p, reply, "{\"call_rc\": %lld}", (long long)st);
        }
    } else if (IS("reply_twice")) {
        circus_status second;
        p->api->reply(reply, CIRCUS_OK, circus_cstr("{\"first\": true}"));
        second = p->api->reply(reply, CIRCUS_OK, circus_cstr("{\"second\": true}"));
        snprintf(topic, sizeof topic, "plugin.%s.second_reply", p->name);
        {
            char body[64];
            snprintf(body, sizeof body, "{\"rc\": %d}", (int)second);
            p->api->publish(p->host, circus_cstr(topic), circus_cstr(body));
        }
    } else {
        p->api->reply(reply, CIRCUS_E_NOT_FOUND, circus_cstr(""));
    }
#undef IS
}

static void on_hook(void *ud, circus_str name, circus_str args, circus_reply *reply) {
    (void)ud;
    (void)name;
    /* Deny watchers whose request names "web_denied". */
    if (args.len > 0 && strstr(args.ptr, "\"web_denied\"") != NULL) {
        probe_api->reply(reply, CIRCUS_OK, circus_cstr("{\"allow\": false}"));
    } else {
        probe_api->reply(reply, CIRCUS_OK, circus_cstr("{\"allow\": true}"));
    }
}

static void on_timer(void *ud, circus_handle timer) {
    probe *p = (probe *)ud;
    char topic[160];
    (void)timer;
    snprintf(topic, sizeof topic, "plugin.%s.timer", p->name);
    p->api->publish(p->host, circus_cstr(topic), circus_cstr("{}"));
}

static const char *verbs[] = {"count", "publish_outside", "publish_inside", "never", "answer_held",
                              "fail", "call_daemon", "reply_twice", "post_from_thread", "crash", "hang", "print"};

static circus_status probe_create(const circus_create_params *params, void **out, circus_error *err) {
    probe *p = (probe *)calloc(1, sizeof *p);
    char config[1024], watch_path[512];
    size_t n = params->config_json.len < sizeof config - 1 ? params->config_json.len : sizeof config - 1;
    (void)err;
    p->api = params->api;
    probe_api = params->api;
    p->host = params->host;
    memcpy(p->name, params->instance_name.ptr, params->instance_name.len);
    memcpy(config, params->config_json.ptr, n);
    config[n] = '\0';
    snprintf(journal_path, sizeof journal_path, "%.*s/journal", (int)params->state_dir.len, params->state_dir.ptr);
    note("create");
    config_string(config, "block_path", p->block_path, sizeof p->block_path);
    p->watch_fd = config_string(config, "watch_path", watch_path, sizeof watch_path)
                      ? open(watch_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
                      : -1;
    if (strstr(config, "\"fail_create\"") != NULL) {
        params->api->set_error(err, CIRCUS_E_INVALID, circus_cstr("fail_create: the probe was asked to fail"));
        if (p->watch_fd >= 0) {
            close(p->watch_fd);
        }
        free(p);
        return CIRCUS_E_INVALID;
    }
    *out = p;
    return CIRCUS_OK;
}

static circus_status probe_start(void *instance, circus_error *err) {
    probe *p = (probe *)instance;
    char command[128];
    size_t i;
    (void)err;
    note("start");
    p->api->subscribe(p->host, circus_cstr("watcher."), on_event, p, dtor_subscription, NULL);
    for (i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        snprintf(command, sizeof command, "%s.%s", p->name, verbs[i]);
        p->api->register_command(p->host, circus_cstr(command), circus_cstr("{\"help\": \"probe\"}"),
                                 0, on_command, p, i == 0 ? dtor_command : NULL, NULL);
    }
    p->api->register_hook(p->host, circus_cstr("web*"), circus_cstr("before_start"), on_hook, p, NULL, NULL);
    p->api->add_timer(p->host, 1, 3600000, on_timer, p, dtor_timer, NULL);
    if (p->watch_fd >= 0) {
        p->api->watch_fd(p->host, p->watch_fd, CIRCUS_FD_READABLE, on_readable, p, NULL, NULL);
    }
    return CIRCUS_OK;
}

static void probe_stop(void *instance) {
    (void)instance;
    note("stop");
}

static void probe_destroy(void *instance) {
    probe *p = (probe *)instance;
    note("destroy");
    if (p->watch_fd >= 0) {
        close(p->watch_fd);
    }
    free(instance);
}

#ifndef PROBE_OLD_VTABLE
static circus_status probe_reconfigure(void *instance, circus_str config, circus_error *err) {
    (void)instance;
    (void)config;
    (void)err;
    note("reconfigure");
    return CIRCUS_OK;
}
#endif

#ifdef PROBE_OLD_VTABLE
/* The vtable as an older minor declared it: no reconfigure slot. */
typedef struct old_vtable {
    uint32_t struct_size;
    uint32_t reserved0;
    circus_status (*create)(const circus_create_params *, void **, circus_error *);
    circus_status (*start)(void *, circus_error *);
    void (*stop)(void *);
    void (*destroy)(void *);
} old_vtable;
static const old_vtable probe_vtable = {
    sizeof(old_vtable), 0, probe_create, probe_start, probe_stop, probe_destroy,
};
#define PROBE_VTABLE ((const circus_plugin_vtable *)(const void *)&probe_vtable)
#else
static const circus_plugin_vtable probe_vtable = {
    sizeof(circus_plugin_vtable), 0, probe_create, probe_start, probe_stop, probe_destroy, probe_reconfigure,
};
#define PROBE_VTABLE (&probe_vtable)
#endif

#ifdef PROBE_NEWER_MINOR
/* A descriptor from a future minor: one more field at the end. */
typedef struct newer_descriptor {
    circus_plugin_descriptor v1;
    const char *homepage;
} newer_descriptor;
static const newer_descriptor probe_descriptor = {
    {CIRCUS_PLUGIN_MAGIC, sizeof(newer_descriptor), PROBE_MAJOR, CIRCUS_ABI_MINOR + 3, "probe", "0.1",
     "host test probe", PROBE_FLAGS, PROBE_VTABLE},
    "https://example.invalid",
};
#define PROBE_DESCRIPTOR (&probe_descriptor.v1)
#else
static const circus_plugin_descriptor probe_descriptor = {
    CIRCUS_PLUGIN_MAGIC, sizeof(circus_plugin_descriptor), PROBE_MAJOR, CIRCUS_ABI_MINOR, "probe", "0.1",
    "host test probe", PROBE_FLAGS, PROBE_VTABLE,
};
#define PROBE_DESCRIPTOR (&probe_descriptor)
#endif

CIRCUS_EXPORT const circus_plugin_descriptor *circus_plugin_describe(uint32_t major, uint32_t minor) {
    (void)major;
    (void)minor;
    return PROBE_DESCRIPTOR;
}
