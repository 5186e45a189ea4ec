#include <athena/providers.hpp>

#include <doctest/doctest.h>

#include <string>

using namespace athena;

TEST_CASE("Presets: names, aliases and defaults") {
    SUBCASE("every issue-named provider exists") {
        for (const char* name : {"anthropic", "openai", "gemini", "deepseek", "groq", "mistral",
                                 "ollama", "vllm", "llamacpp"}) {
            CHECK_MESSAGE(find_provider_preset(name) != nullptr, name);
        }
    }
    SUBCASE("platform aliases") {
        CHECK(find_provider_preset("claude")->name == "anthropic");
        CHECK(find_provider_preset("google")->name == "gemini");
        CHECK(find_provider_preset("nonesuch") == nullptr);
    }
    SUBCASE("local presets need no key and stay on loopback") {
        for (const ProviderPreset& preset : provider_presets()) {
            if (preset.is_local) {
                CHECK(preset.key_env.empty());
                CHECK(preset.base_url.starts_with("http://127.0.0.1:"));
            } else {
                CHECK_FALSE(preset.key_env.empty());
            }
        }
    }
    SUBCASE("gemini reads both key variables") {
        const ProviderPreset* gemini = find_provider_preset("gemini");
        CHECK(gemini->key_env == std::vector<std::string>{"GEMINI_API_KEY", "GOOGLE_API_KEY"});
    }
}

TEST_CASE("Presets: endpoint URLs follow the SDK base URL meaning") {
    ProviderConfig config;
    config.model = "m1";
    SUBCASE("anthropic adds /v1/messages to the server root") {
        config.api = ProviderApi::anthropic;
        config.base_url = "http://127.0.0.1:8/proxy/";
        CHECK(endpoint_url(config) == "http://127.0.0.1:8/proxy/v1/messages");
    }
    SUBCASE("openai adds /chat/completions to a base ending in /v1") {
        config.api = ProviderApi::openai;
        config.base_url = "http://127.0.0.1:8/v1";
        CHECK(endpoint_url(config) == "http://127.0.0.1:8/v1/chat/completions");
    }
    SUBCASE("gemini adds the model path") {
        config.api = ProviderApi::gemini;
        config.base_url = "http://127.0.0.1:8";
        CHECK(endpoint_url(config) == "http://127.0.0.1:8/v1beta/models/m1:generateContent");
    }
}

TEST_CASE("Presets: secrets stay out of displayed text") {
    SUBCASE("mask shows at most the last 4 characters") {
        CHECK(mask_key("sk-ant-0123456789abcdefWXYZ") == "…WXYZ");
        CHECK(mask_key("short123") == "…23");
        CHECK(mask_key("tiny") == "…");
        CHECK(mask_key("") == "(none)");
    }
    SUBCASE("URLs lose user, password and query") {
        CHECK(redact_url("https://user:pa55@proxy.example:8443/v1?key=abc") ==
              "https://proxy.example:8443/v1");
        CHECK(redact_url("http://127.0.0.1:9") == "http://127.0.0.1:9");
        CHECK(redact_url("http://127.0.0.1:9/v1/") == "http://127.0.0.1:9/v1/");
    }
}

TEST_CASE("Presets: cost per token category") {
    const TokenPrices prices{3.0, 0.30, 3.75, 15.0};
    SUBCASE("each category at its own price") {
        TokenUsage usage;
        usage.input = 1'000'000;
        CHECK(cost_usd(usage, prices) == doctest::Approx(3.0));
        usage = {};
        usage.cached_input = 1'000'000;
        CHECK(cost_usd(usage, prices) == doctest::Approx(0.30));
        usage = {};
        usage.cache_write = 1'000'000;
        CHECK(cost_usd(usage, prices) == doctest::Approx(3.75));
        usage = {};
        usage.output = 1'000'000;
        CHECK(cost_usd(usage, prices) == doctest::Approx(15.0));
    }
    SUBCASE("a mixed request") {
        TokenUsage usage;
        usage.input = 1200;
        usage.cached_input = 800;
        usage.output = 150;
        // 1200 × 3 + 800 × 0.3 + 150 × 15 = 3600 + 240 + 2250 = 6090 micro-dollars.
        CHECK(cost_usd(usage, prices) == doctest::Approx(0.00609));
    }
    SUBCASE("local models are free") {
        TokenUsage usage;
        usage.input = 5000;
        usage.output = 5000;
        CHECK(cost_usd(usage, find_provider_preset("ollama")->prices) == 0.0);
    }
}

TEST_CASE("Presets: profile names providers, models and prompt version") {
    ProviderConfig first;
    first.name = "anthropic";
    first.model = "claude-x";
    ProviderConfig second;
    second.name = "openai";
    second.model = "gpt-y";
    const std::string profile = provider_profile({first, second}, "builtin/1;evidence/1;rules/ab");
    CHECK(profile == "ai;providers=anthropic/claude-x,openai/gpt-y;prompt=" +
                         std::to_string(k_prompt_version) + ";builtin/1;evidence/1;rules/ab");

    second.model = "gpt-z";
    CHECK(provider_profile({first, second}, "builtin/1;evidence/1;rules/ab") != profile);
}
