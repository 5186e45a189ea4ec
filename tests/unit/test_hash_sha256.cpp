#include "temp_dir.hpp"

#include <athena/hash.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace {

std::span<const std::uint8_t> bytes_of(const std::string& text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

athena::FileIdentity identity_of(const std::filesystem::path& path) {
    struct stat info{};
    REQUIRE(::stat(path.c_str(), &info) == 0);
    return athena::FileIdentity{
        static_cast<std::uint64_t>(info.st_dev), static_cast<std::uint64_t>(info.st_ino),
        static_cast<std::uint64_t>(info.st_size),
        info.st_mtim.tv_sec * 1'000'000'000LL + info.st_mtim.tv_nsec,
        info.st_ctim.tv_sec * 1'000'000'000LL + info.st_ctim.tv_nsec};
}

} // namespace

TEST_CASE("Sha256: known vectors") {
    SUBCASE("empty input") {
        CHECK(athena::sha256_hex({}) ==
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
    SUBCASE("abc") {
        CHECK(athena::sha256_hex(bytes_of("abc")) ==
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
    SUBCASE("two-block message") {
        CHECK(athena::sha256_hex(bytes_of(
                  "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    }
    SUBCASE("incremental updates equal one update") {
        athena::Sha256 hasher;
        hasher.update(bytes_of("ab"));
        hasher.update(bytes_of("c"));
        CHECK(hasher.finish_hex() == athena::sha256_hex(bytes_of("abc")));
        // finish_hex resets the state for the next input.
        CHECK(hasher.finish_hex() == athena::sha256_hex({}));
    }
}

TEST_CASE("hash_file: reads the whole file and keeps small content") {
    athena::test::TempDir dir;
    const auto file = dir.write("a.txt", "abc");
    std::vector<std::uint8_t> content;

    auto hashed = athena::hash_file(file, identity_of(file), &content, 1024);

    REQUIRE(hashed.has_value());
    CHECK(hashed->sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(hashed->bytes_read == 3);
    CHECK(content == std::vector<std::uint8_t>{'a', 'b', 'c'});
}

TEST_CASE("hash_file: errors") {
    athena::test::TempDir dir;
    const auto file = dir.write("a.txt", "abc");

    SUBCASE("missing file is an io error") {
        auto hashed = athena::hash_file(dir.path() / "missing", {}, nullptr, 0);
        REQUIRE_FALSE(hashed.has_value());
        CHECK(hashed.error().kind == "io");
    }
    SUBCASE("size differing from the walk is a changed error") {
        auto identity = identity_of(file);
        identity.size_bytes = 2;
        auto hashed = athena::hash_file(file, identity, nullptr, 0);
        REQUIRE_FALSE(hashed.has_value());
        CHECK(hashed.error().kind == "changed");
    }
    SUBCASE("mtime differing from the walk is a changed error") {
        auto identity = identity_of(file);
        identity.mtime_ns -= 1;
        auto hashed = athena::hash_file(file, identity, nullptr, 0);
        REQUIRE_FALSE(hashed.has_value());
        CHECK(hashed.error().kind == "changed");
    }
}

TEST_CASE("hash_file: sparse file over 4 GiB") {
    athena::test::TempDir dir;
    const auto file = dir.path() / "sparse.bin";
    const int fd = ::open(file.c_str(), O_CREAT | O_WRONLY, 0600);
    REQUIRE(fd >= 0);
    // 4 GiB + 1 byte of zeros: sizes and counters must not wrap at 32 bits.
    REQUIRE(::ftruncate(fd, (4LL << 30) + 1) == 0);
    ::close(fd);

    auto hashed = athena::hash_file(file, identity_of(file), nullptr, 0);

    REQUIRE(hashed.has_value());
    CHECK(hashed->bytes_read == (4ULL << 30) + 1);
    // Digest computed with GNU coreutils sha256sum on the same file.
    CHECK(hashed->sha256 == "fbb82f7b353676bb562eb82157fcf0ea42c36492ca13ee56dbf82c08b6802c5c");
}
