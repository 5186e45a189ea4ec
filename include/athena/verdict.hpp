// The verdict schema: what the builtin analyser produces now and AI providers fill later.
// It is the value stored in every cache tier and printed in each file record.
#pragma once

#include <athena/error.hpp>

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace athena {

// Ordered by severity, so comparisons such as `level >= fail_on` read naturally.
enum class ThreatLevel { benign = 0, suspicious = 1, malicious = 2, critical = 3 };

std::string_view to_string(ThreatLevel level);
std::optional<ThreatLevel> parse_threat_level(std::string_view text);

struct Iocs {
    std::vector<std::string> domains;
    std::vector<std::string> ips;
    std::vector<std::string> urls;
    std::vector<std::string> files;
    std::vector<std::string> registry_keys;
    std::vector<std::string> processes;
    std::vector<std::string> mutexes;

    bool operator==(const Iocs&) const = default;
};

struct Verdict {
    ThreatLevel threat_level = ThreatLevel::benign;
    double confidence = 0.0; // 0 to 1
    std::string malware_family; // empty means none; emitted as JSON null
    std::string malware_type;   // empty means none; emitted as JSON null
    std::vector<std::string> signatures;
    std::vector<std::string> behaviors;
    Iocs iocs;
    std::vector<std::string> recommendations;
    std::string summary;

    bool operator==(const Verdict&) const = default;
};

// Serialises in schema order with stable key names: threat_level, confidence, malware_family, malware_type,
// signatures, behaviors, iocs {domains, ips, urls, files, registry_keys, processes, mutexes},
// recommendations, summary.
nlohmann::ordered_json verdict_to_json(const Verdict& verdict);

// Parses and validates a verdict: unknown threat level, confidence outside 0..1, wrong types
// and invalid UTF-8 are errors of kind "invalid_verdict". Missing optional lists are empty.
Result<Verdict> verdict_from_json(const nlohmann::json& json);

} // namespace athena
