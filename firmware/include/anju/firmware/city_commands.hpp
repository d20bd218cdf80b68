// What anjud does with a command from the city (anju/v1/<site>/cmd/<name>, see
// docs/contract/README.md "Commands"): parse it (bridge::parse_city_command: strict, stale and
// unauthorised requests refused), journal an audit event for it, apply it, and answer on the MQTT 5
// response topic (with the correlation data) or the payload's reply_to.
//
//   alert.ack, alert.close  the city side of the alert life-cycle, through the pipeline like a
//                           local command (idempotent by request_id, kept in the journal)
//   events.query            a bounded query of the journal; the events as the city receives them
//                           (no personal data), paged, kQueryPageSize per answer
//   diag                    the status anjud shows locally (counters, link state, versions)
//   credentials.sync        the access control's credential list from the city, a delta against
//                           the version the gateway has (or the whole list), kept on the gateway
//                           and used by the readers at once
//   evidence.request        one alert's camera snapshot, with the reason, audited and limited to
//                           evidence_per_hour releases: the only way an image leaves the gateway
//   config.apply            a whole new config (YAML), checked in full, put on trial: anjud
//                           restarts with it and keeps it only if it reaches the city broker
//                           within health_timeout_s, else goes back (firmware/config_trial.hpp);
//                           answered twice: page 0 "trial" now, page 1 (last) with the outcome
//   rules.update            the same for the running config with its rules section replaced
// The last four need the city's token (bridge/city_token.hpp: a JWS signed with the city's key,
// bound to this site, the command and its request id, carrying the arguments); without a key
// provisioned (uplink.command_key_file) they are refused.
// Thread: handle() on the uplink's Paho thread; answers to alert commands on the pipeline thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "anju/bridge/city_command.hpp"
#include "anju/bridge/city_token.hpp"
#include "anju/edge/clock.hpp"
#include "anju/edge/mqtt.hpp"
#include "anju/edge/pipeline.hpp"
#include "anju/firmware/config_trial.hpp"

namespace anju::firmware {

struct CityCommandContext {
  std::string site;
  std::string division_code;
  std::string db_path;                     // the journal, read by events.query
  std::function<nlohmann::json()> status;  // diag
  // The city's key for signed commands; null: they are refused.
  std::shared_ptr<const bridge::CityKey> city_key;
  // credentials.sync: applies the verified args; the result ({version, credentials}) or, with
  // `error` set, nothing. `duplicate`: that version was already there.
  std::function<nlohmann::json(const nlohmann::json& args, std::string& error, bool& duplicate)>
      credentials_sync;
  std::string evidence_dir;    // evidence.request: <data_dir>/evidence
  int evidence_per_hour = 10;  // evidence.request: releases in any hour (0: none)
  // config.apply, rules.update (unset: refused): the running config's YAML text, the checks of
  // a new one (errors; empty: acceptable), putting it on trial ("" or what failed) and asking
  // anjud to restart with it (after the first answer has gone).
  std::string data_dir;
  std::function<std::string()> config_text;
  std::function<std::vector<std::string>(const std::string& yaml)> check_config;
  std::function<std::string(const std::string& yaml, const ConfigRequest& request)> stage_trial;
  std::function<void()> restart;
  // Sends an answer (QoS 1); false when it could not be sent.
  std::function<bool(const std::string& topic, const std::string& payload,
                     const std::string& correlation_data)>
      respond;
};

struct CityCommandStats {
  std::int64_t received = 0;
  std::int64_t refused = 0;
  std::int64_t unanswerable = 0;  // neither a response topic nor reply_to
};

class CityCommands {
 public:
  CityCommands(CityCommandContext ctx, edge::Pipeline& pipeline, const edge::Clock& clock);
  // The filter the uplink subscribes to: anju/v1/<site>/cmd/#. A command's levels after cmd/ are
  // joined with '.': RabbitMQ delivers cmd/alert.ack as cmd/alert/ack (docs/contract/BROKERS.md).
  std::string filter() const { return prefix_ + "#"; }
  void handle(const edge::LocalBus::Message& m);
  CityCommandStats stats() const;
  // A config trial's outcome (decided by anjud, perhaps in an earlier run): audited, and the last
  // page of the request's answer. False when the answer could not be sent.
  bool report_config_outcome(const ConfigOutcome& outcome);

 private:
  void answer(const std::string& topic, const std::string& corr, const std::string& request_id,
              bool ok, bool duplicate, const std::string& error,
              const nlohmann::json& result = nlohmann::json(), int page = -1, bool last = true);
  void audit(const std::string& command, const std::string& request_id, const std::string& user,
             bool ok, const std::string& error, const nlohmann::json& extra = nlohmann::json());
  // evidence.request, verified: the snapshot and what the answer says of it, or an error.
  nlohmann::json release_evidence(const bridge::EvidenceRequest& r, std::string& error);

  CityCommandContext ctx_;
  edge::Pipeline& pipeline_;
  const edge::Clock& clock_;
  std::string prefix_;
  std::atomic<std::int64_t> received_{0}, refused_{0}, unanswerable_{0};
  std::deque<std::int64_t> releases_;  // evidence.request: wall ms of the last hour's releases
};

}  // namespace anju::firmware
