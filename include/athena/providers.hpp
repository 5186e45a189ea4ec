// AI providers: the presets that name them (Anthropic, OpenAI and OpenAI-compatible servers,
// Gemini), their prices, and the router that sends evidence to them from one libcurl multi
// event loop, with retries, failover, answer validation and cost accounting.
#pragma once

#include <athena/analyser.hpp>
#include <athena/analysis_service.hpp>
#include <athena/backoff.hpp>
#include <athena/breaker.hpp>
#include <athena/clock.hpp>
#include <athena/error.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace athena {

// Version of the system prompt, the evidence bundle layout and the answer schema. Part of
// the analysis profile: raise it whenever a change could change a verdict.
inline constexpr int k_prompt_version = 1;

// The HTTP API a provider speaks.
enum class ProviderApi {
    anthropic, // Messages API: POST {base}/v1/messages
    openai,    // Chat Completions: POST {base}/chat/completions, base ends in /v1
    gemini,    // generateContent: POST {base}/v1beta/models/{model}:generateContent
};

std::string_view to_string(ProviderApi api);

// How an OpenAI-compatible server is asked for structured output.
enum class ResponseFormat {
    json_schema, // response_format {type: json_schema} with the verdict schema
    json_object, // response_format {type: json_object}; the schema is in the prompt only
};

// USD per million tokens, per billing category (see TokenUsage).
struct TokenPrices {
    double input = 0.0;
    double cached_input = 0.0;
    double cache_write = 0.0;
    double output = 0.0;
};

// The cost of `usage` at `prices`, in USD.
double cost_usd(const TokenUsage& usage, const TokenPrices& prices);

// Built-in defaults of one provider name.
struct ProviderPreset {
    std::string name; // "anthropic", "openai", "gemini", "deepseek", ...
    ProviderApi api = ProviderApi::openai;
    std::string base_url;
    std::string model;                     // empty when the user must choose one (vllm)
    std::vector<std::string> key_env;      // first set one wins; empty: no key needed
    std::vector<std::string> base_url_env; // first set one wins
    TokenPrices prices;                    // list prices; an estimate, overridable
    ResponseFormat response_format = ResponseFormat::json_schema;
    // The Chat Completions field that limits output: "max_completion_tokens" (OpenAI) or
    // "max_tokens" (most compatible servers). Unused by the other APIs.
    std::string max_tokens_field = "max_tokens";
    bool is_local = false; // runs on this machine: base URL on 127.0.0.1, no key
};

// Every preset, in the order `athena providers` lists them.
const std::vector<ProviderPreset>& provider_presets();

// The preset of `name`, or null. "claude" is accepted for "anthropic" and "google" for
// "gemini", the names the Athena platform's FEATURE_AIPROVIDERPRIORITY uses.
const ProviderPreset* find_provider_preset(std::string_view name);

// One provider as configured for a run: the preset with the user's settings applied.
struct ProviderConfig {
    std::string name;
    ProviderApi api = ProviderApi::openai;
    std::string base_url;
    std::string model;
    std::string api_key; // never printed, logged, cached or put in a message
    bool needs_key = true;
    std::chrono::milliseconds timeout{60'000}; // whole request, connect included
    std::chrono::milliseconds connect_timeout{10'000};
    // A response that delivers no byte for this long is abandoned as a stall.
    std::chrono::milliseconds stall_timeout{30'000};
    std::uint32_t max_output_tokens = 1024;
    TokenPrices prices;
    ResponseFormat response_format = ResponseFormat::json_schema;
    std::string max_tokens_field = "max_tokens";

    // A provider that needs a key and has none is skipped.
    bool has_credentials() const { return !needs_key || !api_key.empty(); }
};

// The URL a verdict request goes to, from base_url (trailing slashes ignored) and the API.
std::string endpoint_url(const ProviderConfig& config);

// The URL without user name, password and query, for messages.
std::string redact_url(std::string_view url);

// "…" and the last 4 characters of a key (fewer for keys under 16 characters, none under
// 8), or "(none)" for an empty key.
std::string mask_key(std::string_view key);

// The analysis profile of a router over `providers`:
// "ai;providers=<name/model,...>;prompt=<version>;" followed by the builtin profile.
std::string provider_profile(const std::vector<ProviderConfig>& providers,
                             std::string_view builtin_profile);

// Retries of transient failures (timeouts, connection errors, 408, 429, 5xx, 529), per file
// and provider.
struct RetryPolicy {
    std::uint32_t max_retries = 3; // retries after the first attempt
    // The sum of waits before retries; a retry that would pass it is not made, and the file
    // goes to the next provider.
    std::chrono::milliseconds max_total_wait{60'000};
    BackoffConfig backoff{BackoffStrategy::exponential, std::chrono::milliseconds(500),
                          std::chrono::milliseconds(30'000), 0.2};
};

// An admitted provider call. Destroying it without CallGate::record counts as `ignored`.
class CallPermit {
public:
    virtual ~CallPermit() = default;
};

// Receives a queued admission: a permit, or a rejection.
using AdmitCallback = std::move_only_function<void(Result<std::unique_ptr<CallPermit>>)>;

// The one place every HTTP attempt to a provider passes, so a circuit breaker and a bulkhead
// can admit, reject, queue and observe calls. The router calls admit() and record() on its
// event-loop thread; a gate must not block there.
class CallGate {
public:
    virtual ~CallGate() = default;

    // Returns a permit or a rejection (an error whose kind names the reason, such as
    // "breaker_open" or "bulkhead_full") at once, or std::nullopt when the call is queued:
    // `on_ready` then runs exactly once, on any thread, with the permit or the rejection.
    // `on_ready` never runs when admit() returns a value.
    virtual std::optional<Result<std::unique_ptr<CallPermit>>> admit(const std::string& provider,
                                                                     AdmitCallback on_ready) = 0;

    // Records one attempt's outcome (success, failure or ignored as CallOutcome defines them)
    // and its latency from request start to the last response byte or the failure.
    virtual void record(std::unique_ptr<CallPermit> permit, CallOutcome outcome,
                        std::chrono::milliseconds latency) = 0;

    // The next time the gate needs on_timer() (queue timeouts, slow-call checks); the event
    // loop waits no longer than that. Empty: no timer.
    virtual std::optional<SteadyTime> next_deadline() const { return std::nullopt; }
    virtual void on_timer(SteadyTime) {}

    // The gate's part of the run summary and report, which the router adds under
    // "resilience" and after its own lines. Called once, after the router's shutdown.
    virtual nlohmann::ordered_json summary_json() const { return nlohmann::ordered_json::object(); }
    virtual std::string report_text() const { return {}; }
};

// A gate that admits every call at once and ignores outcomes.
std::shared_ptr<CallGate> make_open_call_gate();

struct RouterOptions {
    // Priority order. Providers without credentials stay in the profile but are skipped.
    std::vector<ProviderConfig> providers;
    bool failover = true;                // on a provider's failure, try the next one
    bool builtin_fallback = true;        // when every provider failed, answer with the builtin
    bool offline = false;                // send nothing: builtin verdict or error "not_cached"
    std::size_t max_concurrency = 30;    // HTTP requests in flight across providers
    std::size_t max_input_tokens = 4000; // estimated prompt tokens per request
    std::optional<double> max_cost_usd;  // no new request once spend would pass it
    RetryPolicy retry;
    std::shared_ptr<CallGate> gate; // null: make_open_call_gate()
    // One line per event worth telling the user once: a provider disabled for the run.
    // Called on the event-loop thread.
    std::function<void(const std::string&)> warn;
    // Random numbers for backoff jitter; null: default_random_source().
    RandomSource random;
};

// Creates the router: an AnalysisService that sends each file's evidence to the providers
// in priority order over one event-loop thread and returns the first valid verdict. The
// builtin analyser judges every file too: its hard signature hits (YARA rules of severity
// malicious or critical) set the lowest level the final verdict may have, and it answers
// with `is_fallback` when no provider did. Error kinds of file outcomes: "timeout",
// "connection", "http_status", "rate_limited", "invalid_response", "invalid_answer",
// "refused", "auth", "quota", "no_provider", "budget", "not_cached", "interrupted", and the
// gate's rejection kinds. Errors of this function: kind "usage" (no provider, a provider
// without model or base URL, a concurrency of 0).
Result<std::unique_ptr<AnalysisService>> make_provider_router(RouterOptions options,
                                                              std::unique_ptr<Analyser> builtin);

// Result of one `athena providers --check` request.
struct ProviderCheck {
    std::string provider;
    bool is_ok = false;
    std::chrono::milliseconds latency{0};
    int http_status = 0; // 0 when no response arrived
    std::string message; // the reason it failed, or "ok"
};

// Sends one tiny request to each provider at once and waits for all answers. Providers
// without credentials are reported as such and not contacted.
std::vector<ProviderCheck> check_providers(const std::vector<ProviderConfig>& providers);

} // namespace athena
