// A new configuration from the city (config.apply, rules.update) is put on trial: anjud restarts
// with it and keeps it only when it comes back healthy (connected to the city broker) within the
// request's time; otherwise, or when anjud stops or crashes before that, it goes back to the
// config it ran before and restarts again. The city hears the outcome on the request's reply
// topic once the gateway is connected again, whichever config that is with.
//
// Files in <data_dir> (the installer's config file under /etc is never written: systemd's
// ProtectSystem keeps it read-only, and it stays the fallback):
//   config.trial.yaml, config.trial.json   a config on trial and its request (who, reply topic,
//                                          health timeout, how often anjud started with it)
//   config.city.yaml, config.city.json     the city's last config that proved healthy; anjud
//                                          starts with it instead of --config's
//   config.rejected.yaml                   the last config that failed its trial (for inspection)
//   config.outcome.json                    a trial's outcome until the city has been told
// Each is written whole (edge::write_file_atomic) so a power cut leaves the old state or the new.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "anju/firmware/config.hpp"

namespace anju::firmware {

// The request a trial answers to.
struct ConfigRequest {
  std::string command;  // config.apply | rules.update
  std::string request_id;
  std::string user;
  std::string reply_topic;       // where the outcome goes (MQTT 5 response topic or reply_to)
  std::string correlation_data;  // MQTT 5 correlation data (bytes, kept base64url-encoded)
  int health_timeout_s = 120;
  std::int64_t applied_ms = 0;
  int starts = 0;  // how often anjud started with this trial config
};

struct ConfigOutcome {
  ConfigRequest request;
  bool ok = false;
  std::string error;  // why it was rolled back
};

inline constexpr int kMinHealthTimeoutS = 10;
inline constexpr int kMaxHealthTimeoutS = 3600;
inline constexpr int kDefaultHealthTimeoutS = 120;

// Pure: what the city sent for config.apply, checked in full as anjud would start with it
// (parse_config: every error with line and column) and against what the city may not change:
// the site id (its command topic) and an enabled uplink (the way back). Its data_dir is not used:
// the journal and outbox stay where the gateway keeps them. `running` is the config anjud runs
// now. Empty: acceptable.
std::vector<std::string> check_city_config(const std::string& yaml, const Config& running);

// Pure: config.apply's token args: {"config": "<YAML text>", "health_timeout_s": 10..3600}.
// Sets yaml and timeout, or returns the error.
std::string parse_config_apply_args(const nlohmann::json& args, std::string& yaml,
                                    int& health_timeout_s);
// Pure: rules.update's token args: {"rules": {...the rules section...}, "health_timeout_s"}.
// The running config's YAML text with its `rules` section replaced (comments are not kept), or
// an error naming what is wrong.
std::string rules_update_yaml(const std::string& current_yaml, const nlohmann::json& args,
                              std::string& yaml, int& health_timeout_s);

// The YAML text anjud runs with (its file, or the embedded demo config).
std::string config_text(const Config& running);

// Writes the trial config and its request. "" or what failed.
std::string stage_config_trial(const std::string& data_dir, const std::string& yaml,
                               const ConfigRequest& request);

// The request of the config in use or on trial with this id, if there is one (a repeated
// request is answered as a duplicate, not applied twice).
std::optional<ConfigRequest> known_config_request(const std::string& data_dir,
                                                  const std::string& request_id);

struct StartConfig {
  Config config;
  std::string source;                  // "file" (or the demo), "city" or "trial"
  std::optional<ConfigRequest> trial;  // set when starting with a trial config
  std::vector<std::string> warnings;   // what anjud should log loudly (a rollback, a bad file)
};
// The config anjud starts with. `base` is the installer's (overrides applied). A trial config
// is used once: when anjud starts again with the trial not confirmed (it crashed, was killed or
// lost power during the trial), the trial is rejected and the city's last good config (or the
// base) is used. `adjust` (the command line's overrides) applies to the city's configs too; the
// data directory stays base's.
StartConfig choose_start_config(const Config& base, const std::function<void(Config&)>& adjust);

// The trial passed: its config becomes the city's config, the outcome is kept for the city.
std::string confirm_config_trial(const std::string& data_dir);
// The trial failed: its config is moved to config.rejected.yaml, the outcome kept for the city.
std::string reject_config_trial(const std::string& data_dir, const std::string& reason);

// An outcome the city has not been told yet; clear it once the answer is sent.
std::optional<ConfigOutcome> pending_config_outcome(const std::string& data_dir);
void clear_config_outcome(const std::string& data_dir);

// The answer's result for an outcome (page 1, the last, of the request's answer).
nlohmann::json config_outcome_result(const ConfigOutcome& outcome);

}  // namespace anju::firmware
