// Commands from the city (anju/v1/<site>/cmd/<name>) against a real anjud, a real local broker and
// a real "city" broker: the city acknowledges and closes an alert (MQTT 5 response topic and
// correlation data), repeats a request (applied once), sends a stale one, asks for evidence
// without a token, queries the journal (paged, no personal data) and asks for diagnostics with an
// MQTT 3.1.1 client and reply_to. Every answer follows docs/contract/schemas/command_response.json
// and every command is an audit event in the journal.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "anju/edge/clock.hpp"
#include "city_contract.hpp"
#include "harness.hpp"
#include "requester.hpp"

using namespace anju::it;

namespace {

const std::string kSite = "demo-compound";
const std::string kCmd = "anju/v1/" + kSite + "/cmd/";

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json request(const std::string& id, json args = json::object()) {
  json j{{"schema", 1},
         {"request_id", id},
         {"user", "dispatcher-42"},
         {"issued_ms", now_ms()},
         {"expires_ms", now_ms() + 60'000}};
  if (!args.empty()) j["args"] = std::move(args);
  return j;
}

void check_answer(const json& body) {
  anju::contract::check_command_answer(body);
  CHECK(body.value("site", "") == kSite);
}

std::int64_t audits(const Anjud& gw, const std::string& action, bool ok) {
  return anju::contract::city_audits(gw, action, ok);
}

}  // namespace

TEST_CASE("the city acknowledges and closes an alert, queries the journal and asks for diag",
          "[e2e][city]") {
  Mosquitto local, city;
  local.start();
  city.start();
  Collector local_alerts(local.uri(), "anju/" + kSite + "/alert/+");
  Collector city_col(city.uri(), "anju/v1/" + kSite + "/#");
  local_alerts.publish("zigbee2mqtt/bridge/devices", demo_devices_json(), 1, true);
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  Anjud gw(cfg);
  gw.start();
  REQUIRE(gw.wait_devices(5, 15s));
  // Subscribed to its command topic once the uplink says connected.
  REQUIRE(wait_until(
      [&] {
        auto st = gw.status();
        return st && (*st)["uplink"].value("connected", false);
      },
      15s));

  local_alerts.publish("zigbee2mqtt/gas_3_2_1201_kitchen", R"({"gas":true})", 1, false);
  std::string alert_id;
  REQUIRE(local_alerts.wait_for(
      [&](const auto& ms) {
        for (const auto& m : ms) {
          auto j = json::parse(m.payload, nullptr, false);
          if (j.is_object() && j.value("rule", "") == "gas") alert_id = j.value("alert_id", "");
        }
        return !alert_id.empty();
      },
      15s));

  V5Requester dispatch(city.uri(), "city/dispatch-1/replies", "it-city-dispatch");
  // Acknowledge: applied, and the city sees the alert move with who and from where.
  const json ack = request("city-ack-1", {{"alert_id", alert_id}, {"note", "grid worker sent"}});
  dispatch.send(kCmd + "alert.ack", ack, "c1");
  auto r1 = dispatch.wait_reply("c1", 10s);
  REQUIRE(r1);
  check_answer(r1->body);
  CHECK(r1->body["request_id"] == "city-ack-1");
  CHECK(r1->body["ok"] == true);
  CHECK(r1->body["duplicate"] == false);
  CHECK(r1->body["result"]["state"] == "acknowledged");
  CHECK(city_col.wait_for(
      [&](const auto& ms) {
        for (const auto& m : ms) {
          auto j = json::parse(m.payload, nullptr, false);
          if (!j.is_object() || j.value("alert_id", "") != alert_id || !j.contains("alert"))
            continue;
          if (j["alert"].value("state", "") != "acknowledged") continue;
          for (const auto& h : j["alert"]["history"])
            if (h.value("via", "") == "city" && h.value("by", "") == "dispatcher-42" &&
                h.value("note", "") == "grid worker sent")
              return true;
        }
        return false;
      },
      10s));

  // The same request again (a city retry): the first answer, nothing applied twice.
  dispatch.send(kCmd + "alert.ack", ack, "c2");
  auto r2 = dispatch.wait_reply("c2", 10s);
  REQUIRE(r2);
  CHECK(r2->body["ok"] == true);
  CHECK(r2->body["duplicate"] == true);

  // A stale request is refused and says so.
  json stale = request("city-close-old", {{"alert_id", alert_id}});
  stale["expires_ms"] = now_ms() - 120'000;
  dispatch.send(kCmd + "alert.close", stale, "c3");
  auto r3 = dispatch.wait_reply("c3", 10s);
  REQUIRE(r3);
  check_answer(r3->body);
  CHECK(r3->body["ok"] == false);
  CHECK(r3->body.value("error", "").find("command expired") == 0);

  // Evidence without the city's token: refused, and the refusal is audited.
  dispatch.send(kCmd + "evidence.request", request("city-ev-1", {{"alert_id", alert_id}}), "c4");
  auto r4 = dispatch.wait_reply("c4", 10s);
  REQUIRE(r4);
  check_answer(r4->body);
  CHECK(r4->body["ok"] == false);
  CHECK(r4->body.value("error", "").find("unauthorised: evidence.request") == 0);

  // Close it from the city.
  dispatch.send(kCmd + "alert.close", request("city-close-1", {{"alert_id", alert_id}}), "c5");
  auto r5 = dispatch.wait_reply("c5", 10s);
  REQUIRE(r5);
  CHECK(r5->body["ok"] == true);
  CHECK(r5->body["result"]["state"] == "closed");

  // The journal, queried from the city: the gas event as the city's event payload (no attrs).
  dispatch.send(kCmd + "events.query", request("city-q-1", {{"kind", "gas"}, {"limit", 10}}), "c6");
  auto pages = dispatch.wait_replies("c6", 1, 10s);
  REQUIRE(pages.size() == 1);
  const json& q = pages[0].body;
  check_answer(q);
  CHECK(q["ok"] == true);
  CHECK(q["page"] == 0);
  CHECK(q["last"] == true);
  REQUIRE(q["result"]["events"].size() == 1);
  const json& ev = q["result"]["events"][0];
  CHECK(ev["kind"] == "gas");
  CHECK(ev["device"]["id"] == "0x00158d0000000002");
  CHECK_FALSE(ev.contains("attrs"));
  CHECK(q["result"]["next_after_seq"] == ev["seq"]);

  // An MQTT 3.1.1 client names where it listens in the payload. A command on another site's
  // topic first: this gateway is not subscribed there, so it never answers it.
  Collector v3_replies(city.uri(), "city/v3/+");
  json other = request("other-site-diag");
  other["reply_to"] = "city/v3/other";
  v3_replies.publish("anju/v1/other-site/cmd/diag", other.dump(), 1, false);
  json diag = request("city-diag-1");
  diag["reply_to"] = "city/v3/diag";
  v3_replies.publish(kCmd + "diag", diag.dump(), 1, false);
  REQUIRE(v3_replies.wait_for(
      [](const auto& ms) {
        for (const auto& m : ms)
          if (m.topic == "city/v3/diag") return true;
        return false;
      },
      10s));
  for (const auto& m : v3_replies.messages()) {
    CHECK(m.topic == "city/v3/diag");
    const auto body = json::parse(m.payload);
    check_answer(body);
    CHECK(body["ok"] == true);
    CHECK(body["result"]["site"] == kSite);
    CHECK(body["result"].value("version", "") != "");
    CHECK(body["result"]["uplink"]["commands"].get<int>() >= 6);
  }

  // Every command is in the journal as an audit event, accepted or refused.
  CHECK(wait_until([&] { return audits(gw, "diag", true) == 1; }, 10s));  // the last one
  CHECK(audits(gw, "alert.ack", true) == 2);
  CHECK(audits(gw, "alert.close", false) == 1);  // the stale one
  CHECK(audits(gw, "evidence.request", false) == 1);
  CHECK(audits(gw, "events.query", true) == 1);
  CHECK(gw.term() == 0);
  anju::contract::check_city_contract(city_col.messages());
}
