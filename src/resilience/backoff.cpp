#include <athena/backoff.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace athena {

namespace {

// Multiplier of the base delay for `attempt`. Stops growing once base × multiplier reaches
// `limit`, so huge attempt numbers neither overflow nor loop for long.
double growth_factor(BackoffStrategy strategy, std::uint32_t attempt, double limit) {
    switch (strategy) {
    case BackoffStrategy::exponential:
        return std::ldexp(1.0, static_cast<int>(std::min<std::uint32_t>(attempt, 2'000)));
    case BackoffStrategy::linear:
        return static_cast<double>(attempt) + 1.0;
    case BackoffStrategy::fibonacci: {
        double previous = 0.0;
        double current = 1.0; // fib(1)
        for (std::uint32_t i = 0; i < attempt && current < limit; ++i) {
            const double next = previous + current;
            previous = current;
            current = next;
        }
        return current;
    }
    }
    return 1.0;
}

} // namespace

std::string_view to_string(BackoffStrategy strategy) {
    switch (strategy) {
    case BackoffStrategy::exponential:
        return "exponential";
    case BackoffStrategy::linear:
        return "linear";
    case BackoffStrategy::fibonacci:
        return "fibonacci";
    }
    return "exponential";
}

Result<BackoffStrategy> parse_backoff_strategy(std::string_view name) {
    for (const auto strategy :
         {BackoffStrategy::exponential, BackoffStrategy::linear, BackoffStrategy::fibonacci}) {
        if (name == to_string(strategy)) {
            return strategy;
        }
    }
    return fail("usage", fmt::format("invalid backoff strategy '{}': expected exponential, "
                                     "linear or fibonacci",
                                     name));
}

Result<void> validate_backoff_config(const BackoffConfig& config, std::string_view owner) {
    if (config.base.count() < 0) {
        return fail("usage",
                    fmt::format("{}: backoff base {} ms is negative", owner, config.base.count()));
    }
    if (config.cap < config.base) {
        return fail("usage", fmt::format("{}: backoff cap {} ms is below the base of {} ms", owner,
                                         config.cap.count(), config.base.count()));
    }
    if (!(config.jitter_ratio >= 0.0 && config.jitter_ratio <= 1.0)) {
        return fail("usage",
                    fmt::format("{}: jitter ratio {} is invalid, expected a value in [0, 1]", owner,
                                config.jitter_ratio));
    }
    return {};
}

RandomSource default_random_source() {
    return [] {
        thread_local std::mt19937_64 engine{std::random_device{}()};
        return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
    };
}

std::chrono::milliseconds nominal_backoff_delay(const BackoffConfig& config,
                                                std::uint32_t attempt) {
    const auto base_ms = static_cast<double>(std::max<std::int64_t>(config.base.count(), 0));
    const auto cap_ms = static_cast<double>(std::max<std::int64_t>(config.cap.count(), 0));
    if (base_ms == 0.0) {
        return std::chrono::milliseconds{0};
    }

    const double factor = growth_factor(config.strategy, attempt, cap_ms / base_ms);
    const double delay_ms = std::min(base_ms * factor, cap_ms);
    return std::chrono::milliseconds{static_cast<std::int64_t>(delay_ms)};
}

std::chrono::milliseconds backoff_delay(const BackoffConfig& config, std::uint32_t attempt,
                                        const RandomSource& random) {
    const auto nominal_ms = static_cast<double>(nominal_backoff_delay(config, attempt).count());
    // The negated comparisons also catch NaN, which std::clamp would pass through.
    if (!(config.jitter_ratio > 0.0) || !random) {
        return std::chrono::milliseconds{static_cast<std::int64_t>(nominal_ms)};
    }
    const double ratio = std::min(config.jitter_ratio, 1.0);
    double draw = random();
    if (!(draw >= 0.0)) {
        draw = 0.0;
    }
    draw = std::min(draw, 1.0);

    // Map the uniform draw in [0, 1) onto a factor in [1 - ratio, 1 + ratio).
    const double jittered_ms = nominal_ms * (1.0 + ratio * (2.0 * draw - 1.0));
    const auto cap_ms = static_cast<double>(std::max<std::int64_t>(config.cap.count(), 0));
    const double delay_ms = std::clamp(std::round(jittered_ms), 0.0, cap_ms);
    return std::chrono::milliseconds{static_cast<std::int64_t>(delay_ms)};
}

} // namespace athena
