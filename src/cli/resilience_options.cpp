#include "cli/extensions.hpp"

namespace athena::cli {

void define_resilience_settings(Settings&) {}

void add_resilience_options(CLI::App&, CommandLine&) {}

std::shared_ptr<void> make_resilience_gate(const Settings&, const Warn&) {
    return nullptr;
}

} // namespace athena::cli
