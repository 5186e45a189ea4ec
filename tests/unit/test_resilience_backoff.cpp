#include <athena/backoff.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <vector>

using namespace std::chrono_literals;
using athena::BackoffConfig;
using athena::BackoffStrategy;

namespace {

BackoffConfig exact_config(BackoffStrategy strategy, std::chrono::milliseconds base,
                           std::chrono::milliseconds cap) {
    BackoffConfig config;
    config.strategy = strategy;
    config.base = base;
    config.cap = cap;
    config.jitter_ratio = 0.0;
    return config;
}

std::vector<std::int64_t> first_delays_ms(const BackoffConfig& config, std::uint32_t count) {
    std::vector<std::int64_t> delays;
    for (std::uint32_t attempt = 0; attempt < count; ++attempt) {
        delays.push_back(athena::backoff_delay(config, attempt, nullptr).count());
    }
    return delays;
}

} // namespace

TEST_CASE("Backoff: strategy sequences without jitter") {
    SUBCASE("exponential doubles") {
        const auto config = exact_config(BackoffStrategy::exponential, 100ms, 1h);
        CHECK(first_delays_ms(config, 6) ==
              std::vector<std::int64_t>{100, 200, 400, 800, 1600, 3200});
    }
    SUBCASE("linear adds the base") {
        const auto config = exact_config(BackoffStrategy::linear, 100ms, 1h);
        CHECK(first_delays_ms(config, 6) ==
              std::vector<std::int64_t>{100, 200, 300, 400, 500, 600});
    }
    SUBCASE("fibonacci follows 1 1 2 3 5 8") {
        const auto config = exact_config(BackoffStrategy::fibonacci, 100ms, 1h);
        CHECK(first_delays_ms(config, 8) ==
              std::vector<std::int64_t>{100, 100, 200, 300, 500, 800, 1300, 2100});
    }
}

TEST_CASE("Backoff: cap limits every strategy") {
    const BackoffConfig defaults;
    CHECK(defaults.cap == 300'000ms);
    CHECK(defaults.jitter_ratio == doctest::Approx(0.2));

    SUBCASE("exponential from 30 s reaches 5 min") {
        const auto config = exact_config(BackoffStrategy::exponential, 30s, 5min);
        CHECK(first_delays_ms(config, 6) ==
              std::vector<std::int64_t>{30'000, 60'000, 120'000, 240'000, 300'000, 300'000});
    }
    SUBCASE("linear stops at the cap") {
        const auto config = exact_config(BackoffStrategy::linear, 100ms, 250ms);
        CHECK(first_delays_ms(config, 4) == std::vector<std::int64_t>{100, 200, 250, 250});
    }
    SUBCASE("fibonacci stops at the cap") {
        const auto config = exact_config(BackoffStrategy::fibonacci, 100ms, 400ms);
        CHECK(first_delays_ms(config, 6) ==
              std::vector<std::int64_t>{100, 100, 200, 300, 400, 400});
    }
    SUBCASE("huge attempt numbers saturate") {
        for (const auto strategy :
             {BackoffStrategy::exponential, BackoffStrategy::linear, BackoffStrategy::fibonacci}) {
            const auto config = exact_config(strategy, 30s, 5min);
            CHECK(athena::nominal_backoff_delay(config, 4'000'000'000U) == 5min);
        }
    }
}

TEST_CASE("Backoff: jitter stays within its ratio") {
    BackoffConfig config = exact_config(BackoffStrategy::exponential, 10s, 1h);
    config.jitter_ratio = 0.2;

    SUBCASE("extreme draws give the bounds") {
        CHECK(athena::backoff_delay(config, 0, [] { return 0.0; }) == 8000ms);
        CHECK(athena::backoff_delay(config, 0, [] { return 0.5; }) == 10'000ms);
        CHECK(athena::backoff_delay(config, 0, [] { return 0.999999; }) == 12'000ms);
        CHECK(athena::backoff_delay(config, 1, [] { return 0.0; }) == 16'000ms);
    }
    SUBCASE("out-of-range draws are clamped") {
        CHECK(athena::backoff_delay(config, 0, [] { return -3.0; }) == 8000ms);
        CHECK(athena::backoff_delay(config, 0, [] { return 7.0; }) == 12'000ms);
    }
    SUBCASE("many real draws stay within 20 percent") {
        const athena::RandomSource random = athena::default_random_source();
        std::int64_t lowest = INT64_MAX;
        std::int64_t highest = 0;
        for (int i = 0; i < 10'000; ++i) {
            const std::int64_t delay_ms = athena::backoff_delay(config, 2, random).count();
            lowest = std::min(lowest, delay_ms);
            highest = std::max(highest, delay_ms);
        }
        CHECK(lowest >= 32'000);
        CHECK(highest <= 48'000);
        // 10,000 uniform draws cover both ends of the range: the spread is real.
        CHECK(lowest < 33'000);
        CHECK(highest > 47'000);
    }
    SUBCASE("jitter never exceeds the cap") {
        config.cap = 10s;
        CHECK(athena::backoff_delay(config, 0, [] { return 0.999; }) == 10s);
        CHECK(athena::backoff_delay(config, 5, [] { return 0.0; }) == 8s);
    }
}

TEST_CASE("Backoff: strategy names round-trip") {
    for (const auto strategy :
         {BackoffStrategy::exponential, BackoffStrategy::linear, BackoffStrategy::fibonacci}) {
        const auto parsed = athena::parse_backoff_strategy(athena::to_string(strategy));
        REQUIRE(parsed.has_value());
        CHECK(*parsed == strategy);
    }

    const auto invalid = athena::parse_backoff_strategy("quadratic");
    REQUIRE_FALSE(invalid.has_value());
    CHECK(invalid.error().kind == "usage");
    CHECK(invalid.error().message.find("quadratic") != std::string::npos);
}

TEST_CASE("Backoff: config validation") {
    BackoffConfig config;

    SUBCASE("defaults are valid") {
        CHECK(athena::validate_backoff_config(config, "retry").has_value());
    }
    SUBCASE("cap below base is rejected") {
        config.base = 10s;
        config.cap = 5s;
        const auto result = athena::validate_backoff_config(config, "retry");
        REQUIRE_FALSE(result.has_value());
        CHECK(result.error().kind == "usage");
    }
    SUBCASE("jitter above 1 is rejected") {
        config.jitter_ratio = 1.5;
        CHECK_FALSE(athena::validate_backoff_config(config, "retry").has_value());
    }
}
