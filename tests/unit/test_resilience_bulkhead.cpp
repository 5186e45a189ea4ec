#include <athena/bulkhead.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using athena::Bulkhead;
using athena::BulkheadConfig;
using athena::BulkheadPermit;
using athena::ManualClock;
using athena::Result;

namespace {

BulkheadConfig small_config(std::size_t max_concurrent, std::size_t max_queued) {
    BulkheadConfig config;
    config.max_concurrent = max_concurrent;
    config.max_queued = max_queued;
    return config;
}

// Waits by yielding, without sleeping, until `count` callers are queued. Gives up after 5 s of
// real time, so that a broken bulkhead fails the test instead of hanging it.
bool wait_until_queued(const Bulkhead& bulkhead, std::size_t count) {
    const auto give_up = std::chrono::steady_clock::now() + 5s;
    while (bulkhead.stats().queued < count) {
        if (std::chrono::steady_clock::now() > give_up) {
            return false;
        }
        std::this_thread::yield();
    }
    return true;
}

// A clock without watches, like the system clock in an event loop: queued requests time out
// only when a caller calls into the bulkhead.
class SteppedClock final : public athena::Clock {
public:
    athena::SteadyTime now() const override { return m_now.load(); }
    void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                    athena::SteadyTime) const override {
        cv.wait(lock);
    }
    void step(std::chrono::milliseconds duration) { m_now = m_now.load() + duration; }

private:
    std::atomic<athena::SteadyTime> m_now{athena::SteadyTime{} + 1h};
};

// Collects the results handed to acquire_async() callbacks. Declare it after the Bulkhead:
// its destructor releases the permits it holds, which hands them to requests still queued,
// and their callbacks then drop what they receive.
struct Inbox {
    ~Inbox() {
        std::vector<Result<BulkheadPermit>> drained;
        {
            std::lock_guard guard(mutex);
            is_closed = true;
            drained = std::move(results);
        }
    }

    athena::PermitCallback callback(int id) {
        return [this, id](Result<BulkheadPermit> result) {
            std::lock_guard guard(mutex);
            if (!is_closed) {
                arrivals.push_back(id);
                results.push_back(std::move(result));
            }
        };
    }

    std::mutex mutex;
    bool is_closed = false;
    std::vector<int> arrivals;
    std::vector<Result<BulkheadPermit>> results;
};

} // namespace

TEST_CASE("BulkheadConfig: documented defaults") {
    const BulkheadConfig provider;
    const BulkheadConfig global = athena::global_bulkhead_config();

    CHECK(provider.max_concurrent == 20);
    CHECK(provider.max_queued == 100);
    CHECK(provider.queue_timeout == 60s);
    CHECK(global.max_concurrent == 30);
    CHECK(global.max_queued == 100);
    CHECK(global.queue_timeout == 60s);
}

TEST_CASE("BulkheadConfig: validation") {
    BulkheadConfig config;

    SUBCASE("defaults are valid") {
        CHECK(athena::validate_bulkhead_config(config, "openai").has_value());
    }
    SUBCASE("zero slots are rejected") {
        config.max_concurrent = 0;
        const auto result = athena::validate_bulkhead_config(config, "openai");
        REQUIRE_FALSE(result.has_value());
        CHECK(result.error().kind == "usage");
        CHECK(result.error().message.find("openai") != std::string::npos);
    }
    SUBCASE("negative queue timeout is rejected") {
        config.queue_timeout = -1ms;
        CHECK_FALSE(athena::validate_bulkhead_config(config, "openai").has_value());
    }
}

TEST_CASE("Bulkhead: admission up to max_concurrent") {
    auto clock = std::make_shared<ManualClock>();
    Bulkhead bulkhead("openai", small_config(3, 10), clock);
    std::vector<BulkheadPermit> held_permits;

    for (int i = 0; i < 3; ++i) {
        auto permit = bulkhead.try_acquire();
        REQUIRE(permit.has_value());
        CHECK(permit->is_held());
        held_permits.push_back(std::move(*permit));
    }
    const auto fourth = bulkhead.try_acquire();
    const auto stats = bulkhead.stats();

    REQUIRE_FALSE(fourth.has_value());
    CHECK(fourth.error().kind == "bulkhead_full");
    CHECK(fourth.error().message.find("openai") != std::string::npos);
    CHECK(stats.active == 3);
    CHECK(stats.peak_active == 3);
    CHECK(stats.acquired == 3);
    CHECK(stats.rejected == 1);
    CHECK(stats.queued == 0);
}

TEST_CASE("Bulkhead: permits release their slot") {
    auto clock = std::make_shared<ManualClock>();
    Bulkhead bulkhead("openai", small_config(2, 10), clock);

    SUBCASE("on destruction") {
        {
            auto first = bulkhead.acquire();
            auto second = bulkhead.acquire();
            REQUIRE(first.has_value());
            REQUIRE(second.has_value());
            CHECK(bulkhead.stats().active == 2);
        }
        CHECK(bulkhead.stats().active == 0);
        CHECK(bulkhead.stats().peak_active == 2);
    }
    SUBCASE("on release, once") {
        auto permit = bulkhead.acquire();
        REQUIRE(permit.has_value());
        permit->release();
        permit->release();
        CHECK_FALSE(permit->is_held());
        CHECK(bulkhead.stats().active == 0);
    }
    SUBCASE("a moved permit releases once") {
        auto permit = bulkhead.acquire();
        REQUIRE(permit.has_value());
        {
            BulkheadPermit moved = std::move(*permit);
            CHECK(bulkhead.stats().active == 1);
        }
        CHECK(bulkhead.stats().active == 0);
    }
    SUBCASE("a permit may outlive its bulkhead") {
        std::optional<BulkheadPermit> survivor;
        {
            Bulkhead short_lived("short", small_config(1, 1), clock);
            auto permit = short_lived.acquire();
            REQUIRE(permit.has_value());
            survivor = std::move(*permit);
        }
        survivor.reset();
        CHECK_FALSE(survivor.has_value());
    }
}

TEST_CASE("Bulkhead: full queue rejects at once") {
    auto clock = std::make_shared<ManualClock>();
    Bulkhead bulkhead("openai", small_config(1, 2), clock);
    Inbox inbox;
    auto held_permit = bulkhead.acquire();
    REQUIRE(held_permit.has_value());
    REQUIRE(bulkhead.acquire_async(inbox.callback(1)).has_value());
    REQUIRE(bulkhead.acquire_async(inbox.callback(2)).has_value());

    SUBCASE("asynchronous request") {
        const auto overflow = bulkhead.acquire_async(inbox.callback(3));
        REQUIRE_FALSE(overflow.has_value());
        CHECK(overflow.error().kind == "bulkhead_full");
    }
    SUBCASE("blocking request does not wait") {
        const auto overflow = bulkhead.acquire();
        REQUIRE_FALSE(overflow.has_value());
        CHECK(overflow.error().kind == "bulkhead_full");
        CHECK(overflow.error().message.find("2 of 2 queued") != std::string::npos);
    }
    const auto stats = bulkhead.stats();

    CHECK(stats.rejected == 1);
    CHECK(stats.queued == 2);
    CHECK(stats.peak_queued == 2);
    CHECK(inbox.arrivals.empty());
}

TEST_CASE("Bulkhead: queue timeout on the manual clock") {
    auto clock = std::make_shared<ManualClock>();
    Bulkhead bulkhead("openai", small_config(1, 10), clock);
    auto held_permit = bulkhead.acquire();
    REQUIRE(held_permit.has_value());

    SUBCASE("asynchronous waiter") {
        Inbox inbox;
        const auto queued = bulkhead.acquire_async(inbox.callback(1));
        REQUIRE(queued.has_value());
        CHECK(queued->ticket != 0);
        CHECK_FALSE(queued->permit.has_value());
        CHECK(bulkhead.next_deadline() == clock->now() + 60s);

        clock->advance(59'999ms);
        CHECK(inbox.arrivals.empty());
        clock->advance(1ms);

        REQUIRE(inbox.results.size() == 1);
        REQUIRE_FALSE(inbox.results[0].has_value());
        CHECK(inbox.results[0].error().kind == "bulkhead_timeout");
        CHECK(inbox.results[0].error().message.find("60000 ms") != std::string::npos);
        CHECK(bulkhead.stats().timed_out == 1);
        CHECK(bulkhead.stats().queued == 0);
        CHECK_FALSE(bulkhead.next_deadline().has_value());
    }
    SUBCASE("blocking waiter") {
        auto waiting = std::async(std::launch::async, [&bulkhead] { return bulkhead.acquire(); });
        REQUIRE(wait_until_queued(bulkhead, 1));

        clock->advance(60s);
        const auto result = waiting.get();

        REQUIRE_FALSE(result.has_value());
        CHECK(result.error().kind == "bulkhead_timeout");
        CHECK(bulkhead.stats().timed_out == 1);
        CHECK(bulkhead.stats().queued == 0);
        CHECK(bulkhead.stats().active == 1);
    }
    SUBCASE("slot freed in time is granted") {
        Inbox inbox;
        REQUIRE(bulkhead.acquire_async(inbox.callback(1)).has_value());
        clock->advance(59s);
        held_permit->release();
        REQUIRE(inbox.results.size() == 1);
        CHECK(inbox.results[0].has_value());
        clock->advance(10s);
        CHECK(bulkhead.stats().timed_out == 0);
    }
}

TEST_CASE("Bulkhead: event-loop expiry without clock callbacks") {
    auto clock = std::make_shared<SteppedClock>();
    Bulkhead bulkhead("openai", small_config(1, 10), clock);
    Inbox inbox;
    auto held_permit = bulkhead.acquire();
    REQUIRE(held_permit.has_value());
    REQUIRE(bulkhead.acquire_async(inbox.callback(1)).has_value());
    clock->step(30s);
    REQUIRE(bulkhead.acquire_async(inbox.callback(2)).has_value());

    SUBCASE("expire_waiters times out only overdue requests") {
        clock->step(30s);
        CHECK(bulkhead.expire_waiters() == 1);
        CHECK(inbox.arrivals == std::vector<int>{1});
        CHECK(bulkhead.next_deadline() == clock->now() + 30s);
        clock->step(30s);
        CHECK(bulkhead.expire_waiters() == 1);
        CHECK(inbox.arrivals == std::vector<int>{1, 2});
    }
    SUBCASE("a release times out overdue requests before granting") {
        clock->step(30s);
        held_permit->release();
        REQUIRE(inbox.results.size() == 2);
        CHECK_FALSE(inbox.results[0].has_value());
        CHECK(inbox.results[1].has_value());
        CHECK(inbox.arrivals == std::vector<int>{1, 2});
    }
}

TEST_CASE("Bulkhead: queued waiters are served in arrival order") {
    auto clock = std::make_shared<ManualClock>();
    Bulkhead bulkhead("openai", small_config(1, 10), clock);
    auto held_permit = bulkhead.acquire();
    REQUIRE(held_permit.has_value());

    SUBCASE("asynchronous waiters") {
        Inbox inbox;
        for (int id = 1; id <= 3; ++id) {
            REQUIRE(bulkhead.acquire_async(inbox.callback(id)).has_value());
        }
        held_permit->release();
        REQUIRE(inbox.results.size() == 1);
        CHECK(bulkhead.stats().active == 1);
        CHECK_FALSE(bulkhead.try_acquire().has_value());

        inbox.results[0]->release();
        inbox.results[1]->release();
        CHECK(inbox.arrivals == std::vector<int>{1, 2, 3});
        CHECK(bulkhead.stats().queued == 0);
    }
    SUBCASE("blocking waiters") {
        std::mutex order_mutex;
        std::vector<std::string> order;
        auto wait_for_slot = [&](std::string name) {
            auto permit = bulkhead.acquire();
            std::lock_guard guard(order_mutex);
            order.push_back(permit.has_value() ? name : name + " failed");
        };
        std::thread first(wait_for_slot, "first");
        REQUIRE(wait_until_queued(bulkhead, 1));
        std::thread second(wait_for_slot, "second");
        REQUIRE(wait_until_queued(bulkhead, 2));
        std::thread third(wait_for_slot, "third");
        REQUIRE(wait_until_queued(bulkhead, 3));

        held_permit->release();
        first.join();
        second.join();
        third.join();

        CHECK(order == std::vector<std::string>{"first", "second", "third"});
        CHECK(bulkhead.stats().acquired == 4);
        CHECK(bulkhead.stats().active == 0);
    }
    SUBCASE("blocking and asynchronous waiters share one queue") {
        Inbox inbox;
        REQUIRE(bulkhead.acquire_async(inbox.callback(1)).has_value());
        std::atomic<bool> blocking_done{false};
        std::atomic<bool> blocking_granted{false};
        std::thread blocking([&] {
            const auto permit = bulkhead.acquire();
            blocking_granted = permit.has_value();
            blocking_done = true;
        });
        REQUIRE(wait_until_queued(bulkhead, 2));
        REQUIRE(bulkhead.acquire_async(inbox.callback(3)).has_value());

        held_permit->release();
        REQUIRE(inbox.results.size() == 1);
        CHECK_FALSE(blocking_done.load());
        inbox.results[0]->release();
        blocking.join();

        CHECK(blocking_granted.load());
        CHECK(inbox.arrivals == std::vector<int>{1, 3});
    }
}

TEST_CASE("Bulkhead: asynchronous acquire") {
    auto clock = std::make_shared<ManualClock>();
    Bulkhead bulkhead("openai", small_config(1, 10), clock);
    Inbox inbox;

    SUBCASE("free slot returns the permit at once") {
        auto immediate = bulkhead.acquire_async(inbox.callback(1));
        REQUIRE(immediate.has_value());
        CHECK(immediate->permit.has_value());
        CHECK(immediate->ticket == 0);
        CHECK(bulkhead.stats().active == 1);
        immediate->permit.reset();
        CHECK(bulkhead.stats().active == 0);
        CHECK(inbox.arrivals.empty());
    }
    SUBCASE("cancel removes a queued request") {
        auto held_permit = bulkhead.acquire();
        const auto queued = bulkhead.acquire_async(inbox.callback(1));
        REQUIRE(queued.has_value());
        CHECK(bulkhead.cancel(queued->ticket));
        CHECK_FALSE(bulkhead.cancel(queued->ticket));
        held_permit->release();
        clock->advance(2min);
        CHECK(inbox.arrivals.empty());
        CHECK(bulkhead.stats().cancelled == 1);
        CHECK(bulkhead.stats().active == 0);
    }
    SUBCASE("a callback may release its permit at once") {
        auto held_permit = bulkhead.acquire();
        REQUIRE(
            bulkhead.acquire_async([](Result<BulkheadPermit> result) { CHECK(result.has_value()); })
                .has_value());
        REQUIRE(bulkhead.acquire_async(inbox.callback(2)).has_value());
        held_permit->release();
        REQUIRE(inbox.results.size() == 1);
        CHECK(inbox.results[0].has_value());
        CHECK(bulkhead.stats().active == 1);
    }
}

TEST_CASE("Bulkhead: wait and execution percentiles") {
    auto clock = std::make_shared<ManualClock>();
    Bulkhead bulkhead("openai", small_config(1, 10), clock);

    SUBCASE("queued wait is measured on the clock") {
        Inbox inbox;
        auto held_permit = bulkhead.acquire();
        REQUIRE(bulkhead.acquire_async(inbox.callback(1)).has_value());
        clock->advance(250ms);
        held_permit->release();
        clock->advance(40ms);
        inbox.results.clear();
        const auto stats = bulkhead.stats();

        CHECK(stats.wait.count == 2);
        CHECK(stats.wait.p50 == 0ms);
        CHECK(stats.wait.p99 == 250ms);
        CHECK(stats.wait.max == 250ms);
        CHECK(stats.execution.count == 2);
        CHECK(stats.execution.max == 250ms);
        // 40 ms falls in the bucket up to 50 ms, which reports its upper bound.
        CHECK(stats.execution.p50 == 50ms);
    }
    SUBCASE("percentiles follow the bucket bounds") {
        for (int duration_ms = 1; duration_ms <= 100; ++duration_ms) {
            auto permit = bulkhead.acquire();
            REQUIRE(permit.has_value());
            clock->advance(std::chrono::milliseconds{duration_ms});
        }
        const auto stats = bulkhead.stats();

        CHECK(stats.execution.count == 100);
        CHECK(stats.execution.p50 == 50ms);
        CHECK(stats.execution.p90 == 100ms);
        CHECK(stats.execution.p99 == 100ms);
        CHECK(stats.execution.max == 100ms);
        CHECK(stats.wait.p99 == 0ms);
    }
    SUBCASE("no samples give zeros") {
        const auto stats = bulkhead.stats();
        CHECK(stats.wait.count == 0);
        CHECK(stats.wait.p50 == 0ms);
        CHECK(stats.execution.p99 == 0ms);
    }
}

TEST_CASE("Bulkhead: concurrent acquire and release") {
    constexpr std::size_t k_max_concurrent = 3;
    constexpr int k_threads = 6;
    constexpr int k_iterations = 400;
    auto clock = std::make_shared<ManualClock>();
    Bulkhead bulkhead("concurrent", small_config(k_max_concurrent, 2), clock);
    std::atomic<int> inside{0};
    std::atomic<int> max_inside{0};
    std::atomic<std::uint64_t> granted{0};
    std::atomic<std::uint64_t> turned_away{0};

    std::vector<std::thread> workers;
    for (int t = 0; t < k_threads; ++t) {
        workers.emplace_back([&, t] {
            for (int i = 0; i < k_iterations; ++i) {
                auto permit = (i + t) % 4 == 0 ? bulkhead.try_acquire() : bulkhead.acquire();
                if (!permit) {
                    ++turned_away;
                    continue;
                }
                ++granted;
                const int now_inside = ++inside;
                int seen = max_inside.load();
                while (now_inside > seen && !max_inside.compare_exchange_weak(seen, now_inside)) {
                }
                std::this_thread::yield();
                --inside;
            }
        });
    }
    for (auto& worker : workers) {
        worker.join();
    }
    const auto stats = bulkhead.stats();

    CHECK(max_inside.load() <= static_cast<int>(k_max_concurrent));
    CHECK(stats.peak_active <= k_max_concurrent);
    CHECK(stats.peak_queued <= 2);
    CHECK(stats.active == 0);
    CHECK(stats.queued == 0);
    CHECK(stats.acquired == granted.load());
    CHECK(stats.rejected == turned_away.load());
    CHECK(stats.timed_out == 0);
    CHECK(granted + turned_away == static_cast<std::uint64_t>(k_threads * k_iterations));
    CHECK(stats.execution.count == granted.load());
}
