// Settings, options and cache subcommands of the shared Redis tier, and the hook that adds
// the tier and the fleet lease to a scan.
#include "cli/app.hpp"
#include "cli/extensions.hpp"

#include <athena/redis_cache.hpp>
#include <athena/report.hpp>
#include <athena/sqlite_cache.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>

namespace athena::cli {
namespace {

constexpr const char* k_url_help =
    "redis://[[user]:password@]host[:port][/db] or unix:///path/to.sock[?db=N]";

SettingSpec redis_setting(std::string name, SettingKind kind, std::string config_key,
                          std::vector<std::string> env_names, std::string default_value,
                          std::string description) {
    SettingSpec spec;
    spec.name = std::move(name);
    spec.kind = kind;
    spec.config_key = std::move(config_key);
    spec.env_names = std::move(env_names);
    spec.default_value = std::move(default_value);
    spec.description = std::move(description);
    return spec;
}

void print_error(const std::string& message) {
    std::fputs(fmt::format("athena: error: {}\n", message).c_str(), stderr);
}

void print_warning(const std::string& message) {
    std::fputs(fmt::format("athena: warning: {}\n", message).c_str(), stderr);
}

// The tier is on when the flag is, or when a URL is configured and the flag was left at its
// default, so that --redis URL alone turns it on but --disable redis-cache still wins.
bool is_redis_enabled(const Settings& settings) {
    if (settings.flag("redis-cache")) {
        return true;
    }
    const bool is_flag_default =
        settings.value("redis-cache").origin.source == SettingSource::default_value;
    return is_flag_default && settings.value("redis").is_set && !settings.text("redis").empty();
}

Result<std::chrono::milliseconds> positive_duration(const Settings& settings,
                                                    const std::string& name) {
    const auto ms = settings.duration_ms(name);
    if (!ms || *ms <= 0) {
        return fail("usage",
                    fmt::format("{} must be a duration above zero, e.g. 500ms or 2s", name));
    }
    return std::chrono::milliseconds(*ms);
}

// Builds the options from the host/port/password/db settings, then lets a URL override
// what it names. Errors: kind "usage".
Result<RedisOptions> redis_options_from(const Settings& settings) {
    RedisOptions options;
    options.host = settings.text("redis-host");
    const auto port = settings.integer("redis-port");
    if (!port || *port < 1 || *port > 65535) {
        return fail("usage", "redis-port (REDIS_PORT) must be a port number from 1 to 65535");
    }
    options.port = static_cast<int>(*port);
    options.password = settings.text("redis-password");
    const auto db = settings.integer("redis-db");
    if (!db || *db < 0 || *db > (1 << 20)) {
        return fail("usage", "redis-db (REDIS_DB) must be a database number of 0 or more");
    }
    options.db = static_cast<int>(*db);
    if (const std::string url = settings.text("redis"); !url.empty()) {
        auto parsed = parse_redis_url(url, options);
        if (!parsed) {
            return std::unexpected(parsed.error());
        }
        options = std::move(*parsed);
    }

    options.key_prefix = settings.text("redis-key-prefix");
    options.ttl = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::milliseconds(settings.duration_ms("redis-ttl").value_or(0)));
    options.is_read_only = settings.flag("redis-read-only");
    options.secret = settings.text("cache-secret");
    for (const auto& [name, field] : {std::pair{"redis-connect-timeout", &options.connect_timeout},
                                      std::pair{"redis-command-timeout", &options.command_timeout},
                                      std::pair{"redis-lease", &options.lease},
                                      std::pair{"redis-lease-wait", &options.lease_wait}}) {
        auto duration = positive_duration(settings, name);
        if (!duration) {
            return std::unexpected(duration.error());
        }
        *field = *duration;
    }
    return options;
}

// Options every Redis cache subcommand takes: where settings come from, the cache folder
// and the server.
void add_command_options(CLI::App& command, CommandLine& line) {
    add_setting_options(command, line);
    line.add(command.add_option("--cache-dir", line.cache_dir, "cache folder")->type_name("DIR"),
             "cache-dir");
    line.add_setting_option(command, "--redis", "redis",
                            std::string("the Redis server: ") + k_url_help)
        ->type_name("URL");
    line.add_setting_option(command, "--redis-key-prefix", "redis-key-prefix",
                            "prefix of every Redis key (default: athena:)")
        ->type_name("PREFIX");
}

// Connects for a cache subcommand. Errors: kind "usage" (bad settings), "cache" (down).
Result<std::shared_ptr<RedisLink>> connect(const Settings& settings) {
    auto options = redis_options_from(settings);
    if (!options) {
        return std::unexpected(options.error());
    }
    auto link = std::make_shared<RedisLink>(std::move(*options), RedisLink::Warn());
    if (auto ok = link->check(); !ok) {
        return fail("cache", ok.error().message + "; check --redis, or REDIS_HOST, REDIS_PORT and "
                                                  "REDIS_PASSWORD");
    }
    return link;
}

int run_sync(const CommandLine&, const Settings& settings) {
    auto link = connect(settings);
    if (!link) {
        print_error(link.error().message);
        return k_exit_error;
    }
    auto database = CacheDatabase::open(cache_folder(settings));
    if (!database) {
        print_error(database.error().message);
        return k_exit_error;
    }
    auto pushed = push_pending_sync(**link, **database);
    if (!pushed) {
        print_error(pushed.error().message);
        return k_exit_error;
    }
    std::fputs(fmt::format("pushed {} queued verdicts to {}\n", pushed->pushed,
                           describe_endpoint((*link)->options()))
                   .c_str(),
               stdout);
    if (pushed->dropped > 0) {
        print_warning(fmt::format("dropped {} queued rows of {} that no longer decode",
                                  pushed->dropped, (*database)->file().string()));
    }
    return k_exit_clean;
}

void print_redis_stats(const RedisServerStats& stats, const std::string& prefix,
                       std::uint64_t pending, const std::filesystem::path& database) {
    const std::uint64_t lookups = stats.keyspace_hits + stats.keyspace_misses;
    std::fputs(fmt::format("redis          {} (Redis {})\n"
                           "prefix         {}\n"
                           "verdicts       {}\n"
                           "leases         {}\n"
                           "breaker marks  {}\n"
                           "memory         {} (whole server)\n"
                           "hits           {}/{} ({} %, whole server)\n"
                           "misses         {}\n"
                           "pending sync   {} (in {})\n",
                           stats.endpoint, stats.version, prefix, stats.verdict_keys,
                           stats.lease_keys, stats.breaker_keys,
                           format_bytes(stats.used_memory_bytes), stats.keyspace_hits, lookups,
                           format_percent(stats.keyspace_hits, lookups), stats.keyspace_misses,
                           pending, database.string())
                   .c_str(),
               stdout);
}

int run_redis_stats(const CommandLine& line, const Settings& settings) {
    auto link = connect(settings);
    if (!link) {
        print_error(link.error().message);
        return k_exit_error;
    }
    auto stats = read_redis_stats(**link);
    if (!stats) {
        print_error(stats.error().message);
        return k_exit_error;
    }

    auto database = CacheDatabase::open(cache_folder(settings));
    if (!database) {
        print_error(database.error().message);
        return k_exit_error;
    }
    auto local = (*database)->stats();
    if (!local) {
        print_error(local.error().message);
        return k_exit_error;
    }

    const std::string& prefix = (*link)->options().key_prefix;
    if (line.json) {
        const nlohmann::ordered_json json = {{"endpoint", stats->endpoint},
                                             {"version", stats->version},
                                             {"prefix", prefix},
                                             {"verdict_keys", stats->verdict_keys},
                                             {"lease_keys", stats->lease_keys},
                                             {"breaker_keys", stats->breaker_keys},
                                             {"used_memory_bytes", stats->used_memory_bytes},
                                             {"keyspace_hits", stats->keyspace_hits},
                                             {"keyspace_misses", stats->keyspace_misses},
                                             {"pending_sync", local->pending_sync}};
        std::puts(json.dump().c_str());
        return k_exit_clean;
    }
    print_redis_stats(*stats, prefix, local->pending_sync, (*database)->file());
    return k_exit_clean;
}

} // namespace

void define_redis_settings(Settings& settings) {
    using Kind = SettingKind;
    SettingSpec flag = redis_setting("redis-cache", Kind::flag, "features.redis_cache",
                                     {"FEATURE_ENABLEREDISCACHE", "REDIS_ENABLED"}, "false",
                                     "shared Redis tier of verdicts (a Redis URL also turns it "
                                     "on)");
    settings.define(std::move(flag));
    SettingSpec url = redis_setting("redis", Kind::string, "redis.url", {"ATHENA_REDIS_URL"}, "",
                                    std::string("Redis server: ") + k_url_help +
                                        "; overrides redis-host, redis-port and redis-db");
    url.is_secret = true; // it may carry a password
    settings.define(std::move(url));

    // The Athena platform's variables, used when no URL is given.
    settings.define(redis_setting("redis-host", Kind::string, "redis.host", {"REDIS_HOST"},
                                  "127.0.0.1", "Redis host name or address"));
    settings.define(redis_setting("redis-port", Kind::integer, "redis.port", {"REDIS_PORT"}, "6379",
                                  "Redis TCP port"));
    settings.define(redis_setting("redis-password", Kind::string, "redis.password",
                                  {"REDIS_PASSWORD"}, "", "Redis password (AUTH)"));
    settings.define(redis_setting("redis-db", Kind::integer, "redis.db", {"REDIS_DB"}, "0",
                                  "Redis database number"));
    settings.define(redis_setting("redis-key-prefix", Kind::string, "redis.key_prefix",
                                  {"REDIS_KEY_PREFIX"},
                                  "athena:", "prefix of every Redis key athena writes"));

    settings.define(redis_setting("redis-ttl", Kind::duration, "redis.ttl", {"ATHENA_REDIS_TTL"},
                                  "168h", "lifetime of a verdict in Redis (0: no expiry)"));
    settings.define(redis_setting("redis-connect-timeout", Kind::duration, "redis.connect_timeout",
                                  {"ATHENA_REDIS_CONNECT_TIMEOUT"}, "200ms",
                                  "give up connecting to Redis after this long"));
    settings.define(redis_setting("redis-command-timeout", Kind::duration, "redis.command_timeout",
                                  {"ATHENA_REDIS_COMMAND_TIMEOUT"}, "500ms",
                                  "give up on a Redis reply after this long"));
    settings.define(redis_setting("redis-read-only", Kind::boolean, "redis.read_only",
                                  {"ATHENA_REDIS_READ_ONLY"}, "false",
                                  "read verdicts from Redis but never write to it"));

    settings.define(redis_setting("redis-lease", Kind::duration, "redis.lease",
                                  {"ATHENA_REDIS_LEASE"}, "30s",
                                  "lifetime of an analysis lease; renewed while the analysis "
                                  "runs"));
    settings.define(redis_setting("redis-lease-wait", Kind::duration, "redis.lease_wait",
                                  {"ATHENA_REDIS_LEASE_WAIT"}, "2m",
                                  "maximum wait for another runner's verdict before analysing "
                                  "the file here"));

    settings.define(redis_setting("cache-secret", Kind::string, "cache.secret",
                                  {"ATHENA_CACHE_SECRET"}, "",
                                  "HMAC key that signs shared verdicts; unsigned or forged "
                                  "values are ignored"));
}

void add_redis_options(CLI::App& scan, CommandLine& line) {
    line.add_setting_option(scan, "--redis", "redis",
                            std::string("share verdicts through this Redis and turn the tier "
                                        "on: ") +
                                k_url_help +
                                " (a password here shows in the process list; prefer "
                                "REDIS_PASSWORD)")
        ->type_name("URL");
    line.add_setting_option(scan, "--redis-ttl", "redis-ttl",
                            "lifetime of verdicts stored in Redis, e.g. 24h (default: 168h; 0: "
                            "no expiry)")
        ->type_name("DURATION");
    line.add_setting_flag(scan, "--redis-read-only", "redis-read-only", "true",
                          "read verdicts from Redis but never write to it (for CI jobs of "
                          "untrusted forks)");
    line.add_setting_option(scan, "--redis-key-prefix", "redis-key-prefix",
                            "prefix of every Redis key (default: athena:)")
        ->type_name("PREFIX");
}

void add_redis_cache_commands(CLI::App& cache, CommandLine& line) {
    CLI::App* sync = cache.add_subcommand("sync", "push verdicts queued while Redis was "
                                                  "unreachable to Redis");
    add_command_options(*sync, line);
    sync->callback([&line] {
        line.command = "cache sync";
        line.action = run_sync;
    });

    CLI::App* stats = cache.add_subcommand("redis-stats", "Redis server, keys under the prefix, "
                                                          "memory, hits and misses, and verdicts "
                                                          "waiting for a sync");
    add_command_options(*stats, line);
    stats->add_flag("--json", line.json, "print JSON");
    stats->callback([&line] {
        line.command = "cache redis-stats";
        line.action = run_redis_stats;
    });
}

Result<void> add_shared_tiers(const Settings& settings,
                              std::vector<std::unique_ptr<CacheTier>>& tiers,
                              CacheDatabase* database, std::unique_ptr<AnalysisService>& analysis,
                              const Warn& warn) {
    if (!is_redis_enabled(settings)) {
        return {};
    }
    auto options = redis_options_from(settings);
    if (!options) {
        return std::unexpected(options.error());
    }
    const bool is_read_only = options->is_read_only;
    std::string down_note;
    if (!is_read_only) {
        down_note = database != nullptr
                        ? "; verdicts made meanwhile are queued in the local cache and pushed by "
                          "the next run that reaches Redis, or by 'athena cache sync'"
                        : "; verdicts made meanwhile are not shared (no local cache database "
                          "to queue them in)";
    }
    auto link = std::make_shared<RedisLink>(std::move(*options), warn, std::move(down_note));

    // A run that reaches Redis first pushes what earlier runs could not. A failure here has
    // taken the link down and warned already.
    if (link->check() && !is_read_only && database != nullptr) {
        if (auto pushed = push_pending_sync(*link, *database); !pushed && !link->is_down()) {
            warn("cannot push queued verdicts to Redis: " + pushed.error().message);
        }
    }
    tiers.push_back(make_redis_tier(link, database));
    if (analysis && settings.flag("cache-results")) {
        analysis = make_leased_analysis(std::move(analysis), link, make_runner_id());
    }
    return {};
}

} // namespace athena::cli
