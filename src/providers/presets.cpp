// Provider presets, prices and the small helpers that describe a provider to people: masked
// keys, URLs without credentials, the analysis profile.
#include <athena/providers.hpp>

#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>

namespace athena {
namespace {

ProviderPreset preset(std::string name, ProviderApi api, std::string base_url, std::string model,
                      std::vector<std::string> key_env, std::vector<std::string> base_url_env,
                      TokenPrices prices) {
    ProviderPreset result;
    result.name = std::move(name);
    result.api = api;
    result.base_url = std::move(base_url);
    result.model = std::move(model);
    result.key_env = std::move(key_env);
    result.base_url_env = std::move(base_url_env);
    result.prices = prices;
    return result;
}

// List prices in USD per million tokens (input, cached input read, cache write, output) as
// the vendors published them in 2025. They are estimates for --max-cost and the report;
// set the price settings when your contract differs.
std::vector<ProviderPreset> make_presets() {
    std::vector<ProviderPreset> presets;
    presets.push_back(preset("anthropic", ProviderApi::anthropic, "https://api.anthropic.com",
                             "claude-sonnet-4-5", {"ANTHROPIC_API_KEY"}, {"ANTHROPIC_BASE_URL"},
                             {3.00, 0.30, 3.75, 15.00}));
    presets.push_back(preset("openai", ProviderApi::openai, "https://api.openai.com/v1",
                             "gpt-4.1-mini", {"OPENAI_API_KEY"}, {"OPENAI_BASE_URL"},
                             {0.40, 0.10, 0.0, 1.60}));
    presets.back().max_tokens_field = "max_completion_tokens";
    presets.push_back(
        preset("gemini", ProviderApi::gemini, "https://generativelanguage.googleapis.com",
               "gemini-2.5-flash", {"GEMINI_API_KEY", "GOOGLE_API_KEY"},
               {"GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL"}, {0.30, 0.075, 0.0, 2.50}));
    presets.push_back(preset("deepseek", ProviderApi::openai, "https://api.deepseek.com/v1",
                             "deepseek-chat", {"DEEPSEEK_API_KEY"}, {"DEEPSEEK_BASE_URL"},
                             {0.28, 0.028, 0.0, 0.42}));
    presets.back().response_format = ResponseFormat::json_object;
    presets.push_back(preset("groq", ProviderApi::openai, "https://api.groq.com/openai/v1",
                             "llama-3.3-70b-versatile", {"GROQ_API_KEY"}, {"GROQ_BASE_URL"},
                             {0.59, 0.0, 0.0, 0.79}));
    presets.back().response_format = ResponseFormat::json_object;
    presets.push_back(preset("mistral", ProviderApi::openai, "https://api.mistral.ai/v1",
                             "mistral-small-latest", {"MISTRAL_API_KEY"}, {"MISTRAL_BASE_URL"},
                             {0.10, 0.0, 0.0, 0.30}));

    // Local servers: no key, no price, and a base URL on this machine.
    presets.push_back(preset("ollama", ProviderApi::openai, "http://127.0.0.1:11434/v1", "llama3.1",
                             {}, {"OLLAMA_BASE_URL"}, {}));
    presets.push_back(preset("vllm", ProviderApi::openai, "http://127.0.0.1:8000/v1", "", {},
                             {"VLLM_BASE_URL"}, {}));
    presets.push_back(preset("llamacpp", ProviderApi::openai, "http://127.0.0.1:8080/v1", "default",
                             {}, {"LLAMACPP_BASE_URL"}, {}));
    for (std::size_t i = presets.size() - 3; i < presets.size(); ++i) {
        presets[i].is_local = true;
    }
    return presets;
}

std::string without_trailing_slashes(std::string_view url) {
    while (!url.empty() && url.back() == '/') {
        url.remove_suffix(1);
    }
    return std::string(url);
}

} // namespace

std::string_view to_string(ProviderApi api) {
    switch (api) {
    case ProviderApi::anthropic:
        return "anthropic";
    case ProviderApi::openai:
        return "openai";
    case ProviderApi::gemini:
        return "gemini";
    }
    return "openai";
}

double cost_usd(const TokenUsage& usage, const TokenPrices& prices) {
    const double per_token = 1e-6;
    return (static_cast<double>(usage.input) * prices.input +
            static_cast<double>(usage.cached_input) * prices.cached_input +
            static_cast<double>(usage.cache_write) * prices.cache_write +
            static_cast<double>(usage.output) * prices.output) *
           per_token;
}

const std::vector<ProviderPreset>& provider_presets() {
    static const std::vector<ProviderPreset> presets = make_presets();
    return presets;
}

const ProviderPreset* find_provider_preset(std::string_view name) {
    if (name == "claude") {
        name = "anthropic";
    } else if (name == "google") {
        name = "gemini";
    }
    const auto& presets = provider_presets();
    const auto it = std::ranges::find(presets, name, &ProviderPreset::name);
    return it == presets.end() ? nullptr : &*it;
}

std::string endpoint_url(const ProviderConfig& config) {
    const std::string base = without_trailing_slashes(config.base_url);
    switch (config.api) {
    case ProviderApi::anthropic:
        return base + "/v1/messages";
    case ProviderApi::openai:
        return base + "/chat/completions";
    case ProviderApi::gemini:
        return fmt::format("{}/v1beta/models/{}:generateContent", base, config.model);
    }
    return base;
}

std::string redact_url(std::string_view url) {
    CURLU* handle = curl_url();
    std::string text(url);
    if (handle == nullptr || curl_url_set(handle, CURLUPART_URL, text.c_str(), 0) != CURLUE_OK) {
        if (handle != nullptr) {
            curl_url_cleanup(handle);
        }
        // Not a URL curl can parse: keep only what precedes a possible "user:pass@".
        const auto at = text.find('@');
        return at == std::string::npos ? text.substr(0, text.find('?')) : "(invalid URL)";
    }
    curl_url_set(handle, CURLUPART_USER, nullptr, 0);
    curl_url_set(handle, CURLUPART_PASSWORD, nullptr, 0);
    curl_url_set(handle, CURLUPART_QUERY, nullptr, 0);
    curl_url_set(handle, CURLUPART_FRAGMENT, nullptr, 0);
    char* cleaned = nullptr;
    std::string result = "(invalid URL)";
    if (curl_url_get(handle, CURLUPART_URL, &cleaned, 0) == CURLUE_OK) {
        result = cleaned;
        curl_free(cleaned);
        // curl adds "/" to a URL without a path; keep the user's spelling.
        if (!text.ends_with('/') && result.ends_with('/')) {
            result.pop_back();
        }
    }
    curl_url_cleanup(handle);
    return result;
}

std::string mask_key(std::string_view key) {
    if (key.empty()) {
        return "(none)";
    }
    // Short keys show less, so that the visible part never gives away much of the key.
    const std::size_t visible = key.size() >= 16 ? 4 : key.size() >= 8 ? 2 : 0;
    return "…" + std::string(key.substr(key.size() - visible));
}

std::string provider_profile(const std::vector<ProviderConfig>& providers,
                             std::string_view builtin_profile) {
    std::string names;
    for (const ProviderConfig& provider : providers) {
        names += fmt::format("{}{}/{}", names.empty() ? "" : ",", provider.name, provider.model);
    }
    return fmt::format("ai;providers={};prompt={};{}", names, k_prompt_version, builtin_profile);
}

} // namespace athena
