// An alert: a condition someone must look at, raised by a rule from one or more events.
// One open alert per (rule, device); repeats count on it. Thread: plain value type.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "anju/edge/event.hpp"

namespace anju::edge {

inline constexpr int kAlertSchema = 1;
inline constexpr std::size_t kAlertMaxEventIds = 32;  // the first and the most recent ones
inline constexpr std::size_t kAlertMaxHistory = 50;

struct Alert {
  std::string alert_id;  // UUIDv7
  std::string rule;      // rule name, e.g. "smoke", "device_offline", "temperature_high"
  EventKind kind = EventKind::smoke;  // what the alert is about
  std::string site;
  std::string grid_code;
  Location location;
  DeviceRef device;
  int severity = 3;
  std::string state = "raised";    // raised → acknowledged → handled → closed, or suspended
  std::string close_reason;        // "resolved" or "false_alarm" once closed
  std::string suspended_from;      // the state to go back to on resume
  bool condition_cleared = false;  // the condition went back to normal; the alert stays open
  std::int64_t count = 1;          // events that raised or repeated it
  std::int64_t first_seen_ms = 0;
  std::int64_t last_seen_ms = 0;
  std::int64_t updated_ms = 0;
  std::int64_t last_seq = 0;           // journal seq of the latest event that touched it
  std::int64_t version = 1;            // +1 on every change, so consumers can order updates
  std::vector<std::string> event_ids;  // events that caused it (capped at kAlertMaxEventIds)
  std::optional<double> value;         // the reading that crossed a threshold, if any
  std::string message;                 // short human text
  bool suppressed = false;        // raised during a maintenance window: shown locally, not sent on
  bool test = false;              // raised by a test event (anju test-event): nobody is dispatched
  int escalation_level = 0;       // times escalated for want of an acknowledgement
  std::int64_t escalated_ms = 0;  // when it last was
  struct Step {
    std::string action;  // ack, handle, close, false_alarm, suspend, resume, escalate
    std::string from;
    std::string to;
    std::string by;   // user, or "system"
    std::string via;  // local_mqtt, dashboard, city, rules
    std::string note;
    std::int64_t at_ms = 0;
  };
  std::vector<Step> history;  // every transition (capped at kAlertMaxHistory, oldest go first)
  // Linked alerts: a correlated alert lists the alerts merged into it; a merged alert (closed
  // with close_reason "merged") lists the one it was merged into.
  std::vector<std::string> related;

  bool open() const { return state != "closed"; }
};

// What happened to an alert in one step of the rule engine.
enum class AlertChangeType {
  raised,
  repeated,
  condition_cleared,
  condition_returned,
  acknowledged,
  handled,
  closed,
  suspended,
  resumed,
  escalated,
};
std::string_view to_string(AlertChangeType t);

struct AlertChange {
  AlertChangeType type;
  Alert alert;       // the alert after the change
  std::string json;  // to_json(alert).dump(), made once by the pipeline for every consumer
};

nlohmann::json to_json(const Alert& a);
std::optional<Alert> alert_from_json(const nlohmann::json& j, std::string* error = nullptr);

}  // namespace anju::edge
