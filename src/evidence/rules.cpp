#include <athena/rules.hpp>

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>
#include <yara.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <iterator>
#include <mutex>
#include <system_error>

namespace athena {
namespace {

namespace fs = std::filesystem;

constexpr int k_scan_timeout_s = 10;

// yr_initialize is reference-counted but not thread-safe itself, so it runs once per process
// behind std::call_once. libyara stays initialised until exit, because rule sets may be
// shared with threads that outlive any object that could call yr_finalize.
Result<void> initialise_yara() {
    static std::once_flag once;
    static int status = ERROR_SUCCESS;
    std::call_once(once, [] { status = yr_initialize(); });
    if (status != ERROR_SUCCESS) {
        return fail("rules", fmt::format("cannot initialise libyara (error {})", status));
    }
    return {};
}

struct CompilerMessages {
    std::vector<std::string> errors;
    std::vector<std::string> warnings;
};

void on_compiler_message(int error_level, const char* file_name, int line_number,
                         const YR_RULE* /*rule*/, const char* message, void* user_data) {
    auto* messages = static_cast<CompilerMessages*>(user_data);
    std::string text = fmt::format("{}:{}: {}", file_name != nullptr ? file_name : "<rules>",
                                   line_number, message != nullptr ? message : "");
    try {
        if (error_level == YARA_ERROR_LEVEL_ERROR) {
            messages->errors.push_back(std::move(text));
        } else {
            messages->warnings.push_back(std::move(text));
        }
    } catch (...) {
        // Out of memory while recording a message: libyara still counts the error, and the
        // compile fails with a generic message instead.
    }
}

bool has_rule_extension(const fs::path& path) {
    std::string extension = path.extension().string();
    std::ranges::transform(extension, extension.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return extension == ".yar" || extension == ".yara";
}

// Lists the rule files named by paths: a file is taken as it is, a folder is searched
// recursively for *.yar and *.yara. Sorted by file name, then path, which is the order the
// content hash and the compiler see them in.
Result<std::vector<fs::path>> collect_rule_files(const std::vector<fs::path>& paths) {
    std::vector<fs::path> files;
    for (const fs::path& path : paths) {
        std::error_code error;
        fs::file_status status = fs::status(path, error);
        if (error || !fs::exists(status)) {
            return fail("rules", fmt::format("cannot read rules path {}: {}", path.string(),
                                             error ? error.message() : "not found"));
        }
        if (!fs::is_directory(status)) {
            files.push_back(path);
            continue;
        }

        std::size_t found = 0;
        fs::recursive_directory_iterator it(path, error);
        for (; !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
            if (it->is_regular_file(error) && has_rule_extension(it->path())) {
                files.push_back(it->path());
                ++found;
            }
        }
        if (error) {
            return fail("rules", fmt::format("cannot list rules folder {}: {}", path.string(),
                                             error.message()));
        }
        if (found == 0) {
            return fail("rules",
                        fmt::format("no .yar or .yara files in rules folder {}", path.string()));
        }
    }

    std::ranges::sort(files, [](const fs::path& a, const fs::path& b) {
        return std::pair(a.filename(), a) < std::pair(b.filename(), b);
    });
    files.erase(std::unique(files.begin(), files.end()), files.end());
    return files;
}

Result<std::string> read_rule_file(const fs::path& path) {
    std::ifstream stream(path, std::ios::binary);
    if (!stream) {
        return fail("rules", fmt::format("cannot open rule file {}: {}", path.string(),
                                         std::strerror(errno)));
    }
    std::string content((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
    if (stream.bad()) {
        return fail("rules", fmt::format("cannot read rule file {}: {}", path.string(),
                                         std::strerror(errno)));
    }
    return content;
}

// SHA-256 over each file's name, size and content, length-prefixed so that no two rule sets
// hash alike by moving bytes across a file boundary. The folder is left out, so the source
// tree and an installed copy of the same rules hash alike.
class RuleSetHasher {
public:
    RuleSetHasher() : m_context(EVP_MD_CTX_new()) {
        if (m_context != nullptr) {
            EVP_DigestInit_ex(m_context, EVP_sha256(), nullptr);
        }
    }
    ~RuleSetHasher() { EVP_MD_CTX_free(m_context); }

    RuleSetHasher(const RuleSetHasher&) = delete;
    RuleSetHasher& operator=(const RuleSetHasher&) = delete;

    void add(const fs::path& path, const std::string& content) {
        std::string header = fmt::format("{}\n{}\n", path.filename().string(), content.size());
        EVP_DigestUpdate(m_context, header.data(), header.size());
        EVP_DigestUpdate(m_context, content.data(), content.size());
    }

    Result<std::string> hex_digest() {
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int length = 0;
        if (m_context == nullptr || EVP_DigestFinal_ex(m_context, digest, &length) != 1) {
            return fail("rules", "cannot compute the SHA-256 of the rule files (OpenSSL failed)");
        }
        std::string hex;
        for (unsigned int i = 0; i < length; ++i) {
            hex += fmt::format("{:02x}", digest[i]);
        }
        return hex;
    }

private:
    EVP_MD_CTX* m_context;
};

std::string severity_of(const char* text) {
    std::string severity = text != nullptr ? text : "";
    std::ranges::transform(severity, severity.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return severity;
}

YaraMatch make_match(const YR_RULE* rule) {
    YaraMatch match;
    match.rule = rule->identifier;
    match.ns = rule->ns != nullptr && rule->ns->name != nullptr ? rule->ns->name : "";
    const char* tag = nullptr;
    yr_rule_tags_foreach(rule, tag) {
        match.tags.emplace_back(tag);
    }
    const YR_META* meta = nullptr;
    yr_rule_metas_foreach(rule, meta) {
        if (meta->type != META_TYPE_STRING || meta->string == nullptr) {
            continue;
        }
        std::string_view key = meta->identifier;
        if (key == "description") {
            match.description = meta->string;
        } else if (key == "severity") {
            match.severity = severity_of(meta->string);
        } else if (key == "malware_family") {
            match.malware_family = meta->string;
        } else if (key == "malware_type") {
            match.malware_type = meta->string;
        }
    }
    return match;
}

int on_scan_message(YR_SCAN_CONTEXT* /*context*/, int message, void* message_data,
                    void* user_data) {
    if (message != CALLBACK_MSG_RULE_MATCHING) {
        return CALLBACK_CONTINUE;
    }
    try {
        static_cast<std::vector<YaraMatch>*>(user_data)->push_back(
            make_match(static_cast<const YR_RULE*>(message_data)));
    } catch (...) {
        return CALLBACK_ERROR; // no exception may cross libyara's C frames
    }
    return CALLBACK_CONTINUE;
}

std::string describe_scan_error(int code) {
    switch (code) {
    case ERROR_SCAN_TIMEOUT:
        return fmt::format("timed out after {} s", k_scan_timeout_s);
    case ERROR_INSUFFICIENT_MEMORY:
        return "out of memory";
    case ERROR_COULD_NOT_MAP_FILE:
        return "could not map the file (it may have been truncated during the scan)";
    case ERROR_TOO_MANY_MATCHES:
        return "a rule string matched too often";
    case ERROR_CALLBACK_ERROR:
        return "out of memory while recording matches";
    default:
        return fmt::format("libyara error {}", code);
    }
}

struct ScannerDeleter {
    void operator()(YR_SCANNER* scanner) const { yr_scanner_destroy(scanner); }
};

// Rules compiled once and shared read-only. Scanning from many threads is safe because each
// scan creates its own YR_SCANNER. In libyara 4.x the scanner contains all per-scan state
// (match lists, flags, module objects) and only reads YR_RULES (see libyara/scanner.c).
class YaraRuleSet final : public RuleSet {
public:
    YaraRuleSet(YR_RULES* rules, std::string content_hash, std::vector<std::string> warnings)
        : m_rules(rules), m_content_hash(std::move(content_hash)), m_warnings(std::move(warnings)) {
        const YR_RULE* rule = nullptr;
        yr_rules_foreach(m_rules, rule) {
            ++m_rule_count;
        }
    }

    ~YaraRuleSet() override { yr_rules_destroy(m_rules); }

    YaraRuleSet(const YaraRuleSet&) = delete;
    YaraRuleSet& operator=(const YaraRuleSet&) = delete;

    const std::string& content_hash() const override { return m_content_hash; }
    std::size_t rule_count() const override { return m_rule_count; }
    const std::vector<std::string>& warnings() const override { return m_warnings; }

    Result<std::vector<YaraMatch>> scan_memory(std::span<const std::uint8_t> bytes) const override {
        // An empty span may carry a null pointer; libyara reads nothing from a 0-byte block.
        static constexpr std::uint8_t k_no_bytes = 0;
        const std::uint8_t* data = bytes.empty() ? &k_no_bytes : bytes.data();
        return scan("memory buffer", [&](YR_SCANNER* scanner) {
            return yr_scanner_scan_mem(scanner, data, bytes.size());
        });
    }

    Result<std::vector<YaraMatch>> scan_file(const fs::path& path) const override {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK); // no wait on a FIFO
        if (fd < 0) {
            return fail("io",
                        fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
        }
        auto matches = scan(path.string(),
                            [fd](YR_SCANNER* scanner) { return yr_scanner_scan_fd(scanner, fd); });
        ::close(fd);
        return matches;
    }

private:
    template <typename Scan>
    Result<std::vector<YaraMatch>> scan(const std::string& target, Scan run_scan) const {
        YR_SCANNER* raw_scanner = nullptr;
        if (yr_scanner_create(m_rules, &raw_scanner) != ERROR_SUCCESS) {
            return fail("analysis", fmt::format("YARA scan of {} failed: out of memory", target));
        }
        std::unique_ptr<YR_SCANNER, ScannerDeleter> scanner(raw_scanner);

        std::vector<YaraMatch> matches;
        yr_scanner_set_callback(scanner.get(), on_scan_message, &matches);
        yr_scanner_set_timeout(scanner.get(), k_scan_timeout_s);
        yr_scanner_set_flags(scanner.get(), SCAN_FLAGS_REPORT_RULES_MATCHING);
        int code = run_scan(scanner.get());
        if (code != ERROR_SUCCESS) {
            return fail("analysis", fmt::format("YARA scan of {} failed: {}", target,
                                                describe_scan_error(code)));
        }
        return matches;
    }

    YR_RULES* m_rules;
    std::string m_content_hash;
    std::vector<std::string> m_warnings;
    std::size_t m_rule_count = 0;
};

struct CompilerDeleter {
    void operator()(YR_COMPILER* compiler) const { yr_compiler_destroy(compiler); }
};

// Feeds one rule file to the compiler from the bytes already hashed, so the compiled rules
// are exactly the hashed ones even if the file changes meanwhile. The file name goes along
// for error messages and for resolving relative include statements.
Result<void> add_rule_text(YR_COMPILER* compiler, const fs::path& path, std::string& content,
                           CompilerMessages& messages) {
    if (content.empty()) {
        return {};
    }
    std::FILE* stream = fmemopen(content.data(), content.size(), "r");
    if (stream == nullptr) {
        return fail("rules", fmt::format("cannot read rule file {}: {}", path.string(),
                                         std::strerror(errno)));
    }
    std::string ns = path.stem().string();
    int error_count = yr_compiler_add_file(compiler, stream, ns.c_str(), path.c_str());
    std::fclose(stream);
    if (error_count == 0) {
        return {};
    }

    std::string message;
    for (const std::string& error : messages.errors) {
        message += message.empty() ? error : "; " + error;
    }
    if (message.empty()) {
        message = fmt::format("{}: {} compile errors", path.string(), error_count);
    }
    return fail("rules", message);
}

} // namespace

Result<std::shared_ptr<RuleSet>> RuleSet::compile(const std::vector<fs::path>& paths) {
    if (auto initialised = initialise_yara(); !initialised) {
        return std::unexpected(initialised.error());
    }
    auto files = collect_rule_files(paths);
    if (!files) {
        return std::unexpected(files.error());
    }

    YR_COMPILER* raw_compiler = nullptr;
    if (yr_compiler_create(&raw_compiler) != ERROR_SUCCESS) {
        return fail("rules", "cannot create the YARA compiler: out of memory");
    }
    std::unique_ptr<YR_COMPILER, CompilerDeleter> compiler(raw_compiler);
    CompilerMessages messages;
    yr_compiler_set_callback(compiler.get(), on_compiler_message, &messages);

    // libyara refuses further files once one failed, so the first broken file ends the compile.
    RuleSetHasher hasher;
    for (const fs::path& path : *files) {
        auto content = read_rule_file(path);
        if (!content) {
            return std::unexpected(content.error());
        }
        hasher.add(path, *content);
        if (auto added = add_rule_text(compiler.get(), path, *content, messages); !added) {
            return std::unexpected(added.error());
        }
    }
    auto hash = hasher.hex_digest();
    if (!hash) {
        return std::unexpected(hash.error());
    }

    YR_RULES* rules = nullptr;
    if (int code = yr_compiler_get_rules(compiler.get(), &rules); code != ERROR_SUCCESS) {
        return fail("rules",
                    fmt::format("cannot build the YARA rule set (libyara error {})", code));
    }
    return std::make_shared<YaraRuleSet>(rules, std::move(*hash), std::move(messages.warnings));
}

fs::path bundled_rules_dir() {
    if (const char* from_env = std::getenv("ATHENA_RULES_DIR");
        from_env != nullptr && *from_env != '\0') {
        return from_env;
    }
    std::error_code error;
    fs::path installed = ATHENA_INSTALLED_RULES_DIR;
    if (fs::is_directory(installed, error)) {
        return installed;
    }
    return ATHENA_RULES_DIR;
}

} // namespace athena
