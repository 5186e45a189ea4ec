// The command line's hooks for the AI providers and the shared Redis tier. Each group lives
// in its own file (provider_options.cpp, redis_options.cpp), so that the modules grow
// without editing the core of the command line.
#pragma once

#include "cli/commands.hpp"

#include <athena/analysis_service.hpp>
#include <athena/cache.hpp>
#include <athena/config.hpp>
#include <athena/rules.hpp>

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace athena {
class CacheDatabase;
class CallGate;
}

namespace athena::cli {

using Warn = std::function<void(const std::string&)>;

// AI providers (provider_options.cpp).
void define_provider_settings(Settings& settings);
void add_provider_options(CLI::App& scan, CommandLine& line);
void add_providers_command(CLI::App& app, CommandLine& line);
// The analysis service for a scan: the builtin analyser, or AI providers with the builtin
// analyser as the last fallback. Errors: kind "usage" (bad provider settings).
Result<std::unique_ptr<AnalysisService>>
make_scan_analysis(const Settings& settings, const std::shared_ptr<RuleSet>& rules,
                   const Warn& warn);

// Shared Redis tier (redis_options.cpp).
void define_redis_settings(Settings& settings);
void add_redis_options(CLI::App& scan, CommandLine& line);
void add_redis_cache_commands(CLI::App& cache, CommandLine& line);
// Appends the shared tiers that the settings enable below the local ones, and may wrap the
// analysis service (e.g. with a fleet-wide lease). A shared tier that cannot be reached is
// a warning, not an error: the run goes on with the local tiers.
Result<void> add_shared_tiers(const Settings& settings,
                              std::vector<std::unique_ptr<CacheTier>>& tiers,
                              CacheDatabase* database,
                              std::unique_ptr<AnalysisService>& analysis, const Warn& warn);

// Resilience around provider calls (resilience_options.cpp): circuit breakers, bulkheads and
// the drain timeout after an interrupt.
void define_resilience_settings(Settings& settings);
void add_resilience_options(CLI::App& scan, CommandLine& line);
// The gate every provider attempt passes: circuit breakers and bulkheads for the providers
// of the priority list, each part present only when its feature flag is on. `warn` receives
// one line when a provider's breaker first opens. Errors: kind "usage" (an invalid breaker
// or bulkhead setting, named with the layer that set it).
Result<std::shared_ptr<CallGate>> make_resilience_gate(const Settings& settings,
                                                       const Warn& warn);

} // namespace athena::cli
