// Size and duration parsing for settings, and the default config file location.
#include <athena/config.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string_view>

namespace athena {
namespace {

constexpr std::string_view k_whitespace = " \t\r\n";

struct UnitMultiplier {
    std::string_view unit;
    std::uint64_t multiplier;
};

constexpr std::uint64_t k_kibibyte = 1024;

// Size units are matched after lower-casing, so "KiB", "kib" and "KIB" are all one entry.
constexpr std::array k_size_units{
    UnitMultiplier{"", 1},
    UnitMultiplier{"b", 1},
    UnitMultiplier{"k", k_kibibyte},
    UnitMultiplier{"kb", k_kibibyte},
    UnitMultiplier{"kib", k_kibibyte},
    UnitMultiplier{"m", k_kibibyte << 10},
    UnitMultiplier{"mb", k_kibibyte << 10},
    UnitMultiplier{"mib", k_kibibyte << 10},
    UnitMultiplier{"g", k_kibibyte << 20},
    UnitMultiplier{"gb", k_kibibyte << 20},
    UnitMultiplier{"gib", k_kibibyte << 20},
    UnitMultiplier{"t", k_kibibyte << 30},
    UnitMultiplier{"tb", k_kibibyte << 30},
    UnitMultiplier{"tib", k_kibibyte << 30},
};

// Duration units are case-sensitive, because "m" is minutes and "M" could be read as months.
constexpr std::array k_duration_units{
    UnitMultiplier{"", 1},       UnitMultiplier{"ms", 1},        UnitMultiplier{"s", 1'000},
    UnitMultiplier{"m", 60'000}, UnitMultiplier{"h", 3'600'000},
};

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(k_whitespace);
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(k_whitespace);
    return text.substr(first, last - first + 1);
}

// A non-negative decimal number split at its point, followed by its unit text.
struct DecimalNumber {
    std::uint64_t whole = 0;
    std::string_view fraction_digits;
    std::string_view unit;
};

enum class NumberProblem { malformed, too_large };

// Splits "1.5 GiB" into 1, "5" and "GiB". The whole part needs at least one digit, and a point
// needs at least one digit after it.
std::expected<DecimalNumber, NumberProblem> split_decimal(std::string_view text) {
    const auto whole_end = std::min(text.find_first_not_of("0123456789"), text.size());
    if (whole_end == 0) {
        return std::unexpected(NumberProblem::malformed);
    }

    DecimalNumber number;
    const auto [end, status] = std::from_chars(text.data(), text.data() + whole_end, number.whole);
    if (status == std::errc::result_out_of_range) {
        return std::unexpected(NumberProblem::too_large);
    }

    std::string_view rest = text.substr(whole_end);
    if (rest.starts_with('.')) {
        const auto fraction_end = std::min(rest.find_first_not_of("0123456789", 1), rest.size());
        if (fraction_end == 1) {
            return std::unexpected(NumberProblem::malformed);
        }
        number.fraction_digits = rest.substr(1, fraction_end - 1);
        rest = rest.substr(fraction_end);
    }
    number.unit = trim(rest);
    return number;
}

// Computes floor(0.DIGITS * multiplier) exactly by long multiplication from the last digit.
// The carry stays below `multiplier`, so nothing overflows while multiplier <= 2^64 / 10.
std::uint64_t scale_fraction(std::string_view digits, std::uint64_t multiplier) {
    std::uint64_t carry = 0;
    for (auto digit = digits.rbegin(); digit != digits.rend(); ++digit) {
        carry = (static_cast<std::uint64_t>(*digit - '0') * multiplier + carry) / 10;
    }
    return carry;
}

// Returns whole * multiplier + the scaled fraction, or nothing when it exceeds `maximum`.
std::optional<std::uint64_t> scale(const DecimalNumber& number, std::uint64_t multiplier,
                                   std::uint64_t maximum) {
    std::uint64_t whole_scaled = 0;
    std::uint64_t total = 0;
    if (__builtin_mul_overflow(number.whole, multiplier, &whole_scaled) ||
        __builtin_add_overflow(whole_scaled, scale_fraction(number.fraction_digits, multiplier),
                               &total) ||
        total > maximum) {
        return std::nullopt;
    }
    return total;
}

// The syntax of one kind of quantity, and its name in messages.
struct QuantityGrammar {
    std::string_view quantity_name; // "size", "duration"
    std::string_view unit_help;     // the accepted units, for messages
    std::span<const UnitMultiplier> units;
    bool is_unit_case_sensitive = false;
    std::uint64_t maximum = 0;
    std::string_view maximum_unit; // "bytes", "ms"
};

std::optional<std::uint64_t> find_multiplier(std::span<const UnitMultiplier> units,
                                             std::string_view unit) {
    for (const UnitMultiplier& entry : units) {
        if (entry.unit == unit) {
            return entry.multiplier;
        }
    }
    return std::nullopt;
}

std::string to_lower(std::string_view text) {
    std::string lower(text);
    for (char& c : lower) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return lower;
}

// Parses a number with an optional unit into a count of the grammar's base unit.
Result<std::uint64_t> parse_quantity(const std::string& text, const QuantityGrammar& grammar) {
    const auto reject = [&](std::string_view reason) {
        return fail("usage",
                    fmt::format("invalid {} \"{}\": {}", grammar.quantity_name, text, reason));
    };

    const std::string_view input = trim(text);
    if (input.empty()) {
        return reject("the value is empty");
    }
    if (input.starts_with('-')) {
        return reject(fmt::format("a {} cannot be negative", grammar.quantity_name));
    }

    const std::string junk_reason =
        fmt::format("expected a number with an optional unit {}", grammar.unit_help);
    const std::string too_large_reason =
        fmt::format("larger than the maximum of {} {}", grammar.maximum, grammar.maximum_unit);

    const auto number = split_decimal(input);
    if (!number) {
        return reject(number.error() == NumberProblem::too_large ? too_large_reason : junk_reason);
    }
    const std::string unit =
        grammar.is_unit_case_sensitive ? std::string(number->unit) : to_lower(number->unit);
    const auto multiplier = find_multiplier(grammar.units, unit);
    if (!multiplier) {
        return reject(junk_reason);
    }
    const auto total = scale(*number, *multiplier, grammar.maximum);
    if (!total) {
        return reject(too_large_reason);
    }
    return *total;
}

std::filesystem::path
config_path_from(const std::function<std::optional<std::string>(const char*)>& lookup) {
    const auto xdg_config_home = lookup("XDG_CONFIG_HOME");
    if (xdg_config_home && xdg_config_home->starts_with('/')) {
        return std::filesystem::path(*xdg_config_home) / "athena" / "config.toml";
    }
    const auto home = lookup("HOME");
    if (home && !home->empty()) {
        return std::filesystem::path(*home) / ".config" / "athena" / "config.toml";
    }
    return {};
}

} // namespace

Result<std::uint64_t> parse_size(const std::string& text) {
    const QuantityGrammar grammar{
        .quantity_name = "size",
        .unit_help = "B, K, M, G, T, KB, MB, GB, TB, KiB, MiB, GiB or TiB (powers of 1024)",
        .units = k_size_units,
        .is_unit_case_sensitive = false,
        .maximum = std::numeric_limits<std::uint64_t>::max(),
        .maximum_unit = "bytes",
    };
    return parse_quantity(text, grammar);
}

Result<std::int64_t> parse_duration_ms(const std::string& text) {
    const QuantityGrammar grammar{
        .quantity_name = "duration",
        .unit_help = "ms, s, m or h (a bare number is milliseconds)",
        .units = k_duration_units,
        .is_unit_case_sensitive = true,
        .maximum = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()),
        .maximum_unit = "ms",
    };
    const auto milliseconds = parse_quantity(text, grammar);
    if (!milliseconds) {
        return std::unexpected(milliseconds.error());
    }
    return static_cast<std::int64_t>(*milliseconds);
}

std::filesystem::path default_config_path() {
    return config_path_from([](const char* name) -> std::optional<std::string> {
        const char* value = std::getenv(name);
        if (value == nullptr) {
            return std::nullopt;
        }
        return std::string(value);
    });
}

std::filesystem::path default_config_path(const std::map<std::string, std::string>& env) {
    return config_path_from([&env](const char* name) -> std::optional<std::string> {
        const auto found = env.find(name);
        if (found == env.end()) {
            return std::nullopt;
        }
        return found->second;
    });
}

} // namespace athena
