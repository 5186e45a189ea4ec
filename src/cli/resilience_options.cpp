// Command-line and settings hooks of the resilience gate: the feature flags, the global and
// per-provider breaker and bulkhead settings, the drain timeout, and the gate they build.
//
// Every breaker and bulkhead setting exists once globally ("breaker-failure-threshold",
// [resilience.breaker] failure_threshold) and once per provider preset
// ("deepseek-breaker-failure-threshold", [providers.deepseek.breaker] failure_threshold).
// A provider uses its own setting when any layer sets it, else the global one. The
// documented per-provider defaults are the defaults of the per-provider settings, so
// `athena flags` shows them: deepseek opens after 5 failures, and anthropic and openai have
// their own slow-call thresholds.
#include "cli/extensions.hpp"
#include "cli/registry.hpp"

#include <athena/providers.hpp>
#include <athena/resilience_gate.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <mutex>
#include <set>

namespace athena::cli {
namespace {

using Milliseconds = std::chrono::milliseconds;

// The breaker and bulkhead fields a setting can change.
enum class GuardField {
    failure_threshold,
    success_threshold,
    half_open_probes,
    reset_timeout,
    max_reset_timeout,
    reset_backoff,
    window,
    minimum_calls,
    target_response,
    response_threshold,
    slow_call_rate,
    failure_rate,
    max_concurrent,
    queue_size,
    queue_timeout,
};

// One setting that exists globally and per provider.
struct GuardSetting {
    GuardField field;
    const char* suffix; // setting name after "" or "PROVIDER-"
    const char* key;    // config key after "resilience." or "providers.PROVIDER."
    SettingKind kind;
    const char* type_name;   // for --help
    const char* description; // what it sets, with its unit
};

constexpr GuardSetting k_guard_settings[] = {
    {GuardField::failure_threshold, "breaker-failure-threshold", "breaker.failure_threshold",
     SettingKind::integer, "N", "consecutive failures that open the circuit breaker"},
    {GuardField::success_threshold, "breaker-success-threshold", "breaker.success_threshold",
     SettingKind::integer, "N", "probe successes that close a half-open breaker"},
    {GuardField::half_open_probes, "breaker-half-open-probes", "breaker.half_open_probes",
     SettingKind::integer, "N", "probe calls a half-open breaker lets through at once"},
    {GuardField::reset_timeout, "breaker-reset-timeout", "breaker.reset_timeout",
     SettingKind::duration, "DURATION", "time an opened breaker stays open before a probe"},
    {GuardField::max_reset_timeout, "breaker-max-reset-timeout", "breaker.max_reset_timeout",
     SettingKind::duration, "DURATION", "cap of the reset timeout as it grows with reopenings"},
    {GuardField::reset_backoff, "breaker-backoff", "breaker.backoff", SettingKind::choice,
     "STRATEGY", "growth of the reset timeout per reopening: exponential, linear, fibonacci"},
    {GuardField::window, "breaker-window", "breaker.window", SettingKind::duration, "DURATION",
     "length of the adaptive breaker's sliding window of calls"},
    {GuardField::minimum_calls, "breaker-minimum-calls", "breaker.minimum_calls",
     SettingKind::integer, "N", "calls in the window before a rate can open the breaker"},
    {GuardField::target_response, "breaker-target-response", "breaker.target_response",
     SettingKind::duration, "DURATION", "expected response time of the provider"},
    {GuardField::response_threshold, "breaker-response-threshold", "breaker.response_threshold",
     SettingKind::string, "FACTOR",
     "a call is slow above this multiple of the target response time"},
    {GuardField::slow_call_rate, "breaker-slow-call-rate", "breaker.slow_call_rate",
     SettingKind::string, "RATIO", "share of slow calls in the window above which it opens"},
    {GuardField::failure_rate, "breaker-failure-rate", "breaker.failure_rate", SettingKind::string,
     "RATIO", "share of failed calls in the window above which it opens"},
    {GuardField::max_concurrent, "bulkhead-max-concurrent", "bulkhead.max_concurrent",
     SettingKind::integer, "N", "calls in flight at once to the provider"},
    {GuardField::queue_size, "bulkhead-queue-size", "bulkhead.queue_size", SettingKind::integer,
     "N", "calls that may wait for a slot; beyond that a call fails over at once"},
    {GuardField::queue_timeout, "bulkhead-queue-timeout", "bulkhead.queue_timeout",
     SettingKind::duration, "DURATION", "time a call waits for a slot before it fails over"},
};

std::string env_name(std::string_view text) {
    std::string result(text);
    std::ranges::transform(result, result.begin(), [](unsigned char c) {
        return c == '-' ? '_' : static_cast<char>(std::toupper(c));
    });
    return "ATHENA_" + result;
}

std::string decimal_text(double value) {
    return value == std::floor(value) ? fmt::format("{:.1f}", value) : fmt::format("{}", value);
}

std::string duration_text(Milliseconds duration) {
    const std::int64_t ms = duration.count();
    if (ms != 0 && ms % 60'000 == 0) {
        return fmt::format("{}m", ms / 60'000);
    }
    if (ms != 0 && ms % 1'000 == 0) {
        return fmt::format("{}s", ms / 1'000);
    }
    return fmt::format("{}ms", ms);
}

// The textual default of a field, taken from the config structs, so the settings cannot
// drift from the documented defaults.
std::string default_text(GuardField field, const ProviderGuardConfig& config) {
    const BreakerConfig& breaker = config.breaker;
    const BulkheadConfig& bulkhead = config.bulkhead;
    switch (field) {
    case GuardField::failure_threshold:
        return std::to_string(breaker.failure_threshold);
    case GuardField::success_threshold:
        return std::to_string(breaker.success_threshold);
    case GuardField::half_open_probes:
        return std::to_string(breaker.half_open_max_probes);
    case GuardField::reset_timeout:
        return duration_text(breaker.reset_timeout);
    case GuardField::max_reset_timeout:
        return duration_text(breaker.max_reset_timeout);
    case GuardField::reset_backoff:
        return std::string(to_string(breaker.reset_backoff));
    case GuardField::window:
        return duration_text(breaker.window);
    case GuardField::minimum_calls:
        return std::to_string(breaker.minimum_calls);
    case GuardField::target_response:
        return duration_text(breaker.target_response);
    case GuardField::response_threshold:
        return decimal_text(breaker.response_threshold);
    case GuardField::slow_call_rate:
        return decimal_text(breaker.slow_call_rate_threshold);
    case GuardField::failure_rate:
        return decimal_text(breaker.failure_rate_threshold);
    case GuardField::max_concurrent:
        return std::to_string(bulkhead.max_concurrent);
    case GuardField::queue_size:
        return std::to_string(bulkhead.max_queued);
    case GuardField::queue_timeout:
        return duration_text(bulkhead.queue_timeout);
    }
    return {};
}

SettingSpec guard_spec(const GuardSetting& setting, const std::string& name, std::string key,
                       std::string fallback, std::string description) {
    SettingSpec result = setting_spec(name, setting.kind, std::move(key), {env_name(name)},
                              std::move(fallback), std::move(description));
    if (setting.kind == SettingKind::choice) {
        result.choices = {"exponential", "linear", "fibonacci"};
    }
    return result;
}

// " (from config FILE:LINE)" and the like, so an error points at the layer to fix.
std::string origin_suffix(const Settings& settings, const std::string& name) {
    const SettingOrigin& origin = settings.value(name).origin;
    return origin.source == SettingSource::default_value
               ? std::string()
               : fmt::format(" (from {})", origin.description);
}

Result<std::int64_t> read_integer(const Settings& settings, const std::string& name,
                                  std::int64_t minimum) {
    const auto value = settings.integer(name);
    if (!value || *value < minimum) {
        return fail("usage",
                    fmt::format("invalid {} '{}'{}: expected a whole number of at "
                                "least {}",
                                name, settings.text(name), origin_suffix(settings, name), minimum));
    }
    return *value;
}

Result<Milliseconds> read_duration(const Settings& settings, const std::string& name,
                                   std::int64_t minimum_ms) {
    const auto value = settings.duration_ms(name);
    if (!value || *value < minimum_ms) {
        return fail("usage", fmt::format("invalid {} '{}'{}: expected a duration of at least "
                                         "{} ms, e.g. 500ms or 30s",
                                         name, settings.text(name), origin_suffix(settings, name),
                                         minimum_ms));
    }
    return Milliseconds{*value};
}

// A decimal in [minimum, maximum]; `exclusive_minimum` excludes the lower bound.
Result<double> read_decimal(const Settings& settings, const std::string& name, double minimum,
                            bool exclusive_minimum, std::optional<double> maximum) {
    const std::string text = settings.text(name);
    double value = 0.0;
    const char* end = text.data() + text.size();
    const auto [stop, status] = std::from_chars(text.data(), end, value);
    const bool is_number =
        !text.empty() && status == std::errc() && stop == end && std::isfinite(value);
    const bool is_in_range = is_number &&
                             (exclusive_minimum ? value > minimum : value >= minimum) &&
                             (!maximum || value <= *maximum);
    if (!is_in_range) {
        const std::string range =
            maximum ? fmt::format("from {} to {}", minimum, *maximum)
                    : fmt::format("{} {}", exclusive_minimum ? "above" : "of at least", minimum);
        return fail("usage", fmt::format("invalid {} '{}'{}: expected a number {}", name, text,
                                         origin_suffix(settings, name), range));
    }
    return value;
}

std::uint32_t to_count(std::int64_t value) {
    return static_cast<std::uint32_t>(std::min<std::int64_t>(value, 1'000'000));
}

// Reads setting `name` into `field` of `config`. Errors: kind "usage", naming the setting.
Result<void> apply_field(const Settings& settings, const std::string& name, GuardField field,
                         ProviderGuardConfig& config) {
    BreakerConfig& breaker = config.breaker;
    BulkheadConfig& bulkhead = config.bulkhead;
    const auto store = [](auto parsed, auto& target, auto convert) -> Result<void> {
        if (!parsed) {
            return std::unexpected(parsed.error());
        }
        target = convert(*parsed);
        return {};
    };
    const auto same = [](auto value) { return value; };

    switch (field) {
    case GuardField::failure_threshold:
        return store(read_integer(settings, name, 1), breaker.failure_threshold, to_count);
    case GuardField::success_threshold:
        return store(read_integer(settings, name, 1), breaker.success_threshold, to_count);
    case GuardField::half_open_probes:
        return store(read_integer(settings, name, 1), breaker.half_open_max_probes, to_count);
    case GuardField::reset_timeout:
        return store(read_duration(settings, name, 1), breaker.reset_timeout, same);
    case GuardField::max_reset_timeout:
        return store(read_duration(settings, name, 1), breaker.max_reset_timeout, same);
    case GuardField::reset_backoff:
        return store(parse_backoff_strategy(settings.text(name)), breaker.reset_backoff, same);
    case GuardField::window:
        return store(read_duration(settings, name, 1), breaker.window, same);
    case GuardField::minimum_calls:
        return store(read_integer(settings, name, 1), breaker.minimum_calls, to_count);
    case GuardField::target_response:
        return store(read_duration(settings, name, 1), breaker.target_response, same);
    case GuardField::response_threshold:
        return store(read_decimal(settings, name, 0.0, true, std::nullopt),
                     breaker.response_threshold, same);
    case GuardField::slow_call_rate:
        return store(read_decimal(settings, name, 0.0, false, 1.0),
                     breaker.slow_call_rate_threshold, same);
    case GuardField::failure_rate:
        return store(read_decimal(settings, name, 0.0, false, 1.0), breaker.failure_rate_threshold,
                     same);
    case GuardField::max_concurrent:
        return store(read_integer(settings, name, 1), bulkhead.max_concurrent,
                     [](std::int64_t value) { return static_cast<std::size_t>(value); });
    case GuardField::queue_size:
        return store(read_integer(settings, name, 0), bulkhead.max_queued,
                     [](std::int64_t value) { return static_cast<std::size_t>(value); });
    case GuardField::queue_timeout:
        return store(read_duration(settings, name, 0), bulkhead.queue_timeout, same);
    }
    return {};
}

// The provider names of the priority list, as the router names them.
std::vector<std::string> priority_providers(const Settings& settings) {
    std::vector<std::string> names;
    for (const std::string& item : settings.list("providers")) {
        const ProviderPreset* preset = find_provider_preset(item);
        if (preset != nullptr && std::ranges::find(names, preset->name) == names.end()) {
            names.push_back(preset->name);
        }
    }
    return names;
}

// A provider's config: its own setting of each field when some layer set it, else the
// global one.
Result<ProviderGuardConfig> provider_guard_config(const Settings& settings,
                                                  const std::string& provider) {
    ProviderGuardConfig config = default_provider_guard_config(provider);
    for (const GuardSetting& setting : k_guard_settings) {
        const std::string own = provider + "-" + setting.suffix;
        const std::string& name = settings.value(own).is_set ? own : std::string(setting.suffix);
        if (auto applied = apply_field(settings, name, setting.field, config); !applied) {
            return std::unexpected(applied.error());
        }
    }
    config.breaker.adaptive = settings.flag("adaptive-breaker");
    auto jitter = read_decimal(settings, "breaker-jitter", 0.0, false, 1.0);
    if (!jitter) {
        return std::unexpected(jitter.error());
    }
    config.breaker.reset_jitter_ratio = *jitter;

    if (auto valid = validate_breaker_config(config.breaker, provider); !valid) {
        return std::unexpected(valid.error());
    }
    return config;
}

// Warns once per provider, on its breaker's first opening; later changes are in the report.
BreakerTransitionListener first_opening_warning(const Warn& warn) {
    auto mutex = std::make_shared<std::mutex>();
    auto warned = std::make_shared<std::set<std::string>>();
    return [warn, mutex, warned](const std::string& provider, const BreakerTransition& transition) {
        if (transition.to != BreakerState::open) {
            return;
        }
        {
            std::lock_guard lock(*mutex);
            if (!warned->insert(provider).second) {
                return;
            }
        }
        warn(fmt::format("circuit breaker for {} opened ({}); its calls fail over until probe "
                         "calls succeed, and the report lists every change",
                         provider, transition.reason));
    };
}

} // namespace

void define_resilience_settings(Settings& settings) {
    SettingSpec breaker = setting_spec("circuit-breaker", SettingKind::flag, "features.circuit_breaker",
                               {"FEATURE_ENABLECIRCUITBREAKER"}, "true",
                               "per-provider circuit breaker: stop calling a provider that "
                               "fails or hangs, probe it again later");
    settings.define(std::move(breaker));
    settings.define(setting_spec("adaptive-breaker", SettingKind::flag, "features.adaptive_breaker",
                         {"FEATURE_ENABLEADAPTIVEBREAKER"}, "true",
                         "also open a breaker when too many calls in its window are slow or "
                         "failed"));
    settings.define(setting_spec("bulkhead", SettingKind::flag, "features.bulkhead",
                         {"FEATURE_ENABLEBULKHEAD"}, "true",
                         "cap the calls in flight per provider and across providers"));

    const ProviderGuardConfig global_defaults = default_provider_guard_config("");
    for (const GuardSetting& setting : k_guard_settings) {
        const std::string name = setting.suffix;
        settings.define(guard_spec(setting, name, std::string("resilience.") + setting.key,
                                   default_text(setting.field, global_defaults),
                                   std::string(setting.description) + " (per provider: PROVIDER-" +
                                       setting.suffix + ")"));
    }
    settings.define(setting_spec("breaker-jitter", SettingKind::string, "resilience.breaker.jitter",
                         {"ATHENA_BREAKER_JITTER"},
                         decimal_text(BreakerConfig{}.reset_jitter_ratio),
                         "random spread of each reset timeout, as a share (0.2 = ±20 %)"));
    settings.define(setting_spec("bulkhead-global-concurrency", SettingKind::integer,
                         "resilience.bulkhead.global_concurrency",
                         {"ATHENA_BULKHEAD_GLOBAL_CONCURRENCY"},
                         std::to_string(global_bulkhead_config().max_concurrent),
                         "AI calls in flight at once across all providers"));
    settings.define(setting_spec("drain-timeout", SettingKind::duration, "resilience.drain_timeout",
                         {"ATHENA_DRAIN_TIMEOUT"}, "5s",
                         "after an interrupt, time in-flight provider calls get to finish"));

    // Per provider: empty (use the global setting) unless the provider has its own default.
    for (const ProviderPreset& preset : provider_presets()) {
        const ProviderGuardConfig own_defaults = default_provider_guard_config(preset.name);
        for (const GuardSetting& setting : k_guard_settings) {
            const std::string own = default_text(setting.field, own_defaults);
            const std::string global = default_text(setting.field, global_defaults);
            settings.define(guard_spec(setting, preset.name + "-" + setting.suffix,
                                       "providers." + preset.name + "." + setting.key,
                                       own == global ? "" : own,
                                       fmt::format("{}: {} (unset: the global {})", preset.name,
                                                   setting.description, setting.suffix)));
        }
    }
}

void add_resilience_options(CLI::App& scan, CommandLine& line) {
    CLI::Option_group* group = scan.add_option_group("Resilience");
    line.add_setting_option(*group, "--drain-timeout", "drain-timeout",
                            "after Ctrl-C or SIGTERM, let provider calls in flight finish for "
                            "this long (default: 5s)")
        ->type_name("DURATION");
    const ProviderGuardConfig defaults = default_provider_guard_config("");
    for (const GuardSetting& setting : k_guard_settings) {
        line.add_setting_option(*group, std::string("--") + setting.suffix, setting.suffix,
                                fmt::format("{} (default: {}; per provider: "
                                            "--PROVIDER-{})",
                                            setting.description,
                                            default_text(setting.field, defaults), setting.suffix))
            ->type_name(setting.type_name);
    }
    line.add_setting_option(*group, "--breaker-jitter", "breaker-jitter",
                            "random spread of each reset timeout, as a share (default: 0.2)")
        ->type_name("RATIO");
    line.add_setting_option(*group, "--bulkhead-global-concurrency", "bulkhead-global-concurrency",
                            "AI calls in flight at once across all providers (default: 30)")
        ->type_name("N");

    // The per-provider options stay out of --help: one line per preset and setting would
    // bury the rest. The global options' help names the pattern.
    for (const ProviderPreset& preset : provider_presets()) {
        for (const GuardSetting& setting : k_guard_settings) {
            const std::string name = preset.name + "-" + setting.suffix;
            line.add_setting_option(scan, "--" + name, name,
                                    fmt::format("{}: {}", preset.name, setting.description))
                ->type_name(setting.type_name)
                ->group("");
        }
    }
}

Result<std::shared_ptr<CallGate>> make_resilience_gate(const Settings& settings, const Warn& warn) {
    ResilienceGateConfig config;
    config.use_breaker = settings.flag("circuit-breaker");
    config.use_bulkhead = settings.flag("bulkhead");
    for (const std::string& provider : priority_providers(settings)) {
        auto provider_config = provider_guard_config(settings, provider);
        if (!provider_config) {
            return std::unexpected(provider_config.error());
        }
        config.providers.push_back(std::move(*provider_config));
    }

    // The global bulkhead has its own slot count and shares the global queue settings.
    auto global_slots = read_integer(settings, "bulkhead-global-concurrency", 1);
    if (!global_slots) {
        return std::unexpected(global_slots.error());
    }
    ProviderGuardConfig global = default_provider_guard_config("global");
    for (const GuardField field : {GuardField::queue_size, GuardField::queue_timeout}) {
        const auto& setting = *std::ranges::find(k_guard_settings, field, &GuardSetting::field);
        if (auto applied = apply_field(settings, setting.suffix, field, global); !applied) {
            return std::unexpected(applied.error());
        }
    }
    config.global_bulkhead.max_concurrent = static_cast<std::size_t>(*global_slots);
    config.global_bulkhead.max_queued = global.bulkhead.max_queued;
    config.global_bulkhead.queue_timeout = global.bulkhead.queue_timeout;

    if (auto valid = validate_resilience_gate_config(config); !valid) {
        return std::unexpected(valid.error());
    }
    auto gate = std::make_shared<ResilienceGate>(std::move(config));
    if (warn) {
        gate->on_transition(first_opening_warning(warn));
    }
    return std::shared_ptr<CallGate>(std::move(gate));
}

} // namespace athena::cli
