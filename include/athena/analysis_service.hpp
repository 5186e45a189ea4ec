// The seam between the pipeline and whatever produces verdicts. The pipeline hands each
// cache miss's evidence to submit() and moves on. The outcome arrives through a callback, so
// one event-loop thread can keep hundreds of provider requests in flight while the workers
// go on hashing.
#pragma once

#include <athena/analyser.hpp>
#include <athena/error.hpp>
#include <athena/evidence.hpp>
#include <athena/verdict.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace athena {

// Tokens one analysis used, by the categories providers bill separately.
struct TokenUsage {
    std::uint64_t input = 0;        // plain input tokens
    std::uint64_t cached_input = 0; // input read from the provider's prompt cache
    std::uint64_t cache_write = 0;  // input written to the provider's prompt cache
    std::uint64_t output = 0;

    bool empty() const { return input + cached_input + cache_write + output == 0; }
};

struct AnalysisRequest {
    std::string path; // raw bytes, for messages only; never sent to a provider
    std::string sha256;
    Evidence evidence;
};

struct AnalysisOutcome {
    Result<Verdict> verdict = fail("analysis", "no analysis ran");
    std::string provider; // who produced the verdict (or failed last)
    std::string model;
    bool is_fallback = false; // the builtin analyser produced it because no AI provider could
    TokenUsage usage;
    double cost_usd = 0.0;
};

class AnalysisService {
public:
    virtual ~AnalysisService() = default;

    // The analysis profile: part of the cache key, so a new analyser, model, prompt or rule
    // set re-analyses.
    virtual std::string profile() const = 0;

    // Thread-safe. `done` is called exactly once per request, on any thread (possibly
    // before submit returns), and must not block for long.
    virtual void submit(AnalysisRequest request,
                        std::function<void(AnalysisOutcome&&)> done) = 0;

    // Stops admitting requests and waits up to `grace` for those in flight; the rest end
    // with an error of kind "interrupted". Called once, after the last submit.
    virtual void shutdown(std::chrono::milliseconds grace) = 0;

    // The service's own part of the run summary, called once after shutdown: added to the
    // NDJSON summary under the key "analysis" (e.g. per-provider requests, tokens, cost,
    // breaker timeline) and printed after the run report. Empty by default.
    virtual nlohmann::ordered_json summary_json() const { return nlohmann::ordered_json::object(); }
    virtual std::string report_text() const { return {}; }
};

// Runs an Analyser synchronously inside submit(): no network, no queue.
std::unique_ptr<AnalysisService> make_local_service(std::unique_ptr<Analyser> analyser);

} // namespace athena
