/*
 * rtt_client: measures request/reply round trips against a ZeroMQ ROUTER
 * (circusd's control endpoint, or the bare echo_server) using DEALER sockets,
 * so that the client-side cost is identical for every server.
 *
 *   rtt_client ENDPOINT COUNT CONCURRENCY DURATION_S [OUTFILE]
 *
 * Each client is a separate process (fork) with its own context and DEALER
 * socket.  Every client first does WARMUP round trips (200, or $RTT_WARMUP), then all clients are
 * released together.  A client stops after COUNT requests (COUNT > 0) or
 * after DURATION_S seconds (COUNT == 0).  Request:
 *   {"id":"<client>-<n>","command":"status","properties":{}}
 * Output: one JSON line on stdout with count, elapsed_s, req_s, p50_us, p99_us,
 * mean_us, max_us.  OUTFILE, if given, receives all latencies as native
 * uint64 nanoseconds (client order, unsorted).
 */
#define _GNU_SOURCE
#include <zmq.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t WARMUP = 200;
#define MAX_SAMPLES_PER_CLIENT (1u << 22)

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct client_result {
    uint64_t count;      /* completed round trips (measured) */
    uint64_t recorded;   /* latencies stored */
    uint64_t elapsed_ns;
    int failed;
};

static int one_rtt(void *sock, int cid, uint64_t n, char *buf, size_t bufsz) {
    char req[128];
    int len = snprintf(req, sizeof req,
                       "{\"id\":\"%d-%llu\",\"command\":\"status\",\"properties\":{}}",
                       cid, (unsigned long long)n);
    if (zmq_send(sock, req, (size_t)len, 0) != len) return -1;
    int r = zmq_recv(sock, buf, bufsz, 0);
    if (r <= 0) return -1;
    return r;
}

static void run_client(const char *endpoint, int cid, uint64_t count, double duration,
                       int ready_fd, int go_fd, struct client_result *res, uint64_t *lat) {
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, timeo = 10000;
    const char *timeout = getenv("RTT_TIMEOUT_MS");  /* a daemon busy for seconds (Python's stats) */
    if (timeout && *timeout) timeo = atoi(timeout);
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeo, sizeof timeo);
    zmq_setsockopt(sock, ZMQ_SNDTIMEO, &timeo, sizeof timeo);
    if (zmq_connect(sock, endpoint) != 0) {
        fprintf(stderr, "client %d: connect %s: %s\n", cid, endpoint, zmq_strerror(errno));
        res->failed = 1;
        goto out;
    }
    static char buf[1 << 16];
    for (uint64_t i = 0; i < WARMUP; i++) {
        int r = one_rtt(sock, cid, i, buf, sizeof buf);
        if (r < 0) {
            fprintf(stderr, "client %d: warm-up request failed: %s\n", cid, zmq_strerror(errno));
            res->failed = 1;
            goto out;
        }
        if (i == 0 && (r >= (int)sizeof buf || memmem(buf, (size_t)r, "\"status\"", 8) == NULL)) {
            fprintf(stderr, "client %d: unexpected reply: %.*s\n", cid, r < 200 ? r : 200, buf);
            res->failed = 1;
            goto out;
        }
    }
    char c = 'r';
    if (write(ready_fd, &c, 1) != 1) { res->failed = 1; goto out; }
    if (read(go_fd, &c, 1) != 1) { res->failed = 1; goto out; }

    uint64_t start = now_ns();
    uint64_t deadline = count ? UINT64_MAX : start + (uint64_t)(duration * 1e9);
    uint64_t n = 0, recorded = 0;
    for (;;) {
        uint64_t t0 = now_ns();
        if (count && n >= count) break;
        if (t0 >= deadline) break;
        if (one_rtt(sock, cid, WARMUP + n, buf, sizeof buf) < 0) {
            fprintf(stderr, "client %d: request %llu failed: %s\n", cid,
                    (unsigned long long)n, zmq_strerror(errno));
            res->failed = 1;
            break;
        }
        uint64_t t1 = now_ns();
        if (recorded < MAX_SAMPLES_PER_CLIENT) lat[recorded++] = t1 - t0;
        n++;
    }
    res->elapsed_ns = now_ns() - start;
    res->count = n;
    res->recorded = recorded;
out:
    zmq_close(sock);
    zmq_ctx_term(ctx);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *s, uint64_t n, double p) {
    if (n == 0) return 0;
    uint64_t i = (uint64_t)(p * (double)(n - 1) + 0.5);
    return (double)s[i];
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s ENDPOINT COUNT CONCURRENCY DURATION_S [OUTFILE]\n", argv[0]);
        return 2;
    }
    const char *endpoint = argv[1];
    const char *warmup = getenv("RTT_WARMUP");
    if (warmup && *warmup) WARMUP = strtoull(warmup, NULL, 10);
    uint64_t count = strtoull(argv[2], NULL, 10);
    int conc = atoi(argv[3]);
    double duration = atof(argv[4]);
    const char *outfile = argc > 5 ? argv[5] : NULL;
    if (conc < 1 || (count == 0 && duration <= 0)) {
        fprintf(stderr, "need CONCURRENCY >= 1 and COUNT > 0 or DURATION_S > 0\n");
        return 2;
    }
    uint64_t per = count ? (count < MAX_SAMPLES_PER_CLIENT ? count : MAX_SAMPLES_PER_CLIENT)
                         : MAX_SAMPLES_PER_CLIENT;
    size_t res_sz = sizeof(struct client_result) * (size_t)conc;
    size_t lat_sz = sizeof(uint64_t) * per * (size_t)conc;
    struct client_result *res = mmap(NULL, res_sz, PROT_READ | PROT_WRITE,
                                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint64_t *lat = mmap(NULL, lat_sz, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED || lat == MAP_FAILED) { perror("mmap"); return 1; }
    memset(res, 0, res_sz);

    int ready[2], go[2];
    if (pipe(ready) || pipe(go)) { perror("pipe"); return 1; }
    pid_t *kids = calloc((size_t)conc, sizeof(pid_t));
    for (int i = 0; i < conc; i++) {
        pid_t p = fork();
        if (p < 0) { perror("fork"); return 1; }
        if (p == 0) {
            close(ready[0]); close(go[1]);
            run_client(endpoint, i, count, duration, ready[1], go[0], &res[i], lat + per * (size_t)i);
            _exit(res[i].failed ? 1 : 0);
        }
        kids[i] = p;
    }
    close(ready[1]); close(go[0]);
    int nready = 0;
    char c;
    while (nready < conc && read(ready[0], &c, 1) == 1) nready++;
    if (nready == conc) {
        char gobuf[256];
        memset(gobuf, 'g', sizeof gobuf);
        for (int left = conc; left > 0;) {
            int k = left < (int)sizeof gobuf ? left : (int)sizeof gobuf;
            if (write(go[1], gobuf, (size_t)k) != k) break;
            left -= k;
        }
    }
    close(go[1]);
    int failed = nready != conc;
    for (int i = 0; i < conc; i++) {
        int st;
        waitpid(kids[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || res[i].failed) failed = 1;
    }
    if (failed) { fprintf(stderr, "rtt_client: a client failed\n"); return 1; }

    uint64_t total = 0, nrec = 0, max_el = 0;
    for (int i = 0; i < conc; i++) {
        total += res[i].count;
        if (res[i].elapsed_ns > max_el) max_el = res[i].elapsed_ns;
        /* compact latencies */
        if (per * (size_t)i != nrec)
            memmove(lat + nrec, lat + per * (size_t)i, res[i].recorded * sizeof(uint64_t));
        nrec += res[i].recorded;
    }
    if (outfile) {
        FILE *f = fopen(outfile, "wb");
        if (!f || fwrite(lat, sizeof(uint64_t), nrec, f) != nrec) { perror(outfile); return 1; }
        fclose(f);
    }
    double sum = 0;
    for (uint64_t i = 0; i < nrec; i++) sum += (double)lat[i];
    qsort(lat, nrec, sizeof(uint64_t), cmp_u64);
    double el = (double)max_el / 1e9;
    printf("{\"clients\": %d, \"count\": %llu, \"elapsed_s\": %.6f, \"req_s\": %.1f, "
           "\"p50_us\": %.2f, \"p99_us\": %.2f, \"mean_us\": %.2f, \"max_us\": %.2f}\n",
           conc, (unsigned long long)total, el, el > 0 ? (double)total / el : 0.0,
           pct(lat, nrec, 0.50) / 1e3, pct(lat, nrec, 0.99) / 1e3,
           nrec ? sum / (double)nrec / 1e3 : 0.0, nrec ? (double)lat[nrec - 1] / 1e3 : 0.0);
    return 0;
}
