// Reading a provider's response: the validation path from transport result to verdict, and
// the wait a server asks for before a retry.
#include "providers/prompt.hpp"
#include "providers/wire.hpp"

#include <athena/text.hpp>

#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

namespace athena::providers {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

// Server waits above a day are cut to a day, so later arithmetic cannot overflow.
constexpr double k_max_wait_ms = 86'400'000.0;
// The rejected answer shown in a repair request is cut to this many bytes.
constexpr std::size_t k_max_answer_bytes = 4000;

std::string lower_copy(std::string_view text) {
    std::string result(text);
    std::ranges::transform(result, result.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return result;
}

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(" \t\r\n");
    return text.substr(first, last - first + 1);
}

std::optional<double> parse_number(std::string_view text) {
    text = trim(text);
    double value = 0.0;
    const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (status != std::errc() || end != text.data() + text.size() || !std::isfinite(value) ||
        value < 0) {
        return std::nullopt;
    }
    return value;
}

milliseconds to_wait(double ms) {
    return milliseconds(static_cast<std::int64_t>(std::ceil(std::min(ms, k_max_wait_ms))));
}

// The first line of a body that is not JSON, e.g. a proxy's HTML page, for the message.
std::string describe_body(const HttpResponse& response) {
    const auto type = response.headers.find("content-type");
    const std::string content_type = type == response.headers.end() ? "" : type->second;
    if (response.body.empty()) {
        return "empty body";
    }
    if (content_type.find("html") != std::string::npos) {
        return "an HTML page, likely from a proxy";
    }
    std::string line = to_utf8_lossy(response.body.substr(0, response.body.find('\n')));
    return "body: " + escape_for_terminal(line.substr(0, 120));
}

std::string cut_answer(const std::string& text) {
    std::string valid = to_utf8_lossy(text);
    if (valid.size() <= k_max_answer_bytes) {
        return valid;
    }
    std::size_t end = k_max_answer_bytes;
    while (end > 0 && (static_cast<unsigned char>(valid[end]) & 0xC0) == 0x80) {
        --end;
    }
    return valid.substr(0, end);
}

Result<ApiAnswer> parse_answer(ProviderApi api, const Json& body) {
    switch (api) {
    case ProviderApi::anthropic:
        return parse_anthropic_answer(body);
    case ProviderApi::openai:
        return parse_openai_answer(body);
    case ProviderApi::gemini:
        return parse_gemini_answer(body);
    }
    return fail("invalid_response", "unknown API");
}

// The environment variable that contains a provider's key, for the hint in an auth message.
std::string key_hint(const ProviderConfig& provider) {
    const ProviderPreset* preset = find_provider_preset(provider.name);
    if (preset == nullptr || preset->key_env.empty()) {
        return fmt::format("check the {}-api-key setting", provider.name);
    }
    return fmt::format("check {} or the {}-api-key setting", preset->key_env.front(),
                       provider.name);
}

AttemptResult failed(FailureClass failure, CallOutcome outcome, std::string kind,
                     std::string message) {
    AttemptResult result;
    result.failure = failure;
    result.outcome = outcome;
    result.error = Error{std::move(kind), std::move(message)};
    return result;
}

AttemptResult interpret_status(const ProviderConfig& provider, const HttpResponse& response,
                               const std::string& where,
                               std::chrono::system_clock::time_point now) {
    const Json body = Json::parse(response.body, nullptr, false);
    const std::string provider_message = body.is_discarded() ? "" : provider_error_message(body);
    const std::string reason =
        provider_message.empty() ? describe_body(response) : escape_for_terminal(provider_message);
    const long status = response.status;
    const std::string message = fmt::format("{}: HTTP {}: {}", where, status, reason);

    if (status == 401 || status == 403) {
        return failed(FailureClass::auth, CallOutcome::ignored, "auth",
                      fmt::format("{}; {}", message, key_hint(provider)));
    }
    if (status == 429) {
        if (!body.is_discarded() && is_daily_quota(body)) {
            return failed(FailureClass::quota, CallOutcome::failure, "quota", message);
        }
        AttemptResult result =
            failed(FailureClass::transient, CallOutcome::failure, "rate_limited", message);
        result.retry_after = parse_retry_after(response.headers, now);
        if (!result.retry_after && !body.is_discarded()) {
            result.retry_after = parse_gemini_retry_delay(body);
        }
        return result;
    }
    if (status == 408 || status >= 500) {
        AttemptResult result =
            failed(FailureClass::transient, CallOutcome::failure, "http_status", message);
        result.retry_after = parse_retry_after(response.headers, now);
        return result;
    }
    if (status >= 400) {
        return failed(FailureClass::request, CallOutcome::ignored, "http_status", message);
    }
    return failed(FailureClass::bad_response, CallOutcome::failure, "invalid_response",
                  fmt::format("{}: unexpected HTTP status {}", where, status));
}

AttemptResult interpret_answer(const ProviderConfig& provider, const HttpResponse& response,
                               const std::string& where) {
    if (trim(response.body).empty()) {
        return failed(FailureClass::bad_response, CallOutcome::failure, "invalid_response",
                      where + ": HTTP 200 with an empty body");
    }
    const Json body = Json::parse(response.body, nullptr, false);
    if (body.is_discarded()) {
        if (!is_valid_utf8(response.body)) {
            AttemptResult result =
                failed(FailureClass::rejected_answer, CallOutcome::ignored, "invalid_answer",
                       where + ": the answer is not valid UTF-8");
            result.reason = "the answer is not valid UTF-8";
            result.answer_text = cut_answer(response.body);
            return result;
        }
        return failed(FailureClass::bad_response, CallOutcome::failure, "invalid_response",
                      fmt::format("{}: HTTP 200 but the body is not JSON ({})", where,
                                  describe_body(response)));
    }
    auto answer = parse_answer(provider.api, body);
    if (!answer) {
        return failed(FailureClass::bad_response, CallOutcome::failure, "invalid_response",
                      fmt::format("{}: {}", where, answer.error().message));
    }

    AttemptResult result;
    result.usage = answer->usage;
    result.outcome = CallOutcome::ignored;
    result.answer_text =
        cut_answer(answer->structured
                       ? answer->structured->dump(-1, ' ', false, Json::error_handler_t::replace)
                       : answer->text);
    const auto reject = [&](FailureClass failure, std::string kind, std::string why) {
        result.failure = failure;
        result.reason = why;
        result.error = Error{std::move(kind), fmt::format("{}: {}", where, why)};
        return result;
    };
    switch (answer->stop) {
    case AnswerStop::refused:
        return reject(FailureClass::refused, "refused",
                      "the model refused: " + escape_for_terminal(cut_answer(answer->detail)));
    case AnswerStop::blocked:
        return reject(FailureClass::refused, "refused",
                      "the answer was blocked: " + escape_for_terminal(answer->detail));
    case AnswerStop::truncated:
        return reject(FailureClass::rejected_answer, "invalid_answer",
                      "the answer was cut off at the output token limit");
    case AnswerStop::complete:
        break;
    }

    Result<Verdict> verdict = answer->structured ? verdict_from_json(*answer->structured)
                                                 : parse_verdict_text(answer->text);
    if (!verdict) {
        return reject(FailureClass::rejected_answer, "invalid_answer",
                      "invalid verdict: " + verdict.error().message);
    }
    result.failure = FailureClass::none;
    result.outcome = CallOutcome::success;
    result.verdict = std::move(*verdict);
    return result;
}

// Replaces every occurrence of the key, so that a provider echoing it cannot put it in a
// record or on the terminal.
void scrub_key(std::string& text, const std::string& key) {
    if (key.size() < 4) {
        return;
    }
    for (auto at = text.find(key); at != std::string::npos; at = text.find(key, at)) {
        text.replace(at, key.size(), "[key]");
    }
}

} // namespace

HttpRequest build_request(const ProviderConfig& provider, const Conversation& conversation) {
    switch (provider.api) {
    case ProviderApi::anthropic:
        return build_anthropic_request(provider, conversation);
    case ProviderApi::openai:
        return build_openai_request(provider, conversation);
    case ProviderApi::gemini:
        return build_gemini_request(provider, conversation);
    }
    return build_openai_request(provider, conversation);
}

std::string dump_with_members(const Json& body, std::string_view members) {
    std::string text = body.dump(-1, ' ', false, Json::error_handler_t::replace);
    if (members.empty()) {
        return text;
    }
    text.pop_back(); // the closing brace
    if (text.size() > 1) {
        text += ',';
    }
    text += members;
    text += '}';
    return text;
}

std::string json_string(const std::string& text) {
    if (text == system_prompt()) {
        return system_prompt_json();
    }
    return Json(text).dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string provider_error_message(const Json& body) {
    if (!body.is_object()) {
        return {};
    }
    const auto error = body.find("error");
    if (error != body.end() && error->is_object()) {
        const auto message = error->find("message");
        if (message != error->end() && message->is_string()) {
            return message->get<std::string>();
        }
    }
    if (error != body.end() && error->is_string()) {
        return error->get<std::string>();
    }
    const auto message = body.find("message");
    return message != body.end() && message->is_string() ? message->get<std::string>() : "";
}

AttemptResult interpret_response(const ProviderConfig& provider, const HttpResponse& response,
                                 std::chrono::system_clock::time_point now) {
    const std::string where =
        fmt::format("{}: POST {}", provider.name, redact_url(endpoint_url(provider)));
    AttemptResult result;
    if (response.transport_code == CURLE_WRITE_ERROR) {
        result = failed(FailureClass::bad_response, CallOutcome::failure, "invalid_response",
                        fmt::format("{}: {}", where, response.transport_message));
    } else if (response.transport_code != 0) {
        const bool is_timeout = response.is_timeout;
        result = failed(FailureClass::transient, CallOutcome::failure,
                        is_timeout ? "timeout" : "connection",
                        fmt::format("{}: {}", where, response.transport_message));
    } else if (response.status < 200 || response.status > 299) {
        result = interpret_status(provider, response, where, now);
    } else {
        result = interpret_answer(provider, response, where);
    }
    scrub_key(result.error.message, provider.api_key);
    scrub_key(result.answer_text, provider.api_key);
    return result;
}

std::optional<milliseconds> parse_retry_after(const std::map<std::string, std::string>& headers,
                                              std::chrono::system_clock::time_point now) {
    if (const auto ms = headers.find("retry-after-ms"); ms != headers.end()) {
        if (const auto value = parse_number(ms->second)) {
            return to_wait(*value);
        }
    }
    const auto header = headers.find("retry-after");
    if (header == headers.end()) {
        return std::nullopt;
    }
    if (const auto seconds = parse_number(header->second)) {
        return to_wait(*seconds * 1000.0);
    }
    // An HTTP date; curl_getdate also reads the obsolete RFC 850 form, as a test checks.
    const std::string date(trim(header->second));
    const time_t at = curl_getdate(date.c_str(), nullptr);
    if (at == -1) {
        return std::nullopt;
    }
    const auto wait = std::chrono::system_clock::from_time_t(at) - now;
    const double wait_ms = std::chrono::duration<double, std::milli>(wait).count();
    return to_wait(std::max(0.0, wait_ms));
}

std::optional<milliseconds> parse_gemini_retry_delay(const Json& body) {
    if (!body.is_object() || !body.contains("error") || !body["error"].is_object()) {
        return std::nullopt;
    }
    const Json& error = body["error"];
    const auto details = error.find("details");
    if (details == error.end() || !details->is_array()) {
        return std::nullopt;
    }
    for (const Json& detail : *details) {
        if (!detail.is_object() || !detail.value("@type", "").ends_with("google.rpc.RetryInfo")) {
            continue;
        }
        const std::string delay = detail.value("retryDelay", "");
        if (!delay.ends_with('s')) {
            continue;
        }
        if (const auto seconds =
                parse_number(std::string_view(delay).substr(0, delay.size() - 1))) {
            return to_wait(*seconds * 1000.0);
        }
    }
    return std::nullopt;
}

bool is_daily_quota(const Json& body) {
    if (!body.is_object() || !body.contains("error") || !body["error"].is_object()) {
        return false;
    }
    const Json& error = body["error"];
    for (const char* key : {"type", "code"}) {
        const auto it = error.find(key);
        if (it != error.end() && it->is_string() && *it == "insufficient_quota") {
            return true;
        }
    }
    if (const auto details = error.find("details"); details != error.end() && details->is_array()) {
        for (const Json& detail : *details) {
            if (!detail.is_object() || !detail.contains("violations") ||
                !detail["violations"].is_array()) {
                continue;
            }
            for (const Json& violation : detail["violations"]) {
                if (violation.is_object() &&
                    violation.value("quotaId", "").find("PerDay") != std::string::npos) {
                    return true;
                }
            }
        }
    }
    const std::string message = lower_copy(provider_error_message(body));
    return message.find("daily") != std::string::npos ||
           message.find("per day") != std::string::npos;
}

std::string_view strip_json_fence(std::string_view text) {
    text = trim(text);
    if (!text.starts_with("```")) {
        return text;
    }
    const auto line_end = text.find('\n');
    const auto closing = text.rfind("```");
    if (line_end == std::string_view::npos) {
        return trim(text.substr(3));
    }
    if (closing <= line_end) {
        return trim(text.substr(line_end + 1)); // an opening fence without a closing one
    }
    return trim(text.substr(line_end + 1, closing - line_end - 1));
}

Result<Verdict> parse_verdict_text(std::string_view text) {
    const std::string_view inner = strip_json_fence(text);
    if (!is_valid_utf8(inner)) {
        return fail("invalid_answer", "the answer is not valid UTF-8");
    }
    Json json = Json::parse(inner, nullptr, false);
    // Local models often wrap the object in prose; a complete object inside still counts.
    if (json.is_discarded()) {
        const auto open = inner.find('{');
        const auto close = inner.rfind('}');
        if (open != std::string_view::npos && close != std::string_view::npos && open < close) {
            json = Json::parse(inner.substr(open, close - open + 1), nullptr, false);
        }
    }
    if (json.is_discarded()) {
        return fail("invalid_answer",
                    inner.empty() ? "the answer is empty" : "the answer is not valid JSON");
    }
    if (!json.is_object()) {
        return fail("invalid_answer", "the answer is not a JSON object");
    }
    auto verdict = verdict_from_json(json);
    if (!verdict) {
        return fail("invalid_answer", verdict.error().message);
    }
    return verdict;
}

} // namespace athena::providers
