/*
 * echo_server: the bare libzmq limit for the control channel.  A ROUTER
 * socket bound on ENDPOINT that sends every [identity, body] message straight
 * back, unchanged (no JSON parsing, no work).  Prints "ready" once bound.
 * Runs until SIGTERM/SIGINT.
 *
 *   echo_server ENDPOINT
 */
#include <zmq.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t stop;
static void on_sig(int s) { (void)s; stop = 1; }

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s ENDPOINT\n", argv[0]); return 2; }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(sock, argv[1]) != 0) {
        fprintf(stderr, "bind %s: %s\n", argv[1], zmq_strerror(errno));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    while (!stop) {
        if (zmq_msg_recv(&id, sock, 0) < 0) { if (errno == EINTR) continue; break; }
        if (!zmq_msg_more(&id)) continue;
        if (zmq_msg_recv(&body, sock, 0) < 0) break;
        int extra = 0;
        while (zmq_msg_more(&body)) {          /* not 2 frames: drop, like circusd */
            extra = 1;
            if (zmq_msg_recv(&body, sock, 0) < 0) break;
        }
        if (extra) continue;
        zmq_msg_send(&id, sock, ZMQ_SNDMORE);
        zmq_msg_send(&body, sock, 0);
    }
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return 0;
}
