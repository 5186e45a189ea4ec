// Every setting athena knows, with its config key, environment names and default.
#pragma once

#include <athena/config.hpp>

namespace athena::cli {

void define_settings(Settings& settings);

} // namespace athena::cli
