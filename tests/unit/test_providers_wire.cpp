#include "providers/prompt.hpp"
#include "providers/wire.hpp"

#include <doctest/doctest.h>

#include <curl/curl.h>

#include <chrono>
#include <string>

using namespace athena;
using namespace athena::providers;
using Json = nlohmann::json;

namespace {

const std::string k_key = "sk-test-key-0123456789abcdef";

ProviderConfig config_for(ProviderApi api) {
    ProviderConfig config;
    config.name = std::string(to_string(api));
    config.api = api;
    config.base_url = api == ProviderApi::openai ? "http://127.0.0.1:9/v1" : "http://127.0.0.1:9";
    config.model = "test-model";
    config.api_key = k_key;
    return config;
}

Json verdict_json(std::string level = "suspicious", double confidence = 0.75) {
    return Json{{"threat_level", level},       {"confidence", confidence},
                {"malware_family", nullptr},   {"malware_type", nullptr},
                {"signatures", Json::array()}, {"behaviors", Json::array({"drops a file"})},
                {"iocs", Json::object()},      {"recommendations", Json::array()},
                {"summary", "looks odd"}};
}

HttpResponse ok_response(const std::string& body) {
    HttpResponse response;
    response.status = 200;
    response.body = body;
    return response;
}

HttpResponse status_response(long status, const std::string& body) {
    HttpResponse response;
    response.status = status;
    response.body = body;
    return response;
}

Json anthropic_text(const std::string& text, const std::string& stop = "end_turn") {
    return Json{{"type", "message"},
                {"content", Json::array({{{"type", "text"}, {"text", text}}})},
                {"stop_reason", stop},
                {"usage", {{"input_tokens", 100}, {"output_tokens", 20}}}};
}

Json openai_text(const Json& content, const std::string& finish = "stop",
                 const Json& refusal = nullptr) {
    return Json{
        {"choices",
         Json::array(
             {{{"index", 0},
               {"message", {{"role", "assistant"}, {"content", content}, {"refusal", refusal}}},
               {"finish_reason", finish}}})},
        {"usage", {{"prompt_tokens", 120}, {"completion_tokens", 30}}}};
}

Json gemini_text(const std::string& text, const std::string& finish = "STOP") {
    return Json{
        {"candidates",
         Json::array({{{"content", {{"role", "model"}, {"parts", Json::array({{{"text", text}}})}}},
                       {"finishReason", finish}}})},
        {"usageMetadata", {{"promptTokenCount", 200}, {"candidatesTokenCount", 40}}}};
}

AttemptResult interpret(ProviderApi api, const HttpResponse& response) {
    return interpret_response(config_for(api), response, std::chrono::system_clock::now());
}

} // namespace

TEST_CASE("Wire: requests carry schema, key header and path") {
    Conversation conversation;
    conversation.system = "system text";
    conversation.user = "user text";
    conversation.max_output_tokens = 321;

    SUBCASE("anthropic forces the verdict tool") {
        const HttpRequest request = build_request(config_for(ProviderApi::anthropic), conversation);
        const Json body = Json::parse(request.body);
        CHECK(request.url == "http://127.0.0.1:9/v1/messages");
        CHECK(body["max_tokens"] == 321);
        CHECK(body["system"] == "system text");
        CHECK(body["tool_choice"]["type"] == "tool");
        CHECK(body["tools"][0]["input_schema"] == verdict_schema());
        CHECK(std::ranges::count(request.headers, "x-api-key: " + k_key) == 1);
    }
    SUBCASE("openai asks for a json_schema response format") {
        ProviderConfig config = config_for(ProviderApi::openai);
        config.max_tokens_field = "max_completion_tokens";
        const HttpRequest request = build_request(config, conversation);
        const Json body = Json::parse(request.body);
        CHECK(request.url == "http://127.0.0.1:9/v1/chat/completions");
        CHECK(body["max_completion_tokens"] == 321);
        CHECK(body["response_format"]["type"] == "json_schema");
        CHECK(body["response_format"]["json_schema"]["strict"] == true);
        CHECK(body["messages"][0]["role"] == "system");
        CHECK(std::ranges::count(request.headers, "Authorization: Bearer " + k_key) == 1);
    }
    SUBCASE("json_object servers get the plain format") {
        ProviderConfig config = config_for(ProviderApi::openai);
        config.response_format = ResponseFormat::json_object;
        const Json body = Json::parse(build_request(config, conversation).body);
        CHECK(body["response_format"] == Json{{"type", "json_object"}});
        CHECK(body["max_tokens"] == 321);
    }
    SUBCASE("gemini sends a response schema without type arrays") {
        const HttpRequest request = build_request(config_for(ProviderApi::gemini), conversation);
        const Json body = Json::parse(request.body);
        CHECK(request.url == "http://127.0.0.1:9/v1beta/models/test-model:generateContent");
        CHECK(body["generationConfig"]["responseMimeType"] == "application/json");
        const Json& family =
            body["generationConfig"]["responseSchema"]["properties"]["malware_family"];
        CHECK(family["type"] == "string");
        CHECK(family["nullable"] == true);
        CHECK(body["systemInstruction"]["parts"][0]["text"] == "system text");
        CHECK(body["generationConfig"]["maxOutputTokens"] == 321);
        CHECK(std::ranges::count(request.headers, "x-goog-api-key: " + k_key) == 1);
    }
    SUBCASE("a repair shows the rejected answer and the reason") {
        conversation.rejected_answer = "{\"threat_level\": \"catastrophic\"}";
        conversation.repair = repair_message("unknown threat level");
        const Json body =
            Json::parse(build_request(config_for(ProviderApi::openai), conversation).body);
        REQUIRE(body["messages"].size() == 4);
        CHECK(body["messages"][2]["role"] == "assistant");
        CHECK(body["messages"][2]["content"] == conversation.rejected_answer);
        CHECK(body["messages"][3]["content"].get<std::string>().find("unknown threat level") !=
              std::string::npos);
    }
    SUBCASE("an anthropic repair answers in text, without the forced tool") {
        conversation.system = system_prompt();
        conversation.rejected_answer = "not json";
        conversation.repair = repair_message("the answer is not valid JSON");
        const Json body =
            Json::parse(build_request(config_for(ProviderApi::anthropic), conversation).body);
        CHECK(body["system"] == system_prompt());
        CHECK_FALSE(body.contains("tools"));
        CHECK(body["messages"].size() == 3);
    }
    SUBCASE("a keyless local server gets no auth header") {
        ProviderConfig config = config_for(ProviderApi::openai);
        config.api_key.clear();
        const HttpRequest request = build_request(config, conversation);
        CHECK(std::ranges::none_of(request.headers, [](const std::string& header) {
            return header.starts_with("Authorization");
        }));
    }
}

TEST_CASE("Wire: valid answers become verdicts with usage") {
    SUBCASE("anthropic tool input") {
        const Json body = {{"content", Json::array({{{"type", "tool_use"},
                                                     {"name", "record_verdict"},
                                                     {"input", verdict_json()}}})},
                           {"stop_reason", "tool_use"},
                           {"usage",
                            {{"input_tokens", 10},
                             {"cache_read_input_tokens", 5},
                             {"cache_creation_input_tokens", 7},
                             {"output_tokens", 3}}}};
        const AttemptResult result = interpret(ProviderApi::anthropic, ok_response(body.dump()));
        REQUIRE(result.verdict);
        CHECK(result.failure == FailureClass::none);
        CHECK(result.outcome == CallOutcome::success);
        CHECK(result.verdict->threat_level == ThreatLevel::suspicious);
        CHECK(result.usage.input == 10);
        CHECK(result.usage.cached_input == 5);
        CHECK(result.usage.cache_write == 7);
        CHECK(result.usage.output == 3);
    }
    SUBCASE("openai usage separates cached prompt tokens") {
        Json body = openai_text(verdict_json().dump());
        body["usage"]["prompt_tokens_details"] = {{"cached_tokens", 100}};
        const AttemptResult result = interpret(ProviderApi::openai, ok_response(body.dump()));
        REQUIRE(result.verdict);
        CHECK(result.usage.input == 20);
        CHECK(result.usage.cached_input == 100);
        CHECK(result.usage.output == 30);
    }
    SUBCASE("deepseek reports cache hits in its own field") {
        Json body = openai_text(verdict_json().dump());
        body["usage"]["prompt_cache_hit_tokens"] = 80;
        const AttemptResult result = interpret(ProviderApi::openai, ok_response(body.dump()));
        CHECK(result.usage.input == 40);
        CHECK(result.usage.cached_input == 80);
    }
    SUBCASE("gemini counts thinking tokens as output") {
        Json body = gemini_text(verdict_json().dump());
        body["usageMetadata"]["thoughtsTokenCount"] = 15;
        body["usageMetadata"]["cachedContentTokenCount"] = 50;
        const AttemptResult result = interpret(ProviderApi::gemini, ok_response(body.dump()));
        REQUIRE(result.verdict);
        CHECK(result.usage.input == 150);
        CHECK(result.usage.cached_input == 50);
        CHECK(result.usage.output == 55);
    }
    SUBCASE("a fenced answer is unwrapped") {
        const std::string fenced = "```json\n" + verdict_json("malicious").dump(2) + "\n```";
        const AttemptResult result =
            interpret(ProviderApi::anthropic, ok_response(anthropic_text(fenced).dump()));
        REQUIRE(result.verdict);
        CHECK(result.verdict->threat_level == ThreatLevel::malicious);
    }
    SUBCASE("gzip bodies arrive decoded, so a plain body is all the parser sees") {
        const AttemptResult result = interpret(
            ProviderApi::gemini, ok_response(gemini_text(verdict_json("benign").dump()).dump()));
        REQUIRE(result.verdict);
        CHECK(result.verdict->threat_level == ThreatLevel::benign);
    }
}

TEST_CASE("Wire: rejected answers are classified") {
    SUBCASE("truncated anthropic answer") {
        const std::string half = verdict_json().dump().substr(0, 40);
        const AttemptResult result = interpret(
            ProviderApi::anthropic, ok_response(anthropic_text(half, "max_tokens").dump()));
        CHECK(result.failure == FailureClass::rejected_answer);
        CHECK(result.error.kind == "invalid_answer");
        CHECK(result.outcome == CallOutcome::ignored);
        CHECK(result.usage.input == 100); // billed even though rejected
    }
    SUBCASE("truncated openai answer") {
        const AttemptResult result =
            interpret(ProviderApi::openai, ok_response(openai_text("{\"threat_", "length").dump()));
        CHECK(result.failure == FailureClass::rejected_answer);
    }
    SUBCASE("truncated gemini answer") {
        const AttemptResult result = interpret(
            ProviderApi::gemini, ok_response(gemini_text("{\"threat_", "MAX_TOKENS").dump()));
        CHECK(result.failure == FailureClass::rejected_answer);
    }
    SUBCASE("openai refusal with null content") {
        const AttemptResult result = interpret(
            ProviderApi::openai, ok_response(openai_text(nullptr, "stop", "I cannot").dump()));
        CHECK(result.failure == FailureClass::refused);
        CHECK(result.error.kind == "refused");
        CHECK(result.error.message.find("I cannot") != std::string::npos);
    }
    SUBCASE("null content without a refusal field") {
        const AttemptResult result =
            interpret(ProviderApi::openai, ok_response(openai_text(nullptr).dump()));
        CHECK(result.failure == FailureClass::refused);
    }
    SUBCASE("anthropic stop_reason refusal") {
        const AttemptResult result =
            interpret(ProviderApi::anthropic, ok_response(anthropic_text("No.", "refusal").dump()));
        CHECK(result.failure == FailureClass::refused);
    }
    SUBCASE("gemini SAFETY candidate without parts") {
        const Json body = {{"candidates", Json::array({{{"finishReason", "SAFETY"}}})}};
        const AttemptResult result = interpret(ProviderApi::gemini, ok_response(body.dump()));
        CHECK(result.failure == FailureClass::refused);
        CHECK(result.error.message.find("SAFETY") != std::string::npos);
    }
    SUBCASE("gemini promptFeedback blockReason") {
        const Json body = {{"promptFeedback", {{"blockReason", "SAFETY"}}}};
        const AttemptResult result = interpret(ProviderApi::gemini, ok_response(body.dump()));
        CHECK(result.failure == FailureClass::refused);
        CHECK(result.error.message.find("blockReason") != std::string::npos);
    }
    SUBCASE("unknown threat level") {
        const AttemptResult result =
            interpret(ProviderApi::openai,
                      ok_response(openai_text(verdict_json("catastrophic").dump()).dump()));
        CHECK(result.failure == FailureClass::rejected_answer);
        CHECK(result.error.kind == "invalid_answer");
        CHECK_FALSE(result.reason.empty());
        CHECK(result.answer_text.find("catastrophic") != std::string::npos);
    }
    SUBCASE("confidence out of range") {
        const AttemptResult result =
            interpret(ProviderApi::gemini,
                      ok_response(gemini_text(verdict_json("benign", 1.7).dump()).dump()));
        CHECK(result.failure == FailureClass::rejected_answer);
    }
    SUBCASE("invalid UTF-8 in the text") {
        std::string body = openai_text(verdict_json().dump()).dump();
        body.replace(body.find("looks odd"), 9, "looks \xff\xfe");
        const AttemptResult result = interpret(ProviderApi::openai, ok_response(body));
        CHECK(result.failure == FailureClass::rejected_answer);
        CHECK(result.error.message.find("UTF-8") != std::string::npos);
    }
    SUBCASE("prose around the object is tolerated") {
        const std::string text = "Here is my verdict: " + verdict_json().dump() + " Thanks.";
        const AttemptResult result =
            interpret(ProviderApi::openai, ok_response(openai_text(text).dump()));
        CHECK(result.verdict);
    }
}

TEST_CASE("Wire: broken responses and HTTP errors are classified") {
    SUBCASE("empty 200") {
        const AttemptResult result = interpret(ProviderApi::anthropic, ok_response(""));
        CHECK(result.failure == FailureClass::bad_response);
        CHECK(result.error.kind == "invalid_response");
        CHECK(result.outcome == CallOutcome::failure);
    }
    SUBCASE("200 that is not JSON") {
        const AttemptResult result =
            interpret(ProviderApi::openai, ok_response("upstream says hello {"));
        CHECK(result.failure == FailureClass::bad_response);
    }
    SUBCASE("200 JSON in another shape") {
        const AttemptResult result =
            interpret(ProviderApi::openai, ok_response(R"({"hello": "world"})"));
        CHECK(result.failure == FailureClass::bad_response);
    }
    SUBCASE("529 overloaded with anthropic's error body") {
        const AttemptResult result =
            interpret(ProviderApi::anthropic,
                      status_response(529, R"({"type":"error","error":{"type":"overloaded_error",)"
                                           R"("message":"Overloaded"}})"));
        CHECK(result.failure == FailureClass::transient);
        CHECK(result.error.kind == "http_status");
        CHECK(result.outcome == CallOutcome::failure);
        CHECK(result.error.message ==
              "anthropic: POST http://127.0.0.1:9/v1/messages: HTTP 529: Overloaded");
    }
    SUBCASE("HTML 502 from a proxy") {
        HttpResponse response = status_response(502, "<html><body>502 Bad Gateway</body></html>");
        response.headers["content-type"] = "text/html";
        const AttemptResult result = interpret(ProviderApi::openai, response);
        CHECK(result.failure == FailureClass::transient);
        CHECK(result.error.message.find("HTML") != std::string::npos);
    }
    SUBCASE("429 with retry-after") {
        HttpResponse response = status_response(429, R"({"error":{"message":"slow down"}})");
        response.headers["retry-after"] = "2";
        const AttemptResult result = interpret(ProviderApi::openai, response);
        CHECK(result.failure == FailureClass::transient);
        CHECK(result.error.kind == "rate_limited");
        REQUIRE(result.retry_after);
        CHECK(result.retry_after->count() == 2000);
    }
    SUBCASE("gemini 429 with RetryInfo") {
        const Json body = {
            {"error",
             {{"code", 429},
              {"status", "RESOURCE_EXHAUSTED"},
              {"message", "quota"},
              {"details", Json::array({{{"@type", "type.googleapis.com/google.rpc.RetryInfo"},
                                        {"retryDelay", "1.5s"}}})}}}};
        const AttemptResult result =
            interpret(ProviderApi::gemini, status_response(429, body.dump()));
        REQUIRE(result.retry_after);
        CHECK(result.retry_after->count() == 1500);
    }
    SUBCASE("per-day quota stops the provider") {
        const Json body = {{"error", {{"message", "quota"}, {"type", "insufficient_quota"}}}};
        const AttemptResult result =
            interpret(ProviderApi::openai, status_response(429, body.dump()));
        CHECK(result.failure == FailureClass::quota);
        CHECK(result.error.kind == "quota");
    }
    SUBCASE("401 disables with a hint at the variable") {
        ProviderConfig config = config_for(ProviderApi::anthropic);
        const AttemptResult result = interpret_response(
            config, status_response(401, R"({"error":{"message":"invalid x-api-key"}})"),
            std::chrono::system_clock::now());
        CHECK(result.failure == FailureClass::auth);
        CHECK(result.outcome == CallOutcome::ignored);
        CHECK(result.error.message.find("ANTHROPIC_API_KEY") != std::string::npos);
    }
    SUBCASE("403 disables too") {
        const AttemptResult result =
            interpret(ProviderApi::gemini, status_response(403, R"({"error":{"message":"no"}})"));
        CHECK(result.failure == FailureClass::auth);
    }
    SUBCASE("400 and 404 go to the next provider without retry") {
        for (long status : {400L, 404L}) {
            const AttemptResult result =
                interpret(ProviderApi::openai, status_response(status, R"({"error":{}})"));
            CHECK(result.failure == FailureClass::request);
            CHECK(result.outcome == CallOutcome::ignored);
        }
    }
    SUBCASE("timeouts and resets are transient") {
        HttpResponse timeout;
        timeout.transport_code = CURLE_OPERATION_TIMEDOUT;
        timeout.is_timeout = true;
        timeout.transport_message = "Operation timed out";
        CHECK(interpret(ProviderApi::openai, timeout).error.kind == "timeout");
        HttpResponse reset;
        reset.transport_code = CURLE_RECV_ERROR;
        reset.transport_message = "Connection reset by peer";
        const AttemptResult result = interpret(ProviderApi::openai, reset);
        CHECK(result.failure == FailureClass::transient);
        CHECK(result.error.kind == "connection");
    }
    SUBCASE("an echoed key is scrubbed from the message") {
        const Json body = {{"error", {{"message", "key " + k_key + " is invalid"}}}};
        const AttemptResult result =
            interpret(ProviderApi::openai, status_response(400, body.dump()));
        CHECK(result.error.message.find(k_key) == std::string::npos);
        CHECK(result.error.message.find("[key]") != std::string::npos);
    }
}

TEST_CASE("Wire: json fences are stripped") {
    CHECK(strip_json_fence("```json\n{\"a\":1}\n```") == "{\"a\":1}");
    CHECK(strip_json_fence("  ```\n{}\n```  ") == "{}");
    CHECK(strip_json_fence("{\"a\":1}") == "{\"a\":1}");
    CHECK(strip_json_fence("```json\n{\"a\":") == "{\"a\":");
    CHECK_FALSE(parse_verdict_text("```json\n{\"threat_level\":").has_value());
}
