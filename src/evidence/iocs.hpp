// Printable-string and IOC extraction over raw bytes. Internal to the evidence module: the
// extractor calls these on the scan window, and the unit tests call them directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace athena::evidence {

// A run of printable ASCII (0x20..0x7e and tab) found in the bytes, either stored as single
// bytes or as UTF-16LE code units whose high byte is zero.
struct TextRun {
    std::uint64_t offset = 0; // byte offset of the run's first character
    std::string_view text;    // the run as ASCII; points into the bytes or into PrintableRuns
};

// The printable runs of a buffer, in offset order. Holds the decoded UTF-16LE runs, so it
// must outlive every TextRun it hands out, and it points into the bytes it was built from.
class PrintableRuns {
public:
    // Finds the runs of at least min_length characters in bytes.
    static PrintableRuns find(std::span<const std::uint8_t> bytes, std::size_t min_length);

    const std::vector<TextRun>& runs() const { return m_runs; }

private:
    std::string m_utf16_text; // decoded UTF-16LE runs, back to back
    std::vector<TextRun> m_runs;
};

// Shortest run worth scanning for IOCs ("a.ru" is 4 characters).
inline constexpr std::size_t k_min_ioc_run_length = 4;
// Shortest run reported as a notable string.
inline constexpr std::size_t k_min_string_length = 6;
// Maximum length of a notable string; longer runs are cut to this many characters.
inline constexpr std::size_t k_max_string_length = 200;

// Indicators of compromise found in text, each list deduplicated, in order of first
// appearance and capped at the max_per_kind given to extract_iocs.
struct IocLists {
    std::vector<std::string> urls;    // http, https and ftp URLs
    std::vector<std::string> ips;     // IPv4 and IPv6 literals, also URL hosts
    std::vector<std::string> domains; // lower-case; also URL hosts
    std::vector<std::string> emails;
    std::vector<std::string> registry_keys; // HKEY_*\..., HKLM\..., HKCU:\... and so on
    std::vector<std::string> file_paths;    // C:\..., %APPDATA%\..., /etc/..., /tmp/...
};

// Scans each run for IOCs. Runs are scanned separately, so no IOC spans two runs.
IocLists extract_iocs(const std::vector<TextRun>& runs, std::size_t max_per_kind);

// Finds the printable runs in bytes and scans them; for tests and small inputs.
IocLists extract_iocs(std::string_view bytes, std::size_t max_per_kind);

// Ranks the runs of at least k_min_string_length characters: strings with URLs, IP
// addresses, registry keys, paths, shell or PowerShell commands and base64-looking blobs
// come first, then plain text, each group in file order. Each string is cut to
// k_max_string_length characters before deduplication; at most max_strings are returned.
std::vector<std::string> rank_notable_strings(const std::vector<TextRun>& runs,
                                              std::size_t max_strings);

// The score rank_notable_strings orders by: 0 for plain strings, higher is more notable.
int notable_string_score(std::string_view text);

// Whether text is a plausible domain name: two or more valid labels ending in a TLD from
// the built-in list of common TLDs, so "libc.so.6" and "main.cpp" are not domains.
bool is_plausible_domain(std::string_view text);

} // namespace athena::evidence
