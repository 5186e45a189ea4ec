// The athena command line: subcommands, option layering and exit codes.
#pragma once

namespace athena::cli {

// Exit status, as clamscan: nothing at or above --fail-on, at least one such file, usage
// errors or files that could not be done.
inline constexpr int k_exit_clean = 0;
inline constexpr int k_exit_findings = 1;
inline constexpr int k_exit_error = 2;

// Parses argv, runs the subcommand and returns the process exit status. Never throws.
int run(int argc, char** argv);

} // namespace athena::cli
