// The "redis" tier, the sync of queued verdicts and the statistics, against a real server
// (ATHENA_TEST_REDIS_URL; see test_cache_redis_support.hpp).
#include "temp_dir.hpp"
#include "test_cache_redis_support.hpp"

#include <athena/redis_cache.hpp>
#include <athena/sqlite_cache.hpp>
#include <athena/tiered_cache.hpp>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

namespace {

using athena::test::RawRedis;
using athena::test::sample_key;
using athena::test::sample_redis_entry;

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

using Stored = std::pair<athena::CacheKey, athena::CacheEntry>;

std::vector<Stored> numbered_entries(std::size_t count) {
    std::vector<Stored> entries;
    for (std::size_t i = 0; i < count; ++i) {
        std::string digest = fmt::format("{:064x}", i + 1);
        entries.emplace_back(athena::CacheKey{digest, "builtin/1"},
                             sample_redis_entry("entry " + std::to_string(i)));
    }
    return entries;
}

} // namespace

TEST_CASE("RedisTier: round trip between two runners") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    const Stored stored{sample_key('a'), sample_redis_entry()};
    auto writer =
        athena::make_redis_tier(std::make_shared<athena::RedisLink>(*options, nullptr), nullptr);
    auto reader =
        athena::make_redis_tier(std::make_shared<athena::RedisLink>(*options, nullptr), nullptr);

    REQUIRE(writer->store(std::span(&stored, 1)));
    const athena::CacheKey missing = sample_key('b');
    const std::vector<athena::CacheKey> keys{stored.first, missing};
    auto found = reader->lookup(keys);

    REQUIRE(found.has_value());
    REQUIRE((*found)[0].has_value());
    CHECK(*(*found)[0] == stored.second);
    CHECK_FALSE((*found)[1].has_value());
    CHECK(reader->name() == "redis");
    CHECK(reader->stats().hits == 1);
    CHECK(reader->stats().misses == 1);
    CHECK(writer->stats().stores == 1);
}

TEST_CASE("RedisTier: verdicts carry the TTL") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    RawRedis redis(*options);
    const Stored stored{sample_key('c'), sample_redis_entry()};
    const std::string key = athena::redis_verdict_key(*options, stored.first);

    SUBCASE("the default is seven days") {
        auto tier = athena::make_redis_tier(std::make_shared<athena::RedisLink>(*options, nullptr),
                                            nullptr);

        REQUIRE(tier->store(std::span(&stored, 1)));

        const long long ttl_s = redis.integer({"TTL", key});
        CHECK(ttl_s > 7 * 24 * 3600 - 60);
        CHECK(ttl_s <= 7 * 24 * 3600);
    }
    SUBCASE("a configured TTL") {
        options->ttl = std::chrono::seconds(90);
        auto tier = athena::make_redis_tier(std::make_shared<athena::RedisLink>(*options, nullptr),
                                            nullptr);

        REQUIRE(tier->store(std::span(&stored, 1)));

        const long long ttl_s = redis.integer({"TTL", key});
        CHECK(ttl_s > 0);
        CHECK(ttl_s <= 90);
    }
    SUBCASE("zero keeps verdicts forever") {
        options->ttl = std::chrono::seconds(0);
        auto tier = athena::make_redis_tier(std::make_shared<athena::RedisLink>(*options, nullptr),
                                            nullptr);

        REQUIRE(tier->store(std::span(&stored, 1)));

        CHECK(redis.integer({"TTL", key}) == -1);
    }
}

TEST_CASE("RedisTier: prefixes isolate keys") {
    auto first = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(first);
    auto second = athena::test::test_redis_options();
    athena::test::PrefixCleanup cleanup_first(*first);
    athena::test::PrefixCleanup cleanup_second(*second);
    const Stored stored{sample_key('d'), sample_redis_entry()};
    auto first_tier =
        athena::make_redis_tier(std::make_shared<athena::RedisLink>(*first, nullptr), nullptr);
    auto second_tier =
        athena::make_redis_tier(std::make_shared<athena::RedisLink>(*second, nullptr), nullptr);

    REQUIRE(first_tier->store(std::span(&stored, 1)));
    auto in_second = second_tier->lookup(std::span(&stored.first, 1));
    auto in_first = first_tier->lookup(std::span(&stored.first, 1));

    REQUIRE(in_second.has_value());
    CHECK_FALSE((*in_second)[0].has_value());
    REQUIRE(in_first.has_value());
    CHECK((*in_first)[0].has_value());
    RawRedis redis(*first);
    CHECK(redis.command({"EXISTS", first->key_prefix + stored.first.sha256 + ":builtin/1"}) == "1");
}

TEST_CASE("RedisTier: batches are pipelined") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    auto link = std::make_shared<athena::RedisLink>(*options, nullptr);
    auto tier = athena::make_redis_tier(link, nullptr);
    const std::vector<Stored> entries = numbered_entries(1000);
    std::vector<athena::CacheKey> keys;
    for (const Stored& stored : entries) {
        keys.push_back(stored.first);
    }
    REQUIRE(link->check());

    SUBCASE("one store call is one round trip") {
        const auto before = link->counters().round_trips.load();

        REQUIRE(tier->store(entries));

        CHECK(link->counters().round_trips.load() - before == 1);
    }
    SUBCASE("one lookup call is one round trip of MGETs") {
        REQUIRE(tier->store(entries));
        const auto before = link->counters().round_trips.load();

        auto found = tier->lookup(keys);

        CHECK(link->counters().round_trips.load() - before == 1);
        CHECK(link->counters().lookup_batches.load() == 1);
        CHECK(link->counters().lookup_keys.load() == 1000);
        REQUIRE(found.has_value());
        std::size_t hits = 0;
        for (std::size_t i = 0; i < keys.size(); ++i) {
            REQUIRE((*found)[i].has_value());
            CHECK((*found)[i]->verdict.summary == entries[i].second.verdict.summary);
            ++hits;
        }
        CHECK(hits == 1000);
    }
    SUBCASE("one-key lookups made at once share round trips") {
        REQUIRE(tier->store(entries));
        RawRedis redis(*options);
        // While the server is paused, the first lookup's round trip stalls and the other
        // threads' lookups queue behind it; they must then leave together.
        redis.command({"CLIENT", "PAUSE", "300", "ALL"});
        constexpr std::size_t k_threads = 16;
        std::vector<std::thread> threads;
        std::vector<int> hits(k_threads, 0);
        for (std::size_t t = 0; t < k_threads; ++t) {
            threads.emplace_back([&, t] {
                auto found = tier->lookup(std::span(&keys[t], 1));
                hits[t] = found && (*found)[0] ? 1 : 0;
            });
        }
        for (std::thread& thread : threads) {
            thread.join();
        }

        CHECK(std::count(hits.begin(), hits.end(), 1) == static_cast<long>(k_threads));
        CHECK(link->counters().lookup_keys.load() == k_threads);
        CHECK(link->counters().lookup_batches.load() < k_threads / 2);
    }
}

TEST_CASE("RedisTier: a Redis hit is promoted into the local tiers") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    athena::test::TempDir dir;
    auto database = athena::CacheDatabase::open(dir.path());
    REQUIRE(database.has_value());
    const Stored stored{sample_key('e'), sample_redis_entry()};
    auto link = std::make_shared<athena::RedisLink>(*options, nullptr);
    REQUIRE(athena::make_redis_tier(link, nullptr)->store(std::span(&stored, 1)));

    std::vector<std::unique_ptr<athena::CacheTier>> tiers;
    tiers.push_back(athena::make_memory_tier(100));
    tiers.push_back((*database)->make_verdict_tier());
    tiers.push_back(athena::make_redis_tier(link, database->get()));
    athena::TieredCache cache(std::move(tiers));
    auto first = cache.lookup(std::span(&stored.first, 1));
    auto second = cache.lookup(std::span(&stored.first, 1));

    CHECK(first[0].tier == "redis");
    CHECK(second[0].tier == "memory");
    REQUIRE(first[0].entry.has_value());
    CHECK(*first[0].entry == stored.second);
    auto local = (*database)->make_verdict_tier()->lookup(std::span(&stored.first, 1));
    REQUIRE(local.has_value());
    REQUIRE((*local)[0].has_value());
    CHECK(*(*local)[0] == stored.second);
}

TEST_CASE("RedisTier: password authentication") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    RawRedis admin(*options);
    const std::string user = "athena-test-" + athena::test::random_hex(8);
    const std::string password = "pw-" + athena::test::random_hex(16);
    REQUIRE(admin.command({"ACL", "SETUSER", user, "on", ">" + password, "~*", "&*", "+@all"}) ==
            "OK");
    const Stored stored{sample_key('f'), sample_redis_entry()};

    SUBCASE("the right password works") {
        options->username = user;
        options->password = password;
        auto link = std::make_shared<athena::RedisLink>(*options, nullptr);
        auto tier = athena::make_redis_tier(link, nullptr);

        REQUIRE(link->check());
        REQUIRE(tier->store(std::span(&stored, 1)));
        auto found = tier->lookup(std::span(&stored.first, 1));

        REQUIRE(found.has_value());
        CHECK((*found)[0].has_value());
    }
    SUBCASE("a wrong password takes the link down with one warning that hides it") {
        options->username = user;
        options->password = "wrong-" + password;
        athena::test::WarningLog warnings;
        auto link = std::make_shared<athena::RedisLink>(*options, warnings.sink());
        auto tier = athena::make_redis_tier(link, nullptr);

        auto checked = link->check();
        auto found = tier->lookup(std::span(&stored.first, 1));

        REQUIRE_FALSE(checked.has_value());
        CHECK(contains(checked.error().message, "authentication failed"));
        CHECK_FALSE(contains(checked.error().message, password));
        CHECK(link->is_down());
        REQUIRE(found.has_value());
        CHECK_FALSE((*found)[0].has_value());
        CHECK(warnings.count() == 1);
        CHECK_FALSE(contains(warnings.all(), password));
    }
    admin.command({"ACL", "DELUSER", user});
}

TEST_CASE("RedisTier: an unreachable server degrades to the local tiers") {
    const athena::RedisOptions options = athena::test::unreachable_redis_options();
    athena::test::TempDir dir;
    auto database = athena::CacheDatabase::open(dir.path());
    REQUIRE(database.has_value());
    athena::test::WarningLog warnings;
    auto link = std::make_shared<athena::RedisLink>(options, warnings.sink(), "; queued");
    const std::vector<Stored> entries = numbered_entries(3);

    SUBCASE("lookups miss without an error, and one warning is printed") {
        auto tier = athena::make_redis_tier(link, database->get());

        auto first = tier->lookup(std::span(&entries[0].first, 1));
        auto second = tier->lookup(std::span(&entries[1].first, 1));

        REQUIRE(first.has_value());
        REQUIRE(second.has_value());
        CHECK_FALSE((*first)[0].has_value());
        CHECK(link->is_down());
        CHECK(warnings.count() == 1);
        CHECK(contains(warnings.all(), athena::describe_endpoint(options)));
        CHECK(contains(warnings.all(), "; queued"));
    }
    SUBCASE("stores are queued for a later sync") {
        auto tier = athena::make_redis_tier(link, database->get());

        REQUIRE(tier->store(entries));

        auto queued = (*database)->list_pending_sync(100);
        REQUIRE(queued.has_value());
        CHECK(queued->size() == 3);
        CHECK(link->counters().queued_for_sync.load() == 3);
        CHECK(warnings.count() == 1);
    }
    SUBCASE("without a database a store fails") {
        auto tier = athena::make_redis_tier(link, nullptr);

        auto stored = tier->store(entries);

        REQUIRE_FALSE(stored.has_value());
        CHECK(stored.error().kind == "cache");
        CHECK(contains(stored.error().message, "no local cache database"));
    }
    SUBCASE("a refused connection fails within the connect timeout") {
        const auto started = std::chrono::steady_clock::now();

        CHECK_FALSE(link->check().has_value());

        CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(2));
    }
}

TEST_CASE("RedisTier: the HMAC guard rejects forged values") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    options->secret = "fleet-secret";
    RawRedis redis(*options);
    athena::test::WarningLog warnings;
    auto link = std::make_shared<athena::RedisLink>(*options, warnings.sink());
    auto tier = athena::make_redis_tier(link, nullptr);
    const Stored stored{sample_key('1'), sample_redis_entry()};
    const std::string key = athena::redis_verdict_key(*options, stored.first);
    REQUIRE(tier->store(std::span(&stored, 1)));

    SUBCASE("a signed value is trusted") {
        auto found = tier->lookup(std::span(&stored.first, 1));

        REQUIRE(found.has_value());
        CHECK((*found)[0].has_value());
        CHECK(link->counters().rejected_values.load() == 0);
    }
    SUBCASE("a forged verdict is ignored, counted and reported once") {
        std::string value = redis.command({"GET", key});
        const auto at = value.find("malicious");
        REQUIRE(at != std::string::npos);
        value.replace(at, 9, "benign");
        redis.command({"SET", key, value});

        auto first = tier->lookup(std::span(&stored.first, 1));
        auto second = tier->lookup(std::span(&stored.first, 1));

        REQUIRE(first.has_value());
        CHECK_FALSE((*first)[0].has_value());
        CHECK_FALSE((*second)[0].has_value());
        CHECK(link->counters().rejected_values.load() == 2);
        CHECK(tier->stats().errors == 2);
        CHECK(warnings.count() == 1);
        CHECK(contains(warnings.all(), "ATHENA_CACHE_SECRET"));
        CHECK_FALSE(contains(warnings.all(), "fleet-secret"));
    }
    SUBCASE("an unsigned value is ignored") {
        redis.command({"SET", key, athena::encode_cache_entry(stored.second)});

        auto found = tier->lookup(std::span(&stored.first, 1));

        REQUIRE(found.has_value());
        CHECK_FALSE((*found)[0].has_value());
        CHECK(link->counters().rejected_values.load() == 1);
    }
}

TEST_CASE("RedisTier: read-only mode never writes") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    athena::test::TempDir dir;
    auto database = athena::CacheDatabase::open(dir.path());
    REQUIRE(database.has_value());
    RawRedis redis(*options);
    const Stored shared{sample_key('2'), sample_redis_entry()};
    redis.command({"SET", athena::redis_verdict_key(*options, shared.first),
                   athena::encode_cache_entry(shared.second)});
    options->is_read_only = true;
    auto tier = athena::make_redis_tier(std::make_shared<athena::RedisLink>(*options, nullptr),
                                        database->get());
    const Stored fresh{sample_key('3'), sample_redis_entry()};

    REQUIRE(tier->store(std::span(&fresh, 1)));
    auto found = tier->lookup(std::span(&shared.first, 1));

    CHECK(redis.command({"EXISTS", athena::redis_verdict_key(*options, fresh.first)}) == "0");
    CHECK((*database)->stats()->pending_sync == 0);
    REQUIRE(found.has_value());
    CHECK((*found)[0].has_value());
}

TEST_CASE("RedisLink: an error reply leaves the link up") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    athena::test::WarningLog warnings;
    athena::RedisLink link(*options, warnings.sink());
    const std::string key = options->key_prefix + "text";

    REQUIRE(link.command({"SET", key, "not a number"}));
    auto reply = link.command({"INCR", key});

    REQUIRE(reply.has_value());
    CHECK(reply->is_error());
    CHECK_FALSE(link.is_down());
    CHECK(warnings.count() == 0);
}

TEST_CASE("push_pending_sync: queued verdicts reach Redis") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    athena::test::TempDir dir;
    auto database = athena::CacheDatabase::open(dir.path());
    REQUIRE(database.has_value());
    const std::vector<Stored> entries = numbered_entries(5);
    REQUIRE((*database)->queue_pending_sync(entries));
    RawRedis redis(*options);

    SUBCASE("every queued verdict is pushed and leaves the queue") {
        athena::RedisLink link(*options, nullptr);

        auto pushed = athena::push_pending_sync(link, **database);

        REQUIRE(pushed.has_value());
        CHECK(pushed->pushed == 5);
        CHECK(pushed->dropped == 0);
        CHECK((*database)->stats()->pending_sync == 0);
        auto tier = athena::make_redis_tier(std::make_shared<athena::RedisLink>(*options, nullptr),
                                            nullptr);
        for (const Stored& stored : entries) {
            auto found = tier->lookup(std::span(&stored.first, 1));
            REQUIRE((*found)[0].has_value());
            CHECK(*(*found)[0] == stored.second);
            CHECK(redis.integer({"TTL", athena::redis_verdict_key(*options, stored.first)}) > 0);
        }
    }
    SUBCASE("a row that no longer decodes is dropped") {
        sqlite3* connection = nullptr;
        REQUIRE(sqlite3_open((dir.path() / "cache.db").c_str(), &connection) == SQLITE_OK);
        REQUIRE(sqlite3_exec(connection,
                             ("UPDATE pending_sync SET entry = 'garbage' WHERE sha256 = '" +
                              entries[0].first.sha256 + "'")
                                 .c_str(),
                             nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(connection);
        athena::RedisLink link(*options, nullptr);

        auto pushed = athena::push_pending_sync(link, **database);

        REQUIRE(pushed.has_value());
        CHECK(pushed->pushed == 4);
        CHECK(pushed->dropped == 1);
        CHECK((*database)->stats()->pending_sync == 0);
    }
    SUBCASE("a read-only link pushes nothing") {
        options->is_read_only = true;
        athena::RedisLink link(*options, nullptr);

        auto pushed = athena::push_pending_sync(link, **database);

        REQUIRE_FALSE(pushed.has_value());
        CHECK(pushed.error().kind == "usage");
        CHECK((*database)->stats()->pending_sync == 5);
    }
    SUBCASE("an unreachable server leaves the queue as it was") {
        athena::RedisLink link(athena::test::unreachable_redis_options(), nullptr);

        auto pushed = athena::push_pending_sync(link, **database);

        REQUIRE_FALSE(pushed.has_value());
        CHECK(pushed.error().kind == "cache");
        CHECK((*database)->stats()->pending_sync == 5);
    }
}

TEST_CASE("read_redis_stats: counts keys under the prefix") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    auto link = std::make_shared<athena::RedisLink>(*options, nullptr);
    REQUIRE(athena::make_redis_tier(link, nullptr)->store(numbered_entries(7)));
    RawRedis redis(*options);
    redis.command(
        {"SET", athena::redis_lease_key(*options, sample_key('4')), "runner", "PX", "60000"});
    redis.command({"SET", options->key_prefix + "breaker:openai", "runner", "PX", "60000"});

    auto stats = athena::read_redis_stats(*link);

    REQUIRE(stats.has_value());
    CHECK(stats->verdict_keys == 7);
    CHECK(stats->lease_keys == 1);
    CHECK(stats->breaker_keys == 1);
    CHECK(stats->endpoint == athena::describe_endpoint(*options));
    CHECK_FALSE(stats->version.empty());
    CHECK(stats->used_memory_bytes > 0);
}

// Also the harness of bench/redis_lookup.sh, which sets ATHENA_REDIS_BENCH_KEYS to 100000 and
// reads the MESSAGE lines; the default keeps the unit run short.
TEST_CASE("RedisTier: lookup throughput") {
    auto options = athena::test::test_redis_options();
    ATHENA_REQUIRE_TEST_REDIS(options);
    athena::test::PrefixCleanup cleanup(*options);
    const char* configured = std::getenv("ATHENA_REDIS_BENCH_KEYS");
    const std::size_t key_count = configured != nullptr ? std::stoul(configured) : 20000;
    constexpr std::size_t k_batch = 1000;
    constexpr std::size_t k_threads = 16;
    auto link = std::make_shared<athena::RedisLink>(*options, nullptr);
    auto tier = athena::make_redis_tier(link, nullptr);
    const std::vector<Stored> entries = numbered_entries(key_count);
    std::vector<athena::CacheKey> keys;
    for (const Stored& stored : entries) {
        keys.push_back(stored.first);
    }
    REQUIRE(tier->store(entries));
    using Clock = std::chrono::steady_clock;
    const auto seconds_since = [](Clock::time_point started) {
        return std::chrono::duration<double>(Clock::now() - started).count();
    };

    SUBCASE("batches from one thread") {
        std::size_t hits = 0;
        const auto started = Clock::now();
        for (std::size_t first = 0; first < keys.size(); first += k_batch) {
            const std::size_t count = std::min(k_batch, keys.size() - first);
            auto found = tier->lookup(std::span(keys).subspan(first, count));
            REQUIRE(found.has_value());
            hits += static_cast<std::size_t>(std::count_if(
                found->begin(), found->end(), [](const auto& slot) { return slot.has_value(); }));
        }
        const double seconds = seconds_since(started);

        CHECK(hits == key_count);
        CHECK(link->counters().lookup_batches.load() == (key_count + k_batch - 1) / k_batch);
        const double fetch_seconds =
            static_cast<double>(link->counters().lookup_busy_ns.load()) / 1e9;
        MESSAGE(fmt::format("batch lookups: {} keys in {:.3f} s = {:.0f} lookups/s "
                            "({} keys per call; the round trips alone took {:.3f} s = {:.0f} "
                            "keys/s, the rest is decoding)",
                            key_count, seconds, static_cast<double>(key_count) / seconds,
                            k_batch, fetch_seconds,
                            static_cast<double>(key_count) / fetch_seconds));
    }
    SUBCASE("one-key calls from many threads") {
        std::atomic<std::size_t> next{0};
        std::atomic<std::size_t> hits{0};
        const auto started = Clock::now();
        std::vector<std::thread> threads;
        for (std::size_t t = 0; t < k_threads; ++t) {
            threads.emplace_back([&] {
                for (std::size_t i = next++; i < keys.size(); i = next++) {
                    auto found = tier->lookup(std::span(&keys[i], 1));
                    if (found && (*found)[0]) {
                        ++hits;
                    }
                }
            });
        }
        for (std::thread& thread : threads) {
            thread.join();
        }
        const double seconds = seconds_since(started);

        CHECK(hits.load() == key_count);
        const auto batches = link->counters().lookup_batches.load();
        CHECK(batches <= key_count);
        MESSAGE(fmt::format("one-key lookups from {} threads: {} keys in {:.3f} s = {:.0f} "
                            "lookups/s ({:.1f} keys per round trip)",
                            k_threads, key_count, seconds, static_cast<double>(key_count) / seconds,
                            static_cast<double>(key_count) / static_cast<double>(batches)));
    }
}
