// Command-line and settings hooks of the AI providers: the settings of every preset, the
// scan options, `athena providers`, and the choice between the builtin analyser and the
// provider router.
#include "cli/extensions.hpp"
#include "cli/registry.hpp"

#include <athena/analyser.hpp>
#include <athena/providers.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace athena::cli {
namespace {

std::string upper_copy(std::string_view text) {
    std::string result(text);
    std::ranges::transform(result, result.begin(),
                           [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return result;
}

std::string lower_copy(std::string_view text) {
    std::string result(text);
    std::ranges::transform(result, result.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return result;
}

std::string price_text(double usd) {
    return fmt::format("{}", usd);
}

// The four price settings of a provider, by TokenUsage category.
struct PriceSetting {
    const char* suffix;   // setting name suffix and env suffix
    const char* category; // for the description
    double TokenPrices::*field;
};
constexpr PriceSetting k_price_settings[] = {
    {"input-price", "plain input", &TokenPrices::input},
    {"cached-input-price", "cached input read", &TokenPrices::cached_input},
    {"cache-write-price", "cache write", &TokenPrices::cache_write},
    {"output-price", "output", &TokenPrices::output},
};

std::string env_suffix(std::string_view setting_suffix) {
    std::string result = upper_copy(setting_suffix);
    std::ranges::replace(result, '-', '_');
    return result;
}

std::string key_suffix(std::string_view setting_suffix) {
    std::string result(setting_suffix);
    std::ranges::replace(result, '-', '_');
    return result;
}

void define_preset_settings(Settings& settings, const ProviderPreset& preset) {
    const std::string& name = preset.name;
    const std::string upper = upper_copy(name);
    const std::string table = "providers." + name + ".";

    settings.define(setting_spec(name + "-base-url", SettingKind::string, table + "base_url",
                         preset.base_url_env, preset.base_url,
                         fmt::format("{} API base URL ({})", name,
                                     preset.api == ProviderApi::openai
                                         ? "ends in /v1; athena adds /chat/completions"
                                         : "server root; athena adds the API path")));
    std::vector<std::string> key_env = preset.key_env;
    if (key_env.empty()) {
        key_env.push_back(upper + "_API_KEY");
    }
    SettingSpec key =
        setting_spec(name + "-api-key", SettingKind::string, table + "api_key", key_env, "",
             preset.is_local ? fmt::format("{} API key, if the server wants one", name)
                             : fmt::format("{} API key; without one {} is "
                                           "skipped",
                                           name, name));
    key.is_secret = true;
    settings.define(std::move(key));
    settings.define(setting_spec(name + "-model", SettingKind::string, table + "model",
                         {"ATHENA_" + upper + "_MODEL"}, preset.model,
                         fmt::format("{} model", name)));
    settings.define(setting_spec(name + "-timeout", SettingKind::duration, table + "timeout",
                         {"ATHENA_" + upper + "_TIMEOUT"}, preset.is_local ? "120s" : "60s",
                         fmt::format("limit on one {} request, connect included", name)));
    settings.define(setting_spec(name + "-max-output-tokens", SettingKind::integer,
                         table + "max_output_tokens", {"ATHENA_" + upper + "_MAX_OUTPUT_TOKENS"},
                         "1024", fmt::format("output token limit of one {} answer", name)));
    for (const PriceSetting& price : k_price_settings) {
        settings.define(
            setting_spec(name + "-" + price.suffix, SettingKind::string, table + key_suffix(price.suffix),
                 {"ATHENA_" + upper + "_" + env_suffix(price.suffix)},
                 price_text(preset.prices.*price.field),
                 fmt::format("{} price of {} tokens, USD per million", name, price.category)));
    }
}

// Parses a non-negative decimal such as "3", "0.25" or "1e-3".
Result<double> parse_decimal(const std::string& text, const std::string& setting) {
    double value = 0.0;
    const char* end = text.data() + text.size();
    const auto [stop, status] = std::from_chars(text.data(), end, value);
    if (text.empty() || status != std::errc() || stop != end || !std::isfinite(value) ||
        value < 0) {
        return fail("usage", fmt::format("invalid {} '{}': expected a number of at least 0, "
                                         "e.g. 0.50",
                                         setting, text));
    }
    return value;
}

Result<std::int64_t> positive_integer(const Settings& settings, const std::string& name) {
    const auto value = settings.integer(name);
    if (!value || *value < 0) {
        return fail("usage",
                    fmt::format("invalid {}: expected a whole number of at least 0", name));
    }
    return *value;
}

Result<ProviderConfig> provider_config(const Settings& settings, const ProviderPreset& preset) {
    const std::string& name = preset.name;
    ProviderConfig config;
    config.name = name;
    config.api = preset.api;
    config.base_url = settings.text(name + "-base-url");
    config.model = settings.text(name + "-model");
    config.api_key = settings.text(name + "-api-key");
    config.needs_key = !preset.is_local;
    config.response_format = preset.response_format;
    config.max_tokens_field = preset.max_tokens_field;
    config.timeout =
        std::chrono::milliseconds(settings.duration_ms(name + "-timeout").value_or(60000));
    config.connect_timeout = std::chrono::milliseconds(std::min<std::int64_t>(
        settings.duration_ms("connect-timeout").value_or(10000), config.timeout.count()));
    config.stall_timeout =
        std::chrono::milliseconds(settings.duration_ms("stall-timeout").value_or(30000));
    auto max_output = positive_integer(settings, name + "-max-output-tokens");
    if (!max_output || *max_output == 0) {
        return fail("usage", fmt::format("invalid {}-max-output-tokens: expected a whole "
                                         "number of at least 1",
                                         name));
    }
    config.max_output_tokens =
        static_cast<std::uint32_t>(std::min<std::int64_t>(*max_output, 1 << 20));
    for (const PriceSetting& price : k_price_settings) {
        const std::string setting = name + "-" + price.suffix;
        auto value = parse_decimal(settings.text(setting), setting);
        if (!value) {
            return std::unexpected(value.error());
        }
        config.prices.*price.field = *value;
    }
    return config;
}

// The providers named by the priority setting, in order, without duplicates. "builtin" is
// accepted and ignores the rest: it is always the last resort.
Result<std::vector<const ProviderPreset*>> priority_presets(const Settings& settings) {
    std::vector<const ProviderPreset*> presets;
    for (const std::string& item : settings.list("providers")) {
        const std::string name = lower_copy(item);
        if (name == "builtin") {
            break;
        }
        const ProviderPreset* preset = find_provider_preset(name);
        if (preset == nullptr) {
            std::vector<std::string> names;
            for (const ProviderPreset& known : provider_presets()) {
                names.push_back(known.name);
            }
            return fail("usage", fmt::format("unknown provider '{}' in --providers (or "
                                             "FEATURE_AIPROVIDERPRIORITY); valid names: {}, "
                                             "builtin",
                                             item, fmt::join(names, ", ")));
        }
        if (std::ranges::find(presets, preset) == presets.end()) {
            presets.push_back(preset);
        }
    }
    return presets;
}

Result<std::vector<ProviderConfig>> priority_configs(const Settings& settings) {
    auto presets = priority_presets(settings);
    if (!presets) {
        return std::unexpected(presets.error());
    }
    std::vector<ProviderConfig> configs;
    for (const ProviderPreset* preset : *presets) {
        auto config = provider_config(settings, *preset);
        if (!config) {
            return std::unexpected(config.error());
        }
        configs.push_back(std::move(*config));
    }
    return configs;
}

std::string key_variable(const ProviderPreset& preset) {
    return preset.key_env.empty() ? preset.name + "-api-key" : preset.key_env.front();
}

Result<RouterOptions> router_options(const Settings& settings, std::vector<ProviderConfig> configs,
                                     const Warn& warn) {
    RouterOptions options;
    options.providers = std::move(configs);
    options.failover = settings.flag("ai-failover");
    options.builtin_fallback = settings.flag("builtin-fallback");
    options.offline = settings.flag("offline");
    options.warn = warn;

    auto concurrency = positive_integer(settings, "max-concurrency");
    auto input_tokens = positive_integer(settings, "max-input-tokens");
    auto retries = positive_integer(settings, "max-retries");
    for (const auto* value : {&concurrency, &input_tokens, &retries}) {
        if (!*value) {
            return std::unexpected(value->error());
        }
    }
    options.max_concurrency = static_cast<std::size_t>(std::min<std::int64_t>(*concurrency, 10000));
    options.max_input_tokens = static_cast<std::size_t>(*input_tokens);
    options.retry.max_retries = static_cast<std::uint32_t>(std::min<std::int64_t>(*retries, 100));
    options.retry.max_total_wait =
        std::chrono::milliseconds(settings.duration_ms("max-retry-wait").value_or(60000));
    options.retry.backoff.base =
        std::chrono::milliseconds(settings.duration_ms("retry-base-delay").value_or(500));
    options.retry.backoff.cap = std::max(options.retry.backoff.cap, options.retry.backoff.base);
    if (const std::string cost = settings.text("max-cost"); !cost.empty()) {
        auto limit = parse_decimal(cost, "--max-cost");
        if (!limit) {
            return std::unexpected(limit.error());
        }
        options.max_cost_usd = *limit;
    }
    return options;
}

// `athena providers`: every preset, marking the ones in the priority list.
int run_providers_command(const Settings& settings, bool check, bool json) {
    auto presets = priority_presets(settings);
    if (!presets) {
        std::fprintf(stderr, "athena: error: %s\n", presets.error().message.c_str());
        return 2;
    }
    std::vector<ProviderConfig> configs;
    std::vector<int> priorities;
    for (const ProviderPreset& preset : provider_presets()) {
        auto config = provider_config(settings, preset);
        if (!config) {
            std::fprintf(stderr, "athena: error: %s\n", config.error().message.c_str());
            return 2;
        }
        const auto position = std::ranges::find(*presets, &preset);
        priorities.push_back(
            position == presets->end() ? 0 : static_cast<int>(position - presets->begin()) + 1);
        configs.push_back(std::move(*config));
    }

    // --check contacts the providers of the priority list, or, without one, every cloud
    // provider that has a key.
    std::vector<ProviderConfig> checked;
    std::vector<std::size_t> checked_index;
    if (check) {
        for (std::size_t i = 0; i < configs.size(); ++i) {
            const bool is_listed = priorities[i] > 0;
            const bool is_candidate =
                presets->empty() && !provider_presets()[i].is_local && configs[i].has_credentials();
            if (is_listed || is_candidate) {
                checked.push_back(configs[i]);
                checked_index.push_back(i);
            }
        }
    }
    const std::vector<ProviderCheck> results = check_providers(checked);
    std::vector<const ProviderCheck*> result_of(configs.size(), nullptr);
    for (std::size_t i = 0; i < results.size(); ++i) {
        result_of[checked_index[i]] = &results[i];
    }

    bool all_ok = true;
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    std::string text = fmt::format("{:<10} {:<26} {:<8} {:<8} {}\n", "provider", "model",
                                   "priority", "key", "base URL");
    for (std::size_t i = 0; i < configs.size(); ++i) {
        const ProviderConfig& config = configs[i];
        const ProviderPreset& preset = provider_presets()[i];
        const std::string key =
            config.needs_key || !config.api_key.empty() ? mask_key(config.api_key) : "(local)";
        const std::string priority = priorities[i] > 0 ? std::to_string(priorities[i]) : "-";
        text += fmt::format("{:<10} {:<26} {:<8} {:<8} {}", config.name,
                            config.model.empty() ? "(unset)" : config.model, priority, key,
                            redact_url(config.base_url));
        if (!config.has_credentials()) {
            text += fmt::format("  (no key: set {})", key_variable(preset));
        }
        nlohmann::ordered_json entry = {{"name", config.name},
                                        {"api", std::string(to_string(config.api))},
                                        {"model", config.model},
                                        {"base_url", redact_url(config.base_url)},
                                        {"key", key},
                                        {"configured", config.has_credentials()},
                                        {"priority", priorities[i] > 0
                                                         ? nlohmann::ordered_json(priorities[i])
                                                         : nlohmann::ordered_json(nullptr)}};
        if (const ProviderCheck* result = result_of[i]) {
            all_ok = all_ok && result->is_ok;
            text += result->is_ok
                        ? fmt::format("\n           check: ok in {} ms", result->latency.count())
                        : fmt::format("\n           check failed: {}", result->message);
            entry["check"] = {{"ok", result->is_ok},
                              {"latency_ms", result->latency.count()},
                              {"http_status", result->http_status},
                              {"message", result->message}};
        }
        text += '\n';
        list.push_back(std::move(entry));
    }
    if (json) {
        std::puts(list.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
        std::fputs(text.c_str(), stdout);
        if (presets->empty()) {
            std::fputs("no priority list is set: scans use the builtin analyser; set "
                       "--providers or FEATURE_AIPROVIDERPRIORITY\n",
                       stdout);
        }
    }
    return all_ok ? 0 : 1;
}

} // namespace

void define_provider_settings(Settings& settings) {
    settings.define(setting_spec("providers", SettingKind::list, "providers.priority",
                         {"FEATURE_AIPROVIDERPRIORITY"}, "",
                         "AI providers to ask, in priority order (e.g. anthropic,openai); "
                         "empty: the builtin analyser only"));
    SettingSpec failover =
        setting_spec("ai-failover", SettingKind::flag, "features.ai_failover", {"FEATURE_ENABLEAIFAILOVER"},
             "true", "on a provider's failure, ask the next provider in the list");
    settings.define(std::move(failover));
    settings.define(setting_spec("offline", SettingKind::boolean, "providers.offline", {"ATHENA_OFFLINE"},
                         "false", "answer from the cache only and send nothing"));
    settings.define(setting_spec("max-concurrency", SettingKind::integer, "providers.max_concurrency",
                         {"ATHENA_MAX_CONCURRENCY"}, "30",
                         "provider requests in flight at once, across providers"));
    settings.define(setting_spec("max-input-tokens", SettingKind::integer, "providers.max_input_tokens",
                         {"ATHENA_MAX_INPUT_TOKENS"}, "4000",
                         "estimated prompt tokens per request; the evidence is cut to fit"));
    settings.define(setting_spec("max-cost", SettingKind::string, "providers.max_cost", {"ATHENA_MAX_COST"},
                         "", "USD; no new provider request once the run's spend would pass it"));
    settings.define(setting_spec("max-retries", SettingKind::integer, "providers.max_retries",
                         {"ATHENA_MAX_RETRIES"}, "3",
                         "retries of a transient failure, per file and provider"));
    settings.define(setting_spec("retry-base-delay", SettingKind::duration, "providers.retry_base_delay",
                         {"ATHENA_RETRY_BASE_DELAY"}, "500ms",
                         "first retry delay; doubles per retry, with 20 % jitter"));
    settings.define(setting_spec("max-retry-wait", SettingKind::duration, "providers.max_retry_wait",
                         {"ATHENA_MAX_RETRY_WAIT"}, "60s",
                         "total retry wait per file and provider, retry-after included"));
    settings.define(setting_spec("connect-timeout", SettingKind::duration, "providers.connect_timeout",
                         {"ATHENA_CONNECT_TIMEOUT"}, "10s", "limit on connecting to a provider"));
    settings.define(setting_spec("stall-timeout", SettingKind::duration, "providers.stall_timeout",
                         {"ATHENA_STALL_TIMEOUT"}, "30s",
                         "a response that sends no byte this long after its headers is "
                         "abandoned"));
    for (const ProviderPreset& preset : provider_presets()) {
        define_preset_settings(settings, preset);
    }
}

void add_provider_options(CLI::App& scan, CommandLine& line) {
    CLI::Option_group* group = scan.add_option_group("AI providers");
    line.add_setting_list_option(*group, "--providers", "providers",
                                 "ask these AI providers in order, e.g. anthropic,openai "
                                 "(default: none, the builtin analyser)")
        ->delimiter(',')
        ->allow_extra_args(false)
        ->type_name("LIST");
    line.add_setting_flag(*group, "--no-failover", "ai-failover", "false",
                          "do not pass a file to the next provider when one fails");
    line.add_setting_flag(*group, "--offline", "offline", "true",
                          "answer from the cache only and send nothing; uncached files get "
                          "the builtin verdict");
    line.add_setting_flag(*group, "--no-builtin", "builtin-fallback", "false",
                          "no builtin verdict when the providers fail: an error instead");
    line.add_setting_option(*group, "--max-cost", "max-cost",
                            "stop sending requests once the run's spend would pass USD "
                            "(default: no limit)")
        ->type_name("USD");
    line.add_setting_option(*group, "--max-input-tokens", "max-input-tokens",
                            "cut each request's evidence to about N tokens (default: 4000)")
        ->type_name("N");
    line.add_setting_option(*group, "--max-concurrency", "max-concurrency",
                            "provider requests in flight at once (default: 30)")
        ->type_name("N");
    line.add_setting_option(*group, "--max-retries", "max-retries",
                            "retries of a timeout, 429 or 5xx per file and provider "
                            "(default: 3)")
        ->type_name("N");
    for (const ProviderPreset& preset : provider_presets()) {
        line.add_setting_option(
                *group, "--" + preset.name + "-base-url", preset.name + "-base-url",
                fmt::format("{} base URL (default: {})", preset.name, preset.base_url))
            ->type_name("URL");
        line.add_setting_option(*group, "--" + preset.name + "-model", preset.name + "-model",
                                fmt::format("{} model (default: {})", preset.name,
                                            preset.model.empty() ? "none" : preset.model))
            ->type_name("NAME");
    }
}

void add_providers_command(CLI::App& app, CommandLine& line) {
    CLI::App* command = app.add_subcommand("providers", "list the AI providers, their models, "
                                                        "base URLs and masked keys");
    auto check = std::make_shared<bool>(false);
    add_setting_options(*command, line);
    command->add_flag("--check", *check,
                      "send one tiny request to each provider of the priority list (or each "
                      "with a key) and report latency or why it failed");
    command->add_flag("--json", line.json, "print JSON");
    line.add_setting_list_option(*command, "--providers", "providers",
                                 "priority list to show and check")
        ->delimiter(',')
        ->allow_extra_args(false)
        ->type_name("LIST");
    command->callback([&line, check] {
        line.command = "providers";
        line.action = [check](const CommandLine& parsed, const Settings& settings) {
            return run_providers_command(settings, *check, parsed.json);
        };
    });
}

Result<std::unique_ptr<AnalysisService>> make_scan_analysis(const Settings& settings,
                                                            const std::shared_ptr<RuleSet>& rules,
                                                            const Warn& warn) {
    auto builtin = make_builtin_analyser(rules->content_hash());
    auto configs = priority_configs(settings);
    if (!configs) {
        return std::unexpected(configs.error());
    }
    if (configs->empty()) {
        return make_local_service(std::move(builtin));
    }

    // Offline keeps the router's profile whatever keys are set, so a replay on a machine
    // without keys finds the verdicts of the online run.
    const bool offline = settings.flag("offline");
    const bool any_usable = std::ranges::any_of(
        *configs, [](const ProviderConfig& config) { return config.has_credentials(); });
    if (!offline && !any_usable) {
        warn(fmt::format("no provider in the priority list has an API key ({}); using the "
                         "builtin analyser",
                         fmt::join(*configs | std::views::transform(&ProviderConfig::name), ", ")));
        return make_local_service(std::move(builtin));
    }
    if (!offline) {
        for (const ProviderConfig& config : *configs) {
            if (!config.has_credentials()) {
                warn(fmt::format("{} has no API key; set {} to use it; skipped", config.name,
                                 key_variable(*find_provider_preset(config.name))));
            }
        }
    }

    auto options = router_options(settings, std::move(*configs), warn);
    if (!options) {
        return std::unexpected(options.error());
    }
    if (!offline) {
        auto gate = make_resilience_gate(settings, warn);
        if (!gate) {
            return std::unexpected(gate.error());
        }
        options->gate = std::move(*gate);
    }
    return make_provider_router(std::move(*options), std::move(builtin));
}

} // namespace athena::cli
