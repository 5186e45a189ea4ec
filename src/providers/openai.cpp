// OpenAI Chat Completions, also spoken by DeepSeek, Groq, Mistral, Ollama, vLLM and
// llama.cpp's server. The verdict is asked for with response_format.
#include "providers/prompt.hpp"
#include "providers/wire.hpp"

#include <algorithm>

namespace athena::providers {
namespace {

using Json = nlohmann::json;

std::uint64_t count_field(const Json& object, const char* key) {
    const auto it = object.find(key);
    return it != object.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

// prompt_tokens includes cached tokens, which OpenAI reports in prompt_tokens_details and
// DeepSeek as prompt_cache_hit_tokens.
TokenUsage read_usage(const Json& usage) {
    TokenUsage result;
    const std::uint64_t prompt = count_field(usage, "prompt_tokens");
    std::uint64_t cached = count_field(usage, "prompt_cache_hit_tokens");
    if (const auto details = usage.find("prompt_tokens_details");
        details != usage.end() && details->is_object()) {
        cached = std::max(cached, count_field(*details, "cached_tokens"));
    }
    result.cached_input = std::min(cached, prompt);
    result.input = prompt - result.cached_input;
    result.output = count_field(usage, "completion_tokens");
    return result;
}

// The structured-output request, serialised once.
const std::string& json_schema_members() {
    static const std::string text = R"("response_format":{"json_schema":{"name":"verdict",)"
                                    R"("schema":)" +
                                    verdict_schema_json() +
                                    R"(,"strict":true},"type":"json_schema"})";
    return text;
}

} // namespace

HttpRequest build_openai_request(const ProviderConfig& provider, const Conversation& conversation) {
    // The system message is spliced in as text, so its escaping is done once.
    Json turns = Json::array({{{"role", "user"}, {"content", conversation.user}}});
    if (!conversation.repair.empty()) {
        turns.push_back({{"role", "assistant"}, {"content", conversation.rejected_answer}});
        turns.push_back({{"role", "user"}, {"content", conversation.repair}});
    }
    const std::string turns_text = turns.dump(-1, ' ', false, Json::error_handler_t::replace);
    std::string members = R"("messages":[{"content":)" + json_string(conversation.system) +
                          R"(,"role":"system"},)" + turns_text.substr(1);
    if (conversation.wants_verdict_schema) {
        members += ',';
        members += provider.response_format == ResponseFormat::json_schema
                       ? json_schema_members()
                       : R"("response_format":{"type":"json_object"})";
    }
    Json body = {{"model", provider.model}};
    body[provider.max_tokens_field] = conversation.max_output_tokens;

    HttpRequest request;
    request.url = endpoint_url(provider);
    request.headers = {"Content-Type: application/json"};
    if (!provider.api_key.empty()) {
        request.headers.push_back("Authorization: Bearer " + provider.api_key);
    }
    request.body = dump_with_members(body, members);
    return request;
}

Result<ApiAnswer> parse_openai_answer(const Json& body) {
    const auto choices = body.find("choices");
    if (!body.is_object() || choices == body.end() || !choices->is_array() || choices->empty() ||
        !(*choices)[0].is_object()) {
        return fail("invalid_response", "the response has no choices");
    }
    const Json& choice = (*choices)[0];
    const auto message = choice.find("message");
    if (message == choice.end() || !message->is_object()) {
        return fail("invalid_response", "the first choice has no message");
    }

    ApiAnswer answer;
    if (const auto usage = body.find("usage"); usage != body.end() && usage->is_object()) {
        answer.usage = read_usage(*usage);
    }
    const auto content = message->find("content");
    if (content != message->end() && content->is_string()) {
        answer.text = content->get<std::string>();
    }
    const auto refusal = message->find("refusal");
    const std::string finish_reason = choice.value("finish_reason", "");
    if (refusal != message->end() && refusal->is_string() && !refusal->get<std::string>().empty()) {
        answer.stop = AnswerStop::refused;
        answer.detail = refusal->get<std::string>();
    } else if (finish_reason == "length") {
        answer.stop = AnswerStop::truncated;
    } else if (finish_reason == "content_filter") {
        answer.stop = AnswerStop::blocked;
        answer.detail = "finish_reason content_filter";
    } else if (content == message->end() || content->is_null()) {
        answer.stop = AnswerStop::refused;
        answer.detail = "the message content is null";
    }
    return answer;
}

} // namespace athena::providers
