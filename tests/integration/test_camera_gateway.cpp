// A camera configured in anju.yaml, inside the real anjud: Debian's vtest.avi (people on a
// walkway) is analysed on the gateway; the walkway zone raises an intrusion alert at the city
// with the camera's place, and the camera's online state reaches the city too. No video leaves.
// The driver is the module anju-camera.so: the first case loads it from the build tree the way
// an installed anjud does; the second gives anjud a module it cannot load.
#include <catch2/catch.hpp>

#include <string>

#include "city_contract.hpp"
#include "harness.hpp"

using namespace anju::it;

namespace {
const std::string kSite = "demo-compound";
const std::string kVtest = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";
}  // namespace

TEST_CASE("a camera in anju.yaml raises an intrusion alert at the city", "[e2e][camera]") {
  REQUIRE(fs::exists(kVtest));  // opencv-doc (scripts/install-deps)
  Mosquitto local, city;
  local.start();
  city.start();
  Collector city_col(city.uri(), "anju/v1/" + kSite + "/#");
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  cfg.event_kinds = {"device_online", "device_offline"};
  Anjud gw(cfg);
  write_file(gw.config_path(), read_file(gw.config_path()) + R"(
cameras:
  streams:
    - id: walkway-cam
      name: Walkway camera
      url: )" + kVtest + R"(
      building: "3"
      room: walkway
      width: 384
      height: 288
      fps: 10
      zones:
        - id: walkway
          detector: intrusion
          polygon: [[0.0, 0.30], [0.55, 0.30], [1.0, 0.45], [1.0, 0.75], [0.0, 0.60]]
          min_area: 0.003
          severity: 2
)");
  // The module in the build tree is where anjud finds it, and it loads.
  std::string out;
  CHECK(run_shell(std::string(ANJUD_PATH) + " --check-config --config " +
                      gw.config_path().string() + " 2>&1",
                  &out) == 0);
  CHECK(out.find("camera module OK: ") != std::string::npos);
  gw.start();
  json alert;
  const bool raised = city_col.wait_for(
      [&](const auto& ms) {
        for (const auto& m : ms) {
          if (!anju::contract::under(m.topic, "anju/v1/" + kSite + "/alert")) continue;
          auto j = json::parse(m.payload, nullptr, false);
          if (j.is_object() && j.value("change", "") == "raised" &&
              j["alert"].value("rule", "") == "intrusion") {
            alert = j["alert"];
            return true;
          }
        }
        return false;
      },
      60s);
  INFO("anjud log:\n" << tail(gw.log(), 4000));
  REQUIRE(raised);
  CHECK(alert["severity"] == 2);
  CHECK(alert["device"]["id"] == "walkway-cam");
  CHECK(alert["location"]["building"] == "3");
  CHECK(alert["location"]["room"] == "walkway");
  // The camera reported itself online (it opened the stream) before it saw anything.
  CHECK(city_col.wait_for(
      [](const auto& ms) {
        for (const auto& m : ms) {
          auto j = json::parse(m.payload, nullptr, false);
          if (j.is_object() && j.value("kind", "") == "device_online" &&
              j["device"].value("id", "") == "walkway-cam")
            return true;
        }
        return false;
      },
      10s));
  // The status socket (anju status, anju check) reports the stream and its frames.
  const auto st = gw.status();
  REQUIRE(st);
  REQUIRE((*st)["cameras"].is_array());
  REQUIRE((*st)["cameras"].size() == 1);
  const auto& cam = (*st)["cameras"][0];
  CHECK(cam["id"] == "walkway-cam");
  CHECK(cam["online"] == true);
  CHECK(cam["frames_read"].get<std::int64_t>() > 0);
  CHECK(cam["frames_analysed"].get<std::int64_t>() > 0);
  // Nothing the city got is an image: every message is a small JSON document.
  for (const auto& m : city_col.messages()) CHECK(m.payload.size() < 16 * 1024);
  CHECK(gw.term() == 0);
  anju::contract::check_city_contract(city_col.messages());
}

TEST_CASE("a camera module that cannot be loaded: cameras offline with the reason, sensors work",
          "[e2e][camera]") {
  Mosquitto local, city;
  local.start();
  city.start();
  Collector city_col(city.uri(), "anju/v1/" + kSite + "/#");
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  Anjud gw(cfg);
  const auto bogus = gw.config_path().parent_path() / "anju-camera.so";
  write_file(bogus, "not a shared object\n");
  write_file(gw.config_path(), read_file(gw.config_path()) + R"(
cameras:
  module: )" + bogus.string() + R"(
  streams:
    - id: gate-cam
      url: rtsp://user:secret@192.0.2.10/stream1
)");
  // The installer's pre-flight says so before anything starts.
  std::string out;
  CHECK(run_shell(std::string(ANJUD_PATH) + " --check-config --config " +
                      gw.config_path().string() + " 2>&1",
                  &out) == 1);
  CHECK(out.find("1 camera streams configured, but cannot load the camera module " +
                 bogus.string()) != std::string::npos);
  gw.start();
  // The camera's offline alert reaches the city, naming the module and why it failed.
  json alert;
  const bool raised = city_col.wait_for(
      [&](const auto& ms) {
        for (const auto& m : ms) {
          if (!anju::contract::under(m.topic, "anju/v1/" + kSite + "/alert")) continue;
          auto j = json::parse(m.payload, nullptr, false);
          if (j.is_object() && j.value("change", "") == "raised" &&
              j["alert"]["device"].value("id", "") == "gate-cam") {
            alert = j["alert"];
            return true;
          }
        }
        return false;
      },
      30s);
  INFO("anjud log:\n" << tail(gw.log(), 4000));
  REQUIRE(raised);
  CHECK(alert["rule"] == "device_offline");
  CHECK(alert["severity"] == 3);
  const auto st = gw.status();
  REQUIRE(st);
  REQUIRE((*st)["cameras"].size() == 1);
  const auto& cam = (*st)["cameras"][0];
  CHECK(cam["online"] == false);
  const std::string why = cam["last_error"];
  CHECK(why.find(bogus.string()) != std::string::npos);
  CHECK(gw.log().find("streams configured but not watched") != std::string::npos);
  // The password in the stream's URL is in no message and no log line.
  for (const auto& m : city_col.messages()) CHECK(m.payload.find("secret") == std::string::npos);
  CHECK(gw.log().find("secret") == std::string::npos);
  // The rest of the gateway works: a smoke alarm still raises its alert at the city.
  Publisher z2m(local.uri());
  z2m.publish("zigbee2mqtt/bridge/devices", demo_devices_json(), 1, true);
  REQUIRE(gw.wait_devices(5, 20s));
  z2m.publish("zigbee2mqtt/smoke_3_2_hall", R"({"smoke":true})", 1, false);
  CHECK(city_col.wait_for(
      [](const auto& ms) {
        for (const auto& m : ms) {
          auto j = json::parse(m.payload, nullptr, false);
          if (j.is_object() && j.value("change", "") == "raised" &&
              j["alert"].value("rule", "") == "smoke")
            return true;
        }
        return false;
      },
      30s));
  CHECK(gw.term() == 0);
}
