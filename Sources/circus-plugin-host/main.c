// circus-plugin-host: runs one plugin instance out of circusd's process, so that a plugin
// that crashes or hangs costs only this process, which circusd restarts.
//
//   circus-plugin-host --fd N --library RESOLVED --path AS_GIVEN --instance NAME
//                      [--capacity N] [--slow-ms N] [--refuse-requests WHY] [--describe]
//
// It is written in C so that no Swift runtime of ours is in the process: a Swift plugin
// built with another toolchain brings its own. It loads the library with the same checks
// as circusd (CCircusPluginLoader), says HELLO (or LOAD_FAILED) on fd N, and with
// --describe stops there. Otherwise it serves the instance: a reader thread takes
// circusd's frames into the instance's bounded queue (so a plugin stuck in a callback
// still has its events counted and dropped, and its requests refused with BUSY), and the
// main thread runs the queue, the timers and the fd watches, one callback at a time.
// A ping is queued like any other work: an answer proves the plugin's thread is alive.

#define _GNU_SOURCE
#include "frames.h"
#include "host.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

circus_loaded_plugin plugin_lib;

// Loop-thread state.
static void *instance;         // what create() returned
static int created, started;
static double slow_seconds = 0.1;

typedef circus_status (*create_fn)(const circus_create_params *, void **, circus_error *);
typedef circus_status (*start_fn)(void *, circus_error *);
typedef void (*stop_fn)(void *);
typedef void (*destroy_fn)(void *);
typedef circus_status (*reconfigure_fn)(void *, circus_str, circus_error *);

typedef struct error_sink {
    int32_t status;
    char *message;
} error_sink;

static void send_status(int type, int32_t status, const char *message) {
    out_frame f;
    frame_begin(&f, type);
    frame_u64(&f, (uint64_t)(int64_t)status);
    frame_str(&f, message, strlen(message));
    frame_send(&f);
}

static void send_stats(int type, uint64_t first) {
    out_frame f;
    frame_begin(&f, type);
    if (type == CIRCUS_FRAME_PONG) frame_u64(&f, first);
    frame_u64(&f, (uint64_t)queue_depth());
    frame_u64(&f, queue_dropped_total());
    frame_send(&f);
}

// MARK: Lifecycle (on the loop thread)

/// The plugin's stop (when started), every registration ended, pending calls cancelled,
/// queued work dropped (posted tasks' dtors run), then destroy (when created).
static void teardown(void) {
    if (started && plugin_lib.stop != NULL) {
        stop_fn stop;
        memcpy(&stop, &plugin_lib.stop, sizeof stop);
        stop(instance);
    }
    api_release_all();
    for (item *it = queue_close(); it != NULL;) {
        item *next = it->next;
        if ((it->op == OP_TASK || it->op == OP_DTOR) && it->dtor != NULL) it->dtor(it->ud);
        item_free(it);
        it = next;
    }
    if (created) {
        destroy_fn destroy;
        memcpy(&destroy, &plugin_lib.destroy, sizeof destroy);
        destroy(instance);
    }
    created = started = 0;
    instance = NULL;
}

static void run_start(const char *config, size_t config_len, const char *state_dir, size_t state_len) {
    error_sink sink = {0, NULL};
    circus_create_params params;
    memset(&params, 0, sizeof params);
    params.struct_size = sizeof params;
    params.api = &host_api;
    params.host = &the_host;
    params.instance_name = circus_str_make(the_host.name, the_host.name_len);
    params.config_json = circus_str_make(config, config_len);
    params.state_dir = circus_str_make(state_dir, state_len);
    api_set_accepting(1);
    create_fn create;
    memcpy(&create, &plugin_lib.create, sizeof create);
    void *made = NULL;
    circus_status st = create(&params, &made, (circus_error *)(void *)&sink);
    char fallback[128];
    if (st != CIRCUS_OK) {
        snprintf(fallback, sizeof fallback, "create failed with status %d and gave no reason", (int)st);
        teardown();
        send_status(CIRCUS_FRAME_STARTED, st, sink.message != NULL ? sink.message : fallback);
        _exit(0);
    }
    instance = made;
    created = 1;
    if (plugin_lib.start != NULL) {
        start_fn start;
        memcpy(&start, &plugin_lib.start, sizeof start);
        error_sink start_sink = {0, NULL};
        st = start(instance, (circus_error *)(void *)&start_sink);
        if (st != CIRCUS_OK) {
            snprintf(fallback, sizeof fallback, "start failed with status %d and gave no reason", (int)st);
            teardown();
            send_status(CIRCUS_FRAME_STARTED, st, start_sink.message != NULL ? start_sink.message : fallback);
            _exit(0);
        }
    }
    started = 1;
    send_status(CIRCUS_FRAME_STARTED, CIRCUS_OK, "");
}

static void run_reconfigure(const char *config, size_t len) {
    if (!started) {
        send_status(CIRCUS_FRAME_RECONFIGURED, CIRCUS_E_INVALID, "not started");
        return;
    }
    reconfigure_fn reconfigure;
    memcpy(&reconfigure, &plugin_lib.reconfigure, sizeof reconfigure);
    if (reconfigure == NULL) {
        send_status(CIRCUS_FRAME_RECONFIGURED, CIRCUS_E_UNSUPPORTED, "the plugin cannot reconfigure in place");
        return;
    }
    error_sink sink = {0, NULL};
    circus_status st = reconfigure(instance, circus_str_make(config, len), (circus_error *)(void *)&sink);
    char fallback[128];
    snprintf(fallback, sizeof fallback, "reconfigure failed with status %d and gave no reason", (int)st);
    send_status(CIRCUS_FRAME_RECONFIGURED, st, st == CIRCUS_OK ? "" : (sink.message != NULL ? sink.message : fallback));
    free(sink.message);
}

static const char *kind_name(int kind) {
    switch (kind) {
    case KIND_EVENT: return "event";
    case KIND_REQUEST: return "request";
    case KIND_TASK: return "task";
    default: return "control";
    }
}

static void run_item(item *it) {
    switch (it->op) {
    case OP_EVENT: dispatch_event(it->s1, it->n1, it->s2, it->n2); break;
    case OP_REQUEST: dispatch_request(it->a, it->b, it->s1, it->n1, it->s2, it->n2); break;
    case OP_TASK:
        it->task(it->ud);
        if (it->dtor != NULL) it->dtor(it->ud);
        break;
    case OP_DTOR: it->dtor(it->ud); break;
    case OP_CALL_DONE: dispatch_call_done(it->a, it->status, it->s1, it->n1); break;
    case OP_START: run_start(it->s1, it->n1, it->s2, it->n2); break;
    case OP_RECONFIGURE: run_reconfigure(it->s1, it->n1); break;
    case OP_PING: send_stats(CIRCUS_FRAME_PONG, it->a); break;
    case OP_STOP: {
        teardown();
        out_frame f;
        frame_begin(&f, CIRCUS_FRAME_STOPPED);
        frame_send(&f);
        _exit(0);
    }
    }
}

/// Runs up to a batch of queued items; returns whether more are waiting.
static int drain(void) {
    for (int i = 0; i < 64; i++) {
        uint64_t drops = 0;
        item *it = queue_pop(&drops);
        if (it == NULL) {
            if (drops > 0) {
                out_frame f;
                frame_begin(&f, CIRCUS_FRAME_DROPPED);
                frame_u64(&f, drops);
                frame_send(&f);
            }
            return 0;
        }
        double began = now_seconds();
        int kind = it->kind;
        run_item(it);
        item_free(it);
        double took = now_seconds() - began;
        if (took > slow_seconds) {
            host_log(CIRCUS_LOG_WARNING, "plugin %s took %d ms in a callback (%s); callbacks should return within "
                     "100 ms and leave blocking work to the plugin's own threads", the_host.name,
                     (int)(took * 1000 + 0.5), kind_name(kind));
        }
    }
    return 1;
}

/// Timers, descriptors and the queue take turns: at most a batch of queued items runs
/// before the timers and descriptors are looked at again.
static void loop(void) {
    struct epoll_event ready[64];
    int more = 0;
    for (;;) {
        int timeout = fire_timers();
        if (more) timeout = 0;
        int n = epoll_wait(epoll_fd, ready, 64, timeout);
        if (n < 0 && errno != EINTR) _exit(4);
        for (int i = 0; i < n; i++) {
            if (ready[i].data.u64 == 0) {
                uint64_t count;
                (void)!read(queue_wake_fd, &count, sizeof count);
                more = 1;
            } else {
                dispatch_fd(ready[i].data.u64, ready[i].events);
            }
        }
        // The wakeup was consumed: what is left after this batch is drained on the next
        // turn without one.
        if (more) more = drain();
    }
}

// MARK: circusd's frames (reader thread)

static void take_frame(in_frame *f) {
    item *it = NULL;
    switch (f->type) {
    case CIRCUS_FRAME_START:
        it = item_new(KIND_CONTROL, OP_START);
        it->s1 = frame_get_str(f, &it->n1);
        it->s2 = frame_get_str(f, &it->n2);
        break;
    case CIRCUS_FRAME_EVENT:
        it = item_new(KIND_EVENT, OP_EVENT);
        it->s1 = frame_get_str(f, &it->n1);
        it->s2 = frame_get_str(f, &it->n2);
        break;
    case CIRCUS_FRAME_REQUEST:
        it = item_new(KIND_REQUEST, OP_REQUEST);
        it->a = frame_get_u64(f);
        it->b = frame_get_u64(f);
        it->s1 = frame_get_str(f, &it->n1);
        it->s2 = frame_get_str(f, &it->n2);
        break;
    case CIRCUS_FRAME_CALL_DONE:
        it = item_new(KIND_CONTROL, OP_CALL_DONE);
        it->a = frame_get_u64(f);
        it->status = (int32_t)(int64_t)frame_get_u64(f);
        it->s1 = frame_get_str(f, &it->n1);
        break;
    case CIRCUS_FRAME_RECONFIGURE:
        it = item_new(KIND_CONTROL, OP_RECONFIGURE);
        it->s1 = frame_get_str(f, &it->n1);
        break;
    case CIRCUS_FRAME_STOP:
        it = item_new(KIND_CONTROL, OP_STOP);
        break;
    case CIRCUS_FRAME_PING:
        it = item_new(KIND_CONTROL, OP_PING);
        it->a = frame_get_u64(f);
        break;
    default:
        return;  // a newer daemon's frame: ignored
    }
    if (f->bad) {
        item_free(it);
        host_log(CIRCUS_LOG_ERROR, "plugin %s: malformed frame of type %d from circusd", the_host.name, f->type);
        return;
    }
    int op = it->op;
    uint64_t token = it->a;
    int queued = queue_push(it);
    if (op != OP_REQUEST || queued == QUEUED) return;
    char reason[256];
    if (queued == BUSY) {
        snprintf(reason, sizeof reason, "{\"reason\": \"plugin %s is busy: its queue of %d items is full; retry later\"}",
                 the_host.name, queue_capacity);
    } else {
        snprintf(reason, sizeof reason, "{\"reason\": \"plugin %s is stopping\"}", the_host.name);
    }
    out_frame r;
    frame_begin(&r, CIRCUS_FRAME_REPLY);
    frame_u64(&r, token);
    frame_u64(&r, (uint64_t)(int64_t)(queued == BUSY ? CIRCUS_E_BUSY : CIRCUS_E_CANCELLED));
    frame_str(&r, reason, strlen(reason));
    frame_send(&r);
}

static void *reader(void *unused) {
    (void)unused;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    uint64_t reported_drops = 0;
    if (buf == NULL) _exit(5);
    for (;;) {
        ssize_t n = read(frames_fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(0);  // circusd closed its end: nobody is left to serve
        len += (size_t)n;
        size_t at = 0;
        while (len - at >= 4) {
            uint32_t body;
            memcpy(&body, buf + at, 4);
            if (body == 0 || body > CIRCUS_FRAME_MAX) _exit(6);
            if (len - at - 4 < body) {
                if (4 + (size_t)body > cap) {
                    cap = 4 + (size_t)body;
                    memmove(buf, buf + at, len - at);
                    len -= at;
                    at = 0;
                    unsigned char *grown = realloc(buf, cap);
                    if (grown == NULL) _exit(5);
                    buf = grown;
                }
                break;
            }
            in_frame f = {buf[at + 4], buf + at + 5, buf + at + 4 + body, 0};
            take_frame(&f);
            at += 4 + (size_t)body;
        }
        memmove(buf, buf + at, len - at);
        len -= at;
        // What was dropped while the plugin is busy is reported at once (circusd shows
        // it), batched per read.
        uint64_t drops = queue_dropped_total();
        if (drops != reported_drops) {
            reported_drops = drops;
            send_stats(CIRCUS_FRAME_STATS, 0);
        }
    }
    return NULL;
}

// MARK: Start-up

static void usage(void) {
    fprintf(stderr, "usage: circus-plugin-host --fd N --library PATH [--path AS_GIVEN] --instance NAME "
                    "[--capacity N] [--slow-ms N] [--refuse-requests WHY] [--describe]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *library = NULL, *display = NULL, *name = NULL;
    int describe_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--describe") == 0) {
            describe_only = 1;
            continue;
        }
        if (value == NULL) usage();
        i++;
        if (strcmp(arg, "--fd") == 0) frames_fd = atoi(value);
        else if (strcmp(arg, "--library") == 0) library = value;
        else if (strcmp(arg, "--path") == 0) display = value;
        else if (strcmp(arg, "--instance") == 0) name = value;
        else if (strcmp(arg, "--capacity") == 0) queue_capacity = atoi(value) > 0 ? atoi(value) : 1;
        else if (strcmp(arg, "--slow-ms") == 0) slow_seconds = atof(value) / 1000.0;
        else if (strcmp(arg, "--refuse-requests") == 0) refuse_requests = value;
        else usage();
    }
    if (frames_fd < 0 || library == NULL || (name == NULL && !describe_only)) usage();
    if (display == NULL) display = library;
    if (name == NULL) name = "";
    if (strlen(name) >= sizeof the_host.name) usage();
    strcpy(the_host.name, name);
    the_host.name_len = strlen(name);
    // A write to circusd after it went away must fail (and end us), not kill us silently.
    signal(SIGPIPE, SIG_IGN);

    if (circus_plugin_load(display, library, &plugin_lib) != 0) {
        out_frame f;
        frame_begin(&f, CIRCUS_FRAME_LOAD_FAILED);
        frame_u64(&f, (uint64_t)plugin_lib.failure);
        frame_str(&f, plugin_lib.message, strlen(plugin_lib.message));
        frame_send(&f);
        return 0;
    }
    out_frame hello;
    frame_begin(&hello, CIRCUS_FRAME_HELLO);
    frame_str(&hello, plugin_lib.name, strlen(plugin_lib.name));
    frame_str(&hello, plugin_lib.version, strlen(plugin_lib.version));
    frame_str(&hello, plugin_lib.description, strlen(plugin_lib.description));
    frame_u64(&hello, plugin_lib.abi_major);
    frame_u64(&hello, plugin_lib.abi_minor);
    frame_u64(&hello, plugin_lib.flags);
    frame_u64(&hello, plugin_lib.reconfigure != NULL);
    frame_send(&hello);
    if (describe_only) return 0;

    queue_init();
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (queue_wake_fd < 0 || epoll_fd < 0) return 5;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, queue_wake_fd, &ev) != 0) return 5;
    pthread_t thread;
    if (pthread_create(&thread, NULL, reader, NULL) != 0) return 5;
    loop();
    return 0;
}
