// SIGINT and SIGTERM: the first one asks the run to stop (the pipeline polls the flag), a
// second one ends the process at once. SQLite's WAL keeps the cache consistent either way:
// an unfinished transaction is rolled back on the next open.
#pragma once

#include <atomic>

namespace athena::cli {

// Holds the number of the first signal received, 0 until then. Written from the handler.
std::atomic<int>& interrupt_signal();

void install_signal_handlers();

} // namespace athena::cli
