#include "frames.h"

#include "circus_plugin_loader.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int frames_fd = -1;
static pthread_mutex_t send_lock = PTHREAD_MUTEX_INITIALIZER;

static void reserve(out_frame *f, size_t more) {
    if (f->failed || f->len + more <= f->cap) return;
    size_t cap = f->cap * 2 > f->len + more ? f->cap * 2 : f->len + more + 64;
    unsigned char *grown = realloc(f->buf, cap);
    if (grown == NULL) {
        f->failed = 1;
        return;
    }
    f->buf = grown;
    f->cap = cap;
}

void frame_begin(out_frame *f, int type) {
    memset(f, 0, sizeof *f);
    reserve(f, 64);
    if (f->failed) return;
    uint32_t placeholder = 0;
    memcpy(f->buf, &placeholder, 4);
    f->buf[4] = (unsigned char)type;
    f->len = 5;
}

void frame_u64(out_frame *f, uint64_t v) {
    reserve(f, 8);
    if (f->failed) return;
    memcpy(f->buf + f->len, &v, 8);
    f->len += 8;
}

void frame_str(out_frame *f, const char *ptr, size_t len) {
    if (len > CIRCUS_FRAME_MAX) {
        f->failed = 1;
        return;
    }
    reserve(f, 4 + len);
    if (f->failed) return;
    uint32_t n = (uint32_t)len;
    memcpy(f->buf + f->len, &n, 4);
    if (len > 0) memcpy(f->buf + f->len + 4, ptr, len);
    f->len += 4 + len;
}

void frame_send(out_frame *f) {
    if (f->failed || f->len - 4 > CIRCUS_FRAME_MAX) {
        free(f->buf);
        return;
    }
    uint32_t body = (uint32_t)(f->len - 4);
    memcpy(f->buf, &body, 4);
    pthread_mutex_lock(&send_lock);
    size_t sent = 0;
    while (sent < f->len) {
        ssize_t n = write(frames_fd, f->buf + sent, f->len - sent);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(3);  // circusd is gone
        sent += (size_t)n;
    }
    pthread_mutex_unlock(&send_lock);
    free(f->buf);
}

uint64_t frame_get_u64(in_frame *f) {
    uint64_t v = 0;
    if (f->end - f->at < 8) {
        f->bad = 1;
        return 0;
    }
    memcpy(&v, f->at, 8);
    f->at += 8;
    return v;
}

char *frame_get_str(in_frame *f, size_t *len) {
    uint32_t n = 0;
    *len = 0;
    if (f->end - f->at < 4) {
        f->bad = 1;
        return NULL;
    }
    memcpy(&n, f->at, 4);
    f->at += 4;
    if ((size_t)(f->end - f->at) < n) {
        f->bad = 1;
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (s == NULL) {
        f->bad = 1;
        return NULL;
    }
    memcpy(s, f->at, n);
    s[n] = '\0';
    f->at += n;
    *len = n;
    return s;
}
