// The shared Redis tier: many runners (CI jobs, analysts' laptops) pointed at one Redis share
// verdicts, take a lease before paying for an analysis, and keep working when Redis goes away.
//
// Keys, all under the configured prefix ("athena:" by default):
//   {prefix}{sha256}:{profile}          a verdict: encode_cache_entry() JSON, optionally
//                                       wrapped with an HMAC (see RedisOptions::secret)
//   {prefix}lease:{sha256}:{profile}    the runner id analysing that file right now
//   {prefix}breaker:{provider}          a provider whose circuit breaker opened on a runner
#pragma once

#include <athena/analysis_service.hpp>
#include <athena/cache.hpp>
#include <athena/error.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace athena {

class CacheDatabase;

// Server, credentials and usage rules of the shared tier for this runner.
struct RedisOptions {
    std::string host = "127.0.0.1";
    int port = 6379;
    std::string socket_path; // a unix socket; when set, host and port are not used
    std::string username;    // ACL user (Redis 6 or later); empty: the default user
    std::string password;    // never printed: messages and describe_endpoint() leave it out
    int db = 0;
    std::string key_prefix = "athena:";
    std::chrono::seconds ttl{7 * 24 * 3600}; // of each verdict; 0 keeps verdicts forever
    std::chrono::milliseconds connect_timeout{200};
    std::chrono::milliseconds command_timeout{500};
    bool is_read_only = false; // read verdicts, never write (no stores, leases or sync)
    // Key of the HMAC-SHA256 that signs each value over its Redis key and bytes. When set,
    // unsigned values and values whose HMAC does not verify are ignored and counted.
    std::string secret;
    // Lifetime of an analysis lease. The owner renews it every third of this while its
    // analysis runs, so it expires only when the owner stops (crash, kill, lost network).
    std::chrono::milliseconds lease{30'000};
    // Maximum wait for another runner's verdict before this runner analyses the file itself.
    std::chrono::milliseconds lease_wait{120'000};
};

// Parses redis://[[username]:password@]host[:port][/db] and unix:///path/to.sock[?db=N].
// Fields the URL does not name keep their value from `base`. Percent-escapes in the user
// name and password are decoded. rediss:// is rejected: this build's hiredis (0.14) has no
// TLS. Errors: kind "usage"; no message repeats the password.
Result<RedisOptions> parse_redis_url(std::string_view url, RedisOptions base = {});

// "redis://127.0.0.1:6379/0" or "unix:///run/redis.sock?db=0": the server, never the
// credentials. Used in every message about Redis.
std::string describe_endpoint(const RedisOptions& options);

// {prefix}{sha256}:{profile}
std::string redis_verdict_key(const RedisOptions& options, const CacheKey& key);
// {prefix}lease:{sha256}:{profile}
std::string redis_lease_key(const RedisOptions& options, const CacheKey& key);

// The bytes stored for a verdict: the encoded entry, wrapped as
// {"hmac":"<64 hex digits>","entry":<encoded entry>} when a secret is set.
std::string encode_redis_value(const RedisOptions& options, const std::string& redis_key,
                               const CacheEntry& entry);
// Decodes stored bytes. Errors: kind "cache" for bytes that do not decode, and kind
// "integrity" when a secret is set and the value is unsigned or its HMAC does not verify.
// Without a secret, a signed value is accepted unverified.
Result<CacheEntry> decode_redis_value(const RedisOptions& options, const std::string& redis_key,
                                      std::string_view bytes);

// A Redis reply, copied out of hiredis.
struct RedisReply {
    enum class Type { nil, string, integer, status, error, array };
    Type type = Type::nil;
    std::string text; // string, status and error replies
    long long integer = 0;
    std::vector<RedisReply> elements;

    bool is_error() const { return type == Type::error; }
    bool is_status(std::string_view status) const { return type == Type::status && text == status; }
};

using RedisCommand = std::vector<std::string>;

// Counters of one run, shared by the tier, the lease service and the provider marks.
// Any thread may update them.
struct RedisCounters {
    std::atomic<std::uint64_t> round_trips{0};     // pipelines sent, each one round trip
    std::atomic<std::uint64_t> lookup_keys{0};     // keys asked with MGET
    std::atomic<std::uint64_t> lookup_batches{0};  // MGET round trips
    std::atomic<std::uint64_t> lookup_busy_ns{0};  // wall time with an MGET in flight
    std::atomic<std::uint64_t> rejected_values{0}; // values that failed the HMAC check
    std::atomic<std::uint64_t> queued_for_sync{0}; // verdicts queued in SQLite this run
    std::atomic<std::uint64_t> synced{0};          // queued verdicts pushed this run
};

// The connections of one run to one Redis, shared by every thread. Once a connection fails
// (refused, timed out, reset, authentication rejected), the link is down for the rest of
// the run: every later call fails at once with kind "cache", and `warn` hears of it once.
// Error replies to single commands (OOM, READONLY) do not take the link down.
class RedisLink {
public:
    using Warn = std::function<void(const std::string&)>;

    // `down_note` ends the warning printed when the link goes down, e.g. what happens to
    // verdicts made meanwhile. Connects lazily; call check() to connect now.
    RedisLink(RedisOptions options, Warn warn, std::string down_note = {});
    ~RedisLink();
    RedisLink(const RedisLink&) = delete;
    RedisLink& operator=(const RedisLink&) = delete;

    const RedisOptions& options() const { return m_options; }
    bool is_down() const { return m_is_down.load(std::memory_order_acquire); }
    RedisCounters& counters() { return m_counters; }

    // Opens a connection (or reuses one) and pings the server. Errors: kind "cache".
    Result<void> check();

    // Sends the commands in one write and reads every reply: one round trip. A connection
    // is taken from the pool, or opened, for the call. Thread-safe. Errors: kind "cache"
    // when the link is or goes down; error replies come back as replies.
    Result<std::vector<RedisReply>> pipeline(std::span<const RedisCommand> commands);
    Result<RedisReply> command(RedisCommand command);

    // Takes the link down with this reason (as a failed connection would), warning once.
    void mark_down(const std::string& reason);

    // Replaces the password and the HMAC secret, wherever they occur in `text`, with
    // "********".
    std::string redact(std::string text) const;
    // Passes a message, redacted, to the run's warning channel.
    void warn(const std::string& message) const;

private:
    class Connection;
    Result<std::unique_ptr<Connection>> take_connection();
    void return_connection(std::unique_ptr<Connection> connection);

    const RedisOptions m_options;
    const Warn m_warn;
    const std::string m_down_note;
    std::atomic<bool> m_is_down{false};
    std::once_flag m_warned;
    RedisCounters m_counters;
    std::mutex m_pool_mutex; // guards m_idle
    std::vector<std::unique_ptr<Connection>> m_idle;
};

// The "redis" tier, lowest in read order. Lookups go out as MGET in pipelined batches, and
// lookups that threads make at the same time are merged into one batch, so the pipeline's
// one-key lookups cost a fraction of a round trip each. Stores are pipelined SET ... EX.
// A lookup never fails: a link that is down returns every key as a miss. A store that
// cannot reach Redis queues the entries in `database` (when given) for a later sync and
// succeeds; it fails only when the entries can be neither stored nor queued. Values that
// fail the HMAC check are misses, counted in stats().errors and the link's counters.
// In read-only mode stores do nothing. Thread-safe.
std::unique_ptr<CacheTier> make_redis_tier(std::shared_ptr<RedisLink> link,
                                           CacheDatabase* database);

struct RedisSyncResult {
    std::uint64_t pushed = 0;  // queued verdicts now in Redis and removed from the queue
    std::uint64_t dropped = 0; // queued rows that no longer decode, removed unpushed
};

// Pushes the verdicts queued in `database` to Redis in pipelined batches, removing each
// batch from the queue once Redis has stored it. Errors: kind "cache" (Redis or SQLite failed;
// batches pushed before stay pushed) and "usage" (the link is read-only).
Result<RedisSyncResult> push_pending_sync(RedisLink& link, CacheDatabase& database);

// Server statistics and key counts for `athena cache redis-stats`.
struct RedisServerStats {
    std::string endpoint;                // describe_endpoint()
    std::string version;                 // redis_version
    std::uint64_t verdict_keys = 0;      // verdicts under the prefix
    std::uint64_t lease_keys = 0;        // leases held right now
    std::uint64_t breaker_keys = 0;      // providers marked open right now
    std::uint64_t used_memory_bytes = 0; // the whole server's, as INFO memory reports it
    std::uint64_t keyspace_hits = 0;     // the whole server's, since its start or RESETSTAT
    std::uint64_t keyspace_misses = 0;
};

// Reads INFO and counts the keys under the prefix with SCAN (no KEYS, which blocks the
// server). Errors: kind "cache".
Result<RedisServerStats> read_redis_stats(RedisLink& link);

// A name for this runner in leases and marks: "{hostname}:{pid}:{8 random hex digits}".
std::string make_runner_id();

// Wraps `inner` with a fleet-wide lease per cache key, so that of the runners sharing one
// Redis only one analyses a given file at a time. submit() takes the lease with
// SET {lease key} {runner id} NX PX {lease ms} and reads the verdict key in the same round
// trip; it then
//   - returns the stored verdict at once when another runner has finished the file;
//   - hands the request to `inner` when it got the lease; the outcome's verdict is written
//     to Redis and the lease released (only if this runner still holds it) in one script;
//   - otherwise parks the request on its own thread, which polls until the verdict appears
//     (answered with provider and model from the stored entry), the lease expires or is
//     released without a verdict (this runner takes it over), or lease_wait passes (this
//     runner analyses without a lease).
// submit() blocks for that one round trip at most (bounded by the command timeout), never
// for the wait. When the link is down or read-only, requests go straight to `inner`.
// summary_json() adds "redis" with these counts; report_text() adds a "redis" line.
std::unique_ptr<AnalysisService> make_leased_analysis(std::unique_ptr<AnalysisService> inner,
                                                      std::shared_ptr<RedisLink> link,
                                                      std::string runner_id);

// Shares circuit breaker openings between runners: a runner whose breaker for a provider
// opens marks it for the breaker's reset timeout, and the others skip that provider until
// the mark expires instead of each paying failure_threshold failures. is_provider_open()
// results are cached locally for cache_for, so asking before every request costs about one
// round trip per provider per cache_for. Thread-safe.
class RedisProviderMarks {
public:
    RedisProviderMarks(std::shared_ptr<RedisLink> link, std::string runner_id,
                       std::chrono::milliseconds cache_for = std::chrono::milliseconds(500));

    // Marks the provider open in Redis for `ttl`. Errors: kind "cache" (link down), "usage"
    // (read-only link).
    Result<void> mark_provider_open(const std::string& provider, std::chrono::milliseconds ttl);
    // Whether a runner (this one included) marked the provider open and the mark has not
    // expired. False when Redis cannot be asked: a missing mark never blocks a provider.
    bool is_provider_open(const std::string& provider);
    // Removes the mark, e.g. when this runner's breaker closed again after a good probe.
    // Errors: kind "cache", "usage" (read-only link).
    Result<void> clear_provider_mark(const std::string& provider);

private:
    struct Cached {
        bool is_open = false;
        std::chrono::steady_clock::time_point until;
    };

    std::string mark_key(const std::string& provider) const;

    std::shared_ptr<RedisLink> m_link;
    const std::string m_runner_id;
    const std::chrono::milliseconds m_cache_for;
    std::mutex m_mutex; // guards m_cache
    std::unordered_map<std::string, Cached> m_cache;
};

} // namespace athena
