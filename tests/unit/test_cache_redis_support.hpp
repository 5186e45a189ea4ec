// Shared pieces of the Redis unit tests: the server they use, a plain hiredis client to
// inspect it independently of the code under test, and a sample verdict.
//
// The tests need a running Redis named by ATHENA_TEST_REDIS_URL (redis://127.0.0.1:PORT/DB);
// without it each test passes after printing why it did not run. tests/redis_server.sh run
// starts a throwaway server and sets the variable. Every test writes under its own random key
// prefix, so tests running at once against one server do not see each other's keys.
#pragma once

#include <athena/redis_cache.hpp>

#include <doctest/doctest.h>
#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace athena::test {

inline constexpr const char* k_redis_skip_reason =
    "skipped: set ATHENA_TEST_REDIS_URL (tests/redis_server.sh run COMMAND does) to run the "
    "Redis tests";

inline std::string random_hex(std::size_t digits) {
    static constexpr char k_digits[] = "0123456789abcdef";
    std::random_device random;
    std::string hex;
    for (std::size_t i = 0; i < digits; ++i) {
        hex += k_digits[random() % 16];
    }
    return hex;
}

// Options for the test server with a prefix of their own, or nothing when no server is set.
// The command timeout is generous: the tests measure behaviour, not latency, and CI machines
// stall.
inline std::optional<RedisOptions> test_redis_options() {
    const char* url = std::getenv("ATHENA_TEST_REDIS_URL");
    if (url == nullptr || *url == '\0') {
        return std::nullopt;
    }
    auto options = parse_redis_url(url);
    REQUIRE_MESSAGE(options.has_value(), "ATHENA_TEST_REDIS_URL does not parse");
    options->key_prefix = "athena-test:" + random_hex(12) + ":";
    options->command_timeout = std::chrono::milliseconds(5000);
    options->connect_timeout = std::chrono::milliseconds(2000);
    return std::move(*options);
}

// Options for 127.0.0.1 on a port where nothing listens, so a connection is refused: the
// kernel picks a free port for a socket that is closed again without listening.
inline RedisOptions unreachable_redis_options() {
    const int probe = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(probe >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    socklen_t length = sizeof(address);
    REQUIRE(::getsockname(probe, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    ::close(probe);

    RedisOptions options;
    options.host = "127.0.0.1";
    options.port = ntohs(address.sin_port);
    options.key_prefix = "athena-test:" + random_hex(12) + ":";
    return options;
}

// A plain hiredis connection, independent of RedisLink, for arranging and checking state.
class RawRedis {
public:
    explicit RawRedis(const RedisOptions& options) {
        m_context = redisConnect(options.host.c_str(), options.port);
        REQUIRE(m_context != nullptr);
        REQUIRE_MESSAGE(m_context->err == 0, std::string(m_context->errstr));
        if (!options.password.empty()) {
            command({"AUTH", options.password});
        }
        if (options.db != 0) {
            command({"SELECT", std::to_string(options.db)});
        }
    }
    ~RawRedis() { redisFree(m_context); }
    RawRedis(const RawRedis&) = delete;
    RawRedis& operator=(const RawRedis&) = delete;

    // Runs one command; returns the reply as text ("" for nil, the number for integers).
    std::string command(const std::vector<std::string>& arguments) {
        std::vector<const char*> argv;
        std::vector<std::size_t> lengths;
        for (const std::string& argument : arguments) {
            argv.push_back(argument.data());
            lengths.push_back(argument.size());
        }
        auto* reply = static_cast<redisReply*>(redisCommandArgv(
            m_context, static_cast<int>(argv.size()), argv.data(), lengths.data()));
        REQUIRE_MESSAGE(reply != nullptr, std::string(m_context->errstr));
        std::string text;
        if (reply->type == REDIS_REPLY_INTEGER) {
            text = std::to_string(reply->integer);
        } else if (reply->str != nullptr) {
            text.assign(reply->str, reply->len);
        }
        freeReplyObject(reply);
        return text;
    }

    long long integer(const std::vector<std::string>& arguments) {
        return std::stoll(command(arguments));
    }

private:
    redisContext* m_context = nullptr;
};

// Deletes every key under the options' prefix when the test ends.
class PrefixCleanup {
public:
    explicit PrefixCleanup(const RedisOptions& options) : m_options(options) {}
    ~PrefixCleanup() {
        RawRedis redis(m_options);
        (void)redis.command({"EVAL",
                             "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do "
                             "redis.call('DEL', k) end return 0",
                             "0", m_options.key_prefix + "*"});
    }
    PrefixCleanup(const PrefixCleanup&) = delete;
    PrefixCleanup& operator=(const PrefixCleanup&) = delete;

private:
    RedisOptions m_options;
};

inline CacheEntry sample_redis_entry(std::string summary = "downloads a second stage") {
    CacheEntry entry;
    entry.verdict.threat_level = ThreatLevel::malicious;
    entry.verdict.confidence = 0.875;
    entry.verdict.malware_family = "Loader";
    entry.verdict.signatures = {"download_pipe_to_shell"};
    entry.verdict.iocs.urls = {"http://127.0.0.1/stage2"};
    entry.verdict.summary = std::move(summary);
    entry.provider = "openai";
    entry.model = "gpt-test";
    entry.file_type = "POSIX shell script, ASCII text executable";
    entry.created_unix_s = 1700000000;
    return entry;
}

inline CacheKey sample_key(char digit, std::string profile = "builtin/1") {
    return CacheKey{std::string(64, digit), std::move(profile)};
}

// Collects the warnings a RedisLink passes on.
struct WarningLog {
    std::vector<std::string> messages;
    std::mutex mutex;

    RedisLink::Warn sink() {
        return [this](const std::string& message) {
            std::lock_guard lock(mutex);
            messages.push_back(message);
        };
    }
    std::size_t count() {
        std::lock_guard lock(mutex);
        return messages.size();
    }
    std::string all() {
        std::lock_guard lock(mutex);
        std::string joined;
        for (const std::string& message : messages) {
            joined += message + "\n";
        }
        return joined;
    }
};

} // namespace athena::test

// Ends the test early, with the reason printed, when no Redis server is configured.
#define ATHENA_REQUIRE_TEST_REDIS(options)                                                         \
    if (!(options)) {                                                                              \
        MESSAGE(std::string(athena::test::k_redis_skip_reason));                                   \
        return;                                                                                    \
    }
