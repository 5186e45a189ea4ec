// Backoff delays for the circuit breaker's reset timeout and for request retries: a nominal
// delay that grows with the attempt number, capped, then spread by random jitter.
#pragma once

#include <athena/error.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>

namespace athena {

enum class BackoffStrategy {
    exponential, // base × 2^n: 1, 2, 4, 8, 16 ...
    linear,      // base × (n + 1): 1, 2, 3, 4, 5 ...
    fibonacci,   // base × fib(n + 1): 1, 1, 2, 3, 5, 8 ...
};

// "exponential", "linear", "fibonacci".
std::string_view to_string(BackoffStrategy strategy);
// Parses the names above. Errors: kind "usage".
Result<BackoffStrategy> parse_backoff_strategy(std::string_view name);

struct BackoffConfig {
    BackoffStrategy strategy = BackoffStrategy::exponential;
    std::chrono::milliseconds base{1'000};  // delay of attempt 0 before jitter
    std::chrono::milliseconds cap{300'000}; // maximum delay, also after jitter
    // Relative spread: a delay d becomes uniform in [d × (1 - ratio), d × (1 + ratio)),
    // then is cut to `cap`. 0 gives exact delays. Valid range [0, 1].
    double jitter_ratio = 0.2;
};

// Checks base >= 0, cap >= base and 0 <= jitter_ratio <= 1. Errors: kind "usage", naming
// `owner` (e.g. "circuit breaker openai") and the invalid value.
Result<void> validate_backoff_config(const BackoffConfig& config, std::string_view owner);

// Source of uniform random numbers in [0, 1); values outside are clamped. Called by the thread
// that computes a delay, so it must be safe to call from several threads at once.
using RandomSource = std::function<double()>;

// A per-thread std::mt19937_64 seeded from std::random_device.
RandomSource default_random_source();

// Returns the capped delay of `attempt` (0 for the first retry or the first opening) before
// jitter. Saturates at `cap` instead of overflowing for large attempt numbers.
std::chrono::milliseconds nominal_backoff_delay(const BackoffConfig& config, std::uint32_t attempt);

// Returns the nominal delay of `attempt` with jitter drawn from `random`, rounded to the
// nearest millisecond and never above `cap`.
std::chrono::milliseconds backoff_delay(const BackoffConfig& config, std::uint32_t attempt,
                                        const RandomSource& random);

} // namespace athena
