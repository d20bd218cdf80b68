// CRC-32 frames every inbox record: the standard check value and agreement with the bytewise
// definition for every length and alignment.
#include <catch2/catch.hpp>

#include <random>
#include <string>

#include "anju/edge/checksum.hpp"

namespace {
std::uint32_t bytewise(std::string_view data) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (const char ch : data) {
    c ^= static_cast<unsigned char>(ch);
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return c ^ 0xFFFFFFFFu;
}
}  // namespace

TEST_CASE("crc32 is CRC-32/ISO-HDLC", "[checksum]") {
  CHECK(anju::edge::crc32("123456789") == 0xCBF43926u);
  CHECK(anju::edge::crc32("") == 0u);
}

TEST_CASE("crc32 agrees with the bytewise definition and chains", "[checksum]") {
  std::mt19937 rng(7);
  std::string data(300, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  for (std::size_t off = 0; off < 8; ++off)
    for (std::size_t len = 0; off + len <= data.size(); len += 13) {
      const std::string_view v(data.data() + off, len);
      REQUIRE(anju::edge::crc32(v) == bytewise(v));
    }
  const std::string_view a(data.data(), 100), b(data.data() + 100, 200);
  CHECK(anju::edge::crc32(b, anju::edge::crc32(a)) == anju::edge::crc32(data));
}
