// SHA-256 through OpenSSL's EVP interface, which uses the CPU's SHA instructions where the
// processor has them.
#pragma once

#include <athena/error.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace athena {

// What identifies one version of a file on disk without reading it.
struct FileIdentity {
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    std::uint64_t size_bytes = 0;
    std::int64_t mtime_ns = 0;
    std::int64_t ctime_ns = 0;

    bool operator==(const FileIdentity&) const = default;
};

// Incremental SHA-256. Not thread-safe; use one per thread.
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    void update(std::span<const std::uint8_t> bytes);
    // Returns 64 lower-case hex digits and resets the state for the next input.
    std::string finish_hex();

private:
    struct State;
    std::unique_ptr<State> m_state;
};

std::string sha256_hex(std::span<const std::uint8_t> bytes);

struct HashedFile {
    std::string sha256;
    std::uint64_t bytes_read = 0;
};

// Hashes the file at path, which the walk saw as `expected`. Errors: kind "io" (open or read
// failed; the message has the errno text), kind "changed" (the size, mtime or ctime after
// reading differ from `expected`, or the byte count read differs from the size). When
// `content` is not null and the file is at most `keep_limit` bytes, its bytes are left there
// for the evidence step, which then need not read the file again.
Result<HashedFile> hash_file(const std::string& path, const FileIdentity& expected,
                             std::vector<std::uint8_t>* content, std::uint64_t keep_limit);

} // namespace athena
