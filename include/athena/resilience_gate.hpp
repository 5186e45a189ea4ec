// The resilience gate: the CallGate that puts a circuit breaker and a bulkhead in front of
// each AI provider, plus one global bulkhead across providers, and reports what they did.
//
// An attempt passes, in this order:
//   1. the provider's breaker, when it is not closed. An open breaker rejects at once (kind
//      "breaker_open"), so no request leaves. A half-open one admits a probe or rejects.
//   2. the provider's bulkhead: a free slot, a place in its queue, or at once kind
//      "bulkhead_full"; a queued attempt fails with kind "bulkhead_timeout" after the queue
//      timeout
//   3. the global bulkhead, the same way
//   4. the provider's breaker, when it was closed at step 1. Taking the breaker's permit only
//      once both slots are held keeps the time spent queued out of the call's latency, so a
//      full queue never looks like a slow provider. A breaker that opened while the attempt
//      was queued rejects it here.
// record() feeds the outcome to the breaker and then returns both slots.
#pragma once

#include <athena/backoff.hpp>
#include <athena/breaker.hpp>
#include <athena/bulkhead.hpp>
#include <athena/clock.hpp>
#include <athena/error.hpp>
#include <athena/providers.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace athena {

// The breaker and bulkhead settings of one provider.
struct ProviderGuardConfig {
    std::string provider; // as the router names it: "anthropic", "openai", "deepseek", ...
    BreakerConfig breaker;
    BulkheadConfig bulkhead;
};

// default_breaker_config(provider) and the default BulkheadConfig.
ProviderGuardConfig default_provider_guard_config(std::string_view provider);

struct ResilienceGateConfig {
    bool use_breaker = true;  // false: no breaker, so no call is rejected for a provider's health
    bool use_bulkhead = true; // false: neither per-provider nor global bulkheads
    // Providers in the order the report lists them. A provider that first shows up in admit()
    // gets default_provider_guard_config() and is listed after these.
    std::vector<ProviderGuardConfig> providers;
    BulkheadConfig global_bulkhead = global_bulkhead_config();
    // While a call is in flight longer than its breaker's slow-call threshold, on_timer()
    // runs the adaptive check at least this often, so calls that hang trip the breaker even
    // when no other call starts or ends.
    std::chrono::milliseconds evaluation_interval{1'000};
};

// Checks every provider's breaker and bulkhead config, the global bulkhead config, that no
// provider appears twice and that evaluation_interval is positive. Errors: kind "usage",
// naming the provider and the setting.
Result<void> validate_resilience_gate_config(const ResilienceGateConfig& config);

namespace detail {
struct GateCore; // shared by a gate, its permits and its queued admissions; in gate.cpp
} // namespace detail

// Thread-safe. The router calls admit(), record(), next_deadline() and on_timer() on its
// event-loop thread. Bulkhead callbacks may run the rest of a queued admission on whichever
// thread frees a slot or notices a timeout. The report methods run on the pipeline's thread
// after shutdown. The gate's own lock guards only its bookkeeping and is never held while a
// breaker or bulkhead runs a callback.
class ResilienceGate final : public CallGate {
public:
    // The config should have passed validate_resilience_gate_config(); the breakers and
    // bulkheads clamp values out of range. The run's timeline starts at construction.
    explicit ResilienceGate(ResilienceGateConfig config,
                            std::shared_ptr<Clock> clock = system_clock(),
                            RandomSource random = default_random_source());
    ~ResilienceGate() override;
    ResilienceGate(const ResilienceGate&) = delete;
    ResilienceGate& operator=(const ResilienceGate&) = delete;

    // Runs steps 1 to 4 above. Returns the permit or the rejection when no step had to
    // queue. Otherwise returns std::nullopt, and `on_ready` later receives the permit or the
    // rejection (a "bulkhead_timeout", or a "breaker_open" from step 4).
    std::optional<Result<std::unique_ptr<CallPermit>>> admit(const std::string& provider,
                                                             AdmitCallback on_ready) override;

    // Feeds `outcome` to the provider's breaker, then returns the permit's slots. The
    // breaker measures the latency itself, from step 4 to this call, so `latency` is not
    // used. A permit of another gate is dropped, which counts as ignored at its own gate.
    void record(std::unique_ptr<CallPermit> permit, CallOutcome outcome,
                std::chrono::milliseconds latency) override;

    // The earliest of: a queued attempt's timeout, the moment an in-flight call of an
    // adaptive breaker becomes slow, and the next periodic adaptive check while a call is
    // already slow. Empty when no attempt is queued and no adaptive breaker has a call in
    // flight.
    std::optional<SteadyTime> next_deadline() const override;

    // Times out queued attempts whose wait has passed the queue timeout (their callbacks
    // run on this thread) and runs the adaptive check of every breaker with calls in flight.
    void on_timer(SteadyTime now) override;

    // Calls `listener` after each breaker transition of any provider, on the thread that
    // caused it (see CircuitBreaker::on_transition). Replaces the previous listener.
    void on_transition(BreakerTransitionListener listener);

    // The state of one provider's breaker; empty when breakers are off or the gate has not
    // met the provider.
    std::optional<BreakerSnapshot> breaker_snapshot(std::string_view provider) const;
    // Statistics of every bulkhead, the providers' in report order and "global" last; empty
    // when bulkheads are off.
    std::vector<BulkheadStats> bulkhead_stats() const;

    // The gate's part of the run summary:
    //   {"circuit_breaker": bool, "bulkhead": bool,
    //    "breakers": [{"provider", "state", "opened", "rejected", "probes", "closed",
    //                  "successes", "failures", "ignored", "config": {...},
    //                  "transitions_total", "timeline": [{"at_ms", "from", "to", "reason"}]}],
    //    "bulkheads": [{"name", "max_concurrent", "max_queued", "active", "queued",
    //                   "peak_active", "peak_queued", "acquired", "rejected", "timed_out",
    //                   "cancelled", "wait_ms": {"count", "p50", "p90", "p99", "max"},
    //                   "execution_ms": {...}}]}
    // "at_ms" is the time since the gate was created. The timeline keeps the latest 256
    // transitions of each breaker; "transitions_total" counts them all.
    nlohmann::ordered_json summary_json() const override;
    // The same as report lines: per provider one "breaker" line with the counts, one line
    // per transition, and one "bulkhead" line per bulkhead.
    std::string report_text() const override;

private:
    std::shared_ptr<detail::GateCore> m_core;
};

} // namespace athena
