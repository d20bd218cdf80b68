// The device registry end to end: real anjud, two Mosquittos, zigbee2mqtt traffic. A device that
// goes silent is offline once at the city and online again when heard; a kill -9 and restart in
// between announces nothing twice; a weak link raises one signal_weak; the summary counts the
// devices per state and lists those that changed; `anju devices` shows the same. No fixed sleeps:
// every wait is a condition with a deadline.
#include <catch2/catch.hpp>

#include <set>

#include "city_contract.hpp"
#include "harness.hpp"

using namespace anju::it;

namespace {

const std::string kSite = "demo-compound";
const std::string kClimate = "0x00158d0000000005";  // climate_3_2_1201 in the demo list
const std::string kLeak = "0x00158d0000000003";     // leak_pump_room

json parse(const std::string& s) {
  return json::parse(s, nullptr, false);
}

// The city's status messages for `device` with `state`. Delivery is at least once (a kill -9
// before the PUBACK sends a message again, with the same id), so the city counts ids, as here.
std::size_t status_count(const std::vector<Message>& ms, const std::string& device,
                         const std::string& state) {
  std::set<std::string> ids;
  for (const auto& m : ms) {
    if (m.topic != "anju/v1/" + kSite + "/status/" + device) continue;
    const auto j = parse(m.payload);
    if (j.is_object() && j.value("state", "") == state) ids.insert(j.value("id", ""));
  }
  return ids.size();
}

std::size_t alert_count(const std::vector<Message>& ms, const std::string& change,
                        const std::string& rule, const std::string& device) {
  std::set<std::string> ids;
  for (const auto& m : ms) {
    if (m.topic.rfind("anju/v1/" + kSite + "/alert/", 0) != 0) continue;
    const auto j = parse(m.payload);
    if (!j.is_object() || !j.contains("alert") || !j["alert"].is_object()) continue;
    const auto& a = j["alert"];
    if (j.value("change", "") == change && a.value("rule", "") == rule && a.contains("device") &&
        a["device"].is_object() && a["device"].value("id", "") == device)
      ids.insert(j.value("id", ""));
  }
  return ids.size();
}

// What the city got, one line a message (topic and the interesting members), for failures.
std::string dump(const std::vector<Message>& ms) {
  std::string out;
  for (const auto& m : ms) {
    const auto j = parse(m.payload);
    out += m.topic;
    if (j.is_object()) {
      if (j.contains("state")) out += " state=" + j["state"].dump();
      if (j.contains("change")) out += " change=" + j["change"].dump();
      if (j.contains("devices")) out += " devices=" + j["devices"].dump();
      if (j.contains("period")) out += " period=" + j["period"].dump();
    }
    out += "\n";
  }
  return out;
}

}  // namespace

TEST_CASE("registry: silence, return, a restart in between, weak link, counts at the city",
          "[registry][e2e]") {
  Mosquitto local, city;
  local.start();
  city.start();
  Collector city_col(city.uri(), "anju/v1/" + kSite + "/#");
  Collector local_col(local.uri(), "anju/" + kSite + "/alert/+");
  local_col.publish("zigbee2mqtt/bridge/devices", demo_devices_json(), 1, true);
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  cfg.heartbeat_timeout_s = 2;
  cfg.weak_linkquality = 20;
  cfg.summary_interval_s = 10;
  Anjud gw(cfg);
  gw.start();
  auto diag = [&] {
    std::string s = "anjud log:\n" + tail(gw.log(), 5000);
    if (auto st = gw.status()) s += "\nstatus: " + st->dump();
    return s;
  };
  {
    const bool ready = gw.wait_devices(5, 15s);
    INFO(diag());
    REQUIRE(ready);
  }
  auto climate = [&](int linkquality) {
    local_col.publish("zigbee2mqtt/climate_3_2_1201",
                      R"({"temperature":21.5,"linkquality":)" + std::to_string(linkquality) + "}",
                      1, false);
  };

  // Heard with a weak link: one signal_weak (severity 4), however often it repeats.
  climate(12);
  climate(15);
  bool ok = city_col.wait_for(
      [&](const auto& ms) { return alert_count(ms, "raised", "signal_weak", kClimate) == 1; }, 15s);
  if (!ok) FAIL(diag() + "\ncity:\n" + dump(city_col.messages()));

  // Silent for the heartbeat (2 s): offline once at the city.
  ok = city_col.wait_for([&](const auto& ms) { return status_count(ms, kClimate, "offline") == 1; },
                         15s);
  if (!ok) FAIL(diag() + "\ncity:\n" + dump(city_col.messages()));
  // Heard again with a good link: online once (the supervisor's device_online), and the weak
  // link clears (the alert stays for a person to close).
  climate(200);
  ok = city_col.wait_for(
      [&](const auto& ms) {
        return status_count(ms, kClimate, "online") == 1 &&
               alert_count(ms, "condition_cleared", "signal_weak", kClimate) == 1;
      },
      15s);
  if (!ok) FAIL(diag() + "\ncity:\n" + dump(city_col.messages()));
  // Silent again: offline a second time, on the same open device_offline alert.
  ok = city_col.wait_for([&](const auto& ms) { return status_count(ms, kClimate, "offline") == 2; },
                         15s);
  if (!ok) FAIL(diag() + "\ncity:\n" + dump(city_col.messages()));

  // kill -9 while the device is offline, and start again.
  gw.kill9();
  gw.start();
  {
    const bool ready = gw.wait_devices(5, 15s);
    INFO(diag());
    REQUIRE(ready);
  }
  // A second device heard after the restart goes offline two seconds later, then comes back; by
  // the time its device_online is at the city (status messages go up in order), a wrong second
  // offline of the climate sensor (its window restarted at the restart) would be there too.
  local_col.publish("zigbee2mqtt/leak_pump_room", R"({"water_leak":false,"battery":90})", 1, false);
  ok = city_col.wait_for([&](const auto& ms) { return status_count(ms, kLeak, "offline") == 1; },
                         15s);
  if (!ok) FAIL(diag() + "\ncity:\n" + dump(city_col.messages()));
  local_col.publish("zigbee2mqtt/leak_pump_room", R"({"water_leak":false,"battery":90})", 1, false);
  ok = city_col.wait_for([&](const auto& ms) { return status_count(ms, kLeak, "online") == 1; },
                         15s);
  if (!ok) FAIL(diag() + "\ncity:\n" + dump(city_col.messages()));
  const auto ms = city_col.messages();
  INFO(dump(ms));
  INFO("anjud log:\n" + tail(gw.log(), 6000));
  CHECK(status_count(ms, kClimate, "offline") == 2);
  CHECK(alert_count(ms, "raised", "device_offline", kClimate) == 1);
  CHECK(sql_i64(gw.db_path(),
                "SELECT count(*) FROM events WHERE kind='device_offline' AND "
                "device_id='" +
                    kClimate + "'") == 2);

  // The climate sensor is back after the restart: online, announced once more.
  climate(210);
  ok = city_col.wait_for([&](const auto& m) { return status_count(m, kClimate, "online") == 2; },
                         15s);
  if (!ok) FAIL(diag() + "\ncity:\n" + dump(city_col.messages()));

  // A summary after the restart lists the devices that changed state in its period (each with
  // its last change there: with a 2 s heartbeat both flap) and counts the registry.
  json summary;
  ok = city_col.wait_for(
      [&](const auto& m) {
        for (const auto& msg : m) {
          if (msg.topic.rfind("anju/v1/" + kSite + "/summary/", 0) != 0) continue;
          const auto j = parse(msg.payload);
          if (!j.is_object() || !j.contains("devices") || !j["devices"].is_object()) continue;
          for (const auto& c : j["devices"].value("changed", json::array()))
            if (c.is_object() && c.value("device", "") == kLeak) {
              summary = j;
              return true;
            }
        }
        return false;
      },
      25s);
  INFO(summary.dump());
  if (!ok) FAIL(diag() + "\ncity:\n" + dump(city_col.messages()));
  const json& devices = summary["devices"];
  CHECK(devices.value("known", 0) == 2);
  CHECK(devices.value("online", -1) + devices.value("offline", -1) == 2);
  CHECK(devices.value("signal_weak", -1) == 0);  // cleared: only present conditions count
  CHECK(devices.value("changed_total", -1) == static_cast<int>(devices["changed"].size()));
  for (const auto& c : devices["changed"]) {
    CHECK((c.value("state", "") == "online" || c.value("state", "") == "offline"));
    CHECK(c.value("ts_ms", 0LL) >= summary["period"].value("start_ms", 0LL));
    CHECK(c.value("ts_ms", 0LL) < summary["period"].value("end_ms", 0LL));
  }
  anju::contract::check_city_contract(city_col.messages());

  // `anju devices` shows the registry.
  std::string out;
  const int rc = run_shell(
      "'" + std::string(ANJU_PATH) + "' --data-dir '" + gw.data_dir().string() + "' devices", &out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("climate_3_2_1201") != std::string::npos);
  CHECK(out.find("leak_pump_room") != std::string::npos);
  CHECK(out.find("2 devices: ") != std::string::npos);
}
