// Shell completion scripts, generated from the command-line definition itself so that they
// list exactly the subcommands and options the binary accepts.
#pragma once

#include "cli/commands.hpp"

#include <CLI/CLI.hpp>

#include <string>

namespace athena::cli {

// Adds `athena completion bash|zsh|fish`.
void add_completion_command(CLI::App& app, CommandLine& line);

// The script for one shell; empty for an unknown shell name.
std::string completion_script(const CLI::App& app, const std::string& shell);

} // namespace athena::cli
