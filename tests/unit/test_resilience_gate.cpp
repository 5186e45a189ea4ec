#include <athena/resilience_gate.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using athena::BreakerState;
using athena::CallOutcome;
using athena::CallPermit;
using athena::ManualClock;
using athena::ProviderGuardConfig;
using athena::ResilienceGate;
using athena::ResilienceGateConfig;
using athena::Result;
using athena::SteadyTime;

namespace {

using Admission = Result<std::unique_ptr<CallPermit>>;

// A clock without watches, as the system clock in the event loop: queued calls time out
// only when someone calls into a bulkhead, e.g. the gate's on_timer().
class SteppedClock final : public athena::Clock {
public:
    SteadyTime now() const override { return m_now.load(); }
    void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                    SteadyTime) const override {
        cv.wait(lock);
    }
    void step(std::chrono::milliseconds duration) { m_now = m_now.load() + duration; }

private:
    std::atomic<SteadyTime> m_now{SteadyTime{} + 1h};
};

// A provider config with exact reset timeouts, a plain breaker and small bulkheads.
ProviderGuardConfig provider_config(const std::string& name, std::size_t max_concurrent = 20,
                                    std::size_t max_queued = 100) {
    ProviderGuardConfig config = athena::default_provider_guard_config(name);
    config.breaker.reset_jitter_ratio = 0.0;
    config.breaker.reset_timeout = 10s;
    config.breaker.adaptive = false;
    config.bulkhead.max_concurrent = max_concurrent;
    config.bulkhead.max_queued = max_queued;
    config.bulkhead.queue_timeout = 5s;
    return config;
}

ResilienceGateConfig gate_config(std::vector<ProviderGuardConfig> providers,
                                 std::size_t global_max_concurrent = 30) {
    ResilienceGateConfig config;
    config.providers = std::move(providers);
    config.global_bulkhead.max_concurrent = global_max_concurrent;
    config.global_bulkhead.queue_timeout = 5s;
    return config;
}

// Collects the admissions handed to callbacks, in arrival order.
struct Inbox {
    athena::AdmitCallback callback(int id) {
        return [this, id](Admission admission) {
            arrivals.push_back(id);
            results.push_back(std::move(admission));
        };
    }

    std::vector<int> arrivals;
    std::vector<Admission> results;
};

// Admits a call that must get a permit at once.
std::unique_ptr<CallPermit> admit_now(ResilienceGate& gate, const std::string& provider) {
    auto admission = gate.admit(provider, [](Admission) {});
    REQUIRE(admission.has_value());
    REQUIRE(admission->has_value());
    return std::move(**admission);
}

athena::BulkheadStats stats_of(const ResilienceGate& gate, const std::string& name) {
    for (const auto& stats : gate.bulkhead_stats()) {
        if (stats.name == name) {
            return stats;
        }
    }
    FAIL("no bulkhead named " << name);
    return {};
}

BreakerState state_of(const ResilienceGate& gate, const std::string& provider) {
    const auto snapshot = gate.breaker_snapshot(provider);
    REQUIRE(snapshot.has_value());
    return snapshot->state;
}

} // namespace

TEST_CASE("ResilienceGate: admission through breaker and bulkheads") {
    auto clock = std::make_shared<ManualClock>();
    ResilienceGate gate(gate_config({provider_config("openai")}), clock);

    SUBCASE("a free slot admits at once and holds both bulkheads") {
        auto permit = admit_now(gate, "openai");

        CHECK(stats_of(gate, "openai").active == 1);
        CHECK(stats_of(gate, "global").active == 1);
        CHECK(gate.breaker_snapshot("openai")->in_flight == 1);
    }
    SUBCASE("record returns both slots and feeds the breaker") {
        auto permit = admit_now(gate, "openai");

        gate.record(std::move(permit), CallOutcome::success, 10ms);

        CHECK(stats_of(gate, "openai").active == 0);
        CHECK(stats_of(gate, "global").active == 0);
        CHECK(gate.breaker_snapshot("openai")->counters.successes == 1);
    }
    SUBCASE("a dropped permit returns its slots and counts as ignored") {
        auto permit = admit_now(gate, "openai");

        permit.reset();

        CHECK(stats_of(gate, "openai").active == 0);
        CHECK(stats_of(gate, "global").active == 0);
        CHECK(gate.breaker_snapshot("openai")->counters.ignored == 1);
    }
    SUBCASE("a provider met first in admit gets its documented defaults") {
        for (int i = 0; i < 4; ++i) {
            gate.record(admit_now(gate, "deepseek"), CallOutcome::failure, 10ms);
        }
        CHECK(state_of(gate, "deepseek") == BreakerState::closed);
        gate.record(admit_now(gate, "deepseek"), CallOutcome::failure, 10ms);
        CHECK(state_of(gate, "deepseek") == BreakerState::open);
    }
}

TEST_CASE("ResilienceGate: open breaker rejects before any queue") {
    auto clock = std::make_shared<ManualClock>();
    ResilienceGate gate(gate_config({provider_config("openai")}), clock);
    for (int i = 0; i < 3; ++i) {
        gate.record(admit_now(gate, "openai"), CallOutcome::failure, 10ms);
    }
    REQUIRE(state_of(gate, "openai") == BreakerState::open);
    const auto acquired_before = stats_of(gate, "openai").acquired;

    SUBCASE("exactly failure_threshold failures open it") {
        CHECK(gate.breaker_snapshot("openai")->counters.failures == 3);
        CHECK(gate.breaker_snapshot("openai")->counters.opened == 1);
    }
    SUBCASE("rejection is immediate, of kind breaker_open, and takes no slot") {
        bool callback_ran = false;
        auto admission = gate.admit("openai", [&](Admission) { callback_ran = true; });

        REQUIRE(admission.has_value());
        REQUIRE_FALSE(admission->has_value());
        CHECK(admission->error().kind == "breaker_open");
        CHECK(admission->error().message.find("openai") != std::string::npos);
        CHECK_FALSE(callback_ran);
        CHECK(stats_of(gate, "openai").acquired == acquired_before);
        CHECK(gate.breaker_snapshot("openai")->counters.rejected == 1);
    }
    SUBCASE("after the reset timeout one probe passes and a second is rejected") {
        clock->advance(10s);

        auto probe = admit_now(gate, "openai");
        auto second = gate.admit("openai", [](Admission) {});

        CHECK(state_of(gate, "openai") == BreakerState::half_open);
        CHECK(gate.breaker_snapshot("openai")->counters.probes == 1);
        REQUIRE(second.has_value());
        REQUIRE_FALSE(second->has_value());
        CHECK(second->error().kind == "breaker_open");
        CHECK(stats_of(gate, "openai").active == 1);
    }
    SUBCASE("two probe successes close it and traffic returns") {
        clock->advance(10s);

        gate.record(admit_now(gate, "openai"), CallOutcome::success, 10ms);
        gate.record(admit_now(gate, "openai"), CallOutcome::success, 10ms);
        auto after = admit_now(gate, "openai");

        CHECK(state_of(gate, "openai") == BreakerState::closed);
        CHECK(gate.breaker_snapshot("openai")->counters.closed == 1);
        CHECK(after != nullptr);
    }
    SUBCASE("a failed probe reopens it with a longer timeout") {
        clock->advance(10s);

        gate.record(admit_now(gate, "openai"), CallOutcome::failure, 10ms);
        clock->advance(10s);
        auto early = gate.admit("openai", [](Admission) {});

        CHECK(state_of(gate, "openai") == BreakerState::open);
        CHECK(gate.breaker_snapshot("openai")->reset_timeout == 20s);
        REQUIRE(early.has_value());
        CHECK_FALSE(early->has_value());
    }
    SUBCASE("a dropped probe frees the probe slot") {
        clock->advance(10s);

        admit_now(gate, "openai").reset();
        auto next = gate.admit("openai", [](Admission) {});

        REQUIRE(next.has_value());
        CHECK(next->has_value());
    }
}

TEST_CASE("ResilienceGate: ignored outcomes do not open the breaker") {
    auto clock = std::make_shared<ManualClock>();
    ResilienceGate gate(gate_config({provider_config("openai")}), clock);

    for (int i = 0; i < 10; ++i) {
        gate.record(admit_now(gate, "openai"), CallOutcome::ignored, 10ms);
    }

    CHECK(state_of(gate, "openai") == BreakerState::closed);
    CHECK(gate.breaker_snapshot("openai")->counters.ignored == 10);
}

TEST_CASE("ResilienceGate: provider bulkhead queue") {
    auto clock = std::make_shared<ManualClock>();
    ResilienceGate gate(gate_config({provider_config("openai", 1, 1)}), clock);
    Inbox inbox;
    auto first = admit_now(gate, "openai");

    SUBCASE("a busy provider queues the call") {
        auto queued = gate.admit("openai", inbox.callback(2));

        CHECK_FALSE(queued.has_value());
        CHECK(stats_of(gate, "openai").queued == 1);
        CHECK(inbox.results.empty());
    }
    SUBCASE("a full queue rejects at once with bulkhead_full") {
        auto queued = gate.admit("openai", inbox.callback(2));
        auto rejected = gate.admit("openai", inbox.callback(3));

        REQUIRE(rejected.has_value());
        REQUIRE_FALSE(rejected->has_value());
        CHECK(rejected->error().kind == "bulkhead_full");
        CHECK(stats_of(gate, "openai").rejected == 1);
    }
    SUBCASE("a released slot passes to the queued call") {
        auto queued = gate.admit("openai", inbox.callback(2));

        gate.record(std::move(first), CallOutcome::success, 10ms);

        REQUIRE(inbox.results.size() == 1);
        CHECK(inbox.results[0].has_value());
        CHECK(stats_of(gate, "openai").active == 1);
        CHECK(gate.breaker_snapshot("openai")->in_flight == 1);
    }
    SUBCASE("a queued call times out with bulkhead_timeout") {
        auto queued = gate.admit("openai", inbox.callback(2));

        clock->advance(5s);

        REQUIRE(inbox.results.size() == 1);
        REQUIRE_FALSE(inbox.results[0].has_value());
        CHECK(inbox.results[0].error().kind == "bulkhead_timeout");
        CHECK(stats_of(gate, "openai").timed_out == 1);
        CHECK(stats_of(gate, "global").active == 1);
    }
}

TEST_CASE("ResilienceGate: queued call rejected once the breaker opens") {
    auto clock = std::make_shared<ManualClock>();
    ResilienceGate gate(gate_config({provider_config("openai", 1, 5)}), clock);
    Inbox inbox;
    auto busy = admit_now(gate, "openai");
    for (int id = 1; id <= 3; ++id) {
        REQUIRE_FALSE(gate.admit("openai", inbox.callback(id)).has_value());
    }

    // The first failure's slot passes to call 1, the second's to call 2, and the third opens
    // the breaker before call 3 gets the slot.
    gate.record(std::move(busy), CallOutcome::failure, 10ms);
    REQUIRE(inbox.results.size() == 1);
    REQUIRE(inbox.results[0].has_value());
    gate.record(std::move(*inbox.results[0]), CallOutcome::failure, 10ms);
    REQUIRE(inbox.results.size() == 2);
    REQUIRE(inbox.results[1].has_value());
    gate.record(std::move(*inbox.results[1]), CallOutcome::failure, 10ms);

    REQUIRE(inbox.results.size() == 3);
    REQUIRE_FALSE(inbox.results[2].has_value());
    CHECK(inbox.results[2].error().kind == "breaker_open");
    CHECK(state_of(gate, "openai") == BreakerState::open);
    CHECK(stats_of(gate, "openai").active == 0);
    CHECK(stats_of(gate, "global").active == 0);
}

TEST_CASE("ResilienceGate: global bulkhead across providers") {
    auto clock = std::make_shared<ManualClock>();
    ResilienceGate gate(gate_config({provider_config("openai"), provider_config("anthropic")}, 1),
                        clock);
    Inbox inbox;
    auto first = admit_now(gate, "openai");

    auto second = gate.admit("anthropic", inbox.callback(2));

    SUBCASE("a call waits for the global slot while its provider has room") {
        CHECK_FALSE(second.has_value());
        CHECK(stats_of(gate, "anthropic").active == 1);
        CHECK(stats_of(gate, "global").queued == 1);
    }
    SUBCASE("the global slot passes on when a call of another provider ends") {
        gate.record(std::move(first), CallOutcome::success, 10ms);

        REQUIRE(inbox.results.size() == 1);
        CHECK(inbox.results[0].has_value());
        CHECK(gate.breaker_snapshot("anthropic")->in_flight == 1);
    }
    SUBCASE("a global timeout also returns the provider slot") {
        clock->advance(5s);

        REQUIRE(inbox.results.size() == 1);
        REQUIRE_FALSE(inbox.results[0].has_value());
        CHECK(inbox.results[0].error().kind == "bulkhead_timeout");
        CHECK(stats_of(gate, "anthropic").active == 0);
    }
}

TEST_CASE("ResilienceGate: timer drives queue timeouts") {
    auto clock = std::make_shared<SteppedClock>();
    ResilienceGate gate(gate_config({provider_config("openai", 1, 5)}), clock);
    Inbox inbox;
    auto busy = admit_now(gate, "openai");
    const SteadyTime queued_at = clock->now();
    REQUIRE_FALSE(gate.admit("openai", inbox.callback(1)).has_value());

    SUBCASE("the deadline is the queue timeout of the oldest waiter") {
        REQUIRE(gate.next_deadline().has_value());
        CHECK(*gate.next_deadline() == queued_at + 5s);
    }
    SUBCASE("nothing times out before the deadline") {
        clock->step(4999ms);
        gate.on_timer(clock->now());

        CHECK(inbox.results.empty());
    }
    SUBCASE("on_timer at the deadline times the call out") {
        clock->step(5s);
        gate.on_timer(clock->now());

        REQUIRE(inbox.results.size() == 1);
        REQUIRE_FALSE(inbox.results[0].has_value());
        CHECK(inbox.results[0].error().kind == "bulkhead_timeout");
        CHECK_FALSE(gate.next_deadline().has_value());
    }
}

TEST_CASE("ResilienceGate: adaptive breaker and slow calls") {
    auto clock = std::make_shared<ManualClock>();
    ProviderGuardConfig provider = provider_config("openai", 1, 5);
    provider.breaker.adaptive = true;
    provider.breaker.minimum_calls = 1;
    provider.breaker.target_response = 1000ms;
    provider.breaker.response_threshold = 2.0;
    provider.breaker.slow_call_rate_threshold = 0.0; // any slow call trips
    ResilienceGateConfig config = gate_config({provider});
    config.evaluation_interval = 1s;
    ResilienceGate gate(config, clock);

    SUBCASE("time spent queued is not part of a call's latency") {
        Inbox inbox;
        auto first = admit_now(gate, "openai");
        REQUIRE_FALSE(gate.admit("openai", inbox.callback(1)).has_value());

        clock->advance(1900ms);
        gate.record(std::move(first), CallOutcome::success, 1900ms);
        REQUIRE(inbox.results.size() == 1);
        REQUIRE(inbox.results[0].has_value());
        clock->advance(1900ms);
        gate.record(std::move(*inbox.results[0]), CallOutcome::success, 1900ms);

        CHECK(state_of(gate, "openai") == BreakerState::closed);
        CHECK(gate.breaker_snapshot("openai")->window.slow == 0);
    }
    SUBCASE("a call that ends slow opens the breaker") {
        auto call = admit_now(gate, "openai");

        clock->advance(2001ms);
        gate.record(std::move(call), CallOutcome::success, 2001ms);

        CHECK(state_of(gate, "openai") == BreakerState::open);
    }
    SUBCASE("the deadline is the moment the call in flight becomes slow") {
        const SteadyTime started = clock->now();
        auto call = admit_now(gate, "openai");

        REQUIRE(gate.next_deadline().has_value());
        CHECK(*gate.next_deadline() == started + 2001ms);
    }
    SUBCASE("a hanging call trips the breaker from the timer") {
        auto call = admit_now(gate, "openai");

        clock->advance(2001ms);
        CHECK(state_of(gate, "openai") == BreakerState::closed);
        gate.on_timer(clock->now());

        CHECK(state_of(gate, "openai") == BreakerState::open);
        const auto snapshot = gate.breaker_snapshot("openai");
        REQUIRE_FALSE(snapshot->transitions.empty());
        CHECK(snapshot->transitions.back().reason.find("slow-call rate") != std::string::npos);
    }
    SUBCASE("a slow call keeps a periodic check scheduled") {
        ProviderGuardConfig patient = provider;
        patient.breaker.minimum_calls = 5;
        ResilienceGateConfig patient_config = gate_config({patient});
        patient_config.evaluation_interval = 1s;
        ResilienceGate slow_gate(patient_config, clock);
        auto call = admit_now(slow_gate, "openai");

        clock->advance(2500ms);
        slow_gate.on_timer(clock->now());

        REQUIRE(slow_gate.next_deadline().has_value());
        CHECK(*slow_gate.next_deadline() == clock->now() + 1s);
        CHECK(state_of(slow_gate, "openai") == BreakerState::closed);
    }
    SUBCASE("no deadline once nothing is in flight") {
        gate.record(admit_now(gate, "openai"), CallOutcome::success, 10ms);

        CHECK_FALSE(gate.next_deadline().has_value());
    }
}

TEST_CASE("ResilienceGate: parts switched off") {
    auto clock = std::make_shared<ManualClock>();

    SUBCASE("without breakers failures never reject") {
        ResilienceGateConfig config = gate_config({provider_config("openai")});
        config.use_breaker = false;
        ResilienceGate gate(config, clock);

        for (int i = 0; i < 10; ++i) {
            gate.record(admit_now(gate, "openai"), CallOutcome::failure, 10ms);
        }

        CHECK_FALSE(gate.breaker_snapshot("openai").has_value());
        CHECK(admit_now(gate, "openai") != nullptr);
        CHECK(gate.summary_json()["breakers"].empty());
    }
    SUBCASE("without bulkheads no call queues") {
        ResilienceGateConfig config = gate_config({provider_config("openai", 1, 1)}, 1);
        config.use_bulkhead = false;
        ResilienceGate gate(config, clock);
        std::vector<std::unique_ptr<CallPermit>> permits;

        for (int i = 0; i < 5; ++i) {
            permits.push_back(admit_now(gate, "openai"));
        }

        CHECK(gate.bulkhead_stats().empty());
        CHECK(gate.breaker_snapshot("openai")->in_flight == 5);
    }
    SUBCASE("without the adaptive check a hanging call sets no deadline") {
        ResilienceGate gate(gate_config({provider_config("openai")}), clock);
        auto call = admit_now(gate, "openai");

        clock->advance(10min);
        gate.on_timer(clock->now());

        CHECK_FALSE(gate.next_deadline().has_value());
        CHECK(state_of(gate, "openai") == BreakerState::closed);
    }
}

TEST_CASE("ResilienceGate: transition listener") {
    auto clock = std::make_shared<ManualClock>();
    ResilienceGate gate(gate_config({provider_config("openai")}), clock);
    std::vector<std::string> seen;
    gate.on_transition([&](const std::string& provider, const athena::BreakerTransition& change) {
        seen.push_back(provider + ":" + std::string(athena::to_string(change.to)));
    });

    for (int i = 0; i < 3; ++i) {
        gate.record(admit_now(gate, "openai"), CallOutcome::failure, 10ms);
    }

    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == "openai:open");
}

TEST_CASE("ResilienceGate: summary and report") {
    auto clock = std::make_shared<ManualClock>();
    ResilienceGate gate(gate_config({provider_config("openai"), provider_config("anthropic")}),
                        clock);
    clock->advance(1500ms);
    for (int i = 0; i < 3; ++i) {
        gate.record(admit_now(gate, "openai"), CallOutcome::failure, 10ms);
    }
    (void)gate.admit("openai", [](Admission) {});
    clock->advance(10s);
    gate.record(admit_now(gate, "openai"), CallOutcome::success, 10ms);

    const auto summary = gate.summary_json();
    const auto& openai = summary["breakers"][0];

    SUBCASE("breakers are listed in configured order") {
        REQUIRE(summary["breakers"].size() == 2);
        CHECK(openai["provider"] == "openai");
        CHECK(summary["breakers"][1]["provider"] == "anthropic");
    }
    SUBCASE("counts") {
        CHECK(openai["state"] == "half_open");
        CHECK(openai["opened"] == 1);
        CHECK(openai["rejected"] == 1);
        CHECK(openai["probes"] == 1);
        CHECK(openai["closed"] == 0);
        CHECK(openai["failures"] == 3);
        CHECK(openai["config"]["failure_threshold"] == 3);
    }
    SUBCASE("timeline is relative to the gate's start") {
        const auto& timeline = openai["timeline"];
        REQUIRE(timeline.size() == 2);
        CHECK(timeline[0]["at_ms"] == 1500);
        CHECK(timeline[0]["from"] == "closed");
        CHECK(timeline[0]["to"] == "open");
        CHECK(timeline[0]["reason"] == "3 consecutive failures");
        CHECK(timeline[1]["at_ms"] == 11500);
        CHECK(timeline[1]["to"] == "half_open");
        CHECK(openai["transitions_total"] == 2);
    }
    SUBCASE("bulkheads with percentiles, global last") {
        const auto& bulkheads = summary["bulkheads"];
        REQUIRE(bulkheads.size() == 3);
        CHECK(bulkheads[0]["name"] == "openai");
        CHECK(bulkheads[0]["acquired"] == 4);
        CHECK(bulkheads[0]["execution_ms"]["count"] == 4);
        CHECK(bulkheads[2]["name"] == "global");
        CHECK(bulkheads[2]["max_concurrent"] == 30);
    }
    SUBCASE("report lines") {
        const std::string text = gate.report_text();

        CHECK(text.find("breaker   openai: half_open now; opened 1, rejected 1, probes 1, "
                        "closed 0") != std::string::npos);
        CHECK(text.find("breaker   openai  +1.500 s  closed -> open: 3 consecutive failures") !=
              std::string::npos);
        CHECK(text.find("bulkhead  openai: max 20") != std::string::npos);
        CHECK(text.find("bulkhead  global: max 30") != std::string::npos);
    }
}

TEST_CASE("ResilienceGate: config validation") {
    ResilienceGateConfig config = gate_config({provider_config("openai")});

    SUBCASE("defaults are valid") {
        CHECK(athena::validate_resilience_gate_config(config).has_value());
    }
    SUBCASE("a provider listed twice is rejected") {
        config.providers.push_back(provider_config("openai"));

        const auto result = athena::validate_resilience_gate_config(config);

        REQUIRE_FALSE(result.has_value());
        CHECK(result.error().kind == "usage");
    }
    SUBCASE("an invalid breaker setting names the provider") {
        config.providers[0].breaker.failure_threshold = 0;

        const auto result = athena::validate_resilience_gate_config(config);

        REQUIRE_FALSE(result.has_value());
        CHECK(result.error().message.find("openai") != std::string::npos);
        CHECK(result.error().message.find("failure_threshold") != std::string::npos);
    }
    SUBCASE("a global bulkhead without slots is rejected") {
        config.global_bulkhead.max_concurrent = 0;

        CHECK_FALSE(athena::validate_resilience_gate_config(config).has_value());
    }
}

TEST_CASE("ResilienceGate: long queue rejected after the breaker opens") {
    constexpr int k_queued = 20000;
    auto clock = std::make_shared<ManualClock>();
    ResilienceGate gate(gate_config({provider_config("openai", 1, k_queued)}), clock);
    Inbox inbox;
    auto busy = admit_now(gate, "openai");
    for (int id = 1; id <= k_queued; ++id) {
        REQUIRE_FALSE(gate.admit("openai", inbox.callback(id)).has_value());
    }

    gate.record(std::move(busy), CallOutcome::failure, 10ms);
    gate.record(std::move(*inbox.results[0]), CallOutcome::failure, 10ms);
    gate.record(std::move(*inbox.results[1]), CallOutcome::failure, 10ms);

    REQUIRE(inbox.results.size() == k_queued);
    int rejected = 0;
    for (std::size_t i = 2; i < inbox.results.size(); ++i) {
        rejected +=
            !inbox.results[i].has_value() && inbox.results[i].error().kind == "breaker_open";
    }
    CHECK(rejected == k_queued - 2);
    CHECK(inbox.arrivals.front() == 1);
    CHECK(inbox.arrivals.back() == k_queued);
    CHECK(stats_of(gate, "openai").active == 0);
    CHECK(stats_of(gate, "openai").queued == 0);
}

TEST_CASE("ResilienceGate: concurrent callers") {
    constexpr int k_threads = 6;
    constexpr int k_calls_per_thread = 1500;
    auto clock = std::make_shared<ManualClock>();
    ResilienceGate gate(
        gate_config({provider_config("openai", 3, 50), provider_config("anthropic", 2, 50)}, 4),
        clock);
    std::mutex inbox_mutex;
    std::vector<std::unique_ptr<CallPermit>> inbox;
    std::atomic<int> resolved{0};
    std::atomic<int> granted{0};

    // Callbacks only hand the permit over; the callers record it, from any thread.
    const auto record = [&](std::unique_ptr<CallPermit> permit, int call) {
        gate.record(std::move(permit), call % 5 == 0 ? CallOutcome::ignored : CallOutcome::success,
                    1ms);
        ++granted;
        ++resolved;
    };
    const auto drain = [&](int call) {
        std::vector<std::unique_ptr<CallPermit>> taken;
        {
            std::lock_guard lock(inbox_mutex);
            taken.swap(inbox);
        }
        for (auto& permit : taken) {
            record(std::move(permit), call);
        }
    };
    const auto caller = [&](int thread_index) {
        for (int call = 0; call < k_calls_per_thread; ++call) {
            const std::string provider = (call + thread_index) % 2 == 0 ? "openai" : "anthropic";
            auto admission = gate.admit(provider, [&](Admission queued) {
                if (queued) {
                    std::lock_guard lock(inbox_mutex);
                    inbox.push_back(std::move(*queued));
                } else {
                    ++resolved;
                }
            });
            if (admission && *admission) {
                record(std::move(**admission), call);
            } else if (admission) {
                ++resolved;
            }
            drain(call);
        }
        while (resolved.load() < k_threads * k_calls_per_thread) {
            drain(0);
            std::this_thread::yield();
        }
    };

    std::vector<std::thread> threads;
    for (int i = 0; i < k_threads; ++i) {
        threads.emplace_back(caller, i);
    }
    for (auto& thread : threads) {
        thread.join();
    }

    CHECK(resolved.load() == k_threads * k_calls_per_thread);
    CHECK(granted.load() > 0);
    for (const auto& stats : gate.bulkhead_stats()) {
        CHECK(stats.active == 0);
        CHECK(stats.queued == 0);
        CHECK(stats.peak_active <= stats.max_concurrent);
    }
    const auto openai = gate.breaker_snapshot("openai");
    const auto anthropic = gate.breaker_snapshot("anthropic");
    CHECK(openai->in_flight == 0);
    CHECK(anthropic->in_flight == 0);
    CHECK(openai->counters.successes + openai->counters.ignored + anthropic->counters.successes +
              anthropic->counters.ignored ==
          static_cast<std::uint64_t>(granted.load()));
    CHECK_FALSE(gate.next_deadline().has_value());
}
