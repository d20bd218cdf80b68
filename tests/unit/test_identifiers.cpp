// Unit tests of the identifier checks used at provisioning: GB/T 28181 device codes, division
// codes, grid codes and the grid code's division prefix. Messages name what is wrong.
#include <catch2/catch.hpp>

#include "anju/bridge/identifiers.hpp"

using namespace anju::bridge;

namespace {
bool has(const std::string& text, const std::string& part) {
  INFO(text);
  return text.find(part) != std::string::npos;
}
}  // namespace

TEST_CASE("identifiers: GB/T 28181 device code", "[contract][identifiers]") {
  // 34020000 00 132 0 000101: the well-known example (Anhui centre, IP camera)
  CHECK(check_gb28181_code("34020000001320000101") == "");
  CHECK(check_gb28181_code("11010500001340000001") == "");
  Gb28181Code c;
  REQUIRE(parse_gb28181_code("34020000001320000101", &c));
  CHECK(c.centre == "34020000");
  CHECK(c.industry == "00");
  CHECK(c.type == "132");
  CHECK(c.network == "0");
  CHECK(c.serial == "000101");
  CHECK(gb28181_type_class(c.type) == "front-end peripheral");
  CHECK(gb28181_type_class("118") == "front-end main device");
  CHECK(gb28181_type_class("200") == "platform device");
  CHECK(gb28181_type_class("100").empty());
  CHECK(gb28181_type_class("1x0").empty());

  CHECK(has(check_gb28181_code(""), "empty, 20 digits required"));
  CHECK(has(check_gb28181_code("3402000000132000010"), "19 digits, 20 required"));
  CHECK(has(check_gb28181_code("340200000013200001011"), "21 digits, 20 required"));
  CHECK(has(check_gb28181_code("3402000000132000010A"), "non-digit at position 20"));
  CHECK(has(check_gb28181_code(" 4020000001320000101"), "non-digit at position 1"));
  CHECK(has(check_gb28181_code("９4020000001320000101"), "non-digit"));  // full-width digit
  CHECK(has(check_gb28181_code("99020000001320000101"), "not a GB/T 2260 province code"));
  CHECK(has(check_gb28181_code("00000000001320000101"), "centre code"));
  CHECK(has(check_gb28181_code("34020000000000000101"), "type code (digits 11-13) 000"));
  CHECK_FALSE(parse_gb28181_code("34020000000000000101", &c));
  // messages stay printable and short whatever the input
  const std::string noisy = std::string("12\x01") + std::string(100, '9');
  const auto m = check_gb28181_code(noisy);
  CHECK(m.find('\x01') == std::string::npos);
  CHECK(m.size() < 160);
}

TEST_CASE("identifiers: division code", "[contract][identifiers]") {
  CHECK(check_division_code("110105001002") == "");
  CHECK(check_division_code("440307000000") == "");
  CHECK(has(check_division_code("11010500100"), "division code: 11 digits, 12 required"));
  CHECK(has(check_division_code("1101050010021"), "13 digits"));
  CHECK(has(check_division_code("11010500100-"), "non-digit at position 12"));
  CHECK(has(check_division_code("000000000000"), "not a GB/T 2260 province code"));
  CHECK(has(check_division_code(""), "empty"));
}

TEST_CASE("identifiers: grid code and its division prefix", "[contract][identifiers]") {
  CHECK(check_grid_code("11010500100200300401") == "");
  CHECK(check_grid_code("11010500100200300401", "110105001002") == "");
  CHECK(has(check_grid_code("1101050010020030040", "110105001002"), "grid code: 19 digits"));
  CHECK(has(check_grid_code("1101050010020030040x"), "non-digit at position 20"));
  CHECK(has(check_grid_code("11010500100300300401", "110105001002"),
            "the site's division code is 110105001002"));
  CHECK(has(check_grid_code("11010500100200300401", "1101050010"), "division code: 10 digits"));
  CHECK(has(check_grid_code("90010500100200300401"), "province"));
}
