#include "cli/app.hpp"

#include <malloc.h>

int main(int argc, char** argv) {
    // glibc raises its mmap threshold after each large free, after which multi-MiB evidence
    // buffers come from per-thread arenas that keep their pages; a fixed threshold returns
    // them to the kernel at once. Fewer arenas bound what 16+ worker threads can hold.
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_ARENA_MAX, 4);
    return athena::cli::run(argc, argv);
}
