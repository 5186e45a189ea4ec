// Error values shared by every module: anything that can fail during a normal run returns
// Result<T>, and the file record, the breaker and the report count failures by kind.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace athena {

// A failure with a machine-readable kind and a message for people. Kinds in use:
//   usage          bad flag, bad value, bad config file
//   not_found      a path named on the command line does not exist
//   io             open, read or stat failed (the message carries the errno text)
//   changed        the file changed size or timestamps while it was read
//   too_large      the file is over --max-file-size
//   cache          a cache tier failed (SQLite busy or corrupt, Redis down)
//   rules          a YARA rule file failed to compile
//   analysis       the analyser could not produce a verdict
//   interrupted    the run was stopped before this file was done
struct Error {
    std::string kind;
    std::string message;
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(std::string kind, std::string message) {
    return std::unexpected<Error>(Error{std::move(kind), std::move(message)});
}

} // namespace athena
