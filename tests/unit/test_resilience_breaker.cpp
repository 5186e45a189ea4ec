#include <athena/breaker.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using athena::BreakerConfig;
using athena::BreakerState;
using athena::CallOutcome;
using athena::CircuitBreaker;
using athena::ManualClock;

namespace {

// Exact reset timeouts and no adaptive window: the plain state machine.
BreakerConfig plain_config() {
    BreakerConfig config;
    config.reset_jitter_ratio = 0.0;
    config.adaptive = false;
    return config;
}

BreakerConfig adaptive_config() {
    BreakerConfig config;
    config.reset_jitter_ratio = 0.0;
    config.adaptive = true;
    return config;
}

struct Harness {
    explicit Harness(BreakerConfig config)
        : clock(std::make_shared<ManualClock>()), breaker("testprovider", config, clock) {}

    // Admits a call, lets `latency` pass and records `outcome`.
    void call(CallOutcome outcome, std::chrono::milliseconds latency = 10ms) {
        auto permit = breaker.admit();
        REQUIRE(permit.has_value());
        clock->advance(latency);
        breaker.record(std::move(*permit), outcome);
    }

    void calls(int count, CallOutcome outcome, std::chrono::milliseconds latency = 10ms) {
        for (int i = 0; i < count; ++i) {
            call(outcome, latency);
        }
    }

    // Opens the breaker with consecutive failures (plain or adaptive config alike).
    void trip() {
        calls(static_cast<int>(breaker.config().failure_threshold), CallOutcome::failure);
        REQUIRE(breaker.state() == BreakerState::open);
    }

    std::string last_reason() const {
        const auto snapshot = breaker.snapshot();
        return snapshot.transitions.empty() ? "" : snapshot.transitions.back().reason;
    }

    std::shared_ptr<ManualClock> clock;
    CircuitBreaker breaker;
};

} // namespace

TEST_CASE("BreakerConfig: documented defaults") {
    const BreakerConfig config;

    CHECK(config.failure_threshold == 3);
    CHECK(config.success_threshold == 2);
    CHECK(config.half_open_max_probes == 1);
    CHECK(config.reset_timeout == 30s);
    CHECK(config.max_reset_timeout == 5min);
    CHECK(config.reset_backoff == athena::BackoffStrategy::exponential);
    CHECK(config.reset_jitter_ratio == doctest::Approx(0.2));
    CHECK(config.adaptive);
    CHECK(config.window == 60s);
    CHECK(config.minimum_calls == 10);
    CHECK(config.target_response == 1000ms);
    CHECK(config.response_threshold == doctest::Approx(2.0));
    CHECK(config.slow_call_rate_threshold == doctest::Approx(0.5));
    CHECK(config.failure_rate_threshold == doctest::Approx(0.5));
    CHECK(config.slow_call_ms() == doctest::Approx(2000.0));
}

TEST_CASE("BreakerConfig: per-provider defaults") {
    SUBCASE("deepseek tolerates 5 failures") {
        const BreakerConfig config = athena::default_breaker_config("deepseek");
        CHECK(config.failure_threshold == 5);
        CHECK(config.target_response == 1000ms);
    }
    SUBCASE("anthropic and claude target 2000 ms x 2.5") {
        for (const char* name : {"anthropic", "claude", "Anthropic"}) {
            const BreakerConfig config = athena::default_breaker_config(name);
            CHECK(config.target_response == 2000ms);
            CHECK(config.response_threshold == doctest::Approx(2.5));
            CHECK(config.failure_threshold == 3);
        }
    }
    SUBCASE("openai targets 1500 ms x 3.0") {
        const BreakerConfig config = athena::default_breaker_config("openai");
        CHECK(config.target_response == 1500ms);
        CHECK(config.response_threshold == doctest::Approx(3.0));
    }
    SUBCASE("unknown provider gets the plain defaults") {
        const BreakerConfig config = athena::default_breaker_config("builtin");
        CHECK(config.failure_threshold == 3);
        CHECK(config.target_response == 1000ms);
        CHECK(config.response_threshold == doctest::Approx(2.0));
    }
}

TEST_CASE("BreakerConfig: validation") {
    BreakerConfig config;

    SUBCASE("defaults are valid") {
        CHECK(athena::validate_breaker_config(config, "openai").has_value());
    }
    SUBCASE("zero failure threshold is rejected") {
        config.failure_threshold = 0;
        const auto result = athena::validate_breaker_config(config, "openai");
        REQUIRE_FALSE(result.has_value());
        CHECK(result.error().kind == "usage");
        CHECK(result.error().message.find("failure_threshold") != std::string::npos);
        CHECK(result.error().message.find("openai") != std::string::npos);
    }
    SUBCASE("max reset timeout below reset timeout is rejected") {
        config.max_reset_timeout = 10s;
        CHECK_FALSE(athena::validate_breaker_config(config, "openai").has_value());
    }
    SUBCASE("rate above 1 is rejected") {
        config.slow_call_rate_threshold = 1.5;
        CHECK_FALSE(athena::validate_breaker_config(config, "openai").has_value());
    }
    SUBCASE("non-positive response threshold is rejected") {
        config.response_threshold = 0.0;
        CHECK_FALSE(athena::validate_breaker_config(config, "openai").has_value());
    }
}

TEST_CASE("CallOutcome: HTTP status mapping") {
    CHECK(athena::outcome_for_http_status(200) == CallOutcome::success);
    CHECK(athena::outcome_for_http_status(204) == CallOutcome::success);
    for (const int status : {408, 429, 500, 502, 503, 504, 529}) {
        CAPTURE(status);
        CHECK(athena::outcome_for_http_status(status) == CallOutcome::failure);
    }
    for (const int status : {400, 401, 403, 404, 413, 422}) {
        CAPTURE(status);
        CHECK(athena::outcome_for_http_status(status) == CallOutcome::ignored);
    }
    CHECK(athena::outcome_for_http_status(0) == CallOutcome::failure);
    CHECK(athena::outcome_for_http_status(302) == CallOutcome::failure);
}

TEST_CASE("CircuitBreaker: consecutive failures open it") {
    Harness harness(plain_config());

    SUBCASE("2 failures stay closed") {
        harness.calls(2, CallOutcome::failure);
        CHECK(harness.breaker.state() == BreakerState::closed);
        CHECK(harness.breaker.snapshot().consecutive_failures == 2);
    }
    SUBCASE("3 failures open") {
        harness.calls(3, CallOutcome::failure);
        const auto snapshot = harness.breaker.snapshot();
        CHECK(snapshot.state == BreakerState::open);
        CHECK(snapshot.counters.opened == 1);
        CHECK(snapshot.counters.failures == 3);
        REQUIRE(snapshot.transitions.size() == 1);
        CHECK(snapshot.transitions[0].from == BreakerState::closed);
        CHECK(snapshot.transitions[0].to == BreakerState::open);
        CHECK(snapshot.transitions[0].reason == "3 consecutive failures");
        CHECK(snapshot.transitions[0].at == harness.clock->now());
    }
    SUBCASE("a success resets the count") {
        harness.calls(2, CallOutcome::failure);
        harness.call(CallOutcome::success);
        harness.calls(2, CallOutcome::failure);
        CHECK(harness.breaker.state() == BreakerState::closed);
        harness.call(CallOutcome::failure);
        CHECK(harness.breaker.state() == BreakerState::open);
    }
    SUBCASE("ignored outcomes neither count nor reset") {
        harness.calls(2, CallOutcome::failure);
        harness.calls(5, CallOutcome::ignored);
        CHECK(harness.breaker.state() == BreakerState::closed);
        CHECK(harness.breaker.snapshot().consecutive_failures == 2);
        harness.call(CallOutcome::failure);
        CHECK(harness.breaker.state() == BreakerState::open);
        CHECK(harness.breaker.snapshot().counters.ignored == 5);
    }
    SUBCASE("configured threshold applies") {
        Harness deepseek(athena::default_breaker_config("deepseek"));
        deepseek.calls(4, CallOutcome::failure);
        CHECK(deepseek.breaker.state() == BreakerState::closed);
        deepseek.call(CallOutcome::failure);
        CHECK(deepseek.breaker.state() == BreakerState::open);
    }
}

TEST_CASE("CircuitBreaker: open rejects until the reset timeout") {
    Harness harness(plain_config());
    harness.trip();

    SUBCASE("admit is rejected at once") {
        harness.clock->advance(29'999ms);
        const auto rejected = harness.breaker.admit();
        REQUIRE_FALSE(rejected.has_value());
        CHECK(rejected.error().kind == "breaker_open");
        CHECK(rejected.error().message.find("testprovider") != std::string::npos);
        CHECK(rejected.error().message.find("3 consecutive failures") != std::string::npos);
        CHECK(rejected.error().message.find("1 ms") != std::string::npos);
        CHECK(harness.breaker.snapshot().counters.rejected == 1);
        CHECK(harness.breaker.state() == BreakerState::open);
    }
    SUBCASE("snapshot reports the time left") {
        harness.clock->advance(10s);
        const auto snapshot = harness.breaker.snapshot();
        CHECK(snapshot.reset_timeout == 30s);
        CHECK(snapshot.retry_in == 20s);
    }
    SUBCASE("next admit after the timeout is a probe") {
        harness.clock->advance(30s);
        const auto probe = harness.breaker.admit();
        REQUIRE(probe.has_value());
        CHECK(probe->is_probe());
        const auto snapshot = harness.breaker.snapshot();
        CHECK(snapshot.state == BreakerState::half_open);
        CHECK(snapshot.counters.probes == 1);
        CHECK(snapshot.transitions.back().from == BreakerState::open);
        CHECK(snapshot.transitions.back().reason == "reset timeout 30000 ms elapsed");
    }
    SUBCASE("evaluate alone does not leave open") {
        harness.clock->advance(1h);
        CHECK(harness.breaker.evaluate() == BreakerState::open);
    }
}

TEST_CASE("CircuitBreaker: half_open probe limit") {
    SUBCASE("second concurrent admit is rejected") {
        Harness harness(plain_config());
        harness.trip();
        harness.clock->advance(30s);

        auto first = harness.breaker.admit();
        const auto second = harness.breaker.admit();

        REQUIRE(first.has_value());
        REQUIRE_FALSE(second.has_value());
        CHECK(second.error().kind == "breaker_open");
        CHECK(second.error().message.find("half-open") != std::string::npos);

        harness.breaker.record(std::move(*first), CallOutcome::success);
        const auto third = harness.breaker.admit();
        CHECK(third.has_value());
    }
    SUBCASE("configured probe count is admitted") {
        BreakerConfig config = plain_config();
        config.half_open_max_probes = 2;
        Harness harness(config);
        harness.trip();
        harness.clock->advance(30s);

        const auto first = harness.breaker.admit();
        const auto second = harness.breaker.admit();
        const auto third = harness.breaker.admit();

        CHECK(first.has_value());
        CHECK(second.has_value());
        CHECK_FALSE(third.has_value());
        CHECK(harness.breaker.snapshot().counters.probes == 2);
    }
}

TEST_CASE("CircuitBreaker: probe outcomes in half_open") {
    Harness harness(plain_config());
    harness.trip();
    harness.clock->advance(30s);

    SUBCASE("one success stays half_open") {
        harness.call(CallOutcome::success);
        CHECK(harness.breaker.state() == BreakerState::half_open);
        CHECK(harness.breaker.snapshot().probe_successes == 1);
    }
    SUBCASE("two successes close it") {
        harness.calls(2, CallOutcome::success);
        const auto snapshot = harness.breaker.snapshot();
        CHECK(snapshot.state == BreakerState::closed);
        CHECK(snapshot.counters.closed == 1);
        CHECK(snapshot.transitions.back().from == BreakerState::half_open);
        CHECK(snapshot.transitions.back().reason == "2 probe successes");
    }
    SUBCASE("a failure reopens it") {
        harness.call(CallOutcome::success);
        harness.call(CallOutcome::failure);
        const auto snapshot = harness.breaker.snapshot();
        CHECK(snapshot.state == BreakerState::open);
        CHECK(snapshot.counters.opened == 2);
        CHECK(snapshot.transitions.back().from == BreakerState::half_open);
        CHECK(snapshot.transitions.back().reason == "probe failed");
    }
    SUBCASE("an ignored probe releases its slot") {
        harness.call(CallOutcome::ignored);
        CHECK(harness.breaker.state() == BreakerState::half_open);
        CHECK(harness.breaker.snapshot().probe_successes == 0);
        CHECK(harness.breaker.admit().has_value());
    }
    SUBCASE("a dropped permit releases its slot") {
        { const auto probe = harness.breaker.admit(); }
        const auto snapshot = harness.breaker.snapshot();
        CHECK(snapshot.counters.ignored == 1);
        CHECK(snapshot.in_flight == 0);
        CHECK(harness.breaker.admit().has_value());
    }
}

TEST_CASE("CircuitBreaker: reopen timeouts follow the backoff") {
    // Opens, then fails the probe of each reset timeout, and collects the timeouts.
    auto reset_timeouts = [](BreakerConfig config, int openings) {
        Harness harness(config);
        harness.trip();
        std::vector<std::int64_t> timeouts_ms;
        for (int i = 0; i < openings; ++i) {
            const auto timeout = harness.breaker.snapshot().reset_timeout;
            timeouts_ms.push_back(timeout.count());
            harness.clock->advance(timeout);
            harness.call(CallOutcome::failure);
        }
        return timeouts_ms;
    };
    BreakerConfig config = plain_config();

    SUBCASE("exponential by default, capped at 5 min") {
        CHECK(reset_timeouts(config, 7) == std::vector<std::int64_t>{30'000, 60'000, 120'000,
                                                                     240'000, 300'000, 300'000,
                                                                     300'000});
    }
    SUBCASE("linear") {
        config.reset_backoff = athena::BackoffStrategy::linear;
        CHECK(reset_timeouts(config, 4) ==
              std::vector<std::int64_t>{30'000, 60'000, 90'000, 120'000});
    }
    SUBCASE("fibonacci") {
        config.reset_backoff = athena::BackoffStrategy::fibonacci;
        CHECK(reset_timeouts(config, 6) ==
              std::vector<std::int64_t>{30'000, 30'000, 60'000, 90'000, 150'000, 240'000});
    }
    SUBCASE("custom cap") {
        config.max_reset_timeout = 45s;
        CHECK(reset_timeouts(config, 3) == std::vector<std::int64_t>{30'000, 45'000, 45'000});
    }
}

TEST_CASE("CircuitBreaker: clean close resets the backoff") {
    Harness harness(plain_config());
    harness.trip();
    harness.clock->advance(30s);
    harness.call(CallOutcome::failure);
    REQUIRE(harness.breaker.snapshot().reset_timeout == 60s);

    harness.clock->advance(60s);
    harness.calls(2, CallOutcome::success);
    REQUIRE(harness.breaker.state() == BreakerState::closed);
    harness.trip();

    CHECK(harness.breaker.snapshot().reset_timeout == 30s);
}

TEST_CASE("CircuitBreaker: reset timeout jitter") {
    BreakerConfig config = plain_config();
    config.reset_jitter_ratio = 0.2;

    SUBCASE("lowest draw gives 80 percent") {
        const auto clock = std::make_shared<ManualClock>();
        CircuitBreaker breaker("jittered", config, clock, [] { return 0.0; });
        for (int i = 0; i < 3; ++i) {
            auto permit = breaker.admit();
            REQUIRE(permit.has_value());
            breaker.record(std::move(*permit), CallOutcome::failure);
        }
        CHECK(breaker.snapshot().reset_timeout == 24s);
    }
    SUBCASE("real draws stay within 20 percent") {
        for (int run = 0; run < 50; ++run) {
            Harness harness(config);
            harness.trip();
            const auto timeout = harness.breaker.snapshot().reset_timeout;
            CHECK(timeout >= 24s);
            CHECK(timeout <= 36s);
        }
    }
}

TEST_CASE("CircuitBreaker: stale calls do not change state") {
    Harness harness(plain_config());
    auto early = harness.breaker.admit();
    REQUIRE(early.has_value());
    harness.trip();

    SUBCASE("success of a call admitted before opening") {
        harness.breaker.record(std::move(*early), CallOutcome::success);
        const auto snapshot = harness.breaker.snapshot();
        CHECK(snapshot.state == BreakerState::open);
        CHECK(snapshot.counters.successes == 1);
    }
    SUBCASE("failure of an old call in half_open") {
        harness.clock->advance(30s);
        auto probe = harness.breaker.admit();
        REQUIRE(probe.has_value());
        harness.breaker.record(std::move(*early), CallOutcome::failure);
        CHECK(harness.breaker.state() == BreakerState::half_open);
        harness.breaker.record(std::move(*probe), CallOutcome::success);
        CHECK(harness.breaker.snapshot().probe_successes == 1);
    }
}

TEST_CASE("CircuitBreaker: adaptive minimum volume") {
    Harness harness(adaptive_config());

    SUBCASE("9 slow calls do not trip") {
        harness.calls(9, CallOutcome::success, 2001ms);
        const auto snapshot = harness.breaker.snapshot();
        CHECK(snapshot.state == BreakerState::closed);
        CHECK(snapshot.window.calls == 9);
        CHECK(snapshot.window.slow == 9);
    }
    SUBCASE("10 slow calls trip") {
        harness.calls(10, CallOutcome::success, 2001ms);
        CHECK(harness.breaker.state() == BreakerState::open);
        CHECK(harness.last_reason() == "slow-call rate 100 % over 10 calls");
    }
    SUBCASE("a call at exactly the threshold is not slow") {
        harness.calls(10, CallOutcome::success, 2000ms);
        CHECK(harness.breaker.state() == BreakerState::closed);
        CHECK(harness.breaker.snapshot().window.slow == 0);
    }
}

TEST_CASE("CircuitBreaker: adaptive rate limits") {
    Harness harness(adaptive_config());

    SUBCASE("slow-call rate at the limit stays closed, above it opens") {
        harness.calls(5, CallOutcome::success, 10ms);
        harness.calls(5, CallOutcome::success, 2500ms);
        CHECK(harness.breaker.state() == BreakerState::closed);
        harness.call(CallOutcome::success, 2500ms);
        CHECK(harness.breaker.state() == BreakerState::open);
        CHECK(harness.last_reason() == "slow-call rate 55 % over 11 calls");
    }
    SUBCASE("failure rate at the limit stays closed, above it opens") {
        for (int i = 0; i < 5; ++i) {
            harness.call(CallOutcome::success);
            harness.call(CallOutcome::failure);
        }
        CHECK(harness.breaker.state() == BreakerState::closed);
        harness.call(CallOutcome::failure);
        CHECK(harness.breaker.state() == BreakerState::open);
        CHECK(harness.last_reason() == "failure rate 55 % over 11 calls");
    }
    SUBCASE("configured slow-call limit applies") {
        BreakerConfig config = adaptive_config();
        config.slow_call_rate_threshold = 0.2;
        Harness strict(config);
        strict.calls(8, CallOutcome::success, 10ms);
        strict.calls(2, CallOutcome::success, 2500ms);
        CHECK(strict.breaker.state() == BreakerState::closed);
        strict.call(CallOutcome::success, 2500ms);
        CHECK(strict.breaker.state() == BreakerState::open);
    }
    SUBCASE("ignored outcomes stay out of the window") {
        harness.calls(12, CallOutcome::ignored, 2500ms);
        const auto snapshot = harness.breaker.snapshot();
        CHECK(snapshot.state == BreakerState::closed);
        CHECK(snapshot.window.calls == 0);
        CHECK(snapshot.counters.ignored == 12);
    }
    SUBCASE("adaptive mode off ignores slow calls") {
        Harness plain(plain_config());
        plain.calls(20, CallOutcome::success, 5000ms);
        CHECK(plain.breaker.state() == BreakerState::closed);
    }
    SUBCASE("per-provider slow threshold applies") {
        BreakerConfig config = athena::default_breaker_config("anthropic");
        config.reset_jitter_ratio = 0.0;
        Harness below(config);
        Harness above(config);
        below.calls(10, CallOutcome::success, 4999ms);
        above.calls(10, CallOutcome::success, 5001ms);
        CHECK(below.breaker.state() == BreakerState::closed);
        CHECK(above.breaker.state() == BreakerState::open);
    }
}

TEST_CASE("CircuitBreaker: window expiry") {
    Harness harness(adaptive_config());
    harness.calls(9, CallOutcome::success, 2001ms);

    SUBCASE("calls older than 60 s drop out") {
        harness.clock->advance(60s);
        harness.call(CallOutcome::success, 2001ms);
        const auto snapshot = harness.breaker.snapshot();
        CHECK(snapshot.state == BreakerState::closed);
        CHECK(snapshot.window.calls == 1);
    }
    SUBCASE("calls inside 60 s still count") {
        harness.clock->advance(30s);
        harness.call(CallOutcome::success, 2001ms);
        CHECK(harness.breaker.state() == BreakerState::open);
    }
}

TEST_CASE("CircuitBreaker: overdue calls in flight trip it") {
    Harness harness(adaptive_config());
    std::vector<athena::BreakerPermit> hanging;
    auto admit_hanging = [&](int count) {
        for (int i = 0; i < count; ++i) {
            auto permit = harness.breaker.admit();
            REQUIRE(permit.has_value());
            hanging.push_back(std::move(*permit));
        }
    };

    SUBCASE("evaluate opens once they pass the slow threshold") {
        admit_hanging(10);
        harness.clock->advance(2000ms);
        CHECK(harness.breaker.evaluate() == BreakerState::closed);
        harness.clock->advance(1ms);
        CHECK(harness.breaker.evaluate() == BreakerState::open);
        CHECK(harness.last_reason() == "slow-call rate 100 % over 10 calls");
    }
    SUBCASE("the next admit notices them") {
        admit_hanging(10);
        harness.clock->advance(2001ms);
        const auto next = harness.breaker.admit();
        REQUIRE_FALSE(next.has_value());
        CHECK(next.error().kind == "breaker_open");
    }
    SUBCASE("9 overdue calls stay under the minimum volume") {
        admit_hanging(9);
        harness.clock->advance(10s);
        CHECK(harness.breaker.evaluate() == BreakerState::closed);
        CHECK(harness.breaker.snapshot().window.overdue_in_flight == 9);
    }
    SUBCASE("overdue calls add to completed ones") {
        harness.calls(5, CallOutcome::success, 10ms);
        admit_hanging(6);
        harness.clock->advance(2001ms);
        CHECK(harness.breaker.evaluate() == BreakerState::open);
        CHECK(harness.last_reason() == "slow-call rate 55 % over 11 calls");
    }
    SUBCASE("hanging calls that end later leave it open") {
        admit_hanging(10);
        harness.clock->advance(2001ms);
        REQUIRE(harness.breaker.evaluate() == BreakerState::open);
        for (auto& permit : hanging) {
            harness.breaker.record(std::move(permit), CallOutcome::failure);
        }
        const auto snapshot = harness.breaker.snapshot();
        CHECK(snapshot.state == BreakerState::open);
        CHECK(snapshot.counters.failures == 10);
        CHECK(snapshot.counters.opened == 1);
    }
}

TEST_CASE("CircuitBreaker: adaptive probes in half_open") {
    Harness harness(adaptive_config());
    harness.trip();
    harness.clock->advance(30s);

    SUBCASE("a slow successful probe reopens") {
        harness.call(CallOutcome::success, 2001ms);
        CHECK(harness.breaker.state() == BreakerState::open);
        CHECK(harness.last_reason() == "probe slow: 2001 ms");
    }
    SUBCASE("a probe in flight too long reopens") {
        auto probe = harness.breaker.admit();
        REQUIRE(probe.has_value());
        harness.clock->advance(2001ms);
        CHECK(harness.breaker.evaluate() == BreakerState::open);
        CHECK(harness.last_reason() == "probe in flight for 2001 ms");
        CHECK(harness.breaker.snapshot().reset_timeout == 60s);
    }
    SUBCASE("fast probes close and empty the window") {
        harness.calls(2, CallOutcome::success, 100ms);
        const auto snapshot = harness.breaker.snapshot();
        CHECK(snapshot.state == BreakerState::closed);
        CHECK(snapshot.window.calls == 0);
    }
}

TEST_CASE("CircuitBreaker: transition listener") {
    Harness harness(plain_config());
    std::vector<std::string> seen;
    harness.breaker.on_transition(
        [&seen](const std::string& provider, const athena::BreakerTransition& transition) {
            seen.push_back(provider + " " + std::string(athena::to_string(transition.from)) + "->" +
                           std::string(athena::to_string(transition.to)));
        });

    harness.trip();
    harness.clock->advance(30s);
    harness.calls(2, CallOutcome::success);

    CHECK(seen == std::vector<std::string>{"testprovider closed->open",
                                           "testprovider open->half_open",
                                           "testprovider half_open->closed"});
    CHECK(harness.breaker.snapshot().transitions_total == 3);
}

TEST_CASE("CircuitBreaker: transition history is bounded") {
    BreakerConfig config = plain_config();
    config.failure_threshold = 1;
    config.success_threshold = 1;
    Harness harness(config);

    for (std::size_t i = 0; i < athena::k_max_recorded_transitions; ++i) {
        harness.call(CallOutcome::failure);
        harness.clock->advance(harness.breaker.snapshot().reset_timeout);
        harness.call(CallOutcome::success);
    }
    const auto snapshot = harness.breaker.snapshot();

    CHECK(snapshot.transitions_total == 3 * athena::k_max_recorded_transitions);
    CHECK(snapshot.transitions.size() == athena::k_max_recorded_transitions);
    CHECK(snapshot.transitions.back().to == BreakerState::closed);
}

TEST_CASE("CircuitBreaker: concurrent admit and record") {
    BreakerConfig config = adaptive_config();
    config.half_open_max_probes = 2;
    config.reset_timeout = 5ms;
    config.max_reset_timeout = 20ms;
    const auto clock = std::make_shared<ManualClock>();
    CircuitBreaker breaker("concurrent", config, clock);
    constexpr int k_threads = 4;
    constexpr int k_iterations = 3000;
    std::atomic<std::uint64_t> admitted{0};
    std::atomic<std::uint64_t> rejected{0};
    std::atomic<std::uint64_t> probes_seen{0};
    std::atomic<int> probes_held{0};
    std::atomic<int> max_probes_held{0};
    std::atomic<bool> stop_clock{false};
    std::atomic<std::uint64_t> opened_from_closed{0};
    std::atomic<std::uint64_t> reopened{0};
    breaker.on_transition([&](const std::string&, const athena::BreakerTransition& transition) {
        if (transition.to == BreakerState::open) {
            ++(transition.from == BreakerState::closed ? opened_from_closed : reopened);
        }
    });

    std::thread ticker([&] {
        while (!stop_clock.load()) {
            clock->advance(1ms);
            breaker.evaluate();
            std::this_thread::yield();
        }
    });
    std::vector<std::thread> workers;
    for (int t = 0; t < k_threads; ++t) {
        workers.emplace_back([&, t] {
            for (int i = 0; i < k_iterations; ++i) {
                auto permit = breaker.admit();
                if (!permit) {
                    ++rejected;
                    continue;
                }
                ++admitted;
                if (permit->is_probe()) {
                    ++probes_seen;
                    const int now_held = ++probes_held;
                    int expected = max_probes_held.load();
                    while (now_held > expected &&
                           !max_probes_held.compare_exchange_weak(expected, now_held)) {
                    }
                    --probes_held;
                }
                const auto outcome = static_cast<CallOutcome>((i + t) % 3);
                breaker.record(std::move(*permit), outcome);
            }
        });
    }
    for (auto& worker : workers) {
        worker.join();
    }
    stop_clock = true;
    ticker.join();
    const auto snapshot = breaker.snapshot();

    CHECK(admitted + rejected == k_threads * k_iterations);
    CHECK(snapshot.counters.rejected == rejected);
    CHECK(snapshot.counters.successes + snapshot.counters.failures + snapshot.counters.ignored ==
          admitted);
    CHECK(snapshot.counters.probes == probes_seen);
    CHECK(max_probes_held <= 2);
    CHECK(snapshot.in_flight == 0);
    // Every close ends one opening from closed; only the current one may still be open.
    const std::uint64_t still_open = snapshot.state == BreakerState::closed ? 0 : 1;
    CHECK(opened_from_closed == snapshot.counters.closed + still_open);
    CHECK(snapshot.counters.opened == opened_from_closed + reopened);
    CHECK(snapshot.transitions_total >= snapshot.counters.opened + snapshot.counters.closed);
}
