// Access control inside the real anjud, from its YAML: an OSDP reader (a simulated PD on a pseudo-
// terminal, which anjud opens as its RS-485 line) presents cards; anjud decides locally from the
// credentials file, answers the reader (LED, lock pulse), journals the passage and sends it to
// the city with the card's pseudonym only; repeated denials raise an alert; SIGHUP reloads the
// credentials (a new resident's card works without a restart). Real Mosquittos, real anjud.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <string>

#include "anju/drivers/credentials.hpp"
#include "city_contract.hpp"
#include "city_signer.hpp"
#include "harness.hpp"
#include "osdp_pd_sim.hpp"
#include "requester.hpp"

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

// The access section: the key and credentials in `secrets`, one OSDP bus on the pty with reader 1
// at gate-north, which controls its lock (output 0, 2 s pulse).
void add_access_config(const Anjud& gw, const TempDir& secrets, const std::string& pty) {
  write_file(
      gw.config_path(), read_file(gw.config_path()) +
                            "\naccess:\n  site_key_file: " + (secrets / "site.key").string() +
                            "\n  credentials_file: " + (secrets / "credentials.json").string() + R"(
  osdp:
    - name: north
      device: )" + pty + R"(
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
}

bool reader_online(const Anjud& gw) {
  return wait_until(
      [&] {
        auto st = gw.status();
        return st && st->contains("osdp") && (*st)["osdp"][0]["readers"][0].value("online", false);
      },
      20s);
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
  add_access_config(gw, secrets, pty.name);
  gw.start();
  auto diag = [&] {
    std::string s = "anjud log:\n" + tail(gw.log(), 5000);
    if (auto st = gw.status()) s += "\nstatus: " + st->dump();
    return s;
  };
  const bool online = reader_online(gw);
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

namespace {

// A reply on the collector's topics to the command with `request_id`, or null.
json reply_to(const Collector& replies, const std::string& request_id,
              std::chrono::milliseconds timeout = 15s) {
  json found;
  replies.wait_for(
      [&](const auto& ms) {
        for (const auto& m : ms) {
          auto j = json::parse(m.payload, nullptr, false);
          if (j.is_object() && j.value("request_id", "") == request_id) {
            found = j;
            return true;
          }
        }
        return false;
      },
      timeout);
  return found;
}

// Audit events in the journal for `action` with outcome `ok`.
std::int64_t journal_audits(const Anjud& gw, const std::string& action, bool ok) {
  return sql_i64(gw.db_path(),
                 "SELECT count(*) FROM events WHERE json_extract(anju_event_json(body), "
                 "'$.kind')='audit' AND json_extract(anju_event_json(body), '$.attrs.action')='" +
                     action +
                     "' AND json_extract(anju_event_json(body), '$.attrs.ok')=" + (ok ? "1" : "0"));
}

// The card number as a number of its own (not a piece of a longer token such as a timestamp).
bool mentions_number(const std::string& text, const std::string& number) {
  for (auto at = text.find(number); at != std::string::npos; at = text.find(number, at + 1)) {
    const bool left = at == 0 || !std::isalnum(static_cast<unsigned char>(text[at - 1]));
    const auto end = at + number.size();
    const bool right = end == text.size() || !std::isalnum(static_cast<unsigned char>(text[end]));
    if (left && right) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("property management locks down a door group and opens a door, 20 denials are one alert",
          "[e2e][access]") {
  Mosquitto local, city;
  local.start();
  city.start();
  Collector city_col(city.uri(), "anju/v1/" + kSite + "/#");
  Collector local_col(local.uri(), "#");
  Collector replies(local.uri(), "pm/replies/#");
  Pty pty;
  PdSim sim(pty.master, {sim_pd(1)});
  TempDir secrets("anju-it-doors");
  write_file(secrets / "site.key", std::string(kKeyHex) + "\n");
  ::chmod((secrets / "site.key").c_str(), 0600);
  const std::string resident = card_hash(12, 62417);
  write_file(secrets / "credentials.json", credentials_json({resident}));
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  cfg.event_kinds = {"passage_granted", "passage_denied"};
  Anjud gw(cfg);
  add_access_config(gw, secrets, pty.name);
  gw.start();
  auto diag = [&] {
    std::string s = "anjud log:\n" + tail(gw.log(), 5000);
    if (auto st = gw.status()) s += "\nstatus: " + st->dump();
    return s;
  };
  REQUIRE(reader_online(gw));
  auto present = [&](std::uint32_t facility, std::uint32_t number) {
    sim.with(1, [&](SimPd& p) { p.cards.push_back(raw_reply(h10301(facility, number))); });
    REQUIRE(sim.wait(
        1, [](SimPd& p) { return p.cards.empty(); }, 10s));
  };
  auto command = [&](const std::string& scope, const std::string& payload) {
    publish(local.uri(), "anju/" + kSite + "/cmd/" + scope, payload);
  };

  // 20 reads of an unknown card in a row: one repeated_denial alert at the city, whose count
  // reaches 20 (GB 50396 raises it at the fifth; each further denial updates the same alert).
  for (int i = 0; i < 20; ++i) present(99, 63917);
  const bool counted = city_col.wait_for(
      [&](const auto& ms) {
        return count_city(ms, kCityAlert, "repeated_denial",
                          [](const json& a) { return a.value("count", 0) == 20; }) >= 1;
      },
      20s);
  INFO(diag());
  REQUIRE(counted);
  std::set<std::string> alert_ids;
  int raised = 0;
  for (const auto& m : city_col.messages()) {
    if (!anju::contract::under(m.topic, kCityAlert)) continue;
    auto j = json::parse(m.payload, nullptr, false);
    if (!j.is_object() || j["alert"].value("rule", "") != "repeated_denial") continue;
    alert_ids.insert(j["alert"].value("alert_id", ""));
    raised += j.value("change", "") == "raised" ? 1 : 0;
  }
  CHECK(alert_ids.size() == 1);
  CHECK(raised == 1);

  // Lock-down of the gates: the resident's card is refused with that reason.
  command(
      "door_group/gates",
      R"({"action":"lockdown","user":"manager","request_id":"ld-1","reply_to":"pm/replies/1"})");
  auto r = reply_to(replies, "ld-1");
  REQUIRE(r.is_object());
  CHECK(r["ok"] == true);
  CHECK(r["locked_down"] == true);
  CHECK((*gw.status())["locked_down"] == json::array({"gates"}));
  std::string status_out;
  REQUIRE(run_shell(std::string(ANJU_PATH) + " --data-dir " + gw.data_dir().string() + " status",
                    &status_out) == 0);
  CHECK(status_out.find("LOCKED DOWN    gates") != std::string::npos);
  present(12, 62417);
  auto locked_denials = [&] {
    return sql_i64(gw.db_path(),
                   "SELECT count(*) FROM events WHERE json_extract(anju_event_json(body), "
                   "'$.kind')='passage_denied' AND json_extract(anju_event_json(body), "
                   "'$.attrs.reason')='locked_down'");
  };
  CHECK(wait_until([&] { return locked_denials() == 1; }, 10s));
  CHECK(journal_passages(gw, "passage_granted", resident) == 0);

  // A restart keeps the lock-down.
  REQUIRE(gw.term() == 0);
  gw.start();
  REQUIRE(reader_online(gw));
  CHECK((*gw.status())["locked_down"] == json::array({"gates"}));
  present(12, 62417);
  CHECK(wait_until([&] { return locked_denials() == 2; }, 10s));

  // Released: the card opens the gate again. A group that does not exist is refused by name.
  command("door_group/gates",
          R"({"action":"release","user":"manager","request_id":"rl-1","reply_to":"pm/replies/1"})");
  r = reply_to(replies, "rl-1");
  REQUIRE(r.is_object());
  CHECK(r["ok"] == true);
  CHECK((*gw.status())["locked_down"] == json::array());
  present(12, 62417);
  CHECK(wait_until([&] { return journal_passages(gw, "passage_granted", resident) == 1; }, 10s));
  command(
      "door_group/garages",
      R"({"action":"lockdown","user":"manager","request_id":"ld-2","reply_to":"pm/replies/1"})");
  r = reply_to(replies, "ld-2");
  REQUIRE(r.is_object());
  CHECK(r["ok"] == false);
  CHECK(r["error"] == "unknown door group 'garages' (not in the credentials file)");

  // A remote open pulses the gate's lock once; its retry is answered, not done again; a late one
  // is refused.
  const std::size_t pulses_before = [&] {
    std::size_t n = 0;
    sim.with(1, [&](SimPd& p) { n = p.outputs.size(); });
    return n;
  }();
  const std::string until = std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch() + std::chrono::minutes(1))
          .count());
  const std::string open = R"({"action":"open","user":"guard-1","request_id":"op-1",)"
                           R"("note":"parcel delivery","reply_to":"pm/replies/2","expires_ms":)" +
                           until + "}";
  command("door/gate-north", open);
  r = reply_to(replies, "op-1");
  REQUIRE(r.is_object());
  CHECK(r["ok"] == true);
  CHECK(r["readers"] == 1);
  CHECK(sim.wait(
      1, [&](SimPd& p) { return p.outputs.size() == pulses_before + 1; }, 10s));
  command("door/gate-north", open);
  command("door/gate-north",
          R"({"action":"open","user":"guard-1","request_id":"op-2","reply_to":"pm/replies/2",)"
          R"("expires_ms":1000})");
  r = reply_to(replies, "op-2");
  REQUIRE(r.is_object());
  CHECK(r["ok"] == false);
  CHECK(r["error"].get<std::string>().starts_with("expired"));
  int op1_answers = 0;
  for (const auto& m : replies.messages())
    if (m.payload.find("\"op-1\"") != std::string::npos) ++op1_answers;
  CHECK(op1_answers == 2);  // the retry was answered too
  CHECK(wait_until([&] { return journal_audits(gw, "door_open", false) == 1; }, 10s));
  CHECK(journal_audits(gw, "door_open", true) == 1);
  CHECK(journal_audits(gw, "door_group_lockdown", true) == 1);
  CHECK(journal_audits(gw, "door_group_lockdown", false) == 1);
  CHECK(journal_audits(gw, "door_group_release", true) == 1);
  CHECK(gw.term() == 0);

  // The card numbers (above the ephemeral port range, so that no port looks like them) are in
  // no MQTT message, local or at the city, and in no log line.
  for (const auto* col : {&city_col, &local_col})
    for (const auto& m : col->messages()) {
      INFO(m.topic << " " << m.payload);
      CHECK_FALSE(mentions_number(m.payload, "63917"));
      CHECK_FALSE(mentions_number(m.payload, "62417"));
    }
  const std::string log = gw.log();
  CHECK_FALSE(mentions_number(log, "63917"));
  CHECK_FALSE(mentions_number(log, "62417"));
  anju::contract::check_city_contract(city_col.messages());
}

namespace {

std::string bits_text(const wiegand::Bits& bits) {
  std::string s;
  for (bool b : bits) s += b ? '1' : '0';
  return s;
}

// Events of `kind` in the journal at door `door`, with `active` when given.
std::int64_t journal_door_events(const Anjud& gw, const std::string& kind, const std::string& door,
                                 std::optional<bool> active = std::nullopt) {
  std::string sql =
      "SELECT count(*) FROM events WHERE json_extract(anju_event_json(body), '$.kind')='" + kind +
      "' AND json_extract(anju_event_json(body), '$.attrs.door')='" + door + "'";
  if (active)
    sql += std::string(" AND json_extract(anju_event_json(body), '$.active')=") +
           (*active ? "1" : "0");
  return sql_i64(gw.db_path(), sql);
}

}  // namespace

TEST_CASE(
    "a door on GPIO lines: Wiegand card opens the lock, a forced door raises its alert, a remote "
    "open covers the opening",
    "[e2e][access][gpio]") {
  Mosquitto local, city;
  local.start();
  city.start();
  Collector city_col(city.uri(), "anju/v1/" + kSite + "/#");
  Collector local_col(local.uri(), "#");
  Collector replies(local.uri(), "pm/replies/#");
  TempDir secrets("anju-it-gpio");
  write_file(secrets / "site.key", std::string(kKeyHex) + "\n");
  ::chmod((secrets / "site.key").c_str(), 0600);
  const std::string resident = card_hash(12, 62417);
  write_file(secrets / "credentials.json", credentials_json({resident}));
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  cfg.event_kinds = {"passage_granted", "passage_denied", "device_offline", "reader_fault"};
  cfg.binary = ANJUD_TEST_PATH;  // its GPIO chips are FIFOs in the data dir
  Anjud gw(cfg);
  // gate-north on chip "sim0"; the garage's chip does not exist (real libgpiod says so).
  write_file(gw.config_path(),
             read_file(gw.config_path()) +
                 "\naccess:\n  site_key_file: " + (secrets / "site.key").string() +
                 "\n  credentials_file: " + (secrets / "credentials.json").string() + R"(
  gpio_doors:
    - door: gate-north
      id: gate-north-door
      room: north gate
      chip: sim0
      reader_id: gate-north-wiegand
      d0: 1
      d1: 2
      contact: 3
      exit_button: 4
      lock: 5
      lock_pulse_ms: 500
    - door: garage
      id: garage-door
      chip: /dev/anju-no-such-gpiochip
      contact: 1
)");
  gw.start();
  auto diag = [&] {
    std::string s = "anjud log:\n" + tail(gw.log(), 5000);
    if (auto st = gw.status()) s += "\nstatus: " + st->dump();
    return s;
  };
  const bool watched = wait_until(
      [&] {
        auto st = gw.status();
        return st && st->contains("gpio_doors") && (*st)["gpio_doors"][0].value("watched", false);
      },
      20s);
  INFO(diag());
  REQUIRE(watched);
  // The garage is reported, not fatal: its chip is named in the status and in an offline event.
  const json garage = (*gw.status())["gpio_doors"][1];
  CHECK(garage["watched"] == false);
  CHECK_THAT(garage.value("last_error", ""),
             Catch::Contains("'/dev/anju-no-such-gpiochip': cannot open"));
  CHECK(city_col.wait_for(
      [&](const auto& ms) {
        return count_city(ms, kCityEvent, "device_offline", [](const json& e) {
                 return e["device"].value("id", "") == "garage-door";
               }) == 1;
      },
      15s));
  std::string status_out;
  REQUIRE(run_shell(std::string(ANJU_PATH) + " --data-dir " + gw.data_dir().string() + " status",
                    &status_out) == 0);
  CHECK_THAT(status_out, Catch::Contains("gpio doors     1 of 2 watched"));
  CHECK_THAT(status_out, Catch::Contains("NOT WATCHED: garage"));

  const auto lock_writes = [&] { return read_file(gw.data_dir() / "gpio-sim0.out"); };
  const auto count_of = [](const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  const auto door_events = [&](bool active) {
    return journal_door_events(gw, "door_open", "gate-north", active);
  };

  // The resident's card on the Wiegand reader: granted at once, the lock opens for its pulse and
  // closes again; the city gets the passage without the credential.
  gpio_input(gw, "sim0", "wiegand " + bits_text(h10301(12, 62417)));
  const bool granted = city_col.wait_for(
      [&](const auto& ms) {
        return count_city(ms, kCityEvent, "passage_granted", [](const json& e) {
                 return e["device"].value("id", "") == "gate-north-wiegand";
               }) == 1;
      },
      15s);
  INFO(diag());
  REQUIRE(granted);
  CHECK(journal_passages(gw, "passage_granted", resident) == 1);
  REQUIRE(wait_until([&] { return lock_writes() == "lock 1\nlock 0\n"; }, 10s));
  // The resident opens the door and closes it: no alert.
  gpio_input(gw, "sim0", "contact 1");
  REQUIRE(wait_until([&] { return door_events(true) == 1; }, 10s));
  gpio_input(gw, "sim0", "contact 0");
  REQUIRE(wait_until([&] { return door_events(false) == 1; }, 10s));
  CHECK(journal_door_events(gw, "door_forced", "gate-north") == 0);

  // Opened with no grant and no exit request: door forced, locally and at the city, severity 2;
  // cleared when it closes.
  gpio_input(gw, "sim0", "contact 1");
  const bool forced = local_col.wait_for(
      [&](const auto& ms) {
        for (const auto& m : ms) {
          if (m.topic.rfind("anju/" + kSite + "/alert/", 0) != 0) continue;
          auto j = json::parse(m.payload, nullptr, false);
          if (j.is_object() && j.value("rule", "") == "door_forced") return true;
        }
        return false;
      },
      15s);
  INFO(diag());
  REQUIRE(forced);
  REQUIRE(city_col.wait_for(
      [&](const auto& ms) {
        return count_city(ms, kCityAlert, "door_forced",
                          [](const json& a) { return a.value("severity", 0) == 2; }) >= 1;
      },
      15s));
  gpio_input(gw, "sim0", "contact 0");
  REQUIRE(wait_until([&] { return door_events(false) == 2; }, 10s));
  CHECK(journal_door_events(gw, "door_forced", "gate-north", false) == 1);

  // A guard opens the gate remotely for a delivery: the lock pulses, and the opening that
  // follows is covered (no second door_forced).
  const std::string until = std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch() + std::chrono::minutes(1))
          .count());
  publish(local.uri(), "anju/" + kSite + "/cmd/door/gate-north",
          R"({"action":"open","user":"guard-1","request_id":"gp-1","reply_to":"pm/replies/g",)"
          R"("expires_ms":)" +
              until + "}");
  const json r = reply_to(replies, "gp-1");
  REQUIRE(r.is_object());
  CHECK(r["ok"] == true);
  CHECK(r["readers"] == 1);
  REQUIRE(wait_until([&] { return count_of(lock_writes(), "lock 1") == 2; }, 10s));
  REQUIRE(wait_until([&] { return journal_audits(gw, "door_open", true) == 1; }, 10s));
  gpio_input(gw, "sim0", "contact 1");
  REQUIRE(wait_until([&] { return door_events(true) == 3; }, 10s));
  gpio_input(gw, "sim0", "contact 0");
  REQUIRE(wait_until([&] { return door_events(false) == 3; }, 10s));
  CHECK(journal_door_events(gw, "door_forced", "gate-north", true) == 1);
  CHECK((*gw.status())["gpio_doors"][0]["remote_opens"] == 1);

  // A frame with a broken parity is a reader fault, not a card read.
  auto broken = h10301(12, 62417);
  broken[0] = !broken[0];
  gpio_input(gw, "sim0", "wiegand " + bits_text(broken));
  REQUIRE(city_col.wait_for(
      [&](const auto& ms) { return count_city(ms, kCityEvent, "reader_fault") == 1; }, 15s));
  const json st = (*gw.status())["gpio_doors"][0];
  CHECK(st["card_reads"] == 1);
  CHECK(st["granted"] == 1);
  CHECK(st["bad_frames"] == 1);
  CHECK(gw.term() == 0);

  for (const auto* col : {&city_col, &local_col})
    for (const auto& m : col->messages()) {
      INFO(m.topic << " " << m.payload);
      CHECK_FALSE(mentions_number(m.payload, "62417"));
      if (col == &city_col) CHECK(m.payload.find(resident) == std::string::npos);
    }
  CHECK_FALSE(mentions_number(gw.log(), "62417"));
  anju::contract::check_city_contract(city_col.messages());
}

TEST_CASE(
    "the city syncs the credential list with a signed command: a newcomer's card opens the gate, a "
    "removed one does not, across a restart",
    "[e2e][access][city]") {
  Mosquitto local, city;
  local.start();
  city.start();
  TempDir secrets("anju-it-sync");
  write_file(secrets / "site.key", std::string(kKeyHex) + "\n");
  ::chmod((secrets / "site.key").c_str(), 0600);
  const std::string resident = card_hash(12, 62417), newcomer = card_hash(12, 777);
  write_file(secrets / "credentials.json", credentials_json({resident}));
  anju::test::CitySigner signer, impostor;
  write_file(secrets / "city.pub", signer.public_pem());
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  cfg.command_key_file = (secrets / "city.pub").string();
  cfg.event_kinds = {"passage_granted", "passage_denied"};
  cfg.binary = ANJUD_TEST_PATH;
  Anjud gw(cfg);
  write_file(gw.config_path(),
             read_file(gw.config_path()) +
                 "\naccess:\n  site_key_file: " + (secrets / "site.key").string() +
                 "\n  credentials_file: " + (secrets / "credentials.json").string() + R"(
  gpio_doors:
    - {door: gate-north, id: gate-north-door, chip: sim0, reader_id: gate-north-wiegand, d0: 1, d1: 2, lock: 5}
)");
  gw.start();
  auto diag = [&] {
    std::string s = "anjud log:\n" + tail(gw.log(), 5000);
    if (auto st = gw.status()) s += "\nstatus: " + st->dump();
    return s;
  };
  auto ready = [&] {
    return wait_until(
        [&] {
          auto st = gw.status();
          return st && st->contains("gpio_doors") &&
                 (*st)["gpio_doors"][0].value("watched", false) &&
                 (*st)["uplink"].value("connected", false);
        },
        20s);
  };
  REQUIRE(ready());
  auto present = [&](std::uint32_t number, const std::string& hash, const std::string& kind,
                     std::int64_t expected) {
    gpio_input(gw, "sim0", "wiegand " + bits_text(h10301(12, number)));
    const bool seen = wait_until([&] { return journal_passages(gw, kind, hash) == expected; }, 10s);
    INFO(diag());
    REQUIRE(seen);
  };
  present(777, newcomer, "passage_denied", 1);  // not on the list yet

  V5Requester dispatch(city.uri(), "city/dispatch-1/replies", "it-city-dispatch");
  const std::string topic = "anju/v1/" + kSite + "/cmd/credentials.sync";
  auto until = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch() + std::chrono::minutes(1))
        .count();
  };
  int sent = 0;
  auto sync = [&](const std::string& rid, const json& args, const anju::test::CitySigner& by,
                  const std::string& token_rid = "") {
    json req{
        {"schema", 1}, {"request_id", rid}, {"user", "civil-affairs-7"}, {"expires_ms", until()}};
    req["authorization"] =
        by.token(kSite, "credentials.sync", token_rid.empty() ? rid : token_rid, until(), args);
    const std::string corr = "corr-" + std::to_string(++sent);
    dispatch.send(topic, req, corr);
    auto r = dispatch.wait_reply(corr, 10s);
    REQUIRE(r);
    return r->body;
  };
  auto cred = [](const std::string& hash) {
    return json{{"hash", hash},
                {"label", "resident"},
                {"access", json::array({{{"doors", "gates"}, {"schedule", "always"}}})}};
  };

  // The whole list, version 1: the resident and the newcomer. The newcomer's card now opens.
  json r =
      sync("sync-1", {{"version", 1}, {"full", true}, {"upsert", {cred(resident), cred(newcomer)}}},
           signer);
  CHECK(r["ok"] == true);
  CHECK(r["result"]["version"] == 1);
  CHECK(r["result"]["credentials"] == 2);
  present(777, newcomer, "passage_granted", 1);

  // A delta on version 1: the resident moved out.
  r = sync("sync-2", {{"version", 2}, {"base_version", 1}, {"remove", {resident}}}, signer);
  CHECK(r["ok"] == true);
  CHECK(r["result"]["credentials"] == 1);
  present(62417, resident, "passage_denied", 1);
  // The same request again: answered as done, nothing changes.
  r = sync("sync-2", {{"version", 2}, {"base_version", 1}, {"remove", {resident}}}, signer);
  CHECK(r["ok"] == true);
  CHECK(r["duplicate"] == true);

  // Refused: a delta on a version the gateway does not have; a token someone else signed; a
  // token for another request; arguments beside the token; no token at all.
  r = sync("sync-3", {{"version", 4}, {"base_version", 3}}, signer);
  CHECK(r["error"] ==
        "args.base_version 3 is not the gateway's list version 2: send the list in full");
  r = sync("sync-4", {{"version", 3}, {"full", true}, {"upsert", {cred(resident)}}}, impostor);
  CHECK(r["error"] ==
        "unauthorised: authorization: the signature does not verify with the city's key");
  r = sync("sync-5", {{"version", 3}, {"full", true}, {"upsert", {cred(resident)}}}, signer,
           "sync-1");
  CHECK(r["error"] == "unauthorised: authorization: issued for another request_id");
  json beside{{"schema", 1},
              {"request_id", "sync-6"},
              {"user", "x"},
              {"expires_ms", until()},
              {"args", {{"version", 9}}},
              {"authorization",
               signer.token(kSite, "credentials.sync", "sync-6", until(), json::object())}};
  dispatch.send(topic, beside, "corr-sync-6");
  auto b = dispatch.wait_reply("corr-sync-6", 10s);
  REQUIRE(b);
  CHECK(b->body["error"] ==
        "'args' of credentials.sync go inside the 'authorization' token, not beside it");
  json unsigned_req{
      {"schema", 1}, {"request_id", "sync-7"}, {"user", "x"}, {"expires_ms", until()}};
  dispatch.send(topic, unsigned_req, "corr-sync-7");
  auto u = dispatch.wait_reply("corr-sync-7", 10s);
  REQUIRE(u);
  CHECK(u->body["error"] ==
        "unauthorised: credentials.sync needs the city's signed 'authorization' token");
  CHECK((*gw.status())["credentials_version"] == 2);

  // A restart keeps the city's list (not the installer's file, which still has the resident).
  REQUIRE(gw.term() == 0);
  gw.start();
  REQUIRE(ready());
  CHECK((*gw.status())["credentials_version"] == 2);
  present(62417, resident, "passage_denied", 2);
  present(777, newcomer, "passage_granted", 2);
  CHECK(journal_audits(gw, "credentials.sync", true) == 3);
  CHECK(journal_audits(gw, "credentials.sync", false) == 5);
  CHECK(gw.term() == 0);
}
