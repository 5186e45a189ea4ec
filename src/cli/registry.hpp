// Every setting athena knows, with its config key, environment names and default.
#pragma once

#include <athena/config.hpp>

#include <string>
#include <vector>

namespace athena::cli {

void define_settings(Settings& settings);

// Builds a setting spec from its parts; the settings modules of providers and resilience
// define theirs with it.
SettingSpec setting_spec(std::string name, SettingKind kind, std::string key,
                         std::vector<std::string> env, std::string fallback,
                         std::string description);

} // namespace athena::cli
