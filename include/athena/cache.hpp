// Verdict cache tiers. A tier is one small interface (look up a batch, store a batch,
// statistics); TieredCache reads them in order, promotes hits upward and counts each lookup
// once: as a hit of the tier that answered, or as one miss of the run.
#pragma once

#include <athena/error.hpp>
#include <athena/verdict.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace athena {

struct CacheKey {
    std::string sha256;  // 64 lower-case hex digits
    std::string profile; // Analyser::profile()

    bool operator==(const CacheKey&) const = default;
};

// What a tier stores for one key: the verdict and who produced it.
struct CacheEntry {
    Verdict verdict;
    std::string provider;
    std::string model;
    std::string file_type;
    std::int64_t created_unix_s = 0;

    bool operator==(const CacheEntry&) const = default;
};

// Serialised form shared by the tiers that store bytes (SQLite, Redis); versioned with "v".
std::string encode_cache_entry(const CacheEntry& entry);
Result<CacheEntry> decode_cache_entry(std::string_view bytes);

struct TierStats {
    std::uint64_t hits = 0;    // lookups this tier answered
    std::uint64_t misses = 0;  // lookups this tier could not answer (the run may still hit lower)
    std::uint64_t stores = 0;  // entries written
    std::uint64_t errors = 0;  // failed operations (the tier degraded)
    std::uint64_t entries = 0; // entries held, where cheap to know; else 0
};

class CacheTier {
public:
    virtual ~CacheTier() = default;

    // "memory", "sqlite", "redis": the value of the "cache" field of a file record.
    virtual std::string name() const = 0;

    // Returns one slot per key, empty on a miss. Errors: kind "cache" (the caller treats the
    // whole batch as missed in this tier and goes on). Thread-safe.
    virtual Result<std::vector<std::optional<CacheEntry>>>
    lookup(std::span<const CacheKey> keys) = 0;

    // Stores all entries or none. Errors: kind "cache". Thread-safe.
    virtual Result<void> store(std::span<const std::pair<CacheKey, CacheEntry>> entries) = 0;

    virtual TierStats stats() const = 0;
};

// Bounded by entry count; evicts the least recently used entry.
std::unique_ptr<CacheTier> make_memory_tier(std::size_t max_entries);

} // namespace athena
