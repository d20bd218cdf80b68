// Privacy by construction (issue 8): the real anjud with every driver that runs on loopback
// (zigbee2mqtt, ChirpStack and generic MQTT/JSON on the local Mosquitto, Modbus TCP, an OSDP
// reader on a pty, a GPIO door with a Wiegand reader in the test build anjud_test), fed with
// events that carry known personal identifiers, and a grep of everything that leaves it.
//
// The identifiers: two card numbers (one through OSDP, one through Wiegand on GPIO lines), a card
// read by an OSDP reader as text (osdp_FMT) and a PIN typed on its keypad; and, in the sensors'
// JSON, a resident id, a Chinese mobile number (13912345678), a licence plate (京A12345, UTF-8)
// and an ID-card number (11010519491231002X). The sensor identifiers are put both in fields no
// mapping reads (zigbee2mqtt properties Anju does not know, ChirpStack `object` keys and device
// tags, vendor JSON members) and in fields that are mapped, where a reading was expected (the
// parser must refuse the value without repeating it: before generic_mqtt::describe_value, the
// three MQTT parsers' errors quoted it into the log). Modbus registers carry numbers only: nothing
// personal is put there, but the driver runs, logs and uplinks with the others.
//
// What may keep what, from ../shared/design/DOMAIN.md ("card numbers, person IDs and phone numbers
// never leave the gateway in the clear (keyed pseudonyms)"; PIPL art. 28: whereabouts are
// sensitive; art. 19: keep only what is needed):
// - the city broker (every byte of every message, topics too): no identifier in any rendering,
//   and not even the cards' keyed pseudonyms: the city gets the passage at the door, never who;
// - the local bus: it is inside the compound, but it is a broker other clients read (phones,
//   vendor bridges, the dashboard's users), so what anjud publishes there (its own tree, anju/...)
//   carries no identifier in the clear either. Pseudonyms are allowed there (property management
//   may need "the same card was refused five times"). Messages the devices themselves published
//   (zigbee2mqtt/..., application/..., vendor/...) are the devices' business, not anjud's;
// - anjud's log, at debug level: no identifier in any rendering (logs go to journald and into
//   support bundles, and have no retention of Anju's own);
// - the journal and every other file in the data dir (inbox, state files): no card number, PIN,
//   phone, plate or ID-card number in any field; cards only as attrs.credential, the keyed
//   pseudonym. The one place where a person's id may stay is attrs.label of a passage event: the
//   label that property management wrote into the credentials file for that card (here it names
//   the resident), copied into the record of that passage, which stays on the gateway for
//   journal.retention_days. No other field, no alert and no outbox row carries it.
// The card numbers are searched as decimal (the number, facility and number as one value, the
// whole frame), as hex (the same, and the reader's raw bytes) and as the frame's bit string; UUIDs
// are removed before the hex search, since their 4-hex groups would match a 16-bit number by
// chance. The card numbers are above the ephemeral port range, so that no port looks like them.
#include <fcntl.h>
#include <httplib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cctype>
#include <set>
#include <string>
#include <vector>

#include "anju/drivers/credentials.hpp"
#include "city_contract.hpp"
#include "harness.hpp"
#include "modbus_server.hpp"
#include "osdp_pd_sim.hpp"

using namespace anju::it;
using namespace anju::sim;
namespace acs = anju::drivers::access;

namespace {

const std::string kSite = "demo-compound";
constexpr const char* kKeyHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
constexpr const char* kApp = "a1b2c3d4-0000-4000-8000-000000000001";

const std::string kPhone = "13912345678";
const std::string kPlate =
    "\xE4\xBA\xAC"
    "A12345";                             // 京A12345
const std::string kPlateTail = "A12345";  // what is left once 京 is replaced or escaped
const std::string kIdCard = "11010519491231002X";
const std::string kResident = "RID-7304-5521";
const std::string kFmtCard = "7731946215";  // a card read as text by the OSDP reader (osdp_FMT)
const std::string kPin = "731946";          // typed on the OSDP reader's keypad

struct Card {
  std::uint32_t facility;
  std::uint32_t number;
};
constexpr Card kOsdpCard{12, 64213};
constexpr Card kWiegandCard{21, 63481};

acs::PseudonymKey site_key() {
  acs::PseudonymKey k{};
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(i);
  return k;
}

std::string card_hash(const Card& c) {
  return acs::wiegand_pseudonym(site_key(), wiegand::Format::h10301_26, c.facility, c.number);
}

std::string hex(std::uint64_t v, int width = 0) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*llx", width, static_cast<unsigned long long>(v));
  return buf;
}

std::string bits_text(const wiegand::Bits& bits) {
  std::string s;
  for (bool b : bits) s += b ? '1' : '0';
  return s;
}

// Every rendering of a card number that a log line or a message could carry.
struct Forms {
  std::vector<std::string> decimal;  // whole numbers (bounded by non-alphanumerics)
  std::vector<std::string> hexes;    // lower-case hex, searched case-insensitively, UUIDs removed
  std::vector<std::string> text;     // plain substrings
};

void add_card(Forms& f, const Card& c) {
  const auto bits = h10301(c.facility, c.number);
  std::uint64_t frame = 0;
  for (bool b : bits) frame = frame << 1 | (b ? 1 : 0);
  const std::uint64_t both = static_cast<std::uint64_t>(c.facility) << 16 | c.number;
  f.decimal.push_back(std::to_string(c.number));
  f.decimal.push_back(std::to_string(both));
  f.decimal.push_back(std::to_string(frame));
  f.hexes.push_back(hex(c.number));
  f.hexes.push_back(hex(both));
  f.hexes.push_back(hex(both, 6));
  f.hexes.push_back(hex(frame));
  f.hexes.push_back(hex(frame, 8));
  // The OSDP reader's raw bytes (the frame left-aligned in 4 bytes), as a hex string.
  const auto raw = raw_reply(bits);
  std::string raw_hex;
  for (std::size_t i = 4; i < raw.size(); ++i) raw_hex += hex(raw[i], 2);
  f.hexes.push_back(raw_hex);
  f.text.push_back(bits_text(bits));
}

Forms card_forms() {
  Forms f;
  add_card(f, kOsdpCard);
  add_card(f, kWiegandCard);
  f.decimal.push_back(kFmtCard);
  f.decimal.push_back(kPin);
  return f;
}

// `what` in `text` as a token of its own (not a piece of a longer number or word).
bool mentions(const std::string& text, const std::string& what) {
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
    const bool left = at == 0 || !std::isalnum(static_cast<unsigned char>(text[at - 1]));
    const auto end = at + what.size();
    const bool right = end == text.size() || !std::isalnum(static_cast<unsigned char>(text[end]));
    if (left && right) return true;
  }
  return false;
}

bool is_hex(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) != 0;
}

// `text` in lower case with every UUID (8-4-4-4-12 hex digits) replaced by "<uuid>".
std::string without_uuids(const std::string& text) {
  static constexpr std::size_t kGroups[] = {8, 4, 4, 4, 12};
  auto uuid_at = [&](std::size_t at) {
    for (std::size_t g = 0; g < 5; ++g) {
      for (std::size_t i = 0; i < kGroups[g]; ++i, ++at)
        if (at >= text.size() || !is_hex(text[at])) return false;
      if (g < 4 && (at >= text.size() || text[at++] != '-')) return false;
    }
    return true;
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (is_hex(text[i]) && (i == 0 || !is_hex(text[i - 1])) && uuid_at(i)) {
      out += "<uuid>";
      i += 36;
      continue;
    }
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
    ++i;
  }
  return out;
}

// The identifiers found in `text`, by name; empty when there are none. `resident` says whether
// the resident id is searched too.
std::vector<std::string> leaks(const std::string& text, bool resident = true) {
  static const Forms forms = card_forms();
  std::vector<std::string> found;
  for (const auto& s : {kPhone, kPlate, kIdCard})
    if (text.find(s) != std::string::npos) found.push_back(s);
  if (text.find(kPlateTail) != std::string::npos) found.push_back(kPlateTail);
  if (resident && text.find(kResident) != std::string::npos) found.push_back(kResident);
  for (const auto& d : forms.decimal)
    if (mentions(text, d)) found.push_back(d);
  for (const auto& t : forms.text)
    if (text.find(t) != std::string::npos) found.push_back(t);
  const std::string lower = without_uuids(text);
  for (const auto& h : forms.hexes)
    if (mentions(lower, h) || lower.find("0x" + h) != std::string::npos)
      found.push_back("hex " + h);
  return found;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

std::string credentials_json() {
  json creds = json::array();
  creds.push_back({{"hash", card_hash(kOsdpCard)},
                   {"label", "3-2-1201 " + kResident + " card 1"},
                   {"access", json::array({{{"doors", "gates"}, {"schedule", "always"}}})}});
  creds.push_back({{"hash", card_hash(kWiegandCard)},
                   {"label", "3-2-1201 " + kResident + " card 2"},
                   {"access", json::array({{{"doors", "gates"}, {"schedule", "always"}}})}});
  json j = {
      {"version", 1},
      {"utc_offset_minutes", 480},
      {"door_groups", {{"gates", {"gate-north", "gate-south"}}}},
      {"schedules",
       {{"always",
         {{"windows", json::array({{{"days", "all"}, {"from", "00:00"}, {"to", "24:00"}}})}}}}},
      {"credentials", creds}};
  return j.dump(2);
}

// Every driver that runs on loopback, appended to the harness's config (which has zigbee2mqtt).
std::string drivers_yaml(const TempDir& secrets, const std::string& pty, int modbus_port) {
  return "\naccess:\n  site_key_file: " + (secrets / "site.key").string() +
         "\n  credentials_file: " + (secrets / "credentials.json").string() + R"(
  osdp:
    - name: north
      device: )" +
         pty + R"(
      baud: 115200
      reply_timeout_ms: 100
      poll_interval_ms: 10
      readers:
        - address: 1
          id: reader-north-in
          door: gate-north
          room: north gate
          controls_lock: true
  gpio_doors:
    - door: gate-south
      id: gate-south-door
      room: south gate
      chip: sim0
      reader_id: gate-south-wiegand
      d0: 1
      d1: 2
      contact: 3
      lock: 5
      lock_pulse_ms: 300
chirpstack:
  enabled: true
  mappings:
    manhole:
      profiles: [manhole-cover-v2]
      device_kind: manhole_sensor
      object_fields:
        - {path: cover_open, kind: manhole_open}
        - {path: /water/level_cm, kind: water_level, unit: m, scale: 0.01}
generic_mqtt:
  mappings:
    - name: pumps
      topic: vendor/pumps/{building}/{device}/telemetry
      device_kind: pump_controller
      fields:
        - {pointer: /pressure_kpa, kind: pressure, unit: kPa}
        - {pointer: /alarm, kind: equipment_alarm, active_values: ["ALARM"], inactive_values: ["OK"]}
modbus:
  backoff_min_ms: 50
  backoff_max_ms: 200
  devices:
    - id: fire-panel-b3
      kind: fire_panel
      host: 127.0.0.1
      port: )" +
         std::to_string(modbus_port) + R"(
      poll_interval_ms: 100
      timeout_ms: 200
      retries: 0
      registers:
        - {name: fire_alarm, function: 2, address: 0, type: bool, kind: smoke}
        - {name: tank_level, function: 4, address: 10, type: uint16, kind: water_level, unit: m, scale: 0.01}
      building: "3"
      room: fire control room
)";
}

std::string chirpstack_topic(const std::string& eui, const std::string& event) {
  return std::string("application/") + kApp + "/device/" + eui + "/event/" + event;
}

// A ChirpStack v4 uplink of a manhole sensor whose codec output is `object`.
std::string uplink(const std::string& eui, int fcnt, const json& object) {
  std::string upper = eui;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  json j = {
      {"deduplicationId", "5b0a3c4e-1f2d-4c8e-9a7b-0c1d2e3f4a5b"},
      {"time", "2026-11-30T08:16:15.688878229+00:00"},
      {"deviceInfo",
       {{"applicationId", kApp},
        {"deviceProfileName", "manhole-cover-v2"},
        {"deviceName", "mh-" + eui.substr(12)},
        {"devEui", upper},
        // Tags are the network server's, free text: an installer may have noted the owner.
        {"tags", {{"owner", kResident}, {"owner_phone", kPhone}}}}},
      {"fCnt", fcnt},
      {"fPort", 2},
      {"object", object},
      {"rxInfo", json::array({{{"gatewayId", "0016c001f153a14c"}, {"rssi", -101}, {"snr", 3.5}}})}};
  return j.dump();
}

// The personal fields a vendor or a codec might add to a payload, none of them mapped.
json personal() {
  return {{"caller_phone", kPhone},
          {"plate", kPlate},
          {"id_card", kIdCard},
          {"resident_id", kResident},
          {"visitor", {{"phone", kPhone}, {"plate", kPlate}}}};
}

std::int64_t journal_count(const Anjud& gw, const std::string& where) {
  return sql_i64(gw.db_path(), "SELECT count(*) FROM events WHERE " + where);
}

std::string kind_is(const std::string& kind) {
  return "json_extract(anju_event_json(body), '$.kind')='" + kind + "'";
}

std::int64_t status_i64(const std::optional<json>& st, const char* section, const char* key) {
  if (!st || !st->contains(section)) return -1;
  return (*st)[section].value(key, std::int64_t{-1});
}

}  // namespace

TEST_CASE("no personal identifier from any driver reaches the city, the local bus or the log",
          "[e2e][privacy]") {
  Mosquitto local, city;
  local.start();
  city.start();
  Collector city_col(city.uri(), "#");
  Collector local_col(local.uri(), "#");
  ModbusServer panel;
  panel.start();
  panel.set_input(10, 137);
  Pty pty;
  PdSim sim(pty.master, {sim_pd(1)});
  TempDir secrets("anju-it-privacy");
  write_file(secrets / "site.key", std::string(kKeyHex) + "\n");
  ::chmod((secrets / "site.key").c_str(), 0600);
  write_file(secrets / "credentials.json", credentials_json());

  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  cfg.log_level = "debug";
  // Every kind the drivers here make goes to the city one by one: the widest uplink there is.
  cfg.event_kinds = {
      "smoke",          "gas",       "water_leak",      "contact",       "battery",
      "temperature",    "tamper",    "device_offline",  "device_online", "passage_granted",
      "passage_denied", "card_read", "keypad_entry",    "reader_fault",  "manhole_open",
      "water_level",    "pressure",  "equipment_alarm", "measurement"};
  cfg.binary = ANJUD_TEST_PATH;  // its GPIO chips are FIFOs in the data dir
  cfg.dashboard_port = pick_free_port();
  Anjud gw(cfg);
  write_file(gw.config_path(),
             read_file(gw.config_path()) + drivers_yaml(secrets, pty.name, panel.port()));
  gw.start();
  auto diag = [&] {
    std::string s = "anjud log:\n" + tail(gw.log(), 6000);
    if (auto st = gw.status()) s += "\nstatus: " + st->dump();
    return s;
  };

  // Up: the OSDP reader online, the GPIO door watched, the Modbus panel polled, and the local bus
  // subscriptions live (a message reaches each MQTT driver).
  local_col.publish("zigbee2mqtt/bridge/devices", demo_devices_json(), 1, true);
  const bool up = wait_until(
      [&] {
        auto st = gw.status();
        return st && st->contains("osdp") &&
               (*st)["osdp"][0]["readers"][0].value("online", false) &&
               st->contains("gpio_doors") && (*st)["gpio_doors"][0].value("watched", false) &&
               st->contains("modbus") && (*st)["modbus"].value("online", 0) == 1 &&
               status_i64(st, "zigbee2mqtt", "devices") == 5;
      },
      20s);
  if (!up) FAIL("up: false\n" << diag());
  REQUIRE(wait_until(
      [&] {
        local_col.publish(chirpstack_topic("70b3d57ed0051a2b", "log"), "{}", 1, false);
        local_col.publish("vendor/pumps/B2/probe/telemetry", "{}", 1, false);
        auto st = gw.status();
        return status_i64(st, "chirpstack", "messages") > 0 &&
               status_i64(st, "generic_mqtt", "messages") > 0;
      },
      15s, 200ms));
  const auto st0 = gw.status();
  const std::int64_t z2m0 = status_i64(st0, "zigbee2mqtt", "messages");
  const std::int64_t cs0 = status_i64(st0, "chirpstack", "messages");
  const std::int64_t gm0 = status_i64(st0, "generic_mqtt", "messages");

  // --- zigbee2mqtt. Unmapped properties beside real readings (a smoke alarm, a door opened),
  // then identifiers where readings were expected. The driver logs one complaint per device per
  // minute, so each device below gets exactly one bad message, and that one is the test.
  json smoke = personal();
  smoke.update({{"smoke", true}, {"battery", 87}, {"tamper", false}, {"linkquality", 120}});
  local_col.publish("zigbee2mqtt/smoke_3_2_hall", smoke.dump(), 1, false);
  json door = personal();
  door.update({{"contact", false}, {"battery", 90}});
  local_col.publish("zigbee2mqtt/door_3_2_entrance", door.dump(), 1, false);
  int z2m_sent = 2;
  // A number where a temperature was expected: out of range.
  local_col.publish("zigbee2mqtt/climate_3_2_1201", R"({"temperature":13912345678})", 1, false);
  // Text where a boolean was expected.
  local_col.publish("zigbee2mqtt/gas_3_2_1201_kitchen", json{{"gas", kIdCard}}.dump(), 1, false);
  // Availability that is not online/offline, as an object and as a bare payload.
  local_col.publish("zigbee2mqtt/leak_pump_room/availability", json{{"state", kPlate}}.dump(), 1,
                    false);
  local_col.publish("zigbee2mqtt/door_3_2_entrance/availability", kResident, 1, false);
  z2m_sent += 4;

  // --- ChirpStack. One sensor's uplink with personal keys in the codec's object and the tags,
  // then identifiers in mapped fields and in the envelope, each from a sensor of its own (the
  // driver logs one complaint per device per minute).
  json object = personal();
  object.update({{"cover_open", true}, {"water", {{"level_cm", 42}}}});
  local_col.publish(chirpstack_topic("70b3d57ed0051a2b", "up"),
                    uplink("70b3d57ed0051a2b", 7, object), 1, false);
  local_col.publish(chirpstack_topic("70b3d57ed0051a01", "up"),
                    uplink("70b3d57ed0051a01", 1, {{"cover_open", kPhone}}), 1, false);
  local_col.publish(chirpstack_topic("70b3d57ed0051a02", "up"),
                    uplink("70b3d57ed0051a02", 1, {{"water", {{"level_cm", kPlate}}}}), 1, false);
  json bad_fcnt = json::parse(uplink("70b3d57ed0051a03", 1, {{"cover_open", false}}));
  bad_fcnt["fCnt"] = kPhone;  // a decimal string is a valid form of a number, this one too big
  local_col.publish(chirpstack_topic("70b3d57ed0051a03", "up"), bad_fcnt.dump(), 1, false);
  json status = json::parse(uplink("70b3d57ed0051a04", 1, json::object()));
  status.erase("object");
  status["batteryLevel"] = kIdCard;
  local_col.publish(chirpstack_topic("70b3d57ed0051a04", "status"), status.dump(), 1, false);
  local_col.publish(chirpstack_topic("70b3d57ed0051a05", "up"),
                    uplink("70b3d57ed0051a05", 1, {{"cover_open", kResident}}), 1, false);
  const int cs_sent = 6;

  // --- Generic MQTT/JSON: a vendor's pump alarm with personal members around it, then the
  // identifiers in the mapped members of four other controllers.
  json pump = personal();
  pump.update({{"pressure_kpa", 310.5}, {"alarm", "ALARM"}});
  local_col.publish("vendor/pumps/B2/pump-1/telemetry", pump.dump(), 1, false);
  local_col.publish("vendor/pumps/B2/pump-2/telemetry", json{{"alarm", kPhone}}.dump(), 1, false);
  local_col.publish("vendor/pumps/B2/pump-3/telemetry", json{{"pressure_kpa", kPlate}}.dump(), 1,
                    false);
  local_col.publish("vendor/pumps/B2/pump-4/telemetry", json{{"pressure_kpa", kIdCard}}.dump(), 1,
                    false);
  local_col.publish("vendor/pumps/B2/pump-5/telemetry", json{{"alarm", kResident}}.dump(), 1,
                    false);
  const int gm_sent = 5;

  // --- Modbus: the fire panel's alarm input. Registers carry numbers only; nothing personal is
  // put there, but the driver runs, logs and uplinks with the others and is searched the same.
  panel.set_discrete(0, true);

  // --- OSDP: the resident's card (granted), a card read as text (unknown: denied), a PIN.
  sim.with(1, [](SimPd& p) {
    p.cards.push_back(raw_reply(h10301(kOsdpCard.facility, kOsdpCard.number)));
  });
  REQUIRE(sim.wait(
      1, [](SimPd& p) { return p.cards.empty() && !p.outputs.empty(); }, 10s));
  Bytes fmt{0, 0, static_cast<std::uint8_t>(kFmtCard.size())};
  fmt.insert(fmt.end(), kFmtCard.begin(), kFmtCard.end());
  Bytes keypad{0, static_cast<std::uint8_t>(kPin.size())};
  keypad.insert(keypad.end(), kPin.begin(), kPin.end());
  sim.with(1, [&](SimPd& p) {
    p.replies.push_back({osdp::reply::fmt, fmt});
    p.replies.push_back({osdp::reply::keypad, keypad});
  });
  REQUIRE(sim.wait(
      1, [](SimPd& p) { return p.replies.empty(); }, 10s));

  // --- Wiegand on the GPIO door: the resident's second card (granted, the lock pulses).
  gpio_input(gw, "sim0",
             "wiegand " + bits_text(h10301(kWiegandCard.facility, kWiegandCard.number)));

  // Everything was read: each MQTT driver counted its messages and its refusals, and the city
  // has the alarms and the passages.
  const bool read_all = wait_until(
      [&] {
        auto st = gw.status();
        return status_i64(st, "zigbee2mqtt", "messages") >= z2m0 + z2m_sent &&
               status_i64(st, "zigbee2mqtt", "parse_errors") >= 4 &&
               status_i64(st, "chirpstack", "messages") >= cs0 + cs_sent &&
               status_i64(st, "chirpstack", "parse_errors") >= 5 &&
               status_i64(st, "generic_mqtt", "messages") >= gm0 + gm_sent &&
               status_i64(st, "generic_mqtt", "parse_errors") >= 4;
      },
      20s);
  if (!read_all) FAIL("read_all: false\n" << diag());
  auto city_has = [](const std::vector<Message>& ms, const std::string& level,
                     const std::string& kind, const std::string& device) {
    for (const auto& m : ms) {
      if (m.topic != "anju/v1/" + kSite + "/" + level + "/" + kind) continue;
      auto j = json::parse(m.payload, nullptr, false);
      if (!j.is_object()) continue;
      const json& body = level == "alert" ? j.value("alert", json::object()) : j;
      if (body.value("device", json::object()).value("id", "") == device) return true;
    }
    return false;
  };
  const bool delivered = city_col.wait_for(
      [&](const auto& ms) {
        return city_has(ms, "alert", "smoke", "0x00158d0000000001") &&
               city_has(ms, "event", "contact", "0x00158d0000000004") &&
               city_has(ms, "alert", "manhole_open", "70b3d57ed0051a2b") &&
               city_has(ms, "alert", "equipment_alarm", "pump-1") &&
               city_has(ms, "alert", "smoke", "fire-panel-b3") &&
               city_has(ms, "event", "passage_granted", "reader-north-in") &&
               city_has(ms, "event", "passage_denied", "reader-north-in") &&
               city_has(ms, "event", "keypad_entry", "reader-north-in") &&
               city_has(ms, "event", "passage_granted", "gate-south-wiegand");
      },
      20s);
  if (!delivered) FAIL("delivered: false\n" << diag());
  REQUIRE(wait_until(
      [&] { return read_file(gw.data_dir() / "gpio-sim0.out") == "lock 1\nlock 0\n"; }, 10s));
  // The journal has the passages with the cards' pseudonyms (and nothing else of the cards).
  CHECK(journal_count(gw, kind_is("passage_granted") +
                              " AND json_extract(anju_event_json(body), '$.attrs.credential')='" +
                              card_hash(kOsdpCard) + "'") == 1);
  CHECK(journal_count(gw, kind_is("passage_granted") +
                              " AND json_extract(anju_event_json(body), '$.attrs.credential')='" +
                              card_hash(kWiegandCard) + "'") == 1);
  CHECK(journal_count(gw, kind_is("keypad_entry") +
                              " AND json_extract(anju_event_json(body), '$.attrs.digits')=" +
                              std::to_string(kPin.size())) == 1);
  // A guard looks the passages up on the dashboard: personal data (their labels), so the search
  // is an audit event (who, how many, which search), in the journal and in the audit log.
  REQUIRE(add_dashboard_user(gw, "guard-li", "viewer", "guard-password-1") == 0);
  httplib::Client web("127.0.0.1", cfg.dashboard_port);
  auto signed_in =
      web.Post("/api/login", json{{"user", "guard-li"}, {"password", "guard-password-1"}}.dump(),
               "application/json");
  REQUIRE(signed_in);
  REQUIRE(signed_in->status == 200);
  const std::string cookie = signed_in->get_header_value("Set-Cookie");
  auto looked = web.Get("/api/events?kind=passage_granted",
                        httplib::Headers{{"Cookie", cookie.substr(0, cookie.find(';'))}});
  REQUIRE(looked);
  REQUIRE(looked->status == 200);
  const auto passages = json::parse(looked->body)["events"].size();
  CHECK(passages >= 2);
  const std::string viewed = kind_is("audit") +
                             " AND json_extract(anju_event_json(body), '$.attrs.action')="
                             "'events_view' AND json_extract(anju_event_json(body), "
                             "'$.attrs.user')='guard-li'";
  CHECK(wait_until([&] { return journal_count(gw, viewed) == 1; }, 10s));
  CHECK(journal_count(gw, viewed + " AND json_extract(anju_event_json(body), '$.attrs.reason')='" +
                              std::to_string(passages) + " passage records (passage_granted)'") ==
        1);
  std::string audit_log;
  CHECK(wait_until(
      [&] {
        audit_log.clear();
        run_shell(
            "'" + std::string(ANJU_PATH) + "' --data-dir '" + gw.data_dir().string() + "' audit",
            &audit_log);
        return audit_log.find("guard-li  events_view via dashboard  ok") != std::string::npos;
      },
      10s));
  INFO(audit_log);
  CHECK(audit_log.find(", chain intact\n") != std::string::npos);

  // Stopped: the log is complete and the journal checkpointed.
  REQUIRE(gw.term() == 0);

  // 1. The city: every byte of every message, topic and payload.
  const auto city_msgs = city_col.messages();
  CHECK(city_msgs.size() >= 9);
  for (const auto& m : city_msgs) {
    INFO("city " << m.topic << " " << m.payload);
    CHECK(joined(leaks(m.topic + " " + m.payload)).empty());
    for (const auto& h : {card_hash(kOsdpCard), card_hash(kWiegandCard)})
      CHECK(m.payload.find(h) == std::string::npos);
  }
  anju::contract::check_city_contract(city_msgs);

  // 2. The local bus: what anjud published there (its own tree).
  int own = 0;
  for (const auto& m : local_col.messages()) {
    if (m.topic.rfind("anju/", 0) != 0) continue;
    ++own;
    INFO("local " << m.topic << " " << m.payload);
    CHECK(joined(leaks(m.topic + " " + m.payload)).empty());
  }
  CHECK(own >= 4);  // the alerts: smoke twice, manhole, pump

  // 3. The log, line by line.
  const std::string log = gw.log();
  std::size_t start = 0;
  int lines = 0;
  while (start < log.size()) {
    auto end = log.find('\n', start);
    if (end == std::string::npos) end = log.size();
    const std::string line = log.substr(start, end - start);
    start = end + 1;
    ++lines;
    const auto found = leaks(line);
    INFO("log: " << line);
    CHECK(joined(found).empty());
  }
  CHECK(lines > 20);

  // 4. The journal, every table and column (events decoded to JSON: numbers as decimal). The
  // resident id may be only in attrs.label of passages.
  int labelled = 0;
  for (const auto& text : sql_strings(gw.db_path(), "SELECT anju_event_json(body) FROM events")) {
    json e = json::parse(text, nullptr, false);
    REQUIRE(e.is_object());
    const std::string kind = e.value("kind", "");
    if ((kind == "passage_granted" || kind == "passage_denied") && e.contains("attrs") &&
        e["attrs"].contains("label")) {
      labelled += e["attrs"]["label"].get<std::string>().find(kResident) != std::string::npos;
      e["attrs"].erase("label");
    }
    INFO("journal event " << text);
    CHECK(joined(leaks(e.dump())).empty());
  }
  CHECK(labelled == 2);
  for (const auto& table :
       sql_strings(gw.db_path(), "SELECT name FROM sqlite_master WHERE type='table'")) {
    if (table == "events") continue;
    for (const auto& column :
         sql_strings(gw.db_path(), "SELECT name FROM pragma_table_info('" + table + "')")) {
      for (const auto& value : sql_strings(
               gw.db_path(), "SELECT CAST(\"" + column + "\" AS BLOB) FROM \"" + table + "\"")) {
        INFO("journal " << table << "." << column << ": " << value);
        CHECK(joined(leaks(value)).empty());
      }
    }
  }

  // 5. Every file anjud wrote in its data dir (database, WAL, inbox, state files), as raw bytes:
  // no identifier stored as text anywhere, free pages included. (Events are binary there: the
  // resident's label is in the passages' records, checked above.)
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(gw.data_dir())) {
    if (!entry.is_regular_file()) continue;
    ++files;
    INFO("data file " << entry.path());
    CHECK(joined(leaks(read_file(entry.path()), false)).empty());
  }
  CHECK(files >= 2);
}
