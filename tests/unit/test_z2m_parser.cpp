// Unit tests of the pure zigbee2mqtt parsers (drivers/zigbee2mqtt/src/z2m_parser.cpp).
#include <catch2/catch.hpp>

#include <string>

#include "anju/drivers/z2m_parser.hpp"

using namespace anju::drivers::z2m;
using anju::edge::Event;
using anju::edge::EventKind;

namespace {

// A realistic retained zigbee2mqtt/bridge/devices payload (trimmed: endpoints, options and most
// descriptions removed). Entries: 0 Coordinator, 1 Aqara smoke detector, 2 contact sensor,
// 3 climate sensor with a composite expose, 4 router light, 5 entry without ieee_address,
// 6 not an object.
constexpr const char* kDevices = R"json([
  {"ieee_address":"0x00124b0024c2a1b2","type":"Coordinator","network_address":0,
   "supported":false,"disabled":false,"friendly_name":"Coordinator","definition":null,
   "power_source":null,"interview_completed":true,"interviewing":false},
  {"ieee_address":"0x00158d0001a2b3c4","type":"EndDevice","network_address":28465,
   "supported":true,"friendly_name":"kitchen_smoke","model_id":"lumi.sensor_smoke",
   "manufacturer":"LUMI","power_source":"Battery","interview_completed":true,
   "definition":{"model":"JTYJ-GD-01LM/BW","vendor":"Xiaomi",
     "description":"Mijia Honeywell smoke detector","supports_ota":false,
     "exposes":[
       {"type":"binary","name":"smoke","property":"smoke","access":1,"value_on":true,
        "value_off":false,"description":"Indicates whether the device detected smoke"},
       {"type":"numeric","name":"smoke_density","property":"smoke_density","access":1},
       {"type":"enum","name":"sensitivity","property":"sensitivity","access":2,
        "values":["low","medium","high"]},
       {"type":"binary","name":"battery_low","property":"battery_low","access":1,
        "value_on":true,"value_off":false},
       {"type":"binary","name":"tamper","property":"tamper","access":1,"value_on":true,
        "value_off":false},
       {"type":"numeric","name":"battery","property":"battery","access":1,"unit":"%",
        "value_min":0,"value_max":100},
       {"type":"numeric","name":"linkquality","property":"linkquality","access":1,
        "unit":"lqi","value_min":0,"value_max":255}]}},
  {"ieee_address":"0x00158d0002c4d5e6","type":"EndDevice","network_address":4412,
   "supported":true,"friendly_name":"front_door","power_source":"Battery",
   "definition":{"model":"MCCGQ11LM","vendor":"Xiaomi",
     "description":"Aqara door & window contact sensor",
     "exposes":[
       {"type":"numeric","name":"battery","property":"battery","access":1,"unit":"%"},
       {"type":"binary","name":"contact","property":"contact","access":1,"value_on":false,
        "value_off":true},
       {"type":"numeric","name":"device_temperature","property":"device_temperature",
        "access":1,"unit":"\u00b0C"},
       {"type":"numeric","name":"voltage","property":"voltage","access":1,"unit":"mV"},
       {"type":"numeric","name":"linkquality","property":"linkquality","access":1}]}},
  {"ieee_address":"0xa4c1383f2e1d0c0b","type":"EndDevice","network_address":991,
   "supported":true,"friendly_name":"server_room","power_source":"Battery",
   "definition":{"model":"TS0201","vendor":"TuYa",
     "description":"Temperature & humidity sensor with display",
     "exposes":[
       {"type":"numeric","name":"battery","property":"battery","access":1,"unit":"%"},
       {"type":"climate","features":[
         {"type":"numeric","name":"temperature","property":"temperature","access":1,
          "unit":"\u00b0C"},
         {"type":"numeric","name":"humidity","property":"humidity","access":1,"unit":"%"}]},
       {"type":"numeric","name":"linkquality","property":"linkquality","access":1}]}},
  {"ieee_address":"0x000d6ffffe8a9b0c","type":"Router","network_address":5005,
   "supported":true,"friendly_name":"hall_light","power_source":"Mains (single phase)",
   "definition":{"model":"LED1545G12","vendor":"IKEA",
     "description":"TRADFRI bulb E26/E27, white spectrum, globe, opal, 980 lm",
     "exposes":[
       {"type":"light","features":[
         {"type":"binary","name":"state","property":"state","access":7,"value_on":"ON",
          "value_off":"OFF"},
         {"type":"numeric","name":"brightness","property":"brightness","access":7}]},
       {"type":"numeric","name":"linkquality","property":"linkquality","access":1}]}},
  {"type":"EndDevice","friendly_name":"ghost","definition":{"model":"X","vendor":"Y",
   "exposes":[{"type":"binary","property":"smoke"}]}},
  42
])json";

DeviceInfo smoke_device() {
  DeviceInfo d;
  d.ieee = "0x00158d0001a2b3c4";
  d.friendly_name = "kitchen_smoke";
  d.model = "JTYJ-GD-01LM/BW";
  d.vendor = "Xiaomi";
  d.kind = "smoke_detector";
  d.caps = {Capability::smoke, Capability::battery, Capability::battery_low, Capability::tamper};
  return d;
}

DeviceInfo climate_device() {
  DeviceInfo d;
  d.ieee = "0xa4c1383f2e1d0c0b";
  d.friendly_name = "server_room";
  d.kind = "climate_sensor";
  d.caps = {Capability::temperature, Capability::humidity, Capability::battery};
  return d;
}

DeviceInfo contact_device() {
  DeviceInfo d;
  d.ieee = "0x00158d0002c4d5e6";
  d.friendly_name = "front_door";
  d.kind = "contact_sensor";
  d.caps = {Capability::contact, Capability::battery};
  return d;
}

bool has_error(const StateResult& r, const std::string& text) {
  for (const auto& e : r.errors)
    if (e == text) return true;
  return false;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// classify_topic

TEST_CASE("z2m classify_topic recognises bridge/devices", "[z2m]") {
  auto t = classify_topic("zigbee2mqtt", "zigbee2mqtt/bridge/devices");
  CHECK(t.type == TopicType::bridge_devices);
  CHECK(t.friendly_name.empty());
}

TEST_CASE("z2m classify_topic ignores other bridge topics", "[z2m]") {
  CHECK(classify_topic("zigbee2mqtt", "zigbee2mqtt/bridge/state").type == TopicType::ignored);
  CHECK(classify_topic("zigbee2mqtt", "zigbee2mqtt/bridge/info").type == TopicType::ignored);
  CHECK(classify_topic("zigbee2mqtt", "zigbee2mqtt/bridge/logging").type == TopicType::ignored);
  CHECK(classify_topic("zigbee2mqtt", "zigbee2mqtt/bridge/devices/extra").type ==
        TopicType::ignored);
  CHECK(classify_topic("zigbee2mqtt", "zigbee2mqtt/bridge").type == TopicType::ignored);
}

TEST_CASE("z2m classify_topic recognises state and availability", "[z2m]") {
  auto s = classify_topic("zigbee2mqtt", "zigbee2mqtt/kitchen_smoke");
  CHECK(s.type == TopicType::state);
  CHECK(s.friendly_name == "kitchen_smoke");

  auto a = classify_topic("zigbee2mqtt", "zigbee2mqtt/kitchen_smoke/availability");
  CHECK(a.type == TopicType::availability);
  CHECK(a.friendly_name == "kitchen_smoke");

  auto other_base = classify_topic("site7/z2m", "site7/z2m/front_door");
  CHECK(other_base.type == TopicType::state);
  CHECK(other_base.friendly_name == "front_door");

  auto trailing = classify_topic("zigbee2mqtt/", "zigbee2mqtt/front_door");
  CHECK(trailing.type == TopicType::state);
  CHECK(trailing.friendly_name == "front_door");
}

TEST_CASE("z2m classify_topic ignores commands, foreign and malformed topics", "[z2m]") {
  const char* ignored[] = {
      "zigbee2mqtt/kitchen_smoke/set",
      "zigbee2mqtt/kitchen_smoke/get",
      "zigbee2mqtt/kitchen_smoke/set/state",
      "zigbee2mqtt/floor1/kitchen_smoke",  // '/' in friendly names is not supported
      "zigbee2mqtt/floor1/kitchen_smoke/availability",
      "zigbee2mqtt/",
      "zigbee2mqtt//availability",
      "zigbee2mqtt",
      "zigbee2mqttx/kitchen_smoke",
      "other/kitchen_smoke",
      "",
  };
  for (const char* topic : ignored) {
    INFO(topic);
    auto t = classify_topic("zigbee2mqtt", topic);
    CHECK(t.type == TopicType::ignored);
    CHECK(t.friendly_name.empty());
  }
}

// ---------------------------------------------------------------------------------------------
// parse_bridge_devices

TEST_CASE("z2m bridge/devices: realistic payload", "[z2m]") {
  auto r = parse_bridge_devices(kDevices);
  REQUIRE(r.error.empty());
  REQUIRE(r.devices.size() == 3);

  const auto& smoke = r.devices[0];
  CHECK(smoke.ieee == "0x00158d0001a2b3c4");
  CHECK(smoke.friendly_name == "kitchen_smoke");
  CHECK(smoke.model == "JTYJ-GD-01LM/BW");
  CHECK(smoke.vendor == "Xiaomi");
  CHECK(smoke.kind == "smoke_detector");
  CHECK(smoke.caps == std::vector<Capability>{Capability::smoke, Capability::battery,
                                              Capability::battery_low, Capability::tamper});
  CHECK(smoke.has(Capability::tamper));
  CHECK_FALSE(smoke.has(Capability::contact));

  const auto& door = r.devices[1];
  CHECK(door.ieee == "0x00158d0002c4d5e6");
  CHECK(door.friendly_name == "front_door");
  CHECK(door.kind == "contact_sensor");
  // device_temperature is not temperature
  CHECK(door.caps == std::vector<Capability>{Capability::contact, Capability::battery});

  const auto& climate = r.devices[2];
  CHECK(climate.friendly_name == "server_room");
  CHECK(climate.model == "TS0201");
  CHECK(climate.vendor == "TuYa");
  CHECK(climate.kind == "climate_sensor");
  CHECK(climate.caps == std::vector<Capability>{Capability::temperature, Capability::humidity,
                                                Capability::battery});

  // Coordinator and the light are skipped silently; the two malformed entries have a reason.
  REQUIRE(r.skipped.size() == 2);
  CHECK(r.skipped[0] == "entry 5: no ieee_address");
  CHECK(r.skipped[1] == "entry 6: not an object");
}

TEST_CASE("z2m bridge/devices: kind classification order", "[z2m]") {
  auto kind_of = [](const std::string& exposes) {
    auto r = parse_bridge_devices(
        R"([{"ieee_address":"0x1","type":"EndDevice","friendly_name":"d","definition":)"
        R"({"model":"m","vendor":"v","exposes":)" +
        exposes + "}}]");
    REQUIRE(r.error.empty());
    REQUIRE(r.devices.size() == 1);
    return r.devices[0].kind;
  };
  CHECK(kind_of(R"([{"type":"binary","property":"gas"},{"type":"binary","property":"smoke"}])") ==
        "smoke_detector");
  CHECK(kind_of(R"([{"type":"binary","property":"gas"}])") == "gas_detector");
  CHECK(kind_of(R"([{"property":"contact"},{"property":"water_leak"}])") == "water_leak_sensor");
  CHECK(kind_of(R"([{"property":"temperature"},{"property":"contact"}])") == "contact_sensor");
  CHECK(kind_of(R"([{"property":"temperature"},{"property":"occupancy"}])") == "motion_sensor");
  CHECK(kind_of(R"([{"property":"vibration"},{"property":"humidity"}])") == "vibration_sensor");
  CHECK(kind_of(R"([{"property":"humidity"},{"property":"battery"}])") == "climate_sensor");
  CHECK(kind_of(R"([{"property":"battery"},{"property":"tamper"}])") == "sensor");
  // "name" is used when there is no "property"; nested features of any depth count.
  CHECK(kind_of(R"([{"type":"binary","name":"water_leak"}])") == "water_leak_sensor");
  CHECK(kind_of(R"([{"type":"composite","property":"x","features":[{"type":"composite",)"
                R"("features":[{"property":"occupancy"}]}]}])") == "motion_sensor");
}

TEST_CASE("z2m bridge/devices: capabilities are deduplicated", "[z2m]") {
  auto r = parse_bridge_devices(
      R"([{"ieee_address":"0x1","type":"Router","friendly_name":"d","definition":{"exposes":[)"
      R"({"property":"battery"},{"property":"temperature"},{"property":"battery"}]}}])");
  REQUIRE(r.devices.size() == 1);
  CHECK(r.devices[0].caps == std::vector<Capability>{Capability::temperature, Capability::battery});
  CHECK(r.devices[0].model.empty());
}

TEST_CASE("z2m bridge/devices: malformed entries get a reason", "[z2m]") {
  auto r = parse_bridge_devices(R"([
    {"ieee_address":17,"friendly_name":"a","definition":{"exposes":[{"property":"smoke"}]}},
    {"ieee_address":"0x2","definition":{"exposes":[{"property":"smoke"}]}},
    {"ieee_address":"0x3","friendly_name":[],"definition":{"exposes":[{"property":"smoke"}]}},
    {"ieee_address":"0x4","friendly_name":"d","definition":"smoke"},
    {"ieee_address":"0x5","friendly_name":"e","type":5},
    {"ieee_address":"0x6","friendly_name":"f","definition":{"exposes":[{"property":"gas"}]}},
    {"ieee_address":"0x6","friendly_name":"g","definition":{"exposes":[{"property":"gas"}]}},
    {"ieee_address":"0x7","friendly_name":"h","definition":null},
    {"ieee_address":"0x8","friendly_name":"i","definition":{"exposes":"smoke"}},
    null
  ])");
  REQUIRE(r.error.empty());
  REQUIRE(r.devices.size() == 1);
  CHECK(r.devices[0].friendly_name == "f");
  CHECK(r.devices[0].kind == "gas_detector");
  CHECK(r.skipped == std::vector<std::string>{
                         "entry 0: ieee_address must be a non-empty string",
                         "entry 1: no friendly_name",
                         "entry 2: friendly_name must be a non-empty string",
                         "entry 3: definition must be an object or null",
                         "entry 4: type must be a string",
                         "entry 6: duplicate ieee_address",
                         "entry 9: not an object",
                     });
}

TEST_CASE("z2m bridge/devices: whole payload rejected", "[z2m]") {
  CHECK(parse_bridge_devices("not json").error == "not valid JSON");
  CHECK(parse_bridge_devices("").error == "not valid JSON");
  CHECK(parse_bridge_devices(R"([{"ieee_address":"0x1")").error == "not valid JSON");
  CHECK(parse_bridge_devices(R"({"devices":[]})").error ==
        "bridge/devices payload must be a JSON array");
  CHECK(parse_bridge_devices(R"("x")").error == "bridge/devices payload must be a JSON array");

  auto empty = parse_bridge_devices("[]");
  CHECK(empty.error.empty());
  CHECK(empty.devices.empty());
  CHECK(empty.skipped.empty());

  std::string huge = "[" + std::string(kMaxPayloadBytes, ' ') + "]";
  auto r = parse_bridge_devices(huge);
  CHECK(r.error == "payload too large: 65538 bytes (max 65536)");
  CHECK(r.devices.empty());

  // Exactly at the limit is still parsed.
  std::string at_limit = "[" + std::string(kMaxPayloadBytes - 2, ' ') + "]";
  CHECK(parse_bridge_devices(at_limit).error.empty());
}

// ---------------------------------------------------------------------------------------------
// parse_state

TEST_CASE("z2m state: smoke alarm, repeat and clear", "[z2m]") {
  const DeviceInfo dev = smoke_device();
  DeviceState st;

  auto first = parse_state(R"({"smoke":true,"linkquality":87,"voltage":3005})", dev, st);
  CHECK(first.errors.empty());
  REQUIRE(first.events.size() == 1);
  const Event& e = first.events[0];
  CHECK(e.kind == EventKind::smoke);
  CHECK(e.active == std::optional<bool>(true));
  CHECK(e.severity == 1);
  CHECK(e.device.id == "0x00158d0001a2b3c4");
  CHECK(e.device.kind == "smoke_detector");
  CHECK(e.device.name == "kitchen_smoke");
  CHECK(e.source == "zigbee2mqtt");
  CHECK(e.values.empty());
  CHECK(e.attrs == nlohmann::json{{"linkquality", 87}, {"voltage", 3005}});
  CHECK(e.id.empty());  // stamped by the caller
  CHECK(e.ts_ms == 0);
  CHECK(st.last.at("smoke") == 1.0);

  // Repeated alarm: another event.
  auto again = parse_state(R"({"smoke":true,"linkquality":80})", dev, st);
  REQUIRE(again.events.size() == 1);
  CHECK(again.events[0].kind == EventKind::smoke);
  CHECK(again.events[0].active == std::optional<bool>(true));
  CHECK(again.events[0].severity == 1);
  CHECK(again.events[0].attrs == nlohmann::json{{"linkquality", 80}});

  // Cleared.
  auto clear = parse_state(R"({"smoke":false})", dev, st);
  REQUIRE(clear.events.size() == 1);
  CHECK(clear.events[0].kind == EventKind::smoke);
  CHECK(clear.events[0].active == std::optional<bool>(false));
  CHECK(clear.events[0].severity == 4);
  CHECK(clear.events[0].attrs == nlohmann::json::object());
  CHECK(st.last.at("smoke") == 0.0);

  // Still clear: nothing.
  auto still = parse_state(R"({"smoke":false})", dev, st);
  CHECK(still.events.empty());
  CHECK(still.errors.empty());
}

TEST_CASE("z2m state: gas and water_leak repeat while true", "[z2m]") {
  DeviceInfo dev;
  dev.ieee = "0x1";
  dev.friendly_name = "basement";
  dev.kind = "water_leak_sensor";
  DeviceState st;
  auto a = parse_state(R"({"water_leak":true,"gas":true})", dev, st);
  REQUIRE(a.events.size() == 2);
  CHECK(a.events[0].kind == EventKind::gas);  // fixed order, not JSON order
  CHECK(a.events[0].severity == 1);
  CHECK(a.events[1].kind == EventKind::water_leak);
  CHECK(a.events[1].severity == 3);
  auto b = parse_state(R"({"water_leak":true,"gas":true})", dev, st);
  CHECK(b.events.size() == 2);
}

TEST_CASE("z2m state: other binaries only on change", "[z2m]") {
  const DeviceInfo dev = smoke_device();
  DeviceState st;
  auto a = parse_state(R"({"tamper":true,"battery_low":true})", dev, st);
  REQUIRE(a.events.size() == 2);
  CHECK(a.events[0].kind == EventKind::battery_low);
  CHECK(a.events[0].active == std::optional<bool>(true));
  CHECK(a.events[0].severity == 3);
  CHECK(a.events[1].kind == EventKind::tamper);
  CHECK(a.events[1].active == std::optional<bool>(true));
  CHECK(a.events[1].severity == 3);

  auto b = parse_state(R"({"tamper":true,"battery_low":true})", dev, st);
  CHECK(b.events.empty());

  auto c = parse_state(R"({"tamper":false,"battery_low":true})", dev, st);
  REQUIRE(c.events.size() == 1);
  CHECK(c.events[0].kind == EventKind::tamper);
  CHECK(c.events[0].active == std::optional<bool>(false));
  CHECK(c.events[0].severity == 4);

  // report_unchanged applies to numeric readings only.
  auto d = parse_state(R"({"tamper":false})", dev, st, StateOptions{.report_unchanged = true});
  CHECK(d.events.empty());
}

TEST_CASE("z2m state: occupancy and vibration are informational", "[z2m]") {
  DeviceInfo dev;
  dev.ieee = "0x2";
  dev.kind = "motion_sensor";
  DeviceState st;
  auto r = parse_state(R"({"vibration":true,"occupancy":true})", dev, st);
  REQUIRE(r.events.size() == 2);
  CHECK(r.events[0].kind == EventKind::occupancy);
  CHECK(r.events[0].severity == 4);
  CHECK(r.events[0].active == std::optional<bool>(true));
  CHECK(r.events[1].kind == EventKind::vibration);
  CHECK(r.events[1].severity == 4);
  CHECK(parse_state(R"({"vibration":true,"occupancy":true})", dev, st).events.empty());
}

TEST_CASE("z2m state: contact true (closed) gives active false", "[z2m]") {
  const DeviceInfo dev = contact_device();
  DeviceState st;
  auto closed = parse_state(R"({"contact":true,"battery":100,"voltage":3045})", dev, st);
  CHECK(closed.errors.empty());
  REQUIRE(closed.events.size() == 2);
  CHECK(closed.events[0].kind == EventKind::contact);
  CHECK(closed.events[0].active == std::optional<bool>(false));
  CHECK(closed.events[0].severity == 4);
  CHECK(closed.events[0].device.kind == "contact_sensor");
  CHECK(closed.events[1].kind == EventKind::battery);
  CHECK(st.last.at("contact") == 1.0);  // stored as zigbee2mqtt sends it

  auto open = parse_state(R"({"contact":false,"battery":100})", dev, st);
  REQUIRE(open.events.size() == 1);
  CHECK(open.events[0].kind == EventKind::contact);
  CHECK(open.events[0].active == std::optional<bool>(true));

  CHECK(parse_state(R"({"contact":false})", dev, st).events.empty());
}

TEST_CASE("z2m state: numeric readings on change", "[z2m]") {
  const DeviceInfo dev = climate_device();
  DeviceState st;

  auto first = parse_state(R"({"humidity":45.5,"temperature":21.5,"linkquality":120})", dev, st);
  CHECK(first.errors.empty());
  REQUIRE(first.events.size() == 2);
  CHECK(first.events[0].kind == EventKind::temperature);
  CHECK_FALSE(first.events[0].active.has_value());
  CHECK(first.events[0].severity == 4);
  REQUIRE(first.events[0].values.size() == 1);
  CHECK(first.events[0].values[0] == anju::edge::Measurement{"temperature", 21.5, "C"});
  CHECK(first.events[0].attrs == nlohmann::json{{"linkquality", 120}});
  CHECK(first.events[1].kind == EventKind::humidity);
  REQUIRE(first.events[1].value("humidity") != nullptr);
  CHECK(first.events[1].value("humidity")->value == 45.5);
  CHECK(first.events[1].value("humidity")->unit == "%");

  // Unchanged: nothing.
  auto same = parse_state(R"({"temperature":21.5,"humidity":45.5})", dev, st);
  CHECK(same.events.empty());
  CHECK(same.errors.empty());

  // One changed: one event.
  auto changed = parse_state(R"({"temperature":22,"humidity":45.5})", dev, st);
  REQUIRE(changed.events.size() == 1);
  CHECK(changed.events[0].kind == EventKind::temperature);
  CHECK(changed.events[0].values[0].value == 22.0);
  CHECK(st.last.at("temperature") == 22.0);

  // report_unchanged: unchanged reading still reported.
  auto forced =
      parse_state(R"({"temperature":22})", dev, st, StateOptions{.report_unchanged = true});
  REQUIRE(forced.events.size() == 1);
  CHECK(forced.events[0].kind == EventKind::temperature);
  CHECK(forced.events[0].values[0].value == 22.0);
}

TEST_CASE("z2m state: battery reading", "[z2m]") {
  const DeviceInfo dev = smoke_device();
  DeviceState st;
  auto r = parse_state(R"({"battery":97})", dev, st);
  REQUIRE(r.events.size() == 1);
  CHECK(r.events[0].kind == EventKind::battery);
  CHECK_FALSE(r.events[0].active.has_value());
  CHECK(r.events[0].values == std::vector<anju::edge::Measurement>{{"battery", 97, "%"}});
  CHECK(r.events[0].severity == 4);
}

TEST_CASE("z2m state: wrong types are per-field errors", "[z2m]") {
  const DeviceInfo dev = smoke_device();
  DeviceState st;
  auto r =
      parse_state(R"({"smoke":"true","tamper":1,"battery":"97","temperature":21,"humidity":140,)"
                  R"("battery_low":false,"contact":true,"linkquality":"high"})",
                  dev, st);
  CHECK(r.errors == std::vector<std::string>{
                        "field 'smoke' must be a boolean", "field 'humidity' out of range: 140",
                        "field 'battery' must be a number", "field 'tamper' must be a boolean"});
  CHECK(has_error(r, "field 'humidity' out of range: 140"));
  REQUIRE(r.events.size() == 3);
  CHECK(r.events[0].kind == EventKind::contact);
  CHECK(r.events[1].kind == EventKind::temperature);
  CHECK(r.events[2].kind == EventKind::battery_low);
  CHECK(r.events[2].active == std::optional<bool>(false));
  CHECK(r.events[0].attrs == nlohmann::json::object());  // non-numeric linkquality not copied

  // Only accepted fields are remembered.
  CHECK(st.last.count("smoke") == 0);
  CHECK(st.last.count("humidity") == 0);
  CHECK(st.last.count("battery") == 0);
  CHECK(st.last.count("tamper") == 0);
  CHECK(st.last.at("temperature") == 21.0);
  CHECK(st.last.size() == 3);
}

TEST_CASE("z2m state: range limits", "[z2m]") {
  const DeviceInfo dev = climate_device();
  DeviceState st;
  auto ok = parse_state(R"({"temperature":-60,"humidity":100,"battery":0})", dev, st);
  CHECK(ok.errors.empty());
  CHECK(ok.events.size() == 3);
  auto bad = parse_state(R"({"temperature":150.5,"humidity":-0.5,"battery":101})", dev, st);
  CHECK(bad.events.empty());
  CHECK(bad.errors == std::vector<std::string>{"field 'temperature' out of range: 150.5",
                                               "field 'humidity' out of range: -0.5",
                                               "field 'battery' out of range: 101"});
  // nlohmann::json refuses numbers that overflow a double: the whole payload is rejected.
  auto inf = parse_state(R"({"temperature":1e999})", dev, st);
  CHECK(inf.events.empty());
  CHECK(inf.errors == std::vector<std::string>{"not valid JSON"});
  CHECK(st.last.at("temperature") == -60.0);
}

TEST_CASE("z2m state: null and unknown fields are ignored", "[z2m]") {
  const DeviceInfo dev = smoke_device();
  DeviceState st;
  auto r = parse_state(
      R"({"smoke_density":0,"sensitivity":"medium","selftest":"","update":{"state":"idle"},)"
      R"("battery":null,"device_temperature":28,"power_outage_count":3})",
      dev, st);
  CHECK(r.errors.empty());
  CHECK(r.events.empty());
  CHECK(st.last.empty());
}

TEST_CASE("z2m state: whole payload rejected", "[z2m]") {
  const DeviceInfo dev = smoke_device();
  DeviceState st;
  auto check_rejected = [&](std::string_view payload, const std::string& error) {
    auto r = parse_state(payload, dev, st);
    CHECK(r.events.empty());
    CHECK(r.errors == std::vector<std::string>{error});
  };
  check_rejected("smoke=true", "not valid JSON");
  check_rejected(R"({"smoke":true)", "not valid JSON");
  check_rejected(R"([{"smoke":true}])", "state payload must be a JSON object");
  check_rejected(R"("smoke")", "state payload must be a JSON object");
  check_rejected("true", "state payload must be a JSON object");
  check_rejected("", "empty payload");
  std::string huge = R"({"smoke":true,"pad":")" + std::string(kMaxPayloadBytes, 'x') + "\"}";
  check_rejected(huge, "payload too large: " + std::to_string(huge.size()) + " bytes (max 65536)");
  CHECK(st.last.empty());
}

// ---------------------------------------------------------------------------------------------
// parse_availability

TEST_CASE("z2m availability: JSON form", "[z2m]") {
  auto on = parse_availability(R"({"state":"online"})");
  CHECK(on.error.empty());
  CHECK(on.online == std::optional<bool>(true));
  auto off = parse_availability(R"({"state":"offline"})");
  CHECK(off.error.empty());
  CHECK(off.online == std::optional<bool>(false));
}

TEST_CASE("z2m availability: legacy plain strings", "[z2m]") {
  CHECK(parse_availability("online").online == std::optional<bool>(true));
  CHECK(parse_availability("offline").online == std::optional<bool>(false));
  CHECK(parse_availability("\"online\"").online == std::optional<bool>(true));
  CHECK(parse_availability("\"offline\"").online == std::optional<bool>(false));
  CHECK(parse_availability("offline\n").online == std::optional<bool>(false));
  CHECK(parse_availability("online").error.empty());
}

TEST_CASE("z2m availability: garbage", "[z2m]") {
  auto a = parse_availability("maybe");
  CHECK_FALSE(a.online.has_value());
  CHECK(a.error == "unexpected availability payload 'maybe'");

  auto b = parse_availability(R"({"state":"sleeping"})");
  CHECK_FALSE(b.online.has_value());
  CHECK(b.error == "unexpected availability state 'sleeping'");

  auto c = parse_availability(R"({"state":true})");
  CHECK_FALSE(c.online.has_value());
  CHECK(c.error == R"(unexpected availability payload '{"state":true}')");

  auto d = parse_availability("ONLINE");
  CHECK_FALSE(d.online.has_value());
  CHECK_FALSE(d.error.empty());

  auto e = parse_availability("");
  CHECK_FALSE(e.online.has_value());
  CHECK(e.error == "unexpected availability payload ''");

  // Long input and control bytes are not repeated: only their size.
  auto f = parse_availability(std::string(100, 'z'));
  CHECK(f.error == "unexpected availability payload <100 bytes>");
  auto g = parse_availability(std::string("on\nline\x01", 8));
  CHECK(g.error == "unexpected availability payload <8 bytes>");

  std::string huge(kMaxPayloadBytes + 1, ' ');
  auto h = parse_availability(huge);
  CHECK_FALSE(h.online.has_value());
  CHECK(h.error == "payload too large: 65537 bytes (max 65536)");
}

TEST_CASE("z2m capability names", "[z2m]") {
  CHECK(to_string(Capability::smoke) == "smoke");
  CHECK(to_string(Capability::water_leak) == "water_leak");
  CHECK(to_string(Capability::battery_low) == "battery_low");
  CHECK(to_string(Capability::vibration) == "vibration");
}

TEST_CASE("z2m state: a device that checks in unchanged is refreshed for supervision", "[z2m]") {
  const DeviceInfo dev = smoke_device();
  DeviceState st;
  StateOptions o;
  o.refresh_ms = 600'000;
  o.now_ms = 1'000'000;
  auto first = parse_state(R"({"smoke":false,"battery":97})", dev, st, o);
  CHECK(first.events.size() == 2);
  CHECK(st.last_event_ms == 1'000'000);
  // The same check-in 5 minutes later: nothing new, nothing sent.
  o.now_ms += 300'000;
  CHECK(parse_state(R"({"smoke":false,"battery":97})", dev, st, o).events.empty());
  // 10 minutes after the last events: the unchanged readings go out again, binary ones too.
  o.now_ms += 300'000;
  auto refreshed = parse_state(R"({"smoke":false,"battery":97})", dev, st, o);
  REQUIRE(refreshed.events.size() == 2);
  CHECK(refreshed.events[0].kind == EventKind::smoke);
  CHECK(refreshed.events[0].active == false);
  CHECK(refreshed.events[1].value("battery")->value == 97.0);
  CHECK(st.last_event_ms == 1'600'000);
  // A change resets the clock: the next unchanged message is quiet again.
  o.now_ms += 60'000;
  CHECK(parse_state(R"({"smoke":false,"battery":96})", dev, st, o).events.size() == 1);
  o.now_ms += 599'000;
  CHECK(parse_state(R"({"smoke":false,"battery":96})", dev, st, o).events.empty());
  // Off (0): never.
  StateOptions off;
  off.now_ms = 1'000'000'000;
  CHECK(parse_state(R"({"smoke":false,"battery":96})", dev, st, off).events.empty());
}

// Errors are logged: a personal identifier a device put where a reading or a state was expected
// is never repeated in them (docs/DATA.md, "Logs"; tests/integration/test_privacy.cpp).
TEST_CASE("z2m errors do not repeat identifiers found in a payload", "[z2m][privacy]") {
  const DeviceInfo climate = climate_device();
  DeviceState state;
  auto r = parse_state(R"({"temperature":13912345678,"humidity":140})", climate, state);
  CHECK(r.errors ==
        std::vector<std::string>{"field 'temperature' out of range: <number of 11 digits>",
                                 "field 'humidity' out of range: 140"});
  for (const char* payload :
       {"13912345678", "\"11010519491231002X\"", R"({"state":"RID-7304-5521"})",
        "{\"state\":\"\xE4\xBA\xAC"
        "A12345\"}"}) {
    const auto a = parse_availability(payload);
    INFO(a.error);
    CHECK_FALSE(a.online.has_value());
    for (const char* id : {"13912345678", "11010519491231002X", "7304", "A12345"})
      CHECK(a.error.find(id) == std::string::npos);
  }
  CHECK(parse_availability(R"({"state":"RID-7304-5521"})").error ==
        "unexpected availability state <13 bytes>");
}
