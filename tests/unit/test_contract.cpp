// The published city contract (docs/contract/): the schemas load and hold together, their examples
// are valid, and every payload city_bridge builds — by its pure encoders and through the pipeline
// hook into the outbox — validates strictly against the schema its topic names. Strict: a member
// the code sends that the contract does not describe fails here, so the document cannot drift.
#include <catch2/catch.hpp>

#include <filesystem>
#include <random>
#include <set>

#include <yaml-cpp/yaml.h>

#include "anju/bridge/city_bridge.hpp"
#include "anju/bridge/outbox.hpp"
#include "anju/edge/alert.hpp"
#include "anju/edge/event.hpp"
#include "anju/edge/journal.hpp"
#include "anju/edge/uuid.hpp"
#include "contract_schemas.hpp"

using namespace anju::edge;
using namespace anju::bridge;
using anju::contract::check_uplink_message;
using anju::contract::schema_for_topic;
using anju::contract::schemas;
using nlohmann::json;

namespace {

constexpr std::int64_t kT0 = 1'800'000'000'000;
const std::string kGrid = "11010500100200300401";
const std::string kDivision = "110105001002";

struct ContractTmp {
  std::filesystem::path path;
  ContractTmp() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("anju-contract-" + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~ContractTmp() { std::filesystem::remove_all(path); }
};

Event make_event(EventKind kind, std::int64_t seq) {
  Event e;
  e.id = uuid_v7(kT0 + seq);
  e.seq = seq;
  e.ts_ms = kT0 + seq;
  e.mono_ns = 1'000'000 * seq;
  e.boot_id = "4f1c2a9e-0b7d-4e3a-9c51-2d8e6f7a1b30";
  e.clock_synced = true;
  e.site = "demo-compound";
  e.grid_code = kGrid;
  e.location = {"3", "2", "1201"};
  e.device = {"0x00158d0001a2b3c4", "smoke_detector", "smoke-1201", "11010500001340000001"};
  e.kind = kind;
  e.severity = 1;
  e.source = "test";
  return e;
}

Alert make_alert(EventKind kind) {
  Alert a;
  a.alert_id = uuid_v7(kT0);
  a.rule = std::string(to_string(kind));
  a.kind = kind;
  a.site = "demo-compound";
  a.grid_code = kGrid;
  a.location = {"3", "2", "1201"};
  a.device = {"0x00158d0001a2b3c4", "smoke_detector", "smoke-1201", ""};
  a.severity = 1;
  a.first_seen_ms = a.last_seen_ms = a.updated_ms = kT0;
  a.last_seq = 7;
  a.event_ids = {uuid_v7(kT0)};
  a.message = "smoke detected";
  return a;
}

// The alert payload as the bridge builds it, checked on the topic it goes to.
std::string check_alert(AlertChangeType type, const Alert& a, const std::string& division = "") {
  const AlertChange c{type, a, ""};
  const std::string id = uuid_v7(a.updated_ms);
  return check_uplink_message(alert_topic(a.site, a.kind), alert_payload(c, id, true, division));
}

std::vector<std::string> schema_enum(const std::string& ref) {
  const auto* doc = schemas().document(ref.substr(0, ref.find('#')));
  REQUIRE(doc);
  const auto& e = doc->at(json::json_pointer(ref.substr(ref.find('#') + 1)))["enum"];
  return e.get<std::vector<std::string>>();
}

}  // namespace

TEST_CASE("contract: the schemas load, every $ref resolves, every example is valid", "[contract]") {
  const auto& set = schemas();  // throws on a broken schema or an unresolved $ref
  const auto names = anju::contract::schema_names();
  CHECK(names.size() >= 8);
  for (const auto* must :
       {"envelope.json", "alert.json", "event.json", "device_status.json", "gateway_status.json",
        "summary.json", "command_request.json", "command_response.json"})
    CHECK(set.has(must));
  anju::bridge::schema::Options strict;
  strict.strict = true;
  for (const auto& name : names) {
    const json* doc = set.document(name);
    REQUIRE(doc);
    REQUIRE(doc->contains("examples"));
    CHECK(doc->value("$schema", "") == "https://json-schema.org/draft/2020-12/schema");
    for (const auto& ex : (*doc)["examples"]) {
      // the envelope describes only the common members: its example is a whole message
      const auto issues = set.validate(
          name, ex, name == "envelope.json" ? anju::bridge::schema::Options{} : strict);
      INFO(name << ": " << anju::bridge::schema::to_string(issues) << ex.dump());
      CHECK(issues.empty());
      // uplink messages also satisfy the common envelope
      if (name.rfind("command_", 0) != 0) CHECK(set.validate("envelope.json", ex).empty());
    }
  }
}

TEST_CASE("contract: the schemas reject what the contract forbids", "[contract]") {
  const auto& set = schemas();
  json ex = set.document("event.json")->at("examples")[0];
  CHECK(set.validate("event.json", ex).empty());
  auto bad = [&](const char* ptr, const json& v) {
    json j = ex;
    j[json::json_pointer(ptr)] = v;
    return !set.validate("event.json", j).empty();
  };
  CHECK(bad("/grid_code", "1101050010020030040"));       // 19 digits
  CHECK(bad("/division_code", "11010500100A"));          // not digits
  CHECK(bad("/device/gb28181", "1101050000134000000"));  // 19 digits
  CHECK(bad("/kind", "teleportation"));                  // unknown kind
  CHECK(bad("/severity", 0));                            // 1..4
  CHECK(bad("/id", "not-a-uuid"));
  CHECK(bad("/schema", 2));
  json missing = ex;
  missing.erase("site");
  CHECK_FALSE(set.validate("event.json", missing).empty());
  // unknown members: accepted by the published (lenient) reading, refused in strict mode
  json extra = ex;
  extra["new_optional_field"] = 1;
  CHECK(set.validate("event.json", extra).empty());
  anju::bridge::schema::Options strict;
  strict.strict = true;
  CHECK_FALSE(set.validate("event.json", extra, strict).empty());
}

TEST_CASE("contract: enums in the schemas list every kind and change the code knows",
          "[contract]") {
  const auto kinds = schema_enum("envelope.json#/$defs/event_kind");
  const std::set<std::string> in_schema(kinds.begin(), kinds.end());
  int known = 0;
  for (int i = 0;; ++i) {
    const auto k = static_cast<EventKind>(i);
    const auto name = std::string(to_string(k));
    if (event_kind_from_string(name) != k) break;
    ++known;
    CHECK(in_schema.count(name));
  }
  CHECK(known == static_cast<int>(in_schema.size()));
  for (const auto& k : kinds) CHECK(event_kind_from_string(k).has_value());

  const auto changes = schema_enum("alert.json#/properties/change");
  const std::set<std::string> change_set(changes.begin(), changes.end());
  for (auto t : {AlertChangeType::raised, AlertChangeType::repeated,
                 AlertChangeType::condition_cleared, AlertChangeType::condition_returned,
                 AlertChangeType::acknowledged, AlertChangeType::handled, AlertChangeType::closed,
                 AlertChangeType::suspended, AlertChangeType::resumed, AlertChangeType::escalated})
    CHECK(change_set.count(std::string(to_string(t))));
  CHECK(change_set.size() == 10);
}

TEST_CASE("contract: topic tree by class and kind", "[contract]") {
  CHECK(alert_topic("demo-compound", EventKind::smoke) == "anju/v1/demo-compound/alert/smoke");
  CHECK(event_topic("s1", EventKind::water_leak) == "anju/v1/s1/event/water_leak");
  CHECK(status_topic("s1", "0x00158d0001a2b3c4") == "anju/v1/s1/status/0x00158d0001a2b3c4");
  CHECK(summary_topic("s1", 300'000) == "anju/v1/s1/summary/5m");
  CHECK(summary_topic("s1", 3'600'000) == "anju/v1/s1/summary/1h");
  CHECK(summary_topic("s1", 86'400'000) == "anju/v1/s1/summary/1d");
  CHECK(summary_topic("s1", 10'000) == "anju/v1/s1/summary/10s");
  CHECK(period_name(1500) == "1500ms");
  // A device id is one topic level whatever it contains; it cannot pose as the gateway.
  CHECK(topic_level("modbus/1") == "modbus%2F1");
  CHECK(topic_level("a+b#c") == "a%2Bb%23c");
  CHECK(topic_level("门禁 1") == "%E9%97%A8%E7%A6%81%201");
  CHECK(topic_level("gateway") == "%67ateway");
  CHECK(topic_level("") == "~");
  CHECK(topic_level("x%41") == "x%2541");  // '%' itself is encoded: the mapping is one-to-one
  CHECK(status_topic("s1", "gateway") != "anju/v1/s1/status/gateway");
  // which schema a topic's payload follows
  CHECK(schema_for_topic("anju/v1/s1/alert/smoke") == "alert.json");
  CHECK(schema_for_topic("anju/v1/s1/event/contact") == "event.json");
  CHECK(schema_for_topic("anju/v1/s1/status/gateway") == "gateway_status.json");
  CHECK(schema_for_topic("anju/v1/s1/status/modbus%2F1") == "device_status.json");
  CHECK(schema_for_topic("anju/v1/s1/summary/5m") == "summary.json");
  CHECK(schema_for_topic("anju/v1/s1/alert").empty());  // the old flat topic is gone
  CHECK(schema_for_topic("anju/v2/s1/alert/smoke").empty());
}

TEST_CASE("contract: event payloads are schema-valid", "[contract]") {
  SECTION("binary kind, with division code and a reading") {
    Event e = make_event(EventKind::smoke, 12);
    e.active = true;
    e.values.push_back({"battery", 87, "%"});
    const auto p = event_payload(e, kDivision);
    CHECK(p["division_code"] == kDivision);
    CHECK(check_uplink_message(event_topic(e.site, e.kind), p.dump()).empty());
  }
  SECTION("reading without active, no division code, no GB/T 28181 code, empty location") {
    Event e = make_event(EventKind::temperature, 13);
    e.severity = 4;
    e.clock_synced = false;
    e.location = {};
    e.device.gb28181.clear();
    e.values.push_back({"temperature", -3.25, "C"});
    const auto p = event_payload(e);
    CHECK_FALSE(p.contains("division_code"));
    CHECK_FALSE(p.contains("active"));
    CHECK(check_uplink_message(event_topic(e.site, e.kind), p.dump()).empty());
  }
  SECTION("unicode names and attributes that must not go up") {
    Event e = make_event(EventKind::door_forced, 14);
    e.device.name = "3号楼 单元门 🚪";
    e.location = {"三号楼", "二单元", "东门"};
    e.attrs = {{"card", "0012345678"}};  // driver attributes are not part of the payload
    e.active = true;
    const auto text = event_payload(e, kDivision).dump();
    CHECK(text.find("0012345678") == std::string::npos);
    CHECK(check_uplink_message(event_topic(e.site, e.kind), text).empty());
  }
  SECTION("every kind") {
    for (int i = 0;; ++i) {
      const auto k = static_cast<EventKind>(i);
      if (event_kind_from_string(to_string(k)) != k) break;
      Event e = make_event(k, 100 + i);
      if (is_binary_kind(k)) e.active = (i % 2) == 0;
      INFO(to_string(k));
      CHECK(
          check_uplink_message(event_topic(e.site, k), event_payload(e, kDivision).dump()).empty());
    }
  }
}

TEST_CASE("contract: device status payloads are schema-valid", "[contract]") {
  Event off = make_event(EventKind::device_offline, 20);
  off.attrs = {{"reason", "no message for 3600 s"}};
  const auto p = status_payload(off, kDivision);
  CHECK(p["state"] == "offline");
  CHECK(p["reason"] == "no message for 3600 s");
  CHECK(check_uplink_message(status_topic(off.site, off.device.id), p.dump()).empty());
  Event on = make_event(EventKind::device_online, 21);
  on.device.id = "modbus/1";
  on.device.name = "水泵 1";
  const auto q = status_payload(on);
  CHECK(q["state"] == "online");
  CHECK_FALSE(q.contains("reason"));
  CHECK(check_uplink_message(status_topic(on.site, on.device.id), q.dump()).empty());
}

TEST_CASE("contract: alert payloads are schema-valid through the life-cycle", "[contract]") {
  Alert a = make_alert(EventKind::smoke);
  CHECK(check_alert(AlertChangeType::raised, a, kDivision) == "");
  a.value = 0.42;
  a.count = 3;
  a.version = 2;
  CHECK(check_alert(AlertChangeType::repeated, a) == "");
  a.condition_cleared = true;
  CHECK(check_alert(AlertChangeType::condition_cleared, a) == "");
  a.escalation_level = 1;
  a.escalated_ms = kT0 + 60'000;
  a.severity = 1;
  a.history.push_back({"escalate", "raised", "raised", "system", "rules", "", kT0 + 60'000});
  CHECK(check_alert(AlertChangeType::escalated, a, kDivision) == "");
  a.state = "acknowledged";
  a.history.push_back({"ack", "raised", "acknowledged", "周工", "city", "在路上", kT0 + 70'000});
  CHECK(check_alert(AlertChangeType::acknowledged, a) == "");
  a.suspended_from = "acknowledged";
  a.state = "suspended";
  a.history.push_back({"suspend", "acknowledged", "suspended", "u1", "dashboard", "", kT0 + 1});
  CHECK(check_alert(AlertChangeType::suspended, a) == "");
  a.suspended_from.clear();
  a.state = "acknowledged";
  a.history.push_back({"resume", "suspended", "acknowledged", "u1", "dashboard", "", kT0 + 2});
  CHECK(check_alert(AlertChangeType::resumed, a) == "");
  a.state = "handled";
  a.history.push_back({"handle", "acknowledged", "handled", "u1", "local_mqtt", "", kT0 + 3});
  CHECK(check_alert(AlertChangeType::handled, a) == "");
  a.state = "closed";
  a.close_reason = "resolved";
  a.history.push_back({"close", "handled", "closed", "u1", "local_mqtt", "", kT0 + 4});
  CHECK(check_alert(AlertChangeType::closed, a, kDivision) == "");

  SECTION("closed as a false alarm straight from raised") {
    Alert f = make_alert(EventKind::gas);
    f.state = "closed";
    f.close_reason = "false_alarm";
    f.history.push_back({"false_alarm", "raised", "closed", "u2", "city", "", kT0 + 5});
    CHECK(check_alert(AlertChangeType::closed, f) == "");
  }
  SECTION("suppressed (never sent by the bridge, but still a valid encoding)") {
    Alert s = make_alert(EventKind::water_leak);
    s.suppressed = true;
    CHECK(check_alert(AlertChangeType::raised, s) == "");
  }
  SECTION("the pipeline's own serialisation is spliced in unchanged") {
    Alert s = make_alert(EventKind::door_forced);
    s.device.name = "东门 门磁";
    const AlertChange c{AlertChangeType::raised, s, to_json(s).dump()};
    const auto text = alert_payload(c, uuid_v7(kT0), false, kDivision);
    CHECK(check_uplink_message(alert_topic(s.site, s.kind), text) == "");
    const auto j = json::parse(text);
    CHECK(j["alert"] == to_json(s));
    CHECK(j["division_code"] == kDivision);
    CHECK(j["clock_synced"] == false);
  }
  SECTION("an invalid state is caught") {
    Alert s = make_alert(EventKind::smoke);
    s.state = "lost";
    CHECK_FALSE(check_alert(AlertChangeType::raised, s).empty());
  }
}

TEST_CASE("contract: what the bridge puts in the outbox is on the topic tree and valid",
          "[contract]") {
  ContractTmp dir;
  JournalOptions o;
  o.path = (dir.path / "j.db").string();
  auto j = Journal::open(o, nullptr);
  OutboxCounters counters;
  CityBridgeOptions bo;
  bo.site = "demo-compound";
  bo.grid_code = kGrid;
  bo.division_code = kDivision;
  bo.summary_periods_ms = {300'000};
  bo.event_kinds = {EventKind::smoke, EventKind::temperature, EventKind::device_offline};
  CityBridge city(bo, *j, counters, nullptr);

  std::vector<Event> events;
  events.push_back(make_event(EventKind::smoke, 0));
  events.back().active = true;
  events.push_back(make_event(EventKind::temperature, 0));
  events.back().values.push_back({"temperature", 21.5, "C"});
  events.push_back(make_event(EventKind::device_offline, 0));
  events.back().device.id = "modbus/7";
  events.push_back(make_event(EventKind::device_online, 0));
  events.push_back(make_event(EventKind::contact, 0));  // not configured: no event message
  Alert raised = make_alert(EventKind::smoke);
  Alert suppressed = make_alert(EventKind::water_leak);
  suppressed.suppressed = true;
  std::vector<AlertChange> changes{{AlertChangeType::raised, raised, ""},
                                   {AlertChangeType::raised, suppressed, ""}};
  const std::int64_t start = kT0 - kT0 % 300'000;
  j->begin();
  for (auto& e : events) {
    e.ts_ms = start + 1000;
    j->append(e);
  }
  city.in_transaction(*j, events, changes);
  city.on_tick(*j, start + 1000);
  j->commit();
  j->begin();
  city.on_tick(*j, start + 300'000 + 1000);  // the first period is over: one summary
  j->commit();

  std::vector<std::pair<std::string, std::string>> rows;
  auto st = j->db().prepare("SELECT topic, payload FROM outbox ORDER BY oid");
  while (st.step()) rows.emplace_back(st.str(0), st.str(1));
  std::set<std::string> topics;
  for (const auto& [topic, payload] : rows) {
    topics.insert(topic);
    INFO(topic << " " << payload);
    CHECK(check_uplink_message(topic, payload) == "");
    const auto p = json::parse(payload);
    CHECK(p["division_code"] == kDivision);
    CHECK(p["grid_code"] == kGrid);
  }
  const std::set<std::string> expected{
      "anju/v1/demo-compound/alert/smoke",       "anju/v1/demo-compound/event/smoke",
      "anju/v1/demo-compound/event/temperature", "anju/v1/demo-compound/event/device_offline",
      "anju/v1/demo-compound/status/modbus%2F7", "anju/v1/demo-compound/status/0x00158d0001a2b3c4",
      "anju/v1/demo-compound/summary/5m"};
  CHECK(topics == expected);  // the suppressed water_leak alert and the contact event stay home
  CHECK(rows.size() == expected.size());
}

TEST_CASE("contract: the AsyncAPI document names every channel and only existing schemas",
          "[contract]") {
  const YAML::Node doc =
      YAML::LoadFile((anju::contract::contract_dir() / "asyncapi.yaml").string());
  CHECK(doc["asyncapi"].as<std::string>() == "2.6.0");
  std::set<std::string> channels;
  for (const auto& c : doc["channels"]) channels.insert(c.first.as<std::string>());
  for (const auto* must : {"anju/v1/{site}/alert/{kind}", "anju/v1/{site}/event/{kind}",
                           "anju/v1/{site}/status/{device}", "anju/v1/{site}/status/gateway",
                           "anju/v1/{site}/summary/{period}", "anju/v1/{site}/cmd/{name}"})
    CHECK(channels.count(must));
  CHECK(doc["servers"]["city-mqtts"]["protocol"].as<std::string>() == "secure-mqtt");
  int messages = 0;
  for (const auto& m : doc["components"]["messages"]) {
    const std::string ref = m.second["payload"]["$ref"].as<std::string>();
    INFO(ref);
    REQUIRE(ref.rfind("./schemas/", 0) == 0);
    CHECK(schemas().has(ref.substr(10)));
    ++messages;
  }
  CHECK(messages == 7);
  // every channel's message is defined
  for (const auto& c : doc["channels"]) {
    const auto op = c.second["subscribe"] ? c.second["subscribe"] : c.second["publish"];
    REQUIRE(op.IsDefined());
    const std::string ref = op["message"]["$ref"].as<std::string>();
    CHECK(doc["components"]["messages"][ref.substr(ref.rfind('/') + 1)].IsDefined());
  }
}
