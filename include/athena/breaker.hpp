// Circuit breaker, one per provider: stops calls to a provider that fails or hangs, and lets
// a few probe calls through after a reset timeout to find out whether it has recovered.
//
//   closed -> open         failure_threshold consecutive failures, or the adaptive window
//                          trips
//   open -> half_open      the reset timeout has elapsed; the next admit() is the first probe
//   half_open -> closed    success_threshold probe successes
//   half_open -> open      a probe fails (or, in adaptive mode, is slow); the next reset
//                          timeout is longer
//
// Every call goes admit() → provider request → record(permit, outcome). The caller decides
// what the outcome is (see CallOutcome and outcome_for_http_status).
#pragma once

#include <athena/backoff.hpp>
#include <athena/clock.hpp>
#include <athena/error.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace athena {

enum class CallOutcome {
    success, // the provider returned a usable response
    failure, // timeout, connection error, HTTP 5xx (including 529), HTTP 429
    ignored, // the request's fault, not the provider's health: HTTP 400, 401, 403, 404, or a
             // response rejected by content validation. Counts as neither success nor failure,
             // but releases the permit (and its probe slot in half_open).
};

std::string_view to_string(CallOutcome outcome);

// Maps an HTTP status to an outcome. 2xx is a success, and 408, 429 and 5xx are failures.
// Other 4xx statuses are ignored. Anything else (1xx, 3xx, 0 for no response) is a failure.
CallOutcome outcome_for_http_status(int status);

enum class BreakerState { closed, open, half_open };

// "closed", "open", "half_open".
std::string_view to_string(BreakerState state);

struct BreakerConfig {
    // Consecutive failures that open a closed breaker. Ignored outcomes between two failures
    // neither count nor reset the count.
    std::uint32_t failure_threshold = 3;
    // Probe successes in half_open that close the breaker.
    std::uint32_t success_threshold = 2;
    // Probes admitted at the same time in half_open; further admits are rejected.
    std::uint32_t half_open_max_probes = 1;

    // Time the breaker stays open after its first opening. Each reopening from half_open
    // waits the next delay of `reset_backoff`, which starts from this value, up to
    // `max_reset_timeout`. A close resets the sequence.
    std::chrono::milliseconds reset_timeout{30'000};
    std::chrono::milliseconds max_reset_timeout{300'000};
    BackoffStrategy reset_backoff = BackoffStrategy::exponential;
    double reset_jitter_ratio = 0.2; // ±20 %; 0 gives exact timeouts

    // Adaptive mode: a time-based sliding window of completed calls in closed state.
    bool adaptive = true;
    std::chrono::milliseconds window{60'000};
    // Calls (completed in the window plus overdue in flight) needed before a rate can trip.
    std::uint32_t minimum_calls = 10;
    // A call is slow when its latency exceeds target_response × response_threshold.
    std::chrono::milliseconds target_response{1'000};
    double response_threshold = 2.0;
    // The breaker opens when a rate is strictly above its limit; 1.0 disables that check.
    double slow_call_rate_threshold = 0.5;
    double failure_rate_threshold = 0.5;

    // The latency above which a call counts as slow, in milliseconds.
    double slow_call_ms() const {
        return static_cast<double>(target_response.count()) * response_threshold;
    }
};

// Checks that thresholds are at least 1, durations positive, max_reset_timeout >=
// reset_timeout, ratios in [0, 1] and response_threshold > 0. Errors: kind "usage", naming
// the provider and the setting.
Result<void> validate_breaker_config(const BreakerConfig& config, std::string_view provider);

// Documented per-provider defaults: "deepseek" opens after 5 consecutive failures;
// "anthropic" (also "claude") targets 2000 ms × 2.5; "openai" targets 1500 ms × 3.0. Any other
// name gets BreakerConfig{}.
BreakerConfig default_breaker_config(std::string_view provider);

// Counts over the calls a SlidingWindow contains at one moment.
struct WindowSummary {
    std::uint32_t calls = 0;    // completed calls in the window, plus overdue ones in flight
    std::uint32_t failures = 0; // calls recorded as failure
    std::uint32_t slow = 0;     // calls over the slow threshold, plus overdue ones in flight
    std::uint32_t overdue_in_flight = 0;

    double failure_rate() const { return calls == 0 ? 0.0 : double(failures) / calls; }
    double slow_call_rate() const { return calls == 0 ? 0.0 : double(slow) / calls; }
};

// Completed calls of the last `length` of time, by completion time. A call completed at t
// belongs to the window while now - t < length. Memory is one small entry per call in the
// window. Not thread-safe: the breaker calls it under its lock.
class SlidingWindow {
public:
    explicit SlidingWindow(std::chrono::milliseconds length) : m_length(length) {}

    // Adds a call. Completion times must not decrease (they come from one monotonic clock).
    void record(SteadyTime completed_at, bool is_failure, bool is_slow);
    // Drops the calls that have left the window at `now`.
    void expire(SteadyTime now);
    void clear();
    // Counts the calls after expire(now); `overdue_in_flight` is added to calls and slow.
    WindowSummary summary(SteadyTime now, std::uint32_t overdue_in_flight = 0);

private:
    struct Call {
        SteadyTime completed_at;
        bool is_failure;
        bool is_slow;
    };

    std::chrono::milliseconds m_length;
    std::deque<Call> m_calls;
    std::uint32_t m_failures = 0;
    std::uint32_t m_slow = 0;
};

struct BreakerTransition {
    SteadyTime at;
    BreakerState from = BreakerState::closed;
    BreakerState to = BreakerState::closed;
    // "3 consecutive failures", "slow-call rate 60 % over 12 calls", "failure rate 55 % over
    // 20 calls", "reset timeout 30000 ms elapsed", "probe failed", "probe slow: 2600 ms",
    // "probe in flight for 2100 ms", "2 probe successes"
    std::string reason;
};

// Totals since the breaker was created.
struct BreakerCounters {
    std::uint64_t opened = 0;    // transitions to open, from closed or half_open
    std::uint64_t rejected = 0;  // admit() calls that returned breaker_open
    std::uint64_t probes = 0;    // calls admitted in half_open
    std::uint64_t closed = 0;    // transitions from half_open to closed
    std::uint64_t successes = 0; // outcomes recorded as success, in any state
    std::uint64_t failures = 0;  // outcomes recorded as failure, in any state
    std::uint64_t ignored = 0;   // outcomes recorded as ignored, and permits dropped unrecorded
};

// State of one breaker for the report and the debug log.
struct BreakerSnapshot {
    std::string provider;
    BreakerState state = BreakerState::closed;
    std::uint32_t consecutive_failures = 0;     // in closed state
    std::uint32_t probe_successes = 0;          // in half_open state
    std::uint32_t in_flight = 0;                // admitted calls of the current state not recorded
    std::chrono::milliseconds reset_timeout{0}; // of the current or most recent opening
    std::chrono::milliseconds retry_in{0};      // in open state: time left until a probe
    WindowSummary window;                       // in closed state with adaptive mode on
    BreakerCounters counters;
    // Most recent transitions, oldest first; at most k_max_recorded_transitions.
    std::vector<BreakerTransition> transitions;
    std::uint64_t transitions_total = 0;
};

inline constexpr std::size_t k_max_recorded_transitions = 256;

using BreakerTransitionListener =
    std::function<void(const std::string& provider, const BreakerTransition& transition)>;

namespace detail {
struct BreakerCore; // shared by a breaker and its permits; defined in breaker.cpp
} // namespace detail

// Admission of one call, returned by CircuitBreaker::admit(). Pass it to record() when the
// call ends. A permit destroyed without record() counts as an ignored outcome, so a lost
// permit never holds a half_open probe slot. Move-only; keeps the breaker's state alive.
class BreakerPermit {
public:
    BreakerPermit() = default;
    BreakerPermit(BreakerPermit&& other) noexcept;
    BreakerPermit& operator=(BreakerPermit&& other) noexcept;
    BreakerPermit(const BreakerPermit&) = delete;
    BreakerPermit& operator=(const BreakerPermit&) = delete;
    ~BreakerPermit();

    std::uint64_t id() const { return m_id; }    // unique per breaker, from 1
    bool is_probe() const { return m_is_probe; } // admitted in half_open
    SteadyTime started_at() const { return m_started_at; }
    bool is_valid() const { return m_core != nullptr; } // false once recorded or moved from

private:
    friend class CircuitBreaker;

    void release();

    std::shared_ptr<detail::BreakerCore> m_core;
    std::uint64_t m_id = 0;
    std::uint64_t m_epoch = 0;
    bool m_is_probe = false;
    SteadyTime m_started_at;
};

// Thread-safe: every operation runs under one mutex. That suffices because an operation holds
// it only for a few comparisons and window updates, with no I/O and no callbacks, and provider
// calls (network round trips, limited by the bulkheads) are too few to contend for it much.
// Transition listeners run after the mutex is released.
//
// When the adaptive check runs: in admit() while closed (before deciding), in record() after
// a closed-state outcome, and in evaluate(). Calls still in flight longer than the slow
// threshold count as slow calls, so a provider that hangs trips the breaker even though none
// of its calls ends. Call evaluate() from a timer (about once a second) so this also happens
// when no new call arrives. In half_open with adaptive mode on, a probe in flight longer than
// the slow threshold reopens the breaker in the same three places.
//
// Outcomes of calls admitted before the latest transition still update the counters but
// neither the window nor the state, so a call that started before the breaker opened
// cannot close it or reopen it.
class CircuitBreaker {
public:
    // `provider` names the breaker in messages and snapshots. The config should have passed
    // validate_breaker_config(); out-of-range values are clamped to the nearest valid value.
    CircuitBreaker(std::string provider, BreakerConfig config,
                   std::shared_ptr<Clock> clock = system_clock(),
                   RandomSource random = default_random_source());
    ~CircuitBreaker();
    CircuitBreaker(const CircuitBreaker&) = delete;
    CircuitBreaker& operator=(const CircuitBreaker&) = delete;

    // Admits a call or rejects it at once. Moves open to half_open when the reset timeout
    // has elapsed (this call is then the first probe). Errors: kind "breaker_open" while
    // open, with a message naming the provider, the reason it opened and the time until the
    // next probe; the same kind in half_open when every probe slot is in use.
    Result<BreakerPermit> admit();

    // Records the outcome of an admitted call and releases its permit. The latency is the
    // time from admit() to now on the breaker's clock. Does nothing for an invalid permit; a
    // permit of another breaker is released there as ignored.
    void record(BreakerPermit permit, CallOutcome outcome);

    // Runs the adaptive check now (see above). Returns the state afterwards.
    BreakerState evaluate();

    BreakerState state() const;
    BreakerSnapshot snapshot() const;
    const std::string& provider() const;
    // The config in use, after clamping.
    const BreakerConfig& config() const;

    // Sets the function called after each transition, for logging and metrics, replacing
    // the previous one. It runs on the thread whose call caused the transition, after the
    // breaker's lock is released, so it may call the breaker. It must not throw, because a
    // permit's destructor can cause a transition.
    void on_transition(BreakerTransitionListener listener);

private:
    std::shared_ptr<detail::BreakerCore> m_core;
};

} // namespace athena
