// config.apply / rules.update on the gateway's side (firmware/src/config_trial.cpp): what the city
// may send, and the trial's life on disk: staged, started once, kept when healthy, rolled back
// when not or when anjud dies during it, and the outcome kept until the city has heard it.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "anju/firmware/config.hpp"
#include "anju/firmware/config_trial.hpp"

namespace fs = std::filesystem;
using anju::firmware::Config;
using anju::firmware::ConfigRequest;
using nlohmann::json;

namespace {

struct Dir {
  fs::path path = fs::temp_directory_path() /
                  ("anju-config-trial-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
  Dir() { fs::create_directories(path); }
  ~Dir() { fs::remove_all(path); }
  static inline int n = 0;
};

Config demo(const std::string& data_dir) {
  auto r = anju::firmware::parse_config(anju::firmware::demo_config_text(), "<demo>");
  REQUIRE(r.config);
  r.config->data_dir = data_dir;
  return *r.config;
}

// The demo config with one line changed.
std::string demo_with(const std::string& from, const std::string& to) {
  std::string text = anju::firmware::demo_config_text();
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

ConfigRequest request(const std::string& id) {
  ConfigRequest r;
  r.command = "config.apply";
  r.request_id = id;
  r.user = "grid-ops-3";
  r.reply_topic = "city/replies";
  r.correlation_data = std::string("\x01\x00\xff", 3);
  r.health_timeout_s = 30;
  r.applied_ms = 1'700'000'000'000;
  return r;
}

}  // namespace

TEST_CASE("a city config is checked in full and for what the city may not change",
          "[config_trial]") {
  const Config running = demo("/var/lib/anju");
  CHECK(anju::firmware::check_city_config(demo_with("interval_s: 60", "interval_s: 300"), running)
            .empty());
  // Every error of the YAML, with its line and column.
  auto errors = anju::firmware::check_city_config(
      demo_with("interval_s: 60", "interval_s: sixty\n  bogus: 1"), running);
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].find("<the city's config>:") == 0);
  CHECK(errors[0].find("summary.interval_s") != std::string::npos);
  CHECK(errors[1].find("summary.bogus") != std::string::npos);
  // Another site's config, and one that turns the uplink off: refused by name.
  errors = anju::firmware::check_city_config(demo_with("id: demo-compound", "id: other-compound"),
                                             running);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].find("site.id: 'other-compound' is not this gateway's site") == 0);
  errors = anju::firmware::check_city_config(
      demo_with("uplink:\n  enabled: true", "uplink:\n  enabled: false"), running);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].find("uplink.enabled: false would cut this gateway off") == 0);
  errors = anju::firmware::check_city_config(std::string(49 * 1024, '#'), running);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == "the config is 50176 bytes; at most 49152 are accepted");
}

TEST_CASE("config.apply and rules.update arguments", "[config_trial]") {
  std::string yaml;
  int timeout = 0;
  CHECK(anju::firmware::parse_config_apply_args({{"config", "site: {}"}}, yaml, timeout).empty());
  CHECK(yaml == "site: {}");
  CHECK(timeout == anju::firmware::kDefaultHealthTimeoutS);
  CHECK(anju::firmware::parse_config_apply_args({{"config", "x"}, {"health_timeout_s", 15}}, yaml,
                                                timeout)
            .empty());
  CHECK(timeout == 15);
  CHECK(anju::firmware::parse_config_apply_args({{"config", "x"}, {"health_timeout_s", 5}}, yaml,
                                                timeout) ==
        "args.health_timeout_s: expected whole seconds from 10 to 3600");
  CHECK(anju::firmware::parse_config_apply_args({{"config", 3}}, yaml, timeout) ==
        "args.config: expected the whole config as YAML text");
  CHECK(anju::firmware::parse_config_apply_args({{"config", "x"}, {"rules", {}}}, yaml, timeout) ==
        "args: unknown member 'rules' (expected config, health_timeout_s)");
  CHECK(anju::firmware::parse_config_apply_args(json::array(), yaml, timeout) ==
        "args: expected an object");

  // rules.update: the running config with its rules replaced, everything else as it was.
  const std::string current = anju::firmware::demo_config_text();
  const json rules = {{"heartbeat_timeout_s", 600},
                      {"thresholds",
                       {{{"name", "temperature_high"},
                         {"kind", "temperature"},
                         {"above", 50.5},
                         {"hysteresis", 2},
                         {"hold_s", 10},
                         {"severity", 2}}}}};
  REQUIRE(anju::firmware::rules_update_yaml(current, {{"rules", rules}}, yaml, timeout).empty());
  auto parsed = anju::firmware::parse_config(yaml, "<updated>");
  INFO(yaml);
  REQUIRE(parsed.config);
  CHECK(parsed.config->rules.heartbeat_timeout_s == 600);
  REQUIRE(parsed.config->rules.thresholds.size() == 1);
  CHECK(parsed.config->rules.thresholds[0].above == 50.5);
  CHECK(parsed.config->site.id == "demo-compound");
  CHECK(parsed.config->zigbee2mqtt.devices.size() ==
        anju::firmware::parse_config(current, "<demo>").config->zigbee2mqtt.devices.size());
  // A rule the schema does not know is the config check's to name.
  REQUIRE(
      anju::firmware::rules_update_yaml(current, {{"rules", {{"nonsense", true}}}}, yaml, timeout)
          .empty());
  const auto errors = anju::firmware::check_city_config(yaml, demo("/var/lib/anju"));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].find("rules.nonsense") != std::string::npos);
  CHECK(anju::firmware::rules_update_yaml(current, {{"rules", "x"}}, yaml, timeout) ==
        "args.rules: expected the rules section as an object");
  CHECK(anju::firmware::rules_update_yaml("- a list", {{"rules", json::object()}}, yaml, timeout) ==
        "the running config is not a YAML mapping");
}

TEST_CASE("a trial config is started once and kept only when confirmed", "[config_trial]") {
  Dir dir;
  const Config base = demo(dir.path.string());
  const std::string d = base.data_dir;
  int adjusted = 0;
  const auto adjust = [&](Config& c) {
    ++adjusted;
    c.local_broker.uri = "tcp://127.0.0.1:1999";
  };

  // Nothing from the city: the base config.
  auto start = anju::firmware::choose_start_config(base, adjust);
  CHECK(start.source == "file");
  CHECK_FALSE(start.trial);
  CHECK(start.warnings.empty());

  // Staged: the next start runs it, with the overrides and the gateway's own data dir.
  std::string trial_yaml = demo_with("data_dir: /var/lib/anju", "data_dir: /elsewhere");
  trial_yaml.replace(trial_yaml.find("log_level: info"), 15, "log_level: debug");
  REQUIRE(anju::firmware::stage_config_trial(d, trial_yaml, request("r-1")).empty());
  CHECK(anju::firmware::known_config_request(d, "r-1"));
  CHECK_FALSE(anju::firmware::known_config_request(d, "r-2"));
  start = anju::firmware::choose_start_config(base, adjust);
  INFO((start.warnings.empty() ? "" : start.warnings[0]));
  CHECK(start.source == "trial");
  REQUIRE(start.trial);
  CHECK(start.trial->request_id == "r-1");
  CHECK(start.trial->correlation_data == std::string("\x01\x00\xff", 3));
  CHECK(start.trial->starts == 1);
  CHECK(start.config.log_level == "debug");
  CHECK(start.config.data_dir == d);
  CHECK(start.config.local_broker.uri == "tcp://127.0.0.1:1999");
  CHECK(adjusted == 1);

  // Healthy: kept, and the next start runs it as the city's config.
  REQUIRE(anju::firmware::confirm_config_trial(d).empty());
  auto outcome = anju::firmware::pending_config_outcome(d);
  REQUIRE(outcome);
  CHECK(outcome->ok);
  CHECK(outcome->request.request_id == "r-1");
  CHECK(anju::firmware::config_outcome_result(*outcome)["state"] == "applied");
  anju::firmware::clear_config_outcome(d);
  CHECK_FALSE(anju::firmware::pending_config_outcome(d));
  CHECK(anju::firmware::known_config_request(d, "r-1"));  // a repeat is a duplicate
  start = anju::firmware::choose_start_config(base, adjust);
  CHECK(start.source == "city");
  CHECK_FALSE(start.trial);
  CHECK(start.config.log_level == "debug");
  CHECK(start.config.source_file == (dir.path / "config.city.yaml").string());

  // A second config that fails its trial: rejected, the city's previous config stays.
  REQUIRE(anju::firmware::stage_config_trial(d, demo_with("log_level: info", "log_level: warn"),
                                             request("r-2"))
              .empty());
  start = anju::firmware::choose_start_config(base, adjust);
  REQUIRE(start.trial);
  CHECK(start.config.log_level == "warn");
  REQUIRE(anju::firmware::reject_config_trial(d, "the city broker was not reached").empty());
  outcome = anju::firmware::pending_config_outcome(d);
  REQUIRE(outcome);
  CHECK_FALSE(outcome->ok);
  CHECK(outcome->error == "the city broker was not reached");
  CHECK(anju::firmware::config_outcome_result(*outcome)["state"] == "rolled_back");
  CHECK(fs::exists(dir.path / "config.rejected.yaml"));
  start = anju::firmware::choose_start_config(base, adjust);
  CHECK(start.source == "city");
  CHECK(start.config.log_level == "debug");
}

TEST_CASE("anjud dying during a trial rolls it back on the next start", "[config_trial]") {
  Dir dir;
  const Config base = demo(dir.path.string());
  const std::string d = base.data_dir;
  REQUIRE(anju::firmware::stage_config_trial(d, demo_with("log_level: info", "log_level: debug"),
                                             request("r-9"))
              .empty());
  auto first = anju::firmware::choose_start_config(base, nullptr);
  REQUIRE(first.trial);
  // No confirm: anjud was killed (or lost power) before it reached the city broker.
  auto second = anju::firmware::choose_start_config(base, nullptr);
  CHECK(second.source == "file");
  CHECK_FALSE(second.trial);
  CHECK(second.config.log_level == "info");
  REQUIRE(second.warnings.size() == 1);
  CHECK(second.warnings[0] ==
        "the city's new config was rolled back: anjud stopped or crashed during the trial, before "
        "it reached the city broker");
  const auto outcome = anju::firmware::pending_config_outcome(d);
  REQUIRE(outcome);
  CHECK_FALSE(outcome->ok);
  CHECK(outcome->request.request_id == "r-9");
  CHECK_FALSE(fs::exists(dir.path / "config.trial.yaml"));
  CHECK_FALSE(fs::exists(dir.path / "config.trial.json"));

  // A trial config that cannot be loaded, and a broken city config: both named, base used.
  REQUIRE(anju::firmware::stage_config_trial(d, "site: [", request("r-10")).empty());
  auto third = anju::firmware::choose_start_config(base, nullptr);
  CHECK(third.source == "file");
  REQUIRE(third.warnings.size() == 1);
  CHECK(third.warnings[0].find("the city's new config was rolled back: it cannot be loaded: ") ==
        0);
  { std::ofstream(dir.path / "config.city.yaml") << "site: ["; }
  auto fourth = anju::firmware::choose_start_config(base, nullptr);
  CHECK(fourth.source == "file");
  REQUIRE(fourth.warnings.size() == 1);
  CHECK(fourth.warnings[0].find("the city's config is not used (") == 0);
}
