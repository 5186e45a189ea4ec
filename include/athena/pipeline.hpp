// The scan: walk -> hash (stat cache first) -> cache lookup -> analyse -> store -> emit.
// The walk, a pool of worker threads and the calling thread (which stores and emits) run at
// once, joined by bounded queues.
#pragma once

#include <athena/analysis_service.hpp>
#include <athena/cache.hpp>
#include <athena/error.hpp>
#include <athena/evidence.hpp>
#include <athena/verdict.hpp>
#include <athena/walk.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace athena {

class CacheDatabase;
class TieredCache;

// One file's outcome: a verdict (scan), a digest (hash), or an error.
struct FileRecord {
    std::string path; // raw bytes
    std::string sha256;
    std::uint64_t size_bytes = 0;
    std::string file_type;
    std::string cache; // "memory", "sqlite", "miss"; empty when the file was not looked up
    std::string provider;
    std::string model;
    bool is_fallback = false;
    TokenUsage usage;  // empty for cache hits and local analysers
    double cost_usd = 0.0;
    std::optional<Verdict> verdict;
    std::optional<Error> error;
    double duration_ms = 0.0;
};

// Time spent in each stage, summed over the threads that ran it, in nanoseconds.
struct StageTimes {
    std::uint64_t walk_ns = 0;
    std::uint64_t stat_cache_ns = 0;
    std::uint64_t hash_ns = 0;
    std::uint64_t lookup_ns = 0;
    std::uint64_t analyse_ns = 0;
    std::uint64_t store_ns = 0;
    std::uint64_t emit_ns = 0;
};

struct RunSummary {
    std::uint64_t files = 0;  // records emitted, errors included
    std::uint64_t errors = 0; // records with an error
    std::map<std::string, std::uint64_t> errors_by_kind;
    std::uint64_t bytes_hashed = 0;
    std::uint64_t files_hashed = 0;
    std::uint64_t stat_cache_hits = 0;
    std::uint64_t analyses = 0; // files an analyser examined during this run
    std::uint64_t cache_hits = 0;
    std::uint64_t cache_misses = 0;
    std::map<std::string, std::uint64_t> hits_by_tier;
    std::uint64_t cache_store_errors = 0;
    std::uint64_t skipped_other_shard = 0;
    std::map<std::string, std::uint64_t> by_level;
    WalkStats walk;
    StageTimes stages;
    double duration_ms = 0.0;
    // From AnalysisService::summary_json() and report_text().
    nlohmann::ordered_json analysis = nlohmann::ordered_json::object();
    std::string analysis_report;
    int exit_code = 0;
    bool interrupted = false;
    int interrupt_signal = 0;
};

// Receives records on the calling thread of run_pipeline, in completion order (or path
// order with sort_by_path), then the summary once.
class RecordSink {
public:
    virtual ~RecordSink() = default;
    virtual void on_record(const FileRecord& record) = 0;
    virtual void on_summary(const RunSummary& summary) = 0;
};

enum class PipelineMode { scan, hash };

struct PipelineOptions {
    PipelineMode mode = PipelineMode::scan;
    std::vector<std::string> roots;
    WalkOptions walk;
    unsigned worker_threads = 0; // 0: chosen from the core count
    bool use_stat_cache = true;
    bool cache_results = true; // store fresh verdicts
    bool sort_by_path = false;
    ThreatLevel fail_on = ThreatLevel::malicious;
    // Split a scan across shard_count jobs: this run keeps the files whose digest falls in
    // shard_index (0-based). Files of other shards get no record and count as skipped.
    std::uint32_t shard_index = 0;
    std::uint32_t shard_count = 1;
};

// The shard a digest belongs to: its first 16 hex digits as a number, modulo shard_count.
std::uint32_t shard_of(const std::string& sha256, std::uint32_t shard_count);

// Everything a run uses; the caller owns them. database may be null (no SQLite at all);
// cache may be empty; analysis and extractor are required in scan mode.
struct PipelineServices {
    CacheDatabase* database = nullptr;
    TieredCache* cache = nullptr;
    AnalysisService* analysis = nullptr;
    const EvidenceExtractor* extractor = nullptr;
    // How long in-flight analyses may go on after an interrupt before they are cancelled.
    std::chrono::milliseconds drain_timeout{5000};
    // Called on the calling thread for each warning worth showing once (a failing tier).
    std::function<void(const std::string&)> warn;
};

// Runs the pipeline until every file is done or `interrupt` contains a signal number; then
// finishes the files in progress, stores and emits them, and returns the summary (which the
// sink has also received). Exit code: 2 if any file had an error, else 1 if any verdict is at
// or above fail_on, else 0; 128 + signal when interrupted.
RunSummary run_pipeline(const PipelineOptions& options, const PipelineServices& services,
                        RecordSink& sink, const std::atomic<int>& interrupt);

// The default worker count: reads of small files are latency-bound when the page cache is
// cold, so more reads in flight than cores pay off (16 on a 2-core machine).
unsigned default_worker_threads();

} // namespace athena
