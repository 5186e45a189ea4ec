// What the command line parsed, and the subcommands that act on it.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <utility>
#include <vector>

namespace athena::cli {

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
    std::vector<std::pair<CLI::Option*, std::string>> setting_options;
    void add(CLI::Option* option, std::string setting_name) {
        setting_options.emplace_back(option, std::move(setting_name));
    }
};

// Runs the parsed subcommand and returns the exit status. Startup errors (bad settings, an
// unusable cache) are printed as "athena: error: ..." and give 2.
int run_command(const CommandLine& line);

} // namespace athena::cli
