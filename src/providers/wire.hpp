// The wire formats: building each API's request and reading its response into a verdict or
// a classified failure. Pure functions over bytes, so tests need no server.
#pragma once

#include <athena/analysis_service.hpp>
#include <athena/breaker.hpp>
#include <athena/error.hpp>
#include <athena/providers.hpp>
#include <athena/verdict.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace athena::providers {

struct HttpRequest {
    std::string url;
    std::vector<std::string> headers; // "Name: value"; contain the key, so never log them
    std::string body;
};

struct HttpResponse {
    long status = 0;                            // 0 when no response arrived
    std::map<std::string, std::string> headers; // lower-case names; the last value wins
    std::string body;                           // decoded (gzip, br, zstd)
    int transport_code = 0;                     // CURLcode; 0 when the transfer completed
    std::string transport_message;              // curl's error text
    bool is_timeout = false;                    // the timeout or the stall limit ended it
    bool is_cancelled = false;                  // ended by EventLoop::cancel_all
    std::chrono::milliseconds latency{0};
};

// What one request asks: the messages of a first attempt, or of a repair attempt that shows
// the model its rejected answer and why it was rejected.
struct Conversation {
    std::string system;
    std::string user;
    std::string rejected_answer;      // empty unless this is a repair
    std::string repair;               // the repair message; empty unless this is a repair
    bool wants_verdict_schema = true; // false for the tiny `providers --check` request
    std::uint32_t max_output_tokens = 1024;
};

// Serialises `body`, a JSON object, with `members` added: text of the form
// "\"key\":value,..." that is already JSON, such as a schema serialised once.
std::string dump_with_members(const nlohmann::json& body, std::string_view members);

// `text` as a JSON string; the system prompt's escaping is done once.
std::string json_string(const std::string& text);

// The request in the provider's API (build_request picks by provider.api).
HttpRequest build_request(const ProviderConfig& provider, const Conversation& conversation);
HttpRequest build_anthropic_request(const ProviderConfig& provider,
                                    const Conversation& conversation);
HttpRequest build_openai_request(const ProviderConfig& provider, const Conversation& conversation);
HttpRequest build_gemini_request(const ProviderConfig& provider, const Conversation& conversation);

// How a model's answer ended.
enum class AnswerStop {
    complete,
    truncated, // max_tokens / length / MAX_TOKENS
    refused,   // a refusal field, stop_reason refusal, or null content
    blocked,   // Gemini: finishReason SAFETY (and similar) or promptFeedback.blockReason
};

// A 2xx response body read in its API's shape.
struct ApiAnswer {
    AnswerStop stop = AnswerStop::complete;
    std::string text;                         // the model's text (tool input as JSON text)
    std::optional<nlohmann::json> structured; // Anthropic tool input, already an object
    std::string detail;                       // refusal text or block reason
    TokenUsage usage;
};

// Reads a 2xx body. Errors: kind "invalid_response" when it is not the API's shape.
Result<ApiAnswer> parse_anthropic_answer(const nlohmann::json& body);
Result<ApiAnswer> parse_openai_answer(const nlohmann::json& body);
Result<ApiAnswer> parse_gemini_answer(const nlohmann::json& body);

// The provider's own message in an error body ({"error": {"message": ...}} in all three
// APIs), or empty.
std::string provider_error_message(const nlohmann::json& body);

// The class of an attempt's failure, which decides the router's next step.
enum class FailureClass {
    none,            // a valid verdict
    transient,       // retry after a delay: timeout, connection error, 408, 429, 5xx, 529
    quota,           // a quota that does not come back within the run: stop the provider
    auth,            // 401, 403: stop the provider
    request,         // other 4xx: this file goes to the next provider
    bad_response,    // a 2xx body in no known shape: the next provider
    rejected_answer, // the answer failed validation: one repair, then the next provider
    refused,         // refusal or safety block: the next provider
};

struct AttemptResult {
    FailureClass failure = FailureClass::none;
    std::optional<Verdict> verdict;
    Error error;             // kind and message; the message names the provider and URL
    std::string reason;      // the message without provider and URL, for a repair request
    TokenUsage usage;        // billed even when the answer is rejected
    std::string answer_text; // the model's text, valid UTF-8, for a repair attempt
    std::optional<std::chrono::milliseconds> retry_after; // the server's requested wait
    CallOutcome outcome = CallOutcome::failure;
};

// Classifies one response along the validation path: transport, HTTP status, the
// provider's error shape, stop reason, text or tool input, ```json fence, JSON parse,
// verdict_from_json (levels, confidence, types, UTF-8). `now` dates a retry-after given as
// an HTTP date.
AttemptResult interpret_response(const ProviderConfig& provider, const HttpResponse& response,
                                 std::chrono::system_clock::time_point now);

// The server's requested wait: retry-after-ms, else retry-after in seconds (fractions
// allowed) or as an HTTP date relative to `now`. A date in the past gives 0.
std::optional<std::chrono::milliseconds>
parse_retry_after(const std::map<std::string, std::string>& headers,
                  std::chrono::system_clock::time_point now);

// Gemini's RetryInfo.retryDelay in an error body ("1.5s"), if there is one.
std::optional<std::chrono::milliseconds> parse_gemini_retry_delay(const nlohmann::json& body);

// Whether a 429 body reports a quota that lasts the day or needs billing: a Gemini
// QuotaFailure whose quotaId contains "PerDay", OpenAI's insufficient_quota, or a message
// about a daily limit.
bool is_daily_quota(const nlohmann::json& body);

// The text inside a ```json (or bare ```) fence around the whole answer, else the text.
std::string_view strip_json_fence(std::string_view text);

// Parses the model's text as a verdict: fence, JSON, schema. Errors: kind "invalid_answer".
Result<Verdict> parse_verdict_text(std::string_view text);

} // namespace athena::providers
