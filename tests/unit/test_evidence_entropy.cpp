#include <athena/evidence.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

TEST_CASE("shannon_entropy: bits per byte") {
    SUBCASE("empty input has no entropy") {
        CHECK(athena::shannon_entropy({}) == 0.0);
    }

    SUBCASE("a single repeated byte has no entropy") {
        std::vector<std::uint8_t> bytes(1000, 0x41);

        CHECK(athena::shannon_entropy(bytes) == 0.0);
    }

    SUBCASE("two symbols in equal shares give one bit") {
        std::vector<std::uint8_t> bytes;
        for (int i = 0; i < 500; ++i) {
            bytes.push_back(0x00);
            bytes.push_back(0xff);
        }

        CHECK(athena::shannon_entropy(bytes) == doctest::Approx(1.0));
    }

    SUBCASE("four symbols in equal shares give two bits") {
        std::vector<std::uint8_t> bytes = {1, 2, 3, 4, 4, 3, 2, 1};

        CHECK(athena::shannon_entropy(bytes) == doctest::Approx(2.0));
    }

    SUBCASE("every byte value once gives the maximum of eight bits") {
        std::vector<std::uint8_t> bytes;
        for (int value = 0; value < 256; ++value) {
            bytes.push_back(static_cast<std::uint8_t>(value));
        }

        CHECK(athena::shannon_entropy(bytes) == doctest::Approx(8.0));
    }

    SUBCASE("a skewed two-symbol mix gives less than one bit") {
        // p = 1/4 and 3/4: -(0.25 log2 0.25 + 0.75 log2 0.75) = 0.811278...
        std::vector<std::uint8_t> bytes = {7, 9, 9, 9};

        CHECK(athena::shannon_entropy(bytes) == doctest::Approx(0.8112781245));
    }
}
