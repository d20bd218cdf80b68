// A camera configured in anju.yaml, inside the real anjud: Debian's vtest.avi (people on a
// walkway) is analysed on the gateway; the walkway zone raises an intrusion alert at the city
// with the camera's place, and the camera's online state reaches the city too. No video leaves.
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
  // Nothing the city got is an image: every message is a small JSON document.
  for (const auto& m : city_col.messages()) CHECK(m.payload.size() < 16 * 1024);
  CHECK(gw.term() == 0);
  anju::contract::check_city_contract(city_col.messages());
}
