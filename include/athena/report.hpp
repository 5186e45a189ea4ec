// Output: per-file records on stdout (text, NDJSON, or sha256sum lines) and the run report
// on stderr, so stdout stays clean for jq.
#pragma once

#include <athena/pipeline.hpp>

#include <cstdio>
#include <memory>
#include <string>

namespace athena {

enum class OutputFormat { text, json, sha256sum };

struct OutputOptions {
    OutputFormat format = OutputFormat::text;
    bool use_color = false;       // text only: colour the level column
    bool print_report = true;     // the run report on stderr
    bool show_benign = true;      // text only: print benign files too
    std::FILE* out = stdout;
    std::FILE* report_out = stderr;
};

// Builds the sink for a format. The JSON sink ends with one {"type":"summary"} line; text and
// sha256sum sinks print the report to report_out instead.
std::unique_ptr<RecordSink> make_output_sink(const OutputOptions& options);

// The NDJSON object for one file record, as one line without the newline.
std::string file_record_json(const FileRecord& record);
// The NDJSON summary object, as one line without the newline.
std::string summary_json(const RunSummary& summary);
// The human report: files, bytes, hashed vs stat-cache hits, hits per tier, hit rate, time
// per stage, wall time.
std::string format_report(const RunSummary& summary, PipelineMode mode);

// Percentage with one decimal, "0.0" when the denominator is zero.
std::string format_percent(std::uint64_t part, std::uint64_t whole);
std::string format_bytes(std::uint64_t bytes);

} // namespace athena
