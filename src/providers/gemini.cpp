// Gemini generateContent: the verdict is asked for with responseMimeType application/json
// and a responseSchema.
#include "providers/prompt.hpp"
#include "providers/wire.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace athena::providers {
namespace {

using Json = nlohmann::json;

std::uint64_t count_field(const Json& object, const char* key) {
    const auto it = object.find(key);
    return it != object.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

Json text_content(const char* role, const std::string& text) {
    return {{"role", role}, {"parts", Json::array({{{"text", text}}})}};
}

// promptTokenCount includes cachedContentTokenCount; thinking tokens are billed as output.
TokenUsage read_usage(const Json& usage) {
    TokenUsage result;
    const std::uint64_t prompt = count_field(usage, "promptTokenCount");
    result.cached_input = std::min(count_field(usage, "cachedContentTokenCount"), prompt);
    result.input = prompt - result.cached_input;
    result.output =
        count_field(usage, "candidatesTokenCount") + count_field(usage, "thoughtsTokenCount");
    return result;
}

bool is_block_reason(const std::string& finish_reason) {
    for (const char* reason : {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
                               "IMAGE_SAFETY", "LANGUAGE"}) {
        if (finish_reason == reason) {
            return true;
        }
    }
    return false;
}

} // namespace

HttpRequest build_gemini_request(const ProviderConfig& provider, const Conversation& conversation) {
    Json contents = Json::array({text_content("user", conversation.user)});
    if (!conversation.repair.empty()) {
        contents.push_back(text_content("model", conversation.rejected_answer));
        contents.push_back(text_content("user", conversation.repair));
    }
    std::string members =
        fmt::format(R"("systemInstruction":{{"parts":[{{"text":{}}}]}},)"
                    R"("generationConfig":{{"maxOutputTokens":{})",
                    json_string(conversation.system), conversation.max_output_tokens);
    if (conversation.wants_verdict_schema) {
        members += R"(,"responseMimeType":"application/json","responseSchema":)";
        members += gemini_verdict_schema_json();
    }
    members += '}';
    const Json body = {{"contents", contents}};

    HttpRequest request;
    request.url = endpoint_url(provider);
    request.headers = {"Content-Type: application/json"};
    if (!provider.api_key.empty()) {
        request.headers.push_back("x-goog-api-key: " + provider.api_key);
    }
    request.body = dump_with_members(body, members);
    return request;
}

Result<ApiAnswer> parse_gemini_answer(const Json& body) {
    if (!body.is_object()) {
        return fail("invalid_response", "the response is not a JSON object");
    }
    ApiAnswer answer;
    if (const auto usage = body.find("usageMetadata"); usage != body.end() && usage->is_object()) {
        answer.usage = read_usage(*usage);
    }
    if (const auto feedback = body.find("promptFeedback");
        feedback != body.end() && feedback->is_object() && feedback->contains("blockReason")) {
        answer.stop = AnswerStop::blocked;
        answer.detail = "promptFeedback.blockReason " + feedback->value("blockReason", "");
        return answer;
    }
    const auto candidates = body.find("candidates");
    if (candidates == body.end() || !candidates->is_array() || candidates->empty() ||
        !(*candidates)[0].is_object()) {
        return fail("invalid_response", "the response has no candidates");
    }

    const Json& candidate = (*candidates)[0];
    const std::string finish_reason = candidate.value("finishReason", "");
    if (const auto content = candidate.find("content");
        content != candidate.end() && content->is_object() && content->contains("parts") &&
        (*content)["parts"].is_array()) {
        for (const Json& part : (*content)["parts"]) {
            if (part.is_object() && part.contains("text") && part["text"].is_string() &&
                !part.value("thought", false)) {
                answer.text += part["text"].get<std::string>();
            }
        }
    }
    if (is_block_reason(finish_reason)) {
        answer.stop = AnswerStop::blocked;
        answer.detail = "finishReason " + finish_reason;
    } else if (finish_reason == "MAX_TOKENS") {
        answer.stop = AnswerStop::truncated;
    } else if (answer.text.empty()) {
        answer.stop = AnswerStop::refused;
        answer.detail = "the candidate has no text";
    }
    return answer;
}

} // namespace athena::providers
