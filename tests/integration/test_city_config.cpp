// config.apply and rules.update from the city against a real anjud and real brokers: a rules
// update is put on trial, kept once the city broker is reached, used at once and after a restart;
// a config that breaks the uplink is rolled back by itself; anjud killed during a trial comes back
// on the previous config; invalid, unsigned and repeated requests are refused or answered once.
// Every answer follows docs/contract/schemas/command_response.json.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "city_contract.hpp"
#include "city_signer.hpp"
#include "harness.hpp"
#include "requester.hpp"

using namespace anju::it;

namespace {

const std::string kSite = "demo-compound";
const std::string kCmd = "anju/v1/" + kSite + "/cmd/";

std::int64_t in_a_minute() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch() + std::chrono::minutes(1))
      .count();
}

std::string config_source(const Anjud& gw) {
  auto st = gw.status();
  if (!st || !st->contains("config")) return "";
  return (*st)["config"].value("source", "");
}

}  // namespace

TEST_CASE(
    "the city updates the rules and applies configs on trial: kept when healthy, rolled back "
    "when the uplink breaks or anjud dies during the trial",
    "[e2e][city][config]") {
  Mosquitto local, city;
  local.start();
  city.start();
  TempDir secrets("anju-it-city-config");
  anju::test::CitySigner signer;
  write_file(secrets / "city.pub", signer.public_pem());
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  cfg.command_key_file = (secrets / "city.pub").string();
  Anjud gw(cfg);
  Collector local_alerts(local.uri(), "anju/" + kSite + "/alert/+");
  local_alerts.publish("zigbee2mqtt/bridge/devices", demo_devices_json(), 1, true);
  const auto connected = [&] {
    return wait_until(
        [&] {
          auto st = gw.status();
          return st && st->contains("uplink") && (*st)["uplink"].value("connected", false);
        },
        20s);
  };
  gw.start();
  auto diag = [&] { return "anjud log:\n" + tail(gw.log(), 6000); };
  INFO(diag());
  REQUIRE(gw.wait_devices(5, 15s));
  REQUIRE(connected());
  CHECK(config_source(gw) == "file");

  V5Requester dispatch(city.uri(), "city/ops/replies", "it-city-ops");
  auto command = [&](const std::string& name, const std::string& rid, const json& args,
                     const std::string& corr) {
    json req{
        {"schema", 1}, {"request_id", rid}, {"user", "grid-ops-3"}, {"expires_ms", in_a_minute()}};
    req["authorization"] = signer.token(kSite, name, rid, in_a_minute(), args);
    dispatch.send(kCmd + name, req, corr);
  };

  // rules.update: the temperature threshold from 45 to 30 °C, with no hold time.
  const json rules = {{"heartbeat_timeout_s", 0},
                      {"weak_linkquality", 0},
                      {"thresholds",
                       {{{"name", "temperature_high"},
                         {"kind", "temperature"},
                         {"above", 30},
                         {"hysteresis", 2},
                         {"hold_s", 0},
                         {"severity", 2}}}}};
  command("rules.update", "rules-1", {{"rules", rules}, {"health_timeout_s", 30}}, "u1");
  auto pages = dispatch.wait_replies("u1", 2, 40s);
  INFO(diag());
  REQUIRE(pages.size() == 2);
  for (const auto& p : pages) anju::contract::check_command_answer(p.body);
  CHECK(pages[0].body["ok"] == true);
  CHECK(pages[0].body["page"] == 0);
  CHECK(pages[0].body["last"] == false);
  CHECK(pages[0].body["result"]["state"] == "trial");
  CHECK(pages[0].body["result"]["health_timeout_s"] == 30);
  CHECK(pages[1].body["ok"] == true);
  CHECK(pages[1].body["page"] == 1);
  CHECK(pages[1].body["last"] == true);
  CHECK(pages[1].body["result"]["state"] == "applied");
  REQUIRE(connected());
  CHECK(config_source(gw) == "city");
  CHECK(fs::exists(gw.data_dir() / "config.city.yaml"));
  // The new rule works: 35 °C is now an alert.
  local_alerts.publish("zigbee2mqtt/climate_3_2_1201", R"({"temperature":35.0,"humidity":40})", 1,
                       false);
  CHECK(local_alerts.wait_for(
      [](const auto& ms) {
        for (const auto& m : ms) {
          auto j = json::parse(m.payload, nullptr, false);
          if (j.is_object() && j.value("rule", "") == "temperature_high") return true;
        }
        return false;
      },
      15s));

  // The same request again: answered as known, nothing restarts.
  const auto pid = gw.pid();
  command("rules.update", "rules-1", {{"rules", rules}}, "u2");
  auto again = dispatch.wait_reply("u2", 10s);
  REQUIRE(again);
  CHECK(again->body["ok"] == true);
  CHECK(again->body["duplicate"] == true);

  // Refused before anything changes: a config with errors (each named), one for another site,
  // and a request without the city's token.
  std::string broken = read_file(gw.config_path());
  broken.replace(broken.find("interval_s:"), 11, "interval_s: often\n  colour:");
  command("config.apply", "apply-bad", {{"config", broken}}, "b1");
  auto bad = dispatch.wait_reply("b1", 10s);
  REQUIRE(bad);
  anju::contract::check_command_answer(bad->body);
  CHECK(bad->body["ok"] == false);
  const std::string error = bad->body.value("error", "");
  CHECK(error.find("the new config is not valid (2 problems): <the city's config>:") == 0);
  CHECK(error.find("summary.colour") != std::string::npos);
  std::string other_site = read_file(gw.config_path());
  other_site.replace(other_site.find("id: demo-compound"), 17, "id: other-compound");
  command("config.apply", "apply-other", {{"config", other_site}}, "b2");
  auto other = dispatch.wait_reply("b2", 10s);
  REQUIRE(other);
  CHECK(other->body.value("error", "").find("site.id: 'other-compound' is not this gateway's") !=
        std::string::npos);
  json unsigned_req{{"schema", 1},
                    {"request_id", "apply-unsigned"},
                    {"user", "x"},
                    {"expires_ms", in_a_minute()}};
  dispatch.send(kCmd + "config.apply", unsigned_req, "b3");
  auto unsigned_answer = dispatch.wait_reply("b3", 10s);
  REQUIRE(unsigned_answer);
  CHECK(unsigned_answer->body.value("error", "") ==
        "unauthorised: config.apply needs the city's signed 'authorization' token");
  CHECK(gw.pid() == pid);
  CHECK(config_source(gw) == "city");

  // A config that points the uplink at a port nobody listens on: on trial for 10 s, then rolled
  // back by itself; the answer's last page says why, sent once the old config is connected.
  std::string cut_off = read_file(gw.data_dir() / "config.city.yaml");
  const std::string city_port = std::to_string(city.port());
  const auto at = cut_off.find(city_port);
  REQUIRE(at != std::string::npos);
  cut_off.replace(at, city_port.size(), std::to_string(pick_free_port()));
  command("config.apply", "apply-cut-off", {{"config", cut_off}, {"health_timeout_s", 10}}, "c1");
  pages = dispatch.wait_replies("c1", 2, 40s);
  INFO(diag());
  REQUIRE(pages.size() == 2);
  for (const auto& p : pages) anju::contract::check_command_answer(p.body);
  CHECK(pages[0].body["result"]["state"] == "trial");
  CHECK(pages[1].body["ok"] == false);
  CHECK(pages[1].body["result"]["state"] == "rolled_back");
  CHECK(pages[1]
            .body.value("error", "")
            .find("the gateway did not reach the city broker within 10 s with the new config") ==
        0);
  REQUIRE(connected());
  CHECK(config_source(gw) == "city");
  CHECK(fs::exists(gw.data_dir() / "config.rejected.yaml"));
  CHECK(gw.pid() == pid);  // the same process, started again in place

  // anjud killed during a trial: the next start goes back to the last good config.
  command("config.apply", "apply-killed", {{"config", cut_off}, {"health_timeout_s", 120}}, "k1");
  REQUIRE(dispatch.wait_reply("k1", 10s));
  REQUIRE(wait_until([&] { return config_source(gw) == "trial"; }, 20s));
  gw.kill9();
  gw.start();
  pages = dispatch.wait_replies("k1", 2, 30s);
  REQUIRE(pages.size() == 2);
  CHECK(pages[1].body["ok"] == false);
  CHECK(pages[1].body.value("error", "") ==
        "anjud stopped or crashed during the trial, before it reached the city broker");
  REQUIRE(connected());
  CHECK(config_source(gw) == "city");
  CHECK(gw.log().find("the city's new config was rolled back: anjud stopped or crashed") !=
        std::string::npos);

  // A plain restart keeps the city's config.
  REQUIRE(gw.term() == 0);
  gw.start();
  REQUIRE(connected());
  CHECK(config_source(gw) == "city");

  // Every request and every outcome is in the journal as an audit event.
  CHECK(
      wait_until([&] { return anju::contract::city_audits(gw, "config.apply", false) == 5; }, 10s));
  CHECK(anju::contract::city_audits(gw, "rules.update", true) ==
        3);  // trial, applied, the duplicate
  CHECK(anju::contract::city_audits(gw, "config.apply", true) == 2);  // the two trials that began
  CHECK(gw.term() == 0);

  // The audit log, apart from the journal, has them all too, across the restarts, chained.
  std::string out;
  const int rc = run_shell("'" + std::string(ANJU_PATH) + "' --data-dir '" +
                               gw.data_dir().string() + "' audit --last 100 --json",
                           &out);
  INFO(out);
  CHECK(rc == 0);
  const auto log = json::parse(out.substr(std::min(out.find('{'), out.size())), nullptr, false);
  REQUIRE(log.is_object());
  CHECK(log["ok"] == true);
  int applies = 0, rules_updates = 0;
  for (const auto& e : log["entries"]) {
    const auto action = e["event"]["attrs"].value("action", "");
    applies += action == "config.apply" ? 1 : 0;
    rules_updates += action == "rules.update" ? 1 : 0;
  }
  CHECK(applies == 7);
  CHECK(rules_updates == 3);
}
