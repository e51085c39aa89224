/*
 * sub_count: counts the messages a ZeroMQ PUB socket publishes on a topic, with as little
 * CPU as a subscriber can take, so that the count does not slow down what it measures
 * (churn_rate.py runs it beside a daemon whose children use both cores).
 *
 *   sub_count ENDPOINT TOPIC WARMUP_S SECONDS
 *
 * Connects a SUB socket subscribed to TOPIC (libzmq filters on the publisher's side),
 * discards what arrives during WARMUP_S, prints "start" on its own line (flushed) and then
 * counts the messages of the next SECONDS. Output, last line: JSON with count, elapsed_s
 * and cpu_s (this process's user + system CPU over the counting window).
 */
#include <zmq.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Receives every message (all its frames) until `end`; returns how many. */
static uint64_t drain_until(void *sub, double end) {
    uint64_t count = 0;
    zmq_msg_t part;
    zmq_msg_init(&part);
    for (;;) {
        double left = end - now_s();
        if (left <= 0) break;
        zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, (long)(left * 1000) + 1) <= 0) continue;
        /* Everything queued, without polling again between messages. */
        while (zmq_msg_recv(&part, sub, ZMQ_DONTWAIT) >= 0) {
            if (!zmq_msg_more(&part)) count++;
        }
    }
    zmq_msg_close(&part);
    return count;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s ENDPOINT TOPIC WARMUP_S SECONDS\n", argv[0]);
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    int zero = 0;
    zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, argv[2], strlen(argv[2]));
    if (zmq_connect(sub, argv[1]) != 0) {
        fprintf(stderr, "zmq_connect %s: %s\n", argv[1], zmq_strerror(zmq_errno()));
        return 1;
    }
    drain_until(sub, now_s() + atof(argv[3]));
    printf("start\n");
    fflush(stdout);
    double cpu0 = cpu_s();
    double start = now_s();
    uint64_t count = drain_until(sub, start + atof(argv[4]));
    double elapsed = now_s() - start;
    printf("{\"count\": %llu, \"elapsed_s\": %.6f, \"cpu_s\": %.6f}\n", (unsigned long long)count, elapsed,
           cpu_s() - cpu0);
    zmq_close(sub);
    zmq_ctx_term(ctx);
    return 0;
}
