// The bare cost of moving a pipe into a file without user space: stdin (a pipe) is
// spliced to FILE at its end until end of file, as circusd's FileStream does without
// time_format. Used by Benchmarks/streams.py beside `cat`.
//
//   writer | splice_copy FILE
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: splice_copy FILE < pipe\n");
        return 2;
    }
    int fd = open(argv[1], O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    for (;;) {
        off64_t offset = lseek(fd, 0, SEEK_END);
        ssize_t n = splice(0, NULL, fd, &offset, 1 << 20, SPLICE_F_MOVE);
        if (n == 0) return 0;
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("splice");
            return 1;
        }
    }
}
