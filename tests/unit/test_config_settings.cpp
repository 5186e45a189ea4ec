#include <athena/config.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;
using Env = std::map<std::string, std::string>;

// A directory under the system temporary directory, removed with everything in it.
class TempDir {
public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "athena-config-test-XXXXXX").string();
        REQUIRE(mkdtemp(pattern.data()) != nullptr);
        m_path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(m_path, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    fs::path write(const std::string& name, const std::string& content) const {
        const fs::path file = m_path / name;
        std::ofstream out(file, std::ios::binary);
        out << content;
        REQUIRE(out.good());
        return file;
    }

    const fs::path& path() const { return m_path; }

private:
    fs::path m_path;
};

// Builds a spec field by field, because g++ 12 warns about designated initializers that skip
// fields.
athena::SettingSpec make_spec(std::string name, athena::SettingKind kind, std::string config_key,
                              std::vector<std::string> env_names, std::string default_value) {
    athena::SettingSpec spec;
    spec.name = std::move(name);
    spec.kind = kind;
    spec.config_key = std::move(config_key);
    spec.env_names = std::move(env_names);
    spec.default_value = std::move(default_value);
    return spec;
}

athena::Settings make_settings() {
    using athena::SettingKind;
    athena::Settings settings;
    settings.define(make_spec("cache-dir", SettingKind::string, "cache.dir", {"ATHENA_CACHE_DIR"},
                              "/var/cache/athena"));
    settings.define(make_spec("memory-cache", SettingKind::flag, "features.memory_cache",
                              {"FEATURE_ENABLEMEMORYCACHE"}, "true"));
    settings.define(make_spec("redis-cache", SettingKind::flag, "features.redis_cache",
                              {"ATHENA_REDIS_CACHE", "FEATURE_ENABLEREDISCACHE"}, "false"));
    settings.define(make_spec("max-file-size", SettingKind::size, "scan.max_file_size",
                              {"ATHENA_MAX_FILE_SIZE"}, "100M"));
    settings.define(
        make_spec("timeout", SettingKind::duration, "provider.timeout", {"ATHENA_TIMEOUT"}, "30s"));
    settings.define(make_spec("redis-db", SettingKind::integer, "redis.db", {"REDIS_DB"}, "0"));
    settings.define(make_spec("provider-priority", SettingKind::list, "features.provider_priority",
                              {"FEATURE_AIPROVIDERPRIORITY"}, "openai,claude"));
    athena::SettingSpec apm_provider =
        make_spec("apm-provider", SettingKind::choice, "apm.provider", {"APM_PROVIDER"}, "none");
    apm_provider.choices = {"none", "statsd", "prometheus"};
    settings.define(apm_provider);
    settings.define(
        make_spec("verbose", SettingKind::boolean, "output.verbose", {"ATHENA_VERBOSE"}, "false"));
    settings.define(
        make_spec("redis-password", SettingKind::string, "redis.password", {"REDIS_PASSWORD"}, ""));
    settings.define(
        make_spec("api-key", SettingKind::string, "provider.api_key", {"ATHENA_API_KEY"}, ""));
    settings.define(make_spec("circuit-breaker", SettingKind::flag, "features.circuit_breaker",
                              {"FEATURE_ENABLECIRCUITBREAKER"}, "true"));
    return settings;
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        lines.push_back(line);
    }
    return lines;
}

} // namespace

TEST_CASE("Settings: precedence of the four layers") {
    TempDir dir;
    const fs::path config = dir.write("config.toml", "# test config\n"
                                                     "[cache]\n"
                                                     "dir = \"/from/config\"\n"
                                                     "\n"
                                                     "[features]\n"
                                                     "memory_cache = false\n");
    const Env env{{"ATHENA_CACHE_DIR", "/from/env"}, {"FEATURE_ENABLEMEMORYCACHE", "on"}};
    athena::Settings settings = make_settings();

    SUBCASE("default") {
        CHECK(settings.text("cache-dir") == "/var/cache/athena");
        CHECK(settings.value("cache-dir").origin.source == athena::SettingSource::default_value);
        CHECK(settings.value("cache-dir").origin.description == "default");
        CHECK(settings.flag("memory-cache"));
    }
    SUBCASE("config file over default") {
        REQUIRE(settings.load_config_file(config, true).has_value());

        CHECK(settings.text("cache-dir") == "/from/config");
        CHECK(settings.value("cache-dir").origin.source == athena::SettingSource::config_file);
        CHECK(settings.value("cache-dir").origin.description == "config " + config.string() + ":3");
        CHECK_FALSE(settings.flag("memory-cache"));
        CHECK(settings.value("memory-cache").origin.description ==
              "config " + config.string() + ":6");
    }
    SUBCASE("environment over config file") {
        REQUIRE(settings.load_config_file(config, true).has_value());
        REQUIRE(settings.load_environment(&env).has_value());

        CHECK(settings.text("cache-dir") == "/from/env");
        CHECK(settings.value("cache-dir").origin.source == athena::SettingSource::environment);
        CHECK(settings.value("cache-dir").origin.description == "env ATHENA_CACHE_DIR");
        CHECK(settings.flag("memory-cache"));
        CHECK(settings.value("memory-cache").origin.description == "env FEATURE_ENABLEMEMORYCACHE");
    }
    SUBCASE("command line over environment") {
        REQUIRE(settings.load_config_file(config, true).has_value());
        REQUIRE(settings.load_environment(&env).has_value());
        REQUIRE(settings.set_from_command_line("cache-dir", "/from/cli").has_value());
        REQUIRE(settings.disable("memory-cache").has_value());

        CHECK(settings.text("cache-dir") == "/from/cli");
        CHECK(settings.value("cache-dir").origin.source == athena::SettingSource::command_line);
        CHECK(settings.value("cache-dir").origin.description == "command line");
        CHECK_FALSE(settings.flag("memory-cache"));
        CHECK(settings.value("memory-cache").origin.description == "command line");
    }
    SUBCASE("lower layers loaded later do not override") {
        REQUIRE(settings.set_from_command_line("cache-dir", "/from/cli").has_value());
        REQUIRE(settings.load_environment(&env).has_value());
        REQUIRE(settings.load_config_file(config, true).has_value());

        CHECK(settings.text("cache-dir") == "/from/cli");
        CHECK(settings.flag("memory-cache"));
        CHECK(settings.value("memory-cache").origin.source == athena::SettingSource::environment);
    }
    SUBCASE("last command line value wins") {
        REQUIRE(settings.enable("redis-cache").has_value());
        REQUIRE(settings.disable("redis-cache").has_value());

        CHECK_FALSE(settings.flag("redis-cache"));
    }
}

TEST_CASE("Settings: config file errors") {
    TempDir dir;
    athena::Settings settings = make_settings();

    SUBCASE("unknown key with a close spelling") {
        const fs::path config = dir.write("config.toml", "[cache]\n"
                                                         "dri = \"/x\"\n");

        const auto loaded = settings.load_config_file(config, true);

        REQUIRE_FALSE(loaded.has_value());
        CHECK(loaded.error().kind == "usage");
        CHECK(contains(loaded.error().message, config.string() + ":2"));
        CHECK(contains(loaded.error().message, "cache.dri"));
        CHECK(contains(loaded.error().message, "did you mean cache.dir?"));
    }
    SUBCASE("a file with an error applies none of its values") {
        const fs::path config = dir.write("config.toml", "[features]\n"
                                                         "redis_cache = true\n"
                                                         "memory_cahce = false\n");

        const auto loaded = settings.load_config_file(config, true);

        REQUIRE_FALSE(loaded.has_value());
        CHECK(contains(loaded.error().message, config.string() + ":3"));
        CHECK_FALSE(settings.flag("redis-cache"));
        CHECK(settings.value("redis-cache").origin.source == athena::SettingSource::default_value);
    }
    SUBCASE("unknown key with no close spelling lists the keys of its table") {
        const fs::path config = dir.write("config.toml", "[features]\n"
                                                         "quantum_mode = true\n");

        const auto loaded = settings.load_config_file(config, true);

        REQUIRE_FALSE(loaded.has_value());
        CHECK(contains(loaded.error().message, "features.quantum_mode"));
        CHECK_FALSE(contains(loaded.error().message, "did you mean"));
        CHECK(contains(loaded.error().message, "features.memory_cache"));
    }
    SUBCASE("TOML syntax error names file, line and column") {
        const fs::path config = dir.write("config.toml", "[cache]\n"
                                                         "dir = \"unterminated\n");

        const auto loaded = settings.load_config_file(config, true);

        REQUIRE_FALSE(loaded.has_value());
        CHECK(loaded.error().kind == "usage");
        CHECK(contains(loaded.error().message, config.string() + ":2:"));
        CHECK(contains(loaded.error().message, "invalid TOML"));
    }
    SUBCASE("string where a boolean belongs") {
        const fs::path config = dir.write("config.toml", "[features]\n"
                                                         "memory_cache = \"yes\"\n");

        const auto loaded = settings.load_config_file(config, true);

        REQUIRE_FALSE(loaded.has_value());
        CHECK(contains(loaded.error().message, config.string() + ":2"));
        CHECK(contains(loaded.error().message, "features.memory_cache"));
        CHECK(contains(loaded.error().message, "expected a boolean"));
        CHECK(contains(loaded.error().message, "got a string"));
    }
    SUBCASE("malformed size") {
        const fs::path config = dir.write("config.toml", "[scan]\n"
                                                         "max_file_size = \"10X\"\n");

        const auto loaded = settings.load_config_file(config, true);

        REQUIRE_FALSE(loaded.has_value());
        CHECK(contains(loaded.error().message, config.string() + ":2"));
        CHECK(contains(loaded.error().message, "invalid size \"10X\""));
    }
    SUBCASE("negative integer for a duration") {
        const fs::path config = dir.write("config.toml", "[provider]\n"
                                                         "timeout = -5\n");

        const auto loaded = settings.load_config_file(config, true);

        REQUIRE_FALSE(loaded.has_value());
        CHECK(contains(loaded.error().message, "negative"));
    }
    SUBCASE("table where a value belongs") {
        const fs::path config = dir.write("config.toml", "[cache.dir]\n"
                                                         "path = \"/x\"\n");

        const auto loaded = settings.load_config_file(config, true);

        REQUIRE_FALSE(loaded.has_value());
        CHECK(contains(loaded.error().message, "expected a string, got a table"));
    }
    SUBCASE("missing file") {
        const fs::path config = dir.path() / "absent.toml";

        const auto required = settings.load_config_file(config, true);
        const auto optional = settings.load_config_file(config, false);

        REQUIRE_FALSE(required.has_value());
        CHECK(contains(required.error().message, config.string()));
        CHECK(optional.has_value());
        CHECK(settings.value("cache-dir").origin.source == athena::SettingSource::default_value);
    }
}

TEST_CASE("Settings: sizes and durations from TOML") {
    TempDir dir;
    athena::Settings settings = make_settings();

    SUBCASE("strings with units") {
        const fs::path config = dir.write("config.toml", "scan.max_file_size = \"10M\"\n"
                                                         "provider.timeout = \"1.5s\"\n");

        REQUIRE(settings.load_config_file(config, true).has_value());

        CHECK(settings.size_bytes("max-file-size") == 10ULL * 1024 * 1024);
        CHECK(settings.duration_ms("timeout") == 1500);
    }
    SUBCASE("integers are bytes and milliseconds") {
        const fs::path config = dir.write("config.toml", "[scan]\n"
                                                         "max_file_size = 4096\n"
                                                         "[provider]\n"
                                                         "timeout = 250\n");

        REQUIRE(settings.load_config_file(config, true).has_value());

        CHECK(settings.size_bytes("max-file-size") == 4096);
        CHECK(settings.duration_ms("timeout") == 250);
    }
    SUBCASE("defaults are normalised") {
        CHECK(settings.size_bytes("max-file-size") == 100ULL * 1024 * 1024);
        CHECK(settings.duration_ms("timeout") == 30'000);
        CHECK(settings.integer("redis-db") == 0);
        CHECK(settings.text("timeout") == "30000");
    }
}

TEST_CASE("Settings: environment booleans") {
    SUBCASE("accepted spellings") {
        const std::vector<std::pair<std::string, bool>> spellings{
            {"true", true},   {"TRUE", true},   {"1", true},  {"yes", true}, {"On", true},
            {"false", false}, {"False", false}, {"0", false}, {"NO", false}, {"off", false},
        };
        for (const auto& [text, expected] : spellings) {
            CAPTURE(text);
            athena::Settings settings = make_settings();
            const Env env{{"FEATURE_ENABLEREDISCACHE", text}, {"ATHENA_VERBOSE", text}};

            REQUIRE(settings.load_environment(&env).has_value());

            CHECK(settings.flag("redis-cache") == expected);
            CHECK(settings.flag("verbose") == expected);
            CHECK(settings.text("redis-cache") == (expected ? "true" : "false"));
        }
    }
    SUBCASE("bad spelling names the variable and the accepted values") {
        athena::Settings settings = make_settings();
        const Env env{{"FEATURE_ENABLEREDISCACHE", "maybe"}};

        const auto loaded = settings.load_environment(&env);

        REQUIRE_FALSE(loaded.has_value());
        CHECK(loaded.error().kind == "usage");
        CHECK(contains(loaded.error().message, "FEATURE_ENABLEREDISCACHE"));
        CHECK(contains(loaded.error().message, "\"maybe\""));
        CHECK(contains(loaded.error().message, "true, false, 1, 0, yes, no, on, off"));
    }
    SUBCASE("empty variable is ignored") {
        athena::Settings settings = make_settings();
        const Env env{{"FEATURE_ENABLEMEMORYCACHE", ""}, {"ATHENA_CACHE_DIR", ""}};

        REQUIRE(settings.load_environment(&env).has_value());

        CHECK(settings.flag("memory-cache"));
        CHECK(settings.text("cache-dir") == "/var/cache/athena");
        CHECK(settings.value("cache-dir").origin.source == athena::SettingSource::default_value);
    }
    SUBCASE("first set variable wins") {
        athena::Settings settings = make_settings();
        const Env env{{"ATHENA_REDIS_CACHE", ""}, {"FEATURE_ENABLEREDISCACHE", "yes"}};

        REQUIRE(settings.load_environment(&env).has_value());

        CHECK(settings.flag("redis-cache"));
        CHECK(settings.value("redis-cache").origin.description == "env FEATURE_ENABLEREDISCACHE");
    }
}

TEST_CASE("Settings: enable and disable") {
    athena::Settings settings = make_settings();

    SUBCASE("known flag") {
        REQUIRE(settings.enable("redis-cache").has_value());
        CHECK(settings.flag("redis-cache"));
        REQUIRE(settings.disable("circuit-breaker").has_value());
        CHECK_FALSE(settings.flag("circuit-breaker"));
    }
    SUBCASE("unknown name lists every flag and suggests the closest") {
        const auto enabled = settings.enable("memory-cahce");

        REQUIRE_FALSE(enabled.has_value());
        CHECK(enabled.error().kind == "usage");
        CHECK(contains(enabled.error().message, "memory-cahce"));
        CHECK(contains(enabled.error().message, "did you mean memory-cache?"));
        CHECK(contains(enabled.error().message, "memory-cache, redis-cache, circuit-breaker"));
    }
    SUBCASE("unknown name without a close spelling") {
        const auto disabled = settings.disable("warp-drive");

        REQUIRE_FALSE(disabled.has_value());
        CHECK_FALSE(contains(disabled.error().message, "did you mean"));
        CHECK(contains(disabled.error().message, "memory-cache, redis-cache, circuit-breaker"));
    }
    SUBCASE("a setting that is not a flag") {
        const auto enabled = settings.enable("verbose");

        REQUIRE_FALSE(enabled.has_value());
        CHECK(contains(enabled.error().message, "verbose is not a feature flag"));
        CHECK_FALSE(settings.flag("verbose"));
    }
}

TEST_CASE("Settings: command line values") {
    athena::Settings settings = make_settings();

    SUBCASE("parsed by kind") {
        REQUIRE(settings.set_from_command_line("max-file-size", "4KiB").has_value());
        REQUIRE(settings.set_from_command_line("timeout", "2m").has_value());
        REQUIRE(settings.set_from_command_line("redis-db", "-3").has_value());
        REQUIRE(settings.set_from_command_line("provider-priority", "claude, builtin").has_value());

        CHECK(settings.size_bytes("max-file-size") == 4096);
        CHECK(settings.duration_ms("timeout") == 120'000);
        CHECK(settings.integer("redis-db") == -3);
        CHECK(settings.list("provider-priority") == std::vector<std::string>{"claude", "builtin"});
    }
    SUBCASE("malformed value") {
        const auto set = settings.set_from_command_line("redis-db", "12a");

        REQUIRE_FALSE(set.has_value());
        CHECK(contains(set.error().message, "redis-db"));
        CHECK(contains(set.error().message, "invalid integer \"12a\""));
        CHECK(settings.integer("redis-db") == 0);
    }
    SUBCASE("unknown setting lists the settings") {
        const auto set = settings.set_from_command_line("cache-dri", "/x");

        REQUIRE_FALSE(set.has_value());
        CHECK(contains(set.error().message, "did you mean cache-dir?"));
        CHECK(contains(set.error().message, "max-file-size"));
    }
    SUBCASE("list items") {
        REQUIRE(settings.set_list_from_command_line("provider-priority", {" gemini ", "", "openai"})
                    .has_value());

        CHECK(settings.list("provider-priority") == std::vector<std::string>{"gemini", "openai"});
        CHECK(settings.text("provider-priority") == "gemini,openai");
    }
    SUBCASE("list call on a non-list") {
        const auto set = settings.set_list_from_command_line("cache-dir", {"a"});

        REQUIRE_FALSE(set.has_value());
        CHECK(contains(set.error().message, "not a list"));
    }
}

TEST_CASE("Settings: choice validation") {
    TempDir dir;
    athena::Settings settings = make_settings();

    SUBCASE("valid choice, in any case") {
        const Env env{{"APM_PROVIDER", "Prometheus"}};

        REQUIRE(settings.load_environment(&env).has_value());

        CHECK(settings.text("apm-provider") == "prometheus");
    }
    SUBCASE("invalid choice from the environment lists the choices") {
        const Env env{{"APM_PROVIDER", "graphite"}, {"ATHENA_CACHE_DIR", "/from/env"}};

        const auto loaded = settings.load_environment(&env);

        REQUIRE_FALSE(loaded.has_value());
        CHECK(contains(loaded.error().message, "APM_PROVIDER"));
        CHECK(contains(loaded.error().message, "none, statsd, prometheus"));
        CHECK(settings.text("apm-provider") == "none");
        // A failed load applies none of its values, not even the valid ones.
        CHECK(settings.text("cache-dir") == "/var/cache/athena");
    }
    SUBCASE("invalid choice from the config file") {
        const fs::path config = dir.write("config.toml", "[apm]\nprovider = \"graphite\"\n");

        const auto loaded = settings.load_config_file(config, true);

        REQUIRE_FALSE(loaded.has_value());
        CHECK(contains(loaded.error().message, config.string() + ":2"));
        CHECK(contains(loaded.error().message, "none, statsd, prometheus"));
    }
}

TEST_CASE("Settings: lists from environment and TOML") {
    TempDir dir;
    athena::Settings settings = make_settings();

    SUBCASE("default") {
        CHECK(settings.list("provider-priority") == std::vector<std::string>{"openai", "claude"});
    }
    SUBCASE("environment is comma-separated, trimmed, empty items dropped") {
        const Env env{{"FEATURE_AIPROVIDERPRIORITY", " claude , ,openai,"}};

        REQUIRE(settings.load_environment(&env).has_value());

        CHECK(settings.list("provider-priority") == std::vector<std::string>{"claude", "openai"});
        CHECK(settings.text("provider-priority") == "claude,openai");
    }
    SUBCASE("TOML array of strings") {
        const fs::path config =
            dir.write("config.toml", "[features]\nprovider_priority = [\"gemini\", \"builtin\"]\n");

        REQUIRE(settings.load_config_file(config, true).has_value());

        CHECK(settings.list("provider-priority") == std::vector<std::string>{"gemini", "builtin"});
    }
    SUBCASE("TOML array with a non-string item") {
        const fs::path config =
            dir.write("config.toml", "[features]\nprovider_priority = [\"gemini\", 3]\n");

        const auto loaded = settings.load_config_file(config, true);

        REQUIRE_FALSE(loaded.has_value());
        CHECK(contains(loaded.error().message, "item 2 is an integer"));
    }
    SUBCASE("TOML string where an array belongs") {
        const fs::path config =
            dir.write("config.toml", "[features]\nprovider_priority = \"gemini\"\n");

        const auto loaded = settings.load_config_file(config, true);

        REQUIRE_FALSE(loaded.has_value());
        CHECK(contains(loaded.error().message, "expected an array of strings"));
    }
}

TEST_CASE("Settings: secrets are masked") {
    athena::Settings settings = make_settings();
    athena::SettingSpec webhook_url =
        make_spec("webhook-url", athena::SettingKind::string, "", {}, "https://hooks.example/abc");
    webhook_url.is_secret = true;
    settings.define(webhook_url);
    settings.define(make_spec("keyboard-layout", athena::SettingKind::string, "", {}, "us"));
    const Env env{{"REDIS_PASSWORD", "hunter2"}};
    REQUIRE(settings.load_environment(&env).has_value());

    SUBCASE("secret names are detected") {
        CHECK(settings.spec("redis-password").is_secret);
        CHECK(settings.spec("api-key").is_secret);
        CHECK(settings.spec("webhook-url").is_secret);
        CHECK_FALSE(settings.spec("keyboard-layout").is_secret);
        CHECK_FALSE(settings.spec("cache-dir").is_secret);
    }
    SUBCASE("text output") {
        const std::string text = settings.format_text();

        CHECK_FALSE(contains(text, "hunter2"));
        CHECK_FALSE(contains(text, "hooks.example"));
        bool is_password_line_found = false;
        for (const std::string& line : lines_of(text)) {
            if (line.starts_with("redis-password ")) {
                is_password_line_found = true;
                CHECK(contains(line, "********"));
                CHECK(contains(line, "env REDIS_PASSWORD"));
            }
            if (line.starts_with("api-key ")) {
                CHECK(contains(line, " - "));
            }
            if (line.starts_with("keyboard-layout ")) {
                CHECK(contains(line, " us "));
            }
        }
        CHECK(is_password_line_found);
    }
    SUBCASE("JSON output") {
        const nlohmann::json settings_json = nlohmann::json::parse(settings.format_json());

        CHECK_FALSE(contains(settings_json.dump(), "hunter2"));
        CHECK_FALSE(contains(settings_json.dump(), "hooks.example"));
        for (const nlohmann::json& entry : settings_json) {
            if (entry["name"] == "redis-password") {
                CHECK(entry["value"] == "********");
            }
            if (entry["name"] == "api-key") {
                CHECK(entry["value"].is_null());
            }
        }
    }
    SUBCASE("error messages do not repeat the value") {
        settings.define(
            make_spec("api-token", athena::SettingKind::integer, "", {"ATHENA_API_TOKEN"}, ""));
        const Env bad_env{{"ATHENA_API_TOKEN", "s3cr3t"}};

        const auto loaded = settings.load_environment(&bad_env);

        REQUIRE_FALSE(loaded.has_value());
        CHECK(contains(loaded.error().message, "ATHENA_API_TOKEN"));
        CHECK_FALSE(contains(loaded.error().message, "s3cr3t"));
    }
}

TEST_CASE("Settings: a key prefix is not a secret") {
    athena::Settings settings;
    settings.define(make_spec("redis-key-prefix", athena::SettingKind::string, "redis.key_prefix",
                              {"REDIS_KEY_PREFIX"}, "athena:"));
    settings.define(make_spec("api-key", athena::SettingKind::string, "", {}, ""));
    settings.define(make_spec("openai-key", athena::SettingKind::string, "", {}, ""));
    settings.define(make_spec("key", athena::SettingKind::string, "", {}, ""));
    const Env env{{"REDIS_KEY_PREFIX", "ci:"}};
    REQUIRE(settings.load_environment(&env).has_value());

    SUBCASE("key-prefix is shown") {
        CHECK_FALSE(settings.spec("redis-key-prefix").is_secret);
        bool is_prefix_line_found = false;
        for (const std::string& line : lines_of(settings.format_text())) {
            if (line.starts_with("redis-key-prefix ")) {
                is_prefix_line_found = true;
                CHECK(contains(line, " ci: "));
            }
        }
        CHECK(is_prefix_line_found);
    }
    SUBCASE("other key names stay secret") {
        CHECK(settings.spec("api-key").is_secret);
        CHECK(settings.spec("openai-key").is_secret);
        CHECK(settings.spec("key").is_secret);
    }
}

TEST_CASE("Settings: a token count is not a secret") {
    athena::Settings settings;
    settings.define(make_spec("max-input-tokens", athena::SettingKind::integer, "", {}, "4000"));
    settings.define(make_spec("auth-token", athena::SettingKind::string, "", {}, ""));

    CHECK_FALSE(settings.spec("max-input-tokens").is_secret);
    CHECK(settings.spec("auth-token").is_secret);
}

TEST_CASE("Settings: text output") {
    athena::Settings settings = make_settings();
    REQUIRE(settings.set_from_command_line("max-file-size", "1K").has_value());

    const std::vector<std::string> lines = lines_of(settings.format_text());

    SUBCASE("one line per setting, flags first in definition order") {
        REQUIRE(lines.size() == settings.specs().size());
        CHECK(lines[0].starts_with("memory-cache "));
        CHECK(lines[1].starts_with("redis-cache "));
        CHECK(lines[2].starts_with("circuit-breaker "));
        CHECK(lines[3].starts_with("cache-dir "));
    }
    SUBCASE("columns are aligned") {
        const std::size_t origin_column = lines[0].rfind("default");
        for (const std::string& line : lines) {
            CAPTURE(line);
            const bool is_command_line = line.starts_with("max-file-size ");
            const std::string origin = is_command_line ? "command line" : "default";
            CHECK(line.rfind(origin) == origin_column);
        }
    }
    SUBCASE("values are normalised, lists joined, unset shown as a dash") {
        for (const std::string& line : lines) {
            if (line.starts_with("max-file-size ")) {
                CHECK(contains(line, " 1024 "));
            }
            if (line.starts_with("provider-priority ")) {
                CHECK(contains(line, " openai,claude "));
            }
            if (line.starts_with("redis-password ")) {
                CHECK(contains(line, " - "));
            }
        }
    }
}

TEST_CASE("Settings: JSON output") {
    TempDir dir;
    athena::Settings settings = make_settings();
    const fs::path config = dir.write("config.toml", "[cache]\ndir = \"/c\"\n");
    const Env env{{"ATHENA_TIMEOUT", "5s"}};
    REQUIRE(settings.load_config_file(config, true).has_value());
    REQUIRE(settings.load_environment(&env).has_value());
    REQUIRE(settings.enable("redis-cache").has_value());

    const nlohmann::json parsed = nlohmann::json::parse(settings.format_json());
    std::map<std::string, nlohmann::json> by_name;
    for (const nlohmann::json& entry : parsed) {
        by_name[entry.at("name").get<std::string>()] = entry;
    }

    SUBCASE("an array of objects with every field") {
        REQUIRE(parsed.is_array());
        CHECK(parsed.size() == settings.specs().size());
        for (const nlohmann::json& entry : parsed) {
            CAPTURE(entry.dump());
            CHECK(entry.contains("name"));
            CHECK(entry.contains("kind"));
            CHECK(entry.contains("value"));
            CHECK(entry.contains("source"));
            CHECK(entry.contains("origin"));
        }
        CHECK(parsed[0]["name"] == "memory-cache");
    }
    SUBCASE("where each setting can be set") {
        CHECK(by_name["cache-dir"]["config_key"] == "cache.dir");
        CHECK(by_name["timeout"]["env"] == nlohmann::json{"ATHENA_TIMEOUT"});
        CHECK(by_name["memory-cache"]["default"] == "true");
        CHECK(by_name["redis-password"]["default"].is_null());
        CHECK(by_name["memory-cache"]["description"].is_string());
    }
    SUBCASE("value types follow the kind") {
        CHECK(by_name["memory-cache"]["value"] == true);
        CHECK(by_name["verbose"]["value"] == false);
        CHECK(by_name["max-file-size"]["value"] == 100ULL * 1024 * 1024);
        CHECK(by_name["timeout"]["value"] == 5000);
        CHECK(by_name["redis-db"]["value"] == 0);
        CHECK(by_name["provider-priority"]["value"] == nlohmann::json{"openai", "claude"});
        CHECK(by_name["apm-provider"]["value"] == "none");
        CHECK(by_name["redis-password"]["value"].is_null());
        CHECK(by_name["max-file-size"]["kind"] == "size");
    }
    SUBCASE("source and origin") {
        CHECK(by_name["memory-cache"]["source"] == "default");
        CHECK(by_name["cache-dir"]["source"] == "config");
        CHECK(by_name["cache-dir"]["origin"] == "config " + config.string() + ":2");
        CHECK(by_name["timeout"]["source"] == "env");
        CHECK(by_name["timeout"]["origin"] == "env ATHENA_TIMEOUT");
        CHECK(by_name["redis-cache"]["source"] == "command_line");
        CHECK(by_name["redis-cache"]["origin"] == "command line");
    }
}
