// Deterministic output for the stream tests and Benchmarks/streams.py, and its checker.
//
//   streamwriter write ID BYTES    writes BYTES bytes (a multiple of 100) to stdout as
//                                  100-byte lines "w<ID> <seq> <payload>\n", 40 lines per
//                                  write(2) (4000 bytes: under PIPE_BUF, so atomic)
//   streamwriter verify FILE WRITERS BYTES
//                                  checks that FILE holds exactly the lines of writers
//                                  1..WRITERS (circus.wid), each writer's in order, whatever the
//                                  interleaving; prints "ok <lines> <bytes>" or what is wrong
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { LINE = 100, BATCH = 40 };

static char payload_char(long id, long seq, int pos) { return (char)('a' + (id * 7 + seq * 13 + pos) % 26); }

static void make_line(char *out, long id, long seq) {
    int head = snprintf(out, LINE, "w%ld %08ld ", id, seq);
    for (int i = head; i < LINE - 1; i++) out[i] = payload_char(id, seq, i);
    out[LINE - 1] = '\n';
}

static int write_mode(long id, long bytes) {
    if (bytes % LINE != 0) {
        fprintf(stderr, "BYTES must be a multiple of %d\n", LINE);
        return 2;
    }
    long lines = bytes / LINE;
    char buffer[LINE * BATCH];
    for (long seq = 0; seq < lines;) {
        int n = 0;
        while (n < BATCH && seq < lines) make_line(buffer + (n++) * LINE, id, seq++);
        size_t size = (size_t)n * LINE, done = 0;
        while (done < size) {
            ssize_t w = write(1, buffer + done, size - done);
            if (w < 0) {
                if (errno == EINTR) continue;
                return 1;
            }
            done += (size_t)w;
        }
    }
    return 0;
}

static int verify_mode(const char *path, long writers, long bytes) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct stat st;
    fstat(fd, &st);
    long expected = writers * bytes;
    if (st.st_size != expected) {
        printf("size %ld, expected %ld\n", (long)st.st_size, expected);
        return 1;
    }
    if (expected == 0) return printf("ok 0 0\n"), 0;
    const char *data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data == MAP_FAILED) {
        printf("mmap: %s\n", strerror(errno));
        return 1;
    }
    long *next = calloc((size_t)writers, sizeof(long));
    char line[LINE];
    long count = 0;
    for (long offset = 0; offset < st.st_size; offset += LINE, count++) {
        long id = -1, seq = -1;
        char got[LINE + 1];
        memcpy(got, data + offset, LINE);
        got[LINE] = 0;  // sscanf needs a string; the mapping has no terminator
        if (sscanf(got, "w%ld %ld ", &id, &seq) != 2 || id < 1 || id > writers) {
            printf("line %ld (offset %ld) is not a writer's line: %.40s\n", count, offset, got);
            return 1;
        }
        if (seq != next[id - 1]) {
            printf("writer %ld: line %ld where %ld was expected (offset %ld)\n", id, seq, next[id - 1], offset);
            return 1;
        }
        make_line(line, id, seq);
        if (memcmp(line, data + offset, LINE) != 0) {
            printf("writer %ld line %ld differs (offset %ld)\n", id, seq, offset);
            return 1;
        }
        next[id - 1]++;
    }
    for (long id = 1; id <= writers; id++) {
        if (next[id - 1] != bytes / LINE) {
            printf("writer %ld: %ld lines, expected %ld\n", id, next[id - 1], bytes / LINE);
            return 1;
        }
    }
    printf("ok %ld %ld\n", count, (long)st.st_size);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "write") == 0) return write_mode(atol(argv[2]), atol(argv[3]));
    if (argc == 5 && strcmp(argv[1], "verify") == 0) return verify_mode(argv[2], atol(argv[3]), atol(argv[4]));
    fprintf(stderr, "usage: streamwriter write ID BYTES | verify FILE WRITERS BYTES\n");
    return 2;
}
