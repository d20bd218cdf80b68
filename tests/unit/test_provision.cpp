// set_config_values, the in-place config editor of `anju provision`: on the example config and on
// small documents, every byte but the edited values is kept, missing keys go where the schema puts
// them, and values the city's identifier rules refuse are refused with their reason.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "anju/firmware/config.hpp"
#include "anju/firmware/provision.hpp"

using anju::firmware::check_config_value;
using anju::firmware::config_path_key;
using anju::firmware::config_value;
using anju::firmware::find_device_entries;
using anju::firmware::parse_config;
using anju::firmware::set_config_values;
using KV = std::vector<std::pair<std::string, std::string>>;

namespace {

std::string example() {
  std::string f = __FILE__;
  const std::string tail = "tests/unit/test_provision.cpp";
  REQUIRE(f.size() >= tail.size());
  std::ifstream in(f.substr(0, f.size() - tail.size()) + "firmware/config/anju.example.yaml",
                   std::ios::binary);
  REQUIRE(in);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `text` with the one occurrence of `from` replaced by `to`.
std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  REQUIRE(text.find(from, at + 1) == std::string::npos);
  return text.replace(at, from.size(), to);
}

std::string edit(const std::string& text, const KV& kv) {
  std::string error;
  std::string out = set_config_values(text, kv, &error, "test.yaml");
  INFO(error);
  REQUIRE(error.empty());
  REQUIRE(!out.empty());
  return out;
}

std::string refused(const std::string& text, const KV& kv) {
  std::string error;
  const std::string out = set_config_values(text, kv, &error, "test.yaml");
  CHECK(out.empty());
  return error;
}

std::string errors_of(const std::string& text) {
  std::string s;
  for (const auto& e : parse_config(text, "test.yaml").errors) s += e.to_string() + "\n";
  return s;
}

const std::string kSmall = R"(site:
  id: t1
  grid_code: "11010500100200300401"
local_broker:
  uri: tcp://127.0.0.1:1883
  # the compound's own broker
uplink:
  enabled: false
)";

}  // namespace

TEST_CASE("provision: set_config_values changes values in the example and keeps every other byte",
          "[provision]") {
  const std::string original = example();
  const std::string out = edit(original, {{"site.id", "north-gate_2"},
                                          {"site.grid_code", "11010500100200300499"},
                                          {"site.division_code", "110105001002"},
                                          {"uplink.tls.cert_file", "/etc/anju/tls/other.crt"}});
  std::string expected = replaced(original, "  id: sunrise-garden\n", "  id: north-gate_2\n");
  expected = replaced(expected, "  grid_code: \"11010500100200300401\"\n",
                      "  grid_code: \"11010500100200300499\"\n");
  expected = replaced(expected, "    cert_file: /etc/anju/tls/gateway.crt\n",
                      "    cert_file: /etc/anju/tls/other.crt\n");
  CHECK(out == expected);

  const auto parsed = parse_config(out, "test.yaml");
  INFO(errors_of(out));
  REQUIRE(parsed.config);
  CHECK(parsed.config->site.id == "north-gate_2");
  CHECK(parsed.config->site.grid_code == "11010500100200300499");
  CHECK(parsed.config->uplink.broker.tls.cert_file == "/etc/anju/tls/other.crt");

  // The same values again: not one byte changes.
  CHECK(edit(out, {{"site.id", "north-gate_2"},
                   {"site.grid_code", "11010500100200300499"},
                   {"uplink.tls.cert_file", "/etc/anju/tls/other.crt"}}) == out);
}

TEST_CASE("provision: set_config_values edits device codes by quoted key and by list index",
          "[provision]") {
  const std::string original = example();
  const std::string out = edit(
      original, {{"zigbee2mqtt.devices.\"0x00158d0001a2b3c4\".gb28181", "11010500001340000099"},
                 {"modbus.devices[0].gb28181", "11010500001340000077"}});
  std::string expected = replaced(original, "      gb28181: \"11010500001340000002\"\n",
                                  "      gb28181: \"11010500001340000099\"\n");
  // modbus.devices[0] has gb28181: "" (the first empty gb28181 after "fire-panel-b3").
  const auto panel = expected.find("- id: fire-panel-b3");
  REQUIRE(panel != std::string::npos);
  const std::string empty_code = "      gb28181: \"\"\n";
  const auto at = expected.find(empty_code, panel);
  REQUIRE(at != std::string::npos);
  expected.replace(at, empty_code.size(), "      gb28181: \"11010500001340000077\"\n");
  CHECK(out == expected);
  const auto parsed = parse_config(out, "test.yaml");
  REQUIRE(parsed.config);
  CHECK(parsed.config->zigbee2mqtt.devices.at("0x00158d0001a2b3c4").gb28181 ==
        "11010500001340000099");
  CHECK(parsed.config->modbus.devices.at(0).place.gb28181 == "11010500001340000077");
}

TEST_CASE("provision: set_config_values inserts a missing key in its section, in schema order",
          "[provision]") {
  const std::string full = example();
  // The example without site.division_code (and its comment): it goes back right after
  // grid_code, where the schema has it, not at the end of the section after name.
  const std::string division_doc =
      "  # Administrative division code: exactly 12 digits. Optional. Default: \"\" (none).\n"
      "  division_code: \"110105001002\"\n";
  const std::string without = replaced(full, division_doc, "");
  const std::string out = edit(without, {{"site.division_code", "110105001002"}});
  CHECK(out == replaced(full, division_doc, "  division_code: \"110105001002\"\n"));

  // uplink.tls.cert_file: after ca_file, before key_file's comment.
  const std::string cert_doc =
      "    # Client certificate (PEM) for mutual TLS; goes with key_file. Default: \"\" (none)\n"
      "    cert_file: /etc/anju/tls/gateway.crt\n";
  const std::string no_cert =
      replaced(replaced(full, cert_doc, ""), "    key_file: /etc/anju/tls/gateway.key\n", "");
  const std::string with_cert = edit(no_cert, {{"uplink.tls.cert_file", "/etc/anju/tls/gw.crt"},
                                               {"uplink.tls.key_file", "/etc/anju/tls/gw.key"}});
  const std::string ca_line = "    ca_file: /etc/anju/tls/ca.pem\n";
  CHECK(with_cert ==
        replaced(
            no_cert, ca_line,
            ca_line + "    cert_file: /etc/anju/tls/gw.crt\n    key_file: /etc/anju/tls/gw.key\n"));
  REQUIRE(parse_config(with_cert, "test.yaml").config);

  // A device without a grid code: after room, before gb28181.
  const std::string dev =
      edit(full, {{"zigbee2mqtt.devices.climate_3_2_1201.grid_code", "11010500100200300409"}});
  CHECK(dev == replaced(full, "      room: \"1201\"\n",
                        "      room: \"1201\"\n      grid_code: \"11010500100200300409\"\n"));
}

TEST_CASE("provision: set_config_values inserts into a list item", "[provision]") {
  const std::string text = R"(site:
  id: t1
  grid_code: "11010500100200300401"
local_broker:
  uri: tcp://127.0.0.1:1883
uplink:
  enabled: false
modbus:
  devices:
    - id: panel
      host: 192.168.10.30
      registers:
        - name: fire_alarm
          kind: smoke
      room: fire control room
    - id: meter
      host: 192.168.10.31
      registers:
        - kind: water_level
# the end
)";
  CHECK(edit(text, {{"modbus.devices[0].gb28181", "11010500001340000005"},
                    {"modbus.devices[1].gb28181", "11010500001340000006"}}) ==
        replaced(replaced(text, "      room: fire control room\n",
                          "      room: fire control room\n"
                          "      gb28181: \"11010500001340000005\"\n"),
                 "        - kind: water_level\n",
                 "        - kind: water_level\n      gb28181: \"11010500001340000006\"\n"));
}

TEST_CASE("provision: set_config_values creates missing sections and fills empty values",
          "[provision]") {
  const std::string out = edit(kSmall, {{"local_broker.tls.cert_file", "/x/gw.crt"},
                                        {"local_broker.tls.key_file", "/x/gw.key"},
                                        {"site.division_code", "110105001002"}});
  CHECK(out == R"(site:
  id: t1
  grid_code: "11010500100200300401"
  division_code: "110105001002"
local_broker:
  uri: tcp://127.0.0.1:1883
  tls:
    cert_file: /x/gw.crt
    key_file: /x/gw.key
  # the compound's own broker
uplink:
  enabled: false
)");

  // `key:` with nothing, `key: ~`, and a comment after the colon.
  const std::string empty = R"(site:
  id: t1
  grid_code: "11010500100200300401"
  division_code:
  name: ~
local_broker:   # ours
  uri: tcp://127.0.0.1:1883
  tls:
uplink:
  enabled: false
)";
  CHECK(edit(empty, {{"site.division_code", "110105001002"},
                     {"site.name", "Sunrise"},
                     {"local_broker.tls.ca_file", "/x/ca.pem"}}) == R"(site:
  id: t1
  grid_code: "11010500100200300401"
  division_code: "110105001002"
  name: Sunrise
local_broker:   # ours
  uri: tcp://127.0.0.1:1883
  tls:
    ca_file: /x/ca.pem
uplink:
  enabled: false
)");
  CHECK(edit("site:\n  id: t1\n  grid_code: \"11010500100200300401\"\n  name:   # later\n"
             "local_broker:\n  uri: tcp://h:1\nuplink:\n  enabled: false\n",
             {{"site.name", "Sunrise"}}) ==
        "site:\n  id: t1\n  grid_code: \"11010500100200300401\"\n  name: Sunrise   # later\n"
        "local_broker:\n  uri: tcp://h:1\nuplink:\n  enabled: false\n");
}

TEST_CASE("provision: set_config_values keeps quoting, comments and line endings", "[provision]") {
  // Plain stays plain when it can; text that plain YAML would read as a number is quoted; single
  // quotes stay single; a comment after the value stays.
  const std::string text =
      "site:\n  id: t1   # the id\n  grid_code: '11010500100200300401'\n"
      "  name: Old\nlocal_broker:\n  uri: tcp://h:1\nuplink:\n  enabled: false\n";
  CHECK(edit(text, {{"site.id", "12345"},
                    {"site.grid_code", "11010500100200300402"},
                    {"site.name", "New name: \"2\""}}) ==
        "site:\n  id: \"12345\"   # the id\n  grid_code: '11010500100200300402'\n"
        "  name: \"New name: \\\"2\\\"\"\nlocal_broker:\n  uri: tcp://h:1\nuplink:\n  enabled: "
        "false\n");

  // CRLF files stay CRLF, inserted lines included.
  const std::string crlf =
      "site:\r\n  id: t1\r\n  grid_code: \"11010500100200300401\"\r\n"
      "local_broker:\r\n  uri: tcp://h:1\r\nuplink:\r\n  enabled: false\r\n";
  CHECK(edit(crlf, {{"site.id", "t2"}, {"site.division_code", "110105001002"}}) ==
        "site:\r\n  id: t2\r\n  grid_code: \"11010500100200300401\"\r\n"
        "  division_code: \"110105001002\"\r\nlocal_broker:\r\n  uri: tcp://h:1\r\nuplink:\r\n  "
        "enabled: false\r\n");

  // A byte order mark and no newline at the end.
  const std::string bom =
      "\xEF\xBB\xBFsite:\n  id: t1\n  grid_code: \"11010500100200300401\"\n"
      "uplink:\n  enabled: false\nlocal_broker:\n  uri: tcp://h:1";
  CHECK(edit(bom, {{"site.id", "t3"}, {"local_broker.client_id", "me"}}) ==
        "\xEF\xBB\xBFsite:\n  id: t3\n  grid_code: \"11010500100200300401\"\n"
        "uplink:\n  enabled: false\nlocal_broker:\n  uri: tcp://h:1\n  client_id: me\n");
}

TEST_CASE("provision: set_config_values refuses values the identifier rules reject",
          "[provision]") {
  const std::string text = example();
  CHECK(refused(text, {{"site.grid_code", "1101050010020030040"}}) ==
        "site.grid_code: grid code: 19 digits, 20 required");
  CHECK(refused(text, {{"site.division_code", "990105001002"}}) ==
        "site.division_code: division code: \"990105001002\" starts with 99, which is not a "
        "GB/T 2260 province code");
  CHECK(refused(text, {{"zigbee2mqtt.devices.climate_3_2_1201.gb28181", "11010500000000000005"}}) ==
        "zigbee2mqtt.devices.climate_3_2_1201.gb28181: GB/T 28181 device code: type code (digits "
        "11-13) 000 is not an assigned GB/T 28181 type (111-999)");
  CHECK(
      refused(text, {{"site.id", "north gate"}}).rfind("site.id: must be 1 to 64 characters", 0) ==
      0);
  // The site's grid code must start with its division code, as both are after the edit.
  CHECK(refused(text, {{"site.division_code", "110105001003"}}) ==
        "site.grid_code: grid code: \"11010500100200300401\" starts with 110105001002, but the "
        "site's division code is 110105001003 (the first 12 digits must be equal)");
  CHECK(edit(text, {{"site.division_code", "110105001003"},
                    {"site.grid_code", "11010500100300300401"}}) != text);
  // What the config's own rules refuse.
  CHECK(refused(text, {{"log_level", "loud"}})
            .find("the config would not be valid after this change:\n  test.yaml:") == 0);
  CHECK(refused(text, {{"site.id", "a\nb"}}) ==
        "site.id: the value must be one line of printable "
        "text");
}

TEST_CASE("provision: set_config_values refuses what it cannot edit in place", "[provision]") {
  const std::string text = example();
  CHECK(refused(text, {{"uplink.tls", "x"}}) == "uplink.tls is a section, not a single value");
  CHECK(refused(text, {{"uplink.event_kinds", "x"}}) ==
        "uplink.event_kinds is a list, not a single value");
  CHECK(refused(text, {{"modbus.devices[3].gb28181", "11010500001340000005"}}) ==
        "modbus.devices[3]: modbus.devices has 1 item");
  CHECK(refused(text, {{"site..id", "x"}}).rfind("bad key path 'site..id'", 0) == 0);
  CHECK(refused("site: {id: t1, grid_code: \"11010500100200300401\"}\nlocal_broker:\n"
                "  uri: tcp://h:1\nuplink:\n  enabled: false\n",
                {{"site.name", "x"}}) ==
        "site.name is missing and site is written in flow style ({...}): add it by hand");
  CHECK(refused("site:\n  id: t1\n  grid_code: \"11010500100200300401\"\n  name: |\n    Old\n"
                "local_broker:\n  uri: tcp://h:1\nuplink:\n  enabled: false\n",
                {{"site.name", "x"}})
            .rfind("site.name: its value is not a one-line scalar", 0) == 0);
  // A value shared through an alias would change in two places.
  CHECK(refused("site:\n  id: t1\n  grid_code: &g \"11010500100200300401\"\n"
                "zigbee2mqtt:\n  devices:\n    a:\n      grid_code: *g\n"
                "local_broker:\n  uri: tcp://h:1\nuplink:\n  enabled: false\n",
                {{"zigbee2mqtt.devices.a.grid_code", "11010500100200300402"}})
            .find("edit it by hand") != std::string::npos);
  CHECK(refused("site: [\n", {{"site.id", "x"}}).rfind("the config is not valid YAML (line", 0) ==
        0);
}

TEST_CASE("provision: device entries, values and path keys", "[provision]") {
  const std::string text = example();
  using V = std::vector<std::string>;
  CHECK(find_device_entries(text, "0x00158d0001a2b3c4") ==
        V{"zigbee2mqtt.devices.0x00158d0001a2b3c4"});
  CHECK(find_device_entries(text, "70B3D57ED0051A2B") == V{"chirpstack.devices.70b3d57ed0051a2b"});
  CHECK(find_device_entries(text, "pump-b2-1") == V{"generic_mqtt.devices.pump-b2-1"});
  CHECK(find_device_entries(text, "fire-panel-b3") == V{"modbus.devices[0]"});
  CHECK(find_device_entries(text, "gate-north").empty());  // a camera: no gb28181 key
  CHECK(find_device_entries(text, "nobody").empty());
  CHECK(config_value(text, "site.grid_code") == "11010500100200300401");
  CHECK(config_value(text, "modbus.devices[0].id") == "fire-panel-b3");
  CHECK(config_value(text, "site.nothing").empty());
  CHECK(config_path_key("kitchen.sensor") == "\"kitchen.sensor\"");
  CHECK(config_path_key("plain_name-1") == "plain_name-1");
  CHECK(config_path_key("a\"b") == "\"a\\\"b\"");
  CHECK(edit("site:\n  id: t1\n  grid_code: \"11010500100200300401\"\nlocal_broker:\n"
             "  uri: tcp://h:1\nuplink:\n  enabled: false\nzigbee2mqtt:\n  devices:\n    "
             "kitchen.sensor:\n      room: k\n",
             {{"zigbee2mqtt.devices." + config_path_key("kitchen.sensor") + ".gb28181",
               "11010500001340000005"}}) ==
        "site:\n  id: t1\n  grid_code: \"11010500100200300401\"\nlocal_broker:\n"
        "  uri: tcp://h:1\nuplink:\n  enabled: false\nzigbee2mqtt:\n  devices:\n    "
        "kitchen.sensor:\n      room: k\n"
        "      gb28181: \"11010500001340000005\"\n");
  CHECK(check_config_value("site.division_code", "").empty());
  CHECK(check_config_value("uplink.uri", "anything").empty());
}
