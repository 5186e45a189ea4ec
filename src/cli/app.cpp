#include "cli/app.hpp"

#include "cli/commands.hpp"
#include "cli/completion.hpp"
#include "cli/extensions.hpp"
#include "cli/registry.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <exception>

namespace athena::cli {
namespace {

constexpr const char* k_footer =
    "Settings come from, in rising precedence: defaults, the config file "
    "($XDG_CONFIG_HOME/athena/config.toml or --config FILE), the environment, the command "
    "line. 'athena flags' shows each value and where it came from.\n"
    "Exit status: 0 nothing at or above --fail-on, 1 at least one such file, 2 usage error "
    "or files that could not be done, 130 interrupted.";

// Options of commands that walk files (scan, hash).
void add_walk_options(CLI::App& command, CommandLine& line) {
    command.add_option("paths", line.paths, "files and folders to scan")
        ->required()
        ->type_name("PATH");
    line.add(command.add_option("--cache-dir", line.cache_dir,
                                "cache folder (default: $ATHENA_CACHE_DIR, else "
                                "$XDG_CACHE_HOME/athena, else ~/.cache/athena)")
                 ->type_name("DIR"),
             "cache-dir");
    line.add(command.add_option("--exclude", line.excludes,
                                "skip paths matching this glob; a glob with '/' matches the "
                                "whole path (repeatable)")
                 ->type_name("GLOB"),
             "exclude");
    line.add(command.add_option("--max-file-size", line.max_file_size,
                                "skip files larger than SIZE (e.g. 10M, 1G; default: no limit)")
                 ->type_name("SIZE"),
             "max-file-size");
    line.add(command.add_flag("-x,--one-file-system", line.one_file_system,
                              "do not descend into folders on other file systems"),
             "one-file-system");
    line.add(command.add_flag("-L,--follow-symlinks", line.follow_symlinks,
                              "follow symbolic links (loops are detected; default: skip them)"),
             "follow-symlinks");
    line.add(command.add_option("-j,--jobs", line.jobs,
                                "worker threads (default: 4 per core, at least 16)")
                 ->type_name("N"),
             "jobs");
    command.add_option("--sort", line.sort, "print records in this order: path (default: as "
                                            "files finish)")
        ->type_name("ORDER")
        ->check(CLI::IsMember({"path"}));
    command.add_flag("-q,--quiet", line.quiet, "do not print the run report on stderr");
}

void add_scan_command(CLI::App& app, CommandLine& line) {
    CLI::App* scan = app.add_subcommand("scan", "hash files, look them up and analyse the "
                                                "ones the cache has not seen");
    add_setting_options(*scan, line);
    add_walk_options(*scan, line);
    scan->add_flag("--json", line.json, "print NDJSON: one object per file, then a summary");
    line.add(scan->add_option("--fail-on", line.fail_on,
                              "exit 1 when a file is at or above LEVEL: benign, suspicious, "
                              "malicious, critical (default: malicious)")
                 ->type_name("LEVEL"),
             "fail-on");
    line.add(scan->add_option("--rules", line.rules,
                              "also use the YARA rules in this file or folder (repeatable)")
                 ->type_name("PATH"),
             "rules");
    line.add(scan->add_option("--color", line.color,
                              "colour the level column: auto, always, never (default: auto; "
                              "NO_COLOR turns it off)")
                 ->type_name("WHEN"),
             "color");
    scan->add_flag("--only-findings", line.only_findings,
                   "text output: print only files that are not benign");
    line.add_setting_option(*scan, "--shard", "shard",
                            "scan only files whose SHA-256 falls in shard K of N, so N jobs "
                            "can split one tree")
        ->type_name("K/N");
    add_provider_options(*scan, line);
    add_resilience_options(*scan, line);
    add_redis_options(*scan, line);
    scan->callback([&line] { line.command = "scan"; });
}

void add_hash_command(CLI::App& app, CommandLine& line) {
    CLI::App* hash = app.add_subcommand("hash", "print SHA-256 lines that 'sha256sum -c' "
                                                "accepts, using the stat cache");
    add_setting_options(*hash, line);
    add_walk_options(*hash, line);
    hash->callback([&line] { line.command = "hash"; });
}

void add_cache_command(CLI::App& app, CommandLine& line) {
    CLI::App* cache = app.add_subcommand("cache", "inspect and maintain the cache");
    cache->require_subcommand(1);
    const auto add_dir = [&](CLI::App& sub) {
        add_setting_options(sub, line);
        line.add(sub.add_option("--cache-dir", line.cache_dir, "cache folder")->type_name("DIR"),
                 "cache-dir");
    };
    CLI::App* stats = cache->add_subcommand("stats", "entries, size and schema of the cache");
    add_dir(*stats);
    stats->add_flag("--json", line.json, "print JSON");
    stats->callback([&line] { line.command = "cache stats"; });
    CLI::App* clear = cache->add_subcommand("clear", "delete every verdict and stat entry");
    add_dir(*clear);
    clear->callback([&line] { line.command = "cache clear"; });
    CLI::App* prune = cache->add_subcommand("prune", "delete verdicts older than a duration");
    add_dir(*prune);
    prune->add_option("--older-than", line.older_than, "age, e.g. 30d, 12h, 90m")
        ->required()
        ->type_name("AGE");
    prune->callback([&line] { line.command = "cache prune"; });
    CLI::App* get = cache->add_subcommand("get", "print the stored verdicts for a SHA-256");
    add_dir(*get);
    get->add_option("sha256", line.sha256, "64 hex digits")->required();
    get->callback([&line] { line.command = "cache get"; });
    add_redis_cache_commands(*cache, line);
}

void add_flags_command(CLI::App& app, CommandLine& line) {
    CLI::App* flags = app.add_subcommand("flags", "print every setting and feature flag, its "
                                                  "value and where it came from");
    add_setting_options(*flags, line);
    flags->add_flag("--json", line.json, "print JSON");
    flags->callback([&line] { line.command = "flags"; });
}

} // namespace

void add_setting_options(CLI::App& command, CommandLine& line) {
    command.add_option("--config", line.config_path, "read settings from this TOML file")
        ->type_name("FILE");
    command.add_option("--enable", line.enable, "turn a feature flag on (repeatable)")
        ->type_name("NAME");
    command.add_option("--disable", line.disable, "turn a feature flag off (repeatable)")
        ->type_name("NAME");
}

int run(int argc, char** argv) {
    CLI::App app{"athena: triage files for malware with cached, resilient analysis"};
    app.footer(k_footer);
    app.set_version_flag("-V,--version", std::string("athena ") + ATHENA_VERSION);
    app.require_subcommand(1);
    CommandLine line;
    add_scan_command(app, line);
    add_hash_command(app, line);
    add_cache_command(app, line);
    add_flags_command(app, line);
    add_providers_command(app, line);
    add_completion_command(app, line);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& help) {
        return app.exit(help);
    } catch (const CLI::CallForAllHelp& help) {
        return app.exit(help);
    } catch (const CLI::CallForVersion& version) {
        return app.exit(version);
    } catch (const CLI::ParseError& error) {
        std::fprintf(stderr, "athena: error: %s\nathena: run 'athena --help' for usage\n",
                     error.what());
        return k_exit_error;
    }

    try {
        return run_command(line);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "athena: error: %s\n", error.what());
        return k_exit_error;
    }
}

} // namespace athena::cli
