#include <athena/breaker.hpp>

#include <doctest/doctest.h>

#include <chrono>

using namespace std::chrono_literals;

TEST_CASE("SlidingWindow: counts calls by outcome") {
    athena::SlidingWindow window(60s);
    const athena::SteadyTime start{};

    window.record(start, false, false);
    window.record(start + 1s, true, false);
    window.record(start + 2s, true, true);
    window.record(start + 3s, false, true);
    const athena::WindowSummary summary = window.summary(start + 3s);

    CHECK(summary.calls == 4);
    CHECK(summary.failures == 2);
    CHECK(summary.slow == 2);
    CHECK(summary.overdue_in_flight == 0);
    CHECK(summary.failure_rate() == doctest::Approx(0.5));
    CHECK(summary.slow_call_rate() == doctest::Approx(0.5));
}

TEST_CASE("SlidingWindow: calls expire after the window length") {
    athena::SlidingWindow window(60s);
    const athena::SteadyTime start{};
    window.record(start, true, true);
    window.record(start + 10s, false, false);

    SUBCASE("a call stays until just before 60 s") {
        CHECK(window.summary(start + 59'999ms).calls == 2);
    }
    SUBCASE("a call leaves at 60 s") {
        const athena::WindowSummary summary = window.summary(start + 60s);
        CHECK(summary.calls == 1);
        CHECK(summary.failures == 0);
        CHECK(summary.slow == 0);
    }
    SUBCASE("every call leaves eventually") {
        const athena::WindowSummary summary = window.summary(start + 70s);
        CHECK(summary.calls == 0);
        CHECK(summary.failure_rate() == 0.0);
        CHECK(summary.slow_call_rate() == 0.0);
    }
}

TEST_CASE("SlidingWindow: overdue calls in flight count as slow") {
    athena::SlidingWindow window(60s);
    const athena::SteadyTime start{};
    window.record(start, false, false);
    window.record(start, true, false);

    const athena::WindowSummary summary = window.summary(start, 2);

    CHECK(summary.calls == 4);
    CHECK(summary.slow == 2);
    CHECK(summary.failures == 1);
    CHECK(summary.overdue_in_flight == 2);
    CHECK(summary.slow_call_rate() == doctest::Approx(0.5));
}

TEST_CASE("SlidingWindow: clear empties the window") {
    athena::SlidingWindow window(60s);
    const athena::SteadyTime start{};
    window.record(start, true, true);

    window.clear();
    const athena::WindowSummary summary = window.summary(start);

    CHECK(summary.calls == 0);
    CHECK(summary.failures == 0);
    CHECK(summary.slow == 0);
}
