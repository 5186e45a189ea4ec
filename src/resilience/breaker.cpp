#include <athena/breaker.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>

namespace athena {

namespace {

using Milliseconds = std::chrono::milliseconds;
using FractionalMilliseconds = std::chrono::duration<double, std::milli>;

// Transitions made while the lock was held; their listeners run once it is released.
using FiredTransitions = std::vector<BreakerTransition>;

std::string to_lower(std::string_view text) {
    std::string lower(text);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return lower;
}

double clamp_ratio(double ratio, double fallback) {
    if (!(ratio >= 0.0)) { // also NaN
        return fallback;
    }
    return std::min(ratio, 1.0);
}

// Keeps a config that skipped validation from stalling or tripping every call: each value
// out of range becomes the nearest valid one (NaN becomes the default).
BreakerConfig clamp_config(BreakerConfig config) {
    const BreakerConfig defaults;
    config.failure_threshold = std::max<std::uint32_t>(config.failure_threshold, 1);
    config.success_threshold = std::max<std::uint32_t>(config.success_threshold, 1);
    config.half_open_max_probes = std::max<std::uint32_t>(config.half_open_max_probes, 1);
    config.reset_timeout = std::max(config.reset_timeout, Milliseconds{1});
    config.max_reset_timeout = std::max(config.max_reset_timeout, config.reset_timeout);
    config.reset_jitter_ratio = clamp_ratio(config.reset_jitter_ratio, defaults.reset_jitter_ratio);
    config.window = std::max(config.window, Milliseconds{1});
    config.minimum_calls = std::max<std::uint32_t>(config.minimum_calls, 1);
    config.target_response = std::max(config.target_response, Milliseconds{1});
    if (!(config.response_threshold > 0.0)) {
        config.response_threshold = defaults.response_threshold;
    }
    config.slow_call_rate_threshold =
        clamp_ratio(config.slow_call_rate_threshold, defaults.slow_call_rate_threshold);
    config.failure_rate_threshold =
        clamp_ratio(config.failure_rate_threshold, defaults.failure_rate_threshold);
    return config;
}

Result<void> check_at_least_one(std::uint32_t value, std::string_view name,
                                std::string_view provider) {
    if (value < 1) {
        return fail("usage", fmt::format("circuit breaker {}: {} is {}, expected at least 1",
                                         provider, name, value));
    }
    return {};
}

Result<void> check_positive(Milliseconds value, std::string_view name, std::string_view provider) {
    if (value.count() <= 0) {
        return fail("usage", fmt::format("circuit breaker {}: {} is {} ms, expected more than 0",
                                         provider, name, value.count()));
    }
    return {};
}

Result<void> check_ratio(double value, std::string_view name, std::string_view provider) {
    if (!(value >= 0.0 && value <= 1.0)) {
        return fail("usage", fmt::format("circuit breaker {}: {} is {}, expected a value in "
                                         "[0, 1]",
                                         provider, name, value));
    }
    return {};
}

std::string format_percent(double rate) {
    return fmt::format("{:.0f} %", rate * 100.0);
}

} // namespace

namespace detail {

// State shared by a CircuitBreaker and its permits. All fields after `mutex` are guarded by
// it; the fields before it are set once at construction.
struct BreakerCore {
    BreakerCore(std::string provider_name, BreakerConfig breaker_config,
                std::shared_ptr<Clock> breaker_clock, RandomSource random_source)
        : provider(std::move(provider_name)), config(clamp_config(breaker_config)),
          clock(std::move(breaker_clock)), random(std::move(random_source)),
          slow_call_ms(config.slow_call_ms()), window(config.window) {}

    struct Admission {
        std::uint64_t id = 0;
        std::uint64_t epoch = 0;
        bool is_probe = false;
        SteadyTime started_at;
    };

    Result<Admission> admit(FiredTransitions& fired);
    void finish(const Admission& call, CallOutcome outcome, FiredTransitions& fired);
    void evaluate(SteadyTime now, FiredTransitions& fired);
    void fire(const FiredTransitions& fired);

    const std::string provider;
    const BreakerConfig config;
    const std::shared_ptr<Clock> clock;
    const RandomSource random;
    const double slow_call_ms;

    std::mutex mutex;
    BreakerState state = BreakerState::closed;
    // Incremented by every transition; a call admitted under an older epoch is stale.
    std::uint64_t epoch = 1;
    std::uint64_t next_permit_id = 1;
    // Start times of the calls admitted in the current epoch and not finished. Ids rise with
    // admission time, so the overdue calls are a prefix of the map.
    std::map<std::uint64_t, SteadyTime> in_flight;
    std::uint32_t consecutive_failures = 0;
    std::uint32_t probe_successes = 0;
    std::uint32_t probes_in_flight = 0;
    // Reopenings from half_open since the last close: the attempt number of the reset backoff.
    std::uint32_t reopenings = 0;
    Milliseconds reset_timeout{0};
    SteadyTime open_until;
    std::string open_reason;
    SlidingWindow window;
    BreakerCounters counters;
    std::deque<BreakerTransition> transitions;
    std::uint64_t transitions_total = 0;
    BreakerTransitionListener listener;

    void transition(BreakerState to, std::string reason, SteadyTime now, FiredTransitions& fired);
    void open(std::string reason, SteadyTime now, FiredTransitions& fired);
    void close(SteadyTime now, FiredTransitions& fired);
    void finish_closed_call(const Admission& call, CallOutcome outcome, SteadyTime now,
                            FiredTransitions& fired);
    void finish_probe(const Admission& call, CallOutcome outcome, SteadyTime now,
                      FiredTransitions& fired);
    std::uint32_t count_overdue(SteadyTime now) const;
    double elapsed_ms(SteadyTime since, SteadyTime now) const {
        return FractionalMilliseconds(now - since).count();
    }
};

// Every transition starts the new state afresh: in-flight calls become stale, and the
// window is emptied so that the calls that opened the breaker cannot trip it again right
// after it closes.
void BreakerCore::transition(BreakerState to, std::string reason, SteadyTime now,
                             FiredTransitions& fired) {
    BreakerTransition record{now, state, to, std::move(reason)};
    state = to;
    ++epoch;
    in_flight.clear();
    window.clear();
    consecutive_failures = 0;
    probe_successes = 0;
    probes_in_flight = 0;

    transitions.push_back(record);
    if (transitions.size() > k_max_recorded_transitions) {
        transitions.pop_front();
    }
    ++transitions_total;
    fired.push_back(std::move(record));
}

void BreakerCore::open(std::string reason, SteadyTime now, FiredTransitions& fired) {
    // The first opening after a close waits reset_timeout; each reopening from half_open
    // waits the next, longer delay of the backoff sequence.
    reopenings = state == BreakerState::half_open ? reopenings + 1 : 0;
    const BackoffConfig backoff{config.reset_backoff, config.reset_timeout,
                                config.max_reset_timeout, config.reset_jitter_ratio};
    reset_timeout = backoff_delay(backoff, reopenings, random);
    open_until = now + reset_timeout;
    open_reason = reason;
    ++counters.opened;
    transition(BreakerState::open, std::move(reason), now, fired);
}

void BreakerCore::close(SteadyTime now, FiredTransitions& fired) {
    reopenings = 0;
    ++counters.closed;
    transition(BreakerState::closed, fmt::format("{} probe successes", probe_successes), now,
               fired);
}

std::uint32_t BreakerCore::count_overdue(SteadyTime now) const {
    std::uint32_t overdue = 0;
    for (const auto& [id, started_at] : in_flight) {
        if (elapsed_ms(started_at, now) <= slow_call_ms) {
            break;
        }
        ++overdue;
    }
    return overdue;
}

void BreakerCore::evaluate(SteadyTime now, FiredTransitions& fired) {
    if (!config.adaptive) {
        return;
    }

    if (state == BreakerState::half_open) {
        if (!in_flight.empty()) {
            const double oldest_ms = elapsed_ms(in_flight.begin()->second, now);
            if (oldest_ms > slow_call_ms) {
                open(fmt::format("probe in flight for {:.0f} ms", oldest_ms), now, fired);
            }
        }
        return;
    }
    if (state != BreakerState::closed) {
        return;
    }

    const WindowSummary summary = window.summary(now, count_overdue(now));
    if (summary.calls < config.minimum_calls) {
        return;
    }
    if (summary.slow_call_rate() > config.slow_call_rate_threshold) {
        open(fmt::format("slow-call rate {} over {} calls",
                         format_percent(summary.slow_call_rate()), summary.calls),
             now, fired);
    } else if (summary.failure_rate() > config.failure_rate_threshold) {
        open(fmt::format("failure rate {} over {} calls", format_percent(summary.failure_rate()),
                         summary.calls),
             now, fired);
    }
}

Result<BreakerCore::Admission> BreakerCore::admit(FiredTransitions& fired) {
    std::lock_guard guard(mutex);
    const SteadyTime now = clock->now();

    evaluate(now, fired);
    if (state == BreakerState::open && now >= open_until) {
        transition(BreakerState::half_open,
                   fmt::format("reset timeout {} ms elapsed", reset_timeout.count()), now, fired);
    }

    if (state == BreakerState::open) {
        ++counters.rejected;
        const auto retry_in = std::chrono::ceil<Milliseconds>(open_until - now);
        return fail("breaker_open",
                    fmt::format("circuit breaker for provider {} is open ({}); next probe in "
                                "{} ms",
                                provider, open_reason, retry_in.count()));
    }
    if (state == BreakerState::half_open && probes_in_flight >= config.half_open_max_probes) {
        ++counters.rejected;
        return fail("breaker_open",
                    fmt::format("circuit breaker for provider {} is half-open and its {} probe "
                                "slot(s) are in use; retry when a probe finishes",
                                provider, config.half_open_max_probes));
    }

    const Admission admission{next_permit_id++, epoch, state == BreakerState::half_open, now};
    if (admission.is_probe) {
        ++probes_in_flight;
        ++counters.probes;
    }
    in_flight.emplace(admission.id, now);
    return admission;
}

void BreakerCore::finish_closed_call(const Admission& call, CallOutcome outcome, SteadyTime now,
                                     FiredTransitions& fired) {
    if (outcome != CallOutcome::ignored) {
        const bool is_failure = outcome == CallOutcome::failure;
        if (config.adaptive) {
            window.record(now, is_failure, elapsed_ms(call.started_at, now) > slow_call_ms);
        }
        consecutive_failures = is_failure ? consecutive_failures + 1 : 0;
        if (consecutive_failures >= config.failure_threshold) {
            open(fmt::format("{} consecutive failures", consecutive_failures), now, fired);
            return;
        }
    }
    evaluate(now, fired);
}

void BreakerCore::finish_probe(const Admission& call, CallOutcome outcome, SteadyTime now,
                               FiredTransitions& fired) {
    --probes_in_flight;
    const double latency_ms = elapsed_ms(call.started_at, now);
    if (outcome == CallOutcome::failure) {
        open("probe failed", now, fired);
    } else if (outcome == CallOutcome::success) {
        // A slow response means the provider has not recovered from what may have opened it.
        if (config.adaptive && latency_ms > slow_call_ms) {
            open(fmt::format("probe slow: {:.0f} ms", latency_ms), now, fired);
            return;
        }
        ++probe_successes;
        if (probe_successes >= config.success_threshold) {
            close(now, fired);
        }
    }
}

void BreakerCore::finish(const Admission& call, CallOutcome outcome, FiredTransitions& fired) {
    std::lock_guard guard(mutex);
    const SteadyTime now = clock->now();

    switch (outcome) {
    case CallOutcome::success:
        ++counters.successes;
        break;
    case CallOutcome::failure:
        ++counters.failures;
        break;
    case CallOutcome::ignored:
        ++counters.ignored;
        break;
    }
    if (call.epoch != epoch) {
        return;
    }

    in_flight.erase(call.id);
    if (state == BreakerState::closed) {
        finish_closed_call(call, outcome, now, fired);
    } else if (state == BreakerState::half_open && call.is_probe) {
        finish_probe(call, outcome, now, fired);
    }
}

void BreakerCore::fire(const FiredTransitions& fired) {
    if (fired.empty()) {
        return;
    }
    BreakerTransitionListener current;
    {
        std::lock_guard guard(mutex);
        current = listener;
    }
    if (current) {
        for (const auto& transition : fired) {
            current(provider, transition);
        }
    }
}

} // namespace detail

std::string_view to_string(CallOutcome outcome) {
    switch (outcome) {
    case CallOutcome::success:
        return "success";
    case CallOutcome::failure:
        return "failure";
    case CallOutcome::ignored:
        return "ignored";
    }
    return "failure";
}

CallOutcome outcome_for_http_status(int status) {
    if (status >= 200 && status < 300) {
        return CallOutcome::success;
    }
    if (status == 408 || status == 429 || (status >= 500 && status < 600)) {
        return CallOutcome::failure;
    }
    if (status >= 400 && status < 500) {
        return CallOutcome::ignored;
    }
    return CallOutcome::failure;
}

std::string_view to_string(BreakerState state) {
    switch (state) {
    case BreakerState::closed:
        return "closed";
    case BreakerState::open:
        return "open";
    case BreakerState::half_open:
        return "half_open";
    }
    return "closed";
}

Result<void> validate_breaker_config(const BreakerConfig& config, std::string_view provider) {
    const Result<void> checks[] = {
        check_at_least_one(config.failure_threshold, "failure_threshold", provider),
        check_at_least_one(config.success_threshold, "success_threshold", provider),
        check_at_least_one(config.half_open_max_probes, "half_open_max_probes", provider),
        check_at_least_one(config.minimum_calls, "minimum_calls", provider),
        check_positive(config.reset_timeout, "reset_timeout", provider),
        check_positive(config.window, "window", provider),
        check_positive(config.target_response, "target_response", provider),
        check_ratio(config.reset_jitter_ratio, "reset_jitter_ratio", provider),
        check_ratio(config.slow_call_rate_threshold, "slow_call_rate_threshold", provider),
        check_ratio(config.failure_rate_threshold, "failure_rate_threshold", provider),
    };
    for (const auto& check : checks) {
        if (!check) {
            return check;
        }
    }

    if (config.max_reset_timeout < config.reset_timeout) {
        return fail("usage", fmt::format("circuit breaker {}: max_reset_timeout {} ms is below "
                                         "reset_timeout {} ms",
                                         provider, config.max_reset_timeout.count(),
                                         config.reset_timeout.count()));
    }
    if (!(config.response_threshold > 0.0)) {
        return fail("usage", fmt::format("circuit breaker {}: response_threshold is {}, "
                                         "expected more than 0",
                                         provider, config.response_threshold));
    }
    return {};
}

BreakerConfig default_breaker_config(std::string_view provider) {
    const std::string name = to_lower(provider);
    BreakerConfig config;
    if (name == "deepseek") {
        config.failure_threshold = 5;
    } else if (name == "anthropic" || name == "claude") {
        config.target_response = Milliseconds{2'000};
        config.response_threshold = 2.5;
    } else if (name == "openai") {
        config.target_response = Milliseconds{1'500};
        config.response_threshold = 3.0;
    }
    return config;
}

BreakerPermit::BreakerPermit(BreakerPermit&& other) noexcept
    : m_core(std::move(other.m_core)), m_id(other.m_id), m_epoch(other.m_epoch),
      m_is_probe(other.m_is_probe), m_started_at(other.m_started_at) {}

BreakerPermit& BreakerPermit::operator=(BreakerPermit&& other) noexcept {
    if (this != &other) {
        release();
        m_core = std::move(other.m_core);
        m_id = other.m_id;
        m_epoch = other.m_epoch;
        m_is_probe = other.m_is_probe;
        m_started_at = other.m_started_at;
    }
    return *this;
}

BreakerPermit::~BreakerPermit() {
    release();
}

void BreakerPermit::release() {
    if (m_core == nullptr) {
        return;
    }
    const std::shared_ptr<detail::BreakerCore> core = std::move(m_core);
    FiredTransitions fired;
    core->finish({m_id, m_epoch, m_is_probe, m_started_at}, CallOutcome::ignored, fired);
    core->fire(fired);
}

CircuitBreaker::CircuitBreaker(std::string provider, BreakerConfig config,
                               std::shared_ptr<Clock> clock, RandomSource random)
    : m_core(std::make_shared<detail::BreakerCore>(std::move(provider), config,
                                                   clock ? std::move(clock) : system_clock(),
                                                   std::move(random))) {}

CircuitBreaker::~CircuitBreaker() = default;

Result<BreakerPermit> CircuitBreaker::admit() {
    FiredTransitions fired;
    auto admission = m_core->admit(fired);
    m_core->fire(fired);
    if (!admission) {
        return std::unexpected(std::move(admission.error()));
    }

    BreakerPermit permit;
    permit.m_core = m_core;
    permit.m_id = admission->id;
    permit.m_epoch = admission->epoch;
    permit.m_is_probe = admission->is_probe;
    permit.m_started_at = admission->started_at;
    return permit;
}

void CircuitBreaker::record(BreakerPermit permit, CallOutcome outcome) {
    if (permit.m_core != m_core) {
        return; // the permit's destructor releases it at its own breaker
    }
    const std::shared_ptr<detail::BreakerCore> core = std::move(permit.m_core);
    FiredTransitions fired;
    core->finish({permit.m_id, permit.m_epoch, permit.m_is_probe, permit.m_started_at}, outcome,
                 fired);
    core->fire(fired);
}

BreakerState CircuitBreaker::evaluate() {
    FiredTransitions fired;
    BreakerState state;
    {
        std::lock_guard guard(m_core->mutex);
        m_core->evaluate(m_core->clock->now(), fired);
        state = m_core->state;
    }
    m_core->fire(fired);
    return state;
}

BreakerState CircuitBreaker::state() const {
    std::lock_guard guard(m_core->mutex);
    return m_core->state;
}

BreakerSnapshot CircuitBreaker::snapshot() const {
    detail::BreakerCore& core = *m_core;
    std::lock_guard guard(core.mutex);
    const SteadyTime now = core.clock->now();

    BreakerSnapshot snapshot;
    snapshot.provider = core.provider;
    snapshot.state = core.state;
    snapshot.consecutive_failures = core.consecutive_failures;
    snapshot.probe_successes = core.probe_successes;
    snapshot.in_flight = static_cast<std::uint32_t>(core.in_flight.size());
    snapshot.reset_timeout = core.reset_timeout;
    if (core.state == BreakerState::open && core.open_until > now) {
        snapshot.retry_in = std::chrono::ceil<Milliseconds>(core.open_until - now);
    }
    if (core.state == BreakerState::closed && core.config.adaptive) {
        snapshot.window = core.window.summary(now, core.count_overdue(now));
    }
    snapshot.counters = core.counters;
    snapshot.transitions.assign(core.transitions.begin(), core.transitions.end());
    snapshot.transitions_total = core.transitions_total;
    return snapshot;
}

const std::string& CircuitBreaker::provider() const {
    return m_core->provider;
}

const BreakerConfig& CircuitBreaker::config() const {
    return m_core->config;
}

void CircuitBreaker::on_transition(BreakerTransitionListener listener) {
    std::lock_guard guard(m_core->mutex);
    m_core->listener = std::move(listener);
}

} // namespace athena
