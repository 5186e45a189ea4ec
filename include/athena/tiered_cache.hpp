// The tiers in read order (memory, sqlite, later redis) behind one lookup and one store.
#pragma once

#include <athena/cache.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace athena {

struct TieredLookup {
    std::optional<CacheEntry> entry;
    std::string tier; // name of the tier that answered; empty on a miss
};

// Counts each lookup once: a hit of the tier that answered, or one miss of the run. Misses
// of the tiers above a hit are not misses of the run.
struct TieredStats {
    std::map<std::string, std::uint64_t> hits_by_tier;
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
    std::uint64_t tier_errors = 0;
};

// Thread-safe: the tiers are, and the counters are atomic or mutex-guarded.
class TieredCache {
public:
    // Tiers in read order, highest (fastest) first.
    explicit TieredCache(std::vector<std::unique_ptr<CacheTier>> tiers);

    // Looks the keys up tier by tier; each tier sees only the keys the tiers above missed.
    // A hit is promoted into every tier above the one that answered. A tier that fails is
    // treated as missing every key it was asked and counted in tier_errors; `on_tier_error`
    // hears of it (once per failure) so the caller can warn.
    std::vector<TieredLookup> lookup(std::span<const CacheKey> keys);

    // Stores into every tier. Returns the first error; the other tiers are still written.
    Result<void> store(std::span<const std::pair<CacheKey, CacheEntry>> entries);

    // Stores into the tiers above `tier_name` only (used to fill memory after a dedupe).
    void store_above(const std::string& tier_name,
                     std::span<const std::pair<CacheKey, CacheEntry>> entries);

    TieredStats stats() const;
    std::vector<std::pair<std::string, TierStats>> tier_stats() const;
    bool empty() const { return m_tiers.empty(); }
    std::vector<Error> take_errors();

private:
    std::vector<std::unique_ptr<CacheTier>> m_tiers;
    mutable std::mutex m_mutex; // guards m_stats and m_errors
    TieredStats m_stats;
    std::vector<Error> m_errors;
};

} // namespace athena
