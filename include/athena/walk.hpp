// The walk: streams the regular files under the given paths to a callback, depth first, in
// byte order of names within each folder. Memory is bounded by the depth of the tree and
// the size of the folders on the current path, not by the number of files.
#pragma once

#include <athena/error.hpp>
#include <athena/hash.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace athena {

struct WalkOptions {
    bool follow_symlinks = false;  // symlinks under a root; a root itself is always followed
    bool one_file_system = false;  // do not descend into folders on another device
    std::vector<std::string> excludes; // globs; a glob with '/' matches the whole path
    std::optional<std::uint64_t> max_file_size_bytes;
};

struct WalkEntry {
    std::string path; // raw bytes as the file system has them, joined with '/'
    FileIdentity identity;
    std::optional<Error> error; // set when the path could not be walked; identity is then empty
};

struct WalkStats {
    std::uint64_t files = 0;
    std::uint64_t folders = 0;
    std::uint64_t skipped_symlinks = 0;
    std::uint64_t skipped_excluded = 0;
    std::uint64_t skipped_too_large = 0;
    std::uint64_t skipped_special = 0;      // sockets, FIFOs, devices
    std::uint64_t skipped_other_device = 0; // folders not entered because of -x
    std::uint64_t symlink_loops = 0;
    std::uint64_t errors = 0;
};

// Walks `roots` in order, calling `sink` for every regular file and every error (a root that
// does not exist: kind "not_found"; a folder that cannot be read: kind "io"). The walk stops
// early when `sink` returns false or `stop` becomes true.
WalkStats walk(const std::vector<std::string>& roots, const WalkOptions& options,
               const std::function<bool(WalkEntry&&)>& sink, const std::atomic<bool>& stop);

// Matches a path against an --exclude glob (fnmatch): a glob without '/' is matched against
// the last path component, a glob with '/' against the whole path.
bool is_excluded(const std::string& path, std::string_view name,
                 const std::vector<std::string>& globs);

} // namespace athena
