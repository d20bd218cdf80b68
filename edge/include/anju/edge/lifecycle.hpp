// The alert life-cycle: raised → acknowledged → handled → closed, with false_alarm (closed with
// that reason) and suspended (e.g. a door under repair) beside them; who, when, from where and why
// for every step. The checks and the command parser are pure; the RuleEngine applies them.
// Thread: plain functions and values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "anju/edge/alert.hpp"

namespace anju::edge {

enum class AlertAction { ack, handle, close, false_alarm, suspend, resume };
std::string_view to_string(AlertAction a);
std::optional<AlertAction> alert_action_from_string(std::string_view s);

struct AlertCommand {
  std::string request_id;  // idempotency key: the same id is applied once
  std::string alert_id;
  AlertAction action = AlertAction::ack;
  std::string user;             // who asks
  std::string via;              // where from: "local_mqtt", "dashboard", "city"
  std::string note;             // optional
  std::string reply_to;         // MQTT 3.1.1 fallback for the response topic ("" if none)
  std::int64_t expires_ms = 0;  // 0: no expiry
};

inline constexpr std::size_t kMaxCommandBytes = 8 * 1024;

// What every command parser on the local bus and from the city does first (pure): the payload is
// at most `max_bytes` and a JSON object. On failure, `error` says which ("command too large: N
// bytes (max M)", "command is not valid JSON", "command must be a JSON object").
std::optional<nlohmann::json> parse_command_object(std::string_view payload, std::size_t max_bytes,
                                                   std::string& error);
// An id that goes into topics, logs and file names: 1..max bytes, no control characters and no
// MQTT separators or wildcards (/ + #).
bool printable_id(std::string_view s, std::size_t max);
inline constexpr std::size_t kMaxNoteChars = 1000;

struct CommandParse {
  std::optional<AlertCommand> command;
  std::string error;
};
// Pure: {"action":"ack","user":"wang","note":"on my way","request_id":"r-17","reply_to":"t",
// "expires_ms":1760000000000}. action, user and request_id are required; unknown fields are
// errors (a typo must not pass as a different command).
CommandParse parse_alert_command(std::string_view alert_id, std::string_view payload,
                                 std::string_view via);

struct TransitionCheck {
  std::string to;     // the state the action leads to
  std::string error;  // non-empty: refused, and why
};
// Pure. Legal: ack: raised → acknowledged; handle: raised|acknowledged → handled;
// close: acknowledged|handled → closed; false_alarm: any open state → closed;
// suspend: raised|acknowledged|handled → suspended; resume: suspended → the state before it.
TransitionCheck check_transition(const Alert& a, AlertAction action);

// Maintenance windows: a device, or a building (optionally one unit of it), in maintenance until a
// time. Alerts raised there meanwhile are recorded and shown locally, marked suppressed, but not
// sent to the city and not escalated.
struct MaintenanceWindow {
  std::string device;    // device id or name; empty when the target is an area
  std::string building;  // area target
  std::string unit;      // optional, with building
  std::string by;
  std::string note;
  std::int64_t from_ms = 0;
  std::int64_t until_ms = 0;
  bool covers(const DeviceRef& d, const Location& l, std::int64_t now_ms) const;
  bool same_target(const MaintenanceWindow& o) const;
  std::string target() const;  // "device 0x01", "building 3 unit 2"
};
nlohmann::json to_json(const MaintenanceWindow& w);
std::optional<MaintenanceWindow> maintenance_from_json(const nlohmann::json& j);

struct MaintenanceCommand {
  std::string request_id;
  std::string user;
  std::string via;
  std::string note;
  std::string reply_to;
  bool start = true;  // "start" or "end"
  std::string device;
  std::string building;
  std::string unit;
  std::int64_t duration_s = 0;  // start only: 1 s .. 30 days
};
struct MaintenanceParse {
  std::optional<MaintenanceCommand> command;
  std::string error;
};
// Pure: {"action":"start","user":"wang","request_id":"r","device":"leak_pump_room",
// "duration_s":3600,"note":"pump repair"}; or "building" (+ "unit") instead of "device";
// {"action":"end", ...target...} ends it early.
MaintenanceParse parse_maintenance_command(std::string_view payload, std::string_view via);

}  // namespace anju::edge
