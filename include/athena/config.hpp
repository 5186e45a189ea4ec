// Layered settings and feature flags. Every setting has one name and can come from, in
// rising precedence: its default, the config file (TOML), the environment, the command line.
// `athena flags` prints each value with the place it came from.
#pragma once

#include <athena/error.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace athena {

enum class SettingSource { default_value, config_file, environment, command_line };

struct SettingOrigin {
    SettingSource source = SettingSource::default_value;
    // "default", "config /home/a/.config/athena/config.toml:12", "env FEATURE_X",
    // "command line"
    std::string description;
};

enum class SettingKind {
    flag,     // a feature flag: true/false, toggled with --enable NAME / --disable NAME
    boolean,  // true/false
    string,
    integer,  // signed 64-bit
    size,     // bytes; accepts 1234, 10K, 10M, 1G, 1T (powers of 1024), also KiB/MiB/GiB/TiB
    duration, // milliseconds; accepts 250ms, 5s, 2m, 1h, or a bare number of milliseconds
    list,     // strings; env value is comma-separated, TOML value is an array of strings
    choice,   // one of `choices`
};

struct SettingSpec {
    std::string name;                   // e.g. "cache-dir", "memory-cache"
    SettingKind kind = SettingKind::string;
    std::string config_key;             // dotted TOML key, e.g. "cache.dir", "features.memory_cache"
    std::vector<std::string> env_names; // first match wins, e.g. {"FEATURE_ENABLEMEMORYCACHE"}
    std::string default_value;          // textual default, "" = unset
    std::vector<std::string> choices;   // for SettingKind::choice
    std::string description;            // one line for `athena flags` and help
    // Masks the value as "********" in format_text(), format_json() and error messages.
    // define() also sets it for names containing "password", "secret" or "token", or "key" or
    // "apikey" as a word part ("api-key"), so a spec can mark itself secret but a
    // secret-looking name cannot opt out.
    bool is_secret = false;
};

struct SettingValue {
    std::string text;                // normalised text: "true", "10485760", "a,b"
    std::vector<std::string> items;  // for lists
    bool is_set = false;             // false when no layer gave a value and default is ""
    SettingOrigin origin;
};

// Not thread-safe while loading; read-only (and so safe to share) once the run starts.
// A layer replaces a value only when it ranks at least as high as the layer that set it, so
// the loaders may run in any order. Within one layer the last value wins. A loader that
// returns an error has changed no value.
class Settings {
public:
    // Registers a setting. Registering the same name twice replaces the spec and resets the
    // value to the default. A default that does not parse for its kind is kept as raw text.
    void define(SettingSpec spec);

    // The config file: --config FILE (required = true: a missing file is an error), else
    // $XDG_CONFIG_HOME/athena/config.toml or ~/.config/athena/config.toml (absent is fine).
    // An empty path means default_config_path(). Sizes and durations may be TOML integers
    // (bytes, milliseconds) or strings ("10M", "5s"). An unreadable file is an error of kind
    // "io".
    // Unknown keys, wrong types and malformed values are errors of kind "usage" whose
    // message names file, line and key and lists the valid choices where there are some.
    Result<void> load_config_file(const std::filesystem::path& path, bool required);

    // Reads each setting's env_names from the process environment (or from `env` when
    // given, for tests). Malformed values are errors of kind "usage" naming the variable.
    // Variables that are set but empty are skipped. Booleans accept true/false, 1/0, yes/no
    // and on/off in any case. Lists are comma-separated and trimmed, with empty items dropped.
    Result<void> load_environment(const std::map<std::string, std::string>* env = nullptr);

    // Applies a value given on the command line, parsed by kind as in the environment.
    // Errors: kind "usage" (malformed value, unknown name, a list call on a non-list).
    Result<void> set_from_command_line(const std::string& name, const std::string& value);
    Result<void> set_list_from_command_line(const std::string& name,
                                            const std::vector<std::string>& items);

    // --enable NAME / --disable NAME, for SettingKind::flag only. An unknown flag name is an
    // error of kind "usage" listing every valid flag name and suggesting the closest.
    Result<void> enable(const std::string& flag_name);
    Result<void> disable(const std::string& flag_name);

    const SettingValue& value(const std::string& name) const; // throws std::out_of_range
    const SettingSpec& spec(const std::string& name) const;   // throws std::out_of_range
    bool flag(const std::string& name) const;     // for flags and booleans
    std::string text(const std::string& name) const;
    std::optional<std::int64_t> integer(const std::string& name) const; // empty when unset
    std::optional<std::uint64_t> size_bytes(const std::string& name) const;
    std::optional<std::int64_t> duration_ms(const std::string& name) const;
    std::vector<std::string> list(const std::string& name) const;

    // All specs in definition order.
    std::vector<const SettingSpec*> specs() const;

    // `athena flags` output: one aligned line per setting (name, value, origin), feature flags
    // first; and the same as a JSON array of {name, kind, value, source, origin}. An unset
    // value prints as "-" (JSON null); a secret that is set prints as "********".
    std::string format_text() const;
    std::string format_json() const;

private:
    struct Entry {
        SettingSpec spec;
        SettingValue value;
    };
    std::vector<Entry> m_entries;
    std::map<std::string, std::size_t> m_index;
};

// Parses "10M", "1G", "512", "4KiB" into bytes. Every unit is a power of 1024; B, K, M, G,
// T, KB..TB and KiB..TiB match in any case. A decimal ("1.5G") is rounded down to whole
// bytes. Errors: kind "usage" (empty, negative, unknown unit, over 2^64 - 1 bytes).
Result<std::uint64_t> parse_size(const std::string& text);
// Parses "250ms", "5s", "1.5s", "2m", "1h", "1500" (ms) into milliseconds, rounded down.
// Errors: kind "usage" (empty, negative, unknown unit, over 2^63 - 1 ms).
Result<std::int64_t> parse_duration_ms(const std::string& text);

// The default config file path ($XDG_CONFIG_HOME/athena/config.toml, else
// ~/.config/athena/config.toml); empty when neither variable is set. A relative
// XDG_CONFIG_HOME is ignored, because the XDG Base Directory Specification 0.8 calls
// relative paths invalid.
std::filesystem::path default_config_path();
// The same, reading the variables from `env` instead of the process environment.
std::filesystem::path default_config_path(const std::map<std::string, std::string>& env);

} // namespace athena
