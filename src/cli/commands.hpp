// The parsed command line, and the subcommands that act on it.
#pragma once

#include <athena/config.hpp>

#include <CLI/CLI.hpp>

#include <deque>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace athena::cli {

// A command-line option that sets a setting when given. A flag option (no argument) sets
// `flag_value`.
struct SettingOption {
    CLI::Option* option = nullptr;
    std::string setting;
    std::string flag_value = "true";
};

struct CommandLine {
    std::string command; // "scan", "hash", "cache stats", ...
    std::string config_path;
    std::vector<std::string> enable;
    std::vector<std::string> disable;
    std::vector<std::string> paths;
    std::string cache_dir;
    std::vector<std::string> excludes;
    std::string max_file_size;
    bool one_file_system = false;
    bool follow_symlinks = false;
    std::string jobs;
    std::string sort;
    bool quiet = false;
    bool json = false;
    std::string fail_on;
    std::vector<std::string> rules;
    std::string color;
    bool only_findings = false;
    std::string older_than;
    std::string sha256;

    // Options that map onto a setting: applied as the command-line layer when given.
    std::vector<SettingOption> setting_options;
    void add(CLI::Option* option, std::string setting_name) {
        setting_options.push_back(SettingOption{option, std::move(setting_name)});
    }

    // Declares an option whose value goes straight to a setting, with storage kept here, so
    // a module can add options without a field in this struct. Returns the option for
    // further configuration (type_name, check).
    CLI::Option* add_setting_option(CLI::App& command, const std::string& names,
                                    const std::string& setting, const std::string& description);
    CLI::Option* add_setting_list_option(CLI::App& command, const std::string& names,
                                         const std::string& setting,
                                         const std::string& description);
    // A flag without argument that sets `setting` to `value` (e.g. --no-failover sets
    // ai-failover to "false").
    CLI::Option* add_setting_flag(CLI::App& command, const std::string& names,
                                  const std::string& setting, const std::string& value,
                                  const std::string& description);

    // Set by a subcommand that a module declares; run with the layered settings.
    std::function<int(const CommandLine&, const Settings&)> action;

private:
    std::deque<std::string> m_values;
    std::deque<std::vector<std::string>> m_lists;
    std::deque<bool> m_flags;
};

// Adds the options every subcommand takes: --config, --enable and --disable.
void add_setting_options(CLI::App& command, CommandLine& line);

// The cache folder: the cache-dir setting (--cache-dir, ATHENA_CACHE_DIR, cache.dir), else
// $XDG_CACHE_HOME/athena, else ~/.cache/athena.
std::filesystem::path cache_folder(const Settings& settings);

// Runs the parsed subcommand and returns the exit status. Startup errors (bad settings, an
// unusable cache) are printed as "athena: error: ..." and give 2.
int run_command(const CommandLine& line);

} // namespace athena::cli
