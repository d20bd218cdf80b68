// Property management's side of the alert life-cycle over the local bus: commands on
// anju/<site>/cmd/alert/<id>, answered on the MQTT 5 response topic with the correlation data, or
// on reply_to for an MQTT 3.1.1 client; idempotent by request id; the city sees each transition.
#include <catch2/catch.hpp>

#include <condition_variable>
#include <mutex>

#include "harness.hpp"
#include "requester.hpp"

using namespace anju::it;

namespace {

const std::string kSite = "demo-compound";

json parse(const std::string& s) {
  return json::parse(s, nullptr, false);
}

}  // namespace

TEST_CASE("property management acknowledges and closes an alert over local MQTT", "[e2e]") {
  Mosquitto local, city;
  local.start();
  city.start();
  Collector city_col(city.uri(), "anju/v1/" + kSite + "/alert/#");
  Collector local_alerts(local.uri(), "anju/" + kSite + "/alert/+");
  local_alerts.publish("zigbee2mqtt/bridge/devices", demo_devices_json(), 1, true);
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  Anjud gw(cfg);
  gw.start();
  REQUIRE(gw.wait_devices(5, 15s));

  local_alerts.publish("zigbee2mqtt/gas_3_2_1201_kitchen", R"({"gas":true})", 1, false);
  std::string alert_id;
  REQUIRE(local_alerts.wait_for(
      [&](const auto& ms) {
        for (const auto& m : ms) {
          auto j = parse(m.payload);
          if (j.is_object() && j.value("rule", "") == "gas") alert_id = j.value("alert_id", "");
        }
        return !alert_id.empty();
      },
      15s));

  V5Requester pm(local.uri(), "pm/console-1/replies");
  const json ack{
      {"action", "ack"}, {"user", "wang.wei"}, {"note", "on my way"}, {"request_id", "req-ack-1"}};
  pm.send("anju/" + kSite + "/cmd/alert/" + alert_id, ack, "corr-1");
  auto r1 = pm.wait_reply("corr-1", 10s);
  REQUIRE(r1);
  CHECK(r1->body.value("ok", false));
  CHECK_FALSE(r1->body.value("duplicate", true));
  CHECK(r1->body["alert"].value("state", "") == "acknowledged");

  // The same request again: answered as before, applied once.
  pm.send("anju/" + kSite + "/cmd/alert/" + alert_id, ack, "corr-2");
  auto r2 = pm.wait_reply("corr-2", 10s);
  REQUIRE(r2);
  CHECK(r2->body.value("ok", false));
  CHECK(r2->body.value("duplicate", false));

  // An illegal step is refused with the reason.
  pm.send("anju/" + kSite + "/cmd/alert/" + alert_id,
          {{"action", "ack"}, {"user", "li"}, {"request_id", "req-ack-2"}}, "corr-3");
  auto r3 = pm.wait_reply("corr-3", 10s);
  REQUIRE(r3);
  CHECK_FALSE(r3->body.value("ok", true));
  CHECK(r3->body.value("error", "").find("only a raised alert") != std::string::npos);

  // A malformed command is refused too, and says why.
  pm.send("anju/" + kSite + "/cmd/alert/" + alert_id, {{"action", "ack"}, {"user", "li"}},
          "corr-4");
  auto r4 = pm.wait_reply("corr-4", 10s);
  REQUIRE(r4);
  CHECK(r4->body.value("error", "") == "missing field 'request_id'");

  // An MQTT 3.1.1 client names its reply topic in the payload.
  Collector v3_replies(local.uri(), "pm/console-2/replies");
  local_alerts.publish("anju/" + kSite + "/cmd/alert/" + alert_id,
                       json{{"action", "close"},
                            {"user", "zhao"},
                            {"request_id", "req-close-1"},
                            {"reply_to", "pm/console-2/replies"}}
                           .dump(),
                       1, false);
  REQUIRE(v3_replies.wait_for(
      [](const auto& ms) {
        for (const auto& m : ms)
          if (parse(m.payload).value("ok", false)) return true;
        return false;
      },
      10s));

  // The city saw both transitions of the same alert, in order.
  std::vector<std::string> changes;
  REQUIRE(city_col.wait_for(
      [&](const auto& ms) {
        changes.clear();
        for (const auto& m : ms) {
          auto j = parse(m.payload);
          if (j.is_object() && j.value("alert_id", "") == alert_id)
            changes.push_back(j.value("change", ""));
        }
        return std::find(changes.begin(), changes.end(), "closed") != changes.end();
      },
      15s));
  REQUIRE(changes.size() == 3);
  CHECK(changes[0] == "raised");
  CHECK(changes[1] == "acknowledged");
  CHECK(changes[2] == "closed");

  // Closed: the retained local copy is gone, so a new dashboard does not show it. The broker
  // sends a new subscriber's retained messages before anything published after it subscribed,
  // so once a marker published now has arrived, every retained message has too.
  Collector fresh(local.uri(), "anju/" + kSite + "/alert/+");
  fresh.publish("anju/" + kSite + "/alert/zz-test-marker", "{}", 1, false);
  REQUIRE(fresh.wait_for(
      [](const auto& ms) {
        return std::any_of(ms.begin(), ms.end(),
                           [](const Message& m) { return m.topic.ends_with("zz-test-marker"); });
      },
      10s));
  for (const auto& m : fresh.messages()) CHECK(m.topic.find(alert_id) == std::string::npos);

  // The journal has both transitions as events.
  CHECK(sql_i64(gw.db_path(), "SELECT count(*) FROM events WHERE kind='alert_transition'") == 2);
  CHECK(gw.term() == 0);
}
