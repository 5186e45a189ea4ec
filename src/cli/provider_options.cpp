#include "cli/extensions.hpp"

#include <athena/analyser.hpp>

namespace athena::cli {

void define_provider_settings(Settings&) {}

void add_provider_options(CLI::App&, CommandLine&) {}

void add_providers_command(CLI::App&, CommandLine&) {}

Result<std::unique_ptr<AnalysisService>>
make_scan_analysis(const Settings&, const std::shared_ptr<RuleSet>& rules, const Warn&) {
    return make_local_service(make_builtin_analyser(rules->content_hash()));
}

} // namespace athena::cli
