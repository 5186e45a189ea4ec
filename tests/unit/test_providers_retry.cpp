#include "providers/wire.hpp"

#include <athena/backoff.hpp>
#include <athena/providers.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <string>

using namespace athena;
using namespace athena::providers;
using namespace std::chrono_literals;
using Json = nlohmann::json;

namespace {

// 2015-10-21 07:28:00 UTC, the moment the HTTP-date examples below are measured from.
std::chrono::system_clock::time_point fixed_now() {
    return std::chrono::system_clock::from_time_t(1445412480);
}

std::optional<std::chrono::milliseconds> wait_for(std::map<std::string, std::string> headers) {
    return parse_retry_after(headers, fixed_now());
}

Json gemini_error(const Json& details) {
    return Json{{"error", {{"code", 429}, {"message", "limit"}, {"details", details}}}};
}

} // namespace

TEST_CASE("Retry-after: header forms") {
    SUBCASE("whole seconds") {
        CHECK(wait_for({{"retry-after", "3"}}) == 3000ms);
    }
    SUBCASE("fractional seconds") {
        CHECK(wait_for({{"retry-after", "1.5"}}) == 1500ms);
    }
    SUBCASE("retry-after-ms wins over retry-after") {
        CHECK(wait_for({{"retry-after", "9"}, {"retry-after-ms", "250"}}) == 250ms);
    }
    SUBCASE("an HTTP date in the future") {
        CHECK(wait_for({{"retry-after", "Wed, 21 Oct 2015 07:28:10 GMT"}}) == 10000ms);
    }
    SUBCASE("the obsolete RFC 850 date form") {
        CHECK(wait_for({{"retry-after", "Wednesday, 21-Oct-15 07:28:05 GMT"}}) == 5000ms);
    }
    SUBCASE("a date in the past means no wait") {
        CHECK(wait_for({{"retry-after", "Wed, 21 Oct 2015 07:00:00 GMT"}}) == 0ms);
    }
    SUBCASE("garbage and negative values are ignored") {
        CHECK_FALSE(wait_for({{"retry-after", "soon"}}).has_value());
        CHECK_FALSE(wait_for({{"retry-after", "-4"}}).has_value());
        CHECK_FALSE(wait_for({}).has_value());
    }
    SUBCASE("a huge value is capped at a day") {
        CHECK(wait_for({{"retry-after", "99999999999"}}) == 86'400'000ms);
    }
}

TEST_CASE("Retry-after: Gemini RetryInfo") {
    SUBCASE("fractional seconds") {
        const Json body = gemini_error(Json::array(
            {{{"@type", "type.googleapis.com/google.rpc.RetryInfo"}, {"retryDelay", "1.5s"}}}));
        CHECK(parse_gemini_retry_delay(body) == 1500ms);
    }
    SUBCASE("whole seconds after other details") {
        const Json body = gemini_error(Json::array(
            {{{"@type", "type.googleapis.com/google.rpc.QuotaFailure"}},
             {{"@type", "type.googleapis.com/google.rpc.RetryInfo"}, {"retryDelay", "42s"}}}));
        CHECK(parse_gemini_retry_delay(body) == 42000ms);
    }
    SUBCASE("absent or malformed") {
        CHECK_FALSE(parse_gemini_retry_delay(gemini_error(Json::array())).has_value());
        const Json bad = gemini_error(Json::array(
            {{{"@type", "type.googleapis.com/google.rpc.RetryInfo"}, {"retryDelay", "soon"}}}));
        CHECK_FALSE(parse_gemini_retry_delay(bad).has_value());
    }
}

TEST_CASE("Retry-after: daily quotas are told apart from rate limits") {
    SUBCASE("gemini PerDay quota id") {
        const Json body = gemini_error(Json::array(
            {{{"@type", "type.googleapis.com/google.rpc.QuotaFailure"},
              {"violations",
               Json::array({{{"quotaId", "GenerateRequestsPerDayPerProjectPerModel"}}})}}}));
        CHECK(is_daily_quota(body));
    }
    SUBCASE("gemini PerMinute quota id is a rate limit") {
        const Json body = gemini_error(Json::array(
            {{{"@type", "type.googleapis.com/google.rpc.QuotaFailure"},
              {"violations",
               Json::array({{{"quotaId", "GenerateRequestsPerMinutePerProjectPerModel"}}})}}}));
        CHECK_FALSE(is_daily_quota(body));
    }
    SUBCASE("openai insufficient_quota") {
        CHECK(is_daily_quota(Json{{"error", {{"code", "insufficient_quota"}}}}));
    }
    SUBCASE("a message about a daily limit") {
        CHECK(is_daily_quota(
            Json{{"error", {{"message", "your organization reached its daily limit"}}}}));
        CHECK_FALSE(is_daily_quota(Json{{"error", {{"message", "rate limit exceeded"}}}}));
    }
}

TEST_CASE("Retry policy: default backoff grows and stays bounded") {
    const RetryPolicy policy;
    BackoffConfig exact = policy.backoff;
    exact.jitter_ratio = 0.0;

    CHECK(policy.max_retries == 3);
    CHECK(backoff_delay(exact, 0, nullptr) == 500ms);
    CHECK(backoff_delay(exact, 1, nullptr) == 1000ms);
    CHECK(backoff_delay(exact, 2, nullptr) == 2000ms);
    CHECK(backoff_delay(exact, 20, nullptr) == policy.backoff.cap);

    // With jitter, a delay stays within ±20 % of the nominal one.
    const RandomSource high = [] { return 0.999; };
    const RandomSource low = [] { return 0.0; };
    CHECK(backoff_delay(policy.backoff, 1, high) <= 1200ms);
    CHECK(backoff_delay(policy.backoff, 1, low) >= 800ms);
}
