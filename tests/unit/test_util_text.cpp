#include <athena/text.hpp>

#include <doctest/doctest.h>

TEST_CASE("Text: UTF-8 validation") {
    CHECK(athena::is_valid_utf8("plain"));
    CHECK(athena::is_valid_utf8("caf\xC3\xA9"));
    CHECK(athena::is_valid_utf8("\xF0\x9F\x98\x80"));
    CHECK_FALSE(athena::is_valid_utf8("\xFF"));
    CHECK_FALSE(athena::is_valid_utf8("\xC3"));         // truncated sequence
    CHECK_FALSE(athena::is_valid_utf8("\xC0\xAF"));     // overlong '/'
    CHECK_FALSE(athena::is_valid_utf8("\xED\xA0\x80")); // surrogate
}

TEST_CASE("Text: lossy conversion replaces each invalid byte") {
    CHECK(athena::to_utf8_lossy("a\xFF" "b") == "a\xEF\xBF\xBD" "b");
    CHECK(athena::to_utf8_lossy("caf\xC3\xA9") == "caf\xC3\xA9");
}

TEST_CASE("Text: base64 of raw bytes") {
    CHECK(athena::base64_encode("") == "");
    CHECK(athena::base64_encode("f") == "Zg==");
    CHECK(athena::base64_encode("fo") == "Zm8=");
    CHECK(athena::base64_encode("foo") == "Zm9v");
    CHECK(athena::base64_encode(std::string("\xFF\x00\x80", 3)) == "/wCA");
}

TEST_CASE("Text: sha256sum name escaping") {
    std::string out;
    SUBCASE("plain name is unchanged") {
        CHECK_FALSE(athena::escape_sha256sum_name("a b", out));
        CHECK(out == "a b");
    }
    SUBCASE("newline and backslash are escaped") {
        CHECK(athena::escape_sha256sum_name("a\nb\\c", out));
        CHECK(out == "a\\nb\\\\c");
    }
}

TEST_CASE("Text: terminal escaping of control characters") {
    CHECK(athena::escape_for_terminal("a\tb\nc\x1b") == "a\\tb\\nc\\x1b");
}
