// Circuit breaker openings shared through Redis, against a real server
// (ATHENA_TEST_REDIS_URL; see test_cache_redis_support.hpp).
#include "test_cache_redis_support.hpp"

#include <athena/redis_cache.hpp>

#include <doctest/doctest.h>

#include <thread>

using namespace std::chrono_literals;

TEST_CASE("RedisProviderMarks: an opening is seen by other runners") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    athena::RedisProviderMarks first(std::make_shared<athena::RedisLink>(*options, nullptr),
                                     "runner-a", 0ms);
    athena::RedisProviderMarks second(std::make_shared<athena::RedisLink>(*options, nullptr),
                                      "runner-b", 0ms);

    SUBCASE("a mark is shared until it is cleared") {
        CHECK_FALSE(second.is_provider_open("openai"));

        REQUIRE(first.mark_provider_open("openai", 60s));

        CHECK(second.is_provider_open("openai"));
        CHECK_FALSE(second.is_provider_open("anthropic"));
        athena::test::RawRedis redis(*options);
        CHECK(redis.command({"GET", options->key_prefix + "breaker:openai"}) == "runner-a");
        const long long ttl_ms = redis.integer({"PTTL", options->key_prefix + "breaker:openai"});
        CHECK(ttl_ms > 0);
        CHECK(ttl_ms <= 60000);
        REQUIRE(second.clear_provider_mark("openai"));
        CHECK_FALSE(first.is_provider_open("openai"));
    }
    SUBCASE("a mark ends with the reset timeout") {
        REQUIRE(first.mark_provider_open("openai", 200ms));
        CHECK(second.is_provider_open("openai"));

        std::this_thread::sleep_for(400ms);

        CHECK_FALSE(second.is_provider_open("openai"));
    }
}

TEST_CASE("RedisProviderMarks: answers are cached briefly") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    auto link = std::make_shared<athena::RedisLink>(*options, nullptr);
    athena::RedisProviderMarks marks(link, "runner-a", 60s);
    athena::test::RawRedis redis(*options);
    CHECK_FALSE(marks.is_provider_open("openai"));
    const auto round_trips = link->counters().round_trips.load();

    redis.command({"SET", options->key_prefix + "breaker:openai", "runner-b", "PX", "60000"});

    CHECK_FALSE(marks.is_provider_open("openai"));
    CHECK(link->counters().round_trips.load() == round_trips);
}

TEST_CASE("RedisProviderMarks: without Redis nothing is marked") {
    SUBCASE("an unreachable server never blocks a provider") {
        athena::RedisProviderMarks marks(
            std::make_shared<athena::RedisLink>(athena::test::unreachable_redis_options(), nullptr),
            "runner-a", 0ms);

        auto marked = marks.mark_provider_open("openai", 60s);

        REQUIRE_FALSE(marked.has_value());
        CHECK(marked.error().kind == "cache");
        CHECK_FALSE(marks.is_provider_open("openai"));
    }
    SUBCASE("a read-only runner cannot mark") {
        auto options = athena::test::test_redis_options();
        ATHENA_REQUIRE_TEST_REDIS(options);
        athena::test::PrefixCleanup cleanup(*options);
        options->is_read_only = true;
        athena::RedisProviderMarks marks(std::make_shared<athena::RedisLink>(*options, nullptr),
                                         "runner-a", 0ms);

        auto marked = marks.mark_provider_open("openai", 60s);

        REQUIRE_FALSE(marked.has_value());
        CHECK(marked.error().kind == "usage");
        CHECK_FALSE(marks.is_provider_open("openai"));
    }
}
