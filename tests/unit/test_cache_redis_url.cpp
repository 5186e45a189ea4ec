// Redis URLs, endpoint descriptions, key names and the signed value format: no server needed.
#include "test_cache_redis_support.hpp"

#include <athena/redis_cache.hpp>

#include <doctest/doctest.h>

#include <string>

namespace {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("parse_redis_url: accepted forms") {
    SUBCASE("host, port and database") {
        auto options = athena::parse_redis_url("redis://cache.internal:6380/3");

        REQUIRE(options.has_value());
        CHECK(options->host == "cache.internal");
        CHECK(options->port == 6380);
        CHECK(options->db == 3);
        CHECK(options->password.empty());
        CHECK(options->socket_path.empty());
    }
    SUBCASE("password without a user") {
        auto options = athena::parse_redis_url("redis://:s3cret@127.0.0.1:6379");

        REQUIRE(options.has_value());
        CHECK(options->username.empty());
        CHECK(options->password == "s3cret");
        CHECK(options->db == 0);
    }
    SUBCASE("user and percent-escaped password") {
        auto options = athena::parse_redis_url("redis://ci%2Drunner:p%40ss%3Aw0rd@127.0.0.1/1");

        REQUIRE(options.has_value());
        CHECK(options->username == "ci-runner");
        CHECK(options->password == "p@ss:w0rd");
        CHECK(options->db == 1);
    }
    SUBCASE("bracketed IPv6 address") {
        auto options = athena::parse_redis_url("redis://[::1]:7000");

        REQUIRE(options.has_value());
        CHECK(options->host == "::1");
        CHECK(options->port == 7000);
    }
    SUBCASE("unix socket with a database") {
        auto options = athena::parse_redis_url("unix:///run/redis/redis.sock?db=4");

        REQUIRE(options.has_value());
        CHECK(options->socket_path == "/run/redis/redis.sock");
        CHECK(options->db == 4);
    }
    SUBCASE("unix socket with a password") {
        auto options = athena::parse_redis_url("unix://:pw@/run/redis.sock");

        REQUIRE(options.has_value());
        CHECK(options->socket_path == "/run/redis.sock");
        CHECK(options->password == "pw");
    }
    SUBCASE("fields the URL leaves out keep the base values") {
        athena::RedisOptions base;
        base.host = "10.0.0.9";
        base.port = 6390;
        base.password = "from-env";
        base.db = 2;

        auto options = athena::parse_redis_url("redis://127.0.0.1", base);

        REQUIRE(options.has_value());
        CHECK(options->host == "127.0.0.1");
        CHECK(options->port == 6390);
        CHECK(options->password == "from-env");
        CHECK(options->db == 2);
    }
    SUBCASE("the scheme ignores case") {
        CHECK(athena::parse_redis_url("REDIS://127.0.0.1").has_value());
    }
}

TEST_CASE("parse_redis_url: rejected forms") {
    const auto rejects = [](const std::string& url, const std::string& expected) {
        auto options = athena::parse_redis_url(url);
        REQUIRE_FALSE(options.has_value());
        CHECK(options.error().kind == "usage");
        CHECK_MESSAGE(contains(options.error().message, expected), options.error().message);
        return options.error().message;
    };

    SUBCASE("TLS is not available") {
        rejects("rediss://127.0.0.1:6380", "TLS");
    }
    SUBCASE("no scheme") {
        rejects("127.0.0.1:6379", "no scheme");
    }
    SUBCASE("unknown scheme") {
        rejects("http://127.0.0.1:6379", "unknown scheme 'http'");
    }
    SUBCASE("port out of range") {
        rejects("redis://127.0.0.1:70000", "port '70000'");
    }
    SUBCASE("database is not a number") {
        rejects("redis://127.0.0.1:6379/main", "database 'main'");
    }
    SUBCASE("unknown parameter") {
        rejects("redis://127.0.0.1/0?timeout=5", "unknown parameter 'timeout'");
    }
    SUBCASE("unix socket without a path") {
        rejects("unix://", "absolute path");
    }
    SUBCASE("bad escape in the password") {
        rejects("redis://:ab%zz@127.0.0.1", "password has a '%'");
    }
    SUBCASE("no message repeats the password") {
        const std::string message = rejects("redis://:hunter2@127.0.0.1:port", "port 'port'");
        CHECK_FALSE(contains(message, "hunter2"));
        const std::string escape = rejects("redis://:hunter2%@127.0.0.1", "password");
        CHECK_FALSE(contains(escape, "hunter2"));
    }
}

TEST_CASE("describe_endpoint: names the server without credentials") {
    athena::RedisOptions options;
    options.host = "127.0.0.1";
    options.port = 6385;
    options.db = 2;
    options.username = "runner";
    options.password = "hunter2";

    SUBCASE("TCP") {
        CHECK(athena::describe_endpoint(options) == "redis://127.0.0.1:6385/2");
    }
    SUBCASE("IPv6") {
        options.host = "::1";
        CHECK(athena::describe_endpoint(options) == "redis://[::1]:6385/2");
    }
    SUBCASE("unix socket") {
        options.socket_path = "/run/redis.sock";
        CHECK(athena::describe_endpoint(options) == "unix:///run/redis.sock?db=2");
    }
}

TEST_CASE("RedisLink: redacts the password and the secret") {
    athena::RedisOptions options;
    options.password = "hunter2";
    options.secret = "shared-key";
    athena::RedisLink link(options, {});

    const std::string redacted =
        link.redact("AUTH hunter2 failed; hunter2 again; HMAC key shared-key");

    CHECK_FALSE(contains(redacted, "hunter2"));
    CHECK_FALSE(contains(redacted, "shared-key"));
    CHECK(redacted == "AUTH ******** failed; ******** again; HMAC key ********");
}

TEST_CASE("Redis key names: prefix, digest and profile") {
    athena::RedisOptions options;
    options.key_prefix = "ci:";
    const athena::CacheKey key = athena::test::sample_key('a', "builtin/1;rules/x");

    CHECK(athena::redis_verdict_key(options, key) ==
          "ci:" + std::string(64, 'a') + ":builtin/1;rules/x");
    CHECK(athena::redis_lease_key(options, key) ==
          "ci:lease:" + std::string(64, 'a') + ":builtin/1;rules/x");
}

TEST_CASE("Redis values: signing and checking") {
    athena::RedisOptions plain;
    athena::RedisOptions signing;
    signing.secret = "shared-key";
    const std::string key = "athena:" + std::string(64, 'b') + ":builtin/1";
    const athena::CacheEntry entry = athena::test::sample_redis_entry();

    SUBCASE("without a secret the value is the encoded entry") {
        const std::string value = athena::encode_redis_value(plain, key, entry);

        CHECK(value == athena::encode_cache_entry(entry));
        auto decoded = athena::decode_redis_value(plain, key, value);
        REQUIRE(decoded.has_value());
        CHECK(*decoded == entry);
    }
    SUBCASE("a signed value round-trips") {
        const std::string value = athena::encode_redis_value(signing, key, entry);

        CHECK(value.starts_with("{\"hmac\":\""));
        CHECK_FALSE(contains(value, "shared-key"));
        auto decoded = athena::decode_redis_value(signing, key, value);
        REQUIRE(decoded.has_value());
        CHECK(*decoded == entry);
    }
    SUBCASE("a changed verdict fails the check") {
        std::string value = athena::encode_redis_value(signing, key, entry);
        const auto at = value.find("malicious");
        REQUIRE(at != std::string::npos);
        value.replace(at, 9, "benign");

        auto decoded = athena::decode_redis_value(signing, key, value);

        REQUIRE_FALSE(decoded.has_value());
        CHECK(decoded.error().kind == "integrity");
    }
    SUBCASE("a value copied to another key fails the check") {
        const std::string value = athena::encode_redis_value(signing, key, entry);
        const std::string other_key = "athena:" + std::string(64, 'c') + ":builtin/1";

        auto decoded = athena::decode_redis_value(signing, other_key, value);

        REQUIRE_FALSE(decoded.has_value());
        CHECK(decoded.error().kind == "integrity");
    }
    SUBCASE("a value signed with another secret fails the check") {
        athena::RedisOptions other = signing;
        other.secret = "another-key";
        const std::string value = athena::encode_redis_value(other, key, entry);

        CHECK(athena::decode_redis_value(signing, key, value).error().kind == "integrity");
    }
    SUBCASE("an unsigned value is rejected when a secret is set") {
        const std::string value = athena::encode_redis_value(plain, key, entry);

        auto decoded = athena::decode_redis_value(signing, key, value);

        REQUIRE_FALSE(decoded.has_value());
        CHECK(decoded.error().kind == "integrity");
    }
    SUBCASE("a signed value is read unverified without a secret") {
        const std::string value = athena::encode_redis_value(signing, key, entry);

        auto decoded = athena::decode_redis_value(plain, key, value);

        REQUIRE(decoded.has_value());
        CHECK(*decoded == entry);
    }
    SUBCASE("a broken envelope does not decode") {
        auto decoded = athena::decode_redis_value(signing, key, "{\"hmac\":\"abc\"}");

        REQUIRE_FALSE(decoded.has_value());
        CHECK(decoded.error().kind == "cache");
    }
}
