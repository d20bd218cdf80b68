// The binary event form the inbox and the journal store: round trips, size, and refusals that
// name the field for every truncation and corruption.
#include <catch2/catch.hpp>

#include "anju/edge/event.hpp"
#include "anju/edge/uuid.hpp"

using namespace anju::edge;

namespace {

Event full_event() {
  Event e;
  e.id = uuid_v7(1'796'000'000'000);
  e.ts_ms = 1'796'000'000'123;
  e.mono_ns = 987'654'321'012;
  e.boot_id = "73704570-ef83-4321-ad03-b4164bd4c632";
  e.clock_synced = true;
  e.site = "demo-compound";
  e.grid_code = "11010500100200300401";
  e.location = {"3", "2", "1201 北"};
  e.device = {"0x00158d0000000005", "climate_sensor", "climate_3_2_1201", "11010500001340000005"};
  e.kind = EventKind::temperature;
  e.severity = 4;
  e.values = {{"temperature", 22.9, "C"}, {"humidity", -0.0, "%"}, {"x", 1e300, ""}};
  e.attrs = {{"linkquality", 120}, {"nested", {{"a", "b"}}}};
  e.source = "zigbee2mqtt";
  e.source_key = "17:3a9f0c21";
  return e;
}

}  // namespace

TEST_CASE("binary events round-trip every field", "[event][codec]") {
  Event e = full_event();
  auto r = decode_binary(encode_binary(e));
  REQUIRE(r.error.empty());
  REQUIRE(r.event);
  CHECK(*r.event == e);

  SECTION("active absent, true and false are three different events") {
    for (std::optional<bool> active :
         {std::optional<bool>{}, std::optional<bool>{true}, std::optional<bool>{false}}) {
      e.kind = EventKind::water_leak;
      e.active = active;
      auto back = decode_binary(encode_binary(e));
      REQUIRE(back.event);
      CHECK(back.event->active == active);
    }
  }
  SECTION("ids that are not canonical UUIDs are kept as they are") {
    e.id = "ABCDEF01-ef83-4321-ad03-b4164bd4c632";  // upper case: not canonical
    e.boot_id = "test-boot";
    auto back = decode_binary(encode_binary(e));
    REQUIRE(back.event);
    CHECK(back.event->id == e.id);
    CHECK(back.event->boot_id == "test-boot");
  }
  SECTION("negative times and empty strings") {
    e.ts_ms = -5;
    e.mono_ns = 0;
    e.site.clear();
    e.values.clear();
    e.attrs = nlohmann::json::object();
    auto back = decode_binary(encode_binary(e));
    REQUIRE(back.event);
    CHECK(*back.event == e);
  }
}

TEST_CASE("binary events are less than half the JSON's size", "[event][codec]") {
  Event e = full_event();
  e.values.resize(1);
  e.attrs = {{"linkquality", 120}};
  const auto bin = encode_binary(e);
  const auto text = encode(e);
  INFO("binary " << bin.size() << " B, JSON " << text.size() << " B");
  CHECK(bin.size() * 2 < text.size());
}

TEST_CASE("binary decoder refuses every truncation and names the field", "[event][codec]") {
  const std::string bytes = encode_binary(full_event());
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    auto r = decode_binary(std::string_view(bytes.data(), n));
    CAPTURE(n);
    CHECK_FALSE(r.event);
    CHECK(r.error.rfind("binary event: ", 0) == 0);
  }
  auto extra = decode_binary(bytes + "x");
  CHECK_FALSE(extra.event);
  CHECK(extra.error == "binary event: bytes after the last field");
}

TEST_CASE("binary decoder refuses bad contents with a reason", "[event][codec]") {
  Event e = full_event();
  e.severity = 4;
  std::string bytes = encode_binary(e);
  SECTION("unknown format") {
    bytes[0] = static_cast<char>(0xB2);
    CHECK(decode_binary(bytes).error == "binary event: unknown format byte");
  }
  SECTION("unknown kind") {
    const auto at = bytes.find("temperature");
    REQUIRE(at != std::string::npos);
    bytes.replace(at, 11, "temperaturX");
    CHECK(decode_binary(bytes).error == "binary event: unknown event kind 'temperaturX'");
  }
  SECTION("severity out of range") {
    const auto at = bytes.find("temperature") + 11;
    bytes[at] = 9;
    CHECK(decode_binary(bytes).error == "binary event: field 'severity' must be 1..4, got 9");
  }
}

TEST_CASE("stored events decode in either form", "[event][codec]") {
  Event e = full_event();
  auto from_json = decode_stored(encode(e));
  auto from_binary = decode_stored(encode_binary(e));
  REQUIRE(from_json.event);
  REQUIRE(from_binary.event);
  CHECK(*from_json.event == *from_binary.event);
  CHECK_FALSE(decode_stored("").event);
  CHECK_FALSE(decode_stored("").error.empty());
}

TEST_CASE("flat and nested attrs both round-trip", "[event][codec]") {
  Event e = full_event();
  e.attrs = {{"s", "text"}, {"i", -3},     {"u", 18446744073709551615ull}, {"d", 0.25}, {"t", true},
             {"f", false},  {"n", nullptr}};
  auto flat = decode_binary(encode_binary(e));
  REQUIRE(flat.event);
  CHECK(flat.event->attrs == e.attrs);
  e.attrs["nested"] = {1, 2, {{"x", "y"}}};
  auto nested = decode_binary(encode_binary(e));
  REQUIRE(nested.event);
  CHECK(nested.event->attrs == e.attrs);
}
