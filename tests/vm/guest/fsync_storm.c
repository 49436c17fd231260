/* Metadata-heavy workload for the journal-size benchmark (scripts/vm-bench-journal.sh): WRITERS
 * processes each create FILES small files of SIZE bytes under DIR/w<i>/d<j> (1000 files per
 * directory, like a package install or a layer unpack), writing and fsyncing each one. Prints
 * `STORM files=N seconds=S files_per_second=R`. Exit status 0 only if every writer succeeded.
 * Built static on the host (the guest has no compiler): gcc -O2 -static. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int writer(const char *dir, int id, long files, size_t size) {
    char path[4096];
    char *buf = malloc(size ? size : 1);
    if (!buf) return 1;
    memset(buf, 'a' + id % 26, size);
    snprintf(path, sizeof path, "%s/w%d", dir, id);
    if (mkdir(path, 0755) && errno != EEXIST) { perror(path); return 1; }
    for (long i = 0; i < files; i++) {
        if (i % 1000 == 0) {
            snprintf(path, sizeof path, "%s/w%d/d%ld", dir, id, i / 1000);
            if (mkdir(path, 0755) && errno != EEXIST) { perror(path); return 1; }
        }
        snprintf(path, sizeof path, "%s/w%d/d%ld/f%ld", dir, id, i / 1000, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) { perror(path); return 1; }
        if (write(fd, buf, size) != (ssize_t)size) { perror(path); return 1; }
        if (fsync(fd)) { perror(path); return 1; }
        if (close(fd)) { perror(path); return 1; }
    }
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: fsync_storm DIR WRITERS FILES_PER_WRITER SIZE\n");
        return 2;
    }
    const char *dir = argv[1];
    int writers = atoi(argv[2]);
    long files = atol(argv[3]);
    size_t size = (size_t)atol(argv[4]);
    double t0 = now();
    for (int i = 0; i < writers; i++) {
        pid_t p = fork();
        if (p < 0) { perror("fork"); return 1; }
        if (p == 0) _exit(writer(dir, i, files, size));
    }
    int failed = 0, status;
    while (wait(&status) > 0)
        if (!WIFEXITED(status) || WEXITSTATUS(status)) failed = 1;
    sync();
    double s = now() - t0;
    printf("STORM files=%ld seconds=%.2f files_per_second=%.1f\n", files * writers, s,
           files * writers / s);
    return failed;
}
