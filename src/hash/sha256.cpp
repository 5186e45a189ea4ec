#include <athena/hash.hpp>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

namespace athena {
namespace {

// Fetched once: implicit fetching inside every EVP_DigestInit_ex costs a provider look-up
// per file, which shows on runs of many small files. An EVP_MD is safe to share read-only.
const EVP_MD* sha256_algorithm() {
    static EVP_MD* algorithm = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (algorithm == nullptr) {
        throw std::runtime_error("OpenSSL has no SHA256 implementation");
    }
    return algorithm;
}

std::string to_hex(const unsigned char* digest, unsigned int length) {
    static constexpr char k_hex[] = "0123456789abcdef";
    std::string out(length * 2, '0');
    for (unsigned int i = 0; i < length; ++i) {
        out[2 * i] = k_hex[digest[i] >> 4];
        out[2 * i + 1] = k_hex[digest[i] & 15];
    }
    return out;
}

std::int64_t to_ns(const struct timespec& time) {
    return static_cast<std::int64_t>(time.tv_sec) * 1'000'000'000 + time.tv_nsec;
}

// Closes the descriptor on every return path.
struct FileDescriptor {
    int fd = -1;
    ~FileDescriptor() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
};

int open_for_reading(const std::string& path) {
    // O_NOATIME spares a metadata write per file but only works for the file's owner (or
    // root); fall back to a plain open when the kernel rejects it.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOATIME | O_NONBLOCK);
    if (fd < 0 && errno == EPERM) {
        fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    }
    return fd;
}

} // namespace

struct Sha256::State {
    EVP_MD_CTX* context = nullptr;
};

Sha256::Sha256() : m_state(std::make_unique<State>()) {
    m_state->context = EVP_MD_CTX_new();
    if (m_state->context == nullptr ||
        EVP_DigestInit_ex(m_state->context, sha256_algorithm(), nullptr) != 1) {
        throw std::runtime_error("OpenSSL could not initialise SHA-256");
    }
}

Sha256::~Sha256() {
    EVP_MD_CTX_free(m_state->context);
}

void Sha256::update(std::span<const std::uint8_t> bytes) {
    EVP_DigestUpdate(m_state->context, bytes.data(), bytes.size());
}

std::string Sha256::finish_hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(m_state->context, digest, &length);
    EVP_DigestInit_ex(m_state->context, sha256_algorithm(), nullptr);
    return to_hex(digest, length);
}

std::string sha256_hex(std::span<const std::uint8_t> bytes) {
    Sha256 hasher;
    hasher.update(bytes);
    return hasher.finish_hex();
}

Result<HashedFile> hash_file(const std::string& path, const FileIdentity& expected,
                             std::vector<std::uint8_t>* content, std::uint64_t keep_limit) {
    FileDescriptor file{open_for_reading(path)};
    if (file.fd < 0) {
        return fail("io", "cannot open: " + std::string(std::strerror(errno)));
    }
    const bool keep = content != nullptr && expected.size_bytes <= keep_limit;
    if (content != nullptr) {
        content->clear();
    }
    if (expected.size_bytes > (8u << 20)) {
        ::posix_fadvise(file.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    }

    // One buffer per thread, reused across files: allocating per file costs more than
    // hashing a small one.
    thread_local std::vector<std::uint8_t> buffer(256 * 1024);
    thread_local Sha256 hasher;
    HashedFile hashed;
    for (;;) {
        const ssize_t count = ::read(file.fd, buffer.data(), buffer.size());
        if (count < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            const int saved = errno;
            hasher.finish_hex();
            return fail("io", "read failed: " + std::string(std::strerror(saved)));
        }
        if (count == 0) {
            break;
        }
        const std::span<const std::uint8_t> chunk(buffer.data(), static_cast<std::size_t>(count));
        hasher.update(chunk);
        if (keep) {
            content->insert(content->end(), chunk.begin(), chunk.end());
        }
        hashed.bytes_read += static_cast<std::uint64_t>(count);
    }
    hashed.sha256 = hasher.finish_hex();

    // A writer racing with the read shows up as a different size or timestamp afterwards;
    // the digest would then match neither version, so it must not be trusted or cached.
    struct stat after{};
    if (::fstat(file.fd, &after) != 0) {
        return fail("io", "stat failed: " + std::string(std::strerror(errno)));
    }
    const bool size_changed = static_cast<std::uint64_t>(after.st_size) != expected.size_bytes ||
                              hashed.bytes_read != expected.size_bytes;
    if (size_changed || to_ns(after.st_mtim) != expected.mtime_ns ||
        to_ns(after.st_ctim) != expected.ctime_ns) {
        return fail("changed", "file changed while it was read (size " +
                                   std::to_string(expected.size_bytes) + " before, " +
                                   std::to_string(hashed.bytes_read) +
                                   " bytes read); scan it again when it is no longer written");
    }
    return hashed;
}

} // namespace athena
