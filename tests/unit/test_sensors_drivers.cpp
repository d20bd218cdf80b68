// Unit tests of the sensor drivers' logic without a broker: handle() called directly with a
// ManualClock (ChirpStack frame counters, joins, resets, stamping, error counting; generic MQTT
// filters and mapping checks). The MQTT and Modbus I/O is in tests/integration/test_sensors.cpp.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "anju/drivers/chirpstack_driver.hpp"
#include "anju/drivers/generic_mqtt_driver.hpp"
#include "anju/drivers/sensors_common.hpp"
#include "anju/edge/clock.hpp"

using anju::edge::Event;
using anju::edge::EventKind;
namespace drivers = anju::drivers;
namespace cs = anju::drivers::chirpstack;
namespace gm = anju::drivers::generic_mqtt;

namespace {

const std::string kTopic = "application/app-1/device/0101010101010101/event/";

std::string up(std::uint32_t fcnt, double temp) {
  return R"({"deviceInfo":{"devEui":"0101010101010101","deviceName":"n1",
    "deviceProfileName":"climate"},"fCnt":)" +
         std::to_string(fcnt) + R"(,"fPort":1,"object":{"t":)" + std::to_string(temp) + "}}";
}

struct Rig {
  anju::edge::ManualClock clock;
  std::vector<std::vector<Event>> batches;
  bool accept = true;
  std::unique_ptr<drivers::ChirpStackDriver> driver;
  Rig() {
    drivers::ChirpStackOptions o;
    o.site = "s1";
    o.grid_code = "g1";
    cs::ObjectField t{.path = "t", .kind = EventKind::temperature, .unit = "C"};
    o.mappings.by_profile["climate"].object_fields = {t};
    o.mappings.by_profile["climate"].device_kind = "climate_sensor";
    anju::drivers::sensors::DeviceSettings s;
    s.name = "Hall climate";
    s.location = {"3", "2", "hall"};
    s.grid_code = "g-dev";
    o.devices["0101010101010101"] = s;
    o.fcnt_window = 4;
    driver = std::make_unique<drivers::ChirpStackDriver>(o, clock, [this](std::vector<Event> es) {
      batches.push_back(std::move(es));
      return accept;
    });
  }
  std::size_t events() const {
    std::size_t n = 0;
    for (const auto& b : batches) n += b.size();
    return n;
  }
};

}  // namespace

TEST_CASE("sensors: ChirpStack driver stamps, drops repeats, accepts resets and joins",
          "[sensors]") {
  Rig rig;
  rig.driver->handle(kTopic + "up", up(10, 21.5), "7:0badcafe");
  REQUIRE(rig.batches.size() == 1);
  REQUIRE(rig.batches[0].size() == 1);
  const Event& e = rig.batches[0][0];
  CHECK(e.kind == EventKind::temperature);
  CHECK(e.device.id == "0101010101010101");
  CHECK(e.device.name == "Hall climate");
  CHECK(e.device.kind == "climate_sensor");
  CHECK(e.location == anju::edge::Location{"3", "2", "hall"});
  CHECK(e.site == "s1");
  CHECK(e.grid_code == "g-dev");
  CHECK(e.source_key == "7:0badcafe");
  CHECK(e.ts_ms == rig.clock.wall_ms());
  CHECK(e.mono_ns == rig.clock.mono_ns());
  CHECK(e.clock_synced);
  CHECK(e.id.size() == 36);

  rig.driver->handle(kTopic + "up", up(10, 21.5));  // repeat
  rig.driver->handle(kTopic + "up", up(8, 21.5));   // a late copy within the window
  CHECK(rig.batches.size() == 1);
  CHECK(rig.driver->stats().duplicates == 2);
  rig.driver->handle(kTopic + "up", up(11, 22));
  CHECK(rig.batches.size() == 2);
  rig.driver->handle(kTopic + "up", up(2, 22));  // far below: the device restarted
  REQUIRE(rig.batches.size() == 3);
  CHECK(rig.batches[2][0].attrs["fcnt_reset"] == true);
  CHECK(rig.driver->stats().fcnt_resets == 1);

  // A join: the next counter starts over, whatever it is.
  rig.driver->handle(kTopic + "join",
                     R"({"deviceInfo":{"devEui":"0101010101010101"},"devAddr":"00189440"})");
  REQUIRE(rig.batches.size() == 4);
  CHECK(rig.batches[3][0].kind == EventKind::device_online);
  rig.driver->handle(kTopic + "up", up(2, 23));
  CHECK(rig.batches.size() == 5);
  CHECK(rig.driver->stats().fcnt_resets == 2);

  const auto st = rig.driver->stats();
  CHECK(st.messages == 7);
  CHECK(st.events == 5);
  CHECK(st.parse_errors == 0);
}

TEST_CASE("sensors: ChirpStack driver counts bad input by reason and never throws", "[sensors]") {
  Rig rig;
  rig.driver->handle(kTopic + "up", "");
  rig.driver->handle(kTopic + "up", std::string(70'000, '{'));
  rig.driver->handle(kTopic + "up", R"({"deviceInfo":{"devEui":"0101010101010101"},"fCnt":-1})");
  rig.driver->handle(kTopic + "up", R"({"deviceInfo":{"devEui":"0101010101010101"},"fCnt":3,
    "deviceInfo":{"devEui":"0101010101010101","deviceProfileName":"climate"},"object":{"t":"x"}})");
  rig.driver->handle("application/a/device/nothex/event/up", "{}");
  rig.driver->handle(std::string("application/a/device/\xff\xfe/event/up"), "{}");
  rig.driver->handle(kTopic + "txack", "{}");
  rig.driver->handle(kTopic + "log", "not even json");
  const auto st = rig.driver->stats();
  CHECK(st.messages == 8);
  CHECK(st.parse_errors == 6);
  CHECK(st.errors_by_reason.at("invalid_json") == 1);
  CHECK(st.errors_by_reason.at("too_large") == 1);
  CHECK(st.errors_by_reason.at("bad_field") == 1);
  CHECK(st.errors_by_reason.at("bad_value") == 1);
  CHECK(st.errors_by_reason.at("bad_topic") == 2);
  CHECK(st.ignored == 2);
  CHECK(rig.events() == 0);

  // The sink refusing (pipeline stopping) is counted, not fatal.
  rig.accept = false;
  rig.driver->handle(kTopic + "up", up(50, 20));
  CHECK(rig.driver->stats().sink_refused == 1);
}

TEST_CASE("sensors: error reasons and the rate-limited log", "[sensors]") {
  using anju::drivers::sensors::error_reason;
  CHECK(error_reason("payload too large: 70000 bytes (max 65536)") == "too_large");
  CHECK(error_reason("not valid JSON") == "invalid_json");
  CHECK(error_reason("up payload must be a JSON object") == "invalid_json");
  CHECK(error_reason("field 'fCnt' must be an unsigned 32-bit integer, got '-1'") == "bad_field");
  CHECK(error_reason("DevEUI 'x' in the topic is not 16 hex digits") == "bad_topic");
  CHECK(error_reason("object.t: must be a number, got '\"x\"'") == "bad_value");
  CHECK(error_reason("pointer '/a': must be a number, got 'null'") == "bad_value");
  CHECK(error_reason("device_pointer '/id': not found") == "bad_field");

  anju::drivers::sensors::ErrorLog log("test", 60'000);
  CHECK(log.warn(0, "dev", "first"));
  CHECK_FALSE(log.warn(59'999, "dev", "again"));
  CHECK(log.warn(1, "other", "another device"));
  CHECK(log.warn(60'000, "dev", "a minute later"));
  CHECK(log.suppressed() == 1);
}

TEST_CASE("sensors: generic MQTT patterns become MQTT filters without overlaps", "[sensors]") {
  CHECK(drivers::mqtt_filter("site/{building}/+device/state") == "site/+/+/state");
  CHECK(drivers::mqtt_filter("a/+/#") == "a/+/#");
  CHECK(drivers::mqtt_filter("plain") == "plain");
  CHECK(drivers::mqtt_filter("a//b") == "a//b");

  CHECK(drivers::filter_covers("a/#", "a/b/c"));
  CHECK(drivers::filter_covers("a/#", "a"));
  CHECK(drivers::filter_covers("a/+/c", "a/b/c"));
  CHECK(drivers::filter_covers("a/+/c", "a/+/c"));
  CHECK_FALSE(drivers::filter_covers("a/+/c", "a/#"));
  CHECK_FALSE(drivers::filter_covers("a/b/c", "a/+/c"));
  CHECK_FALSE(drivers::filter_covers("a/+", "a/b/c"));
  CHECK_FALSE(drivers::filter_covers("#", "$SYS/x"));
  CHECK_FALSE(drivers::filter_covers("+/x", "$SYS/x"));

  anju::edge::ManualClock clock;
  drivers::GenericMqttOptions o;
  auto mapping = [](std::string name, std::string topic) {
    gm::Mapping m;
    m.name = std::move(name);
    m.topic = std::move(topic);
    m.fields = {gm::FieldMap{.pointer = "/v"}};
    return m;
  };
  o.mappings = {mapping("a", "v/+device/state"), mapping("b", "v/#"), mapping("c", "w/{device}/x"),
                mapping("d", "w/+/x")};
  std::vector<Event> got;
  drivers::GenericMqttDriver d(o, clock, [&](std::vector<Event> es) {
    for (auto& e : es) got.push_back(std::move(e));
    return true;
  });
  CHECK(d.subscriptions() == std::vector<std::string>{"v/#", "w/+/x"});

  // A message matched by two mappings is parsed by both.
  d.handle("v/dev1/state", R"({"v": 5})");
  REQUIRE(got.size() == 2);
  CHECK(got[0].device.id == "dev1");
  CHECK(got[1].device.id == "v/dev1/state");  // no device capture: the topic
  CHECK(d.stats().messages_by_mapping.at("a") == 1);
  CHECK(d.stats().messages_by_mapping.at("b") == 1);
  d.handle("elsewhere", "{}");
  CHECK(d.stats().unmatched == 1);
  d.handle(std::string("v/\xc3\x28"), "{}");
  CHECK(d.stats().errors_by_reason.at("bad_topic") == 1);

  // An invalid mapping is refused at construction, naming it.
  o.mappings = {mapping("broken", "v/#/x")};
  CHECK_THROWS_WITH(drivers::GenericMqttDriver(o, clock, [](std::vector<Event>) { return true; }),
                    Catch::Contains("'broken'") && Catch::Contains("topic:"));
}
