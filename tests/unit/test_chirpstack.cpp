// Unit tests of the pure ChirpStack v4 parser (drivers/sensors/src/chirpstack_parser.cpp).
#include <catch2/catch.hpp>

#include <limits>
#include <string>
#include <vector>

#include "anju/drivers/chirpstack.hpp"

using namespace anju::drivers::chirpstack;
using anju::edge::Event;
using anju::edge::EventKind;
using nlohmann::json;

namespace {

constexpr const char* kUpTopic =
    "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/24e124329e090021/event/up";

// A v4 "up" event of a level/tilt sensor with a codec (Protobuf JSON mapping, shape as
// ChirpStack v4 publishes it), received by two gateways.
constexpr const char* kUp = R"json({
  "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
  "time": "2025-03-07T08:16:15.688878229+00:00",
  "deviceInfo": {
    "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
    "tenantName": "ChirpStack",
    "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
    "applicationName": "compound-sensors",
    "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
    "deviceProfileName": "manhole-level",
    "deviceName": "manhole-b3-east",
    "devEui": "24E124329E090021",
    "deviceClassEnabled": "CLASS_A",
    "tags": {"building": "3"}
  },
  "devAddr": "00189440",
  "adr": true,
  "dr": 5,
  "fCnt": 45797,
  "fPort": 85,
  "confirmed": false,
  "data": "AXVXA2c4AASCXAgFAAA=",
  "object": {"battery": 87, "distance": 2140, "position": "normal", "temperature": 5.6,
             "sensor": {"level_pct": 41.5}},
  "rxInfo": [
    {"gatewayId": "0016c001f153a14c", "uplinkId": 4217106255, "rssi": -112, "snr": -3.5,
     "channel": 2, "context": "E3OWOQ==", "metadata": {"region_common_name": "EU868"}},
    {"gatewayId": "0016c001f153a14d", "uplinkId": 1234, "rssi": -97, "snr": 4.25,
     "context": "AAAAAA=="}
  ],
  "txInfo": {"frequency": 867100000,
             "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 9,
                                     "codeRate": "CR_4_5"}}}
})json";

DeviceMapping manhole_mapping() {
  DeviceMapping m;
  m.device_kind = "manhole_sensor";
  ObjectField tilt;
  tilt.path = "position";
  tilt.kind = EventKind::manhole_open;
  tilt.active.active_values = {"tilt", "open"};
  tilt.active.inactive_values = {"normal"};
  ObjectField level;
  level.path = "distance";
  level.kind = EventKind::water_level;
  level.name = "distance";
  level.unit = "m";
  level.scale = 0.001;
  ObjectField temp;
  temp.path = "temperature";
  temp.kind = EventKind::temperature;
  temp.unit = "C";
  ObjectField pct;
  pct.path = "/sensor/level_pct";
  pct.unit = "%";
  ObjectField absent;
  absent.path = "sensor.missing";
  m.object_fields = {tilt, level, temp, pct, absent};
  m.weak_rssi_dbm = -100;
  return m;
}

std::string with(const char* base, const std::string& pointer, const json& value) {
  json j = json::parse(base);
  j[json::json_pointer(pointer)] = value;
  return j.dump();
}

std::string without(const char* base, const std::string& key) {
  json j = json::parse(base);
  j.erase(key);
  return j.dump();
}

std::string one_error(const Result& r) {
  REQUIRE(r.errors.size() == 1);
  return r.errors[0];
}

}  // namespace

TEST_CASE("chirpstack: ChirpStack topics", "[chirpstack]") {
  auto t = classify_topic(kUpTopic);
  CHECK(t.type == TopicType::up);
  CHECK(t.application_id == "17c82e96-be03-4f38-aef3-f83d48582d97");
  CHECK(t.dev_eui == "24e124329e090021");
  CHECK(t.event == "up");
  CHECK(classify_topic("application/1/device/0101010101010101/event/status").type ==
        TopicType::status);
  CHECK(classify_topic("application/1/device/0101010101010101/event/join").type == TopicType::join);
  t = classify_topic("application/1/device/0101010101010101/event/log");
  CHECK(t.type == TopicType::ignored);
  CHECK(t.event == "log");
  CHECK(t.reason == "event type 'log' is not used");
  t = classify_topic("application/1/device/0101010101010101/command/down");
  CHECK(t.type == TopicType::ignored);
  CHECK(t.reason == "not a ChirpStack event topic");
  CHECK(classify_topic("application/1/device/0101010101010101/event/up/x").reason ==
        "not a ChirpStack event topic (too many levels)");
  CHECK(classify_topic("application//device/0101010101010101/event/up").type == TopicType::ignored);
  CHECK(classify_topic("application/1/device/01010101/event/up").reason ==
        "DevEUI '01010101' in the topic is not 16 hex digits");
  CHECK(classify_topic("").type == TopicType::ignored);
}

TEST_CASE("chirpstack: uplink with a codec object", "[chirpstack]") {
  const auto r = parse_uplink(kUpTopic, kUp, manhole_mapping());
  INFO((r.errors.empty() ? "" : r.errors[0]));
  REQUIRE(r.errors.empty());
  CHECK(r.dev_eui == "24e124329e090021");
  REQUIRE(r.fcnt);
  CHECK(*r.fcnt == 45797);
  // manhole_open, distance, temperature, level_pct, signal measurement, signal_weak.
  REQUIRE(r.events.size() == 6);

  const Event& tilt = r.events[0];
  CHECK(tilt.kind == EventKind::manhole_open);
  REQUIRE(tilt.active);
  CHECK_FALSE(*tilt.active);
  CHECK(tilt.severity == 4);
  CHECK(tilt.source == "chirpstack");
  CHECK(tilt.device.id == "24e124329e090021");
  CHECK(tilt.device.name == "manhole-b3-east");
  CHECK(tilt.device.kind == "manhole_sensor");
  CHECK(tilt.attrs["fcnt"] == 45797);
  CHECK(tilt.attrs["fport"] == 85);
  CHECK(tilt.attrs["rssi"] == -97);
  CHECK(tilt.attrs["snr"] == 4.25);
  CHECK(tilt.attrs["gateways"] == 2);
  CHECK(tilt.attrs["dev_addr"] == "00189440");
  CHECK(tilt.attrs["confirmed"] == false);
  CHECK(tilt.attrs["profile"] == "manhole-level");
  CHECK(tilt.attrs["application_id"] == "17c82e96-be03-4f38-aef3-f83d48582d97");
  CHECK(tilt.attrs["deduplication_id"] == "3ac7e3c4-4401-4b8d-9386-a5c902f9202d");
  CHECK(tilt.values.empty());

  const Event& level = r.events[1];
  CHECK(level.kind == EventKind::water_level);
  CHECK_FALSE(level.active);
  REQUIRE(level.values.size() == 1);
  CHECK(level.values[0].name == "distance");
  CHECK(level.values[0].value == Approx(2.14));
  CHECK(level.values[0].unit == "m");

  CHECK(r.events[2].kind == EventKind::temperature);
  REQUIRE(r.events[2].value("temperature"));
  CHECK(r.events[2].value("temperature")->value == Approx(5.6));
  CHECK(r.events[2].value("temperature")->unit == "C");

  CHECK(r.events[3].kind == EventKind::measurement);
  REQUIRE(r.events[3].value("level_pct"));  // default name: the last key
  CHECK(r.events[3].value("level_pct")->value == Approx(41.5));

  const Event& radio = r.events[4];
  CHECK(radio.kind == EventKind::measurement);
  REQUIRE(radio.value("rssi"));
  CHECK(radio.value("rssi")->value == -97);  // the best of the two gateways
  CHECK(radio.value("rssi")->unit == "dBm");
  REQUIRE(radio.value("snr"));
  CHECK(radio.value("snr")->value == 4.25);
  CHECK(radio.value("snr")->unit == "dB");

  CHECK(r.events[5].kind == EventKind::signal_weak);
  REQUIRE(r.events[5].active);
  CHECK_FALSE(*r.events[5].active);  // -97 is not below -100

  for (const auto& ev : r.events) CHECK_FALSE(anju::edge::encode(ev).empty());
}

TEST_CASE("chirpstack: uplink: binary values, weak signal, tilt alarm", "[chirpstack]") {
  auto payload = with(kUp, "/object/position", "tilt");
  payload = with(payload.c_str(), "/rxInfo/1/rssi", -118);
  const auto r = parse_uplink(kUpTopic, payload, manhole_mapping());
  REQUIRE(r.errors.empty());
  REQUIRE(r.events.size() == 6);
  REQUIRE(r.events[0].active);
  CHECK(*r.events[0].active);
  CHECK(r.events[0].severity == 2);
  CHECK(r.events[4].value("rssi")->value == -112);
  CHECK(r.events[4].value("snr")->value == -3.5);
  REQUIRE(r.events[5].active);
  CHECK(*r.events[5].active);
  CHECK(r.events[5].severity == 3);

  // A value that is neither active nor inactive is an error naming the path; the rest count.
  const auto bad =
      parse_uplink(kUpTopic, with(kUp, "/object/position", "sideways"), manhole_mapping());
  CHECK(one_error(bad) == "object.position: value '\"sideways\"' is neither active nor inactive");
  CHECK(bad.events.size() == 5);

  const auto nan =
      parse_uplink(kUpTopic, with(kUp, "/object/temperature", "warm"), manhole_mapping());
  CHECK(one_error(nan) == "object.temperature: must be a number, got '\"warm\"'");
}

TEST_CASE("chirpstack: uplink with raw data decoders", "[chirpstack]") {
  DeviceMapping m;
  m.device_kind = "smoke_detector";
  RawField smoke{.fport = 10, .offset = 0, .type = RawType::u8, .kind = EventKind::smoke};
  smoke.mask = 0x01;
  RawField tamper{.fport = 10, .offset = 0, .type = RawType::u8, .kind = EventKind::tamper};
  tamper.mask = 0x02;
  RawField temp{.fport = 10, .offset = 1, .type = RawType::i16, .kind = EventKind::temperature};
  temp.scale = 0.1;
  temp.unit = "C";
  RawField battery{.fport = 10, .offset = 3, .type = RawType::u8, .kind = EventKind::battery};
  battery.unit = "%";
  RawField other_port{.fport = 11, .offset = 0, .type = RawType::u32};
  m.raw_fields = {smoke, tamper, temp, battery, other_port};
  CHECK(validate(m).empty());

  // 03 00 EB 5A: smoke and tamper bits set, 23.5 C, 90 %.
  std::string payload = with(kUp, "/data", "AwDrWg==");
  payload = with(payload.c_str(), "/fPort", 10);
  json j = json::parse(payload);
  j.erase("object");
  auto r = parse_uplink(kUpTopic, j.dump(), m);
  REQUIRE(r.errors.empty());
  REQUIRE(r.events.size() == 5);  // smoke, tamper, temperature, battery, radio
  CHECK(r.events[0].kind == EventKind::smoke);
  CHECK(*r.events[0].active);
  CHECK(r.events[0].severity == 1);
  CHECK(r.events[1].kind == EventKind::tamper);
  CHECK(*r.events[1].active);
  CHECK(r.events[2].value("temperature")->value == Approx(23.5));
  CHECK(r.events[3].value("battery")->value == 90);
  CHECK(r.events[3].value("battery")->unit == "%");
  CHECK(r.events[4].kind == EventKind::measurement);

  // Little-endian float32 and signed i16: 01 | 123.456f LE | -5 LE.
  DeviceMapping le;
  le.raw_fields = {
      RawField{.offset = 1, .type = RawType::float32, .endian = Endian::little, .name = "flow"},
      RawField{.offset = 5, .type = RawType::i16, .endian = Endian::little, .name = "delta"},
      RawField{.offset = 0, .type = RawType::i8, .kind = EventKind::equipment_fault}};
  j["data"] = "AXnp9kL7/w==";
  r = parse_uplink(kUpTopic, j.dump(), le);
  REQUIRE(r.errors.empty());
  REQUIRE(r.events.size() == 4);
  CHECK(r.events[0].value("flow")->value == Approx(123.456).epsilon(1e-6));
  CHECK(r.events[1].value("delta")->value == -5);
  CHECK(*r.events[2].active);

  // Too short for a field: an error naming it; the others still count.
  le.raw_fields.push_back(RawField{.offset = 6, .type = RawType::u32});
  r = parse_uplink(kUpTopic, j.dump(), le);
  CHECK(one_error(r) == "data: raw_fields[3] needs bytes 6..9, the uplink has 7");
  CHECK(r.events.size() == 4);
}

TEST_CASE("chirpstack: uplink error paths name the field", "[chirpstack]") {
  const auto m = manhole_mapping();
  auto err = [&m](const std::string& payload) {
    return one_error(parse_uplink(kUpTopic, payload, m));
  };
  CHECK(err("") == "not valid JSON");
  CHECK(err("[1,2]") == "up payload must be a JSON object");
  CHECK(err(std::string(kMaxPayloadBytes + 1, ' ')) ==
        "payload too large: 65537 bytes (max 65536)");
  CHECK(err(without(kUp, "deviceInfo")) == "field 'deviceInfo' is missing");
  CHECK(err(with(kUp, "/deviceInfo", "x")) == "field 'deviceInfo' must be an object");
  CHECK(err(with(kUp, "/deviceInfo/devEui", 5)) ==
        "field 'deviceInfo.devEui' must be 16 hex digits, got '5'");
  CHECK(err(with(kUp, "/deviceInfo/devEui", "0101010101010101")) ==
        "field 'deviceInfo.devEui' '0101010101010101' does not match the topic's "
        "'24e124329e090021'");
  CHECK(err(with(kUp, "/deviceInfo/deviceName", 7)) ==
        "field 'deviceInfo.deviceName' must be a string");
  CHECK(err(with(kUp, "/fCnt", -1)) == "field 'fCnt' must be an unsigned 32-bit integer, got '-1'");
  CHECK(err(with(kUp, "/fCnt", 4294967296)) ==
        "field 'fCnt' must be an unsigned 32-bit integer, got <number of 10 digits>");
  CHECK(err(with(kUp, "/fCnt", 1.5)) ==
        "field 'fCnt' must be an unsigned 32-bit integer, got '1.5'");
  CHECK(err(with(kUp, "/fPort", 256)) == "field 'fPort' must be an integer 0..255, got '256'");
  CHECK(err(with(kUp, "/confirmed", "yes")) == "field 'confirmed' must be a boolean");
  CHECK(err(with(kUp, "/devAddr", 1)) == "field 'devAddr' must be a string of hex digits");
  CHECK(err(with(kUp, "/rxInfo", json::object())) == "field 'rxInfo' must be an array");
  CHECK(err(with(kUp, "/rxInfo/1", 3)) == "field 'rxInfo[1]' must be an object");
  CHECK(err(with(kUp, "/rxInfo/0/rssi", "loud")) ==
        "field 'rxInfo[0].rssi' must be a number in -200..50 dBm, got '\"loud\"'");
  CHECK(err(with(kUp, "/rxInfo/1/snr", 99)) ==
        "field 'rxInfo[1].snr' must be a number in -50..50 dB, got '99'");
  CHECK(err(with(kUp, "/data", "not base64!")) == "field 'data' must be a base64 string");
  CHECK(err(with(kUp, "/data", 12)) == "field 'data' must be a base64 string");
  CHECK(err(with(kUp, "/object", json::array())) == "field 'object' must be an object");
}

TEST_CASE("chirpstack: uplink: Protobuf JSON defaults and minimal messages", "[chirpstack]") {
  // fCnt 0 and fPort 0 are left out by the Protobuf JSON mapping; rxInfo may be missing.
  const std::string minimal = R"({"deviceInfo":{"devEui":"24e124329e090021"},"data":"qg=="})";
  auto r = parse_uplink(kUpTopic, minimal, DeviceMapping{});
  REQUIRE(r.errors.empty());
  REQUIRE(r.fcnt);
  CHECK(*r.fcnt == 0);
  CHECK(r.events.empty());  // nothing mapped, no radio info
  // fCnt as a decimal string is accepted too (Protobuf JSON allows it for integers).
  r = parse_uplink(kUpTopic, with(kUp, "/fCnt", "17"), DeviceMapping{});
  REQUIRE(r.errors.empty());
  CHECK(*r.fcnt == 17);
  CHECK(r.events.size() == 1);  // the radio measurement
  // An rxInfo entry without rssi (0 left out) still counts.
  r = parse_uplink(kUpTopic, with(kUp, "/rxInfo", json::parse(R"([{"snr":1.5}])")),
                   DeviceMapping{});
  REQUIRE(r.events.size() == 1);
  CHECK(r.events[0].value("rssi")->value == 0);
  CHECK(r.events[0].value("snr")->value == 1.5);
}

TEST_CASE("chirpstack: status events", "[chirpstack]") {
  const std::string topic = "application/abc/device/9620853c959b5856/event/status";
  const std::string status = R"json({
    "deduplicationId": "a0047d3f-b432-4400-8ef8-ed8fad4c9025",
    "time": "2025-03-07T08:16:15.688878229+00:00",
    "deviceInfo": {"tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242", "tenantName": "ChirpStack",
                   "applicationId": "acb57b95-2c39-486e-a8e7-724d4d6343ac",
                   "applicationName": "ddd", "deviceProfileName": "profile-01",
                   "deviceName": "node-01", "devEui": "9620853c959b5856",
                   "deviceClassEnabled": "CLASS_C", "tags": {}},
    "margin": 10, "externalPowerSource": false, "batteryLevelUnavailable": false,
    "batteryLevel": 75.5})json";
  Mappings maps;
  maps.by_profile["profile-01"].device_kind = "water_leak_sensor";
  auto r = parse(topic, status, maps);
  REQUIRE(r.errors.empty());
  REQUIRE(r.events.size() == 1);
  CHECK(r.topic.type == TopicType::status);
  CHECK_FALSE(r.fcnt);
  const Event& ev = r.events[0];
  CHECK(ev.kind == EventKind::battery);
  CHECK(ev.device.kind == "water_leak_sensor");
  REQUIRE(ev.value("battery"));
  CHECK(ev.value("battery")->value == 75.5);
  CHECK(ev.value("battery")->unit == "%");
  CHECK(ev.attrs["margin"] == 10);
  CHECK(ev.attrs["external_power"] == false);

  // Externally powered or no level: the margin instead.
  r = parse(topic, with(status.c_str(), "/externalPowerSource", true), maps);
  REQUIRE(r.events.size() == 1);
  CHECK(r.events[0].kind == EventKind::measurement);
  CHECK(r.events[0].value("margin")->value == 10);
  CHECK(r.events[0].value("margin")->unit == "dB");
  r = parse(topic, with(status.c_str(), "/batteryLevelUnavailable", true), maps);
  REQUIRE(r.events.size() == 1);
  CHECK(r.events[0].kind == EventKind::measurement);
  CHECK(r.events[0].attrs["battery_level_unavailable"] == true);

  // batteryLevel 0 is left out by Protobuf JSON: 0 %.
  r = parse(topic, without(status.c_str(), "batteryLevel"), maps);
  REQUIRE(r.events.size() == 1);
  CHECK(r.events[0].value("battery")->value == 0);

  CHECK(one_error(parse(topic, with(status.c_str(), "/batteryLevel", 101), maps)) ==
        "field 'batteryLevel' must be a number in 0..100, got '101'");
  CHECK(one_error(parse(topic, with(status.c_str(), "/margin", "x"), maps)) ==
        "field 'margin' must be a number in -128..127 dB, got '\"x\"'");
  CHECK(one_error(parse(topic, with(status.c_str(), "/externalPowerSource", 1), maps)) ==
        "field 'externalPowerSource' must be a boolean");
  CHECK(one_error(parse(topic, with(status.c_str(), "/batteryLevelUnavailable", "no"), maps)) ==
        "field 'batteryLevelUnavailable' must be a boolean");
}

TEST_CASE("chirpstack: join events and mapping lookup", "[chirpstack]") {
  const std::string topic = "application/abc/device/0101010101010101/event/join";
  const std::string join = R"({"deduplicationId":"c9dbe358-2578-4fb7-b295-66b44edc45a6",
    "time":"2022-07-18T09:33:28.823500726+00:00",
    "deviceInfo":{"tenantId":"52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
      "applicationId":"17c82e96-be03-4f38-aef3-f83d48582d97","deviceProfileName":"smoke",
      "deviceName":"Test device","devEui":"0101010101010101","tags":{}},
    "devAddr":"00189440"})";
  Mappings maps;
  maps.by_profile["smoke"].device_kind = "smoke_detector";
  maps.by_dev_eui["0101010101010101"].device_kind = "special_smoke";
  auto r = parse(topic, join, maps);
  REQUIRE(r.errors.empty());
  REQUIRE(r.events.size() == 1);
  CHECK(r.events[0].kind == EventKind::device_online);
  CHECK(r.events[0].device.kind == "special_smoke");  // the device's own mapping wins
  CHECK(r.events[0].attrs["join"] == true);
  CHECK(r.events[0].attrs["dev_addr"] == "00189440");
  CHECK(r.events[0].attrs["lora_time"] == "2022-07-18T09:33:28.823500726+00:00");
  CHECK_FALSE(r.events[0].active);

  maps.by_dev_eui.clear();
  CHECK(parse(topic, join, maps).events[0].device.kind == "smoke_detector");
  maps.by_profile.clear();
  CHECK(parse(topic, join, maps).events[0].device.kind == "lora_sensor");
  CHECK(one_error(parse(topic, with(join.c_str(), "/devAddr", false), maps)) ==
        "field 'devAddr' must be a string of hex digits");

  // Ignored event types: no events, no error.
  r = parse("application/abc/device/0101010101010101/event/txack", "{}", maps);
  CHECK(r.events.empty());
  CHECK(r.errors.empty());
  CHECK(r.topic.reason == "event type 'txack' is not used");
}

TEST_CASE("chirpstack: mapping validation", "[chirpstack]") {
  CHECK(validate(manhole_mapping()).empty());
  DeviceMapping m;
  m.device_kind = "";
  m.weak_rssi_dbm = -500;
  ObjectField a;
  a.path = "a..b";
  a.scale = 0;
  ObjectField b;
  b.path = "/a~2";
  b.kind = EventKind::temperature;
  b.active.active_values = {1};
  ObjectField c;
  c.path = "";
  c.kind = EventKind::smoke;
  c.unit = "%";
  c.active.inactive_values = {0};
  m.object_fields = {a, b, c};
  RawField r1{.fport = 0, .offset = 300};
  r1.mask = 1;
  RawField r2{.type = RawType::u8, .kind = EventKind::smoke};
  r2.mask = 0x100;
  RawField r3{.type = RawType::float32, .kind = EventKind::smoke};
  r3.mask = 1;
  r3.offset_value = std::numeric_limits<double>::infinity();
  m.raw_fields = {r1, r2, r3};
  const std::vector<std::string> want = {
      "device_kind: must not be empty",
      "weak_rssi_dbm: must be in -200..50",
      "object_fields[0].path: dotted path has an empty key",
      "object_fields[0].scale: must be finite and not 0",
      "object_fields[1].path: '~' at offset 2 must be followed by 0 or 1",
      "object_fields[1].active: only for binary kinds, not temperature",
      "object_fields[2].path: must not be empty",
      "object_fields[2].active: inactive_values need active_values",
      "object_fields[2].unit: a binary kind has no unit",
      "raw_fields[0].offset: 300 is past 241",
      "raw_fields[0].fport: must be 1..255",
      "raw_fields[0].mask/invert: only for binary kinds, not measurement",
      "raw_fields[1].mask: wider than u8",
      "raw_fields[2].offset_value: must be finite",
      "raw_fields[2].mask: not for float32",
  };
  CHECK(validate(m) == want);
  CHECK(raw_type_from_string("i16") == RawType::i16);
  CHECK(to_string(RawType::float32) == "float32");
  CHECK_FALSE(raw_type_from_string("u64"));
}

TEST_CASE("chirpstack: strict base64", "[chirpstack]") {
  using V = std::vector<std::uint8_t>;
  CHECK(decode_base64("") == V{});
  CHECK(decode_base64("qg==") == V{0xAA});
  CHECK(decode_base64("AQI=") == V{1, 2});
  CHECK(decode_base64("AQID") == V{1, 2, 3});
  CHECK(decode_base64("+/+/") == V{0xFB, 0xFF, 0xBF});
  CHECK_FALSE(decode_base64("qg"));        // padding required
  CHECK_FALSE(decode_base64("qg=a"));      // data after padding
  CHECK_FALSE(decode_base64("q==="));      // too much padding
  CHECK_FALSE(decode_base64("qh=="));      // non-zero unused bits
  CHECK_FALSE(decode_base64("qg==qg=="));  // padding in the middle
  CHECK_FALSE(decode_base64("qg-_"));      // URL alphabet
  CHECK_FALSE(decode_base64("AQ ID"));     // whitespace
}

TEST_CASE("chirpstack: frame counter tracker", "[chirpstack]") {
  FCntTracker t(16, 3);
  const std::string a = "0101010101010101";
  CHECK(t.observe(a, 100) == FCntClass::first);
  CHECK(t.observe(a, 101) == FCntClass::fresh);
  CHECK(t.observe(a, 101) == FCntClass::repeat);  // the same frame again
  CHECK(t.observe(a, 90) == FCntClass::repeat);   // a late copy within the window
  CHECK(*t.last(a) == 101);                       // repeats do not move the counter
  CHECK(t.observe(a, 150) == FCntClass::fresh);   // a gap: frames were lost
  CHECK(t.observe(a, 0) == FCntClass::reset);     // restarted (ABP without persisted counter)
  CHECK(t.observe(a, 1) == FCntClass::fresh);
  CHECK(t.observe("0101010101010101", 1) == FCntClass::repeat);
  t.joined(a);
  CHECK(t.observe(a, 5) == FCntClass::reset);  // after a join, whatever the value
  CHECK(t.observe(a, 6) == FCntClass::fresh);
  // 32-bit wrap-around counts as a reset.
  CHECK(t.observe("0a0a0a0a0a0a0a0a", 0xFFFFFFFFu) == FCntClass::first);
  CHECK(t.observe("0a0a0a0a0a0a0a0a", 0) == FCntClass::reset);
  // Upper-case EUIs are the same device.
  CHECK(t.observe("0A0A0A0A0A0A0A0A", 1) == FCntClass::fresh);
  CHECK(t.observe("0a0a0a0a0a0a0a0a", 1) == FCntClass::repeat);
  // Bounded: a fourth device evicts the least recently seen (a).
  CHECK(t.observe("0303030303030303", 7) == FCntClass::first);
  CHECK(t.size() == 3);
  CHECK(t.observe("0404040404040404", 7) == FCntClass::first);
  CHECK(t.size() == 3);
  CHECK_FALSE(t.last(a));
  t.forget("0404040404040404");
  CHECK(t.size() == 2);
  CHECK(to_string(FCntClass::fresh) == "new");
  CHECK(to_string(FCntClass::repeat) == "repeat");
}

// Errors are logged: a personal identifier a device or its codec put where a reading was expected
// is never repeated in them (docs/DATA.md, "Logs"; tests/integration/test_privacy.cpp).
TEST_CASE("chirpstack: errors do not repeat identifiers found in a payload",
          "[chirpstack][privacy]") {
  const auto m = manhole_mapping();
  const std::string plate =
      "\xE4\xBA\xAC"
      "A12345";  // 京A12345
  const std::vector<std::pair<std::string, std::string>> cases = {
      {with(kUp, "/object/position", "13912345678"),
       "object.position: value <string of 11 bytes> is neither active nor inactive"},
      {with(kUp, "/object/temperature", plate),
       "object.temperature: must be a number, got <string of 9 bytes>"},
      {with(kUp, "/object/temperature", "RID-7304-5521"),
       "object.temperature: must be a number, got <string of 13 bytes>"},
      {with(kUp, "/fCnt", "11010519491231002X"),
       "field 'fCnt' must be an unsigned 32-bit integer, got <string of 18 bytes>"},
      {with(kUp, "/rxInfo/0/rssi", json{{"phone", "13912345678"}}),
       "field 'rxInfo[0].rssi' must be a number in -200..50 dBm, got <object of 1 member>"},
  };
  for (const auto& [payload, expected] : cases) {
    const auto r = parse_uplink(kUpTopic, payload, m);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0] == expected);
  }
  // Short state words and readings are still shown: they are what an installer needs to see.
  CHECK(one_error(parse_uplink(kUpTopic, with(kUp, "/object/position", "sideways"), m)) ==
        "object.position: value '\"sideways\"' is neither active nor inactive");
}
