// Commands from the city (cloud-bridge/city_command.cpp): the contract's own request examples are
// accepted, every kind of bad request is refused with a reason that names what is wrong, and the
// answers validate strictly against docs/contract/schemas/command_response.json.
#include <catch2/catch.hpp>

#include <string>

#include "anju/bridge/city_command.hpp"
#include "contract_schemas.hpp"

using namespace anju::bridge;
using anju::contract::load_schema_file;
using anju::contract::schemas;
using nlohmann::json;

namespace {

constexpr std::int64_t kNow = 1'800'000'000'000;

json request(json args = json::object()) {
  json j{{"schema", 1},
         {"request_id", "c-1"},
         {"user", "dispatcher-42"},
         {"issued_ms", kNow - 1000},
         {"expires_ms", kNow + 60'000}};
  if (!args.empty()) j["args"] = std::move(args);
  return j;
}

std::string refusal(const std::string& name, const json& j) {
  auto r = parse_city_command(name, j.dump(), kNow);
  REQUIRE_FALSE(r.command);
  return r.error;
}

void check_response(const std::string& payload) {
  anju::bridge::schema::Options strict;
  strict.strict = true;
  const auto issues = schemas().validate("command_response.json", json::parse(payload), strict);
  INFO(payload);
  CHECK(anju::bridge::schema::to_string(issues).empty());
}

}  // namespace

TEST_CASE("the contract's request examples are accepted by the parser", "[city][command]") {
  const json schema = load_schema_file("command_request.json");
  REQUIRE(schema["examples"].size() >= 2);
  for (const auto& ex : schema["examples"]) {
    const std::int64_t before_expiry = ex["expires_ms"].get<std::int64_t>() - 1;
    auto r = parse_city_command("alert.ack", ex.dump(), before_expiry);
    INFO(ex.dump() << " -> " << r.error);
    REQUIRE(r.command);
    CHECK(r.command->alert_id == ex["args"]["alert_id"]);
    CHECK(r.command->user == ex["user"]);
  }
  // Every command name the contract lists is one the parser knows, and no other.
  for (const auto& n : schema["$defs"]["command_name"]["enum"])
    CHECK(city_command_from_string(n.get<std::string>()));
  CHECK(schema["$defs"]["command_name"]["enum"].size() == 8);
}

TEST_CASE("city alert commands carry the alert id, the note and the 3.1.1 reply topic",
          "[city][command]") {
  json j = request({{"alert_id", "01938a2e-7c50-7aaa-9bbb-ccccdddd0001"}, {"note", "on the way"}});
  j["reply_to"] = "city/replies/7";
  auto r = parse_city_command("alert.close", j.dump(), kNow);
  REQUIRE(r.command);
  CHECK(r.command->name == CityCommandName::alert_close);
  CHECK(r.command->alert_id == "01938a2e-7c50-7aaa-9bbb-ccccdddd0001");
  CHECK(r.command->note == "on the way");
  CHECK(r.command->reply_to == "city/replies/7");
  CHECK(r.command->expires_ms == kNow + 60'000);
}

TEST_CASE("events.query arguments are bounded", "[city][command]") {
  auto r = parse_city_command(
      "events.query", request({{"after_seq", 41}, {"kind", "smoke"}, {"limit", 20}}).dump(), kNow);
  REQUIRE(r.command);
  CHECK(r.command->query.after_seq == 41);
  CHECK(r.command->query.kind == anju::edge::EventKind::smoke);
  CHECK(r.command->query.limit == 20);
  auto d = parse_city_command("events.query", request().dump(), kNow);
  REQUIRE(d.command);
  CHECK(d.command->query.limit == 100);
  CHECK(refusal("events.query", request({{"limit", 501}})) ==
        "'args.limit' must be between 1 and 500");
  CHECK(refusal("events.query", request({{"kind", "fire"}})) ==
        "'args.kind': unknown event kind 'fire'");
  CHECK(refusal("events.query", request({{"after_seq", -1}})).find("args.after_seq") !=
        std::string::npos);
  CHECK(refusal("events.query", request({{"rows", 1}})).find("unknown member 'args.rows'") !=
        std::string::npos);
}

TEST_CASE("bad city commands are refused with a reason that names what is wrong",
          "[city][command]") {
  const json ack_args = {{"alert_id", "a1"}};
  CHECK(refusal("alert.open", request(ack_args)).find("unknown command 'alert.open'") == 0);
  json expired = request(ack_args);
  expired["expires_ms"] = kNow - 90'000;
  CHECK(refusal("alert.ack", expired).find("command expired 90 s ago") == 0);
  json no_id = request(ack_args);
  no_id.erase("request_id");
  CHECK(refusal("alert.ack", no_id) == "'request_id' is required");
  json no_expiry = request(ack_args);
  no_expiry.erase("expires_ms");
  CHECK(refusal("alert.ack", no_expiry) == "'expires_ms' is required");
  json v2 = request(ack_args);
  v2["schema"] = 2;
  CHECK(refusal("alert.ack", v2).find("'schema' must be 1") == 0);
  json typo = request(ack_args);
  typo["exipres_ms"] = 1;
  CHECK(refusal("alert.ack", typo).find("unknown member 'exipres_ms'") == 0);
  CHECK(refusal("alert.ack", request()) == "'args.alert_id' is required");
  CHECK(refusal("alert.ack", request({{"alert_id", "a/+"}})) ==
        "'args.alert_id' is not an alert id");
  json wild = request(ack_args);
  wild["reply_to"] = "city/#";
  CHECK(refusal("alert.ack", wild).find("'reply_to' must be a topic") == 0);
  CHECK(refusal("diag", request({{"x", 1}})) == "diag takes no args");
  for (const char* name : {"config.apply", "rules.update", "credentials.sync", "evidence.request"})
    CHECK(refusal(name, request(ack_args)).find("unauthorised: ") == 0);

  // Found by fuzz_city_command: a topic level that is not UTF-8 made the answer unserialisable.
  const auto odd = parse_city_command("eve\xafts.query", request().dump(), kNow);
  CHECK(odd.error.find("unknown command '(not ASCII)'") == 0);
  CHECK_FALSE(
      json::parse(city_command_response("s", "r", kNow, false, false, "bad \xff")).is_discarded());
  CHECK(parse_city_command("diag", "{", kNow).error == "command is not valid JSON");
  CHECK(parse_city_command("diag", "[1]", kNow).error == "command must be a JSON object");
  CHECK(parse_city_command("diag", std::string(kMaxCityCommandBytes + 1, ' '), kNow)
            .error.find("command too large") == 0);
}

TEST_CASE("a refused command can still be answered where the city listens", "[city][command]") {
  json j = request();
  j["reply_to"] = "city/replies/9";
  j["schema"] = "one";
  auto r = parse_city_command("diag", j.dump(), kNow);
  REQUIRE_FALSE(r.command);
  CHECK(r.request_id == "c-1");
  CHECK(r.reply_to == "city/replies/9");
}

TEST_CASE("answers to city commands follow the contract", "[city][command][contract]") {
  check_response(city_command_response("demo-compound", "c-1", kNow, true, false, "",
                                       json{{"alert_id", "a1"}, {"state", "acknowledged"}}));
  check_response(city_command_response("demo-compound", "c-2", kNow, false, false,
                                       "command expired 3 s ago (expires_ms 1)"));
  check_response(city_command_response("demo-compound", "c-3", kNow, true, true, ""));
  check_response(city_command_response("demo-compound", "q-1", kNow, true, false, "",
                                       json{{"events", json::array()}, {"next_after_seq", 0}}, 0,
                                       true));
  // Unreadable request id: still a valid answer.
  check_response(city_command_response("demo-compound", "", kNow, false, false, "not JSON"));
}
