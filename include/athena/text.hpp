// Text helpers for paths and names that may hold any bytes: UTF-8 validation, lossy
// conversion for display, base64 for exact round trips, and sha256sum-style escaping.
#pragma once

#include <string>
#include <string_view>

namespace athena {

bool is_valid_utf8(std::string_view bytes);

// Replaces each invalid UTF-8 sequence with U+FFFD.
std::string to_utf8_lossy(std::string_view bytes);

std::string base64_encode(std::string_view bytes);

// Escapes a file name the way GNU sha256sum does: a name holding '\\', '\n' or '\r' gets
// those written as \\, \n and \r, and the caller must then prefix the line with '\\'.
// Returns true when escaping was needed.
bool escape_sha256sum_name(std::string_view name, std::string& out);

// Replaces control characters with visible escapes (\n, \t, \xNN) for one-line text output.
std::string escape_for_terminal(std::string_view text);

} // namespace athena
