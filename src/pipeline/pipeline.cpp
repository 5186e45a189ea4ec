#include <athena/bounded_queue.hpp>
#include <athena/pipeline.hpp>
#include <athena/sqlite_cache.hpp>
#include <athena/tiered_cache.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <semaphore>
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
// Files travel between threads in batches: a hand-off per file costs a futex wake and a
// context switch, which on a warm run (nothing to read) costs more than the file itself.
constexpr std::size_t k_walk_batch_files = 64;
// A batch also ends at this many bytes, so that a few big files spread over the workers
// instead of all landing on one thread.
constexpr std::uint64_t k_walk_batch_bytes = 16u << 20;
constexpr std::size_t k_walk_queue_batches = 64;
constexpr std::size_t k_result_queue_batches = 256;
constexpr std::size_t k_store_batch_max = 32; // batches of results per store transaction

// A finished file on its way from a worker to the store-and-emit step.
struct WorkResult {
    FileRecord record;
    std::optional<StatRecord> stat_record; // set when the file was hashed this run
    bool is_fresh_verdict = false;         // analysed this run: store it
    bool owns_slot = false;                // release the in-flight slot after storing
    Clock::time_point started;
};
using WorkPtr = std::shared_ptr<WorkResult>;

// One analysis per distinct content per run. The first worker to claim a key looks it up
// and analyses it. A worker that finds the key claimed parks its file on the slot and moves
// on, and the owner's outcome completes every parked file. A slot lives until the store
// step has written the verdict, so a later duplicate finds either the slot or the stored
// entry, never a gap in between.
class InFlight {
public:
    struct Slot {
        std::mutex mutex; // guards the fields below
        bool is_done = false;
        std::optional<CacheEntry> entry;
        std::optional<Error> error;
        std::vector<WorkPtr> waiters;
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

    void release(const CacheKey& key) {
        std::lock_guard lock(m_mutex);
        m_slots.erase(key.sha256 + '\0' + key.profile);
    }

private:
    std::mutex m_mutex;
    std::unordered_map<std::string, std::shared_ptr<Slot>> m_slots;
};

void fill_from_entry(FileRecord& record, const CacheEntry& entry, std::string tier) {
    record.verdict = entry.verdict;
    record.provider = entry.provider;
    record.model = entry.model;
    record.file_type = entry.file_type;
    record.cache = std::move(tier);
}

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
          m_walk_queue(k_walk_queue_batches), m_result_queue(k_result_queue_batches) {
        if (m_options.mode == PipelineMode::scan) {
            m_profile = m_services.analysis->profile();
        }
    }

    RunSummary run(RecordSink& sink);

private:
    bool is_interrupted() const { return m_interrupt.load(std::memory_order_relaxed) != 0; }

    void walk_all();
    void work();
    void finish_all_work();
    bool process(WalkEntry&& entry, const WorkPtr& work);
    bool resolve_digest(const WalkEntry& entry, WorkResult& result,
                        std::vector<std::uint8_t>& content);
    bool resolve_verdict(const WalkEntry& entry, const WorkPtr& work,
                         const std::vector<std::uint8_t>& content);
    void analyse(const WalkEntry& entry, const WorkPtr& work,
                 const std::vector<std::uint8_t>& content, std::shared_ptr<InFlight::Slot> slot);
    void complete(const WorkPtr& work, AnalysisOutcome&& outcome,
                  const std::shared_ptr<InFlight::Slot>& slot);
    void publish(InFlight::Slot& slot, std::optional<CacheEntry> entry,
                 std::optional<Error> error);
    void finish(const WorkPtr& work, std::vector<WorkResult>& done);
    void finish_deferred(const WorkPtr& work);
    void store_and_emit(std::vector<std::vector<WorkResult>>& batches, RecordSink& sink, RunSummary& summary,
                        std::vector<FileRecord>& sorted_records);
    void count(const FileRecord& record, RunSummary& summary);

    const PipelineOptions& m_options;
    const PipelineServices& m_services;
    const std::atomic<int>& m_interrupt;
    std::string m_profile;
    BoundedQueue<std::vector<WalkEntry>> m_walk_queue;
    BoundedQueue<std::vector<WorkResult>> m_result_queue;
    InFlight m_in_flight;
    Counters m_counters;
    WalkStats m_walk_stats;
    std::uint64_t m_walk_ns = 0;
    std::atomic<std::uint64_t> m_walk_wait_ns{0};
    bool m_warned_store = false;
    std::atomic<std::uint64_t> m_skipped_other_shard{0};

    // Evidence extraction is CPU work over a window of up to 16 MiB per file: more of it at
    // once than there are cores only adds memory, while the other workers keep reading.
    std::counting_semaphore<1024> m_extract_slots{
        static_cast<std::ptrdiff_t>(std::clamp(std::thread::hardware_concurrency(), 1u, 1024u))};

    // Files handed to the analysis service or parked on a slot, not yet finished.
    std::mutex m_deferred_mutex;
    std::condition_variable m_deferred_done;
    std::uint64_t m_deferred = 0;
};

void Pipeline::walk_all() {
    const auto started = Clock::now();
    const std::atomic<bool> never_stop{false};
    std::vector<WalkEntry> batch;
    std::uint64_t batch_bytes = 0;
    const auto hand_off = [&] {
        batch_bytes = 0;
        const auto waited = Clock::now();
        const bool accepted = m_walk_queue.push(std::exchange(batch, {}));
        m_walk_wait_ns += elapsed_ns(waited);
        return accepted;
    };
    // The walk polls the interrupt through the sink; an interrupted run stops here first.
    m_walk_stats = walk(
        m_options.roots, m_options.walk,
        [&](WalkEntry&& entry) {
            if (is_interrupted()) {
                return false;
            }
            batch_bytes += entry.identity.size_bytes;
            batch.push_back(std::move(entry));
            const bool is_full =
                batch.size() >= k_walk_batch_files || batch_bytes >= k_walk_batch_bytes;
            return !is_full || hand_off();
        },
        never_stop);
    if (!batch.empty() && !is_interrupted()) {
        hand_off();
    }
    m_walk_ns = elapsed_ns(started);
    m_walk_queue.close();
}

void Pipeline::work() {
    while (auto batch = m_walk_queue.pop()) {
        std::vector<WorkResult> done;
        done.reserve(batch->size());
        for (WalkEntry& entry : *batch) {
            if (is_interrupted()) {
                break; // files not started are abandoned
            }
            auto work = std::make_shared<WorkResult>();
            work->started = Clock::now();
            if (process(std::move(entry), work)) {
                finish(work, done);
            }
        }
        if (!done.empty()) {
            m_result_queue.push(std::move(done));
        }
    }
}

void Pipeline::finish(const WorkPtr& work, std::vector<WorkResult>& done) {
    work->record.duration_ms = static_cast<double>(elapsed_ns(work->started)) / 1e6;
    done.push_back(std::move(*work));
}

void Pipeline::finish_deferred(const WorkPtr& work) {
    std::vector<WorkResult> done;
    finish(work, done);
    m_result_queue.push(std::move(done));
    std::lock_guard lock(m_deferred_mutex);
    --m_deferred;
    m_deferred_done.notify_all();
}

// Waits for every deferred file once the workers are done. After an interrupt the analysis
// service gets the drain timeout to finish what is in flight, then cancels the rest, which
// still arrive here as error records.
void Pipeline::finish_all_work() {
    std::unique_lock lock(m_deferred_mutex);
    bool is_shut_down = false;
    while (m_deferred > 0) {
        if (is_interrupted() && !is_shut_down && m_services.analysis != nullptr) {
            lock.unlock();
            m_services.analysis->shutdown(m_services.drain_timeout);
            is_shut_down = true;
            lock.lock();
            continue;
        }
        m_deferred_done.wait_for(lock, std::chrono::milliseconds(50));
    }
    lock.unlock();
    if (!is_shut_down && m_services.analysis != nullptr) {
        m_services.analysis->shutdown(std::chrono::milliseconds(0));
    }
}

// Returns true when the file is finished now, false when it was deferred.
bool Pipeline::process(WalkEntry&& entry, const WorkPtr& work) {
    FileRecord& record = work->record;
    record.path = entry.path;
    if (entry.error) {
        record.error = std::move(entry.error);
        return true;
    }
    record.size_bytes = entry.identity.size_bytes;

    thread_local std::vector<std::uint8_t> content;
    content.clear();
    if (!resolve_digest(entry, *work, content)) {
        return true;
    }
    if (m_options.shard_count > 1 &&
        shard_of(record.sha256, m_options.shard_count) != m_options.shard_index) {
        ++m_skipped_other_shard;
        return false; // another job's file: no record
    }
    if (m_options.mode == PipelineMode::hash) {
        return true;
    }
    return resolve_verdict(entry, work, content);
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

// Returns true when the verdict is known now, false when the file waits for an analysis.
bool Pipeline::resolve_verdict(const WalkEntry& entry, const WorkPtr& work,
                               const std::vector<std::uint8_t>& content) {
    FileRecord& record = work->record;
    const CacheKey key{record.sha256, m_profile};
    auto [slot, is_owner] = m_in_flight.claim(key);

    if (!is_owner) {
        // Same content as a file another worker has or is handling: share its outcome.
        std::lock_guard lock(slot->mutex);
        if (!slot->is_done) {
            slot->waiters.push_back(work);
            std::lock_guard deferred_lock(m_deferred_mutex);
            ++m_deferred;
            return false;
        }
        if (slot->entry) {
            fill_from_entry(record, *slot->entry, "memory");
        } else {
            record.cache = "miss";
            record.error = slot->error;
        }
        return true;
    }

    work->owns_slot = true;
    if (m_services.cache != nullptr && !m_services.cache->empty()) {
        const auto started = Clock::now();
        auto found = m_services.cache->lookup(std::span(&key, 1));
        m_counters.lookup_ns += elapsed_ns(started);
        if (found[0].entry) {
            fill_from_entry(record, *found[0].entry, found[0].tier);
            publish(*slot, std::move(found[0].entry), std::nullopt);
            return true;
        }
    }
    record.cache = "miss";
    {
        std::lock_guard lock(m_deferred_mutex);
        ++m_deferred;
    }
    analyse(entry, work, content, slot);
    return false;
}
// Marks the slot done and finishes every file parked on it with the same outcome.
void Pipeline::publish(InFlight::Slot& slot, std::optional<CacheEntry> entry,
                       std::optional<Error> error) {
    std::vector<WorkPtr> waiters;
    {
        std::lock_guard lock(slot.mutex);
        slot.is_done = true;
        slot.entry = entry;
        slot.error = error;
        waiters.swap(slot.waiters);
    }
    for (const WorkPtr& waiter : waiters) {
        if (entry) {
            fill_from_entry(waiter->record, *entry, "memory");
        } else {
            waiter->record.cache = "miss";
            waiter->record.error = error;
        }
        finish_deferred(waiter);
    }
}

// Extracts evidence on this worker (CPU work) and hands it to the analysis service, whose
// callback completes the file on whatever thread it runs.
void Pipeline::analyse(const WalkEntry& entry, const WorkPtr& work,
                       const std::vector<std::uint8_t>& content,
                       std::shared_ptr<InFlight::Slot> slot) {
    const auto started = Clock::now();
    ++m_counters.analyses;
    m_extract_slots.acquire();
    auto evidence = m_services.extractor->extract(entry.path, content);
    m_extract_slots.release();
    if (!evidence) {
        m_counters.analyse_ns += elapsed_ns(started);
        AnalysisOutcome failed;
        failed.verdict = std::unexpected(evidence.error());
        complete(work, std::move(failed), slot);
        return;
    }
    work->record.file_type = evidence->file_type;
    AnalysisRequest request{entry.path, work->record.sha256, std::move(*evidence)};
    m_services.analysis->submit(std::move(request),
                                [this, work, slot](AnalysisOutcome&& outcome) {
                                    complete(work, std::move(outcome), slot);
                                });
    m_counters.analyse_ns += elapsed_ns(started);
}

void Pipeline::complete(const WorkPtr& work, AnalysisOutcome&& outcome,
                        const std::shared_ptr<InFlight::Slot>& slot) {
    FileRecord& record = work->record;
    record.provider = outcome.provider;
    record.model = outcome.model;
    record.is_fallback = outcome.is_fallback;
    record.usage = outcome.usage;
    record.cost_usd = outcome.cost_usd;
    if (outcome.verdict) {
        record.verdict = *outcome.verdict;
        // A fallback verdict replaces an AI verdict that failed. It is printed but not stored
        // under the AI profile, so a later run sends the file to the AI again.
        work->is_fresh_verdict = !outcome.is_fallback;
        publish(*slot,
                CacheEntry{*outcome.verdict, record.provider, record.model, record.file_type,
                           static_cast<std::int64_t>(std::time(nullptr))},
                std::nullopt);
    } else {
        record.error = outcome.verdict.error();
        publish(*slot, std::nullopt, outcome.verdict.error());
    }
    finish_deferred(work);
}

// Stores the batch's fresh verdicts and stat entries, then emits its records: a verdict is
// committed before it is printed, so an interrupted run loses nothing it showed.
void Pipeline::store_and_emit(std::vector<std::vector<WorkResult>>& batches, RecordSink& sink,
                              RunSummary& summary, std::vector<FileRecord>& sorted_records) {
    std::vector<WorkResult> batch;
    for (auto& results : batches) {
        std::move(results.begin(), results.end(), std::back_inserter(batch));
    }
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
    // Counted per record, so a duplicate completed by another worker's outcome is a memory
    // hit like any other, and each file counts once whichever tier returned it.
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
        finish_all_work();
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
    summary.skipped_other_shard = m_skipped_other_shard;
    if (m_services.cache != nullptr) {
        for (const Error& error : m_services.cache->take_errors()) {
            if (m_services.warn) {
                m_services.warn("cache tier failed: " + error.message);
            }
        }
    }
    if (m_services.analysis != nullptr) {
        summary.analysis = m_services.analysis->summary_json();
        summary.analysis_report = m_services.analysis->report_text();
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

std::uint32_t shard_of(const std::string& sha256, std::uint32_t shard_count) {
    const std::uint64_t prefix = std::stoull(sha256.substr(0, 16), nullptr, 16);
    return static_cast<std::uint32_t>(prefix % shard_count);
}

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
