// Fleet single-flight: an analysis service decorator that takes a Redis lease per cache key
// before paying for an analysis, and waits for another runner's verdict instead.
#include <athena/redis_cache.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <thread>
#include <unordered_map>

namespace athena {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Writes the verdict (when there is one) and deletes the lease only if this runner still
// holds it, in one atomic step, so a waiter never sees the lease gone before the verdict.
// KEYS[1] lease, KEYS[2] verdict; ARGV[1] runner id, ARGV[2] value or "", ARGV[3] TTL in
// seconds or "0" for none.
constexpr const char* k_release_script = "if ARGV[2] ~= '' then "
                                         "  if tonumber(ARGV[3]) > 0 then "
                                         "    redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3]) "
                                         "  else "
                                         "    redis.call('SET', KEYS[2], ARGV[2]) "
                                         "  end "
                                         "end "
                                         "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                         "  return redis.call('DEL', KEYS[1]) "
                                         "end "
                                         "return 0";

// Extends the lease only if this runner still holds it. KEYS[1] lease; ARGV[1] runner id,
// ARGV[2] lifetime in milliseconds.
constexpr const char* k_renew_script = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                       "  return redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
                                       "end "
                                       "return 0";

// Waiters poll often at first, so that a fast analysis is picked up quickly, then less
// often, so that a long AI call costs few round trips.
constexpr milliseconds k_first_poll{20};
constexpr milliseconds k_max_poll{500};

std::uint64_t load(const std::atomic<std::uint64_t>& counter) {
    return counter.load(std::memory_order_relaxed);
}

// Counts of one run; see summary_json() for their meaning.
struct LeaseCounts {
    std::atomic<std::uint64_t> submitted{0};
    std::atomic<std::uint64_t> analysed{0};
    std::atomic<std::uint64_t> from_fleet{0};
    std::atomic<std::uint64_t> waited{0};
    std::atomic<std::uint64_t> takeovers{0};
    std::atomic<std::uint64_t> wait_timeouts{0};
    std::atomic<std::uint64_t> without_lease{0};
};

struct Waiter {
    AnalysisRequest request;
    std::function<void(AnalysisOutcome&&)> done;
    std::string verdict_key;
    std::string lease_key;
    Clock::time_point started;
    Clock::time_point next_poll;
};

struct Release {
    std::string verdict_key;
    std::string lease_key;
    std::string value; // empty: delete the lease only
};

AnalysisOutcome outcome_from(const CacheEntry& entry) {
    AnalysisOutcome outcome;
    outcome.verdict = entry.verdict;
    outcome.provider = entry.provider;
    outcome.model = entry.model;
    return outcome;
}

AnalysisOutcome interrupted_outcome() {
    AnalysisOutcome outcome;
    outcome.verdict = fail("interrupted", "stopped while waiting for another runner's verdict");
    return outcome;
}

class LeasedAnalysis final : public AnalysisService {
public:
    LeasedAnalysis(std::unique_ptr<AnalysisService> inner, std::shared_ptr<RedisLink> link,
                   std::string runner_id)
        : m_inner(std::move(inner)), m_link(std::move(link)), m_runner_id(std::move(runner_id)),
          m_uses_leases(!m_link->options().is_read_only) {
        if (m_uses_leases) {
            m_thread = std::thread([this] { coordinate(); });
        }
    }

    ~LeasedAnalysis() override { stop_thread(); }

    std::string profile() const override { return m_inner->profile(); }

    void submit(AnalysisRequest request, std::function<void(AnalysisOutcome&&)> done) override;
    void shutdown(std::chrono::milliseconds grace) override;
    nlohmann::ordered_json summary_json() const override;
    std::string report_text() const override;

private:
    void forward(AnalysisRequest request, std::function<void(AnalysisOutcome&&)> done) {
        m_counts.analysed.fetch_add(1, std::memory_order_relaxed);
        m_inner->submit(std::move(request), std::move(done));
    }
    void analyse_owned(Waiter waiter);
    std::optional<CacheEntry> stored_entry(const std::string& verdict_key,
                                           const RedisReply& reply) const;
    RedisCommand lease_command(const std::string& lease_key) const;
    void enqueue_release(Release release);
    void coordinate();
    void poll(std::vector<Waiter> due);
    void run_releases(const std::vector<Release>& releases);
    void renew(const std::vector<std::string>& lease_keys);
    void stop_thread();

    std::unique_ptr<AnalysisService> m_inner;
    std::shared_ptr<RedisLink> m_link;
    const std::string m_runner_id;
    const bool m_uses_leases;
    LeaseCounts m_counts;

    // Shared between the submitting threads, the inner service's callbacks and the
    // coordinator thread; m_mutex guards everything below it.
    std::mutex m_mutex;
    std::condition_variable m_wake;         // the coordinator has work
    std::condition_variable m_waiters_done; // a poll ended or the waiters list emptied
    std::vector<Waiter> m_waiters;
    std::vector<Release> m_releases;
    std::unordered_map<std::string, std::size_t> m_owned; // lease key -> analyses holding it
    std::size_t m_polling = 0;                            // waiters taken out for a poll
    bool m_has_new_waiter = false;                        // added since the thread last woke
    bool m_is_stopping = false;                           // shutdown() has begun
    bool m_stop_thread = false;
    std::thread m_thread;
};

RedisCommand LeasedAnalysis::lease_command(const std::string& lease_key) const {
    return {
        "SET",       lease_key,
        m_runner_id, "NX",
        "PX",        std::to_string(std::max<std::int64_t>(1, m_link->options().lease.count()))};
}

// A value that does not decode or verify counts as absent: this runner analyses the file,
// and its verdict replaces the bad value.
std::optional<CacheEntry> LeasedAnalysis::stored_entry(const std::string& verdict_key,
                                                       const RedisReply& reply) const {
    if (reply.type != RedisReply::Type::string) {
        return std::nullopt;
    }
    auto entry = decode_redis_value(m_link->options(), verdict_key, reply.text);
    if (!entry) {
        return std::nullopt;
    }
    return std::move(*entry);
}

void LeasedAnalysis::submit(AnalysisRequest request, std::function<void(AnalysisOutcome&&)> done) {
    m_counts.submitted.fetch_add(1, std::memory_order_relaxed);
    bool is_stopping = false;
    {
        std::lock_guard lock(m_mutex);
        is_stopping = m_is_stopping;
    }
    if (!m_uses_leases || m_link->is_down() || is_stopping) {
        if (m_uses_leases) {
            m_counts.without_lease.fetch_add(1, std::memory_order_relaxed);
        }
        forward(std::move(request), std::move(done));
        return;
    }

    const CacheKey key{request.sha256, m_inner->profile()};
    Waiter waiter{std::move(request),
                  std::move(done),
                  redis_verdict_key(m_link->options(), key),
                  redis_lease_key(m_link->options(), key),
                  Clock::now(),
                  Clock::now()};
    // Reading the verdict after taking the lease closes the gap where another runner stored
    // its verdict and released its lease between our cache lookup and this call.
    const std::vector<RedisCommand> commands{lease_command(waiter.lease_key),
                                             {"GET", waiter.verdict_key}};
    auto replies = m_link->pipeline(commands);
    if (!replies) {
        m_counts.without_lease.fetch_add(1, std::memory_order_relaxed);
        forward(std::move(waiter.request), std::move(waiter.done));
        return;
    }
    const bool is_lease_taken = (*replies)[0].is_status("OK");
    if (auto entry = stored_entry(waiter.verdict_key, (*replies)[1])) {
        if (is_lease_taken) {
            enqueue_release(Release{waiter.verdict_key, waiter.lease_key, {}});
        }
        m_counts.from_fleet.fetch_add(1, std::memory_order_relaxed);
        waiter.done(outcome_from(*entry));
        return;
    }
    if (is_lease_taken) {
        analyse_owned(std::move(waiter));
        return;
    }
    m_counts.waited.fetch_add(1, std::memory_order_relaxed);
    waiter.next_poll = Clock::now() + k_first_poll;
    std::lock_guard lock(m_mutex);
    m_waiters.push_back(std::move(waiter));
    m_has_new_waiter = true;
    m_wake.notify_one();
}

// Hands a request whose lease this runner holds to the inner service. Its callback queues
// the verdict write and lease release for the coordinator thread, so the inner service's
// thread (an event loop, perhaps) never waits on Redis.
void LeasedAnalysis::analyse_owned(Waiter waiter) {
    {
        std::lock_guard lock(m_mutex);
        ++m_owned[waiter.lease_key];
    }
    const std::string file_type = waiter.request.evidence.file_type;
    auto on_done = [this, verdict_key = waiter.verdict_key, lease_key = waiter.lease_key, file_type,
                    done = std::move(waiter.done)](AnalysisOutcome&& outcome) {
        Release release{verdict_key, lease_key, {}};
        if (outcome.verdict && !outcome.is_fallback) {
            const CacheEntry entry{*outcome.verdict, outcome.provider, outcome.model, file_type,
                                   static_cast<std::int64_t>(std::time(nullptr))};
            release.value = encode_redis_value(m_link->options(), verdict_key, entry);
        }
        enqueue_release(std::move(release));
        done(std::move(outcome));
    };
    forward(std::move(waiter.request), std::move(on_done));
}

void LeasedAnalysis::enqueue_release(Release release) {
    std::lock_guard lock(m_mutex);
    if (const auto owned = m_owned.find(release.lease_key); owned != m_owned.end()) {
        if (--owned->second == 0) {
            m_owned.erase(owned);
        }
    }
    m_releases.push_back(std::move(release));
    m_wake.notify_one();
}

// The coordinator thread: releases finished leases, polls for the verdicts waiters expect,
// and renews the leases of analyses still running.
void LeasedAnalysis::coordinate() {
    const milliseconds renew_every = std::max(milliseconds(1), m_link->options().lease / 3);
    auto next_renewal = Clock::now() + renew_every;
    std::unique_lock lock(m_mutex);
    for (;;) {
        auto wake_at = next_renewal;
        for (const Waiter& waiter : m_waiters) {
            wake_at = std::min(wake_at, waiter.next_poll);
        }
        // A new waiter wakes the thread only to recompute wake_at with its poll time.
        m_wake.wait_until(lock, wake_at, [&] {
            return !m_releases.empty() || m_stop_thread || m_has_new_waiter ||
                   std::ranges::any_of(m_waiters, [](const Waiter& waiter) {
                       return waiter.next_poll <= Clock::now();
                   });
        });
        m_has_new_waiter = false;
        if (m_stop_thread && m_releases.empty() && m_waiters.empty()) {
            break;
        }

        const auto now = Clock::now();
        std::vector<Release> releases = std::exchange(m_releases, {});
        std::vector<Waiter> due;
        for (auto it = m_waiters.begin(); it != m_waiters.end();) {
            if (it->next_poll <= now || m_stop_thread) {
                due.push_back(std::move(*it));
                it = m_waiters.erase(it);
            } else {
                ++it;
            }
        }
        std::vector<std::string> renewals;
        if (now >= next_renewal) {
            for (const auto& [lease_key, count] : m_owned) {
                renewals.push_back(lease_key);
            }
            next_renewal = now + renew_every;
        }
        m_polling += due.size();
        const std::size_t polled = due.size();
        lock.unlock();

        run_releases(releases);
        poll(std::move(due));
        renew(renewals);

        lock.lock();
        m_polling -= polled;
        m_waiters_done.notify_all();
    }
}

void LeasedAnalysis::poll(std::vector<Waiter> due) {
    if (due.empty()) {
        return;
    }
    std::vector<RedisCommand> commands;
    for (const Waiter& waiter : due) {
        commands.push_back(lease_command(waiter.lease_key));
        commands.push_back({"GET", waiter.verdict_key});
    }
    auto replies = m_link->pipeline(commands);

    bool is_stopping = false;
    {
        std::lock_guard lock(m_mutex);
        is_stopping = m_is_stopping;
    }
    const auto now = Clock::now();
    std::vector<Waiter> still_waiting;
    for (std::size_t i = 0; i < due.size(); ++i) {
        Waiter& waiter = due[i];
        if (!replies) {
            m_counts.without_lease.fetch_add(1, std::memory_order_relaxed);
            if (is_stopping) {
                waiter.done(interrupted_outcome());
            } else {
                forward(std::move(waiter.request), std::move(waiter.done));
            }
            continue;
        }
        const bool is_lease_taken = (*replies)[2 * i].is_status("OK");
        if (auto entry = stored_entry(waiter.verdict_key, (*replies)[2 * i + 1])) {
            if (is_lease_taken) {
                enqueue_release(Release{waiter.verdict_key, waiter.lease_key, {}});
            }
            m_counts.from_fleet.fetch_add(1, std::memory_order_relaxed);
            waiter.done(outcome_from(*entry));
        } else if (is_stopping) {
            // No new analyses once the run is stopping; a lease just taken goes back.
            if (is_lease_taken) {
                enqueue_release(Release{waiter.verdict_key, waiter.lease_key, {}});
            }
            waiter.done(interrupted_outcome());
        } else if (is_lease_taken) {
            // The other runner's lease expired or was released without a verdict.
            m_counts.takeovers.fetch_add(1, std::memory_order_relaxed);
            analyse_owned(std::move(waiter));
        } else if (now - waiter.started >= m_link->options().lease_wait) {
            m_counts.wait_timeouts.fetch_add(1, std::memory_order_relaxed);
            forward(std::move(waiter.request), std::move(waiter.done));
        } else {
            const auto waited = std::chrono::duration_cast<milliseconds>(now - waiter.started);
            waiter.next_poll = now + std::clamp(waited / 8, k_first_poll, k_max_poll);
            still_waiting.push_back(std::move(waiter));
        }
    }
    if (!still_waiting.empty()) {
        std::lock_guard lock(m_mutex);
        for (Waiter& waiter : still_waiting) {
            m_waiters.push_back(std::move(waiter));
        }
    }
}

// A release that fails (Redis gone) is dropped: the lease expires on its own.
void LeasedAnalysis::run_releases(const std::vector<Release>& releases) {
    if (releases.empty() || m_link->is_down()) {
        return;
    }
    const std::string ttl_s =
        std::to_string(std::max<std::int64_t>(0, m_link->options().ttl.count()));
    std::vector<RedisCommand> commands;
    for (const Release& release : releases) {
        commands.push_back({"EVAL", k_release_script, "2", release.lease_key, release.verdict_key,
                            m_runner_id, release.value, ttl_s});
    }
    (void)m_link->pipeline(commands);
}

void LeasedAnalysis::renew(const std::vector<std::string>& lease_keys) {
    if (lease_keys.empty() || m_link->is_down()) {
        return;
    }
    const std::string lease_ms = std::to_string(m_link->options().lease.count());
    std::vector<RedisCommand> commands;
    for (const std::string& lease_key : lease_keys) {
        commands.push_back({"EVAL", k_renew_script, "1", lease_key, m_runner_id, lease_ms});
    }
    (void)m_link->pipeline(commands);
}

// Gives waiters the grace period to get their verdicts, ends the rest as interrupted, then
// lets the inner service drain and the coordinator push the last releases.
void LeasedAnalysis::shutdown(std::chrono::milliseconds grace) {
    const auto deadline = Clock::now() + grace;
    std::vector<Waiter> abandoned;
    {
        std::unique_lock lock(m_mutex);
        m_is_stopping = true;
        m_wake.notify_one();
        m_waiters_done.wait_until(lock, deadline,
                                  [&] { return m_waiters.empty() && m_polling == 0; });
        abandoned = std::exchange(m_waiters, {});
    }
    for (Waiter& waiter : abandoned) {
        waiter.done(interrupted_outcome());
    }
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    m_inner->shutdown(std::max(milliseconds(0), left));
    stop_thread();
}

void LeasedAnalysis::stop_thread() {
    if (!m_thread.joinable()) {
        return;
    }
    {
        std::lock_guard lock(m_mutex);
        m_is_stopping = true;
        m_stop_thread = true;
        m_wake.notify_one();
    }
    m_thread.join();
}

nlohmann::ordered_json LeasedAnalysis::summary_json() const {
    nlohmann::ordered_json json = m_inner->summary_json();
    RedisCounters& counters = m_link->counters();
    const std::uint64_t busy_ns = load(counters.lookup_busy_ns);
    const std::uint64_t keys = load(counters.lookup_keys);
    json["redis"] = {
        {"endpoint", describe_endpoint(m_link->options())},
        {"read_only", m_link->options().is_read_only},
        {"down", m_link->is_down()},
        {"round_trips", load(counters.round_trips)},
        {"lookup_keys", keys},
        {"lookup_round_trips", load(counters.lookup_batches)},
        {"lookup_keys_per_second",
         busy_ns == 0 ? 0.0 : static_cast<double>(keys) * 1e9 / static_cast<double>(busy_ns)},
        {"rejected_values", load(counters.rejected_values)},
        {"queued_for_sync", load(counters.queued_for_sync)},
        {"synced", load(counters.synced)},
        {"leases",
         {{"submitted", load(m_counts.submitted)},
          {"analysed", load(m_counts.analysed)},
          {"from_other_runners", load(m_counts.from_fleet)},
          {"waited", load(m_counts.waited)},
          {"takeovers", load(m_counts.takeovers)},
          {"wait_timeouts", load(m_counts.wait_timeouts)},
          {"without_lease", load(m_counts.without_lease)}}},
    };
    return json;
}

std::string LeasedAnalysis::report_text() const {
    std::string text = m_inner->report_text();
    RedisCounters& counters = m_link->counters();
    const std::uint64_t keys = load(counters.lookup_keys);
    const std::uint64_t batches = load(counters.lookup_batches);
    text += fmt::format("redis     {}{}: {} keys looked up in {} round trips",
                        describe_endpoint(m_link->options()), m_link->is_down() ? " (down)" : "",
                        keys, batches);
    if (m_uses_leases) {
        text +=
            fmt::format("; {} analysed here, {} answered by other runners ({} waited, {} "
                        "taken over after a lease ended, {} waits timed out)",
                        load(m_counts.analysed), load(m_counts.from_fleet), load(m_counts.waited),
                        load(m_counts.takeovers), load(m_counts.wait_timeouts));
    } else {
        text += "; read-only";
    }
    text += '\n';
    const std::uint64_t rejected = load(counters.rejected_values);
    const std::uint64_t queued = load(counters.queued_for_sync);
    const std::uint64_t synced = load(counters.synced);
    if (rejected + queued + synced > 0) {
        text += fmt::format("redis     {} values failed the HMAC check and were ignored; {} "
                            "verdicts queued for a later sync; {} queued verdicts pushed\n",
                            rejected, queued, synced);
    }
    return text;
}

} // namespace

std::unique_ptr<AnalysisService> make_leased_analysis(std::unique_ptr<AnalysisService> inner,
                                                      std::shared_ptr<RedisLink> link,
                                                      std::string runner_id) {
    return std::make_unique<LeasedAnalysis>(std::move(inner), std::move(link),
                                            std::move(runner_id));
}

} // namespace athena
