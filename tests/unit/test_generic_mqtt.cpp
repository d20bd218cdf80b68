// Unit tests of the pure generic MQTT/JSON parser (drivers/sensors/src/generic_mqtt_parser.cpp).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "anju/drivers/generic_mqtt.hpp"

using namespace anju::drivers::generic_mqtt;
using anju::edge::Event;
using anju::edge::EventKind;
using nlohmann::json;

namespace {

bool matches(std::string_view pattern, std::string_view topic) {
  return match(pattern, topic).has_value();
}

Mapping pump_room() {
  Mapping m;
  m.name = "pump_room";
  m.topic = "site/{building}/{device}/state";
  m.device_kind = "pump_controller";
  m.timestamp_pointer = "/ts";
  m.timestamp_unit = TimestampUnit::seconds;
  FieldMap pressure;
  pressure.pointer = "/main/pressure";
  pressure.kind = EventKind::pressure;
  pressure.unit = "kPa";
  pressure.scale = 1000;  // payload in MPa
  pressure.required = true;
  FieldMap level;
  level.pointer = "/tank/level";
  level.kind = EventKind::water_level;
  level.unit = "m";
  FieldMap alarm;
  alarm.pointer = "/alarm";
  alarm.kind = EventKind::equipment_alarm;
  alarm.active.active_values = {"ALARM", "FIRE"};
  alarm.active.inactive_values = {"NORMAL"};
  FieldMap fault;
  fault.pointer = "/faults/0";
  fault.kind = EventKind::equipment_fault;
  FieldMap temp;
  temp.pointer = "/a~1b/t~0c";  // key "a/b", then "t~c"
  temp.unit = "C";
  m.fields = {pressure, level, alarm, fault, temp};
  return m;
}

constexpr const char* kPumpPayload = R"({
  "ts": 1764505800.25,
  "main": {"pressure": 0.42},
  "tank": {"level": 3.5},
  "alarm": "NORMAL",
  "faults": [true, false],
  "a/b": {"t~c": 21.5}
})";

std::string with(const char* base, const std::string& pointer, const json& value) {
  json j = json::parse(base);
  j[json::json_pointer(pointer)] = value;
  return j.dump();
}

}  // namespace

TEST_CASE("generic_mqtt: wildcard matching", "[generic_mqtt]") {
  CHECK(matches("a/b", "a/b"));
  CHECK_FALSE(matches("a/b", "a/b/"));  // a trailing slash is one more (empty) level
  CHECK_FALSE(matches("a/b/", "a/b"));
  CHECK(matches("a/b/", "a/b/"));
  CHECK_FALSE(matches("a/b", "a/c"));
  CHECK_FALSE(matches("a/b", "A/b"));  // case-sensitive

  CHECK(matches("a/+", "a/x"));
  CHECK(matches("a/+", "a/"));  // + matches an empty level
  CHECK_FALSE(matches("a/+", "a"));
  CHECK_FALSE(matches("a/+", "a/x/y"));
  CHECK(matches("+/+", "/x"));
  CHECK(matches("+", "x"));
  CHECK_FALSE(matches("+", "/"));

  CHECK(matches("a/#", "a"));  // # also matches the parent
  CHECK(matches("a/#", "a/"));
  CHECK(matches("a/#", "a/b/c"));
  CHECK_FALSE(matches("a/#", "ab"));
  CHECK(matches("#", "a/b"));
  CHECK(matches("#", "/"));
  CHECK(matches("a/+/c/#", "a/b/c"));
  CHECK_FALSE(matches("a/+/c/#", "a/b/d/e"));

  // $-topics are not matched by a leading wildcard.
  CHECK_FALSE(matches("#", "$SYS/broker/uptime"));
  CHECK_FALSE(matches("+/broker/uptime", "$SYS/broker/uptime"));
  CHECK(matches("$SYS/#", "$SYS/broker/uptime"));

  // Topics never contain wildcards; empty topics do not exist.
  CHECK_FALSE(matches("a/+", "a/+"));
  CHECK_FALSE(matches("#", "a/#"));
  CHECK_FALSE(matches("#", ""));
  CHECK_FALSE(matches("#", "bad\xff"));  // not UTF-8
  // An invalid pattern matches nothing.
  CHECK_FALSE(matches("a/#/b", "a/x/b"));
}

TEST_CASE("generic_mqtt: named captures", "[generic_mqtt]") {
  auto c = match("vendor/+device/telemetry", "vendor/pump-7/telemetry");
  REQUIRE(c);
  CHECK(*c == Captures{{"device", "pump-7"}});
  c = match("site/{building}/{device}/state", "site/B3/level-1/state");
  REQUIRE(c);
  CHECK(*c == Captures{{"building", "B3"}, {"device", "level-1"}});
  c = match("site/{building}/+/#", "site/B3/x/y/z");
  REQUIRE(c);
  CHECK(*c == Captures{{"building", "B3"}});
  c = match("a/{x}", "a/");  // an empty level is captured as ""
  REQUIRE(c);
  CHECK(c->at("x").empty());
  CHECK_FALSE(match("site/{building}/state", "site/B3/x/state"));
}

TEST_CASE("generic_mqtt: pattern errors", "[generic_mqtt]") {
  CHECK(pattern_error("site/{building}/+device/#").empty());
  CHECK(pattern_error("") == "empty pattern");
  CHECK(pattern_error("a/#/b") == "level 2 '#': '#' must be the last level");
  CHECK(pattern_error("a/b#") ==
        "level 2 'b#': '+', '#', '{' and '}' must stand for a whole level");
  CHECK(pattern_error("a/x+") ==
        "level 2 'x+': '+', '#', '{' and '}' must stand for a whole level");
  CHECK(pattern_error("a/{dev") ==
        "level 2 '{dev': '{' without a closing '}' at the end of the level");
  CHECK(pattern_error("a/{}") ==
        "level 2 '{}': capture name must be non-empty letters, digits or '_'");
  CHECK(pattern_error("a/+dev-ice") ==
        "level 2 '+dev-ice': capture name must be letters, digits or '_'");
  CHECK(pattern_error("{d}/+d") == "level 2 '+d': capture name 'd' used twice");
  CHECK(pattern_error("a/\xc3") == "pattern is not valid UTF-8");
}

TEST_CASE("generic_mqtt: JSON pointers", "[generic_mqtt]") {
  const json doc = json::parse(R"({"a":{"b":[10,20,{"c":1}]},"x/y":2,"m~n":3,"":4,"0":5})");
  CHECK(resolve_pointer(doc, "") == &doc);
  CHECK(*resolve_pointer(doc, "/a/b/1") == 20);
  CHECK(*resolve_pointer(doc, "/a/b/2/c") == 1);
  CHECK(*resolve_pointer(doc, "/x~1y") == 2);
  CHECK(*resolve_pointer(doc, "/m~0n") == 3);
  CHECK(*resolve_pointer(doc, "/") == 4);
  CHECK(*resolve_pointer(doc, "/0") == 5);
  CHECK(resolve_pointer(doc, "/a/b/3") == nullptr);
  CHECK(resolve_pointer(doc, "/a/b/01") == nullptr);  // no leading zeros
  CHECK(resolve_pointer(doc, "/a/b/-") == nullptr);
  CHECK(resolve_pointer(doc, "/a/b/1/x") == nullptr);  // into a number
  CHECK(resolve_pointer(doc, "/a/b/99999999999999999999999") == nullptr);
  CHECK(resolve_pointer(doc, "a") == nullptr);  // bad syntax
  CHECK(pointer_syntax_error("a") == "must be empty or start with '/'");
  CHECK(pointer_syntax_error("/a~") == "'~' at offset 2 must be followed by 0 or 1");
  CHECK(pointer_syntax_error("/a~2") == "'~' at offset 2 must be followed by 0 or 1");
  CHECK(pointer_syntax_error("/a~01").empty());
}

TEST_CASE("generic_mqtt: active rules", "[generic_mqtt]") {
  ActiveRule def;
  CHECK(*evaluate_active(def, true).active);
  CHECK_FALSE(*evaluate_active(def, false).active);
  CHECK(*evaluate_active(def, 2).active);
  CHECK_FALSE(*evaluate_active(def, 0.0).active);
  CHECK(*evaluate_active(def, "ALARM").active);
  CHECK(*evaluate_active(def, "On").active);
  CHECK_FALSE(*evaluate_active(def, "closed").active);
  CHECK_FALSE(*evaluate_active(def, "normal").active);
  auto r = evaluate_active(def, "maybe");
  CHECK_FALSE(r.active);
  CHECK(r.error == "value '\"maybe\"' is neither active nor inactive");
  CHECK(evaluate_active(def, json::array()).error == "value '[]' is neither active nor inactive");
  CHECK_FALSE(evaluate_active(def, nullptr).active);

  ActiveRule set;
  set.active_values = {1, "tilt"};
  CHECK(*evaluate_active(set, 1.0).active);  // numbers compare by value
  CHECK(*evaluate_active(set, "tilt").active);
  CHECK_FALSE(*evaluate_active(set, 0).active);       // no inactive_values: anything else is off
  CHECK_FALSE(*evaluate_active(set, "TILT").active);  // exact match
  set.inactive_values = {0};
  CHECK_FALSE(*evaluate_active(set, 0).active);
  CHECK(evaluate_active(set, 2).error == "value '2' is neither active nor inactive");
  set.invert = true;
  CHECK_FALSE(*evaluate_active(set, 1).active);
  CHECK(*evaluate_active(set, 0).active);
}

TEST_CASE("generic_mqtt: parse a mapped message", "[generic_mqtt]") {
  const Mapping m = pump_room();
  REQUIRE(validate(m).empty());
  const auto r = parse(m, "site/B3/pump-1/state", kPumpPayload);
  INFO((r.errors.empty() ? "" : r.errors[0]));
  REQUIRE(r.errors.empty());
  CHECK(r.matched);
  REQUIRE(r.device_ts_ms);
  CHECK(*r.device_ts_ms == 1764505800250);
  REQUIRE(r.events.size() == 5);

  const Event& p = r.events[0];
  CHECK(p.kind == EventKind::pressure);
  CHECK(p.source == "generic_mqtt");
  CHECK(p.device.id == "pump-1");
  CHECK(p.device.kind == "pump_controller");
  CHECK(p.location.building == "B3");
  CHECK(p.attrs["topic"] == "site/B3/pump-1/state");
  CHECK(p.attrs["device_ts_ms"] == 1764505800250);
  CHECK_FALSE(p.attrs.contains("building"));
  REQUIRE(p.value("pressure"));
  CHECK(p.value("pressure")->value == Approx(420));
  CHECK(p.value("pressure")->unit == "kPa");
  CHECK_FALSE(p.active);

  CHECK(r.events[1].value("water_level")->value == 3.5);
  CHECK(r.events[1].value("water_level")->unit == "m");
  CHECK(r.events[2].kind == EventKind::equipment_alarm);
  REQUIRE(r.events[2].active);
  CHECK_FALSE(*r.events[2].active);
  CHECK(r.events[2].severity == 4);
  CHECK(r.events[3].kind == EventKind::equipment_fault);
  CHECK(*r.events[3].active);
  CHECK(r.events[3].severity == 3);
  CHECK(r.events[4].kind == EventKind::measurement);
  REQUIRE(r.events[4].value("t~c"));  // default name: the pointer's last token, unescaped
  CHECK(r.events[4].value("t~c")->value == 21.5);

  for (const auto& ev : r.events) CHECK_FALSE(anju::edge::encode(ev).empty());

  const auto fire = parse(m, "site/B3/pump-1/state", with(kPumpPayload, "/alarm", "FIRE"));
  REQUIRE(fire.events.size() == 5);
  CHECK(*fire.events[2].active);
  CHECK(fire.events[2].severity == 2);
}

TEST_CASE("generic_mqtt: device id, timestamps, bare values", "[generic_mqtt]") {
  Mapping m;
  m.topic = "vendor/+/telemetry";
  m.device_pointer = "/dev/id";
  m.timestamp_pointer = "/t";
  FieldMap smoke;
  smoke.pointer = "/smoke";
  smoke.kind = EventKind::smoke;
  m.fields = {smoke};
  auto r = parse(m, "vendor/x/telemetry", R"({"dev":{"id":"sd-42"},"t":1764505800123,"smoke":1})");
  REQUIRE(r.errors.empty());
  REQUIRE(r.events.size() == 1);
  CHECK(r.events[0].device.id == "sd-42");
  CHECK(*r.events[0].active);
  CHECK(r.events[0].severity == 1);
  CHECK(*r.device_ts_ms == 1764505800123);

  r = parse(m, "vendor/x/telemetry", R"({"dev":{"id":4711},"smoke":false})");
  REQUIRE(r.events.size() == 1);
  CHECK(r.events[0].device.id == "4711");
  CHECK_FALSE(r.device_ts_ms);

  r = parse(m, "vendor/x/telemetry", R"({"dev":{},"smoke":true})");
  CHECK(r.errors == std::vector<std::string>{"device_pointer '/dev/id': not found"});
  CHECK(r.events.empty());
  r = parse(m, "vendor/x/telemetry", R"({"dev":{"id":""},"smoke":true})");
  CHECK(r.errors == std::vector<std::string>{
                        "device_pointer '/dev/id': must be a non-empty string or an integer"});

  // A bad timestamp is an error; the readings still count.
  r = parse(m, "vendor/x/telemetry", R"({"dev":{"id":"a"},"t":"yesterday","smoke":true})");
  CHECK(r.errors == std::vector<std::string>{"timestamp_pointer '/t': must be a number"});
  CHECK(r.events.size() == 1);
  r = parse(m, "vendor/x/telemetry", R"({"dev":{"id":"a"},"t":-5,"smoke":true})");
  CHECK(r.errors == std::vector<std::string>{"timestamp_pointer '/t': out of range: -5"});
  r = parse(m, "vendor/x/telemetry", R"({"dev":{"id":"a"},"t":1e300,"smoke":true})");
  CHECK(r.errors == std::vector<std::string>{"timestamp_pointer '/t': out of range: 1e+300"});

  // No device pointer, no "device" capture: the topic is the device id. A bare number payload.
  Mapping bare;
  bare.topic = "meters/+/flow";
  FieldMap flow;
  flow.pointer = "";
  flow.name = "flow";
  flow.unit = "m3/h";
  bare.fields = {flow};
  REQUIRE(validate(bare).empty());
  r = parse(bare, "meters/7/flow", "12.5");
  REQUIRE(r.events.size() == 1);
  CHECK(r.events[0].device.id == "meters/7/flow");
  CHECK(r.events[0].value("flow")->value == 12.5);
  CHECK(r.events[0].device.kind == "sensor");
}

TEST_CASE("generic_mqtt: parse error paths name the pointer", "[generic_mqtt]") {
  const Mapping m = pump_room();
  const std::string topic = "site/B3/pump-1/state";

  auto r = parse(m, "site/B3/pump-1/other", kPumpPayload);
  CHECK_FALSE(r.matched);
  CHECK(r.errors.empty());
  CHECK(r.events.empty());

  r = parse(m, topic, "{not json");
  CHECK(r.matched);
  CHECK(r.errors == std::vector<std::string>{"not valid JSON"});
  r = parse(m, topic, std::string(kMaxPayloadBytes + 1, ' '));
  CHECK(r.errors == std::vector<std::string>{"payload too large: 65537 bytes (max 65536)"});

  r = parse(m, topic, with(kPumpPayload, "/main", json::object()));
  CHECK(r.errors == std::vector<std::string>{"pointer '/main/pressure': not found"});
  CHECK(r.events.size() == 4);  // the others still count

  r = parse(m, topic, with(kPumpPayload, "/tank/level", "high"));
  CHECK(r.errors == std::vector<std::string>{"pointer '/tank/level': must be a number, got "
                                             "'\"high\"'"});
  CHECK(r.events.size() == 4);

  r = parse(m, topic, with(kPumpPayload, "/alarm", "SMOKE"));
  CHECK(r.errors == std::vector<std::string>{
                        "pointer '/alarm': value '\"SMOKE\"' is neither active nor inactive"});

  // Absent or null optional fields: nothing to report, no error.
  r = parse(m, topic, with(kPumpPayload, "/tank/level", nullptr));
  CHECK(r.errors.empty());
  CHECK(r.events.size() == 4);

  // Overflow after scaling.
  r = parse(m, topic, with(kPumpPayload, "/main/pressure", 1e308));
  CHECK(r.errors == std::vector<std::string>{
                        "pointer '/main/pressure': value out of range after scale/offset"});

  // An invalid mapping gives errors, never undefined behaviour.
  Mapping bad = m;
  bad.topic = "site/#/x";
  r = parse(bad, topic, kPumpPayload);
  CHECK(r.errors == std::vector<std::string>{
                        "mapping 'pump_room': topic: level 2 '#': '#' must be the last level"});
  bad = m;
  bad.fields[0].pointer = "main";
  r = parse(bad, topic, kPumpPayload);
  CHECK(r.errors == std::vector<std::string>{"pointer 'main': must be empty or start with '/'"});
}

TEST_CASE("generic_mqtt: mapping validation", "[generic_mqtt]") {
  CHECK(validate(pump_room()).empty());
  Mapping m;
  m.topic = "a/b#";
  m.device_pointer = "dev";
  m.timestamp_pointer = "/t~";
  m.device_kind = "";
  CHECK(validate(m) ==
        std::vector<std::string>{
            "topic: level 2 'b#': '+', '#', '{' and '}' must stand for a whole level",
            "device_pointer: must be empty or start with '/'",
            "timestamp_pointer: '~' at offset 2 must be followed by 0 or 1",
            "device_kind: must not be empty", "fields: at least one field is needed"});

  m = pump_room();
  m.fields[0].pointer = "/x~3";
  m.fields[0].scale = 0;
  m.fields[1].offset = std::numeric_limits<double>::quiet_NaN();
  m.fields[1].active.invert = true;
  m.fields[2].unit = "V";
  m.fields[3].active.inactive_values = {false};
  CHECK(validate(m) ==
        std::vector<std::string>{"fields[0].pointer: '~' at offset 2 must be followed by 0 or 1",
                                 "fields[0].scale: must be finite and not 0",
                                 "fields[1].offset: must be finite",
                                 "fields[1].active: only for binary kinds, not water_level",
                                 "fields[2].unit: a binary kind (equipment_alarm) has no unit",
                                 "fields[3].active: inactive_values need active_values"});
}

TEST_CASE("generic_mqtt: UTF-8 check and severities", "[generic_mqtt]") {
  CHECK(is_valid_utf8("site/楼3/水表"));
  CHECK(is_valid_utf8(""));
  CHECK_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
  CHECK_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  CHECK_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
  CHECK_FALSE(is_valid_utf8("\xe6\xb0"));          // truncated
  CHECK(default_severity(EventKind::gas, true) == 1);
  CHECK(default_severity(EventKind::gas, false) == 4);
  CHECK(default_severity(EventKind::manhole_open, true) == 2);
  CHECK(default_severity(EventKind::battery_low, true) == 3);
  CHECK(default_severity(EventKind::temperature, std::nullopt) == 4);
}

// Errors are logged: a personal identifier a vendor put where a reading or a state was expected is
// never repeated in them (docs/DATA.md, "Logs"; tests/integration/test_privacy.cpp).
TEST_CASE(
    "generic mqtt: values in errors are described, not repeated, when they could identify "
    "someone",
    "[generic_mqtt][privacy]") {
  // Shown: short printable ASCII with at most 4 digits.
  CHECK(describe_value("SMOKE") == "'\"SMOKE\"'");
  CHECK(describe_value(140) == "'140'");
  CHECK(describe_value(-0.5) == "'-0.5'");
  CHECK(describe_value(json::array()) == "'[]'");
  CHECK(describe_value(nullptr) == "'null'");
  CHECK(describe_number(1e300) == "1e+300");
  CHECK(describe_text("maybe") == "'maybe'");
  // Described: card, phone, ID-card and plate numbers, resident ids, anything long or not ASCII.
  CHECK(describe_value("13912345678") == "<string of 11 bytes>");
  CHECK(describe_value(13912345678) == "<number of 11 digits>");
  CHECK(describe_value(62417) == "<number of 5 digits>");
  CHECK(describe_value("11010519491231002X") == "<string of 18 bytes>");
  CHECK(describe_value("\xE4\xBA\xAC"
                       "A12345") == "<string of 9 bytes>");
  CHECK(describe_value("\xE5\xBC\xA0") == "<string of 3 bytes>");  // a name without digits
  CHECK(describe_value("RID-7304-5521") == "<string of 13 bytes>");
  CHECK(describe_value(json{{"phone", "13912345678"}, {"x", 1}}) == "<object of 2 members>");
  CHECK(describe_value(json::array({"13912345678", 1, 2})) == "<array of 3>");
  CHECK(describe_value(std::string(30, 'z')) == "<string of 30 bytes>");
  CHECK(describe_number(13912345678.0) == "<number of 11 digits>");
  CHECK(describe_text("13912345678") == "<11 bytes>");
  CHECK(describe_text(std::string("on\nline", 7)) == "<7 bytes>");

  Mapping m;
  m.name = "pumps";
  m.topic = "vendor/pumps/{device}/telemetry";
  m.timestamp_pointer = "/ts";
  m.timestamp_unit = TimestampUnit::seconds;
  FieldMap alarm;
  alarm.pointer = "/alarm";
  alarm.kind = EventKind::equipment_alarm;
  alarm.active.active_values = {"ALARM"};
  alarm.active.inactive_values = {"OK"};
  FieldMap pressure;
  pressure.pointer = "/pressure_kpa";
  pressure.kind = EventKind::pressure;
  m.fields = {alarm, pressure};
  const auto r = parse(m, "vendor/pumps/p1/telemetry",
                       R"({"alarm":"13912345678","pressure_kpa":"11010519491231002X",)"
                       R"("ts":13912345678,"phone":"13912345678"})");
  CHECK(r.errors == std::vector<std::string>{
                        "timestamp_pointer '/ts': out of range: <number of 11 digits>",
                        "pointer '/alarm': value <string of 11 bytes> is neither active nor "
                        "inactive",
                        "pointer '/pressure_kpa': must be a number, got <string of 18 bytes>"});
  CHECK(r.events.empty());
}
