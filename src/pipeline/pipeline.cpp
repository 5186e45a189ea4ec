#include <athena/bounded_queue.hpp>
#include <athena/pipeline.hpp>
#include <athena/sqlite_cache.hpp>
#include <athena/tiered_cache.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

namespace athena {
namespace {

using Clock = std::chrono::steady_clock;

std::uint64_t elapsed_ns(Clock::time_point since) {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - since).count());
}

std::int64_t wall_clock_ns() {
    struct timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

// Files up to this size are kept in memory after hashing so that a cache miss can be
// analysed without reading the file twice.
constexpr std::uint64_t k_keep_content_bytes = 1u << 20;
constexpr std::size_t k_walk_queue_capacity = 4096;
constexpr std::size_t k_result_queue_capacity = 4096;
constexpr std::size_t k_store_batch_max = 2048;

// One analysis per distinct content per run. The first worker to claim a key looks it up and
// analyses it; workers that find the same key claimed wait for that outcome. A slot lives
// until the store step has written the verdict, so a later duplicate finds either the slot
// or the stored entry, never a gap in between.
class InFlight {
public:
    struct Slot {
        std::mutex mutex;
        std::condition_variable done_signal;
        bool is_done = false;
        std::optional<CacheEntry> entry; // empty when the owner failed
    };

    // Returns the slot and whether the caller owns it.
    std::pair<std::shared_ptr<Slot>, bool> claim(const CacheKey& key) {
        std::lock_guard lock(m_mutex);
        auto [it, inserted] = m_slots.try_emplace(key.sha256 + '\0' + key.profile);
        if (inserted) {
            it->second = std::make_shared<Slot>();
        }
        return {it->second, inserted};
    }

    static void publish(Slot& slot, std::optional<CacheEntry> entry) {
        std::lock_guard lock(slot.mutex);
        slot.entry = std::move(entry);
        slot.is_done = true;
        slot.done_signal.notify_all();
    }

    static std::optional<CacheEntry> wait(Slot& slot) {
        std::unique_lock lock(slot.mutex);
        slot.done_signal.wait(lock, [&] { return slot.is_done; });
        return slot.entry;
    }

    void release(const CacheKey& key) {
        std::lock_guard lock(m_mutex);
        m_slots.erase(key.sha256 + '\0' + key.profile);
    }

private:
    std::mutex m_mutex;
    std::unordered_map<std::string, std::shared_ptr<Slot>> m_slots;
};

// What a worker hands to the store-and-emit step.
struct WorkResult {
    FileRecord record;
    std::optional<StatRecord> stat_record; // set when the file was hashed this run
    bool is_fresh_verdict = false;         // analysed this run: store it
    bool owns_slot = false;                // release the in-flight slot after storing
};

struct Counters {
    std::atomic<std::uint64_t> bytes_hashed{0};
    std::atomic<std::uint64_t> files_hashed{0};
    std::atomic<std::uint64_t> stat_cache_hits{0};
    std::atomic<std::uint64_t> analyses{0};
    std::atomic<std::uint64_t> stat_cache_ns{0};
    std::atomic<std::uint64_t> hash_ns{0};
    std::atomic<std::uint64_t> lookup_ns{0};
    std::atomic<std::uint64_t> analyse_ns{0};
};

class Pipeline {
public:
    Pipeline(const PipelineOptions& options, const PipelineServices& services,
             const std::atomic<int>& interrupt)
        : m_options(options), m_services(services), m_interrupt(interrupt),
          m_walk_queue(k_walk_queue_capacity), m_result_queue(k_result_queue_capacity) {
        if (m_options.mode == PipelineMode::scan) {
            m_profile = m_services.analyser->profile();
        }
    }

    RunSummary run(RecordSink& sink);

private:
    bool is_interrupted() const { return m_interrupt.load(std::memory_order_relaxed) != 0; }

    void walk_all();
    void work();
    WorkResult process(WalkEntry&& entry);
    bool resolve_digest(const WalkEntry& entry, WorkResult& result,
                        std::vector<std::uint8_t>& content);
    void resolve_verdict(const WalkEntry& entry, WorkResult& result,
                         std::vector<std::uint8_t>& content);
    std::optional<CacheEntry> analyse(const WalkEntry& entry, FileRecord& record,
                                      const std::vector<std::uint8_t>& content);
    void store_and_emit(std::vector<WorkResult>& batch, RecordSink& sink, RunSummary& summary,
                        std::vector<FileRecord>& sorted_records);
    void count(const FileRecord& record, RunSummary& summary);

    const PipelineOptions& m_options;
    const PipelineServices& m_services;
    const std::atomic<int>& m_interrupt;
    std::string m_profile;
    BoundedQueue<WalkEntry> m_walk_queue;
    BoundedQueue<WorkResult> m_result_queue;
    InFlight m_in_flight;
    Counters m_counters;
    WalkStats m_walk_stats;
    std::uint64_t m_walk_ns = 0;
    std::atomic<std::uint64_t> m_walk_wait_ns{0};
    bool m_warned_store = false;
};

void Pipeline::walk_all() {
    const auto started = Clock::now();
    const std::atomic<bool> never_stop{false};
    // The walk polls the interrupt through the sink; an interrupted run stops here first.
    m_walk_stats = walk(
        m_options.roots, m_options.walk,
        [&](WalkEntry&& entry) {
            if (is_interrupted()) {
                return false;
            }
            const auto waited = Clock::now();
            const bool accepted = m_walk_queue.push(std::move(entry));
            m_walk_wait_ns += elapsed_ns(waited);
            return accepted;
        },
        never_stop);
    m_walk_ns = elapsed_ns(started);
    m_walk_queue.close();
}

void Pipeline::work() {
    std::vector<std::uint8_t> content;
    while (auto entry = m_walk_queue.pop()) {
        if (is_interrupted()) {
            continue; // drain without work: files not started are abandoned
        }
        if (!m_result_queue.push(process(std::move(*entry)))) {
            return;
        }
    }
}

WorkResult Pipeline::process(WalkEntry&& entry) {
    const auto started = Clock::now();
    WorkResult result;
    FileRecord& record = result.record;
    record.path = entry.path;
    if (entry.error) {
        record.error = std::move(entry.error);
        return result;
    }
    record.size_bytes = entry.identity.size_bytes;

    thread_local std::vector<std::uint8_t> content;
    content.clear();
    if (resolve_digest(entry, result, content) && m_options.mode == PipelineMode::scan) {
        resolve_verdict(entry, result, content);
    }
    record.duration_ms = static_cast<double>(elapsed_ns(started)) / 1e6;
    return result;
}

// Finds the file's digest in the stat cache or by reading it. Returns false on an error,
// which is then in the record.
bool Pipeline::resolve_digest(const WalkEntry& entry, WorkResult& result,
                              std::vector<std::uint8_t>& content) {
    FileRecord& record = result.record;
    if (m_options.use_stat_cache && m_services.database != nullptr) {
        const auto started = Clock::now();
        auto cached = m_services.database->stat_lookup(entry.identity);
        m_counters.stat_cache_ns += elapsed_ns(started);
        if (cached && *cached) {
            record.sha256 = std::move(**cached);
            ++m_counters.stat_cache_hits;
            return true;
        }
    }

    const auto started = Clock::now();
    const std::int64_t recorded_ns = wall_clock_ns();
    const bool keep = m_options.mode == PipelineMode::scan;
    auto hashed = hash_file(entry.path, entry.identity, keep ? &content : nullptr,
                            k_keep_content_bytes);
    m_counters.hash_ns += elapsed_ns(started);
    if (!hashed) {
        record.error = std::move(hashed.error());
        return false;
    }
    m_counters.bytes_hashed += hashed->bytes_read;
    ++m_counters.files_hashed;
    record.sha256 = hashed->sha256;
    if (m_options.use_stat_cache) {
        result.stat_record = StatRecord{entry.identity, recorded_ns, std::move(hashed->sha256)};
    }
    return true;
}

void Pipeline::resolve_verdict(const WalkEntry& entry, WorkResult& result,
                               std::vector<std::uint8_t>& content) {
    FileRecord& record = result.record;
    const CacheKey key{record.sha256, m_profile};
    auto [slot, is_owner] = m_in_flight.claim(key);

    if (!is_owner) {
        // Same content as a file another worker has or is handling: wait for its outcome.
        const auto started = Clock::now();
        auto shared = InFlight::wait(*slot);
        m_counters.lookup_ns += elapsed_ns(started);
        if (shared) {
            record.verdict = shared->verdict;
            record.provider = shared->provider;
            record.model = shared->model;
            record.file_type = shared->file_type;
            record.cache = "memory";
            return;
        }
        // The owner failed; try this copy on its own, without sharing the outcome.
        record.cache = "miss";
        if (auto fresh = analyse(entry, record, content)) {
            result.is_fresh_verdict = true;
        }
        return;
    }

    result.owns_slot = true;
    std::optional<CacheEntry> outcome;
    if (m_services.cache != nullptr && !m_services.cache->empty()) {
        const auto started = Clock::now();
        auto found = m_services.cache->lookup(std::span(&key, 1));
        m_counters.lookup_ns += elapsed_ns(started);
        if (found[0].entry) {
            outcome = std::move(found[0].entry);
            record.cache = found[0].tier;
        }
    }
    if (outcome) {
        record.verdict = outcome->verdict;
        record.provider = outcome->provider;
        record.model = outcome->model;
        record.file_type = outcome->file_type;
    } else {
        record.cache = "miss";
        outcome = analyse(entry, record, content);
        result.is_fresh_verdict = outcome.has_value();
    }
    InFlight::publish(*slot, outcome);
}

std::optional<CacheEntry> Pipeline::analyse(const WalkEntry& entry, FileRecord& record,
                                            const std::vector<std::uint8_t>& content) {
    const auto started = Clock::now();
    ++m_counters.analyses;
    auto evidence = m_services.extractor->extract(entry.path, content);
    if (!evidence) {
        m_counters.analyse_ns += elapsed_ns(started);
        record.error = std::move(evidence.error());
        return std::nullopt;
    }
    record.file_type = evidence->file_type;
    auto verdict = m_services.analyser->analyse(*evidence);
    m_counters.analyse_ns += elapsed_ns(started);
    if (!verdict) {
        record.error = std::move(verdict.error());
        return std::nullopt;
    }
    record.verdict = *verdict;
    record.provider = m_services.analyser->name();
    record.model = m_services.analyser->model();
    return CacheEntry{*verdict, record.provider, record.model, record.file_type,
                      static_cast<std::int64_t>(std::time(nullptr))};
}

// Stores the batch's fresh verdicts and stat entries, then emits its records: a verdict is
// committed before it is printed, so an interrupted run loses nothing it showed.
void Pipeline::store_and_emit(std::vector<WorkResult>& batch, RecordSink& sink,
                              RunSummary& summary, std::vector<FileRecord>& sorted_records) {
    const auto store_started = Clock::now();
    std::vector<std::pair<CacheKey, CacheEntry>> fresh;
    std::vector<StatRecord> stat_records;
    for (WorkResult& result : batch) {
        const FileRecord& record = result.record;
        if (result.is_fresh_verdict && m_options.cache_results && record.verdict) {
            fresh.emplace_back(CacheKey{record.sha256, m_profile},
                               CacheEntry{*record.verdict, record.provider, record.model,
                                          record.file_type,
                                          static_cast<std::int64_t>(std::time(nullptr))});
        }
        if (result.stat_record && !record.error) {
            stat_records.push_back(std::move(*result.stat_record));
        }
    }
    if (!fresh.empty() && m_services.cache != nullptr) {
        if (auto ok = m_services.cache->store(fresh); !ok) {
            summary.cache_store_errors += fresh.size();
            if (!m_warned_store && m_services.warn) {
                m_services.warn("cannot store verdicts in the cache: " + ok.error().message +
                                "; results are still printed, and the next run analyses "
                                "these files again");
                m_warned_store = true;
            }
        }
    }
    if (!stat_records.empty() && m_services.database != nullptr) {
        // A stat cache that cannot be written only costs a re-read next run.
        (void)m_services.database->stat_store(stat_records);
    }
    for (WorkResult& result : batch) {
        if (result.owns_slot) {
            m_in_flight.release(CacheKey{result.record.sha256, m_profile});
        }
    }
    summary.stages.store_ns += elapsed_ns(store_started);

    const auto emit_started = Clock::now();
    for (WorkResult& result : batch) {
        count(result.record, summary);
        if (m_options.sort_by_path) {
            sorted_records.push_back(std::move(result.record));
        } else {
            sink.on_record(result.record);
        }
    }
    summary.stages.emit_ns += elapsed_ns(emit_started);
}

void Pipeline::count(const FileRecord& record, RunSummary& summary) {
    ++summary.files;
    if (record.error) {
        ++summary.errors;
        ++summary.errors_by_kind[record.error->kind];
    } else if (record.verdict) {
        ++summary.by_level[std::string(to_string(record.verdict->threat_level))];
    }
    // Counted per record, so a duplicate answered by another worker's outcome is a memory
    // hit like any other, and each file counts once whichever tier answered.
    if (record.cache == "miss") {
        ++summary.cache_misses;
    } else if (!record.cache.empty()) {
        ++summary.cache_hits;
        ++summary.hits_by_tier[record.cache];
    }
}

RunSummary Pipeline::run(RecordSink& sink) {
    const auto started = Clock::now();
    RunSummary summary;
    if (m_options.mode == PipelineMode::scan) {
        for (const char* level : {"benign", "suspicious", "malicious", "critical"}) {
            summary.by_level[level] = 0;
        }
    }

    std::thread walker([this] { walk_all(); });
    const unsigned worker_count =
        m_options.worker_threads != 0 ? m_options.worker_threads : default_worker_threads();
    std::vector<std::thread> workers;
    for (unsigned i = 0; i < worker_count; ++i) {
        workers.emplace_back([this] { work(); });
    }
    // The results queue closes when the last worker ends; a helper thread waits for that
    // so this thread can keep storing and emitting meanwhile.
    std::thread closer([&] {
        walker.join();
        for (std::thread& worker : workers) {
            worker.join();
        }
        m_result_queue.close();
    });

    std::vector<FileRecord> sorted_records;
    for (;;) {
        auto batch = m_result_queue.pop_batch(k_store_batch_max);
        if (batch.empty()) {
            break;
        }
        store_and_emit(batch, sink, summary, sorted_records);
    }
    closer.join();

    if (m_options.sort_by_path) {
        const auto emit_started = Clock::now();
        std::sort(sorted_records.begin(), sorted_records.end(),
                  [](const FileRecord& a, const FileRecord& b) { return a.path < b.path; });
        for (const FileRecord& record : sorted_records) {
            sink.on_record(record);
        }
        summary.stages.emit_ns += elapsed_ns(emit_started);
    }

    summary.bytes_hashed = m_counters.bytes_hashed;
    summary.files_hashed = m_counters.files_hashed;
    summary.stat_cache_hits = m_counters.stat_cache_hits;
    summary.analyses = m_counters.analyses;
    if (m_services.cache != nullptr) {
        for (const Error& error : m_services.cache->take_errors()) {
            if (m_services.warn) {
                m_services.warn("cache tier failed: " + error.message);
            }
        }
    }
    summary.walk = m_walk_stats;
    summary.stages.walk_ns = m_walk_ns > m_walk_wait_ns ? m_walk_ns - m_walk_wait_ns : 0;
    summary.stages.stat_cache_ns = m_counters.stat_cache_ns;
    summary.stages.hash_ns = m_counters.hash_ns;
    summary.stages.lookup_ns = m_counters.lookup_ns;
    summary.stages.analyse_ns = m_counters.analyse_ns;
    summary.duration_ms = static_cast<double>(elapsed_ns(started)) / 1e6;

    const int signal_number = m_interrupt.load();
    bool has_finding = false;
    for (const auto& [level, n] : summary.by_level) {
        const auto parsed = parse_threat_level(level);
        if (n > 0 && parsed && *parsed >= m_options.fail_on) {
            has_finding = true;
        }
    }
    if (signal_number != 0) {
        summary.interrupted = true;
        summary.interrupt_signal = signal_number;
        summary.exit_code = 128 + signal_number;
    } else if (summary.errors > 0) {
        summary.exit_code = 2;
    } else {
        summary.exit_code = has_finding ? 1 : 0;
    }
    sink.on_summary(summary);
    return summary;
}

} // namespace

unsigned default_worker_threads() {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    return std::clamp(cores * 4, 16u, 64u);
}

RunSummary run_pipeline(const PipelineOptions& options, const PipelineServices& services,
                        RecordSink& sink, const std::atomic<int>& interrupt) {
    Pipeline pipeline(options, services, interrupt);
    return pipeline.run(sink);
}

} // namespace athena
