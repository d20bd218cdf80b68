// Booted with no network, the clock is not synchronised: anjud runs, marks its events (and what it
// sends the city) clock_synced=false, and flips to true once NTP reports sync, without restamping
// what it journaled before. The sync state comes from a file (the test build, tests/testbuild/);
// the time itself is the system's.
#include <catch2/catch.hpp>
#include <fstream>

#include "city_contract.hpp"
#include "harness.hpp"

using namespace anju::it;

namespace {
const std::string kSite = "demo-compound";

// The journal's events (anju events --json: one JSON object per line), oldest first.
std::vector<json> journal_events(const Anjud& gw) {
  std::string out;
  run_shell("'" + std::string(ANJU_PATH) + "' --data-dir '" + gw.data_dir().string() +
                "' events --since 1h --json",
            &out);
  std::vector<json> events;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (auto j = json::parse(line, nullptr, false); j.is_object()) events.push_back(j);
  std::sort(events.begin(), events.end(),
            [](const json& a, const json& b) { return a.value("seq", 0) < b.value("seq", 0); });
  return events;
}

// The city's messages about one device, in arrival order.
std::vector<json> city_about(const std::vector<Message>& ms, const std::string& device_id) {
  std::vector<json> out;
  for (const auto& m : ms) {
    const auto j = json::parse(m.payload, nullptr, false);
    if (!j.is_object()) continue;
    // Alerts carry the device in "alert", events and device status at the top; others none.
    const json holder = j.contains("alert") ? j["alert"] : j;
    const json dev = holder.value("device", json::object());
    if (dev.is_object() && dev.value("id", "") == device_id) out.push_back(j);
  }
  return out;
}
}  // namespace

TEST_CASE("clock sync: events say clock_synced=false until NTP syncs, then true, never restamped",
          "[clock]") {
  Mosquitto local, city;
  local.start();
  city.start();
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  cfg.binary = ANJUD_TEST_PATH;
  Anjud gw(cfg);
  std::ofstream(gw.data_dir() / "clock_synced") << "0\n";
  gw.start();
  Collector at_city(city.uri(), "anju/v1/" + kSite + "/#");
  Publisher pub(local.uri());
  pub.publish("zigbee2mqtt/bridge/devices", demo_devices_json(), 1, true);
  INFO("anjud log:\n" << tail(gw.log()));
  REQUIRE(gw.wait_devices(5, 20s));
  CHECK(gw.status().value_or(json::object()).value("clock", json::object())["synced"] == false);

  // Before sync: a smoke alarm.
  pub.publish("zigbee2mqtt/smoke_3_2_hall", R"({"smoke":true})", 1, false);
  const std::string smoke = "0x00158d0000000001", leak = "0x00158d0000000003";
  REQUIRE(at_city.wait_for([&](const auto& ms) { return city_about(ms, smoke).size() >= 2; }, 20s));

  // NTP syncs the clock: the flag flips within a second or so, and the log says so.
  std::ofstream(gw.data_dir() / "clock_synced") << "1\n";
  REQUIRE(wait_until(
      [&] {
        return gw.status().value_or(json::object()).value("clock", json::object())["synced"] ==
               true;
      },
      10s));
  pub.publish("zigbee2mqtt/leak_pump_room", R"({"water_leak":true})", 1, false);
  REQUIRE(at_city.wait_for([&](const auto& ms) { return city_about(ms, leak).size() >= 2; }, 20s));
  CHECK(tail(gw.log()).find("clock: synchronised; events from now on carry clock_synced=true") !=
        std::string::npos);

  // What the city got: the smoke alarm's event and alert unsynchronised, the leak's synchronised.
  anju::contract::check_city_contract(at_city.messages());
  for (const auto& j : city_about(at_city.messages(), smoke)) {
    INFO(j.dump());
    CHECK(j["clock_synced"] == false);
  }
  for (const auto& j : city_about(at_city.messages(), leak)) {
    INFO(j.dump());
    CHECK(j["clock_synced"] == true);
  }
  // The journal: the smoke event keeps clock_synced=false and its time (nothing restamped).
  const auto events = journal_events(gw);
  const auto find = [&](const std::string& kind) {
    for (const auto& e : events)
      if (e.value("kind", "") == kind) return e;
    return json();
  };
  const json s = find("smoke"), l = find("water_leak");
  REQUIRE(s.is_object());
  REQUIRE(l.is_object());
  CHECK(s["clock_synced"] == false);
  CHECK(l["clock_synced"] == true);
  CHECK(s["ts_ms"].get<std::int64_t>() <= l["ts_ms"].get<std::int64_t>());
  CHECK(gw.term() == 0);
}
