#include <athena/text.hpp>
#include <athena/verdict.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>

namespace athena {
namespace {

constexpr std::array<std::string_view, 4> k_level_names = {"benign", "suspicious", "malicious",
                                                           "critical"};

nlohmann::ordered_json optional_string(const std::string& text) {
    return text.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(text);
}

// Reads an optional string field; null and absence both give "".
Result<std::string> read_string(const nlohmann::json& object, const char* key) {
    const auto it = object.find(key);
    if (it == object.end() || it->is_null()) {
        return std::string();
    }
    if (!it->is_string()) {
        return fail("invalid_verdict", std::string(key) + " must be a string");
    }
    auto text = it->get<std::string>();
    if (!is_valid_utf8(text)) {
        return fail("invalid_verdict", std::string(key) + " is not valid UTF-8");
    }
    return text;
}

Result<std::vector<std::string>> read_string_list(const nlohmann::json& object,
                                                  const char* key) {
    std::vector<std::string> items;
    const auto it = object.find(key);
    if (it == object.end() || it->is_null()) {
        return items;
    }
    if (!it->is_array()) {
        return fail("invalid_verdict", std::string(key) + " must be an array of strings");
    }
    for (const auto& item : *it) {
        if (!item.is_string()) {
            return fail("invalid_verdict", std::string(key) + " must be an array of strings");
        }
        auto text = item.get<std::string>();
        if (!is_valid_utf8(text)) {
            return fail("invalid_verdict", std::string(key) + " holds invalid UTF-8");
        }
        items.push_back(std::move(text));
    }
    return items;
}

} // namespace

std::string_view to_string(ThreatLevel level) {
    return k_level_names.at(static_cast<std::size_t>(level));
}

std::optional<ThreatLevel> parse_threat_level(std::string_view text) {
    for (std::size_t i = 0; i < k_level_names.size(); ++i) {
        if (k_level_names[i] == text) {
            return static_cast<ThreatLevel>(i);
        }
    }
    return std::nullopt;
}

nlohmann::ordered_json verdict_to_json(const Verdict& verdict) {
    nlohmann::ordered_json iocs = {
        {"domains", verdict.iocs.domains},
        {"ips", verdict.iocs.ips},
        {"urls", verdict.iocs.urls},
        {"files", verdict.iocs.files},
        {"registry_keys", verdict.iocs.registry_keys},
        {"processes", verdict.iocs.processes},
        {"mutexes", verdict.iocs.mutexes},
    };
    nlohmann::ordered_json out = {
        {"threat_level", to_string(verdict.threat_level)},
        {"confidence", verdict.confidence},
        {"malware_family", optional_string(verdict.malware_family)},
        {"malware_type", optional_string(verdict.malware_type)},
        {"signatures", verdict.signatures},
        {"behaviors", verdict.behaviors},
        {"iocs", iocs},
        {"recommendations", verdict.recommendations},
        {"summary", verdict.summary},
    };
    return out;
}

Result<Verdict> verdict_from_json(const nlohmann::json& json) {
    if (!json.is_object()) {
        return fail("invalid_verdict", "verdict must be a JSON object");
    }
    Verdict verdict;

    const auto level_it = json.find("threat_level");
    if (level_it == json.end() || !level_it->is_string()) {
        return fail("invalid_verdict", "threat_level is missing or not a string");
    }
    const auto level = parse_threat_level(level_it->get<std::string>());
    if (!level) {
        return fail("invalid_verdict",
                    "unknown threat_level '" + to_utf8_lossy(level_it->get<std::string>()) +
                        "' (expected benign, suspicious, malicious or critical)");
    }
    verdict.threat_level = *level;

    const auto confidence_it = json.find("confidence");
    if (confidence_it == json.end() || !confidence_it->is_number()) {
        return fail("invalid_verdict", "confidence is missing or not a number");
    }
    verdict.confidence = confidence_it->get<double>();
    if (!std::isfinite(verdict.confidence) || verdict.confidence < 0.0 ||
        verdict.confidence > 1.0) {
        return fail("invalid_verdict", "confidence must be between 0 and 1");
    }

    const auto assign_string = [&](const char* key, std::string& field) -> Result<void> {
        auto value = read_string(json, key);
        if (!value) {
            return std::unexpected(value.error());
        }
        field = std::move(*value);
        return {};
    };
    const auto assign_list = [&](const nlohmann::json& object, const char* key,
                                 std::vector<std::string>& field) -> Result<void> {
        auto value = read_string_list(object, key);
        if (!value) {
            return std::unexpected(value.error());
        }
        field = std::move(*value);
        return {};
    };

    for (const auto& [key, field] :
         {std::pair{"malware_family", &verdict.malware_family},
          std::pair{"malware_type", &verdict.malware_type}, std::pair{"summary", &verdict.summary}}) {
        if (auto ok = assign_string(key, *field); !ok) {
            return std::unexpected(ok.error());
        }
    }
    for (const auto& [key, field] :
         {std::pair{"signatures", &verdict.signatures}, std::pair{"behaviors", &verdict.behaviors},
          std::pair{"recommendations", &verdict.recommendations}}) {
        if (auto ok = assign_list(json, key, *field); !ok) {
            return std::unexpected(ok.error());
        }
    }

    const auto iocs_it = json.find("iocs");
    if (iocs_it != json.end() && !iocs_it->is_null()) {
        if (!iocs_it->is_object()) {
            return fail("invalid_verdict", "iocs must be an object");
        }
        Iocs& iocs = verdict.iocs;
        for (const auto& [key, field] :
             {std::pair{"domains", &iocs.domains}, std::pair{"ips", &iocs.ips},
              std::pair{"urls", &iocs.urls}, std::pair{"files", &iocs.files},
              std::pair{"registry_keys", &iocs.registry_keys},
              std::pair{"processes", &iocs.processes}, std::pair{"mutexes", &iocs.mutexes}}) {
            if (auto ok = assign_list(*iocs_it, key, *field); !ok) {
                return std::unexpected(ok.error());
            }
        }
    }
    return verdict;
}

} // namespace athena
