// Layered settings: defaults, the TOML config file, the environment and the command line.
#include <athena/config.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

namespace athena {
namespace {

constexpr std::string_view k_masked_value = "********";
constexpr std::string_view k_unset_value = "-";
constexpr std::string_view k_whitespace = " \t\r\n";
// Spelling suggestions go up to this many edits: enough for a typo, few false friends.
constexpr std::size_t k_max_suggestion_distance = 2;

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(k_whitespace);
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(k_whitespace);
    return text.substr(first, last - first + 1);
}

std::string to_lower(std::string_view text) {
    std::string lower(text);
    for (char& c : lower) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return lower;
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
    std::string joined;
    for (std::size_t index = 0; index < items.size(); ++index) {
        if (index > 0) {
            joined += separator;
        }
        joined += items[index];
    }
    return joined;
}

std::string_view kind_name(SettingKind kind) {
    switch (kind) {
    case SettingKind::flag:
        return "flag";
    case SettingKind::boolean:
        return "boolean";
    case SettingKind::string:
        return "string";
    case SettingKind::integer:
        return "integer";
    case SettingKind::size:
        return "size";
    case SettingKind::duration:
        return "duration";
    case SettingKind::list:
        return "list";
    case SettingKind::choice:
        return "choice";
    }
    return "string";
}

std::string_view source_name(SettingSource source) {
    switch (source) {
    case SettingSource::default_value:
        return "default";
    case SettingSource::config_file:
        return "config";
    case SettingSource::environment:
        return "env";
    case SettingSource::command_line:
        return "command_line";
    }
    return "default";
}

bool is_secret_name(std::string_view name) {
    const std::string lower = to_lower(name);
    for (std::string_view word : {"password", "secret"}) {
        if (lower.find(word) != std::string::npos) {
            return true;
        }
    }

    // "key" and "token" count only as whole word parts, so that names like "monkey" or
    // "max-input-tokens" (a count, not a credential) stay visible.
    // "key-prefix" names the namespace of stored keys (redis-key-prefix), not a credential.
    std::vector<std::string_view> parts;
    std::size_t part_start = 0;
    while (part_start <= lower.size()) {
        auto part_end = part_start;
        while (part_end < lower.size() &&
               std::isalnum(static_cast<unsigned char>(lower[part_end]))) {
            ++part_end;
        }
        parts.push_back(std::string_view(lower).substr(part_start, part_end - part_start));
        part_start = part_end + 1;
    }
    for (std::size_t index = 0; index < parts.size(); ++index) {
        const bool is_prefix_name = index + 1 < parts.size() && parts[index + 1] == "prefix";
        if ((parts[index] == "key" && !is_prefix_name) || parts[index] == "apikey" ||
            parts[index] == "token") {
            return true;
        }
    }
    return false;
}

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
// neighbouring characters each count as one edit.
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> distance(a.size() + 1,
                                                   std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) {
        distance[i][0] = i;
    }
    for (std::size_t j = 0; j <= b.size(); ++j) {
        distance[0][j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            distance[i][j] = std::min(
                {distance[i - 1][j] + 1, distance[i][j - 1] + 1, distance[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                distance[i][j] = std::min(distance[i][j], distance[i - 2][j - 2] + 1);
            }
        }
    }
    return distance[a.size()][b.size()];
}

// Returns the candidate closest to `name`, ignoring case, within the suggestion distance.
// On a tie the earlier candidate wins.
std::optional<std::string> closest_name(std::string_view name,
                                        const std::vector<std::string>& candidates) {
    const std::string name_lower = to_lower(name);
    std::optional<std::string> best;
    std::size_t best_distance = k_max_suggestion_distance + 1;
    for (const std::string& candidate : candidates) {
        const std::size_t distance = edit_distance(name_lower, to_lower(candidate));
        if (distance < best_distance) {
            best = candidate;
            best_distance = distance;
        }
    }
    return best;
}

// Returns " (did you mean NAME?)", or nothing when no candidate is close.
std::string suggestion_text(std::string_view name, const std::vector<std::string>& candidates) {
    const auto closest = closest_name(name, candidates);
    return closest ? fmt::format(" (did you mean {}?)", *closest) : std::string();
}

std::vector<std::string> split_list(std::string_view text) {
    std::vector<std::string> items;
    std::size_t start = 0;
    while (start <= text.size()) {
        const auto comma = std::min(text.find(',', start), text.size());
        const std::string_view item = trim(text.substr(start, comma - start));
        if (!item.empty()) {
            items.emplace_back(item);
        }
        start = comma + 1;
    }
    return items;
}

std::optional<bool> parse_boolean(std::string_view text) {
    const std::string lower = to_lower(trim(text));
    for (std::string_view word : {"true", "1", "yes", "on"}) {
        if (lower == word) {
            return true;
        }
    }
    for (std::string_view word : {"false", "0", "no", "off"}) {
        if (lower == word) {
            return false;
        }
    }
    return std::nullopt;
}

SettingValue list_value(std::vector<std::string> raw_items) {
    SettingValue value;
    for (const std::string& raw_item : raw_items) {
        const std::string_view item = trim(raw_item);
        if (!item.empty()) {
            value.items.emplace_back(item);
        }
    }
    value.text = join(value.items, ",");
    value.is_set = true;
    return value;
}

// Parses text into the normalised value for the spec's kind. Error messages describe the
// value only ("invalid size \"10X\": ..."), so callers add where it came from.
Result<SettingValue> parse_value_unmasked(const SettingSpec& spec, std::string_view raw) {
    SettingValue value;
    value.is_set = true;
    const std::string_view trimmed = trim(raw);

    switch (spec.kind) {
    case SettingKind::flag:
    case SettingKind::boolean: {
        const auto parsed = parse_boolean(raw);
        if (!parsed) {
            return fail("usage", fmt::format("invalid boolean \"{}\": expected one of true, false, "
                                             "1, 0, yes, no, on, off",
                                             raw));
        }
        value.text = *parsed ? "true" : "false";
        break;
    }
    case SettingKind::string:
        value.text = raw;
        break;
    case SettingKind::integer: {
        std::int64_t number = 0;
        const auto [end, status] =
            std::from_chars(trimmed.data(), trimmed.data() + trimmed.size(), number);
        if (status == std::errc::result_out_of_range) {
            return fail("usage", fmt::format("invalid integer \"{}\": out of range for a signed "
                                             "64-bit integer",
                                             raw));
        }
        if (status != std::errc() || end != trimmed.data() + trimmed.size()) {
            return fail("usage",
                        fmt::format("invalid integer \"{}\": expected a whole number", raw));
        }
        value.text = std::to_string(number);
        break;
    }
    case SettingKind::size: {
        const auto bytes = parse_size(std::string(raw));
        if (!bytes) {
            return std::unexpected(bytes.error());
        }
        value.text = std::to_string(*bytes);
        break;
    }
    case SettingKind::duration: {
        const auto milliseconds = parse_duration_ms(std::string(raw));
        if (!milliseconds) {
            return std::unexpected(milliseconds.error());
        }
        value.text = std::to_string(*milliseconds);
        break;
    }
    case SettingKind::list:
        return list_value(split_list(raw));
    case SettingKind::choice: {
        // Matching ignores case, and the value takes the spelling of the choice.
        const auto match = std::ranges::find_if(spec.choices, [&](const std::string& choice) {
            return to_lower(choice) == to_lower(trimmed);
        });
        if (match == spec.choices.end()) {
            return fail("usage", fmt::format("invalid choice \"{}\": expected one of {}", raw,
                                             join(spec.choices, ", ")));
        }
        value.text = *match;
        break;
    }
    }
    return value;
}

// As parse_value_unmasked, but an error about a secret setting does not repeat its value.
Result<SettingValue> parse_value(const SettingSpec& spec, std::string_view raw) {
    auto value = parse_value_unmasked(spec, raw);
    if (!value && spec.is_secret) {
        return fail("usage", fmt::format("invalid {} value (not shown because {} is secret)",
                                         kind_name(spec.kind), spec.name));
    }
    return value;
}

SettingValue default_value_for(const SettingSpec& spec) {
    SettingValue value;
    if (!spec.default_value.empty()) {
        auto parsed = parse_value_unmasked(spec, spec.default_value);
        if (parsed) {
            value = std::move(*parsed);
        } else {
            value.text = spec.default_value;
        }
        value.is_set = true;
    }
    value.origin = SettingOrigin{SettingSource::default_value, "default"};
    return value;
}

// Stores `incoming` unless the current value came from a higher-ranking layer.
void apply(SettingValue& current, SettingValue incoming) {
    if (incoming.origin.source >= current.origin.source) {
        current = std::move(incoming);
    }
}

std::vector<std::string> names_of(const std::vector<const SettingSpec*>& specs,
                                  bool is_flags_only) {
    std::vector<std::string> names;
    for (const SettingSpec* spec : specs) {
        if (!is_flags_only || spec->kind == SettingKind::flag) {
            names.push_back(spec->name);
        }
    }
    return names;
}

std::unexpected<Error> unknown_setting_error(const std::vector<const SettingSpec*>& specs,
                                             const std::string& name) {
    const std::vector<std::string> names = names_of(specs, false);
    return fail("usage", fmt::format("unknown setting {}{}, valid settings: {}", name,
                                     suggestion_text(name, names), join(names, ", ")));
}

// Returns an error unless `name` is a feature flag. The message lists every flag.
Result<void> require_flag(const std::vector<const SettingSpec*>& specs, const std::string& name) {
    const auto found =
        std::ranges::find_if(specs, [&](const SettingSpec* spec) { return spec->name == name; });
    if (found != specs.end() && (*found)->kind == SettingKind::flag) {
        return {};
    }

    const std::vector<std::string> flags = names_of(specs, true);
    const std::string problem = found == specs.end()
                                    ? fmt::format("unknown feature flag {}", name)
                                    : fmt::format("{} is not a feature flag", name);
    return fail("usage", fmt::format("{}{}, valid flags: {}", problem, suggestion_text(name, flags),
                                     join(flags, ", ")));
}

std::string display_value(const SettingSpec& spec, const SettingValue& value) {
    if (!value.is_set) {
        return std::string(k_unset_value);
    }
    if (spec.is_secret) {
        return std::string(k_masked_value);
    }
    if (value.text.empty()) {
        return "\"\"";
    }
    return value.text;
}

// The value as JSON: a bool, a number, an array or a string by kind, null when unset.
nlohmann::ordered_json json_value(const SettingSpec& spec, const SettingValue& value) {
    if (!value.is_set) {
        return nullptr;
    }
    if (spec.is_secret) {
        return std::string(k_masked_value);
    }

    const std::string& text = value.text;
    switch (spec.kind) {
    case SettingKind::flag:
    case SettingKind::boolean:
        return text == "true";
    case SettingKind::integer:
    case SettingKind::duration: {
        std::int64_t number = 0;
        const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), number);
        if (status == std::errc() && end == text.data() + text.size()) {
            return number;
        }
        return text;
    }
    case SettingKind::size: {
        std::uint64_t bytes = 0;
        const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), bytes);
        if (status == std::errc() && end == text.data() + text.size()) {
            return bytes;
        }
        return text;
    }
    case SettingKind::list:
        return value.items;
    case SettingKind::string:
    case SettingKind::choice:
        return text;
    }
    return text;
}

// Orders feature flags first, then the other settings, keeping definition order in each group.
std::vector<const SettingSpec*> flags_first(std::vector<const SettingSpec*> specs) {
    std::ranges::stable_partition(
        specs, [](const SettingSpec* spec) { return spec->kind == SettingKind::flag; });
    return specs;
}

// One key/value of the config file, found by walking its tables.
struct ConfigEntry {
    std::string key; // dotted, "cache.dir"
    const toml::node* node = nullptr;
    std::uint32_t line = 0;
    std::uint32_t column = 0;
};

std::string_view toml_type_name(const toml::node& node) {
    switch (node.type()) {
    case toml::node_type::string:
        return "a string";
    case toml::node_type::integer:
        return "an integer";
    case toml::node_type::floating_point:
        return "a float";
    case toml::node_type::boolean:
        return "a boolean";
    case toml::node_type::date:
        return "a date";
    case toml::node_type::time:
        return "a time";
    case toml::node_type::date_time:
        return "a date-time";
    case toml::node_type::array:
        return "an array";
    case toml::node_type::table:
        return "a table";
    case toml::node_type::none:
        break;
    }
    return "nothing";
}

// Walks the tables below `table`. A table whose path is a setting's key, or an empty table,
// is an entry of its own, so that it is reported as a wrong type or an unknown key.
void collect_entries(const toml::table& table, const std::string& prefix,
                     const std::set<std::string>& known_keys, std::vector<ConfigEntry>& entries) {
    for (const auto& [key, node] : table) {
        const std::string path =
            prefix.empty() ? std::string(key.str()) : fmt::format("{}.{}", prefix, key.str());
        const toml::table* subtable = node.as_table();
        if (subtable != nullptr && !subtable->empty() && !known_keys.contains(path)) {
            collect_entries(*subtable, path, known_keys, entries);
            continue;
        }
        const toml::source_position begin = node.source().begin;
        entries.push_back(ConfigEntry{path, &node, begin.line, begin.column});
    }
}

Result<std::string> read_text_file(const std::filesystem::path& path) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(path, error)) {
        return fail("usage", fmt::format("config file {} is not a regular file", path.string()));
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return fail("io", fmt::format("cannot open config file {}: {}", path.string(),
                                      std::strerror(errno)));
    }
    std::ostringstream content;
    content << in.rdbuf();
    if (in.bad()) {
        return fail("io", fmt::format("cannot read config file {}: {}", path.string(),
                                      std::strerror(errno)));
    }
    return content.str();
}

Result<toml::table> parse_toml(const std::string& content, const std::filesystem::path& path) {
    try {
        return toml::parse(content, path.string());
    } catch (const toml::parse_error& error) {
        const toml::source_position begin = error.source().begin;
        return fail("usage", fmt::format("{}:{}:{}: invalid TOML: {}", path.string(), begin.line,
                                         begin.column, error.description()));
    }
}

// Converts a TOML value into the spec's normalised value. Error messages start with what is
// wrong with the value; the caller adds file, line and key.
Result<SettingValue> value_from_toml(const SettingSpec& spec, const toml::node& node) {
    const auto wrong_type = [&](std::string_view expected) {
        return fail("usage", fmt::format("expected {}, got {}", expected, toml_type_name(node)));
    };

    switch (spec.kind) {
    case SettingKind::flag:
    case SettingKind::boolean:
        if (const auto* boolean = node.as_boolean()) {
            return parse_value(spec, boolean->get() ? "true" : "false");
        }
        return wrong_type("a boolean (true or false)");
    case SettingKind::string:
    case SettingKind::choice:
        if (const auto* string = node.as_string()) {
            return parse_value(spec, string->get());
        }
        return wrong_type("a string");
    case SettingKind::integer:
        if (const auto* integer = node.as_integer()) {
            return parse_value(spec, std::to_string(integer->get()));
        }
        return wrong_type("an integer");
    case SettingKind::size:
    case SettingKind::duration:
        // An integer is a count of bytes or milliseconds. A string carries its own unit.
        if (const auto* integer = node.as_integer()) {
            return parse_value(spec, std::to_string(integer->get()));
        }
        if (const auto* string = node.as_string()) {
            return parse_value(spec, string->get());
        }
        return wrong_type(spec.kind == SettingKind::size
                              ? "an integer (bytes) or a string such as \"10M\""
                              : "an integer (milliseconds) or a string such as \"5s\"");
    case SettingKind::list: {
        const auto* array = node.as_array();
        if (array == nullptr) {
            return wrong_type("an array of strings");
        }
        std::vector<std::string> items;
        for (std::size_t index = 0; index < array->size(); ++index) {
            const auto* item = (*array)[index].as_string();
            if (item == nullptr) {
                return fail("usage", fmt::format("expected an array of strings, but item {} is {}",
                                                 index + 1, toml_type_name((*array)[index])));
            }
            items.push_back(item->get());
        }
        return list_value(std::move(items));
    }
    }
    return wrong_type("a string");
}

// The message for a key no setting uses: a close spelling if there is one, else the keys of
// the same table, else the top-level tables.
std::string unknown_key_message(const ConfigEntry& entry, const std::filesystem::path& path,
                                const std::vector<std::string>& known_keys) {
    const std::string where = fmt::format("{}:{}", path.string(), entry.line);
    if (const auto closest = closest_name(entry.key, known_keys)) {
        return fmt::format("{}: unknown config key {} (did you mean {}?)", where, entry.key,
                           *closest);
    }

    const std::string table = entry.key.substr(0, entry.key.find('.'));
    std::vector<std::string> same_table;
    std::vector<std::string> top_level;
    for (const std::string& key : known_keys) {
        const std::string top = key.substr(0, key.find('.'));
        if (top == table && key != table) {
            same_table.push_back(key);
        }
        if (std::ranges::find(top_level, top) == top_level.end()) {
            top_level.push_back(top);
        }
    }
    if (!same_table.empty() && entry.key != table) {
        return fmt::format("{}: unknown config key {} (valid keys in [{}]: {})", where, entry.key,
                           table, join(same_table, ", "));
    }
    return fmt::format("{}: unknown config key {} (valid top-level keys and tables: {})", where,
                       entry.key, join(top_level, ", "));
}

} // namespace

void Settings::define(SettingSpec spec) {
    spec.is_secret = spec.is_secret || is_secret_name(spec.name);
    SettingValue value = default_value_for(spec);

    const auto found = m_index.find(spec.name);
    if (found != m_index.end()) {
        m_entries[found->second] = Entry{std::move(spec), std::move(value)};
        return;
    }
    m_index.emplace(spec.name, m_entries.size());
    m_entries.push_back(Entry{std::move(spec), std::move(value)});
}

Result<void> Settings::load_config_file(const std::filesystem::path& path, bool required) {
    const std::filesystem::path file = path.empty() ? default_config_path() : path;
    if (file.empty()) {
        if (required) {
            return fail("usage", "no config file to read: pass --config FILE, or set "
                                 "XDG_CONFIG_HOME or HOME");
        }
        return {};
    }
    std::error_code exists_error;
    if (!std::filesystem::exists(file, exists_error)) {
        if (required) {
            return fail("usage", fmt::format("config file {} not found (check the --config "
                                             "option)",
                                             file.string()));
        }
        return {};
    }

    const auto content = read_text_file(file);
    if (!content) {
        return std::unexpected(content.error());
    }
    const auto table = parse_toml(*content, file);
    if (!table) {
        return std::unexpected(table.error());
    }

    // Known keys, and the entries of the file in the order they appear in it.
    std::map<std::string, std::size_t> index_by_key;
    std::vector<std::string> known_keys;
    for (std::size_t index = 0; index < m_entries.size(); ++index) {
        const std::string& key = m_entries[index].spec.config_key;
        if (!key.empty()) {
            index_by_key.emplace(key, index);
            known_keys.push_back(key);
        }
    }
    std::vector<ConfigEntry> entries;
    collect_entries(*table, "", std::set<std::string>(known_keys.begin(), known_keys.end()),
                    entries);
    std::ranges::stable_sort(entries, [](const ConfigEntry& a, const ConfigEntry& b) {
        return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });

    // Values are staged and applied only once the whole file is valid.
    std::vector<std::pair<std::size_t, SettingValue>> staged;
    for (const ConfigEntry& entry : entries) {
        const auto found = index_by_key.find(entry.key);
        if (found == index_by_key.end()) {
            return fail("usage", unknown_key_message(entry, file, known_keys));
        }
        auto value = value_from_toml(m_entries[found->second].spec, *entry.node);
        if (!value) {
            return fail("usage", fmt::format("{}:{}: {}: {}", file.string(), entry.line, entry.key,
                                             value.error().message));
        }
        value->origin = SettingOrigin{SettingSource::config_file,
                                      fmt::format("config {}:{}", file.string(), entry.line)};
        staged.emplace_back(found->second, std::move(*value));
    }
    for (auto& [index, value] : staged) {
        apply(m_entries[index].value, std::move(value));
    }
    return {};
}

Result<void> Settings::load_environment(const std::map<std::string, std::string>* env) {
    const auto lookup = [env](const std::string& name) -> std::string {
        if (env != nullptr) {
            const auto found = env->find(name);
            return found == env->end() ? std::string() : found->second;
        }
        const char* value = std::getenv(name.c_str());
        return value == nullptr ? std::string() : std::string(value);
    };

    // Values are staged and applied only once every variable is valid.
    std::vector<std::pair<std::size_t, SettingValue>> staged;
    for (std::size_t index = 0; index < m_entries.size(); ++index) {
        const SettingSpec& spec = m_entries[index].spec;
        for (const std::string& variable : spec.env_names) {
            const std::string raw = lookup(variable);
            if (raw.empty()) {
                continue;
            }
            auto value = parse_value(spec, raw);
            if (!value) {
                return fail("usage", fmt::format("environment variable {}: {}", variable,
                                                 value.error().message));
            }
            value->origin = SettingOrigin{SettingSource::environment, "env " + variable};
            staged.emplace_back(index, std::move(*value));
            break;
        }
    }
    for (auto& [index, value] : staged) {
        apply(m_entries[index].value, std::move(value));
    }
    return {};
}

Result<void> Settings::set_from_command_line(const std::string& name, const std::string& value) {
    const auto found = m_index.find(name);
    if (found == m_index.end()) {
        return unknown_setting_error(specs(), name);
    }
    Entry& setting = m_entries[found->second];

    auto parsed = parse_value(setting.spec, value);
    if (!parsed) {
        return fail("usage", fmt::format("{} (command line): {}", name, parsed.error().message));
    }
    parsed->origin = SettingOrigin{SettingSource::command_line, "command line"};
    apply(setting.value, std::move(*parsed));
    return {};
}

Result<void> Settings::set_list_from_command_line(const std::string& name,
                                                  const std::vector<std::string>& items) {
    const auto found = m_index.find(name);
    if (found == m_index.end()) {
        return unknown_setting_error(specs(), name);
    }
    Entry& setting = m_entries[found->second];
    if (setting.spec.kind != SettingKind::list) {
        return fail("usage", fmt::format("{} is a {} setting, not a list", name,
                                         kind_name(setting.spec.kind)));
    }

    SettingValue value = list_value(items);
    value.origin = SettingOrigin{SettingSource::command_line, "command line"};
    apply(setting.value, std::move(value));
    return {};
}

Result<void> Settings::enable(const std::string& flag_name) {
    if (auto checked = require_flag(specs(), flag_name); !checked) {
        return checked;
    }
    return set_from_command_line(flag_name, "true");
}

Result<void> Settings::disable(const std::string& flag_name) {
    if (auto checked = require_flag(specs(), flag_name); !checked) {
        return checked;
    }
    return set_from_command_line(flag_name, "false");
}

const SettingValue& Settings::value(const std::string& name) const {
    return m_entries.at(m_index.at(name)).value;
}

const SettingSpec& Settings::spec(const std::string& name) const {
    return m_entries.at(m_index.at(name)).spec;
}

bool Settings::flag(const std::string& name) const {
    const SettingValue& current = value(name);
    return current.is_set && current.text == "true";
}

std::string Settings::text(const std::string& name) const {
    return value(name).text;
}

std::optional<std::int64_t> Settings::integer(const std::string& name) const {
    const SettingValue& current = value(name);
    std::int64_t number = 0;
    const std::string& text = current.text;
    const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (!current.is_set || status != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return number;
}

std::optional<std::uint64_t> Settings::size_bytes(const std::string& name) const {
    const SettingValue& current = value(name);
    std::uint64_t bytes = 0;
    const std::string& text = current.text;
    const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), bytes);
    if (!current.is_set || status != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return bytes;
}

std::optional<std::int64_t> Settings::duration_ms(const std::string& name) const {
    return integer(name);
}

std::vector<std::string> Settings::list(const std::string& name) const {
    return value(name).items;
}

std::vector<const SettingSpec*> Settings::specs() const {
    std::vector<const SettingSpec*> all;
    all.reserve(m_entries.size());
    for (const Entry& entry : m_entries) {
        all.push_back(&entry.spec);
    }
    return all;
}

std::string Settings::format_text() const {
    struct Row {
        std::string name;
        std::string value;
        std::string origin;
    };
    std::vector<Row> rows;
    std::size_t name_width = 0;
    std::size_t value_width = 0;
    for (const SettingSpec* spec : flags_first(specs())) {
        const SettingValue& current = value(spec->name);
        rows.push_back(Row{spec->name, display_value(*spec, current), current.origin.description});
        name_width = std::max(name_width, rows.back().name.size());
        value_width = std::max(value_width, rows.back().value.size());
    }

    std::string text;
    for (const Row& row : rows) {
        text += fmt::format("{:<{}}  {:<{}}  {}\n", row.name, name_width, row.value, value_width,
                            row.origin);
    }
    return text;
}

std::string Settings::format_json() const {
    nlohmann::ordered_json settings = nlohmann::ordered_json::array();
    for (const SettingSpec* spec : flags_first(specs())) {
        const SettingValue& current = value(spec->name);
        settings.push_back({
            {"name", spec->name},
            {"kind", kind_name(spec->kind)},
            {"value", json_value(*spec, current)},
            {"source", source_name(current.origin.source)},
            {"origin", current.origin.description},
            {"default", spec->is_secret || spec->default_value.empty()
                            ? nlohmann::ordered_json(nullptr)
                            : nlohmann::ordered_json(spec->default_value)},
            {"config_key", spec->config_key},
            {"env", spec->env_names},
            {"description", spec->description},
        });
    }
    // Replacing invalid UTF-8 keeps dump() from throwing on a byte-string path or value.
    return settings.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

} // namespace athena
