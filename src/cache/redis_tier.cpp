// The "redis" verdict tier, the sync of queued verdicts, and the statistics command.
#include <athena/redis_cache.hpp>
#include <athena/sqlite_cache.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <deque>

namespace athena {
namespace {

using Clock = std::chrono::steady_clock;

// Keys per MGET: enough that one command carries a worker pool's worth of lookups, few
// enough that one reply (about 420 bytes per verdict) stays near 100 KB.
constexpr std::size_t k_mget_keys = 256;
// Keys one dispatch takes from the queue: all its MGETs go out in one write.
constexpr std::size_t k_dispatch_max_keys = 8192;
// Commands per pipeline when storing or syncing, so a 100k-entry batch does not build one
// huge buffer.
constexpr std::size_t k_write_pipeline_commands = 2048;
constexpr std::size_t k_sync_batch_rows = 2048;

std::uint64_t elapsed_ns(Clock::time_point since) {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - since).count());
}

std::string short_digest(const std::string& sha256) {
    return sha256.substr(0, 12);
}

// SET {key} {value} [EX ttl]
RedisCommand set_command(const RedisOptions& options, std::string key, std::string value) {
    RedisCommand command{"SET", std::move(key), std::move(value)};
    if (options.ttl.count() > 0) {
        command.emplace_back("EX");
        command.emplace_back(std::to_string(options.ttl.count()));
    }
    return command;
}

// Runs SET commands in pipelines of bounded size. Returns the first error reply or failure.
Result<void> run_writes(RedisLink& link, std::span<const RedisCommand> commands) {
    for (std::size_t start = 0; start < commands.size(); start += k_write_pipeline_commands) {
        const std::size_t count = std::min(k_write_pipeline_commands, commands.size() - start);
        auto replies = link.pipeline(commands.subspan(start, count));
        if (!replies) {
            return std::unexpected(replies.error());
        }
        for (const RedisReply& reply : *replies) {
            if (reply.is_error()) {
                return fail("cache", fmt::format("Redis at {} rejected a write: {}",
                                                 describe_endpoint(link.options()),
                                                 link.redact(reply.text)));
            }
        }
    }
    return {};
}

// Merges the lookups of threads that ask at the same time into one pipelined round trip.
// The first caller to find no dispatch running becomes the dispatcher. It takes every
// request queued so far, sends their keys as MGETs in one write, hands out the values and
// wakes the others. A caller whose request is still queued then dispatches the next batch. While
// one round trip is in flight, the next batch gathers, so the batch size follows the number of
// threads asking.
class LookupBatcher {
public:
    explicit LookupBatcher(RedisLink& link) : m_link(link) {}

    // Returns each key's stored bytes, empty on a miss. Errors: kind "cache".
    Result<std::vector<std::optional<std::string>>> lookup(std::span<const std::string> keys) {
        Request request{keys, {}, std::nullopt, false};
        std::unique_lock lock(m_mutex);
        m_queue.push_back(&request);
        while (!request.is_done) {
            if (m_is_dispatching) {
                m_done.wait(lock);
                continue;
            }
            m_is_dispatching = true;
            std::vector<Request*> batch = take_batch();
            lock.unlock();
            dispatch(batch);
            lock.lock();
            for (Request* taken : batch) {
                taken->is_done = true;
            }
            m_is_dispatching = false;
            m_done.notify_all();
        }
        if (request.error) {
            return std::unexpected(*request.error);
        }
        return std::move(request.values);
    }

private:
    struct Request {
        std::span<const std::string> keys;
        std::vector<std::optional<std::string>> values;
        std::optional<Error> error;
        bool is_done = false;
    };

    // Takes queued requests up to k_dispatch_max_keys keys, and always at least one.
    // The caller holds m_mutex.
    std::vector<Request*> take_batch() {
        std::vector<Request*> batch;
        std::size_t keys = 0;
        while (!m_queue.empty() &&
               (batch.empty() || keys + m_queue.front()->keys.size() <= k_dispatch_max_keys)) {
            keys += m_queue.front()->keys.size();
            batch.push_back(m_queue.front());
            m_queue.pop_front();
        }
        return batch;
    }

    void dispatch(const std::vector<Request*>& batch) {
        std::vector<RedisCommand> commands;
        std::size_t total_keys = 0;
        for (const Request* request : batch) {
            for (const std::string& key : request->keys) {
                if (commands.empty() || commands.back().size() > k_mget_keys) {
                    commands.push_back(RedisCommand{"MGET"});
                }
                commands.back().push_back(key);
                ++total_keys;
            }
        }
        const auto started = Clock::now();
        auto replies = m_link.pipeline(commands);
        RedisCounters& counters = m_link.counters();
        counters.lookup_busy_ns.fetch_add(elapsed_ns(started), std::memory_order_relaxed);
        counters.lookup_batches.fetch_add(1, std::memory_order_relaxed);
        counters.lookup_keys.fetch_add(total_keys, std::memory_order_relaxed);
        if (!replies) {
            for (Request* request : batch) {
                request->error = replies.error();
            }
            return;
        }
        distribute(batch, *replies);
    }

    // Hands each request the values of its keys, in the order the keys went out.
    void distribute(const std::vector<Request*>& batch, std::vector<RedisReply>& replies) {
        std::size_t command = 0;
        std::size_t element = 0;
        for (Request* request : batch) {
            request->values.resize(request->keys.size());
            for (std::size_t i = 0; i < request->keys.size(); ++i) {
                RedisReply& reply = replies[command];
                if (reply.type != RedisReply::Type::array) {
                    request->error = Error{"cache", "MGET failed: " + m_link.redact(reply.text)};
                } else if (element < reply.elements.size() &&
                           reply.elements[element].type == RedisReply::Type::string) {
                    request->values[i] = std::move(reply.elements[element].text);
                }
                if (++element == k_mget_keys) {
                    ++command;
                    element = 0;
                }
            }
        }
    }

    RedisLink& m_link;
    std::mutex m_mutex; // guards m_queue, m_is_dispatching and the requests' is_done
    std::condition_variable m_done;
    std::deque<Request*> m_queue;
    bool m_is_dispatching = false;
};

class RedisTier final : public CacheTier {
public:
    RedisTier(std::shared_ptr<RedisLink> link, CacheDatabase* database)
        : m_link(std::move(link)), m_database(database), m_batcher(*m_link) {}

    std::string name() const override { return "redis"; }

    Result<std::vector<std::optional<CacheEntry>>> lookup(std::span<const CacheKey> keys) override {
        std::vector<std::optional<CacheEntry>> found(keys.size());
        if (m_link->is_down()) {
            count(0, keys.size(), 0);
            return found;
        }
        std::vector<std::string> redis_keys;
        redis_keys.reserve(keys.size());
        for (const CacheKey& key : keys) {
            redis_keys.push_back(redis_verdict_key(m_link->options(), key));
        }
        // A failed round trip took the link down and warned once; the run goes on locally.
        auto values = m_batcher.lookup(redis_keys);
        if (!values) {
            count(0, keys.size(), 1);
            return found;
        }

        const DecodeCounts counts = decode_values(keys, redis_keys, *values, found);
        count(counts.hits, keys.size() - counts.hits, counts.errors);
        return found;
    }

    Result<void> store(std::span<const std::pair<CacheKey, CacheEntry>> entries) override {
        if (m_link->options().is_read_only || entries.empty()) {
            return {};
        }
        Result<void> written = fail("cache", "Redis is down for this run");
        if (!m_link->is_down()) {
            std::vector<RedisCommand> commands;
            commands.reserve(entries.size());
            for (const auto& [key, entry] : entries) {
                std::string redis_key = redis_verdict_key(m_link->options(), key);
                std::string value = encode_redis_value(m_link->options(), redis_key, entry);
                commands.push_back(
                    set_command(m_link->options(), std::move(redis_key), std::move(value)));
            }
            written = run_writes(*m_link, commands);
        }
        if (written) {
            std::lock_guard lock(m_stats_mutex);
            m_stats.stores += entries.size();
            return {};
        }
        return queue_for_sync(entries, written.error());
    }

    TierStats stats() const override {
        std::lock_guard lock(m_stats_mutex);
        return m_stats;
    }

private:
    struct DecodeCounts {
        std::uint64_t hits = 0;
        std::uint64_t errors = 0;
    };

    // Decodes the stored values into `found`. Parsing the JSON costs several times a key's
    // share of the round trip. Because each caller decodes its own values, one-key lookups
    // from many threads decode on every core.
    DecodeCounts decode_values(std::span<const CacheKey> keys,
                               const std::vector<std::string>& redis_keys,
                               std::vector<std::optional<std::string>>& values,
                               std::vector<std::optional<CacheEntry>>& found) {
        DecodeCounts counts;
        for (std::size_t i = 0; i < keys.size(); ++i) {
            if (!values[i]) {
                continue;
            }
            auto entry = decode_redis_value(m_link->options(), redis_keys[i], *values[i]);
            if (entry) {
                found[i] = std::move(*entry);
                ++counts.hits;
                continue;
            }
            ++counts.errors;
            if (entry.error().kind == "integrity") {
                report_rejected(keys[i], entry.error());
            }
        }
        return counts;
    }

    void count(std::uint64_t hits, std::uint64_t misses, std::uint64_t errors) {
        std::lock_guard lock(m_stats_mutex);
        m_stats.hits += hits;
        m_stats.misses += misses;
        m_stats.errors += errors;
    }

    void report_rejected(const CacheKey& key, const Error& error) {
        m_link->counters().rejected_values.fetch_add(1, std::memory_order_relaxed);
        std::call_once(m_warned_rejected, [&] {
            warn(fmt::format("ignored the Redis verdict for {} ({}): {}; the file is analysed "
                             "again. Check that every runner has the same ATHENA_CACHE_SECRET "
                             "and who else can write to {}",
                             short_digest(key.sha256), key.profile, error.message,
                             describe_endpoint(m_link->options())));
        });
    }

    // Keeps verdicts Redis did not take in the local queue. Succeeds when they are queued,
    // because nothing is lost: the next run that reaches Redis pushes them.
    Result<void> queue_for_sync(std::span<const std::pair<CacheKey, CacheEntry>> entries,
                                const Error& cause) {
        {
            std::lock_guard lock(m_stats_mutex);
            ++m_stats.errors;
        }
        if (m_database == nullptr) {
            return fail("cache", cause.message + "; no local cache database to queue the "
                                                 "verdicts in, so Redis will not get them");
        }
        if (auto queued = m_database->queue_pending_sync(entries); !queued) {
            return fail("cache", cause.message +
                                     "; queueing the verdicts for a later sync "
                                     "failed too: " +
                                     queued.error().message);
        }
        m_link->counters().queued_for_sync.fetch_add(entries.size(), std::memory_order_relaxed);
        // A link that went down has warned already; an error reply (OOM, READONLY) has not.
        if (!m_link->is_down()) {
            std::call_once(m_warned_queued, [&] {
                warn(cause.message + "; the verdicts are queued in the local cache and pushed "
                                     "by the next run that can write to Redis, or by 'athena "
                                     "cache sync'");
            });
        }
        return {};
    }

    void warn(const std::string& message) const { m_link->warn(message); }

    std::shared_ptr<RedisLink> m_link;
    CacheDatabase* m_database;
    LookupBatcher m_batcher;
    mutable std::mutex m_stats_mutex; // guards m_stats
    TierStats m_stats;
    std::once_flag m_warned_rejected;
    std::once_flag m_warned_queued;
};

std::string glob_escape(std::string_view text) {
    std::string escaped;
    for (const char c : text) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') {
            escaped += '\\';
        }
        escaped += c;
    }
    return escaped;
}

// Returns the value of "name:value" in an INFO reply, or empty.
std::string info_field(std::string_view info, std::string_view name) {
    std::size_t start = 0;
    while (start < info.size()) {
        const auto end = std::min(info.find('\n', start), info.size());
        std::string_view line = info.substr(start, end - start);
        if (line.ends_with('\r')) {
            line.remove_suffix(1);
        }
        if (line.size() > name.size() && line.starts_with(name) && line[name.size()] == ':') {
            return std::string(line.substr(name.size() + 1));
        }
        start = end + 1;
    }
    return {};
}

std::uint64_t to_count(const std::string& text) {
    std::uint64_t value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    return value;
}

} // namespace

std::unique_ptr<CacheTier> make_redis_tier(std::shared_ptr<RedisLink> link,
                                           CacheDatabase* database) {
    return std::make_unique<RedisTier>(std::move(link), database);
}

Result<RedisSyncResult> push_pending_sync(RedisLink& link, CacheDatabase& database) {
    const RedisOptions& options = link.options();
    if (options.is_read_only) {
        return fail("usage", "Redis is read-only for this runner (redis-read-only); queued "
                             "verdicts are pushed only by a runner that may write");
    }
    RedisSyncResult result;
    for (;;) {
        auto rows = database.list_pending_sync(k_sync_batch_rows);
        if (!rows) {
            return std::unexpected(rows.error());
        }
        if (rows->empty()) {
            break;
        }
        std::vector<RedisCommand> commands;
        std::vector<CacheKey> done;
        for (const PendingSyncEntry& row : *rows) {
            done.push_back(row.key);
            auto entry = decode_cache_entry(row.encoded_entry);
            if (!entry) {
                ++result.dropped;
                continue;
            }
            std::string key = redis_verdict_key(options, row.key);
            std::string value = encode_redis_value(options, key, *entry);
            commands.push_back(set_command(options, std::move(key), std::move(value)));
        }
        if (auto written = run_writes(link, commands); !written) {
            return std::unexpected(written.error());
        }
        if (auto marked = database.mark_synced(done); !marked) {
            return std::unexpected(marked.error());
        }
        result.pushed += commands.size();
        link.counters().synced.fetch_add(commands.size(), std::memory_order_relaxed);
        if (rows->size() < k_sync_batch_rows) {
            break;
        }
    }
    return result;
}

Result<RedisServerStats> read_redis_stats(RedisLink& link) {
    const RedisOptions& options = link.options();
    const std::vector<RedisCommand> info_commands{
        {"INFO", "server"}, {"INFO", "memory"}, {"INFO", "stats"}};
    auto info = link.pipeline(info_commands);
    if (!info) {
        return std::unexpected(info.error());
    }
    for (const RedisReply& reply : *info) {
        if (reply.is_error()) {
            return fail("cache", "INFO failed: " + link.redact(reply.text));
        }
    }
    RedisServerStats stats;
    stats.endpoint = describe_endpoint(options);
    stats.version = info_field((*info)[0].text, "redis_version");
    stats.used_memory_bytes = to_count(info_field((*info)[1].text, "used_memory"));
    stats.keyspace_hits = to_count(info_field((*info)[2].text, "keyspace_hits"));
    stats.keyspace_misses = to_count(info_field((*info)[2].text, "keyspace_misses"));

    const std::string pattern = glob_escape(options.key_prefix) + "*";
    const std::string lease_prefix = options.key_prefix + "lease:";
    const std::string breaker_prefix = options.key_prefix + "breaker:";
    std::string cursor = "0";
    do {
        auto page = link.command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
        if (!page) {
            return std::unexpected(page.error());
        }
        if (page->type != RedisReply::Type::array || page->elements.size() != 2) {
            return fail("cache", "SCAN failed: " + link.redact(page->text));
        }
        cursor = page->elements[0].text;
        for (const RedisReply& key : page->elements[1].elements) {
            if (key.text.starts_with(lease_prefix)) {
                ++stats.lease_keys;
            } else if (key.text.starts_with(breaker_prefix)) {
                ++stats.breaker_keys;
            } else {
                ++stats.verdict_keys;
            }
        }
    } while (cursor != "0");
    return stats;
}

} // namespace athena
