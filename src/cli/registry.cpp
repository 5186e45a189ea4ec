#include "cli/registry.hpp"

#include "cli/extensions.hpp"

namespace athena::cli {
namespace {

SettingSpec flag(std::string name, std::string key, std::vector<std::string> env,
                 std::string fallback, std::string description) {
    SettingSpec spec;
    spec.name = std::move(name);
    spec.kind = SettingKind::flag;
    spec.config_key = "features." + std::move(key);
    spec.env_names = std::move(env);
    spec.default_value = std::move(fallback);
    spec.description = std::move(description);
    return spec;
}

SettingSpec value(std::string name, SettingKind kind, std::string key,
                  std::vector<std::string> env, std::string fallback, std::string description,
                  std::vector<std::string> choices = {}) {
    SettingSpec spec;
    spec.name = std::move(name);
    spec.kind = kind;
    spec.config_key = std::move(key);
    spec.env_names = std::move(env);
    spec.default_value = std::move(fallback);
    spec.description = std::move(description);
    spec.choices = std::move(choices);
    return spec;
}

} // namespace

SettingSpec setting_spec(std::string name, SettingKind kind, std::string key,
                         std::vector<std::string> env, std::string fallback,
                         std::string description) {
    SettingSpec result;
    result.name = std::move(name);
    result.kind = kind;
    result.config_key = std::move(key);
    result.env_names = std::move(env);
    result.default_value = std::move(fallback);
    result.description = std::move(description);
    return result;
}

void define_settings(Settings& settings) {
    // Feature flags. The FEATURE_* names are the Athena platform's and keep working as is.
    settings.define(flag("memory-cache", "memory_cache", {"FEATURE_ENABLEMEMORYCACHE"}, "true",
                         "in-process LRU tier of verdicts"));
    settings.define(flag("sqlite-cache", "sqlite_cache", {"FEATURE_ENABLESQLITECACHE"}, "true",
                         "SQLite tier of verdicts in the cache folder"));
    settings.define(flag("cache-results", "cache_results", {"FEATURE_CACHEANALYSISRESULTS"},
                         "true", "store fresh verdicts in the cache tiers"));
    settings.define(flag("stat-cache", "stat_cache", {"FEATURE_ENABLESTATCACHE"}, "true",
                         "skip reading files whose size and timestamps are unchanged"));
    settings.define(flag("builtin-fallback", "builtin_fallback",
                         {"FEATURE_ENABLEBUILTINFALLBACK"}, "true",
                         "answer with the builtin analyser when no AI provider can"));

    settings.define(value("cache-dir", SettingKind::string, "cache.dir", {"ATHENA_CACHE_DIR"}, "",
                          "cache folder (default $XDG_CACHE_HOME/athena or ~/.cache/athena)"));
    settings.define(value("memory-cache-entries", SettingKind::integer, "cache.memory_entries",
                          {"ATHENA_MEMORY_CACHE_ENTRIES"}, "10000",
                          "entries the in-process LRU tier keeps"));
    settings.define(value("fail-on", SettingKind::choice, "scan.fail_on", {"ATHENA_FAIL_ON"},
                          "malicious", "exit 1 when a file is at or above this level",
                          {"benign", "suspicious", "malicious", "critical"}));
    settings.define(value("max-file-size", SettingKind::size, "scan.max_file_size",
                          {"ATHENA_MAX_FILE_SIZE"}, "", "skip files larger than this (bytes, "
                                                        "or with K/M/G/T suffix)"));
    settings.define(value("exclude", SettingKind::list, "scan.exclude", {"ATHENA_EXCLUDE"}, "",
                          "glob of paths to skip (a glob with '/' matches the whole path)"));
    settings.define(value("rules", SettingKind::list, "scan.rules", {"ATHENA_RULES"}, "",
                          "extra YARA rule files or folders"));
    settings.define(value("follow-symlinks", SettingKind::boolean, "scan.follow_symlinks", {},
                          "false", "follow symbolic links (loops are detected)"));
    settings.define(value("one-file-system", SettingKind::boolean, "scan.one_file_system", {},
                          "false", "stay on the file system of each path given"));
    settings.define(value("jobs", SettingKind::integer, "scan.jobs", {"ATHENA_JOBS"}, "",
                          "worker threads (default: 4 per core, at least 16)"));
    settings.define(value("color", SettingKind::choice, "output.color", {}, "auto",
                          "colour the level column: auto (on a terminal), always, never",
                          {"auto", "always", "never"}));
    settings.define(value("shard", SettingKind::string, "scan.shard", {"ATHENA_SHARD"}, "",
                          "scan only files whose SHA-256 falls in shard K of N (K/N, K from 1)"));

    define_provider_settings(settings);
    define_resilience_settings(settings);
    define_redis_settings(settings);
}

} // namespace athena::cli
