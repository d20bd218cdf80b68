// Access control inside the real anjud, from its YAML: an OSDP reader (a simulated PD on a pseudo-
// terminal, which anjud opens as its RS-485 line) presents cards; anjud decides locally from the
// credentials file, answers the reader (LED, lock pulse), journals the passage and sends it to
// the city with the card's pseudonym only; repeated denials raise an alert; SIGHUP reloads the
// credentials (a new resident's card works without a restart). Real Mosquittos, real anjud.
#include <signal.h>
#include <sys/stat.h>
#include <catch2/catch.hpp>

#include <string>

#include "anju/drivers/credentials.hpp"
#include "city_contract.hpp"
#include "harness.hpp"
#include "osdp_pd_sim.hpp"

using namespace anju::it;
using namespace anju::sim;
namespace acs = anju::drivers::access;

namespace {

const std::string kSite = "demo-compound";
const std::string kCityEvent = "anju/v1/" + kSite + "/event";
const std::string kCityAlert = "anju/v1/" + kSite + "/alert";
constexpr const char* kKeyHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

acs::PseudonymKey site_key() {
  acs::PseudonymKey k{};
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(i);
  return k;
}

std::string card_hash(std::uint32_t facility, std::uint32_t number) {
  return acs::wiegand_pseudonym(site_key(), wiegand::Format::h10301_26, facility, number);
}

std::string credentials_json(const std::vector<std::string>& hashes) {
  json creds = json::array();
  for (std::size_t i = 0; i < hashes.size(); ++i)
    creds.push_back({{"hash", hashes[i]},
                     {"label", "resident " + std::to_string(i + 1)},
                     {"access", json::array({{{"doors", "gates"}, {"schedule", "always"}}})}});
  json j = {
      {"version", 1},
      {"utc_offset_minutes", 480},
      {"door_groups", {{"gates", {"gate-north"}}}},
      {"schedules",
       {{"always",
         {{"windows", json::array({{{"days", "all"}, {"from", "00:00"}, {"to", "24:00"}}})}}}}},
      {"credentials", creds}};
  return j.dump(2);
}

int count_city(const std::vector<Message>& ms, const std::string& topic, const std::string& kind,
               const std::function<bool(const json&)>& pred = {}) {
  int n = 0;
  for (const auto& m : ms) {
    if (!anju::contract::under(m.topic, topic)) continue;
    auto j = json::parse(m.payload, nullptr, false);
    if (!j.is_object()) continue;
    const json& body = topic == kCityAlert ? j.value("alert", json::object()) : j;
    const std::string k = topic == kCityAlert ? body.value("rule", "") : body.value("kind", "");
    if (k == kind && (!pred || pred(body))) ++n;
  }
  return n;
}

// Passages of `kind` in the journal for the credential pseudonym `hash` at gate-north.
std::int64_t journal_passages(const Anjud& gw, const std::string& kind, const std::string& hash) {
  return sql_i64(
      gw.db_path(),
      "SELECT count(*) FROM events WHERE json_extract(anju_event_json(body), '$.kind')='" + kind +
          "' AND json_extract(anju_event_json(body), '$.attrs.credential')='" + hash +
          "' AND json_extract(anju_event_json(body), '$.attrs.door')='gate-north'");
}

}  // namespace

TEST_CASE("OSDP readers configured in anju.yaml decide locally and report to the city",
          "[e2e][access]") {
  Mosquitto local, city;
  local.start();
  city.start();
  Collector city_col(city.uri(), "anju/v1/" + kSite + "/#");
  Pty pty;
  PdSim sim(pty.master, {sim_pd(1)});

  TempDir secrets("anju-it-access");
  write_file(secrets / "site.key", std::string(kKeyHex) + "\n");
  ::chmod((secrets / "site.key").c_str(), 0600);
  const std::string resident = card_hash(12, 3456);
  const std::string newcomer = card_hash(12, 777);
  REQUIRE(resident.size() == 32);
  write_file(secrets / "credentials.json", credentials_json({resident}));

  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  cfg.event_kinds = {"passage_granted", "passage_denied", "device_offline", "device_online"};
  Anjud gw(cfg);
  write_file(gw.config_path(), read_file(gw.config_path()) + "\naccess:\n  site_key_file: " +
                                   (secrets / "site.key").string() + "\n  credentials_file: " +
                                   (secrets / "credentials.json").string() + R"(
  osdp:
    - name: north
      device: )" + pty.name + R"(
      baud: 115200
      reply_timeout_ms: 100
      poll_interval_ms: 10
      readers:
        - address: 1
          id: reader-north-in
          door: gate-north
          room: north gate
          controls_lock: true
          lock_output: 0
          lock_pulse_ms: 2000
)");
  gw.start();
  auto diag = [&] {
    std::string s = "anjud log:\n" + tail(gw.log(), 5000);
    if (auto st = gw.status()) s += "\nstatus: " + st->dump();
    return s;
  };
  const bool online = wait_until(
      [&] {
        auto st = gw.status();
        return st && st->contains("osdp") && (*st)["osdp"][0]["readers"][0].value("online", false);
      },
      20s);
  INFO(diag());
  REQUIRE(online);
  CHECK((*gw.status())["credentials"] == 1);

  // A resident's card: granted, the reader shows it and pulses the lock; the journal keeps the
  // passage with the card's pseudonym (never its number); the city gets the passage at the door
  // without any credential (identity stays on the gateway).
  sim.with(1, [](SimPd& p) { p.cards.push_back(raw_reply(h10301(12, 3456))); });
  REQUIRE(sim.wait(
      1, [](SimPd& p) { return !p.leds.empty() && !p.outputs.empty(); }, 10s));
  REQUIRE(city_col.wait_for(
      [&](const auto& ms) {
        return count_city(ms, kCityEvent, "passage_granted", [&](const json& e) {
                 return e["device"].value("id", "") == "reader-north-in" &&
                        e["location"].value("room", "") == "north gate";
               }) == 1;
      },
      15s));
  CHECK(journal_passages(gw, "passage_granted", resident) == 1);
  for (const auto& m : city_col.messages()) CHECK(m.payload.find(resident) == std::string::npos);

  // An unknown card five times: five denials, then one repeated_denial alert (GB 50396: at most 5).
  for (int i = 0; i < 5; ++i) {
    sim.with(1, [](SimPd& p) { p.cards.push_back(raw_reply(h10301(12, 777))); });
    REQUIRE(sim.wait(
        1, [](SimPd& p) { return p.cards.empty(); }, 10s));
  }
  const bool denied = city_col.wait_for(
      [&](const auto& ms) {
        return count_city(ms, kCityEvent, "passage_denied") == 5 &&
               count_city(ms, kCityAlert, "repeated_denial") >= 1;
      },
      15s);
  INFO(diag());
  REQUIRE(denied);
  CHECK(sql_i64(gw.db_path(),
                "SELECT count(*) FROM events WHERE json_extract(anju_event_json(body), "
                "'$.kind')='passage_denied' AND json_extract(anju_event_json(body), "
                "'$.attrs.reason')='unknown'") == 5);

  // The newcomer is enrolled: the file is rewritten and anjud told with SIGHUP.
  write_file(secrets / "credentials.json", credentials_json({resident, newcomer}));
  gw.signal(SIGHUP);
  REQUIRE(wait_until(
      [&] {
        auto st = gw.status();
        return st && st->value("credentials", 0) == 2;
      },
      10s));
  sim.with(1, [](SimPd& p) { p.cards.push_back(raw_reply(h10301(12, 777))); });
  REQUIRE(city_col.wait_for(
      [&](const auto& ms) { return count_city(ms, kCityEvent, "passage_granted") == 2; }, 15s));
  CHECK(journal_passages(gw, "passage_granted", newcomer) == 1);

  // A broken file is refused on SIGHUP; the list in use stays.
  write_file(secrets / "credentials.json",
             "{\"version\": 1, \"credentials\": [{\"hash\": \"1234\"}]}");
  gw.signal(SIGHUP);
  REQUIRE(wait_until([&] { return gw.log().find("credentials not reloaded") != std::string::npos; },
                     10s));
  CHECK((*gw.status())["credentials"] == 2);
  CHECK(gw.term() == 0);
  // Every access message the city got follows the published contract.
  anju::contract::check_city_contract(city_col.messages());
}

TEST_CASE("anjud refuses to start with a site key anyone can read", "[e2e][access]") {
  Mosquitto local;
  local.start();
  TempDir secrets("anju-it-access");
  write_file(secrets / "site.key", std::string(kKeyHex) + "\n");
  ::chmod((secrets / "site.key").c_str(), 0644);
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  Anjud gw(cfg);
  write_file(gw.config_path(), read_file(gw.config_path()) + "\naccess:\n  site_key_file: " +
                                   (secrets / "site.key").string() + R"(
  osdp:
    - name: north
      device: /dev/null
      readers:
        - {address: 1, id: r1, door: gate-north}
)");
  gw.start();
  REQUIRE(wait_until([&] { return !gw.alive(); }, 15s));
  INFO(gw.log());
  CHECK(gw.term() != 0);  // already ended: its exit status
  CHECK_THAT(gw.log(), Catch::Contains("site_key_file") && Catch::Contains("0644"));
}
