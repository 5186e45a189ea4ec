// Anthropic Messages API: the verdict is asked for as the input of a forced tool call, so
// the answer arrives as a JSON object that matches the schema.
#include "providers/prompt.hpp"
#include "providers/wire.hpp"

#include <fmt/format.h>

namespace athena::providers {
namespace {

using Json = nlohmann::json;

constexpr const char* k_tool_name = "record_verdict";
constexpr const char* k_api_version = "2023-06-01";

std::uint64_t count_field(const Json& object, const char* key) {
    const auto it = object.find(key);
    return it != object.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

// The forced tool call, serialised once.
const std::string& tool_members() {
    static const std::string text = fmt::format(
        R"("tool_choice":{{"name":"{}","type":"tool"}},"tools":[{{"description":"Record the )"
        R"(triage verdict for the file.","input_schema":{},"name":"{}"}}])",
        k_tool_name, verdict_schema_json(), k_tool_name);
    return text;
}

} // namespace

HttpRequest build_anthropic_request(const ProviderConfig& provider,
                                    const Conversation& conversation) {
    Json messages = Json::array({{{"role", "user"}, {"content", conversation.user}}});
    if (!conversation.repair.empty()) {
        messages.push_back({{"role", "assistant"}, {"content", conversation.rejected_answer}});
        messages.push_back({{"role", "user"}, {"content", conversation.repair}});
    }
    const Json body = {{"model", provider.model},
                       {"max_tokens", conversation.max_output_tokens},
                       {"messages", messages}};
    std::string members = "\"system\":" + json_string(conversation.system);
    // A repair turn shows the rejected answer as text, so the tool is not forced there: the
    // model answers in text, which the fence and JSON path reads.
    if (conversation.wants_verdict_schema && conversation.repair.empty()) {
        members += "," + tool_members();
    }

    HttpRequest request;
    request.url = endpoint_url(provider);
    request.headers = {"Content-Type: application/json",
                       std::string("anthropic-version: ") + k_api_version};
    if (!provider.api_key.empty()) {
        request.headers.push_back("x-api-key: " + provider.api_key);
    }
    request.body = dump_with_members(body, members);
    return request;
}

Result<ApiAnswer> parse_anthropic_answer(const Json& body) {
    const auto content = body.find("content");
    if (!body.is_object() || content == body.end() || !content->is_array()) {
        return fail("invalid_response", "the response has no content array");
    }

    ApiAnswer answer;
    if (const auto usage = body.find("usage"); usage != body.end() && usage->is_object()) {
        answer.usage.input = count_field(*usage, "input_tokens");
        answer.usage.cached_input = count_field(*usage, "cache_read_input_tokens");
        answer.usage.cache_write = count_field(*usage, "cache_creation_input_tokens");
        answer.usage.output = count_field(*usage, "output_tokens");
    }
    for (const Json& block : *content) {
        if (!block.is_object()) {
            continue;
        }
        const std::string type = block.value("type", "");
        if (type == "text" && block.contains("text") && block["text"].is_string()) {
            answer.text += block["text"].get<std::string>();
        } else if (type == "tool_use" && block.contains("input") && !answer.structured) {
            answer.structured = block["input"];
        }
    }

    const std::string stop_reason = body.value("stop_reason", "");
    if (stop_reason == "max_tokens") {
        answer.stop = AnswerStop::truncated;
    } else if (stop_reason == "refusal") {
        answer.stop = AnswerStop::refused;
        answer.detail = answer.text;
    } else if (answer.text.empty() && !answer.structured) {
        answer.stop = AnswerStop::refused;
        answer.detail = "the response has neither text nor a tool call";
    }
    return answer;
}

} // namespace athena::providers
