// YARA rule sets: the rules that ship in rules/ plus the user's --rules paths, compiled once
// per run and shared read-only by every scanning thread.
#pragma once

#include <athena/error.hpp>
#include <athena/evidence.hpp>

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace athena {

class RuleSet {
public:
    // Compiles every *.yar / *.yara file under each path (a file, or a folder searched
    // recursively); each file's rules go into a namespace named after the file's stem. A rule
    // that fails to compile is an error of kind "rules" whose message names file and line; a
    // missing path or a folder without rule files is also an error of kind "rules".
    static Result<std::shared_ptr<RuleSet>>
    compile(const std::vector<std::filesystem::path>& paths);

    virtual ~RuleSet() = default;

    // SHA-256 over the sorted rule file names and contents; part of the analysis profile, so
    // changing a rule re-analyses every file.
    virtual const std::string& content_hash() const = 0;
    virtual std::size_t rule_count() const = 0;
    // Compiler warnings such as slow strings, each "file:line: message"; for the debug log.
    virtual const std::vector<std::string>& warnings() const = 0;

    // Thread-safe. Errors: kind "analysis" (scan failure or a scan over 10 s); scan_file also
    // kind "io" when the file cannot be opened.
    virtual Result<std::vector<YaraMatch>> scan_memory(std::span<const std::uint8_t> bytes) const = 0;
    virtual Result<std::vector<YaraMatch>> scan_file(const std::filesystem::path& path) const = 0;
};

// The folder of rules that ship with athena: $ATHENA_RULES_DIR if set, else the installed
// share/athena/rules, else the source tree's rules/.
std::filesystem::path bundled_rules_dir();

} // namespace athena
