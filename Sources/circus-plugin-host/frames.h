// Frames to and from circusd (the layout is in circus_plugin_loader.h): a builder for
// outgoing frames, sent whole under one lock from any thread, and a reader for incoming
// ones.

#ifndef CIRCUS_PLUGIN_HOST_FRAMES_H
#define CIRCUS_PLUGIN_HOST_FRAMES_H

#include <stddef.h>
#include <stdint.h>

/// An outgoing frame being built; `failed` once an allocation failed.
typedef struct out_frame {
    unsigned char *buf;
    size_t len, cap;
    int failed;
} out_frame;

void frame_begin(out_frame *f, int type);
void frame_u64(out_frame *f, uint64_t v);
void frame_str(out_frame *f, const char *ptr, size_t len);
/// Sends the frame (its length first) and frees it. Thread-safe. Exits the process when
/// the daemon's end is gone: nobody is left to serve.
void frame_send(out_frame *f);

/// A received frame's fields, read in order.
typedef struct in_frame {
    int type;
    const unsigned char *at, *end;
    int bad;    ///< set when a field ran past the end
} in_frame;

uint64_t frame_get_u64(in_frame *f);
/// A string field, copied and NUL-terminated (free it); *len gets its length.
char *frame_get_str(in_frame *f, size_t *len);

/// The descriptor frames travel on.
extern int frames_fd;

#endif
