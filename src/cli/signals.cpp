#include "cli/signals.hpp"

#include <csignal>

#include <unistd.h>

namespace athena::cli {
namespace {

std::atomic<int> g_interrupt_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void on_signal(int signal_number) {
    int expected = 0;
    if (!g_interrupt_signal.compare_exchange_strong(expected, signal_number)) {
        // Second signal: the user wants out now. Only async-signal-safe calls here.
        constexpr char k_message[] = "\nathena: stopped at once; the cache stays consistent\n";
        (void)!::write(STDERR_FILENO, k_message, sizeof(k_message) - 1);
        ::_exit(128 + signal_number);
    }
    constexpr char k_message[] =
        "\nathena: stopping: finishing files in progress (press Ctrl-C again to quit now)\n";
    (void)!::write(STDERR_FILENO, k_message, sizeof(k_message) - 1);
}

} // namespace

std::atomic<int>& interrupt_signal() {
    return g_interrupt_signal;
}

void install_signal_handlers() {
    struct sigaction action{};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &action, nullptr);
    ::sigaction(SIGTERM, &action, nullptr);
}

} // namespace athena::cli
