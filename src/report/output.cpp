#include <athena/report.hpp>
#include <athena/text.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace athena {
namespace {

using Json = nlohmann::ordered_json;

double to_ms(std::uint64_t ns) {
    return static_cast<double>(ns) / 1e6;
}

double round_ms(double ms) {
    return static_cast<double>(static_cast<std::int64_t>(ms * 1000.0 + 0.5)) / 1000.0;
}

void write_line(std::FILE* out, const std::string& line) {
    std::fwrite(line.data(), 1, line.size(), out);
    std::fputc('\n', out);
}

const char* level_color(ThreatLevel level) {
    switch (level) {
    case ThreatLevel::benign:
        return "\x1b[32m";
    case ThreatLevel::suspicious:
        return "\x1b[33m";
    case ThreatLevel::malicious:
        return "\x1b[31m";
    case ThreatLevel::critical:
        return "\x1b[1;31m";
    }
    return "";
}

// Builds the short reason of a text line. Findings show family and signatures. A benign file
// without signatures shows its type up to the first comma, and anything else its summary.
std::string short_reason(const Verdict& verdict, const std::string& file_type) {
    std::string reason;
    if (!verdict.malware_family.empty()) {
        reason = verdict.malware_family;
    }
    if (!verdict.signatures.empty()) {
        std::string names;
        for (const std::string& signature : verdict.signatures) {
            names += (names.empty() ? "" : ",") + signature;
        }
        reason += (reason.empty() ? "" : ": ") + names;
    }
    if (reason.empty() && verdict.threat_level == ThreatLevel::benign && !file_type.empty()) {
        reason = file_type.substr(0, file_type.find(','));
    }
    if (reason.empty()) {
        reason = verdict.summary;
    }
    return escape_for_terminal(to_utf8_lossy(reason));
}

class TextSink final : public RecordSink {
public:
    explicit TextSink(const OutputOptions& options) : m_options(options) {}

    void on_record(const FileRecord& record) override {
        const std::string path = escape_for_terminal(to_utf8_lossy(record.path));
        std::string line;
        if (record.error) {
            line = fmt::format("{}{:<10}{} {}  {}: {}", color("\x1b[35m"), "error", reset(), path,
                               record.error->kind, escape_for_terminal(record.error->message));
        } else if (record.verdict) {
            if (!m_options.show_benign && record.verdict->threat_level == ThreatLevel::benign) {
                return;
            }
            const ThreatLevel level = record.verdict->threat_level;
            line = fmt::format("{}{:<10}{} {}  {}", color(level_color(level)), to_string(level),
                               reset(), path, short_reason(*record.verdict, record.file_type));
        } else {
            line = fmt::format("{:<10} {}", "ok", path);
        }
        write_line(m_options.out, line);
    }

    void on_summary(const RunSummary& summary) override {
        std::fflush(m_options.out);
        if (m_options.print_report) {
            std::fputs(format_report(summary, PipelineMode::scan).c_str(), m_options.report_out);
        }
    }

private:
    const char* color(const char* code) const { return m_options.use_color ? code : ""; }
    const char* reset() const { return m_options.use_color ? "\x1b[0m" : ""; }

    OutputOptions m_options;
};

class JsonSink final : public RecordSink {
public:
    explicit JsonSink(const OutputOptions& options) : m_options(options) {}

    void on_record(const FileRecord& record) override {
        write_line(m_options.out, file_record_json(record));
    }

    void on_summary(const RunSummary& summary) override {
        write_line(m_options.out, summary_json(summary));
        std::fflush(m_options.out);
        if (m_options.print_report) {
            std::fputs(format_report(summary, PipelineMode::scan).c_str(), m_options.report_out);
        }
    }

private:
    OutputOptions m_options;
};

// Lines that `sha256sum -c` accepts: "DIGEST  NAME", with GNU's escaping of backslash and
// newline in names. Errors go to stderr in sha256sum's own style.
class Sha256sumSink final : public RecordSink {
public:
    explicit Sha256sumSink(const OutputOptions& options) : m_options(options) {}

    void on_record(const FileRecord& record) override {
        if (record.error) {
            std::fputs(fmt::format("athena: {}: {}\n", escape_for_terminal(record.path),
                                   record.error->message)
                           .c_str(),
                       m_options.report_out);
            return;
        }
        std::string name;
        const bool escaped = escape_sha256sum_name(record.path, name);
        std::string line;
        line.reserve(record.sha256.size() + name.size() + 4);
        if (escaped) {
            line += '\\';
        }
        line += record.sha256;
        line += "  ";
        line += name;
        write_line(m_options.out, line);
    }

    void on_summary(const RunSummary& summary) override {
        std::fflush(m_options.out);
        if (m_options.print_report) {
            std::fputs(format_report(summary, PipelineMode::hash).c_str(), m_options.report_out);
        }
    }

private:
    OutputOptions m_options;
};

} // namespace

std::string format_percent(std::uint64_t part, std::uint64_t whole) {
    if (whole == 0) {
        return "0.0";
    }
    return fmt::format("{:.1f}", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
}

std::string format_bytes(std::uint64_t bytes) {
    constexpr const char* k_units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = static_cast<double>(bytes);
    std::size_t unit = 0;
    while (value >= 1024.0 && unit + 1 < std::size(k_units)) {
        value /= 1024.0;
        ++unit;
    }
    return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, k_units[unit]);
}

std::string file_record_json(const FileRecord& record) {
    Json json;
    json["type"] = "file";
    json["path"] = to_utf8_lossy(record.path);
    if (!is_valid_utf8(record.path)) {
        json["path_base64"] = base64_encode(record.path);
    }
    json["sha256"] = record.sha256.empty() ? Json(nullptr) : Json(record.sha256);
    json["size"] = record.size_bytes;
    json["file_type"] = record.file_type.empty() ? Json(nullptr) : Json(record.file_type);
    json["cache"] = record.cache.empty() ? Json(nullptr) : Json(record.cache);
    json["provider"] = record.provider.empty() ? Json(nullptr) : Json(record.provider);
    json["model"] = record.model.empty() ? Json(nullptr) : Json(record.model);
    json["fallback"] = record.is_fallback;
    if (record.usage.empty()) {
        json["tokens"] = nullptr;
        json["cost_usd"] = nullptr;
    } else {
        json["tokens"] = Json{{"input", record.usage.input},
                              {"cached_input", record.usage.cached_input},
                              {"cache_write", record.usage.cache_write},
                              {"output", record.usage.output}};
        json["cost_usd"] = record.cost_usd;
    }
    if (record.error) {
        json["error"] = Json{{"kind", record.error->kind},
                             {"message", to_utf8_lossy(record.error->message)}};
    } else if (record.verdict) {
        json["verdict"] = verdict_to_json(*record.verdict);
    }
    json["duration_ms"] = round_ms(record.duration_ms);
    return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string summary_json(const RunSummary& summary) {
    Json by_tier = Json::object();
    for (const auto& [tier, hits] : summary.hits_by_tier) {
        by_tier[tier] = hits;
    }
    const std::uint64_t lookups = summary.cache_hits + summary.cache_misses;
    const double hit_rate =
        lookups == 0 ? 0.0 : static_cast<double>(summary.cache_hits) / static_cast<double>(lookups);
    Json errors_by_kind = Json::object();
    for (const auto& [kind, n] : summary.errors_by_kind) {
        errors_by_kind[kind] = n;
    }
    Json by_level = Json::object();
    for (const char* level : {"benign", "suspicious", "malicious", "critical"}) {
        const auto it = summary.by_level.find(level);
        if (it != summary.by_level.end()) {
            by_level[level] = it->second;
        }
    }
    const StageTimes& stages = summary.stages;
    Json json;
    json["type"] = "summary";
    json["files"] = summary.files;
    json["errors"] = summary.errors;
    json["errors_by_kind"] = errors_by_kind;
    json["bytes_hashed"] = summary.bytes_hashed;
    json["files_hashed"] = summary.files_hashed;
    json["stat_cache_hits"] = summary.stat_cache_hits;
    json["analyses"] = summary.analyses;
    json["cache"] = Json{{"hits", summary.cache_hits},
                         {"misses", summary.cache_misses},
                         {"hit_rate", hit_rate},
                         {"by_tier", by_tier},
                         {"store_errors", summary.cache_store_errors}};
    json["by_level"] = by_level;
    json["skipped"] = Json{{"symlinks", summary.walk.skipped_symlinks},
                           {"excluded", summary.walk.skipped_excluded},
                           {"too_large", summary.walk.skipped_too_large},
                           {"special", summary.walk.skipped_special},
                           {"other_device", summary.walk.skipped_other_device},
                           {"symlink_loops", summary.walk.symlink_loops},
                           {"other_shard", summary.skipped_other_shard}};
    json["timings_ms"] = Json{{"walk", round_ms(to_ms(stages.walk_ns))},
                              {"stat_cache", round_ms(to_ms(stages.stat_cache_ns))},
                              {"hash", round_ms(to_ms(stages.hash_ns))},
                              {"lookup", round_ms(to_ms(stages.lookup_ns))},
                              {"analyse", round_ms(to_ms(stages.analyse_ns))},
                              {"store", round_ms(to_ms(stages.store_ns))},
                              {"emit", round_ms(to_ms(stages.emit_ns))}};
    if (!summary.analysis.empty()) {
        json["analysis"] = summary.analysis;
    }
    json["duration_ms"] = round_ms(summary.duration_ms);
    json["interrupted"] = summary.interrupted;
    json["exit_code"] = summary.exit_code;
    return json.dump();
}

std::string format_report(const RunSummary& summary, PipelineMode mode) {
    std::string out;
    const std::uint64_t lookups = summary.cache_hits + summary.cache_misses;
    if (summary.interrupted) {
        out += fmt::format("athena: interrupted by signal {}; finished files were kept\n",
                           summary.interrupt_signal);
    }
    out += fmt::format("files     {} done, {} errors", summary.files, summary.errors);
    for (const auto& [kind, n] : summary.errors_by_kind) {
        out += fmt::format(" ({} {})", n, kind);
    }
    out += '\n';
    out += fmt::format("hashed    {} files, {}; {} answered by the stat cache\n",
                       summary.files_hashed, format_bytes(summary.bytes_hashed),
                       summary.stat_cache_hits);
    const WalkStats& walk = summary.walk;
    const std::uint64_t skipped = walk.skipped_symlinks + walk.skipped_excluded +
                                  walk.skipped_too_large + walk.skipped_special +
                                  walk.skipped_other_device;
    if (skipped + summary.skipped_other_shard > 0) {
        out += fmt::format("skipped   {} symlinks, {} excluded, {} too large, {} special, "
                           "{} on other devices, {} in other shards\n",
                           walk.skipped_symlinks, walk.skipped_excluded, walk.skipped_too_large,
                           walk.skipped_special, walk.skipped_other_device,
                           summary.skipped_other_shard);
    }
    if (mode == PipelineMode::scan) {
        std::string tiers;
        for (const auto& [tier, hits] : summary.hits_by_tier) {
            tiers += fmt::format(", {} {}", tier, hits);
        }
        out += fmt::format("cache     {}/{} hits ({} %){}; {} misses; {} analysed\n",
                           summary.cache_hits, lookups,
                           format_percent(summary.cache_hits, lookups), tiers,
                           summary.cache_misses, summary.analyses);
        std::string levels;
        for (const char* level : {"benign", "suspicious", "malicious", "critical"}) {
            const auto it = summary.by_level.find(level);
            levels += fmt::format("{}{} {}", levels.empty() ? "" : ", ",
                                  it == summary.by_level.end() ? 0 : it->second, level);
        }
        out += fmt::format("verdicts  {}\n", levels);
    }
    const StageTimes& s = summary.stages;
    out += fmt::format("time      wall {:.0f} ms; thread time: walk {:.0f}, stat cache {:.0f}, "
                       "hash {:.0f}, lookup {:.0f}, analyse {:.0f}, store {:.0f}, emit {:.0f} ms\n",
                       summary.duration_ms, to_ms(s.walk_ns), to_ms(s.stat_cache_ns),
                       to_ms(s.hash_ns), to_ms(s.lookup_ns), to_ms(s.analyse_ns),
                       to_ms(s.store_ns), to_ms(s.emit_ns));
    out += summary.analysis_report;
    return out;
}

std::unique_ptr<RecordSink> make_output_sink(const OutputOptions& options) {
    switch (options.format) {
    case OutputFormat::json:
        return std::make_unique<JsonSink>(options);
    case OutputFormat::sha256sum:
        return std::make_unique<Sha256sumSink>(options);
    case OutputFormat::text:
        break;
    }
    return std::make_unique<TextSink>(options);
}

} // namespace athena
