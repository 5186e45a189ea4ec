#include <athena/config.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace {

struct SizeCase {
    std::string text;
    std::uint64_t bytes;
};

struct DurationCase {
    std::string text;
    std::int64_t milliseconds;
};

constexpr std::uint64_t k_kib = 1024;
constexpr std::uint64_t k_mib = k_kib * 1024;
constexpr std::uint64_t k_gib = k_mib * 1024;
constexpr std::uint64_t k_tib = k_gib * 1024;

} // namespace

TEST_CASE("parse_size: units and decimals") {
    const std::vector<SizeCase> cases{
        {"512", 512},
        {"0", 0},
        {"10M", 10 * k_mib},
        {"1G", k_gib},
        {"4KiB", 4 * k_kib},
        {"1.5G", k_gib + k_gib / 2},
        {"10k", 10 * k_kib},
        {"10K", 10 * k_kib},
        {"3KB", 3 * k_kib},
        {"2MB", 2 * k_mib},
        {"2MiB", 2 * k_mib},
        {"1GiB", k_gib},
        {"1T", k_tib},
        {"2TiB", 2 * k_tib},
        {"100B", 100},
        {" 7 K ", 7 * k_kib},
        // 1.1 KiB is 1126.4 bytes, rounded down.
        {"1.1K", 1126},
        {"0.5", 0},
        {"18446744073709551615", std::numeric_limits<std::uint64_t>::max()},
        {"16777215T", 16777215 * k_tib},
    };

    for (const SizeCase& entry : cases) {
        CAPTURE(entry.text);
        const auto bytes = athena::parse_size(entry.text);
        REQUIRE(bytes.has_value());
        CHECK(*bytes == entry.bytes);
    }
}

TEST_CASE("parse_size: rejects malformed input") {
    const std::vector<std::string> bad_inputs{
        "",
        "   ",
        "-1",
        "-10M",
        "10X",
        "1.5.2",
        "abc",
        "1.",
        ".5",
        "1e3",
        "+5",
        "10 M B",
        "M",
        "10MiBs",
        "0x10",
        "1,5G",
        "10 KiB extra",
        // One past the maximum, and 2^64 written with a unit.
        "18446744073709551616",
        "16777216T",
        "99999999999999999999999",
    };

    for (const std::string& input : bad_inputs) {
        CAPTURE(input);
        const auto bytes = athena::parse_size(input);
        REQUIRE_FALSE(bytes.has_value());
        CHECK(bytes.error().kind == "usage");
        CHECK(bytes.error().message.find("\"" + input + "\"") != std::string::npos);
    }
}

TEST_CASE("parse_size: messages give the reason") {
    SUBCASE("negative") {
        const auto bytes = athena::parse_size("-5M");
        REQUIRE_FALSE(bytes.has_value());
        CHECK(bytes.error().message.find("negative") != std::string::npos);
    }
    SUBCASE("overflow") {
        const auto bytes = athena::parse_size("16777216T");
        REQUIRE_FALSE(bytes.has_value());
        CHECK(bytes.error().message.find("maximum") != std::string::npos);
    }
    SUBCASE("unknown unit lists the units") {
        const auto bytes = athena::parse_size("10X");
        REQUIRE_FALSE(bytes.has_value());
        CHECK(bytes.error().message.find("KiB") != std::string::npos);
    }
}

TEST_CASE("parse_duration_ms: units and decimals") {
    const std::vector<DurationCase> cases{
        {"250ms", 250},     {"5s", 5'000},
        {"1.5s", 1'500},    {"2m", 120'000},
        {"1h", 3'600'000},  {"1500", 1'500},
        {"0", 0},           {"0.5ms", 0},
        {"1.0005s", 1'000}, {"0.25h", 900'000},
        {" 3 s ", 3'000},   {"9223372036854775807", std::numeric_limits<std::int64_t>::max()},
    };

    for (const DurationCase& entry : cases) {
        CAPTURE(entry.text);
        const auto milliseconds = athena::parse_duration_ms(entry.text);
        REQUIRE(milliseconds.has_value());
        CHECK(*milliseconds == entry.milliseconds);
    }
}

TEST_CASE("parse_duration_ms: rejects malformed input") {
    const std::vector<std::string> bad_inputs{
        "",
        "-5s",
        "5x",
        "1.5.2s",
        "s",
        "5S",
        "1h30m",
        "5 sec",
        "1.s",
        ".5s",
        "5ms5",
        "abc",
        // One past the maximum, and an hour count whose milliseconds overflow.
        "9223372036854775808",
        "2562047788016h",
    };

    for (const std::string& input : bad_inputs) {
        CAPTURE(input);
        const auto milliseconds = athena::parse_duration_ms(input);
        REQUIRE_FALSE(milliseconds.has_value());
        CHECK(milliseconds.error().kind == "usage");
        CHECK(milliseconds.error().message.find("\"" + input + "\"") != std::string::npos);
    }
}

TEST_CASE("default_config_path: XDG, then HOME") {
    SUBCASE("XDG_CONFIG_HOME wins over HOME") {
        const std::map<std::string, std::string> env{{"XDG_CONFIG_HOME", "/xdg"},
                                                     {"HOME", "/home/a"}};
        CHECK(athena::default_config_path(env) == "/xdg/athena/config.toml");
    }
    SUBCASE("HOME when XDG_CONFIG_HOME is unset") {
        const std::map<std::string, std::string> env{{"HOME", "/home/a"}};
        CHECK(athena::default_config_path(env) == "/home/a/.config/athena/config.toml");
    }
    SUBCASE("relative XDG_CONFIG_HOME is ignored") {
        const std::map<std::string, std::string> env{{"XDG_CONFIG_HOME", "relative"},
                                                     {"HOME", "/home/a"}};
        CHECK(athena::default_config_path(env) == "/home/a/.config/athena/config.toml");
    }
    SUBCASE("empty when neither is set") {
        const std::map<std::string, std::string> env{{"HOME", ""}};
        CHECK(athena::default_config_path(env).empty());
    }
}
