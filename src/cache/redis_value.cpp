// Redis key names and the stored bytes of a verdict, signed with an HMAC when a secret is set.
#include <athena/redis_cache.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>

namespace athena {
namespace {

// A signed value is {"hmac":"<64 hex digits>","entry":<encoded entry>}. The entry's bytes
// are kept verbatim, so the check needs no re-serialisation, and the whole value is still
// JSON that `redis-cli GET` users can read.
constexpr std::string_view k_signed_head = "{\"hmac\":\"";
constexpr std::string_view k_signed_middle = "\",\"entry\":";
constexpr std::size_t k_hmac_hex_digits = 64;

// HMAC-SHA256 over the Redis key, a newline and the value, so that a valid value copied to
// another key (another file's digest) fails the check.
std::string hmac_hex(const std::string& secret, std::string_view redis_key,
                     std::string_view value) {
    std::string message;
    message.reserve(redis_key.size() + 1 + value.size());
    message.append(redis_key).append("\n").append(value);
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest.data(),
         &length);
    static constexpr char k_digits[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(length * 2);
    for (unsigned int i = 0; i < length; ++i) {
        hex += k_digits[digest[i] >> 4];
        hex += k_digits[digest[i] & 0x0f];
    }
    return hex;
}

bool is_signed(std::string_view bytes) {
    return bytes.starts_with(k_signed_head);
}

} // namespace

std::string redis_verdict_key(const RedisOptions& options, const CacheKey& key) {
    return options.key_prefix + key.sha256 + ":" + key.profile;
}

std::string redis_lease_key(const RedisOptions& options, const CacheKey& key) {
    return options.key_prefix + "lease:" + key.sha256 + ":" + key.profile;
}

std::string encode_redis_value(const RedisOptions& options, const std::string& redis_key,
                               const CacheEntry& entry) {
    std::string encoded = encode_cache_entry(entry);
    if (options.secret.empty()) {
        return encoded;
    }
    std::string value;
    value.reserve(k_signed_head.size() + k_hmac_hex_digits + k_signed_middle.size() +
                  encoded.size() + 1);
    value.append(k_signed_head)
        .append(hmac_hex(options.secret, redis_key, encoded))
        .append(k_signed_middle)
        .append(encoded)
        .append("}");
    return value;
}

Result<CacheEntry> decode_redis_value(const RedisOptions& options, const std::string& redis_key,
                                      std::string_view bytes) {
    std::string_view encoded = bytes;
    if (is_signed(bytes)) {
        const std::size_t entry_start =
            k_signed_head.size() + k_hmac_hex_digits + k_signed_middle.size();
        if (bytes.size() <= entry_start ||
            bytes.substr(k_signed_head.size() + k_hmac_hex_digits, k_signed_middle.size()) !=
                k_signed_middle ||
            !bytes.ends_with('}')) {
            return fail("cache", "stored Redis value has a malformed signature envelope");
        }
        encoded = bytes.substr(entry_start, bytes.size() - entry_start - 1);
        if (!options.secret.empty()) {
            const std::string expected = hmac_hex(options.secret, redis_key, encoded);
            const std::string_view stored = bytes.substr(k_signed_head.size(), k_hmac_hex_digits);
            if (CRYPTO_memcmp(expected.data(), stored.data(), k_hmac_hex_digits) != 0) {
                return fail("integrity", "stored Redis value has an HMAC that does not verify");
            }
        }
    } else if (!options.secret.empty()) {
        return fail("integrity", "stored Redis value is not signed");
    }
    return decode_cache_entry(encoded);
}

} // namespace athena
