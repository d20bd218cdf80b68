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
//   config.apply, rules.update, credentials.sync, evidence.request
//                           refused without the city's token; with one, refused as not supported
//                           by this version (the token's verification comes with them)
// Thread: handle() on the uplink's Paho thread; answers to alert commands on the pipeline thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "anju/edge/clock.hpp"
#include "anju/edge/mqtt.hpp"
#include "anju/edge/pipeline.hpp"

namespace anju::firmware {

struct CityCommandContext {
  std::string site;
  std::string division_code;
  std::string db_path;                     // the journal, read by events.query
  std::function<nlohmann::json()> status;  // diag
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
  // The filter the uplink subscribes to: anju/v1/<site>/cmd/+.
  std::string filter() const { return prefix_ + "+"; }
  void handle(const edge::LocalBus::Message& m);
  CityCommandStats stats() const;

 private:
  void answer(const std::string& topic, const std::string& corr, const std::string& request_id,
              bool ok, bool duplicate, const std::string& error,
              const nlohmann::json& result = nlohmann::json(), int page = -1, bool last = true);
  void audit(const std::string& command, const std::string& request_id, const std::string& user,
             bool ok, const std::string& error);

  CityCommandContext ctx_;
  edge::Pipeline& pipeline_;
  const edge::Clock& clock_;
  std::string prefix_;
  std::atomic<std::int64_t> received_{0}, refused_{0}, unanswerable_{0};
};

}  // namespace anju::firmware
