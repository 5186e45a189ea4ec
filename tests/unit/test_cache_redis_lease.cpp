// Fleet single-flight: the lease decorator of the analysis service, against a real server
// (ATHENA_TEST_REDIS_URL; see test_cache_redis_support.hpp).
#include "test_cache_redis_support.hpp"

#include <athena/analysis_service.hpp>
#include <athena/redis_cache.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <thread>

namespace {

using athena::test::RawRedis;
using namespace std::chrono_literals;

// An inner service that completes after a delay on a thread of its own, as a provider's event
// loop would, and counts its requests.
class FakeAnalysis final : public athena::AnalysisService {
public:
    explicit FakeAnalysis(std::chrono::milliseconds delay, bool is_fallback = false)
        : m_delay(delay), m_is_fallback(is_fallback) {}
    ~FakeAnalysis() override { join(); }

    std::string profile() const override { return "fake/1"; }

    void submit(athena::AnalysisRequest request,
                std::function<void(athena::AnalysisOutcome&&)> done) override {
        ++submits;
        std::lock_guard lock(m_mutex);
        m_threads.emplace_back([this, done = std::move(done), sha256 = request.sha256] {
            std::this_thread::sleep_for(m_delay);
            athena::AnalysisOutcome outcome;
            outcome.verdict = athena::test::sample_redis_entry("analysed " + sha256).verdict;
            outcome.provider = "fake";
            outcome.model = "fake-model";
            outcome.is_fallback = m_is_fallback;
            done(std::move(outcome));
        });
    }

    void shutdown(std::chrono::milliseconds) override { join(); }

    std::atomic<int> submits{0};

private:
    void join() {
        std::vector<std::thread> threads;
        {
            std::lock_guard lock(m_mutex);
            threads.swap(m_threads);
        }
        for (std::thread& thread : threads) {
            thread.join();
        }
    }

    const std::chrono::milliseconds m_delay;
    const bool m_is_fallback;
    std::mutex m_mutex;
    std::vector<std::thread> m_threads;
};

// Collects outcomes from any thread; wait() blocks until `count` have arrived.
class Outcomes {
public:
    std::function<void(athena::AnalysisOutcome&&)> callback() {
        return [this](athena::AnalysisOutcome&& outcome) {
            std::lock_guard lock(m_mutex);
            m_outcomes.push_back(std::move(outcome));
            m_arrived.notify_all();
        };
    }

    bool wait(std::size_t count, std::chrono::milliseconds timeout = 10s) {
        std::unique_lock lock(m_mutex);
        return m_arrived.wait_for(lock, timeout, [&] { return m_outcomes.size() >= count; });
    }

    athena::AnalysisOutcome at(std::size_t index) {
        std::lock_guard lock(m_mutex);
        return m_outcomes.at(index);
    }

    std::size_t size() {
        std::lock_guard lock(m_mutex);
        return m_outcomes.size();
    }

private:
    std::mutex m_mutex;
    std::condition_variable m_arrived;
    std::vector<athena::AnalysisOutcome> m_outcomes;
};

athena::AnalysisRequest request_for(char digit) {
    athena::AnalysisRequest request;
    request.path = "/tmp/sample";
    request.sha256 = std::string(64, digit);
    request.evidence.file_type = "ASCII text";
    return request;
}

struct Runner {
    FakeAnalysis* inner = nullptr;
    std::unique_ptr<athena::AnalysisService> service;
};

Runner make_runner(const athena::RedisOptions& options, std::chrono::milliseconds delay,
                   const std::string& runner_id, bool is_fallback = false) {
    auto inner = std::make_unique<FakeAnalysis>(delay, is_fallback);
    Runner runner;
    runner.inner = inner.get();
    runner.service = athena::make_leased_analysis(
        std::move(inner), std::make_shared<athena::RedisLink>(options, nullptr), runner_id);
    return runner;
}

std::string lease_key_for(const athena::RedisOptions& options, char digit) {
    return athena::redis_lease_key(options, athena::CacheKey{std::string(64, digit), "fake/1"});
}

std::string verdict_key_for(const athena::RedisOptions& options, char digit) {
    return athena::redis_verdict_key(options, athena::CacheKey{std::string(64, digit), "fake/1"});
}

} // namespace

TEST_CASE("LeasedAnalysis: two runners pay for one analysis") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    Runner first = make_runner(*options, 300ms, "runner-a");
    Runner second = make_runner(*options, 300ms, "runner-b");
    Outcomes first_outcomes;
    Outcomes second_outcomes;

    first.service->submit(request_for('a'), first_outcomes.callback());
    second.service->submit(request_for('a'), second_outcomes.callback());

    REQUIRE(first_outcomes.wait(1));
    REQUIRE(second_outcomes.wait(1));
    CHECK(first.inner->submits + second.inner->submits == 1);
    const athena::AnalysisOutcome answered = second_outcomes.at(0);
    REQUIRE(answered.verdict.has_value());
    CHECK(answered.provider == "fake");
    CHECK(answered.model == "fake-model");
    CHECK(answered.verdict->summary == "analysed " + std::string(64, 'a'));
    CHECK(answered.usage.empty());
    first.service->shutdown(1s);
    second.service->shutdown(1s);
    const auto summary = second.service->summary_json();
    CHECK(summary["redis"]["leases"]["waited"] == 1);
    CHECK(summary["redis"]["leases"]["from_other_runners"] == 1);
    CHECK(summary["redis"]["leases"]["analysed"] == 0);
    RawRedis redis(*options);
    CHECK(redis.command({"EXISTS", lease_key_for(*options, 'a')}) == "0");
    CHECK(redis.command({"EXISTS", verdict_key_for(*options, 'a')}) == "1");
}

TEST_CASE("LeasedAnalysis: a verdict already in Redis answers at once") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    RawRedis redis(*options);
    const std::string key = verdict_key_for(*options, 'b');
    redis.command({"SET", key,
                   athena::encode_redis_value(*options, key, athena::test::sample_redis_entry())});
    Runner runner = make_runner(*options, 0ms, "runner-a");
    Outcomes outcomes;

    runner.service->submit(request_for('b'), outcomes.callback());

    REQUIRE(outcomes.size() == 1);
    CHECK(runner.inner->submits == 0);
    CHECK(outcomes.at(0).provider == "openai");
    CHECK(outcomes.at(0).model == "gpt-test");
    runner.service->shutdown(1s);
    // The lease taken in the same round trip as the read is released after the outcome is
    // delivered, so wait (bounded) for the release instead of racing it.
    std::string lease_exists = "1";
    for (int attempt = 0; attempt < 100 && lease_exists != "0"; ++attempt) {
        lease_exists = redis.command({"EXISTS", lease_key_for(*options, 'b')});
        if (lease_exists != "0") {
            std::this_thread::sleep_for(20ms);
        }
    }
    CHECK(lease_exists == "0");
}

TEST_CASE("LeasedAnalysis: an expired lease is taken over") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    RawRedis redis(*options);
    // A runner that took the lease and died, so the lease is never renewed.
    redis.command({"SET", lease_key_for(*options, 'c'), "crashed-runner", "PX", "400"});
    Runner runner = make_runner(*options, 0ms, "runner-a");
    Outcomes outcomes;

    runner.service->submit(request_for('c'), outcomes.callback());

    REQUIRE(outcomes.wait(1, 5s));
    CHECK(runner.inner->submits == 1);
    REQUIRE(outcomes.at(0).verdict.has_value());
    runner.service->shutdown(1s);
    const auto summary = runner.service->summary_json();
    CHECK(summary["redis"]["leases"]["takeovers"] == 1);
    CHECK(redis.command({"EXISTS", verdict_key_for(*options, 'c')}) == "1");
}

TEST_CASE("LeasedAnalysis: the release checks who holds the lease") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    RawRedis redis(*options);
    Runner runner = make_runner(*options, 400ms, "runner-a");
    Outcomes outcomes;

    runner.service->submit(request_for('d'), outcomes.callback());
    CHECK(redis.command({"GET", lease_key_for(*options, 'd')}) == "runner-a");
    // The lease passes to another runner while this one still analyses (as after a pause
    // longer than the lease).
    redis.command({"SET", lease_key_for(*options, 'd'), "runner-b", "PX", "60000"});
    REQUIRE(outcomes.wait(1));
    runner.service->shutdown(1s);

    CHECK(redis.command({"GET", lease_key_for(*options, 'd')}) == "runner-b");
    CHECK(redis.command({"EXISTS", verdict_key_for(*options, 'd')}) == "1");
}

TEST_CASE("LeasedAnalysis: the lease is renewed while the analysis runs") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    options->lease = 300ms;
    RawRedis redis(*options);
    Runner runner = make_runner(*options, 1200ms, "runner-a");
    Outcomes outcomes;

    runner.service->submit(request_for('e'), outcomes.callback());
    std::this_thread::sleep_for(800ms);

    CHECK(redis.command({"GET", lease_key_for(*options, 'e')}) == "runner-a");
    REQUIRE(outcomes.wait(1));
    runner.service->shutdown(1s);
    CHECK(redis.command({"EXISTS", lease_key_for(*options, 'e')}) == "0");
}

TEST_CASE("LeasedAnalysis: shutdown ends waiting requests as interrupted") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    RawRedis redis(*options);
    redis.command({"SET", lease_key_for(*options, 'f'), "busy-runner", "PX", "60000"});
    Runner runner = make_runner(*options, 0ms, "runner-a");
    Outcomes outcomes;

    runner.service->submit(request_for('f'), outcomes.callback());
    CHECK(outcomes.size() == 0);
    const auto started = std::chrono::steady_clock::now();
    runner.service->shutdown(200ms);

    CHECK(std::chrono::steady_clock::now() - started < 3s);
    REQUIRE(outcomes.size() == 1);
    REQUIRE_FALSE(outcomes.at(0).verdict.has_value());
    CHECK(outcomes.at(0).verdict.error().kind == "interrupted");
    CHECK(runner.inner->submits == 0);
    CHECK(redis.command({"GET", lease_key_for(*options, 'f')}) == "busy-runner");
}

TEST_CASE("LeasedAnalysis: a wait is bounded") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    options->lease_wait = 300ms;
    RawRedis redis(*options);
    redis.command({"SET", lease_key_for(*options, '1'), "stuck-runner", "PX", "60000"});
    Runner runner = make_runner(*options, 0ms, "runner-a");
    Outcomes outcomes;

    runner.service->submit(request_for('1'), outcomes.callback());

    REQUIRE(outcomes.wait(1, 5s));
    CHECK(runner.inner->submits == 1);
    runner.service->shutdown(1s);
    CHECK(runner.service->summary_json()["redis"]["leases"]["wait_timeouts"] == 1);
}

TEST_CASE("LeasedAnalysis: requests pass straight through") {
    SUBCASE("when Redis is unreachable") {
        Runner runner = make_runner(athena::test::unreachable_redis_options(), 0ms, "runner-a");
        Outcomes outcomes;

        runner.service->submit(request_for('2'), outcomes.callback());

        REQUIRE(outcomes.wait(1));
        CHECK(runner.inner->submits == 1);
        runner.service->shutdown(1s);
        CHECK(runner.service->summary_json()["redis"]["leases"]["without_lease"] == 1);
    }
    SUBCASE("when the link is read-only") {
        auto options = athena::test::test_redis_options();
        ATHENA_REQUIRE_TEST_REDIS(options);
        athena::test::PrefixCleanup cleanup(*options);
        options->is_read_only = true;
        Runner runner = make_runner(*options, 0ms, "runner-a");
        Outcomes outcomes;

        runner.service->submit(request_for('3'), outcomes.callback());

        REQUIRE(outcomes.wait(1));
        CHECK(runner.inner->submits == 1);
        runner.service->shutdown(1s);
        RawRedis redis(*options);
        CHECK(redis.command({"EXISTS", lease_key_for(*options, '3')}) == "0");
        CHECK(redis.command({"EXISTS", verdict_key_for(*options, '3')}) == "0");
    }
}

TEST_CASE("LeasedAnalysis: a fallback verdict is not shared") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    Runner runner = make_runner(*options, 0ms, "runner-a", true);
    Outcomes outcomes;

    runner.service->submit(request_for('4'), outcomes.callback());

    REQUIRE(outcomes.wait(1));
    runner.service->shutdown(1s);
    RawRedis redis(*options);
    CHECK(redis.command({"EXISTS", verdict_key_for(*options, '4')}) == "0");
    CHECK(redis.command({"EXISTS", lease_key_for(*options, '4')}) == "0");
}

TEST_CASE("LeasedAnalysis: report names the counts") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    options->password.clear();
    Runner runner = make_runner(*options, 0ms, "runner-a");
    Outcomes outcomes;

    runner.service->submit(request_for('5'), outcomes.callback());
    REQUIRE(outcomes.wait(1));
    runner.service->shutdown(1s);
    const std::string report = runner.service->report_text();

    CHECK(report.starts_with("redis     " + athena::describe_endpoint(*options)));
    CHECK(report.find("1 analysed here") != std::string::npos);
    CHECK(runner.service->profile() == "fake/1");
}
