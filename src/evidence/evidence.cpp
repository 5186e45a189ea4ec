#include <athena/evidence.hpp>
#include <athena/rules.hpp>

#include "evidence/iocs.hpp"

#include <fcntl.h>
#include <magic.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>
#include <fmt/format.h>
#include <optional>
#include <string_view>
#include <utility>

namespace athena {
namespace {

// Bytes handed to libmagic. Its magic entries look at the first few KiB, but its text and
// encoding checks read every byte given, which made libmagic most of a cold scan's CPU time
// with a 1 MiB window; 64 KiB still reaches the deepest common signatures (ISO 9660 at 32 KiB).
constexpr std::size_t k_magic_window_bytes = 64u << 10;

// Checks left out because they are slow and add little for triage: decompressing to look
// inside (the outer type is what we report), tar headers, OLE2 (CDF) internals and CSV.
constexpr int k_magic_flags =
    MAGIC_NO_CHECK_COMPRESS | MAGIC_NO_CHECK_TAR | MAGIC_NO_CHECK_CDF | MAGIC_NO_CHECK_CSV;

// One libmagic handle. A magic_t keeps its result buffer and error state inside, so it is
// not thread-safe; handles are lent out one per extraction from MagicPool.
class MagicHandle {
public:
    MagicHandle() {
        m_cookie = magic_open(k_magic_flags);
        if (m_cookie == nullptr) {
            m_load_error = "magic_open failed: out of memory";
            return;
        }
        if (magic_load(m_cookie, nullptr) != 0) {
            const char* reason = magic_error(m_cookie);
            m_load_error = fmt::format("cannot load the libmagic database: {}",
                                       reason != nullptr ? reason : "unknown error");
        }
    }

    ~MagicHandle() {
        if (m_cookie != nullptr) {
            magic_close(m_cookie);
        }
    }

    MagicHandle(const MagicHandle&) = delete;
    MagicHandle& operator=(const MagicHandle&) = delete;

    // Empty when the handle loaded the database.
    const std::string& load_error() const { return m_load_error; }

    std::string describe(std::span<const std::uint8_t> bytes) {
        return buffer_type(k_magic_flags, bytes);
    }

    std::string mime_type(std::span<const std::uint8_t> bytes) {
        return buffer_type(k_magic_flags | MAGIC_MIME_TYPE, bytes);
    }

private:
    std::string buffer_type(int flags, std::span<const std::uint8_t> bytes) {
        // An empty span may carry a null pointer, which libmagic does not accept.
        static constexpr std::uint8_t k_no_bytes = 0;
        magic_setflags(m_cookie, flags);
        const char* text =
            magic_buffer(m_cookie, bytes.empty() ? &k_no_bytes : bytes.data(), bytes.size());
        return text != nullptr ? text : "";
    }

    magic_t m_cookie = nullptr;
    std::string m_load_error;
};

// Handles are pooled rather than kept per thread: each one holds its own parsed copy of the
// magic database (several MiB), and a scan has more worker threads than extractions running
// at once. The pool grows to the peak number of concurrent extractions.
class MagicPool {
public:
    class Lease {
    public:
        Lease(MagicPool& pool, std::unique_ptr<MagicHandle> handle)
            : m_pool(pool), m_handle(std::move(handle)) {}
        ~Lease() { m_pool.give_back(std::move(m_handle)); }
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        MagicHandle& operator*() const { return *m_handle; }
        MagicHandle* operator->() const { return m_handle.get(); }

    private:
        MagicPool& m_pool;
        std::unique_ptr<MagicHandle> m_handle;
    };

    Lease borrow() {
        {
            std::lock_guard lock(m_mutex);
            if (!m_idle.empty()) {
                auto handle = std::move(m_idle.back());
                m_idle.pop_back();
                return Lease(*this, std::move(handle));
            }
        }
        return Lease(*this, std::make_unique<MagicHandle>());
    }

private:
    void give_back(std::unique_ptr<MagicHandle> handle) {
        std::lock_guard lock(m_mutex);
        m_idle.push_back(std::move(handle));
    }

    std::mutex m_mutex; // guards m_idle
    std::vector<std::unique_ptr<MagicHandle>> m_idle;
};

MagicPool& magic_pool() {
    static MagicPool pool;
    return pool;
}

// The MIME types of text that an analyst would read as text, besides text/*: data formats and
// scripts that libmagic files under application/.
bool is_text_mime_type(std::string_view mime) {
    static constexpr std::string_view k_text_applications[] = {
        "application/json",          "application/xml",
        "application/javascript",    "application/x-javascript",
        "application/ecmascript",    "application/x-sh",
        "application/x-shellscript", "application/x-csh",
        "application/x-perl",        "application/x-python",
        "application/x-ruby",        "application/x-php",
        "application/x-awk",         "application/x-tcl",
        "application/x-powershell",  "application/x-bat",
        "application/x-msdos-batch", "application/sql",
        "application/x-ndjson",      "application/yaml",
        "application/x-yaml",        "application/toml",
        "application/x-subrip",      "application/x-wine-extension-ini",
    };
    if (mime.starts_with("text/") || mime.ends_with("+xml") || mime.ends_with("+json")) {
        return true;
    }
    return std::ranges::find(k_text_applications, mime) != std::end(k_text_applications);
}

void append_utf8(std::string& out, std::uint32_t code_point) {
    if (code_point < 0x80) {
        out.push_back(static_cast<char>(code_point));
    } else if (code_point < 0x800) {
        out.push_back(static_cast<char>(0xc0 | (code_point >> 6)));
        out.push_back(static_cast<char>(0x80 | (code_point & 0x3f)));
    } else if (code_point < 0x10000) {
        out.push_back(static_cast<char>(0xe0 | (code_point >> 12)));
        out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | (code_point & 0x3f)));
    } else {
        out.push_back(static_cast<char>(0xf0 | (code_point >> 18)));
        out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | (code_point & 0x3f)));
    }
}

constexpr std::uint32_t k_replacement_character = 0xfffd;

// Copies bytes as UTF-8, replacing each maximal invalid subpart (as Unicode recommends) with
// U+FFFD. A sequence cut off by the end of a truncated buffer is dropped instead.
std::string to_valid_utf8(std::span<const std::uint8_t> bytes, bool is_truncated) {
    std::string out;
    out.reserve(bytes.size());
    std::size_t pos = 0;
    while (pos < bytes.size()) {
        std::uint8_t lead = bytes[pos];
        if (lead < 0x80) {
            out.push_back(static_cast<char>(lead));
            ++pos;
            continue;
        }

        // Length and the valid range of the second byte, from the Unicode well-formed table.
        std::size_t length = 0;
        std::uint8_t second_min = 0x80;
        std::uint8_t second_max = 0xbf;
        if (lead >= 0xc2 && lead <= 0xdf) {
            length = 2;
        } else if (lead >= 0xe0 && lead <= 0xef) {
            length = 3;
            second_min = lead == 0xe0 ? 0xa0 : 0x80;
            second_max = lead == 0xed ? 0x9f : 0xbf;
        } else if (lead >= 0xf0 && lead <= 0xf4) {
            length = 4;
            second_min = lead == 0xf0 ? 0x90 : 0x80;
            second_max = lead == 0xf4 ? 0x8f : 0xbf;
        }
        if (length == 0) {
            append_utf8(out, k_replacement_character);
            ++pos;
            continue;
        }

        std::size_t valid = 1;
        while (valid < length && pos + valid < bytes.size()) {
            std::uint8_t byte = bytes[pos + valid];
            std::uint8_t min = valid == 1 ? second_min : 0x80;
            std::uint8_t max = valid == 1 ? second_max : 0xbf;
            if (byte < min || byte > max) {
                break;
            }
            ++valid;
        }
        if (valid == length) {
            out.append(reinterpret_cast<const char*>(bytes.data() + pos), length);
        } else if (pos + valid < bytes.size() || !is_truncated) {
            append_utf8(out, k_replacement_character);
        }
        pos += valid;
    }
    return out;
}

// Decodes UTF-16 (after its byte order mark) into UTF-8; unpaired surrogates become U+FFFD.
std::string utf16_to_utf8(std::span<const std::uint8_t> bytes, bool is_big_endian) {
    std::string out;
    auto unit_at = [&](std::size_t pos) -> std::uint32_t {
        return is_big_endian ? (bytes[pos] << 8) | bytes[pos + 1]
                             : (bytes[pos + 1] << 8) | bytes[pos];
    };
    std::size_t pos = 2;
    while (pos + 1 < bytes.size()) {
        std::uint32_t unit = unit_at(pos);
        pos += 2;
        if (unit >= 0xd800 && unit <= 0xdbff && pos + 1 < bytes.size()) {
            std::uint32_t low = unit_at(pos);
            if (low >= 0xdc00 && low <= 0xdfff) {
                pos += 2;
                append_utf8(out, 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00));
                continue;
            }
        }
        bool is_surrogate = unit >= 0xd800 && unit <= 0xdfff;
        append_utf8(out, is_surrogate ? k_replacement_character : unit);
    }
    return out;
}

// The first max_bytes of a text file as valid UTF-8. UTF-16 files (PowerShell writes them)
// are recognised by their byte order mark and transcoded.
std::string make_excerpt(std::span<const std::uint8_t> bytes, std::size_t max_bytes) {
    std::span<const std::uint8_t> head = bytes.first(std::min(bytes.size(), max_bytes));
    bool is_truncated = head.size() < bytes.size();
    if (head.size() >= 2 && head[0] == 0xff && head[1] == 0xfe) {
        return utf16_to_utf8(head, false);
    }
    if (head.size() >= 2 && head[0] == 0xfe && head[1] == 0xff) {
        return utf16_to_utf8(head, true);
    }
    return to_valid_utf8(head, is_truncated);
}

// The bytes evidence is drawn from, and whether they are the whole file.
struct ScanWindow {
    std::vector<std::uint8_t> storage;   // the bytes read from disk; empty for supplied content
    std::span<const std::uint8_t> bytes; // into storage or into the supplied content
    std::uint64_t file_size_bytes = 0;
    bool is_whole_file = false;
};

std::string errno_text(int error_number) {
    return std::strerror(error_number);
}

Result<ScanWindow> read_window(const std::filesystem::path& path, std::uint64_t max_bytes) {
    // O_NONBLOCK keeps open() from waiting for a writer when path is a FIFO. It does not change
    // reads from a regular file, and anything else is rejected below, because a FIFO or a
    // device could block forever or never end.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        return fail("io", fmt::format("cannot open {}: {}", path.string(), errno_text(errno)));
    }
    struct FdCloser {
        int fd;
        ~FdCloser() { ::close(fd); }
    } closer{fd};

    struct stat status {};
    if (::fstat(fd, &status) != 0) {
        return fail("io", fmt::format("cannot stat {}: {}", path.string(), errno_text(errno)));
    }
    if (!S_ISREG(status.st_mode)) {
        return fail("io", fmt::format("cannot read {}: not a regular file", path.string()));
    }

    ScanWindow window;
    window.file_size_bytes = static_cast<std::uint64_t>(status.st_size);
    window.storage.resize(std::min<std::uint64_t>(window.file_size_bytes, max_bytes));
    std::size_t filled = 0;
    while (filled < window.storage.size()) {
        ssize_t count = ::read(fd, window.storage.data() + filled, window.storage.size() - filled);
        if (count < 0 && errno == EINTR) {
            continue;
        }
        if (count < 0) {
            return fail("io", fmt::format("cannot read {}: {}", path.string(), errno_text(errno)));
        }
        if (count == 0) {
            break; // the file shrank since fstat; evidence covers what is there
        }
        filled += static_cast<std::size_t>(count);
    }
    window.storage.resize(filled);
    window.is_whole_file = window.file_size_bytes <= max_bytes;
    return window;
}

class FileEvidenceExtractor final : public EvidenceExtractor {
public:
    FileEvidenceExtractor(std::shared_ptr<const RuleSet> rules, EvidenceOptions options)
        : m_rules(std::move(rules)), m_options(options) {}

    Result<Evidence> extract(const std::filesystem::path& path,
                             std::span<const std::uint8_t> content) const override {
        auto magic = magic_pool().borrow();
        if (!magic->load_error().empty()) {
            return fail("analysis", magic->load_error());
        }

        ScanWindow window;
        if (content.empty()) {
            auto read = read_window(path, m_options.scan_window_bytes);
            if (!read) {
                return std::unexpected(read.error());
            }
            window = std::move(*read);
            window.bytes = window.storage;
        } else {
            window.bytes =
                content.first(std::min<std::uint64_t>(content.size(), m_options.scan_window_bytes));
            window.file_size_bytes = content.size();
            window.is_whole_file = true;
        }

        Evidence evidence;
        evidence.size_bytes = window.file_size_bytes;
        describe_type(*magic, window.bytes, evidence);
        evidence.entropy = shannon_entropy(window.bytes);
        add_strings_and_iocs(window.bytes, evidence);

        if (m_rules) {
            // YARA scans the whole file, so math.entropy(0, filesize) in a rule covers all of it.
            auto matches = !window.is_whole_file ? m_rules->scan_file(path)
                           : content.empty()     ? m_rules->scan_memory(window.bytes)
                                                 : m_rules->scan_memory(content);
            if (!matches) {
                return std::unexpected(matches.error());
            }
            evidence.yara_matches = std::move(*matches);
        }
        return evidence;
    }

private:
    void describe_type(MagicHandle& magic, std::span<const std::uint8_t> bytes,
                       Evidence& out) const {
        std::span<const std::uint8_t> head =
            bytes.first(std::min(bytes.size(), k_magic_window_bytes));
        out.file_type = magic.describe(head);
        out.mime_type = magic.mime_type(head);
        out.is_text = is_text_mime_type(out.mime_type);
        if (out.is_text) {
            out.excerpt = make_excerpt(bytes, m_options.excerpt_bytes);
        }
    }

    void add_strings_and_iocs(std::span<const std::uint8_t> bytes, Evidence& out) const {
        evidence::PrintableRuns runs =
            evidence::PrintableRuns::find(bytes, evidence::k_min_ioc_run_length);
        out.strings = evidence::rank_notable_strings(runs.runs(), m_options.max_strings);

        evidence::IocLists iocs = evidence::extract_iocs(runs.runs(), m_options.max_iocs_per_kind);
        out.urls = std::move(iocs.urls);
        out.ips = std::move(iocs.ips);
        out.domains = std::move(iocs.domains);
        out.emails = std::move(iocs.emails);
        out.registry_keys = std::move(iocs.registry_keys);
        out.file_paths = std::move(iocs.file_paths);
    }

    std::shared_ptr<const RuleSet> m_rules;
    EvidenceOptions m_options;
};

} // namespace

Result<std::unique_ptr<EvidenceExtractor>>
EvidenceExtractor::create(std::shared_ptr<const RuleSet> rules, EvidenceOptions options) {
    // Loading the database on this thread reports a missing or broken magic file once, at
    // start-up, instead of as a failure of every file.
    auto magic = magic_pool().borrow();
    if (!magic->load_error().empty()) {
        return fail("analysis", magic->load_error());
    }
    return std::make_unique<FileEvidenceExtractor>(std::move(rules), options);
}

double shannon_entropy(std::span<const std::uint8_t> bytes) {
    if (bytes.empty()) {
        return 0.0;
    }
    std::array<std::uint64_t, 256> counts{};
    for (std::uint8_t byte : bytes) {
        ++counts[byte];
    }
    double total = static_cast<double>(bytes.size());
    double entropy = 0.0;
    for (std::uint64_t count : counts) {
        if (count != 0) {
            double probability = static_cast<double>(count) / total;
            entropy -= probability * std::log2(probability);
        }
    }
    return entropy;
}

} // namespace athena
