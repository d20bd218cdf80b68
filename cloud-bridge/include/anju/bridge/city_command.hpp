// Commands from the city platform (downlink): anju/v1/<site>/cmd/<name>, the request in
// docs/contract/schemas/command_request.json, the answer in command_response.json.
//
// The parser is pure (no clock, no I/O: `now_ms` is given) and strict: unknown members, a wrong
// type, a stale request or a command that needs the city's authorisation token without one are
// refused with a reason that names what is wrong. What each command does is the daemon's part.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "anju/edge/event.hpp"

namespace anju::bridge {

inline constexpr std::size_t kMaxCityCommandBytes = 16 * 1024;
// Commands that need the city's token carry their arguments in it (city_token.hpp).
inline constexpr std::size_t kMaxSignedCityCommandBytes = 64 * 1024;
inline constexpr int kMaxQueryLimit = 500;  // events.query: rows per request
inline constexpr int kQueryPageSize = 50;   // events.query: rows per response message

enum class CityCommandName {
  alert_ack,
  alert_close,
  config_apply,
  rules_update,
  credentials_sync,
  events_query,
  evidence_request,
  diag,
};

std::optional<CityCommandName> city_command_from_string(std::string_view name);
std::string_view to_string(CityCommandName name);
// Commands that change configuration or release evidence: they need `authorization`.
bool needs_authorization(CityCommandName name);

struct EventsQuery {
  std::int64_t after_seq = 0;                 // events with seq > after_seq
  std::optional<std::int64_t> since_ms;       // and ts_ms >= since_ms
  std::optional<anju::edge::EventKind> kind;  // only this kind
  int limit = 100;                            // 1..kMaxQueryLimit
};

struct CityCommand {
  CityCommandName name = CityCommandName::diag;
  std::string request_id;
  std::string user;
  std::int64_t issued_ms = 0;
  std::int64_t expires_ms = 0;
  std::string reply_to;  // MQTT 3.1.1 fallback ("" when none)
  nlohmann::json args = nlohmann::json::object();
  std::string authorization;
  // Parsed arguments of the commands that have them.
  std::string alert_id;  // alert.ack, alert.close
  std::string note;      // alert.ack, alert.close
  EventsQuery query;     // events.query
};

struct CityCommandParse {
  std::optional<CityCommand> command;
  std::string error;       // non-empty when refused
  std::string request_id;  // what could be read of it, so a refusal can still be answered
  std::string reply_to;    // idem
};

// evidence.request's arguments (from inside the city's token): {"alert_id", "reason"}, both
// required (the reason goes into the audit log).
struct EvidenceRequest {
  std::string alert_id;
  std::string reason;
};
bool parse_evidence_args(const nlohmann::json& args, EvidenceRequest& r, std::string& error);

// `name` is the topic's last level; `now_ms` the gateway's wall clock.
CityCommandParse parse_city_command(std::string_view name, std::string_view payload,
                                    std::int64_t now_ms);

// The answer (command_response.json). `page`/`last` only for paged results (page >= 0).
std::string city_command_response(const std::string& site, const std::string& request_id,
                                  std::int64_t ts_ms, bool ok, bool duplicate,
                                  const std::string& error,
                                  const nlohmann::json& result = nlohmann::json(), int page = -1,
                                  bool last = true);

}  // namespace anju::bridge
