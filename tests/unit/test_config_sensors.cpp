// Config of the sensor drivers (ChirpStack, generic MQTT/JSON, Modbus): what an installer writes
// becomes the drivers' options, and every mistake is named with its key and line.
#include <catch2/catch.hpp>

#include <string>

#include "anju/firmware/config.hpp"
#include "anju/firmware/daemon.hpp"

using anju::firmware::ConfigResult;
using anju::firmware::parse_config;
namespace edge = anju::edge;
namespace drivers = anju::drivers;

namespace {

const std::string kBase = R"(site:
  id: t1
  grid_code: "11010500100200300401"
local_broker:
  uri: tcp://127.0.0.1:1883
uplink:
  enabled: false
)";

ConfigResult parse(const std::string& text) {
  return parse_config(kBase + text, "test.yaml");
}

std::string all_errors(const ConfigResult& r) {
  std::string s;
  for (const auto& e : r.errors) s += e.to_string() + "\n";
  return s;
}

const anju::firmware::ConfigError* find_error(const ConfigResult& r, const std::string& key) {
  for (const auto& e : r.errors)
    if (e.key == key) return &e;
  return nullptr;
}

}  // namespace

TEST_CASE("sensor config: ChirpStack mappings by name, profile and device", "[config][sensors]") {
  auto r = parse(R"(chirpstack:
  enabled: true
  fcnt_window: 8
  mappings:
    manhole:
      profiles: [manhole-v2, manhole-v3]
      device_kind: manhole_sensor
      object_fields:
        - path: cover_open
          kind: manhole_open
          active_values: [true, "open", 1]
      weak_rssi_dbm: -115
    level:
      raw_fields:
        - fport: 2
          type: u16
          endian: little
          kind: water_level
          unit: m
          scale: 0.001
          mask: 0x0
  default: manhole
  devices:
    70B3D57ED0051A2B:
      name: level-east
      mapping: level
      room: east gate
      heartbeat_timeout_s: 600
)");
  INFO(all_errors(r));
  REQUIRE(r.config);
  const auto& c = r.config->chirpstack;
  CHECK(c.enabled);
  REQUIRE(c.mappings.size() == 2);
  const auto& f = c.mappings.at("manhole").mapping.object_fields.at(0);
  CHECK(f.kind == edge::EventKind::manhole_open);
  REQUIRE(f.active.active_values.size() == 3);
  CHECK(f.active.active_values[0] == true);
  CHECK(f.active.active_values[1] == "open");
  CHECK(f.active.active_values[2] == 1);
  const auto& raw = c.mappings.at("level").mapping.raw_fields.at(0);
  CHECK(raw.fport == 2u);
  CHECK(raw.type == drivers::chirpstack::RawType::u16);
  CHECK(raw.endian == drivers::chirpstack::Endian::little);
  CHECK(raw.scale == Approx(0.001));

  // What the driver gets: DevEUIs in lower case (as ChirpStack writes topics), the device's own
  // mapping before its profile's, every listed profile, and the default.
  const auto o = anju::firmware::chirpstack_options(*r.config);
  CHECK(o.fcnt_window == 8);
  REQUIRE(o.devices.count("70b3d57ed0051a2b"));
  CHECK(o.devices.at("70b3d57ed0051a2b").name == "level-east");
  CHECK(o.devices.at("70b3d57ed0051a2b").location.room == "east gate");
  CHECK(o.devices.at("70b3d57ed0051a2b").grid_code.empty());  // the site's, stamped by the driver
  CHECK(&drivers::chirpstack::find_mapping(o.mappings, "70b3d57ed0051a2b", "manhole-v2") ==
        &o.mappings.by_dev_eui.at("70b3d57ed0051a2b"));
  CHECK(
      drivers::chirpstack::find_mapping(o.mappings, "0000000000000001", "manhole-v3").device_kind ==
      "manhole_sensor");
  CHECK(drivers::chirpstack::find_mapping(o.mappings, "0000000000000001", "other").device_kind ==
        "manhole_sensor");  // the default
  CHECK(anju::firmware::rule_settings(*r.config).heartbeat_overrides.at("70b3d57ed0051a2b") ==
        600'000);
}

TEST_CASE("sensor config: ChirpStack mistakes are named", "[config][sensors]") {
  auto r = parse(R"(chirpstack:
  mappings:
    a:
      profiles: [p1]
      object_fields:
        - path: ""
          kind: smok
    b:
      profiles: [p1]
      raw_fields:
        - type: u16
          kind: temperature
          mask: 4
  default: nope
  devices:
    70b3d57ed005:
      name: short
    "0000000000000002":
      mapping: missing
)");
  INFO(all_errors(r));
  CHECK_FALSE(r.config);
  auto* kind = find_error(r, "chirpstack.mappings.a.object_fields[0].kind");
  REQUIRE(kind);
  CHECK(kind->line == 14);  // 7 lines of kBase, then the 7th line of this text
  CHECK_THAT(kind->message, Catch::Contains("unknown event kind 'smok'"));
  CHECK(find_error(r, "chirpstack.mappings.a.object_fields[0].path"));
  // The mapping's own validate(): a mask is only for binary kinds. (It names two keys, so it is
  // reported at the mapping, with the keys in the message.)
  auto* mask = find_error(r, "chirpstack.mappings.b");
  REQUIRE(mask);
  CHECK_THAT(mask->message, Catch::Contains("raw_fields[0].mask/invert: only for binary kinds"));
  auto* profile = find_error(r, "chirpstack.mappings.b.profiles");
  REQUIRE(profile);
  CHECK_THAT(profile->message, Catch::Contains("already served by mapping 'a'"));
  auto* def = find_error(r, "chirpstack.default");
  REQUIRE(def);
  CHECK_THAT(def->message, Catch::Contains("no mapping named 'nope' (known: a, b)"));
  auto* eui = find_error(r, "chirpstack.devices.70b3d57ed005");
  REQUIRE(eui);
  CHECK_THAT(eui->message, Catch::Contains("16 hexadecimal digits"));
  CHECK(find_error(r, "chirpstack.devices.0000000000000002.mapping"));
}

TEST_CASE("sensor config: generic MQTT mappings", "[config][sensors]") {
  auto r = parse(R"(generic_mqtt:
  mappings:
    - name: pumps
      topic: vendor/{building}/{device}/tele
      timestamp_pointer: /ts
      timestamp_unit: s
      fields:
        - pointer: /p
          kind: pressure
          unit: kPa
          required: true
        - pointer: /alarm
          kind: equipment_alarm
          active_values: [1, "ALARM"]
          inactive_values: [0, "OK"]
  devices:
    pump-1:
      name: Pump 1
      building: B2
)");
  INFO(all_errors(r));
  REQUIRE(r.config);
  const auto o = anju::firmware::generic_mqtt_options(*r.config);
  REQUIRE(o.mappings.size() == 1);
  CHECK(o.mappings[0].timestamp_unit == drivers::generic_mqtt::TimestampUnit::seconds);
  CHECK(o.mappings[0].fields.at(1).active.inactive_values.at(1) == "OK");
  CHECK(o.devices.at("pump-1").location.building == "B2");
  // The parser really uses what was configured.
  auto parsed = drivers::generic_mqtt::parse(o.mappings[0], "vendor/B2/pump-1/tele",
                                             R"({"ts": 1700000000, "p": 312.5, "alarm": "ALARM"})");
  INFO(parsed.errors.size());
  REQUIRE(parsed.events.size() == 2);
  CHECK(parsed.events[0].kind == edge::EventKind::pressure);
  CHECK(parsed.events[1].active == true);
  CHECK(parsed.device_ts_ms == 1'700'000'000'000LL);
}

TEST_CASE("sensor config: generic MQTT mistakes are named", "[config][sensors]") {
  auto r = parse(R"(generic_mqtt:
  mappings:
    - name: a
      topic: "vendor/#/x"
      fields:
        - pointer: temp
    - name: a
      topic: vendor/+
      fields: []
)");
  INFO(all_errors(r));
  CHECK_FALSE(r.config);
  CHECK(find_error(r, "generic_mqtt.mappings[0].topic"));
  auto* ptr = find_error(r, "generic_mqtt.mappings[0].fields[0].pointer");
  REQUIRE(ptr);
  CHECK_THAT(ptr->message, Catch::Contains("'/'"));
  auto* dup = find_error(r, "generic_mqtt.mappings[1].name");
  REQUIRE(dup);
  CHECK_THAT(dup->message, Catch::Contains("used twice"));
  CHECK(find_error(r, "generic_mqtt.mappings[1].fields"));
}

TEST_CASE("sensor config: Modbus devices and register maps", "[config][sensors]") {
  auto r = parse(R"(modbus:
  devices:
    - id: panel
      kind: fire_panel
      host: 127.0.0.1
      port: 1502
      unit_id: 3
      poll_interval_ms: 2000
      registers:
        - name: level
          function: 4
          address: 0x10
          type: float32
          order: CDAB
          kind: water_level
          unit: m
        - function: 3
          address: 1
          kind: smoke
          bit: 2
      building: "3"
    - id: meter
      transport: rtu
      serial: {device: /dev/ttyUSB0, baud: 19200, parity: E}
      registers:
        - {function: 3, address: 0, type: uint32, kind: measurement, name: volume}
)");
  INFO(all_errors(r));
  REQUIRE(r.config);
  const auto o = anju::firmware::modbus_options(*r.config);
  REQUIRE(o.devices.size() == 2);
  const auto& panel = o.devices[0];
  CHECK(panel.transport == drivers::ModbusTransport::tcp);
  CHECK(panel.port == 1502);
  CHECK(panel.unit_id == 3);
  CHECK(panel.settings.location.building == "3");
  REQUIRE(panel.registers.size() == 2);
  CHECK(panel.registers[0].address == 16);
  CHECK(panel.registers[0].count == 2);  // from the type, not written
  CHECK(panel.registers[1].count == 1);
  CHECK(panel.registers[1].bit == 2);
  const auto& meter = o.devices[1];
  CHECK(meter.transport == drivers::ModbusTransport::rtu);
  CHECK(meter.serial.parity == 'E');
  CHECK(meter.serial.baud == 19200);
  CHECK(meter.registers[0].count == 2);
  CHECK(drivers::validate(o).empty());
}

TEST_CASE("sensor config: Modbus mistakes are named", "[config][sensors]") {
  auto r = parse(R"(modbus:
  backoff_min_ms: 1000
  backoff_max_ms: 100
  devices:
    - id: a
      registers:
        - {function: 1, type: uint16, kind: smoke}
        - {function: 3, type: float32, count: 1}
    - id: a
      transport: rtu
      serial: {baud: 12345}
      registers: []
)");
  INFO(all_errors(r));
  CHECK_FALSE(r.config);
  CHECK(find_error(r, "modbus.backoff_max_ms"));
  auto* host = find_error(r, "modbus.devices[0].host");
  REQUIRE(host);
  CHECK_THAT(host->message, Catch::Contains("required with transport tcp"));
  CHECK(find_error(r, "modbus.devices[0].registers[0].function"));
  CHECK(find_error(r, "modbus.devices[0].registers[1].count"));
  CHECK(find_error(r, "modbus.devices[1].id"));
  CHECK(find_error(r, "modbus.devices[1].serial.baud"));
  CHECK(find_error(r, "modbus.devices[1].registers"));
}

TEST_CASE("camera config: streams are read by the camera parser, errors keep their place",
          "[config][camera]") {
  auto r = parse(R"(cameras:
  streams:
    - id: gate-north
      url: rtsp://admin:secret@192.168.10.21/stream1
      room: north gate
      fps: 2.5
      zones:
        - {id: fence, detector: intrusion, polygon: [[0.1, 0.3], [0.9, 0.3], [0.9, 0.9]], latch: true}
        - {id: line, detector: line_count, polygon: [[0.3, 0], [0.3, 1]]}
)");
  INFO(all_errors(r));
  REQUIRE(r.config);
  const auto& s = r.config->cameras.streams;
  REQUIRE(s.size() == 1);
  CHECK(s[0].id == "gate-north");
  CHECK(s[0].fps == 2.5);
  REQUIRE(s[0].zones.size() == 2);
  CHECK(s[0].zones[0].latch);
  CHECK(s[0].zones[1].detector == drivers::camera::Detector::line_count);

  auto bad = parse(R"(cameras:
  streams:
    - id: gate-north
      url: rtsp://cam/1
      zones:
        - {id: fence, detector: intrusion, polygon: [[0.1, 0.3], [1.5, 0.3], [0.9, 0.9]]}
)");
  INFO(all_errors(bad));
  CHECK_FALSE(bad.config);
  REQUIRE(bad.errors.size() == 1);
  CHECK(bad.errors[0].key.rfind("cameras.streams[0].zones[0].polygon", 0) == 0);
  CHECK(bad.errors[0].line == 10);  // where the streams list starts (7 lines of kBase, then 3)
}
