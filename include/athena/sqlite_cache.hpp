// The local cache database: one SQLite file (cache.db in the cache folder) that holds the
// verdict tier and the stat cache. WAL mode and a busy timeout let several athena processes
// share it; the schema carries an application id and a version with a migration path.
#pragma once

#include <athena/cache.hpp>
#include <athena/error.hpp>
#include <athena/hash.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace athena {

// A digest known for one version of a file, as the stat cache stores it.
struct StatRecord {
    FileIdentity identity;
    std::int64_t recorded_ns = 0; // wall-clock time taken just before the file was read
    std::string sha256;
};

// Timestamps on disk can be coarser than the clock: a file changed within the same tick as
// its entry was written keeps its old mtime. Entries whose mtime or ctime fall within this
// window before recorded_ns are "racily clean" and are re-read, as git does with its index.
inline constexpr std::int64_t k_racy_window_ns = 1'000'000'000;

// A verdict that the shared tier could not take (Redis down or failing), queued until a
// later run or `athena cache sync` pushes it there.
struct PendingSyncEntry {
    CacheKey key;
    std::string encoded_entry; // encode_cache_entry() bytes, as queued
    std::int64_t queued_unix_s = 0;
};

struct CacheDatabaseStats {
    std::uint64_t verdicts = 0;
    std::uint64_t stat_entries = 0;
    std::uint64_t pending_sync = 0; // verdicts queued for the shared tier
    std::uint64_t file_bytes = 0; // cache.db plus its WAL
    int schema_version = 0;
};

class CacheDatabase {
public:
    // Opens or creates DIR/cache.db. Errors (kind "cache"): the folder cannot be created or
    // written; the file is not a SQLite database, belongs to another program, or has a
    // schema newer than this athena. Nothing in an existing file is ever deleted here.
    static Result<std::shared_ptr<CacheDatabase>> open(const std::filesystem::path& folder);

    virtual ~CacheDatabase() = default;

    virtual const std::filesystem::path& file() const = 0;

    // The verdict tier over this database ("sqlite"). Thread-safe.
    virtual std::unique_ptr<CacheTier> make_verdict_tier() = 0;

    // Returns the digest stored for this version of the file, or nothing when the entry is
    // missing, differs in size or timestamps, or is racily clean. Thread-safe. Errors: "cache".
    virtual Result<std::optional<std::string>> stat_lookup(const FileIdentity& identity) = 0;

    // Writes all records in one transaction. Thread-safe (writes are serialised).
    virtual Result<void> stat_store(std::span<const StatRecord> records) = 0;

    virtual Result<CacheDatabaseStats> stats() = 0;
    // Deletes every verdict and stat entry (athena cache clear). Verdicts queued for the
    // shared tier stay queued: they are owed to the other runners, not part of this cache.
    virtual Result<void> clear() = 0;
    // Every stored entry for one digest, as (profile, encoded entry) pairs.
    virtual Result<std::vector<std::pair<std::string, std::string>>>
    verdicts_for(const std::string& sha256) = 0;
    // Deletes verdicts created before the given time; returns how many.
    virtual Result<std::uint64_t> prune_verdicts(std::int64_t older_than_unix_s) = 0;

    // Queues verdicts for the shared tier, in one transaction. A key already queued gets the
    // newer entry. Thread-safe. Errors: "cache".
    virtual Result<void>
    queue_pending_sync(std::span<const std::pair<CacheKey, CacheEntry>> entries) = 0;
    // Returns up to `limit` queued verdicts in key order (the table's own order, so a
    // batch costs no sort). Thread-safe. Errors: "cache".
    virtual Result<std::vector<PendingSyncEntry>> list_pending_sync(std::size_t limit) = 0;
    // Removes these keys from the queue once the shared tier has stored them. Keys not queued
    // are ignored. Thread-safe. Errors: "cache".
    virtual Result<void> mark_synced(std::span<const CacheKey> keys) = 0;
};

// The current schema version written by this athena. Version 2 added the pending_sync
// table; a version 1 file is migrated on open and keeps its rows.
inline constexpr int k_cache_schema_version = 2;

} // namespace athena
