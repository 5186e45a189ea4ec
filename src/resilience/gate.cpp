#include <athena/resilience_gate.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <set>

namespace athena {

using Milliseconds = std::chrono::milliseconds;
using Admission = Result<std::unique_ptr<CallPermit>>;
using Json = nlohmann::ordered_json;

namespace detail {

// One provider's guards. The pointers are set at construction and never change, and a null
// one means that part is off; `in_flight` is guarded by GateCore::mutex.
struct ProviderGuard {
    std::string provider;
    std::unique_ptr<CircuitBreaker> breaker;
    std::unique_ptr<Bulkhead> bulkhead;
    // The time in flight after which the adaptive breaker counts a call as slow; empty when
    // the breaker is off or not adaptive.
    std::optional<Milliseconds> slow_after;
    // Start times of the calls admitted by the breaker and not yet recorded, by call id. Ids
    // rise with start time, so the calls that became slow first come first.
    std::map<std::uint64_t, SteadyTime> in_flight;
};

// Returns both slots. Returning a slot hands it to the oldest queued admission, which may be
// rejected and return its slots in turn, so a long queue would recurse once per waiter.
// Instead, the outermost call on a thread returns the slots one by one, and nested calls
// only add theirs to its list.
void release_slots(BulkheadPermit global_slot, BulkheadPermit provider_slot) {
    thread_local std::deque<BulkheadPermit>* t_pending = nullptr;
    if (t_pending != nullptr) {
        t_pending->push_back(std::move(global_slot));
        t_pending->push_back(std::move(provider_slot));
        return;
    }
    std::deque<BulkheadPermit> pending;
    pending.push_back(std::move(global_slot));
    pending.push_back(std::move(provider_slot));
    t_pending = &pending;
    while (!pending.empty()) {
        BulkheadPermit slot = std::move(pending.front());
        pending.pop_front();
        slot.release();
    }
    t_pending = nullptr;
}

// An admission on its way through the steps. Owned by the step that runs it, or by the
// bulkhead callback while it is queued, so only one thread touches it at a time.
struct PendingAdmission {
    std::shared_ptr<ProviderGuard> guard;
    AdmitCallback on_ready;
    BreakerPermit breaker;
    BulkheadPermit provider_slot;
    BulkheadPermit global_slot;

    // Releases the breaker permit and both slots before a rejection reaches the caller.
    void release_all() {
        breaker = BreakerPermit{};
        release_slots(std::move(global_slot), std::move(provider_slot));
    }
};
using PendingPtr = std::shared_ptr<PendingAdmission>;

struct GateCore : std::enable_shared_from_this<GateCore> {
    GateCore(ResilienceGateConfig gate_config, std::shared_ptr<Clock> gate_clock,
             RandomSource random_source);

    std::shared_ptr<ProviderGuard> make_guard(const ProviderGuardConfig& config);
    std::shared_ptr<ProviderGuard> guard_for(std::string_view provider);
    std::vector<std::shared_ptr<ProviderGuard>> all_guards() const;

    std::optional<Admission> admit(const std::string& provider, AdmitCallback on_ready);
    std::optional<Admission> acquire_provider_slot(const PendingPtr& pending);
    std::optional<Admission> acquire_global_slot(const PendingPtr& pending);
    Admission finish_admission(const PendingPtr& pending);
    std::optional<SteadyTime> next_deadline() const;
    void on_timer();
    void forward_transition(const std::string& provider, const BreakerTransition& transition);

    const bool use_breaker;
    const bool use_bulkhead;
    const Milliseconds evaluation_interval;
    const std::shared_ptr<Clock> clock;
    const RandomSource random;
    const SteadyTime started_at;
    const std::unique_ptr<Bulkhead> global; // null when bulkheads are off

    mutable std::mutex mutex;
    std::vector<ProviderGuardConfig> configs; // for providers met later in admit()
    std::vector<std::shared_ptr<ProviderGuard>> guards;
    std::uint64_t next_call_id = 1;
    SteadyTime last_evaluation;
    BreakerTransitionListener listener;
};

// The permit a caller holds while its request runs. Dropping it releases everything it holds
// (the breaker's permit as an ignored outcome, then the global slot, then the provider's).
class GatePermit final : public CallPermit {
public:
    GatePermit(std::shared_ptr<GateCore> owner, PendingAdmission& pending, std::uint64_t id)
        : core(std::move(owner)), guard(pending.guard), call_id(id),
          provider_slot(std::move(pending.provider_slot)),
          global_slot(std::move(pending.global_slot)), breaker(std::move(pending.breaker)) {}
    ~GatePermit() override {
        untrack();
        breaker = BreakerPermit{};
        release_slots(std::move(global_slot), std::move(provider_slot));
    }
    GatePermit(const GatePermit&) = delete;
    GatePermit& operator=(const GatePermit&) = delete;

    void untrack() {
        if (call_id == 0) {
            return;
        }
        std::lock_guard lock(core->mutex);
        guard->in_flight.erase(call_id);
        call_id = 0;
    }

    std::shared_ptr<GateCore> core;
    std::shared_ptr<ProviderGuard> guard;
    std::uint64_t call_id = 0; // 0 when not tracked
    BulkheadPermit provider_slot;
    BulkheadPermit global_slot;
    BreakerPermit breaker;
};

} // namespace detail

namespace {

using detail::GateCore;
using detail::GatePermit;
using detail::PendingAdmission;
using detail::PendingPtr;
using detail::ProviderGuard;

// The step that runs after a bulkhead grants a slot.
using Step = std::optional<Admission> (*)(GateCore& core, const PendingPtr& pending);

// Timeline lines the text report prints per breaker; the JSON summary keeps all of them.
constexpr std::size_t k_report_transitions = 20;

Admission rejection(const Error& error) {
    return std::unexpected(error);
}

// Runs the rest of a queued admission once its bulkhead grants a slot or times it out, and
// hands the result to the caller's callback unless a later step queued again.
void resume(const std::weak_ptr<GateCore>& weak_core, PendingPtr pending,
            Result<BulkheadPermit> slot, BulkheadPermit PendingAdmission::*slot_field, Step next) {
    std::optional<Admission> result;
    const std::shared_ptr<GateCore> core = weak_core.lock();
    if (!slot) {
        result = rejection(slot.error());
    } else if (core == nullptr) {
        result = rejection(Error{"interrupted", "the resilience gate was shut down while the "
                                                "call was queued"});
    } else {
        (*pending).*slot_field = std::move(*slot);
        result = next(*core, pending);
    }
    if (!result) {
        return; // queued again; the next bulkhead's callback carries on
    }
    if (!*result) {
        pending->release_all();
    }
    AdmitCallback on_ready = std::move(pending->on_ready);
    pending.reset();
    on_ready(std::move(*result));
}

void keep_earliest(std::optional<SteadyTime>& earliest, std::optional<SteadyTime> candidate) {
    if (candidate && (!earliest || *candidate < *earliest)) {
        earliest = candidate;
    }
}

std::int64_t millis_since(SteadyTime start, SteadyTime at) {
    return std::chrono::duration_cast<Milliseconds>(at - start).count();
}

Json percentiles_json(const DurationPercentiles& percentiles) {
    return Json{{"count", percentiles.count},
                {"p50", percentiles.p50.count()},
                {"p90", percentiles.p90.count()},
                {"p99", percentiles.p99.count()},
                {"max", percentiles.max.count()}};
}

Json breaker_json(const BreakerSnapshot& snapshot, const BreakerConfig& config,
                  SteadyTime started_at) {
    Json timeline = Json::array();
    for (const BreakerTransition& transition : snapshot.transitions) {
        timeline.push_back({{"at_ms", millis_since(started_at, transition.at)},
                            {"from", std::string(to_string(transition.from))},
                            {"to", std::string(to_string(transition.to))},
                            {"reason", transition.reason}});
    }
    const BreakerCounters& counters = snapshot.counters;
    return Json{{"provider", snapshot.provider},
                {"state", std::string(to_string(snapshot.state))},
                {"opened", counters.opened},
                {"rejected", counters.rejected},
                {"probes", counters.probes},
                {"closed", counters.closed},
                {"successes", counters.successes},
                {"failures", counters.failures},
                {"ignored", counters.ignored},
                {"config",
                 {{"failure_threshold", config.failure_threshold},
                  {"success_threshold", config.success_threshold},
                  {"half_open_max_probes", config.half_open_max_probes},
                  {"reset_timeout_ms", config.reset_timeout.count()},
                  {"max_reset_timeout_ms", config.max_reset_timeout.count()},
                  {"reset_backoff", std::string(to_string(config.reset_backoff))},
                  {"adaptive", config.adaptive},
                  {"window_ms", config.window.count()},
                  {"minimum_calls", config.minimum_calls},
                  {"slow_call_ms", std::round(config.slow_call_ms())},
                  {"slow_call_rate_threshold", config.slow_call_rate_threshold},
                  {"failure_rate_threshold", config.failure_rate_threshold}}},
                {"transitions_total", snapshot.transitions_total},
                {"timeline", std::move(timeline)}};
}

Json bulkhead_json(const BulkheadStats& stats) {
    return Json{{"name", stats.name},
                {"max_concurrent", stats.max_concurrent},
                {"active", stats.active},
                {"queued", stats.queued},
                {"peak_active", stats.peak_active},
                {"peak_queued", stats.peak_queued},
                {"acquired", stats.acquired},
                {"rejected", stats.rejected},
                {"timed_out", stats.timed_out},
                {"cancelled", stats.cancelled},
                {"wait_ms", percentiles_json(stats.wait)},
                {"execution_ms", percentiles_json(stats.execution)}};
}

std::string breaker_text(const BreakerSnapshot& snapshot, SteadyTime started_at) {
    const BreakerCounters& counters = snapshot.counters;
    std::string out = fmt::format(
        "breaker   {}: {} now; opened {}, rejected {}, probes {}, closed {} ({} successes, {} "
        "failures, {} ignored)\n",
        snapshot.provider, to_string(snapshot.state), counters.opened, counters.rejected,
        counters.probes, counters.closed, counters.successes, counters.failures, counters.ignored);

    const std::size_t recorded_count = snapshot.transitions.size();
    const std::size_t shown_count = std::min(recorded_count, k_report_transitions);
    const std::uint64_t hidden_count = snapshot.transitions_total - shown_count;
    if (hidden_count > 0) {
        out += fmt::format("breaker   {}  {} earlier transitions not shown (the JSON summary "
                           "keeps the latest {})\n",
                           snapshot.provider, hidden_count, k_max_recorded_transitions);
    }
    for (std::size_t i = recorded_count - shown_count; i < recorded_count; ++i) {
        const BreakerTransition& transition = snapshot.transitions[i];
        out += fmt::format("breaker   {}  +{:.3f} s  {} -> {}: {}\n", snapshot.provider,
                           static_cast<double>(millis_since(started_at, transition.at)) / 1000.0,
                           to_string(transition.from), to_string(transition.to), transition.reason);
    }
    return out;
}

std::string bulkhead_text(const BulkheadStats& stats) {
    return fmt::format("bulkhead  {}: max {}, peak {} active and {} queued; {} acquired, {} "
                       "rejected, {} timed out; wait p50/p90/p99 {}/{}/{} ms; execution "
                       "p50/p90/p99 {}/{}/{} ms\n",
                       stats.name, stats.max_concurrent, stats.peak_active, stats.peak_queued,
                       stats.acquired, stats.rejected, stats.timed_out, stats.wait.p50.count(),
                       stats.wait.p90.count(), stats.wait.p99.count(), stats.execution.p50.count(),
                       stats.execution.p90.count(), stats.execution.p99.count());
}

} // namespace

namespace detail {

GateCore::GateCore(ResilienceGateConfig gate_config, std::shared_ptr<Clock> gate_clock,
                   RandomSource random_source)
    : use_breaker(gate_config.use_breaker), use_bulkhead(gate_config.use_bulkhead),
      evaluation_interval(std::max(gate_config.evaluation_interval, Milliseconds{1})),
      clock(gate_clock ? std::move(gate_clock) : system_clock()),
      random(random_source ? std::move(random_source) : default_random_source()),
      started_at(clock->now()),
      global(use_bulkhead ? std::make_unique<Bulkhead>("global", gate_config.global_bulkhead, clock)
                          : nullptr),
      configs(std::move(gate_config.providers)), last_evaluation(started_at) {}

std::shared_ptr<ProviderGuard> GateCore::make_guard(const ProviderGuardConfig& config) {
    auto guard = std::make_shared<ProviderGuard>();
    guard->provider = config.provider;
    if (use_breaker) {
        guard->breaker =
            std::make_unique<CircuitBreaker>(config.provider, config.breaker, clock, random);
        const BreakerConfig& in_use = guard->breaker->config();
        if (in_use.adaptive) {
            // The breaker counts a call as slow once its time in flight is strictly above
            // slow_call_ms, so the first whole millisecond past it is the moment to check.
            guard->slow_after =
                Milliseconds{static_cast<std::int64_t>(std::floor(in_use.slow_call_ms())) + 1};
        }
        guard->breaker->on_transition(
            [weak = weak_from_this()](const std::string& provider,
                                      const BreakerTransition& transition) {
                if (const auto core = weak.lock()) {
                    core->forward_transition(provider, transition);
                }
            });
    }
    if (use_bulkhead) {
        guard->bulkhead = std::make_unique<Bulkhead>(config.provider, config.bulkhead, clock);
    }
    return guard;
}

// Creates a provider's guard on first use. The breaker and bulkhead are built outside the
// lock, because a bulkhead registers a watch with the clock, and a ManualClock runs watch
// callbacks (which can reach this gate's lock) while holding its own lock.
std::shared_ptr<ProviderGuard> GateCore::guard_for(std::string_view provider) {
    ProviderGuardConfig config = default_provider_guard_config(provider);
    {
        std::lock_guard lock(mutex);
        for (const auto& guard : guards) {
            if (guard->provider == provider) {
                return guard;
            }
        }
        for (const ProviderGuardConfig& configured : configs) {
            if (configured.provider == provider) {
                config = configured;
            }
        }
    }

    std::shared_ptr<ProviderGuard> created = make_guard(config);
    std::lock_guard lock(mutex);
    for (const auto& guard : guards) {
        if (guard->provider == provider) {
            return guard; // another thread was first
        }
    }
    guards.push_back(created);
    return created;
}

std::vector<std::shared_ptr<ProviderGuard>> GateCore::all_guards() const {
    std::lock_guard lock(mutex);
    return guards;
}

std::optional<Admission> GateCore::admit(const std::string& provider, AdmitCallback on_ready) {
    auto pending = std::make_shared<PendingAdmission>();
    pending->guard = guard_for(provider);
    pending->on_ready = std::move(on_ready);

    // An open breaker rejects before any queue, and a half-open one hands out its probe
    // slot now, so that a rejected call never waits in a bulkhead first.
    // NOTE: a probe's time queued in the bulkheads counts toward its latency, so with every
    // slot still held by calls from before the opening, the probe can reopen the breaker as
    // slow before it is sent.
    CircuitBreaker* breaker = pending->guard->breaker.get();
    if (breaker != nullptr && breaker->state() != BreakerState::closed) {
        auto permit = breaker->admit();
        if (!permit) {
            return rejection(permit.error());
        }
        pending->breaker = std::move(*permit);
    }

    auto result = acquire_provider_slot(pending);
    if (result && !*result) {
        pending->release_all();
    }
    return result;
}

std::optional<Admission> GateCore::acquire_provider_slot(const PendingPtr& pending) {
    Bulkhead* bulkhead = pending->guard->bulkhead.get();
    if (bulkhead == nullptr) {
        return acquire_global_slot(pending);
    }
    auto acquired =
        bulkhead->acquire_async([weak = weak_from_this(), pending](Result<BulkheadPermit> slot) {
            resume(weak, pending, std::move(slot), &PendingAdmission::provider_slot,
                   [](GateCore& core, const PendingPtr& next) {
                       return core.acquire_global_slot(next);
                   });
        });
    if (!acquired) {
        return rejection(acquired.error());
    }
    if (!acquired->permit) {
        return std::nullopt;
    }
    pending->provider_slot = std::move(*acquired->permit);
    return acquire_global_slot(pending);
}

std::optional<Admission> GateCore::acquire_global_slot(const PendingPtr& pending) {
    if (global == nullptr) {
        return finish_admission(pending);
    }
    auto acquired =
        global->acquire_async([weak = weak_from_this(), pending](Result<BulkheadPermit> slot) {
            resume(weak, pending, std::move(slot), &PendingAdmission::global_slot,
                   [](GateCore& core, const PendingPtr& next) -> std::optional<Admission> {
                       return core.finish_admission(next);
                   });
        });
    if (!acquired) {
        return rejection(acquired.error());
    }
    if (!acquired->permit) {
        return std::nullopt;
    }
    pending->global_slot = std::move(*acquired->permit);
    return finish_admission(pending);
}

Admission GateCore::finish_admission(const PendingPtr& pending) {
    ProviderGuard& guard = *pending->guard;
    if (guard.breaker != nullptr && !pending->breaker.is_valid()) {
        auto permit = guard.breaker->admit();
        if (!permit) {
            return rejection(permit.error());
        }
        pending->breaker = std::move(*permit);
    }

    std::uint64_t call_id = 0;
    if (guard.slow_after) {
        std::lock_guard lock(mutex);
        call_id = next_call_id++;
        guard.in_flight.emplace(call_id, pending->breaker.started_at());
    }
    return std::make_unique<GatePermit>(shared_from_this(), *pending, call_id);
}

std::optional<SteadyTime> GateCore::next_deadline() const {
    const auto current = all_guards();
    std::optional<SteadyTime> earliest;
    for (const auto& guard : current) {
        if (guard->bulkhead != nullptr) {
            keep_earliest(earliest, guard->bulkhead->next_deadline());
        }
    }
    if (global != nullptr) {
        keep_earliest(earliest, global->next_deadline());
    }

    const SteadyTime now = clock->now();
    bool has_slow_call = false;
    std::lock_guard lock(mutex);
    for (const auto& guard : current) {
        if (!guard->slow_after) {
            continue;
        }
        for (const auto& [call_id, started_at] : guard->in_flight) {
            const SteadyTime slow_at = started_at + *guard->slow_after;
            if (slow_at > now) {
                keep_earliest(earliest, slow_at);
                break;
            }
            has_slow_call = true;
        }
    }
    if (has_slow_call) {
        keep_earliest(earliest, last_evaluation + evaluation_interval);
    }
    return earliest;
}

void GateCore::on_timer() {
    const auto current = all_guards();
    for (const auto& guard : current) {
        if (guard->bulkhead != nullptr) {
            guard->bulkhead->expire_waiters();
        }
    }
    if (global != nullptr) {
        global->expire_waiters();
    }

    std::vector<CircuitBreaker*> to_check;
    {
        std::lock_guard lock(mutex);
        for (const auto& guard : current) {
            if (guard->slow_after && !guard->in_flight.empty()) {
                to_check.push_back(guard->breaker.get());
            }
        }
        last_evaluation = clock->now();
    }
    for (CircuitBreaker* breaker : to_check) {
        breaker->evaluate();
    }
}

void GateCore::forward_transition(const std::string& provider,
                                  const BreakerTransition& transition) {
    BreakerTransitionListener current;
    {
        std::lock_guard lock(mutex);
        current = listener;
    }
    if (current) {
        current(provider, transition);
    }
}

} // namespace detail

ProviderGuardConfig default_provider_guard_config(std::string_view provider) {
    return ProviderGuardConfig{std::string(provider), default_breaker_config(provider),
                               BulkheadConfig{}};
}

Result<void> validate_resilience_gate_config(const ResilienceGateConfig& config) {
    std::set<std::string, std::less<>> seen;
    for (const ProviderGuardConfig& provider : config.providers) {
        if (!seen.insert(provider.provider).second) {
            return fail("usage",
                        fmt::format("provider {} has two resilience configs", provider.provider));
        }
        if (auto valid = validate_breaker_config(provider.breaker, provider.provider); !valid) {
            return valid;
        }
        if (auto valid = validate_bulkhead_config(provider.bulkhead, provider.provider); !valid) {
            return valid;
        }
    }
    if (auto valid = validate_bulkhead_config(config.global_bulkhead, "global"); !valid) {
        return valid;
    }
    if (config.evaluation_interval.count() <= 0) {
        return fail("usage", fmt::format("resilience gate: evaluation interval is {} ms, "
                                         "expected more than 0",
                                         config.evaluation_interval.count()));
    }
    return {};
}

ResilienceGate::ResilienceGate(ResilienceGateConfig config, std::shared_ptr<Clock> clock,
                               RandomSource random)
    : m_core(std::make_shared<detail::GateCore>(std::move(config), std::move(clock),
                                                std::move(random))) {
    // Guards of the configured providers exist from the start, so the report lists them in
    // priority order even when some get no call.
    std::vector<std::string> names;
    for (const ProviderGuardConfig& provider : m_core->configs) {
        names.push_back(provider.provider);
    }
    for (const std::string& name : names) {
        m_core->guard_for(name);
    }
}

ResilienceGate::~ResilienceGate() = default;

std::optional<Result<std::unique_ptr<CallPermit>>>
ResilienceGate::admit(const std::string& provider, AdmitCallback on_ready) {
    return m_core->admit(provider, std::move(on_ready));
}

void ResilienceGate::record(std::unique_ptr<CallPermit> permit, CallOutcome outcome,
                            std::chrono::milliseconds) {
    auto* gate_permit = dynamic_cast<GatePermit*>(permit.get());
    if (gate_permit == nullptr || gate_permit->core != m_core) {
        return; // dropped: a permit of another gate releases itself there as ignored
    }
    gate_permit->untrack();
    if (gate_permit->guard->breaker != nullptr && gate_permit->breaker.is_valid()) {
        gate_permit->guard->breaker->record(std::move(gate_permit->breaker), outcome);
    }
    // The breaker has seen the outcome before a waiter gets the slot, so a waiter behind a
    // call that opened the breaker is rejected instead of sent.
    detail::release_slots(std::move(gate_permit->global_slot),
                          std::move(gate_permit->provider_slot));
}

std::optional<SteadyTime> ResilienceGate::next_deadline() const {
    return m_core->next_deadline();
}

void ResilienceGate::on_timer(SteadyTime) {
    m_core->on_timer();
}

void ResilienceGate::on_transition(BreakerTransitionListener listener) {
    std::lock_guard lock(m_core->mutex);
    m_core->listener = std::move(listener);
}

std::optional<BreakerSnapshot> ResilienceGate::breaker_snapshot(std::string_view provider) const {
    for (const auto& guard : m_core->all_guards()) {
        if (guard->provider == provider && guard->breaker != nullptr) {
            return guard->breaker->snapshot();
        }
    }
    return std::nullopt;
}

std::vector<BulkheadStats> ResilienceGate::bulkhead_stats() const {
    std::vector<BulkheadStats> stats;
    for (const auto& guard : m_core->all_guards()) {
        if (guard->bulkhead != nullptr) {
            stats.push_back(guard->bulkhead->stats());
        }
    }
    if (m_core->global != nullptr) {
        stats.push_back(m_core->global->stats());
    }
    return stats;
}

nlohmann::ordered_json ResilienceGate::summary_json() const {
    Json breakers = Json::array();
    for (const auto& guard : m_core->all_guards()) {
        if (guard->breaker != nullptr) {
            breakers.push_back(breaker_json(guard->breaker->snapshot(), guard->breaker->config(),
                                            m_core->started_at));
        }
    }
    Json bulkheads = Json::array();
    for (const BulkheadStats& stats : bulkhead_stats()) {
        bulkheads.push_back(bulkhead_json(stats));
    }
    return Json{{"circuit_breaker", m_core->use_breaker},
                {"bulkhead", m_core->use_bulkhead},
                {"breakers", std::move(breakers)},
                {"bulkheads", std::move(bulkheads)}};
}

std::string ResilienceGate::report_text() const {
    std::string out;
    if (!m_core->use_breaker) {
        out += "breaker   circuit breakers are off\n";
    }
    for (const auto& guard : m_core->all_guards()) {
        if (guard->breaker != nullptr) {
            out += breaker_text(guard->breaker->snapshot(), m_core->started_at);
        }
    }
    if (!m_core->use_bulkhead) {
        out += "bulkhead  bulkheads are off\n";
    }
    for (const BulkheadStats& stats : bulkhead_stats()) {
        out += bulkhead_text(stats);
    }
    return out;
}

} // namespace athena
