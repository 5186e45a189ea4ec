#include "cli/extensions.hpp"

namespace athena::cli {

void define_redis_settings(Settings&) {}

void add_redis_options(CLI::App&, CommandLine&) {}

void add_redis_cache_commands(CLI::App&, CommandLine&) {}

Result<void> add_shared_tiers(const Settings&, std::vector<std::unique_ptr<CacheTier>>&,
                              CacheDatabase*, std::unique_ptr<AnalysisService>&, const Warn&) {
    return {};
}

} // namespace athena::cli
