// The sensor drivers inside the real anjud, configured from its YAML alone: a ChirpStack uplink, a
// vendor's JSON and a Modbus fire panel each raise their alert at the city broker, with the place
// the config gives; a Modbus device that stops answering goes offline at the city and comes back.
// Real Mosquitto brokers (local bus and city), a real libmodbus server, the real anjud binary.
#include <catch2/catch.hpp>

#include <string>

#include "city_contract.hpp"
#include "harness.hpp"
#include "modbus_server.hpp"

using namespace anju::it;

namespace {

const std::string kSite = "demo-compound";
const std::string kCityAlert = "anju/v1/" + kSite + "/alert";
const std::string kCityEvent = "anju/v1/" + kSite + "/event";
constexpr const char* kEui = "70b3d57ed0051a2b";
constexpr const char* kApp = "a1b2c3d4-0000-4000-8000-000000000001";

std::string chirpstack_topic(const std::string& event) {
  return std::string("application/") + kApp + "/device/" + kEui + "/event/" + event;
}

std::string manhole_uplink(int fcnt, bool open) {
  json j = {
      {"deduplicationId", "5b0a3c4e-1f2d-4c8e-9a7b-0c1d2e3f4a5b"},
      {"time", "2026-11-30T08:16:15.688878229+00:00"},
      {"deviceInfo",
       {{"applicationId", kApp},
        {"deviceProfileName", "manhole-cover-v2"},
        {"deviceName", "mh-17"},
        {"devEui", "70B3D57ED0051A2B"}}},
      {"fCnt", fcnt},
      {"fPort", 2},
      {"object", {{"cover_open", open}, {"water", {{"level_cm", 42}}}}},
      {"rxInfo", json::array({{{"gatewayId", "0016c001f153a14c"}, {"rssi", -101}, {"snr", 3.5}}})}};
  return j.dump();
}

// The sensor sections appended to the harness's gateway config.
std::string sensor_yaml(int modbus_port) {
  return R"(
chirpstack:
  enabled: true
  mappings:
    manhole:
      profiles: [manhole-cover-v2]
      device_kind: manhole_sensor
      object_fields:
        - {path: cover_open, kind: manhole_open}
        - {path: /water/level_cm, kind: water_level, unit: m, scale: 0.01}
  devices:
    70B3D57ED0051A2B:
      room: east gate road
generic_mqtt:
  mappings:
    - name: pumps
      topic: vendor/pumps/{building}/{device}/telemetry
      device_kind: pump_controller
      fields:
        - {pointer: /pressure_kpa, kind: pressure, unit: kPa}
        - {pointer: /alarm, kind: equipment_alarm, active_values: ["ALARM"], inactive_values: ["OK"]}
  devices:
    pump-1:
      name: B2 domestic water pump 1
      room: pump room
modbus:
  backoff_min_ms: 50
  backoff_max_ms: 200
  devices:
    - id: fire-panel-b3
      kind: fire_panel
      host: 127.0.0.1
      port: )" +
         std::to_string(modbus_port) +
         R"(
      poll_interval_ms: 100
      timeout_ms: 200
      retries: 0
      registers:
        - {name: fire_alarm, function: 2, address: 0, type: bool, kind: smoke}
        - {name: tank_level, function: 4, address: 10, type: uint16, kind: water_level, unit: m, scale: 0.01}
      building: "3"
      room: fire control room
)";
}

const json* find_alert(const std::vector<Message>& ms, const std::string& rule, json& out) {
  for (const auto& m : ms) {
    if (!anju::contract::under(m.topic, kCityAlert)) continue;
    auto j = json::parse(m.payload, nullptr, false);
    if (j.is_object() && j.value("change", "") == "raised" && j.contains("alert") &&
        j["alert"].value("rule", "") == rule) {
      out = j["alert"];
      return &out;
    }
  }
  return nullptr;
}

}  // namespace

TEST_CASE("sensor drivers configured in anju.yaml raise alerts at the city", "[e2e][sensors]") {
  Mosquitto local, city;
  local.start();
  city.start();
  ModbusServer panel;
  panel.start();
  panel.set_input(10, 137);  // tank level 1.37 m
  Collector city_col(city.uri(), "anju/v1/" + kSite + "/#");
  Collector local_col(local.uri(), "anju/" + kSite + "/alert/+");

  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  cfg.event_kinds = {"device_offline", "device_online", "water_level"};
  Anjud gw(cfg);
  write_file(gw.config_path(), read_file(gw.config_path()) + sensor_yaml(panel.port()));
  gw.start();
  auto diag = [&] {
    std::string s = "anjud log:\n" + tail(gw.log(), 5000);
    if (auto st = gw.status()) s += "\nstatus: " + st->dump();
    return s;
  };

  // The drivers are up when the status socket lists them and the Modbus panel was polled.
  const bool up = wait_until(
      [&] {
        auto st = gw.status();
        return st && st->contains("chirpstack") && st->contains("generic_mqtt") &&
               st->contains("modbus") && (*st)["modbus"].value("online", 0) == 1;
      },
      20s);
  INFO(diag());
  REQUIRE(up);
  // The local bus subscriptions are live once a message reaches each driver.
  REQUIRE(wait_until(
      [&] {
        local_col.publish(chirpstack_topic("log"), "{}", 1, false);
        local_col.publish("vendor/pumps/B2/probe/telemetry", "{}", 1, false);
        auto st = gw.status();
        return st && (*st)["chirpstack"].value("messages", 0) > 0 &&
               (*st)["generic_mqtt"].value("messages", 0) > 0;
      },
      15s, 200ms));

  // LoRaWAN manhole cover opened: a severity-2 alert with the place from the config.
  local_col.publish(chirpstack_topic("up"), manhole_uplink(7, true), 1, false);
  // Vendor pump controller alarm.
  local_col.publish("vendor/pumps/B2/pump-1/telemetry",
                    R"({"pressure_kpa": 310.5, "alarm": "ALARM"})", 1, false);
  // Modbus fire panel: the fire alarm input goes on.
  panel.set_discrete(0, true);

  json manhole, pump, fire;
  const bool alerts = city_col.wait_for(
      [&](const auto& ms) {
        return find_alert(ms, "manhole_open", manhole) && find_alert(ms, "equipment_alarm", pump) &&
               find_alert(ms, "smoke", fire);
      },
      20s);
  INFO(diag());
  REQUIRE(alerts);
  CHECK(manhole["severity"] == 2);
  CHECK(manhole["device"]["id"] == kEui);
  CHECK(manhole["device"]["name"] == "mh-17");
  CHECK(manhole["location"]["room"] == "east gate road");
  CHECK(pump["device"]["id"] == "pump-1");
  CHECK(pump["device"]["name"] == "B2 domestic water pump 1");
  CHECK(pump["location"]["building"] == "B2");  // from the topic's capture
  CHECK(pump["location"]["room"] == "pump room");
  CHECK(fire["severity"] == 1);
  CHECK(fire["device"]["id"] == "fire-panel-b3");
  CHECK(fire["location"]["building"] == "3");
  CHECK(fire["location"]["room"] == "fire control room");
  // The local bus has them too (property management's view).
  CHECK(local_col.wait_for(
      [](const auto& ms) {
        int n = 0;
        for (const auto& m : ms) {
          auto j = json::parse(m.payload, nullptr, false);
          if (j.is_object()) {
            const std::string rule = j.value("rule", "");
            n += rule == "manhole_open" || rule == "equipment_alarm" || rule == "smoke";
          }
        }
        return n >= 3;
      },
      10s));
  // A measured value the city asked for arrives as an event, scaled as configured.
  CHECK(city_col.wait_for(
      [](const auto& ms) {
        for (const auto& m : ms) {
          if (!anju::contract::under(m.topic, kCityEvent)) continue;
          auto j = json::parse(m.payload, nullptr, false);
          if (!j.is_object() || j.value("kind", "") != "water_level") continue;
          if (j["device"].value("id", "") != "fire-panel-b3") continue;
          for (const auto& v : j["values"])
            if (v.value("name", "") == "tank_level" &&
                std::abs(v.value("value", 0.0) - 1.37) < 1e-9)
              return true;
        }
        return false;
      },
      10s));

  // The panel stops answering: offline at the city, once; answering again: online.
  panel.set_silent(true);
  auto count_city_events = [](const std::vector<Message>& ms, const std::string& kind) {
    int n = 0;
    for (const auto& m : ms) {
      if (!anju::contract::under(m.topic, kCityEvent)) continue;
      auto j = json::parse(m.payload, nullptr, false);
      n += j.is_object() && j.value("kind", "") == kind &&
           j["device"].value("id", "") == "fire-panel-b3";
    }
    return n;
  };
  REQUIRE(city_col.wait_for(
      [&](const auto& ms) { return count_city_events(ms, "device_offline") == 1; }, 15s));
  panel.set_silent(false);
  REQUIRE(city_col.wait_for(
      [&](const auto& ms) { return count_city_events(ms, "device_online") == 1; }, 15s));
  CHECK(count_city_events(city_col.messages(), "device_offline") == 1);

  const auto st = gw.status();
  REQUIRE(st);
  CHECK((*st)["chirpstack"]["events"].get<int>() >= 3);  // manhole, level, radio
  CHECK((*st)["generic_mqtt"]["events"].get<int>() >= 2);
  CHECK((*st)["modbus"]["timeouts"].get<int>() >= 1);
  CHECK(gw.term() == 0);
  // Every LoRaWAN, vendor and Modbus message the city got follows the published contract.
  anju::contract::check_city_contract(city_col.messages());
}
