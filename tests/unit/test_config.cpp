// Config loader: the demo and example files, error positions and key paths, every rule of the
// schema that is easy to get wrong.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include <yaml-cpp/yaml.h>

#include "anju/firmware/config.hpp"
#include "anju/firmware/daemon.hpp"

using anju::firmware::Config;
using anju::firmware::ConfigError;
using anju::firmware::ConfigResult;
using anju::firmware::parse_config;

namespace {

// A minimal valid config; tests append sections to it or replace it.
const std::string kBase = R"(site:
  id: t1
  grid_code: "11010500100200300401"
local_broker:
  uri: tcp://127.0.0.1:1883
)";

ConfigResult parse(const std::string& text) {
  return parse_config(text, "test.yaml");
}

std::string all_errors(const ConfigResult& r) {
  std::string s;
  for (const auto& e : r.errors) s += e.to_string() + "\n";
  return s;
}

const ConfigError* find_error(const ConfigResult& r, const std::string& key) {
  for (const auto& e : r.errors)
    if (e.key == key) return &e;
  return nullptr;
}

// The repository root, from this file's path (tests/unit/test_config.cpp).
std::string source_dir() {
  std::string f = __FILE__;
  const std::string tail = "tests/unit/test_config.cpp";
  REQUIRE(f.size() >= tail.size());
  REQUIRE(f.compare(f.size() - tail.size(), tail.size(), tail) == 0);
  return f.substr(0, f.size() - tail.size());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("config: the embedded demo config parses and has the demo values", "[config]") {
  auto r = parse_config(anju::firmware::demo_config_text(), "<embedded demo>");
  INFO(all_errors(r));
  REQUIRE(r.errors.empty());
  REQUIRE(r.config);
  const Config& c = *r.config;
  CHECK(c.source_file == "<embedded demo>");
  CHECK(c.site.id == "demo-compound");
  CHECK(c.site.name == "Anju demo compound");
  CHECK(c.site.grid_code == "11010500100200300401");
  CHECK(c.site.division_code == "110105001002");
  CHECK(c.data_dir == "/var/lib/anju");
  CHECK(c.local_broker.uri == "tcp://127.0.0.1:1883");
  CHECK(c.local_broker.client_id == "anjud-demo-compound-local");
  CHECK(c.uplink.enabled);
  CHECK(c.uplink.broker.uri == "tcp://127.0.0.1:1884");
  CHECK(c.uplink.broker.mqtt_version == 5);
  CHECK(c.uplink.broker.client_id == "anjud-demo-compound");
  CHECK(c.uplink.event_kinds == std::vector<std::string>{"smoke", "gas", "water_leak", "contact",
                                                         "device_offline", "device_online"});
  CHECK(c.summary.interval_s == 60);
  CHECK(c.rules.heartbeat_timeout_s == 120);
  REQUIRE(c.rules.thresholds.size() == 2);
  const auto& t = c.rules.thresholds[0];
  CHECK(t.name == "temperature_high");
  CHECK(t.kind == "temperature");
  CHECK(t.above == 45.0);
  CHECK_FALSE(t.below);
  CHECK(t.hysteresis == 2.0);
  CHECK(t.hold_s == 10);
  CHECK(t.severity == 2);
  const auto& h = c.rules.thresholds[1];
  CHECK(h.name == "humidity_high");
  CHECK(h.kind == "humidity");
  CHECK(h.above == 90.0);
  CHECK(h.hysteresis == 5.0);
  CHECK(h.hold_s == 30);
  CHECK(h.severity == 4);
  CHECK(c.zigbee2mqtt.base_topic == "zigbee2mqtt");
  REQUIRE(c.zigbee2mqtt.devices.size() == 5);
  const auto& gas = c.zigbee2mqtt.devices.at("gas_3_2_1201_kitchen");
  CHECK(gas.building == "3");
  CHECK(gas.unit == "2");
  CHECK(gas.room == "1201 kitchen");
  const auto& leak = c.zigbee2mqtt.devices.at("leak_pump_room");
  CHECK(leak.building == "B1");
  CHECK(leak.unit.empty());
  CHECK(leak.room == "pump room");
  CHECK(c.zigbee2mqtt.devices.at("climate_3_2_1201").room == "1201");
  CHECK(c.zigbee2mqtt.devices.at("smoke_3_2_hall").room == "hall");
  CHECK(c.zigbee2mqtt.devices.at("door_3_2_entrance").room == "entrance");
  for (const auto& [name, d] : c.zigbee2mqtt.devices) {
    INFO(name);
    CHECK(d.gb28181.size() == 20);
    CHECK(d.gb28181.rfind("11010500", 0) == 0);
  }
}

TEST_CASE("config: the demo file on disk is the embedded text", "[config]") {
  CHECK(read_file(source_dir() + "firmware/config/anju.demo.yaml") ==
        anju::firmware::demo_config_text());
}

TEST_CASE("config: the example file parses with no errors", "[config]") {
  const std::string path = source_dir() + "firmware/config/anju.example.yaml";
  auto r = anju::firmware::load_config(path);
  INFO(all_errors(r));
  REQUIRE(r.errors.empty());
  REQUIRE(r.config);
  CHECK(r.config->source_file == path);
  CHECK(r.config->uplink.broker.tls.enabled);
  CHECK(r.config->uplink.outbox.event_bytes == 64LL * 1024 * 1024);
  CHECK(r.config->journal.max_bytes == 512LL * 1024 * 1024);
  CHECK(r.config->zigbee2mqtt.devices.at("0x00158d0001a2b3c4").heartbeat_timeout_s == 600);
}

namespace {

// Looks a schema path up in a YAML tree: "a.b" looks up keys, "x[]" any list item that has the
// rest, "<name>" the first map entry. (Recursive, by value: assigning yaml-cpp nodes would modify
// the tree.)
bool has_path(const YAML::Node& n, const std::string& path) {
  if (path.empty()) return n.IsDefined();
  if (!n.IsMap()) return false;
  std::size_t dot = path.find('.');
  std::string part = path.substr(0, dot);
  std::string rest = dot == std::string::npos ? "" : path.substr(dot + 1);
  bool first_item = part.size() > 2 && part.compare(part.size() - 2, 2, "[]") == 0;
  if (first_item) part.resize(part.size() - 2);
  if (part == "<name>") return n.size() > 0 && has_path(n.begin()->second, rest);
  const YAML::Node child = n[part];
  if (!child.IsDefined()) return false;
  if (!first_item) return has_path(child, rest);
  if (!child.IsSequence()) return false;
  for (std::size_t i = 0; i < child.size(); ++i)
    if (has_path(child[i], rest)) return true;
  return false;
}

}  // namespace

TEST_CASE("config: the example file shows every key of the schema", "[config]") {
  const YAML::Node root = YAML::Load(read_file(source_dir() + "firmware/config/anju.example.yaml"));
  auto schema = anju::firmware::config_schema();
  REQUIRE(schema.size() > 50);
  for (const auto& k : schema) {
    INFO(k.path);
    CHECK(has_path(root, k.path));
    CHECK_FALSE(k.description.empty());
  }
}

TEST_CASE("config: schema reference carries types, constraints and defaults", "[config]") {
  auto schema = anju::firmware::config_schema();
  auto find = [&](const std::string& path) -> const anju::firmware::ConfigKeyDoc* {
    for (const auto& k : schema)
      if (k.path == path) return &k;
    return nullptr;
  };
  auto* window = find("uplink.window");
  REQUIRE(window);
  CHECK(window->type == "integer");
  CHECK(window->constraint == "1..1024");
  CHECK(window->default_value == "64");
  auto* id = find("site.id");
  REQUIRE(id);
  CHECK(id->required);
  auto* bytes = find("journal.max_bytes");
  REQUIRE(bytes);
  CHECK(bytes->type == "size");
  CHECK(bytes->default_value == "512MiB");
  CHECK(find("rules.thresholds[].above"));
  CHECK(find("zigbee2mqtt.devices.<name>.gb28181"));
  CHECK(find("uplink.tls.ca_file"));
  CHECK(find("local_broker.tls.verify_hostname"));
}

TEST_CASE("config: an unknown key names its line, column, path and the expected keys", "[config]") {
  auto r = parse(kBase + "uplink:\n  uri: tcp://10.0.0.1:1883\n  windw: 8\n");
  REQUIRE(r.errors.size() == 1);
  CHECK_FALSE(r.config);
  const auto& e = r.errors[0];
  CHECK(e.file == "test.yaml");
  CHECK(e.line == 8);
  CHECK(e.column == 3);
  CHECK(e.key == "uplink.windw");
  CHECK_THAT(e.message, Catch::Contains("unknown key 'windw' (expected one of: window, "
                                        "backoff_min_ms, "));
  CHECK_THAT(e.message, Catch::Contains("did you mean 'window'?"));
  CHECK(e.to_string().rfind("test.yaml:8:3: uplink.windw: unknown key 'windw'", 0) == 0);
}

TEST_CASE("config: an unknown top-level section is reported", "[config]") {
  auto r = parse(kBase + "uplnk:\n  enabled: false\n");
  auto* e = find_error(r, "uplnk");
  REQUIRE(e);
  CHECK(e->line == 6);
  CHECK(e->column == 1);
  CHECK_THAT(e->message, Catch::Contains("did you mean 'uplink'?"));
}

TEST_CASE("config: a wrong type says what was expected", "[config]") {
  auto r = parse(kBase + "uplink:\n  uri: tcp://10.0.0.1:1883\n  window: abc\n");
  REQUIRE(r.errors.size() == 1);
  const auto& e = r.errors[0];
  CHECK(e.key == "uplink.window");
  CHECK(e.message == "expected an integer, got 'abc'");
  CHECK(e.line == 8);
  CHECK(e.column == 11);  // the value, not the key

  auto lst = parse(kBase + "uplink:\n  uri: tcp://10.0.0.1:1883\n  window: [1, 2]\n");
  REQUIRE(lst.errors.size() == 1);
  CHECK(lst.errors[0].message == "expected an integer, got a list");

  auto b = parse(kBase + "uplink:\n  enabled: false\nzigbee2mqtt:\n  enabled: maybe\n");
  REQUIRE(b.errors.size() == 1);
  CHECK(b.errors[0].key == "zigbee2mqtt.enabled");
  CHECK(b.errors[0].message == "expected true or false, got 'maybe'");

  auto sign = parse(kBase +
                    "uplink:\n  enabled: false\n  window: +-5\n  backoff_min_ms: 3000000000\n"
                    "  backoff_max_ms: 1.5\n");
  INFO(all_errors(sign));
  REQUIRE(sign.errors.size() == 3);
  CHECK(find_error(sign, "uplink.window")->message == "expected an integer, got '+-5'");
  CHECK(find_error(sign, "uplink.backoff_min_ms")->message ==
        "must be at most 2147483647, got 3000000000");
  CHECK(find_error(sign, "uplink.backoff_max_ms")->message == "expected an integer, got '1.5'");

  auto s = parse(kBase + "site2: 1\n");
  CHECK(find_error(s, "site2"));

  auto sec = parse(kBase + "uplink:\n  enabled: false\njournal: 5\n");
  REQUIRE(sec.errors.size() == 1);
  CHECK(sec.errors[0].key == "journal");
  CHECK(sec.errors[0].message == "expected a map of keys, got '5'");

  auto empty = parse(kBase + "log_level:\nuplink:\n  enabled: false\n");
  REQUIRE(empty.errors.size() == 1);
  CHECK(empty.errors[0].key == "log_level");
  CHECK(empty.errors[0].line == 6);  // reported at the key: an empty value has no position
  CHECK_THAT(empty.errors[0].message, Catch::Contains("got an empty value"));
}

TEST_CASE("config: a YAML syntax error gives its line and column", "[config]") {
  auto r = parse(kBase + "uplink:\n  window: [1, 2\n  enabled: true\n");
  REQUIRE(r.errors.size() == 1);
  CHECK_FALSE(r.config);
  const auto& e = r.errors[0];
  CHECK(e.file == "test.yaml");
  CHECK(e.line >= 7);
  CHECK(e.column >= 1);
  CHECK(e.key.empty());
  CHECK_THAT(e.message, Catch::StartsWith("YAML syntax error: "));
  CHECK_THAT(e.to_string(), Catch::StartsWith("test.yaml:" + std::to_string(e.line) + ":"));

  auto bad_map = parse("site:\n  id: a: b\n");
  REQUIRE(bad_map.errors.size() == 1);
  CHECK(bad_map.errors[0].line == 2);
  CHECK(bad_map.errors[0].column == 8);  // the second ':
}

TEST_CASE("config: every error is reported, not only the first", "[config]") {
  const std::string text = R"(site:
  id: "bad id!"
  grid_code: "123"
local_broker:
  uri: http://x
  keepalive_s: 1
uplink:
  enabled: false
  window: 0
  event_kinds: [smoke, fire]
journal:
  synchronous: sometimes
log_level: verbose
)";
  auto r = parse(text);
  INFO(all_errors(r));
  CHECK_FALSE(r.config);
  CHECK(r.errors.size() == 8);
  CHECK(find_error(r, "site.id"));
  CHECK(find_error(r, "site.grid_code"));
  CHECK(find_error(r, "local_broker.uri"));
  CHECK(find_error(r, "local_broker.keepalive_s"));
  CHECK(find_error(r, "uplink.window"));
  CHECK(find_error(r, "uplink.event_kinds[1]"));
  CHECK(find_error(r, "journal.synchronous"));
  CHECK(find_error(r, "log_level"));
  CHECK(find_error(r, "local_broker.uri")->line == 5);
  CHECK(find_error(r, "uplink.event_kinds[1]")->line == 10);
  CHECK(find_error(r, "uplink.event_kinds[1]")->column == 24);
  CHECK_THAT(find_error(r, "uplink.event_kinds[1]")->message,
             Catch::Contains("unknown event kind 'fire' (known: smoke, gas, water_leak"));
  CHECK(find_error(r, "uplink.window")->message == "must be between 1 and 1024, got 0");
  CHECK(find_error(r, "local_broker.keepalive_s")->message == "must be between 5 and 3600, got 1");
  CHECK_THAT(find_error(r, "log_level")->message,
             Catch::Contains("must be one of trace, debug, info, warn, error"));
}

TEST_CASE("config: site.id and site.grid_code are required", "[config]") {
  auto r = parse(
      "site:\n  grid_code: \"11010500100200300401\"\nlocal_broker:\n"
      "  uri: tcp://127.0.0.1:1883\nuplink:\n  enabled: false\n");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].key == "site.id");
  CHECK(r.errors[0].message == "missing required key");
  CHECK(r.errors[0].line == 1);  // at the section

  auto none = parse("log_level: info\n");
  INFO(all_errors(none));
  CHECK(find_error(none, "site.id"));
  CHECK(find_error(none, "site.grid_code"));
  CHECK(find_error(none, "local_broker.uri"));
  CHECK(find_error(none, "uplink.uri"));  // uplink is enabled by default
  CHECK(none.errors.size() == 4);

  auto empty = parse("");
  CHECK(find_error(empty, "site.id"));
  CHECK(find_error(empty, "site.id")->line == 0);
  CHECK(find_error(empty, "site.id")->to_string() == "test.yaml: site.id: missing required key");

  auto bad = parse(kBase + "site: [1]\n");
  CHECK_FALSE(bad.errors.empty());
}

TEST_CASE("config: site and device codes are checked", "[config]") {
  auto grid = parse(
      "site:\n  id: t\n  grid_code: 1101050010020030040\nlocal_broker:\n"
      "  uri: tcp://127.0.0.1:1883\nuplink:\n  enabled: false\n");
  REQUIRE(grid.errors.size() == 1);
  CHECK(grid.errors[0].key == "site.grid_code");
  CHECK(grid.errors[0].message ==
        "must be exactly 20 digits, got '1101050010020030040' (19 characters)");
  CHECK(grid.errors[0].line == 3);
  CHECK(grid.errors[0].column == 14);

  auto letters = parse(
      "site:\n  id: t\n  grid_code: 1101050010020030040x\n  division_code: 12\n"
      "local_broker:\n  uri: tcp://127.0.0.1:1883\nuplink:\n  enabled: false\n");
  CHECK(letters.errors.size() == 2);
  CHECK(find_error(letters, "site.division_code"));

  auto unquoted = parse(
      "site:\n  id: t\n  grid_code: 11010500100200300401\nlocal_broker:\n"
      "  uri: tcp://127.0.0.1:1883\nuplink:\n  enabled: false\n");
  INFO(all_errors(unquoted));
  REQUIRE(unquoted.config);
  CHECK(unquoted.config->site.grid_code == "11010500100200300401");

  auto id = parse("site:\n  id: " + std::string(65, 'a') +
                  "\n  grid_code: \"11010500100200300401\"\nlocal_broker:\n"
                  "  uri: tcp://127.0.0.1:1883\nuplink:\n  enabled: false\n");
  REQUIRE(id.errors.size() == 1);
  CHECK(id.errors[0].key == "site.id");

  auto dev = parse(kBase + R"(uplink:
  enabled: false
zigbee2mqtt:
  devices:
    "0x00158d0001a2b3c4":
      building: 3
      grid_code: "1234"
      gb28181: "110105000013400000011"
    "lamp+1":
      room: x
)");
  INFO(all_errors(dev));
  auto* g = find_error(dev, "zigbee2mqtt.devices.0x00158d0001a2b3c4.grid_code");
  REQUIRE(g);
  CHECK(g->line == 12);
  CHECK(find_error(dev, "zigbee2mqtt.devices.0x00158d0001a2b3c4.gb28181"));
  CHECK(find_error(dev, "zigbee2mqtt.devices.lamp+1"));
  CHECK(dev.errors.size() == 3);
}

TEST_CASE("config: threshold rules are checked with their list index", "[config]") {
  const std::string text = kBase + R"(uplink:
  enabled: false
rules:
  thresholds:
    - name: hot
      kind: temperature
      above: 40
    - name: cold
      kind: temprature
      severity: 7
    - name: hot
      kind: humidity
      above: "high"
    - kind: humidity
      below: 20
      above: 10
      hold_s: -1
      devices: [a, ""]
    - just a string
)";
  auto r = parse(text);
  INFO(all_errors(r));
  CHECK_FALSE(r.config);
  auto* kind = find_error(r, "rules.thresholds[1].kind");
  REQUIRE(kind);
  CHECK(kind->line == 14);
  CHECK(kind->column == 13);
  CHECK(find_error(r, "rules.thresholds[1].severity"));
  auto* neither = find_error(r, "rules.thresholds[1]");
  REQUIRE(neither);
  CHECK(neither->message == "needs 'above' or 'below' (or both), or 'rise', or 'nonzero_for_s'");
  auto* above = find_error(r, "rules.thresholds[2].above");
  REQUIRE(above);
  CHECK(above->message == "expected a number, got 'high'");
  auto* dup = find_error(r, "rules.thresholds[2].name");
  REQUIRE(dup);
  CHECK_THAT(dup->message, Catch::Contains("duplicate rule name 'hot'"));
  CHECK(dup->line == 16);
  auto* name = find_error(r, "rules.thresholds[3].name");
  REQUIRE(name);
  CHECK(name->message == "missing required key");
  auto* order = find_error(r, "rules.thresholds[3].below");
  REQUIRE(order);
  CHECK(order->message == "must be less than above (10), got 20");
  CHECK(find_error(r, "rules.thresholds[3].hold_s"));
  CHECK(find_error(r, "rules.thresholds[3].devices[1]"));
  auto* item = find_error(r, "rules.thresholds[4]");
  REQUIRE(item);
  CHECK(item->message == "expected a map, got 'just a string'");
  CHECK(r.errors.size() == 10);

  auto not_list = parse(kBase + "uplink:\n  enabled: false\nrules:\n  thresholds:\n    hot: 1\n");
  REQUIRE(not_list.errors.size() == 1);
  CHECK(not_list.errors[0].key == "rules.thresholds");
  CHECK(not_list.errors[0].message == "expected a list of maps, got a map");
}

TEST_CASE("config: sizes take integers or KiB/MiB/GiB suffixes", "[config]") {
  auto r = parse(kBase + R"(uplink:
  enabled: false
  outbox:
    status_bytes: 512KiB
    summary_bytes: 1048576
    event_bytes: 1GiB
journal:
  max_bytes: 64 mib
)");
  INFO(all_errors(r));
  REQUIRE(r.config);
  CHECK(r.config->uplink.outbox.status_bytes == 512 * 1024);
  CHECK(r.config->uplink.outbox.summary_bytes == 1024 * 1024);
  CHECK(r.config->uplink.outbox.event_bytes == 1024LL * 1024 * 1024);
  CHECK(r.config->journal.max_bytes == 64LL * 1024 * 1024);

  auto bad = parse(kBase + R"(uplink:
  enabled: false
  outbox:
    status_bytes: 64MB
    summary_bytes: 32KiB
    event_bytes: 99999999999999GiB
journal:
  max_bytes: 1.5GiB
)");
  INFO(all_errors(bad));
  REQUIRE(bad.errors.size() == 4);
  CHECK_THAT(find_error(bad, "uplink.outbox.status_bytes")->message,
             Catch::StartsWith("expected a size in bytes") && Catch::Contains("'64MB'"));
  CHECK(find_error(bad, "uplink.outbox.summary_bytes")->message ==
        "must be at least 64KiB, got 32KiB (32768 bytes)");
  CHECK(find_error(bad, "uplink.outbox.event_bytes"));
  CHECK(find_error(bad, "journal.max_bytes"));
}

TEST_CASE("config: absent keys take the documented defaults", "[config]") {
  auto r = parse(kBase + "uplink:\n  enabled: false\n");
  INFO(all_errors(r));
  REQUIRE(r.config);
  const Config& c = *r.config;
  const Config d;
  CHECK(c.data_dir == "/var/lib/anju");
  CHECK(c.log_level == "info");
  CHECK(c.local_broker.mqtt_version == 5);
  CHECK(c.local_broker.keepalive_s == 30);
  CHECK_FALSE(c.local_broker.tls.enabled);
  CHECK(c.local_broker.tls.verify_hostname);
  CHECK_FALSE(c.uplink.enabled);
  CHECK(c.uplink.window == 64);
  CHECK(c.uplink.backoff_min_ms == 500);
  CHECK(c.uplink.backoff_max_ms == 60000);
  CHECK(c.uplink.event_kinds.empty());
  CHECK(c.uplink.outbox.status_bytes == d.uplink.outbox.status_bytes);
  CHECK(c.uplink.outbox.event_bytes == 64LL * 1024 * 1024);
  CHECK(c.journal.synchronous == "full");
  CHECK(c.journal.commit_window_ms == 0);
  CHECK(c.journal.max_batch == 512);
  CHECK(c.journal.retention_days == 90);
  CHECK(c.journal.alert_retention_days == 365);
  CHECK(c.journal.audit_retention_days == 365);
  CHECK(c.journal.max_bytes == 512LL * 1024 * 1024);
  CHECK(c.summary.interval_s == 300);
  CHECK(c.rules.battery_low_percent == 10);
  CHECK(c.rules.heartbeat_timeout_s == 3600);
  CHECK(c.rules.thresholds.empty());
  CHECK(c.zigbee2mqtt.enabled);
  CHECK(c.zigbee2mqtt.base_topic == "zigbee2mqtt");
  CHECK_FALSE(c.zigbee2mqtt.report_unchanged);
  CHECK(c.zigbee2mqtt.devices.empty());

  auto rule = parse(kBase +
                    "uplink:\n  enabled: false\nrules:\n  thresholds:\n"
                    "    - {name: r, kind: humidity, below: 20}\n");
  INFO(all_errors(rule));
  REQUIRE(rule.config);
  const auto& t = rule.config->rules.thresholds.at(0);
  CHECK(t.hysteresis == 1.0);
  CHECK(t.hold_s == 0);
  CHECK(t.severity == 3);
  CHECK_FALSE(t.above);
  CHECK(t.below == 20.0);
  CHECK(t.devices.empty());

  // Sections with every key commented out, and empty lists, are fine.
  auto empty = parse(kBase +
                     "uplink:\n  enabled: false\njournal:\nrules:\n  thresholds:\n"
                     "zigbee2mqtt:\n  devices:\n    lamp:\n");
  INFO(all_errors(empty));
  REQUIRE(empty.config);
  CHECK(empty.config->journal.max_batch == 512);
  CHECK(empty.config->zigbee2mqtt.devices.count("lamp") == 1);
  CHECK_FALSE(empty.config->zigbee2mqtt.devices.at("lamp").heartbeat_timeout_s);
}

TEST_CASE("config: client ids are derived from the site id unless given", "[config]") {
  auto r = parse(kBase + "uplink:\n  uri: tcp://10.0.0.1:1883\n");
  INFO(all_errors(r));
  REQUIRE(r.config);
  CHECK(r.config->local_broker.client_id == "anjud-t1-local");
  CHECK(r.config->uplink.broker.client_id == "anjud-t1");

  auto given = parse(R"(site:
  id: t1
  grid_code: "11010500100200300401"
local_broker:
  uri: tcp://127.0.0.1:1883
  client_id: gw-local
uplink:
  uri: tcp://10.0.0.1:1883
  client_id: gw-up
)");
  INFO(all_errors(given));
  REQUIRE(given.config);
  CHECK(given.config->local_broker.client_id == "gw-local");
  CHECK(given.config->uplink.broker.client_id == "gw-up");
}

TEST_CASE("config: broker uris", "[config]") {
  auto uri = [](const std::string& u) {
    return parse("site:\n  id: t\n  grid_code: \"11010500100200300401\"\nlocal_broker:\n  uri: \"" +
                 u + "\"\nuplink:\n  enabled: false\n");
  };
  for (const char* good : {"tcp://127.0.0.1:1883", "mqtt://broker.lan:1883", "ws://h:80/mqtt",
                           "tcp://[::1]:1883", "tcp://h:65535"}) {
    INFO(good);
    CHECK(uri(good).errors.empty());
  }
  for (const char* bad :
       {"http://h:1883", "tcp://h", "tcp://h:0", "tcp://h:65536", "tcp://:1883", "tcp://h:18x3",
        "tcp://h:1883/path", "tcp://user:pw@h:1883", "", "tcp://::1:1883", "ssl://h:8883"}) {
    INFO(bad);
    auto r = uri(bad);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].key == "local_broker.uri");
  }
  CHECK_THAT(uri("tcp://h").errors.at(0).message, Catch::Contains("host:port"));
  CHECK_THAT(uri("ssl://h:8883").errors.at(0).message, Catch::Contains("tls.enabled"));

  auto missing = parse(
      "site:\n  id: t\n  grid_code: \"11010500100200300401\"\n"
      "uplink:\n  enabled: false\n");
  REQUIRE(missing.errors.size() == 1);
  CHECK(missing.errors[0].key == "local_broker.uri");
  CHECK(missing.errors[0].message == "missing required key");

  auto up = parse(kBase + "uplink:\n  enabled: true\n");
  REQUIRE(up.errors.size() == 1);
  CHECK(up.errors[0].key == "uplink.uri");
  CHECK(up.errors[0].message == "required when uplink.enabled is true");
  CHECK(up.errors[0].line == 6);

  auto version = parse(kBase + "uplink:\n  uri: tcp://h:1883\n  mqtt_version: 4\n");
  REQUIRE(version.errors.size() == 1);
  CHECK(version.errors[0].message == "must be 3 or 5, got 4");
}

TEST_CASE("config: TLS and credential files go in pairs", "[config]") {
  auto r = parse(kBase + R"(uplink:
  uri: ssl://cloud.example.com:8883
  username_file: /etc/anju/user
  tls:
    enabled: true
    cert_file: /etc/anju/gw.crt
)");
  INFO(all_errors(r));
  CHECK(r.errors.size() == 3);
  auto* ca = find_error(r, "uplink.tls.ca_file");
  REQUIRE(ca);
  CHECK(ca->message == "required when tls.enabled is true");
  CHECK(ca->line == 10);  // at tls.enabled
  auto* key = find_error(r, "uplink.tls.key_file");
  REQUIRE(key);
  CHECK(key->line == 11);  // at cert_file
  CHECK_THAT(key->message, Catch::Contains("cert_file and key_file must be given together"));
  auto* pw = find_error(r, "uplink.password_file");
  REQUIRE(pw);
  CHECK(pw->line == 8);

  auto plain = parse(kBase + R"(uplink:
  uri: tcp://cloud.example.com:1883
  tls:
    enabled: true
    ca_file: /etc/anju/ca.pem
)");
  REQUIRE(plain.errors.size() == 1);
  CHECK(plain.errors[0].key == "uplink.tls.enabled");
  CHECK_THAT(plain.errors[0].message, Catch::Contains("not a TLS one"));

  auto ok = parse(kBase + R"(uplink:
  uri: mqtts://cloud.example.com:8883
  username_file: /etc/anju/user
  password_file: /etc/anju/password
  tls: {enabled: true, ca_file: /etc/anju/ca.pem, verify_hostname: false}
)");
  INFO(all_errors(ok));
  REQUIRE(ok.config);
  CHECK(ok.config->uplink.broker.tls.ca_file == "/etc/anju/ca.pem");
  CHECK_FALSE(ok.config->uplink.broker.tls.verify_hostname);
  CHECK(ok.config->uplink.broker.password_file == "/etc/anju/password");
}

TEST_CASE("config: rules across keys", "[config]") {
  auto r = parse(kBase + R"(uplink:
  enabled: false
  backoff_min_ms: 1000
  backoff_max_ms: 999
journal:
  retention_days: 30
  alert_retention_days: 7
  audit_retention_days: 29
  commit_window_ms: 1001
  max_batch: 100001
summary:
  interval_s: 5
rules:
  battery_low_percent: 0
  heartbeat_timeout_s: 604801
zigbee2mqtt:
  base_topic: "zigbee2mqtt/"
)");
  INFO(all_errors(r));
  CHECK(r.errors.size() == 9);
  CHECK(find_error(r, "uplink.backoff_max_ms")->message ==
        "must be at least backoff_min_ms (1000), got 999");
  CHECK(find_error(r, "journal.alert_retention_days")->message ==
        "must be at least retention_days (30), got 7");
  CHECK(find_error(r, "journal.audit_retention_days")->message ==
        "must be at least retention_days (30), got 29");
  CHECK(find_error(r, "journal.commit_window_ms"));
  CHECK(find_error(r, "journal.max_batch"));
  CHECK(find_error(r, "summary.interval_s"));
  CHECK(find_error(r, "rules.battery_low_percent"));
  CHECK(find_error(r, "rules.heartbeat_timeout_s"));
  CHECK(find_error(r, "zigbee2mqtt.base_topic"));

  // A bad value is reported once, not again by the cross-key rule.
  auto once = parse(kBase +
                    "uplink:\n  enabled: false\n  backoff_min_ms: 5\n"
                    "  backoff_max_ms: 1\n");
  INFO(all_errors(once));
  CHECK(once.errors.size() == 2);
}

TEST_CASE("config: duplicate keys, bad documents", "[config]") {
  auto dup = parse(kBase + "log_level: info\nlog_level: debug\nuplink:\n  enabled: false\n");
  REQUIRE(dup.errors.size() == 1);
  CHECK(dup.errors[0].key == "log_level");
  CHECK(dup.errors[0].line == 7);
  CHECK_THAT(dup.errors[0].message, Catch::Contains("duplicate key (first given on line 6)"));

  auto two = parse(kBase + "---\nlog_level: info\n");
  REQUIRE(two.errors.size() == 1);
  CHECK_THAT(two.errors[0].message, Catch::Contains("only one YAML document"));

  auto list = parse("- a\n- b\n");
  REQUIRE(list.errors.size() == 1);
  CHECK_THAT(list.errors[0].message, Catch::Contains("must be a map of sections"));

  auto key = parse(kBase + "uplink:\n  enabled: false\n[a, b]: 1\n");
  REQUIRE(key.errors.size() == 1);
  CHECK_THAT(key.errors[0].message, Catch::Contains("keys must be plain strings"));

  auto deep = parse(std::string(100000, '['));
  REQUIRE(deep.errors.size() == 1);
  CHECK_FALSE(deep.config);

  // yaml-cpp 0.7's LoadAll loops forever on these (jbeder/yaml-cpp#1040).
  auto comma = parse(",");
  REQUIRE(comma.errors.size() == 1);
  CHECK(comma.errors[0].to_string() == "test.yaml:1:1: YAML syntax error: unexpected ','");
  auto late = parse(kBase + "uplink:\n  enabled: false\n...\n,\n");
  REQUIRE(late.errors.size() == 1);
  CHECK(late.errors[0].line == 9);

  auto binary = parse(std::string("\0\xff\xfe{{[[:\x01", 10));
  CHECK_FALSE(binary.errors.empty());
}

TEST_CASE("config: the error list is bounded", "[config]") {
  std::string text = kBase + "uplink:\n  enabled: false\n  event_kinds: [";
  for (int i = 0; i < 500; ++i) text += "nope, ";
  text += "smoke]\n";
  auto r = parse(text);
  CHECK(r.errors.size() == 101);
  CHECK_THAT(r.errors.back().message, Catch::Contains("too many errors"));
}

TEST_CASE("config: error text format", "[config]") {
  ConfigError e{"/etc/anju/anju.yaml", 12, 5, "uplink.window", "must be between 1 and 1024"};
  CHECK(e.to_string() == "/etc/anju/anju.yaml:12:5: uplink.window: must be between 1 and 1024");
  e.line = 0;
  e.column = 0;
  CHECK(e.to_string() == "/etc/anju/anju.yaml: uplink.window: must be between 1 and 1024");
  e.key.clear();
  CHECK(e.to_string() == "/etc/anju/anju.yaml: must be between 1 and 1024");
}

TEST_CASE("config: an unreadable file is one error naming it", "[config]") {
  auto r = anju::firmware::load_config("/nonexistent/anju.yaml");
  REQUIRE(r.errors.size() == 1);
  CHECK_FALSE(r.config);
  CHECK(r.errors[0].file == "/nonexistent/anju.yaml");
  CHECK(r.errors[0].line == 0);
  CHECK(r.errors[0].to_string() ==
        "/nonexistent/anju.yaml: cannot read the file: No such file or directory");

  auto dir = anju::firmware::load_config("/");
  REQUIRE(dir.errors.size() == 1);
  CHECK_THAT(dir.errors[0].message, Catch::Contains("Is a directory"));
}

TEST_CASE("config: correlations name rules that exist", "[config]") {
  auto r = parse(kBase + R"(uplink:
  enabled: false
rules:
  thresholds:
    - {name: temperature_rising_fast, kind: temperature, rise: 8}
  correlations:
    - name: fire_suspected
      rules: [smoke, temperature_rising_fast]
      scope: room
    - name: odd
      rules: [smoke, temperature_rising_slow]
      scope: street
    - name: alone
      rules: [smoke]
)");
  INFO(all_errors(r));
  CHECK_FALSE(r.config);
  auto* unknown = find_error(r, "rules.correlations[1].rules[1]");
  REQUIRE(unknown);
  CHECK_THAT(unknown->message, Catch::Contains("no alert rule 'temperature_rising_slow'"));
  CHECK(find_error(r, "rules.correlations[1].scope"));
  CHECK(find_error(r, "rules.correlations[2].rules"));
  CHECK(r.errors.size() == 3);

  auto ok = parse(kBase + R"(uplink:
  enabled: false
rules:
  thresholds:
    - {name: temperature_rising_fast, kind: temperature, rise: 8}
  correlations:
    - {name: fire_suspected, rules: [smoke, temperature_rising_fast], window_s: 60}
)");
  INFO(all_errors(ok));
  REQUIRE(ok.config);
  const auto s = anju::firmware::rule_settings(*ok.config);
  REQUIRE(s.correlations.size() == 1);
  CHECK(s.correlations[0].window_ms == 60'000);
  CHECK(s.correlations[0].scope == anju::edge::CorrelationScope::room);
  CHECK(s.correlations[0].severity == 1);
}

TEST_CASE("config: supervision per driver and weak-signal settings", "[config][supervision]") {
  auto ok = parse(kBase + R"(uplink:
  enabled: false
rules:
  supervision:
    chirpstack: {heartbeat_timeout_s: 7200}
    camera: {heartbeat_timeout_s: 600}
  weak_linkquality: 25
  linkquality_hysteresis: 15
  rssi_hysteresis_db: 3.5
)");
  INFO(all_errors(ok));
  REQUIRE(ok.config);
  CHECK(ok.config->rules.supervision.at("chirpstack").heartbeat_timeout_s == 7200);
  CHECK(ok.config->rules.supervision.at("camera").heartbeat_timeout_s == 600);
  CHECK(ok.config->rules.weak_linkquality == 25);
  CHECK(ok.config->rules.linkquality_hysteresis == 15);
  CHECK(ok.config->rules.rssi_hysteresis_db == Approx(3.5));

  auto bad = parse(kBase + R"(uplink:
  enabled: false
rules:
  supervision:
    zigbee: {heartbeat_timeout_s: 60}
    modbus: {}
    osdp: {heartbeat_timeout_s: -1}
  weak_linkquality: 256
)");
  INFO(all_errors(bad));
  CHECK(bad.errors.size() == 4);
  REQUIRE(find_error(bad, "rules.supervision.zigbee"));
  CHECK(find_error(bad, "rules.supervision.zigbee")->message.find("no driver 'zigbee' (one of") ==
        0);
  CHECK(find_error(bad, "rules.supervision.modbus.heartbeat_timeout_s")->message ==
        "missing required key");
  CHECK(find_error(bad, "rules.supervision.osdp.heartbeat_timeout_s"));
  CHECK(find_error(bad, "rules.weak_linkquality"));
}

TEST_CASE("config: welfare checks name their home and devices", "[config][welfare]") {
  auto ok = parse(kBase + R"(uplink:
  enabled: false
rules:
  welfare:
    - name: welfare_3_2_1201
      building: "3"
      unit: "2"
      room: "1201"
      devices: [door_3_2_1201, meter_1201]
      quiet_h: 12
  correlations:
    - name: welfare_and_smoke
      rules: [welfare_3_2_1201, smoke]
)");
  INFO(all_errors(ok));
  REQUIRE(ok.config);
  REQUIRE(ok.config->rules.welfare.size() == 1);
  const auto& w = ok.config->rules.welfare[0];
  CHECK(w.room == "1201");
  CHECK(w.devices == std::vector<std::string>{"door_3_2_1201", "meter_1201"});
  CHECK(w.quiet_h == 12);
  CHECK(w.severity == 2);

  auto bad = parse(kBase + R"(uplink:
  enabled: false
rules:
  welfare:
    - name: home_a
      devices: []
    - name: home_a
      devices: [d]
      quiet_h: 0
    - devices: [d]
)");
  INFO(all_errors(bad));
  CHECK(bad.errors.size() == 4);
  CHECK(find_error(bad, "rules.welfare[0].devices")->message == "needs at least one device");
  CHECK(find_error(bad, "rules.welfare[1].name")->message ==
        "duplicate rule name 'home_a' (also used by rules.welfare[0])");
  CHECK(find_error(bad, "rules.welfare[1].quiet_h"));
  CHECK(find_error(bad, "rules.welfare[2].name")->message == "missing required key");
}

TEST_CASE("config: doors on GPIO lines, and the lines anjud requests for them",
          "[config][access]") {
  const std::string good = kBase + R"(uplink: {enabled: false}
access:
  site_key_file: /etc/anju/site.key
  gpio_doors:
    - door: b3-u1
      id: b3-u1-door
      chip: gpiochip0
      reader_id: b3-u1-reader
      room: main door
      d0: 17
      d1: 18
      contact: 22
      lock: 25
      active_low: [lock]
      pull_up: [d0, d1]
      lock_pulse_ms: 5000
    - door: garage
      id: garage-door
      chip: gpiochip1
      contact: 17
)";
  auto r = parse(good);
  INFO(all_errors(r));
  REQUIRE(r.config);
  REQUIRE(r.config->access.gpio_doors.size() == 2);
  const auto setup = anju::firmware::gpio_door_setup(*r.config, r.config->access.gpio_doors[0], {});
  CHECK(setup.chip == "gpiochip0");
  CHECK(setup.io.door.door == "b3-u1");
  CHECK(setup.io.door.device.id == "b3-u1-door");
  CHECK(setup.io.reader.device.id == "b3-u1-reader");
  CHECK(setup.io.door.location.room == "main door");
  CHECK(setup.io.d0 == "d0");
  CHECK(setup.io.contact == "contact");
  CHECK(setup.io.exit_button.empty());  // not wired
  CHECK(setup.io.lock == "lock");
  CHECK(setup.io.lock_pulse_ms == 5000);
  REQUIRE(setup.inputs.size() == 3);
  CHECK(setup.inputs[0].name == "d0");
  CHECK(setup.inputs[0].offset == 17);
  CHECK(setup.inputs[0].active_low);  // Wiegand pulls a line low for a bit
  CHECK(setup.inputs[0].pull_up);
  CHECK(setup.inputs[2].name == "contact");
  CHECK_FALSE(setup.inputs[2].active_low);
  REQUIRE(setup.outputs.size() == 1);
  CHECK(setup.outputs[0].offset == 25);
  CHECK(setup.outputs[0].active_low);
  CHECK(anju::drivers::access::validate(setup.io).empty());
  const auto garage =
      anju::firmware::gpio_door_setup(*r.config, r.config->access.gpio_doors[1], {});
  CHECK(garage.io.d0.empty());
  CHECK(garage.outputs.empty());
  CHECK(anju::drivers::access::validate(garage.io).empty());

  const auto bad = parse(kBase + R"(uplink: {enabled: false}
access:
  osdp:
    - name: bus
      device: /dev/ttyUSB0
      readers: [{address: 1, id: r1, door: gate}]
  site_key_file: /k
  gpio_doors:
    - door: d1
      id: r1
      chip: gpiochip0
      d0: 3
      contact: 3
      active_low: [tamper]
    - door: d1
      id: d1-door
      chip: gpiochip0
      contact: 4
      exit_button: 4
    - door: d2
      id: d2-door
      chip: gpiochip0
    - door: d3
      id: d3-door
      chip: gpiochip0
      tamper: 3
)");
  INFO(all_errors(bad));
  CHECK_FALSE(bad.config);
  auto msg = [&](const std::string& key) {
    const auto* e = find_error(bad, key);
    return e ? e->message : std::string("(no error at " + key + ")");
  };
  CHECK(msg("access.gpio_doors[0].d1") == "a Wiegand reader needs both d0 and d1");
  CHECK_THAT(msg("access.gpio_doors[0].reader_id"), Catch::Contains("required with d0/d1"));
  CHECK(msg("access.gpio_doors[0].contact") == "line 3 is also access.gpio_doors[0].d0");
  CHECK_THAT(msg("access.gpio_doors[0].active_low[0]"), Catch::Contains("'tamper' is not wired"));
  CHECK_THAT(msg("access.gpio_doors[0].id"),
             Catch::Contains("'r1' is used twice (also access.osdp[0].readers[0].id)"));
  CHECK_THAT(msg("access.gpio_doors[1].door"), Catch::Contains("'d1' is used twice"));
  CHECK(msg("access.gpio_doors[1].exit_button") == "line 4 is also access.gpio_doors[1].contact");
  CHECK_THAT(msg("access.gpio_doors[2]"), Catch::Contains("no line is wired"));
  CHECK(msg("access.gpio_doors[3].tamper") == "'gpiochip0' line 3 is also access.gpio_doors[0].d0");

  const auto no_key = parse(kBase + R"(uplink: {enabled: false}
access:
  gpio_doors: [{door: d1, id: d1-door, chip: gpiochip0, d0: 1, d1: 2, reader_id: w1}]
)");
  CHECK_THAT(find_error(no_key, "access.site_key_file")->message,
             Catch::Contains("required when there are readers"));
  // A door without a reader needs no pseudonym key.
  CHECK(parse(kBase + R"(uplink: {enabled: false}
access:
  gpio_doors: [{door: d1, id: d1-door, chip: gpiochip0, contact: 1}]
)")
            .config);
}
