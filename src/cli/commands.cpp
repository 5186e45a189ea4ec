#include "cli/commands.hpp"

#include "cli/app.hpp"
#include "cli/extensions.hpp"
#include "cli/registry.hpp"
#include "cli/signals.hpp"

#include <athena/analysis_service.hpp>
#include <athena/config.hpp>
#include <athena/pipeline.hpp>
#include <athena/report.hpp>
#include <athena/rules.hpp>
#include <athena/sqlite_cache.hpp>
#include <athena/tiered_cache.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <unistd.h>

namespace athena::cli {
namespace {

void print_error(const std::string& message) {
    std::fputs(fmt::format("athena: error: {}\n", message).c_str(), stderr);
}

void print_warning(const std::string& message) {
    std::fputs(fmt::format("athena: warning: {}\n", message).c_str(), stderr);
}

// Layers defaults, config file, environment and command line into one Settings.
Result<Settings> load_settings(const CommandLine& line) {
    Settings settings;
    define_settings(settings);

    const bool is_explicit = !line.config_path.empty();
    const std::filesystem::path config =
        is_explicit ? std::filesystem::path(line.config_path) : default_config_path();
    if (!config.empty()) {
        if (auto ok = settings.load_config_file(config, is_explicit); !ok) {
            return std::unexpected(ok.error());
        }
    }
    if (auto ok = settings.load_environment(); !ok) {
        return std::unexpected(ok.error());
    }
    for (const SettingOption& entry : line.setting_options) {
        const CLI::Option* option = entry.option;
        const std::string& name = entry.setting;
        if (option->count() == 0) {
            continue;
        }
        Result<void> ok;
        if (settings.spec(name).kind == SettingKind::list) {
            ok = settings.set_list_from_command_line(name, option->as<std::vector<std::string>>());
        } else if (option->get_expected_min() == 0) {
            ok = settings.set_from_command_line(name, entry.flag_value);
        } else {
            ok = settings.set_from_command_line(name, option->as<std::string>());
        }
        if (!ok) {
            return std::unexpected(ok.error());
        }
    }
    for (const std::string& name : line.enable) {
        if (auto ok = settings.enable(name); !ok) {
            return std::unexpected(ok.error());
        }
    }
    for (const std::string& name : line.disable) {
        if (auto ok = settings.disable(name); !ok) {
            return std::unexpected(ok.error());
        }
    }
    return settings;
}

// Parses "K/N" (1 <= K <= N) into a 0-based index and a count.
Result<std::pair<std::uint32_t, std::uint32_t>> parse_shard(const std::string& text) {
    unsigned index = 0;
    unsigned count = 0;
    char tail = 0;
    if (std::sscanf(text.c_str(), "%u/%u%c", &index, &count, &tail) != 2 || count == 0 ||
        index == 0 || index > count || count > 1'000'000) {
        return fail("usage", "invalid --shard '" + text + "': expected K/N with 1 <= K <= N, "
                                                          "e.g. 2/4");
    }
    return std::pair{static_cast<std::uint32_t>(index - 1), static_cast<std::uint32_t>(count)};
}

Result<PipelineOptions> pipeline_options(const CommandLine& line, const Settings& settings,
                                         PipelineMode mode) {
    PipelineOptions options;
    options.mode = mode;
    options.roots = line.paths;
    options.walk.follow_symlinks = settings.flag("follow-symlinks");
    options.walk.one_file_system = settings.flag("one-file-system");
    options.walk.excludes = settings.list("exclude");
    options.walk.max_file_size_bytes = settings.size_bytes("max-file-size");
    if (const auto jobs = settings.integer("jobs"); jobs && *jobs > 0) {
        options.worker_threads = static_cast<unsigned>(std::min<std::int64_t>(*jobs, 1024));
    }
    options.use_stat_cache = settings.flag("stat-cache");
    options.cache_results = settings.flag("cache-results");
    options.sort_by_path = line.sort == "path";
    options.fail_on = parse_threat_level(settings.text("fail-on")).value_or(ThreatLevel::malicious);
    if (const std::string shard = settings.text("shard"); !shard.empty()) {
        auto parsed = parse_shard(shard);
        if (!parsed) {
            return std::unexpected(parsed.error());
        }
        std::tie(options.shard_index, options.shard_count) = *parsed;
    }
    return options;
}

bool wants_color(const Settings& settings) {
    if (const char* no_color = std::getenv("NO_COLOR"); no_color != nullptr && *no_color != '\0') {
        return false;
    }
    const std::string when = settings.text("color");
    return when == "always" || (when == "auto" && ::isatty(STDOUT_FILENO) == 1);
}

// Opens the database when any SQLite-backed feature is on; null when none is.
Result<std::shared_ptr<CacheDatabase>> open_database(const Settings& settings, bool need) {
    if (!need) {
        return std::shared_ptr<CacheDatabase>();
    }
    return CacheDatabase::open(cache_folder(settings));
}

int run_walk_command(const CommandLine& line, const Settings& settings, PipelineMode mode) {
    const auto parsed_options = pipeline_options(line, settings, mode);
    if (!parsed_options) {
        print_error(parsed_options.error().message);
        return k_exit_error;
    }
    const PipelineOptions& options = *parsed_options;

    std::shared_ptr<RuleSet> rules;
    std::unique_ptr<EvidenceExtractor> extractor;
    std::unique_ptr<AnalysisService> analysis;
    if (mode == PipelineMode::scan) {
        std::vector<std::filesystem::path> rule_paths{bundled_rules_dir()};
        for (const std::string& path : settings.list("rules")) {
            rule_paths.emplace_back(path);
        }
        auto compiled = RuleSet::compile(rule_paths);
        if (!compiled) {
            print_error(compiled.error().message);
            return k_exit_error;
        }
        rules = std::move(*compiled);
        auto created = EvidenceExtractor::create(rules);
        if (!created) {
            print_error(created.error().message);
            return k_exit_error;
        }
        extractor = std::move(*created);
        auto service = make_scan_analysis(settings, rules, print_warning);
        if (!service) {
            print_error(service.error().message);
            return k_exit_error;
        }
        analysis = std::move(*service);
    }

    const bool use_sqlite = mode == PipelineMode::scan && settings.flag("sqlite-cache");
    auto database = open_database(settings, use_sqlite || options.use_stat_cache);
    if (!database) {
        print_error(database.error().message);
        return k_exit_error;
    }
    std::vector<std::unique_ptr<CacheTier>> tiers;
    if (mode == PipelineMode::scan && settings.flag("memory-cache")) {
        const auto entries = settings.integer("memory-cache-entries").value_or(10000);
        tiers.push_back(make_memory_tier(static_cast<std::size_t>(std::max<std::int64_t>(0, entries))));
    }
    if (use_sqlite && *database) {
        tiers.push_back((*database)->make_verdict_tier());
    }
    if (mode == PipelineMode::scan) {
        auto shared = add_shared_tiers(settings, tiers, database->get(), analysis, print_warning);
        if (!shared) {
            print_error(shared.error().message);
            return k_exit_error;
        }
    }
    TieredCache cache(std::move(tiers));

    OutputOptions output;
    output.format = mode == PipelineMode::hash ? OutputFormat::sha256sum
                    : line.json                ? OutputFormat::json
                                               : OutputFormat::text;
    output.use_color = wants_color(settings);
    output.print_report = !line.quiet;
    output.show_benign = !line.only_findings;
    const auto sink = make_output_sink(output);

    PipelineServices services;
    services.database = database->get();
    services.cache = &cache;
    services.analysis = analysis.get();
    services.extractor = extractor.get();
    services.warn = print_warning;
    const auto specs = settings.specs();
    const bool has_drain_timeout = std::any_of(specs.begin(), specs.end(), [](const auto* spec) {
        return spec->name == "drain-timeout";
    });
    if (has_drain_timeout) {
        if (const auto drain_ms = settings.duration_ms("drain-timeout")) {
            services.drain_timeout = std::chrono::milliseconds(*drain_ms);
        }
    }

    install_signal_handlers();
    const RunSummary summary = run_pipeline(options, services, *sink, interrupt_signal());
    return summary.exit_code;
}

int run_cache_command(const CommandLine& line, const Settings& settings) {
    auto database = CacheDatabase::open(cache_folder(settings));
    if (!database) {
        print_error(database.error().message);
        return k_exit_error;
    }
    CacheDatabase& db = **database;
    if (line.command == "cache stats") {
        auto stats = db.stats();
        if (!stats) {
            print_error(stats.error().message);
            return k_exit_error;
        }
        if (line.json) {
            const nlohmann::ordered_json json = {{"path", db.file().string()},
                                                 {"schema_version", stats->schema_version},
                                                 {"verdicts", stats->verdicts},
                                                 {"stat_entries", stats->stat_entries},
                                                 {"bytes", stats->file_bytes}};
            std::puts(json.dump().c_str());
        } else {
            std::fputs(fmt::format("database      {}\nschema        {}\nverdicts      {}\n"
                                   "stat entries  {}\nsize          {}\n",
                                   db.file().string(), stats->schema_version, stats->verdicts,
                                   stats->stat_entries, format_bytes(stats->file_bytes))
                           .c_str(),
                       stdout);
        }
        return k_exit_clean;
    }
    if (line.command == "cache clear") {
        if (auto ok = db.clear(); !ok) {
            print_error(ok.error().message);
            return k_exit_error;
        }
        std::fputs(fmt::format("cleared {}\n", db.file().string()).c_str(), stdout);
        return k_exit_clean;
    }
    if (line.command == "cache prune") {
        std::string age = line.older_than;
        std::int64_t multiplier_s = 1;
        if (!age.empty() && age.back() == 'd') {
            age.pop_back();
            multiplier_s = 86400;
        }
        auto age_ms = parse_duration_ms(age);
        if (!age_ms || *age_ms < 0) {
            print_error("invalid --older-than '" + line.older_than +
                        "': use a duration such as 30d, 12h, 90m or 45s");
            return k_exit_error;
        }
        const std::int64_t age_s = multiplier_s == 1 ? *age_ms / 1000 : *age_ms * multiplier_s / 1000;
        auto removed = db.prune_verdicts(static_cast<std::int64_t>(std::time(nullptr)) - age_s);
        if (!removed) {
            print_error(removed.error().message);
            return k_exit_error;
        }
        std::fputs(fmt::format("removed {} verdicts\n", *removed).c_str(), stdout);
        return k_exit_clean;
    }
    // cache get
    auto rows = db.verdicts_for(line.sha256);
    if (!rows) {
        print_error(rows.error().message);
        return k_exit_error;
    }
    if (rows->empty()) {
        print_error("no verdict stored for " + line.sha256);
        return k_exit_findings;
    }
    for (const auto& [profile, entry] : *rows) {
        nlohmann::ordered_json json = {{"sha256", line.sha256}, {"profile", profile}};
        json["entry"] = nlohmann::ordered_json::parse(entry, nullptr, false);
        std::puts(json.dump().c_str());
    }
    return k_exit_clean;
}

} // namespace

std::filesystem::path cache_folder(const Settings& settings) {
    const std::string configured = settings.text("cache-dir");
    if (!configured.empty()) {
        return configured;
    }
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
        return std::filesystem::path(xdg) / "athena";
    }
    if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
        return std::filesystem::path(home) / ".cache" / "athena";
    }
    return std::filesystem::path(".athena-cache");
}

CLI::Option* CommandLine::add_setting_option(CLI::App& command, const std::string& names,
                                             const std::string& setting,
                                             const std::string& description) {
    std::string& storage = m_values.emplace_back();
    CLI::Option* option = command.add_option(names, storage, description);
    add(option, setting);
    return option;
}

CLI::Option* CommandLine::add_setting_list_option(CLI::App& command, const std::string& names,
                                                  const std::string& setting,
                                                  const std::string& description) {
    std::vector<std::string>& storage = m_lists.emplace_back();
    CLI::Option* option = command.add_option(names, storage, description);
    add(option, setting);
    return option;
}

CLI::Option* CommandLine::add_setting_flag(CLI::App& command, const std::string& names,
                                           const std::string& setting, const std::string& value,
                                           const std::string& description) {
    bool& storage = m_flags.emplace_back(false);
    CLI::Option* option = command.add_flag(names, storage, description);
    setting_options.push_back(SettingOption{option, setting, value});
    return option;
}

int run_command(const CommandLine& line) {
    auto settings = load_settings(line);
    if (!settings) {
        print_error(settings.error().message);
        return k_exit_error;
    }
    if (line.action) {
        return line.action(line, *settings);
    }
    if (line.command == "scan") {
        return run_walk_command(line, *settings, PipelineMode::scan);
    }
    if (line.command == "hash") {
        return run_walk_command(line, *settings, PipelineMode::hash);
    }
    if (line.command == "flags") {
        std::fputs((line.json ? settings->format_json() + "\n" : settings->format_text()).c_str(),
                   stdout);
        return k_exit_clean;
    }
    return run_cache_command(line, *settings);
}

} // namespace athena::cli
