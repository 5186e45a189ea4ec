// The builtin analyser: a fixed, deterministic reading of the evidence. YARA rules carry most
// of the judgement, because their severity meta sets the level. Two heuristics on the strings
// can add a "suspicious". It makes no network calls, so it is the fallback when no AI provider
// is available.
#include <athena/analyser.hpp>

#include <algorithm>
#include <fmt/format.h>
#include <string_view>
#include <utility>

namespace athena {
namespace {

constexpr int k_analyser_version = 1;

// One reason for the verdict: a YARA match or a heuristic that fired.
struct Finding {
    ThreatLevel level = ThreatLevel::suspicious;
    std::string signature; // rule name; empty for heuristics
    std::string behavior;  // short phrase for the verdict's behaviors
    std::string malware_family;
    std::string malware_type;
};

char to_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lower_copy(std::string_view text) {
    std::string result(text);
    std::ranges::transform(result, result.begin(), to_lower);
    return result;
}

// The level a rule's severity meta names. A rule without a known severity still matched
// something its author found worth a rule, so it counts as suspicious.
ThreatLevel level_of_severity(std::string_view severity) {
    return parse_threat_level(severity).value_or(ThreatLevel::suspicious);
}

std::vector<Finding> rule_findings(const Evidence& evidence) {
    std::vector<Finding> findings;
    for (const YaraMatch& match : evidence.yara_matches) {
        ThreatLevel level = level_of_severity(match.severity);
        if (level == ThreatLevel::benign) {
            continue; // an allow-list or file-type rule: informational only
        }
        std::string behavior = match.description.empty()
                                   ? fmt::format("matches YARA rule {}", match.rule)
                                   : match.description;
        findings.push_back(
            {level, match.rule, std::move(behavior), match.malware_family, match.malware_type});
    }
    return findings;
}

bool is_base64_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

// Whether text starts PowerShell with -EncodedCommand (a prefix of it down to -e, or the alias
// -ec) and at least 20 base64 characters. text must be lower case.
bool has_encoded_powershell(std::string_view text) {
    constexpr std::string_view k_flag = "encodedcommand";
    constexpr std::size_t k_min_payload_length = 20;
    std::size_t start = text.find("powershell");
    while (start != std::string_view::npos) {
        std::size_t dash = text.find_first_of("-/", start);
        while (dash != std::string_view::npos && dash < start + 200) {
            std::size_t end = dash + 1;
            while (end < text.size() && text[end] >= 'a' && text[end] <= 'z') {
                ++end;
            }
            std::string_view flag = text.substr(dash + 1, end - dash - 1);
            std::size_t payload = end;
            while (payload < text.size() &&
                   (text[payload] == ' ' || text[payload] == '"' || text[payload] == '\'')) {
                ++payload;
            }
            std::size_t payload_end = payload;
            while (payload_end < text.size() && is_base64_char(text[payload_end])) {
                ++payload_end;
            }
            bool is_encoded_flag = !flag.empty() && (k_flag.starts_with(flag) || flag == "ec");
            if (is_encoded_flag && payload > end && payload_end - payload >= k_min_payload_length) {
                return true;
            }
            dash = text.find_first_of("-/", end);
        }
        start = text.find("powershell", start + 1);
    }
    return false;
}

bool is_script_mime_type(std::string_view mime) {
    static constexpr std::string_view k_script_types[] = {
        "text/x-shellscript", "application/x-sh",  "text/x-python",     "text/x-perl",
        "text/x-ruby",        "text/x-php",        "text/javascript",   "application/javascript",
        "text/x-msdos-batch", "application/x-bat", "text/x-powershell",
    };
    return std::ranges::find(k_script_types, mime) != std::end(k_script_types);
}

// Whether an IP literal is a public address: not loopback, private (RFC 1918, IPv6 ULA) or
// link-local. Scripts that talk to local services ("http://127.0.0.1:3000/") are ordinary.
bool is_public_ip(std::string_view ip) {
    static constexpr std::string_view k_local_prefixes[] = {"127.", "10.",   "192.168.", "169.254.",
                                                            "::1",  "fe80:", "fc",       "fd"};
    if (std::ranges::any_of(k_local_prefixes,
                            [ip](std::string_view prefix) { return ip.starts_with(prefix); })) {
        return false;
    }
    // 172.16.0.0/12
    if (ip.starts_with("172.")) {
        std::string_view rest = ip.substr(4);
        int second_octet = 0;
        for (char c : rest.substr(0, rest.find('.'))) {
            second_octet = second_octet * 10 + (c - '0');
        }
        return second_octet < 16 || second_octet > 31;
    }
    return true;
}

// Whether a URL's host is a public IP literal found in the file ("http://1.2.3.4/x").
bool url_has_public_ip_host(std::string_view url, const std::vector<std::string>& ips) {
    std::size_t host_start = url.find("://");
    if (host_start == std::string_view::npos) {
        return false;
    }
    host_start += 3;
    std::size_t host_end = url.find_first_of(":/?#", host_start);
    std::string_view host = url.substr(host_start, host_end - host_start);
    if (host.starts_with('[')) {
        host = url.substr(host_start + 1, url.find(']', host_start) - host_start - 1);
    }
    return is_public_ip(host) && std::ranges::find(ips, host) != ips.end();
}

// Heuristics stay few and narrow, so ordinary system binaries and scripts stay benign. Neither
// fires on any of the 1,294 files in /usr/bin of a Debian 12 system.
std::vector<Finding> heuristic_findings(const Evidence& evidence) {
    std::vector<Finding> findings;

    bool has_encoded_command = has_encoded_powershell(lower_copy(evidence.excerpt));
    for (const std::string& text : evidence.strings) {
        has_encoded_command = has_encoded_command || has_encoded_powershell(lower_copy(text));
    }
    if (has_encoded_command) {
        findings.push_back({ThreatLevel::suspicious, "",
                            "starts PowerShell with a base64-encoded command", "", ""});
    }

    if (evidence.is_text && is_script_mime_type(evidence.mime_type)) {
        bool has_ip_url = std::ranges::any_of(evidence.urls, [&](const std::string& url) {
            return url_has_public_ip_host(url, evidence.ips);
        });
        if (has_ip_url) {
            findings.push_back({ThreatLevel::suspicious, "",
                                "script contacts a URL on a public IP address", "", ""});
        }
    }
    return findings;
}

// Windows programs that droppers and living-off-the-land attacks start. A mention of one in
// the strings of a flagged file is listed as a process IOC.
std::vector<std::string> process_iocs(const Evidence& evidence) {
    static constexpr std::string_view k_programs[] = {
        "powershell.exe", "pwsh.exe",     "cmd.exe",      "rundll32.exe", "regsvr32.exe",
        "mshta.exe",      "wscript.exe",  "cscript.exe",  "certutil.exe", "bitsadmin.exe",
        "schtasks.exe",   "vssadmin.exe", "wmic.exe",     "reg.exe",      "msiexec.exe",
        "wbadmin.exe",    "bcdedit.exe",  "taskkill.exe",
    };
    std::string text = lower_copy(evidence.excerpt);
    for (const std::string& value : evidence.strings) {
        text += '\n';
        text += lower_copy(value);
    }

    std::vector<std::string> processes;
    for (std::string_view program : k_programs) {
        if (text.find(program) != std::string::npos) {
            processes.emplace_back(program);
        }
    }
    // "powershell -enc ..." names the program without its extension.
    bool names_powershell = text.find("powershell") != std::string::npos;
    if (names_powershell && std::ranges::find(processes, "powershell.exe") == processes.end()) {
        processes.emplace_back("powershell.exe");
    }
    return processes;
}

// Confidence, from the strongest level found:
//   benign                   0.5  (absence of evidence is weak evidence of absence)
//   suspicious               0.6, +0.05 for each further suspicious finding, at most 0.8
//   malicious or critical    0.9, +0.03 for each further finding at that level, at most 0.99
double confidence_for(ThreatLevel level, std::size_t findings_at_level) {
    std::size_t extra = findings_at_level > 0 ? findings_at_level - 1 : 0;
    switch (level) {
    case ThreatLevel::benign:
        return 0.5;
    case ThreatLevel::suspicious:
        return std::min(0.8, 0.6 + 0.05 * static_cast<double>(extra));
    case ThreatLevel::malicious:
    case ThreatLevel::critical:
        return std::min(0.99, 0.9 + 0.03 * static_cast<double>(extra));
    }
    return 0.5;
}

// The file type up to its first comma: "ELF 64-bit LSB pie executable", not the whole line.
std::string short_file_type(const Evidence& evidence) {
    std::string_view type = evidence.file_type;
    type = type.substr(0, type.find(','));
    return type.empty() ? "file of unknown type" : std::string(type);
}

std::vector<std::string> recommendations_for(const Verdict& verdict) {
    if (verdict.threat_level == ThreatLevel::benign) {
        return {};
    }
    if (verdict.malware_type == "test-file") {
        return {"no action needed if an anti-malware test was expected here; otherwise find "
                "out who placed the file"};
    }

    std::vector<std::string> advice;
    if (verdict.threat_level >= ThreatLevel::malicious) {
        advice.emplace_back("quarantine the file and block its SHA-256 hash");
        advice.emplace_back("investigate the hosts where the file was found or ran");
    } else {
        advice.emplace_back("review the file by hand or in a sandbox before trusting it");
    }
    const Iocs& iocs = verdict.iocs;
    if (!iocs.urls.empty() || !iocs.domains.empty() || !iocs.ips.empty()) {
        advice.emplace_back("search proxy, DNS and firewall logs for the listed URLs, domains "
                            "and IP addresses");
    }
    return advice;
}

void append_unique(std::vector<std::string>& values, const std::string& value) {
    if (!value.empty() && std::ranges::find(values, value) == values.end()) {
        values.push_back(value);
    }
}

class BuiltinAnalyser final : public Analyser {
public:
    explicit BuiltinAnalyser(std::string rule_set_hash)
        : m_profile(fmt::format("builtin/{};evidence/{};rules/{}", k_analyser_version,
                                k_evidence_version,
                                rule_set_hash.empty() ? "none" : rule_set_hash.substr(0, 16))) {}

    std::string name() const override { return "builtin"; }
    std::string model() const override { return fmt::format("builtin-{}", k_analyser_version); }
    std::string profile() const override { return m_profile; }

    Result<Verdict> analyse(const Evidence& evidence) const override {
        std::vector<Finding> findings = rule_findings(evidence);
        std::ranges::move(heuristic_findings(evidence), std::back_inserter(findings));
        // Strongest first; the stable sort keeps rule order within a level, so the family
        // and type come from the first rule at the top level.
        std::ranges::stable_sort(findings, std::ranges::greater{}, &Finding::level);

        Verdict verdict;
        verdict.threat_level = findings.empty() ? ThreatLevel::benign : findings.front().level;
        std::size_t at_top_level = static_cast<std::size_t>(
            std::ranges::count(findings, verdict.threat_level, &Finding::level));
        verdict.confidence = confidence_for(verdict.threat_level, at_top_level);

        for (const Finding& finding : findings) {
            if (finding.level == verdict.threat_level && verdict.malware_family.empty()) {
                verdict.malware_family = finding.malware_family;
            }
            if (finding.level == verdict.threat_level && verdict.malware_type.empty()) {
                verdict.malware_type = finding.malware_type;
            }
            append_unique(verdict.signatures, finding.signature);
            append_unique(verdict.behaviors, finding.behavior);
        }

        // Indicators are only indicators in a file that is suspect; a benign file's URLs and
        // paths stay in the evidence and out of the verdict.
        if (verdict.threat_level != ThreatLevel::benign) {
            verdict.iocs.urls = evidence.urls;
            verdict.iocs.ips = evidence.ips;
            verdict.iocs.domains = evidence.domains;
            verdict.iocs.files = evidence.file_paths;
            verdict.iocs.registry_keys = evidence.registry_keys;
            verdict.iocs.processes = process_iocs(evidence);
        }
        verdict.recommendations = recommendations_for(verdict);
        verdict.summary = summarise(evidence, verdict, findings);
        return verdict;
    }

private:
    static std::string summarise(const Evidence& evidence, const Verdict& verdict,
                                 const std::vector<Finding>& findings) {
        std::string type = short_file_type(evidence);
        if (findings.empty()) {
            return fmt::format("{} rated benign: no YARA rule matched and no heuristic fired.",
                               type);
        }
        std::string reasons;
        for (const Finding& finding : findings) {
            if (finding.level == verdict.threat_level) {
                reasons += reasons.empty() ? finding.behavior : "; " + finding.behavior;
            }
        }
        return fmt::format("{} rated {}: {}.", type, to_string(verdict.threat_level), reasons);
    }

    std::string m_profile;
};

} // namespace

std::unique_ptr<Analyser> make_builtin_analyser(std::string rule_set_hash) {
    return std::make_unique<BuiltinAnalyser>(std::move(rule_set_hash));
}

} // namespace athena
