// IOC scanners written by hand instead of with std::regex, because the extractor runs them over
// a 16 MiB window per file. Each scanner is one linear pass over a run. It starts only where a
// cheap anchor such as "://", '@', '\', '/', '.' or ':' occurs.
#include "evidence/iocs.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <bitset>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace athena::evidence {
namespace {

// Common TLDs, sorted for binary search. Some real TLDs are left out on purpose because they are
// also file extensions or member names in code, and "libfoo.so", "main.cc" or "user.email" would
// otherwise become domains. The ones left out are so, sh, py, pl, rs, md, cc, in, am, ac, pm, mk,
// ps, to, id, is, bz, zip, mov, app, name, int, run, page, host, new, link, click, email, store,
// support and cloud.
constexpr std::string_view k_known_tlds[] = {
    "ae",  "al",   "ar",  "arpa",  "asia", "at",   "au",    "az",     "ba",      "bd",  "be",
    "bg",  "bid",  "biz", "br",    "buzz", "by",   "ca",    "cf",     "ch",      "cl",  "club",
    "cn",  "co",   "com", "cyou",  "cz",   "de",   "dev",   "dk",     "dz",      "ec",  "edu",
    "ee",  "eg",   "es",  "eu",    "fi",   "fr",   "ga",    "ge",     "gg",      "gl",  "gov",
    "gq",  "gr",   "hk",  "hr",    "hu",   "icu",  "ie",    "il",     "info",    "io",  "ir",
    "it",  "jp",   "ke",  "kp",    "kr",   "kz",   "live",  "lk",     "loan",    "lt",  "lu",
    "lv",  "ly",   "ma",  "me",    "mil",  "ml",   "mn",    "mobi",   "monster", "mx",  "my",
    "net", "ng",   "nl",  "no",    "np",   "nz",   "onion", "online", "org",     "pe",  "ph",
    "pk",  "pro",  "pt",  "pw",    "rest", "ro",   "ru",    "sa",     "se",      "sg",  "shop",
    "si",  "site", "sk",  "space", "su",   "tech", "th",    "tk",     "tn",      "top", "tr",
    "tv",  "tw",   "ua",  "uk",    "us",   "uy",   "uz",    "ve",     "vip",     "vn",  "website",
    "win", "ws",   "xyz", "za",
};

// First labels of reversed package and namespace names ("java.net", "System.Net") that end
// in a real TLD but are never host names.
constexpr std::array<std::string_view, 4> k_namespace_prefixes = {"java", "javax", "android",
                                                                  "system"};

// Character classes, one bit each, looked up by byte value: the scanners test every byte of
// the window, and a table lookup is cheaper there than chains of comparisons.
enum CharClass : std::uint16_t {
    k_printable = 1 << 0, // 0x20..0x7e and tab
    k_digit = 1 << 1,
    k_alpha = 1 << 2,
    k_hex = 1 << 3,
    k_url = 1 << 4,         // letters, digits, '%' and RFC 3986 punctuation except '\''
    k_email_local = 1 << 5, // letters, digits and ._%+-
    k_unix_path = 1 << 6,   // letters, digits and ._-/+~@%,
    k_base64 = 1 << 7,      // letters, digits, + and /
    k_domain = 1 << 8,      // letters, digits, . and -
};

constexpr std::array<std::uint16_t, 256> k_char_classes = [] {
    std::array<std::uint16_t, 256> table{};
    auto add = [&table](std::string_view chars, std::uint16_t classes) {
        for (char c : chars) {
            table[static_cast<unsigned char>(c)] |= classes;
        }
    };
    for (int c = 0x20; c <= 0x7e; ++c) {
        table[c] |= k_printable;
    }
    table['\t'] |= k_printable;
    constexpr std::uint16_t k_word = k_url | k_email_local | k_unix_path | k_base64 | k_domain;
    add("0123456789", k_digit | k_hex | k_word);
    add("abcdefABCDEF", k_hex);
    add("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", k_alpha | k_word);
    add("-._~:/?#[]@!$&()*+,;=%", k_url);
    add("._%+-", k_email_local);
    add("._-/+~@%,", k_unix_path);
    add("+/", k_base64);
    add(".-", k_domain);
    return table;
}();

bool has_class(char c, std::uint16_t classes) {
    return (k_char_classes[static_cast<unsigned char>(c)] & classes) != 0;
}

bool is_printable(std::uint8_t byte) {
    return (k_char_classes[byte] & k_printable) != 0;
}

bool is_digit(char c) {
    return has_class(c, k_digit);
}

bool is_alpha(char c) {
    return has_class(c, k_alpha);
}

bool is_alnum(char c) {
    return has_class(c, k_digit | k_alpha);
}

bool is_hex(char c) {
    return has_class(c, k_hex);
}

char to_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lower_copy(std::string_view text) {
    std::string result(text);
    std::ranges::transform(result, result.begin(), to_lower);
    return result;
}

// Whether text contains word at pos, ignoring ASCII case. word must be lower case.
bool matches_at(std::string_view text, std::size_t pos, std::string_view word) {
    if (pos + word.size() > text.size()) {
        return false;
    }
    for (std::size_t i = 0; i < word.size(); ++i) {
        if (to_lower(text[pos + i]) != word[i]) {
            return false;
        }
    }
    return true;
}

char char_before(std::string_view text, std::size_t pos) {
    return pos == 0 ? '\0' : text[pos - 1];
}

char char_at(std::string_view text, std::size_t pos) {
    return pos < text.size() ? text[pos] : '\0';
}

// Appends unique values up to a cap, keeping the order of first appearance.
class Collector {
public:
    Collector(std::vector<std::string>& out, std::size_t max_values)
        : m_out(out), m_max_values(max_values) {}

    bool is_full() const { return m_out.size() >= m_max_values; }

    void add(std::string value) {
        if (is_full() || std::ranges::find(m_out, value) != m_out.end()) {
            return;
        }
        m_out.push_back(std::move(value));
    }

private:
    std::vector<std::string>& m_out;
    std::size_t m_max_values;
};

constexpr std::size_t k_longest_tld = 7;
static_assert(std::ranges::is_sorted(k_known_tlds));
static_assert(std::ranges::all_of(k_known_tlds, [](std::string_view tld) {
    return tld.size() <= k_longest_tld;
}));

bool is_known_tld(std::string_view label) {
    if (label.size() > k_longest_tld) {
        return false;
    }
    std::array<char, k_longest_tld> lower{};
    std::ranges::transform(label, lower.begin(), to_lower);
    return std::ranges::binary_search(k_known_tlds, std::string_view(lower.data(), label.size()));
}

bool is_valid_label(std::string_view label) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
        return false;
    }
    return std::ranges::all_of(label, [](char c) { return is_alnum(c) || c == '-'; });
}

// Returns the number of labels in a dotted name, or 0 when any label is invalid (empty, too
// long, or with characters other than letters, digits and inner hyphens).
std::size_t count_valid_labels(std::string_view name) {
    std::size_t count = 0;
    std::size_t start = 0;
    while (true) {
        std::size_t dot = name.find('.', start);
        std::size_t end = dot == std::string_view::npos ? name.size() : dot;
        if (!is_valid_label(name.substr(start, end - start))) {
            return 0;
        }
        ++count;
        if (dot == std::string_view::npos) {
            return count;
        }
        start = dot + 1;
    }
}

std::string_view last_label(std::string_view name) {
    return name.substr(name.rfind('.') + 1);
}

// A host name as it appears in a URL: valid labels, the last one letters only. The TLD need
// not be in the built-in list, because "://" already shows that this is a host.
bool is_url_host_name(std::string_view host) {
    if (count_valid_labels(host) < 2) {
        return false;
    }
    std::string_view tld = last_label(host);
    return tld.size() >= 2 && std::ranges::all_of(tld, is_alpha);
}

// Validates a dotted-quad IPv4 address: four decimal octets of at most 255 without leading
// zeros. Network, broadcast and multicast forms (a.0.0.0, 0.x.x.x, 224 and above) are
// rejected too, because in files they are netmasks and version numbers such as "2.0.0.0".
bool is_ipv4_host(std::string_view text) {
    std::array<int, 4> octets{};
    std::size_t index = 0;
    std::size_t start = 0;
    while (true) {
        std::size_t dot = text.find('.', start);
        std::string_view part = text.substr(
            start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (index >= 4 || part.empty() || part.size() > 3 || !std::ranges::all_of(part, is_digit) ||
            (part.size() > 1 && part[0] == '0')) {
            return false;
        }
        int value = 0;
        for (char c : part) {
            value = value * 10 + (c - '0');
        }
        if (value > 255) {
            return false;
        }
        octets[index++] = value;
        if (dot == std::string_view::npos) {
            break;
        }
        start = dot + 1;
    }
    if (index != 4 || octets[0] == 0 || octets[0] >= 224) {
        return false;
    }
    return !(octets[1] == 0 && octets[2] == 0 && octets[3] == 0);
}

bool is_ipv6_literal(std::string_view text) {
    if (text.size() < 3 || text.size() > 45 || std::ranges::none_of(text, is_digit)) {
        return false;
    }
    std::string copy(text);
    in6_addr address{};
    return inet_pton(AF_INET6, copy.c_str(), &address) == 1;
}

// URLs ----------------------------------------------------------------------------------

bool is_url_char(char c) {
    return has_class(c, k_url);
}

std::string_view trim_url_end(std::string_view url) {
    while (!url.empty()) {
        char last = url.back();
        bool is_unbalanced_paren =
            last == ')' && std::ranges::count(url, '(') < std::ranges::count(url, ')');
        bool is_unbalanced_bracket =
            last == ']' && std::ranges::count(url, '[') < std::ranges::count(url, ']');
        if (std::string_view(".,;:!?").find(last) == std::string_view::npos &&
            !is_unbalanced_paren && !is_unbalanced_bracket) {
            break;
        }
        url.remove_suffix(1);
    }
    return url;
}

// The host of a URL as an IP literal or a domain name. Both are empty for a single-label host
// such as "localhost".
struct UrlHost {
    std::string ip;
    std::string domain;
};

// Parses the host out of authority, the text after "://". Returns false when the authority is
// not a real host, e.g. "%s", "$HOST" or empty, or when its port is not a number.
bool parse_url_host(std::string_view authority, UrlHost& host) {
    authority = authority.substr(0, authority.find_first_of("/?#"));
    if (std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
        authority.remove_prefix(at + 1);
    }

    std::string_view name;
    std::string_view port;
    if (authority.starts_with('[')) {
        std::size_t close = authority.find(']');
        if (close == std::string_view::npos) {
            return false;
        }
        name = authority.substr(1, close - 1);
        port = authority.substr(close + 1);
        if (!port.empty() && !port.starts_with(':')) {
            return false;
        }
        if (!is_ipv6_literal(name)) {
            return false;
        }
        host.ip = lower_copy(name);
    } else {
        std::size_t colon = authority.find(':');
        name = authority.substr(0, colon);
        port = colon == std::string_view::npos ? std::string_view() : authority.substr(colon);
        if (name.empty()) {
            return false;
        }
        if (is_ipv4_host(name)) {
            host.ip = std::string(name);
        } else if (is_url_host_name(name)) {
            host.domain = lower_copy(name);
        } else if (!is_valid_label(name)) {
            return false; // neither a dotted host nor a single label such as "localhost"
        }
    }
    if (port.starts_with(':')) {
        port.remove_prefix(1);
    }
    return std::ranges::all_of(port, is_digit);
}

struct Collectors {
    Collector urls;
    Collector ips;
    Collector domains;
    Collector emails;
    Collector registry_keys;
    Collector file_paths;
};

void scan_urls(std::string_view run, Collectors& out) {
    constexpr std::size_t k_max_url_length = 2048;
    std::size_t search_from = 0;
    while (!out.urls.is_full()) {
        std::size_t marker = run.find("://", search_from);
        if (marker == std::string_view::npos) {
            return;
        }
        search_from = marker + 3;

        std::size_t scheme_start = marker;
        while (scheme_start > 0 && is_alpha(run[scheme_start - 1])) {
            --scheme_start;
        }
        std::string scheme = lower_copy(run.substr(scheme_start, marker - scheme_start));
        if (scheme != "http" && scheme != "https" && scheme != "ftp") {
            continue;
        }

        std::size_t end = marker + 3;
        while (end < run.size() && is_url_char(run[end])) {
            ++end;
        }
        std::string_view url = trim_url_end(run.substr(scheme_start, end - scheme_start));
        UrlHost host;
        if (url.size() <= scheme.size() + 3 ||
            !parse_url_host(url.substr(scheme.size() + 3), host)) {
            continue;
        }
        out.urls.add(std::string(url.substr(0, k_max_url_length)));
        if (!host.ip.empty()) {
            out.ips.add(host.ip);
        }
        if (!host.domain.empty()) {
            out.domains.add(host.domain);
        }
        search_from = scheme_start + url.size();
    }
}

// E-mail addresses ------------------------------------------------------------------------

bool is_email_local_char(char c) {
    return has_class(c, k_email_local);
}

bool is_domain_char(char c) {
    return has_class(c, k_domain);
}

void scan_emails(std::string_view run, Collectors& out) {
    std::size_t at = run.find('@');
    while (at != std::string_view::npos && !out.emails.is_full()) {
        std::size_t local_start = at;
        while (local_start > 0 && is_email_local_char(run[local_start - 1])) {
            --local_start;
        }
        std::size_t domain_end = at + 1;
        while (domain_end < run.size() && is_domain_char(run[domain_end])) {
            ++domain_end;
        }
        std::string_view local = run.substr(local_start, at - local_start);
        std::string_view domain = run.substr(at + 1, domain_end - at - 1);
        while (!domain.empty() && (domain.back() == '.' || domain.back() == '-')) {
            domain.remove_suffix(1);
        }
        while (!local.empty() && local.front() == '.') {
            local.remove_prefix(1);
        }
        if (!local.empty() && local.back() != '.' && is_plausible_domain(domain)) {
            out.emails.add(std::string(local) + "@" + lower_copy(domain));
        }
        at = run.find('@', at + 1);
    }
}

// IPv4 addresses and domain names -----------------------------------------------------------

// Both come from tokens of letters, digits, dots and hyphens, so "v1.2.3.4" and
// "libc.so.6" are single tokens that fail as a whole instead of leaking a part.
void scan_tokens(std::string_view run, Collectors& out) {
    std::size_t pos = 0;
    while (pos < run.size()) {
        if (!is_domain_char(run[pos])) {
            ++pos;
            continue;
        }
        std::size_t start = pos;
        while (pos < run.size() && is_domain_char(run[pos])) {
            ++pos;
        }
        std::string_view token = run.substr(start, pos - start);
        if (token.find('.') == std::string_view::npos) {
            continue;
        }
        char before = char_before(run, start);
        char after = char_at(run, pos);
        if (before == '_' || after == '_' || after == '@') {
            continue; // part of an identifier or the local part of an e-mail address
        }

        // A sentence may end right after an address, so one trailing dot is allowed.
        std::string_view trimmed = token.ends_with('.') ? token.substr(0, token.size() - 1) : token;
        bool is_numeric =
            std::ranges::all_of(trimmed, [](char c) { return is_digit(c) || c == '.'; });
        if (is_numeric) {
            if (!trimmed.starts_with('.') && is_ipv4_host(trimmed)) {
                out.ips.add(std::string(trimmed));
            }
            continue;
        }

        // Names right after '@', '/' or '\' are e-mail domains or file names. Names before '('
        // are method calls in code.
        if (before == '@' || before == '/' || before == '\\' || after == '(') {
            continue;
        }
        while (!trimmed.empty() && (trimmed.front() == '.' || trimmed.front() == '-')) {
            trimmed.remove_prefix(1);
        }
        while (!trimmed.empty() && (trimmed.back() == '.' || trimmed.back() == '-')) {
            trimmed.remove_suffix(1);
        }
        if (is_plausible_domain(trimmed)) {
            out.domains.add(lower_copy(trimmed));
        }
    }
}

void scan_ipv6(std::string_view run, Collectors& out) {
    std::size_t pos = run.find(':');
    while (pos != std::string_view::npos && !out.ips.is_full()) {
        std::size_t start = pos;
        while (start > 0 &&
               (is_hex(run[start - 1]) || run[start - 1] == ':' || run[start - 1] == '.')) {
            --start;
        }
        std::size_t end = pos;
        while (end < run.size() && (is_hex(run[end]) || run[end] == ':' || run[end] == '.')) {
            ++end;
        }
        std::string_view token = run.substr(start, end - start);
        if (token.ends_with('.')) {
            token.remove_suffix(1);
        }
        char before = char_before(run, start);
        char after = char_at(run, end);
        bool is_bounded = !is_alnum(before) && before != '_' && !is_alnum(after) && after != '_';
        if (is_bounded && std::ranges::count(token, ':') >= 2 && is_ipv6_literal(token)) {
            out.ips.add(lower_copy(token));
        }
        pos = run.find(':', std::max(end, pos + 1));
    }
}

// Registry keys and Windows paths -----------------------------------------------------------

// Characters that end a registry key or Windows path: quotes, shell and list separators.
bool ends_windows_name(char c) {
    return std::string_view("\"'`<>|;,*?[]\t").find(c) != std::string_view::npos;
}

constexpr std::string_view k_registry_roots[] = {"hkey_local_machine",
                                                 "hkey_current_user",
                                                 "hkey_classes_root",
                                                 "hkey_current_config",
                                                 "hkey_performance_data",
                                                 "hkey_users",
                                                 "hklm",
                                                 "hkcu",
                                                 "hkcr",
                                                 "hkcc",
                                                 "hku"};

// Whether word starts a new registry key or path ("HKCU", "D:", "%TEMP%") or is a command
// option ("-Name", "/f"), so that it cannot continue the name before it.
bool starts_new_name(std::string_view word) {
    if (word.starts_with('-') || word.starts_with('/') ||
        word.find_first_of(":%") != std::string_view::npos) {
        return true;
    }
    return std::ranges::any_of(k_registry_roots, [word](std::string_view root) {
        return word.size() == root.size() && matches_at(word, 0, root);
    });
}

// Returns the end of a backslash-separated name that starts at pos. A space belongs to the
// name only when the next word is followed by a backslash, as in "Windows NT\CurrentVersion",
// and does not start a new name. The last component therefore ends at its first space.
std::size_t windows_name_end(std::string_view run, std::size_t pos) {
    std::size_t end = pos;
    while (end < run.size() && !ends_windows_name(run[end])) {
        if (run[end] != ' ') {
            ++end;
            continue;
        }
        std::size_t next = end;
        while (next < run.size() && run[next] == ' ') {
            ++next;
        }
        std::size_t word_end = next;
        while (word_end < run.size() && run[word_end] != ' ' && !ends_windows_name(run[word_end]) &&
               run[word_end] != '\\') {
            ++word_end;
        }
        bool is_continued = word_end < run.size() && run[word_end] == '\\' &&
                            !starts_new_name(run.substr(next, word_end - next));
        if (!is_continued) {
            break;
        }
        end = word_end;
    }
    while (end > pos && (run[end - 1] == '.' || run[end - 1] == ' ')) {
        --end;
    }
    return end;
}

// Collapses the doubled backslashes of C and JSON string literals.
std::string collapse_backslashes(std::string_view text) {
    std::string result;
    result.reserve(text.size());
    for (char c : text) {
        if (c == '\\' && !result.empty() && result.back() == '\\') {
            continue;
        }
        result.push_back(c);
    }
    return result;
}

// Returns the position after the root's separator ("\", "\\" or ":\"), or npos.
std::size_t skip_root_separator(std::string_view run, std::size_t pos, bool allow_colon) {
    if (allow_colon && char_at(run, pos) == ':') {
        ++pos;
    }
    if (char_at(run, pos) != '\\') {
        return std::string_view::npos;
    }
    ++pos;
    if (char_at(run, pos) == '\\') {
        ++pos;
    }
    return pos;
}

void scan_registry_keys(std::string_view run, Collectors& out) {
    // Each key has a backslash right after its root ("HKLM\" or the PowerShell "HKLM:\").
    std::size_t slash = run.find('\\');
    while (slash != std::string_view::npos && !out.registry_keys.is_full()) {
        std::size_t root_end = char_before(run, slash) == ':' ? slash - 1 : slash;
        for (std::string_view root : k_registry_roots) {
            if (root_end < root.size() || !matches_at(run, root_end - root.size(), root)) {
                continue;
            }
            std::size_t start = root_end - root.size();
            char before = char_before(run, start);
            std::size_t name_start = skip_root_separator(run, root_end, true);
            std::size_t end = windows_name_end(run, name_start);
            if (!is_alnum(before) && before != '_' && end > name_start) {
                out.registry_keys.add(collapse_backslashes(run.substr(start, end - start)));
                slash = end;
            }
            break;
        }
        slash = run.find('\\', slash + 1);
    }
}

// Returns where the "%NAME%" that ends right before pos starts, or npos.
std::size_t environment_variable_start(std::string_view run, std::size_t pos) {
    constexpr std::size_t k_max_name_length = 40;
    if (char_before(run, pos) != '%') {
        return std::string_view::npos;
    }
    std::size_t open = pos - 1;
    while (open > 0 && pos - open <= k_max_name_length + 1) {
        char c = run[open - 1];
        if (c == '%') {
            bool is_named = open + 1 < pos && is_alpha(run[open]);
            return is_named ? open - 1 : std::string_view::npos;
        }
        if (!is_alnum(c) && c != '_' && c != '(' && c != ')') {
            return std::string_view::npos;
        }
        --open;
    }
    return std::string_view::npos;
}

void scan_windows_paths(std::string_view run, Collectors& out) {
    // Each path has a backslash right after its drive ("C:\") or variable ("%APPDATA%\").
    std::size_t slash = run.find('\\');
    while (slash != std::string_view::npos && !out.file_paths.is_full()) {
        std::size_t start = std::string_view::npos;
        if (slash >= 2 && run[slash - 1] == ':' && is_alpha(run[slash - 2])) {
            start = slash - 2;
        } else {
            start = environment_variable_start(run, slash);
        }
        char before = start == std::string_view::npos ? '\0' : char_before(run, start);
        if (start != std::string_view::npos && !is_alnum(before) && before != '_' &&
            before != '%') {
            std::size_t name_start = skip_root_separator(run, slash, false);
            std::size_t end = windows_name_end(run, name_start);
            // A colon after the drive ends the path (an alternate data stream or a list).
            std::size_t colon = run.substr(name_start, end - name_start).find(':');
            if (colon != std::string_view::npos) {
                end = name_start + colon;
            }
            if (end > name_start) {
                out.file_paths.add(collapse_backslashes(run.substr(start, end - start)));
                slash = end;
            }
        }
        slash = run.find('\\', slash + 1);
    }
}

// Unix paths ------------------------------------------------------------------------------

bool is_unix_path_char(char c) {
    return has_class(c, k_unix_path);
}

void scan_unix_paths(std::string_view run, Collectors& out) {
    // Top-level folders whose files matter in triage. "/dev/shm" may also stand alone.
    static constexpr std::array<std::string_view, 11> k_roots = {
        "/etc/",  "/tmp/",  "/var/",  "/usr/", "/bin/",   "/sbin/",
        "/home/", "/root/", "/proc/", "/opt/", "/dev/shm"};

    std::size_t pos = run.find('/');
    while (pos != std::string_view::npos && !out.file_paths.is_full()) {
        char before = char_before(run, pos);
        bool is_boundary =
            !is_alnum(before) && std::string_view("_.-/~$}").find(before) == std::string_view::npos;
        std::size_t end = pos;
        if (is_boundary) {
            for (std::string_view root : k_roots) {
                if (!run.substr(pos).starts_with(root)) {
                    continue;
                }
                end = pos + root.size();
                if (!root.ends_with('/') && is_unix_path_char(char_at(run, end)) &&
                    run[end] != '/') {
                    break; // "/dev/shmfoo" is not under /dev/shm
                }
                while (end < run.size() && is_unix_path_char(run[end])) {
                    ++end;
                }
                while (end > pos && (run[end - 1] == '.' || run[end - 1] == ',')) {
                    --end;
                }
                bool is_bare_shm = root == "/dev/shm" && end == pos + root.size();
                if (end > pos + root.size() || is_bare_shm) {
                    out.file_paths.add(std::string(run.substr(pos, end - pos)));
                }
                break;
            }
        }
        pos = run.find('/', std::max(end, pos + 1));
    }
}

void scan_run(std::string_view run, Collectors& out) {
    if (run.find("://") != std::string_view::npos) {
        scan_urls(run, out);
    }
    if (run.find('@') != std::string_view::npos && !out.emails.is_full()) {
        scan_emails(run, out);
    }
    if (run.find('.') != std::string_view::npos && !(out.ips.is_full() && out.domains.is_full())) {
        scan_tokens(run, out);
    }
    if (run.find("::") != std::string_view::npos || std::ranges::count(run, ':') >= 7) {
        scan_ipv6(run, out);
    }
    if (run.find('\\') != std::string_view::npos) {
        scan_registry_keys(run, out);
        scan_windows_paths(run, out);
    }
    if (run.find('/') != std::string_view::npos) {
        scan_unix_paths(run, out);
    }
}

// Notable strings -------------------------------------------------------------------------

// Command names and fragments that download, decode or run code.
constexpr std::string_view k_command_markers[] = {"powershell",
                                                  "cmd.exe",
                                                  "cmd /c",
                                                  "wget ",
                                                  "curl ",
                                                  "bash -c",
                                                  "sh -c",
                                                  "/bin/sh",
                                                  "/bin/bash",
                                                  "/dev/tcp/",
                                                  "nc -e",
                                                  "chmod +x",
                                                  "base64 -d",
                                                  "crontab",
                                                  "invoke-expression",
                                                  "iex(",
                                                  "iex ",
                                                  "downloadstring",
                                                  "downloadfile",
                                                  "frombase64string",
                                                  "net.webclient",
                                                  "-encodedcommand",
                                                  " -enc ",
                                                  "certutil",
                                                  "bitsadmin",
                                                  "mshta",
                                                  "rundll32",
                                                  "regsvr32",
                                                  "schtasks",
                                                  "vssadmin",
                                                  "wscript",
                                                  "cscript"};

std::uint16_t lower_pair_key(char first, char second) {
    return static_cast<std::uint16_t>((static_cast<unsigned char>(to_lower(first)) << 8) |
                                      static_cast<unsigned char>(to_lower(second)));
}

bool has_command_marker(std::string_view text) {
    // Markers grouped by their first two characters, so that most positions of the text cost
    // one bit test and only a matching pair is compared in full.
    static const auto k_markers_by_pair = [] {
        std::unordered_map<std::uint16_t, std::vector<std::string_view>> groups;
        for (std::string_view marker : k_command_markers) {
            groups[lower_pair_key(marker[0], marker[1])].push_back(marker);
        }
        return groups;
    }();
    static const auto k_is_marker_pair = [] {
        auto bits = std::make_unique<std::bitset<65536>>();
        for (const auto& [key, markers] : k_markers_by_pair) {
            bits->set(key);
        }
        return bits;
    }();

    static constexpr auto k_is_first_char = [] {
        std::array<bool, 256> table{};
        for (std::string_view marker : k_command_markers) {
            char first = marker[0];
            table[static_cast<unsigned char>(first)] = true;
            if (first >= 'a' && first <= 'z') {
                table[static_cast<unsigned char>(first - 'a' + 'A')] = true;
            }
        }
        return table;
    }();

    for (std::size_t pos = 0; pos + 1 < text.size(); ++pos) {
        // Commands start at a word boundary ("\powershell.exe", "|sh -c").
        if (!k_is_first_char[static_cast<unsigned char>(text[pos])] ||
            (is_alnum(text[pos]) && is_alnum(char_before(text, pos)))) {
            continue;
        }
        std::uint16_t key = lower_pair_key(text[pos], text[pos + 1]);
        if (!k_is_marker_pair->test(key)) {
            continue;
        }
        for (std::string_view marker : k_markers_by_pair.at(key)) {
            if (matches_at(text, pos, marker)) {
                return true;
            }
        }
    }
    return false;
}

bool is_base64_char(char c) {
    return has_class(c, k_base64);
}

// A stretch of at least 40 base64 characters that mixes upper case, lower case and digits,
// which plain words and hex digests do not.
bool has_base64_blob(std::string_view text) {
    constexpr std::size_t k_min_blob_length = 40;
    std::size_t pos = 0;
    while (pos + k_min_blob_length <= text.size()) {
        std::size_t start = pos;
        while (pos < text.size() && is_base64_char(text[pos])) {
            ++pos;
        }
        if (pos - start >= k_min_blob_length) {
            std::string_view blob = text.substr(start, pos - start);
            bool has_upper = std::ranges::any_of(blob, [](char c) { return c >= 'A' && c <= 'Z'; });
            bool has_lower = std::ranges::any_of(blob, [](char c) { return c >= 'a' && c <= 'z'; });
            if (has_upper && has_lower && std::ranges::any_of(blob, is_digit)) {
                return true;
            }
        }
        ++pos;
    }
    return false;
}

} // namespace

PrintableRuns PrintableRuns::find(std::span<const std::uint8_t> bytes, std::size_t min_length) {
    PrintableRuns result;
    min_length = std::max<std::size_t>(min_length, 1);
    const char* chars = reinterpret_cast<const char*>(bytes.data());

    // Single-byte runs point straight into the bytes.
    std::size_t pos = 0;
    while (pos < bytes.size()) {
        if (!is_printable(bytes[pos])) {
            ++pos;
            continue;
        }
        std::size_t start = pos;
        while (pos < bytes.size() && is_printable(bytes[pos])) {
            ++pos;
        }
        if (pos - start >= min_length) {
            result.m_runs.push_back({start, std::string_view(chars + start, pos - start)});
        }
    }

    // UTF-16LE runs at both byte alignments are decoded into m_utf16_text first and get
    // their views once that buffer no longer grows.
    struct Utf16Run {
        std::uint64_t offset;
        std::size_t text_start;
        std::size_t length;
    };
    std::vector<Utf16Run> utf16_runs;
    for (std::size_t alignment = 0; alignment < 2; ++alignment) {
        pos = alignment;
        while (pos + 1 < bytes.size()) {
            if (!is_printable(bytes[pos]) || bytes[pos + 1] != 0) {
                pos += 2;
                continue;
            }
            std::size_t start = pos;
            std::size_t text_start = result.m_utf16_text.size();
            while (pos + 1 < bytes.size() && is_printable(bytes[pos]) && bytes[pos + 1] == 0) {
                result.m_utf16_text.push_back(static_cast<char>(bytes[pos]));
                pos += 2;
            }
            std::size_t length = (pos - start) / 2;
            if (length >= min_length) {
                utf16_runs.push_back({start, text_start, length});
            } else {
                result.m_utf16_text.resize(text_start);
            }
        }
    }
    for (const Utf16Run& run : utf16_runs) {
        result.m_runs.push_back(
            {run.offset, std::string_view(result.m_utf16_text).substr(run.text_start, run.length)});
    }

    std::ranges::sort(result.m_runs, {}, &TextRun::offset);
    return result;
}

bool is_plausible_domain(std::string_view text) {
    if (text.size() > 253 || count_valid_labels(text) < 2) {
        return false;
    }

    // Mixed-case TLDs ("System.Net") come from code, not from host names.
    std::string_view tld = last_label(text);
    bool is_one_case = std::ranges::all_of(tld, [](char c) { return c >= 'a' && c <= 'z'; }) ||
                       std::ranges::all_of(tld, [](char c) { return c >= 'A' && c <= 'Z'; });
    if (!is_one_case || !is_known_tld(tld)) {
        return false;
    }
    std::string_view first = text.substr(0, text.find('.'));
    return std::ranges::none_of(k_namespace_prefixes, [first](std::string_view prefix) {
        return first.size() == prefix.size() && matches_at(first, 0, prefix);
    });
}

IocLists extract_iocs(const std::vector<TextRun>& runs, std::size_t max_per_kind) {
    IocLists lists;
    Collectors out{{lists.urls, max_per_kind},          {lists.ips, max_per_kind},
                   {lists.domains, max_per_kind},       {lists.emails, max_per_kind},
                   {lists.registry_keys, max_per_kind}, {lists.file_paths, max_per_kind}};
    for (const TextRun& run : runs) {
        scan_run(run.text, out);
    }
    return lists;
}

IocLists extract_iocs(std::string_view bytes, std::size_t max_per_kind) {
    auto data = std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    PrintableRuns runs = PrintableRuns::find(data, k_min_ioc_run_length);
    return extract_iocs(runs.runs(), max_per_kind);
}

int notable_string_score(std::string_view text) {
    // Finding IOCs in a single string reuses the scanners with a cap of one per kind.
    IocLists found;
    Collectors out{{found.urls, 1},   {found.ips, 1},           {found.domains, 1},
                   {found.emails, 1}, {found.registry_keys, 1}, {found.file_paths, 1}};
    scan_run(text, out);

    int score = 0;
    score += found.urls.empty() ? 0 : 50;
    score += has_command_marker(text) ? 40 : 0;
    score += found.registry_keys.empty() ? 0 : 40;
    score += found.ips.empty() ? 0 : 30;
    score += has_base64_blob(text) ? 30 : 0;
    score += found.file_paths.empty() ? 0 : 20;
    score += found.emails.empty() ? 0 : 20;
    score += found.domains.empty() ? 0 : 15;
    return score;
}

std::vector<std::string> rank_notable_strings(const std::vector<TextRun>& runs,
                                              std::size_t max_strings) {
    struct Candidate {
        int score;
        std::string_view text;
    };
    std::vector<Candidate> notable;
    std::vector<std::string_view> plain; // only the first max_strings can ever be returned
    std::unordered_set<std::string_view> seen;

    for (const TextRun& run : runs) {
        if (run.text.size() < k_min_string_length) {
            continue;
        }
        std::string_view text = run.text.substr(0, k_max_string_length);
        if (!seen.insert(text).second) {
            continue;
        }
        int score = notable_string_score(text);
        if (score > 0) {
            notable.push_back({score, text});
        } else if (plain.size() < max_strings) {
            plain.push_back(text);
        }
    }

    std::ranges::stable_sort(notable, std::ranges::greater{}, &Candidate::score);
    std::vector<std::string> result;
    for (const Candidate& candidate : notable) {
        if (result.size() >= max_strings) {
            return result;
        }
        result.emplace_back(candidate.text);
    }
    for (std::string_view text : plain) {
        if (result.size() >= max_strings) {
            break;
        }
        result.emplace_back(text);
    }
    return result;
}

} // namespace athena::evidence
