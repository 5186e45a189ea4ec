#include <athena/cache.hpp>

#include <doctest/doctest.h>

namespace {

athena::CacheKey key(const std::string& digest) {
    return athena::CacheKey{digest, "profile"};
}

athena::CacheEntry entry(const std::string& summary) {
    athena::CacheEntry out;
    out.verdict.summary = summary;
    out.provider = "builtin";
    return out;
}

bool holds(athena::CacheTier& tier, const std::string& digest) {
    const athena::CacheKey wanted = key(digest);
    auto found = tier.lookup(std::span(&wanted, 1));
    REQUIRE(found.has_value());
    return (*found)[0].has_value();
}

} // namespace

TEST_CASE("MemoryTier: evicts the least recently used entry") {
    auto tier = athena::make_memory_tier(2);
    const std::pair<athena::CacheKey, athena::CacheEntry> a{key("a"), entry("A")};
    const std::pair<athena::CacheKey, athena::CacheEntry> b{key("b"), entry("B")};
    const std::pair<athena::CacheKey, athena::CacheEntry> c{key("c"), entry("C")};
    REQUIRE(tier->store(std::span(&a, 1)));
    REQUIRE(tier->store(std::span(&b, 1)));

    // Reading "a" makes "b" the least recently used, so storing "c" evicts "b".
    CHECK(holds(*tier, "a"));
    REQUIRE(tier->store(std::span(&c, 1)));

    CHECK(holds(*tier, "a"));
    CHECK(holds(*tier, "c"));
    CHECK_FALSE(holds(*tier, "b"));
    CHECK(tier->stats().entries == 2);
}

TEST_CASE("MemoryTier: lookup returns the stored entry and counts") {
    auto tier = athena::make_memory_tier(10);
    const std::pair<athena::CacheKey, athena::CacheEntry> a{key("a"), entry("A")};
    REQUIRE(tier->store(std::span(&a, 1)));
    const std::vector<athena::CacheKey> keys{key("a"), key("x")};

    auto found = tier->lookup(keys);

    REQUIRE(found.has_value());
    REQUIRE((*found)[0].has_value());
    CHECK((*found)[0]->verdict.summary == "A");
    CHECK_FALSE((*found)[1].has_value());
    CHECK(tier->stats().hits == 1);
    CHECK(tier->stats().misses == 1);
}

TEST_CASE("MemoryTier: a different profile is a different key") {
    auto tier = athena::make_memory_tier(10);
    const std::pair<athena::CacheKey, athena::CacheEntry> a{key("a"), entry("A")};
    REQUIRE(tier->store(std::span(&a, 1)));
    const athena::CacheKey other{"a", "other-profile"};

    auto found = tier->lookup(std::span(&other, 1));

    REQUIRE(found.has_value());
    CHECK_FALSE((*found)[0].has_value());
}
