// Evidence extraction: the facts about one file that the builtin analyser judges and that the
// AI prompt will carry. Nothing here executes or interprets the file; it only reads bytes.
#pragma once

#include <athena/error.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace athena {

class RuleSet;

// Version of what extract() produces. Raise it whenever a change to extraction could change a
// verdict; analysers put it in their profile, so cached verdicts from older evidence expire.
inline constexpr int k_evidence_version = 1;

struct YaraMatch {
    std::string rule;                // rule identifier, e.g. "eicar_test_file"
    std::string ns;                  // namespace: the rule file's stem
    std::vector<std::string> tags;
    std::string description;         // meta "description", empty when absent
    std::string severity;            // meta "severity": benign|suspicious|malicious|critical
    std::string malware_family;      // meta "malware_family", e.g. "EICAR-Test-File"; or empty
    std::string malware_type;        // meta "malware_type", e.g. "ransomware"; or empty
};

struct Evidence {
    std::uint64_t size_bytes = 0;
    std::string file_type;    // libmagic description, e.g. "ELF 64-bit LSB pie executable, ..."
    std::string mime_type;    // libmagic MIME type, e.g. "application/x-pie-executable"
    double entropy = 0.0;     // Shannon entropy over the scanned window, bits per byte (0..8)
    bool is_text = false;
    std::string excerpt;      // first bytes of a text file, valid UTF-8; empty for binaries
    std::vector<std::string> strings; // notable printable strings, deduplicated, capped
    std::vector<std::string> urls;
    std::vector<std::string> ips;     // IPv4 and IPv6 literals
    std::vector<std::string> domains;
    std::vector<std::string> emails;
    std::vector<std::string> registry_keys;
    std::vector<std::string> file_paths;
    std::vector<YaraMatch> yara_matches;
};

struct EvidenceOptions {
    std::uint64_t scan_window_bytes = 16u << 20; // strings and IOCs come from this prefix
    std::size_t max_strings = 40;
    std::size_t max_iocs_per_kind = 50;
    std::size_t excerpt_bytes = 2048;
};

// Extracts evidence from files. One extractor serves the whole run; extract() is thread-safe
// (libmagic handles are per thread inside).
class EvidenceExtractor {
public:
    // rules may be null (no YARA scan). Fails with kind "analysis" if libmagic cannot load
    // its database.
    static Result<std::unique_ptr<EvidenceExtractor>>
    create(std::shared_ptr<const RuleSet> rules, EvidenceOptions options = {});

    virtual ~EvidenceExtractor() = default;

    // content holds the whole file when the caller already read it (small files), else is
    // empty and the file is read from path (up to scan_window_bytes for strings and IOCs,
    // the whole file for YARA). Errors: kind "io" (open or read failed, not a regular file),
    // kind "analysis" (the YARA scan failed or timed out).
    virtual Result<Evidence> extract(const std::filesystem::path& path,
                                     std::span<const std::uint8_t> content) const = 0;
};

// Shannon entropy of bytes, in bits per byte (0 for empty input, 8 for uniform bytes).
double shannon_entropy(std::span<const std::uint8_t> bytes);

} // namespace athena
