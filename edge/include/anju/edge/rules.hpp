// The rule engine: stateful, driven by accepted events and by a clock that tests drive by hand.
// It decides which alerts open, repeat and clear; it never touches storage or the network.
// Thread: owned by the pipeline thread.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "anju/edge/alert.hpp"
#include "anju/edge/event.hpp"
#include "anju/edge/lifecycle.hpp"

namespace anju::edge {

// A rule on one measured value of a device, in one of three forms:
// - level: above and/or below a limit;
// - rate of rise: the value has risen by at least `rise` over its lowest reading of the last
//   `rise_window_ms` (a fire: temperature +8 C in 60 s);
// - never zero: every reading for `nonzero_for_ms` was non-zero (a water meter's flow that never
//   stops: a leak).
// Each raises once the condition has held for `hold_ms`, and clears with hysteresis (level and
// rise: back by `hysteresis`; never zero: the first zero reading). Rise windows and never-zero
// timers live in memory: after a restart they start again from the next readings.
struct ThresholdSpec {
  std::string name;                         // rule name, e.g. "temperature_high"
  EventKind kind = EventKind::temperature;  // reading kind (temperature, water_level, ...)
  std::string value_name;                   // the value watched; empty: the kind's name
  std::optional<double> above;
  std::optional<double> below;
  std::optional<double> rise;            // rate of rise: by this much...
  std::int64_t rise_window_ms = 60'000;  // ...within this long
  std::int64_t nonzero_for_ms = 0;       // never zero for this long (0: not this form)
  double hysteresis = 1.0;
  std::int64_t hold_ms = 0;
  int severity = 3;
  std::set<std::string> devices;  // ids or names; empty = all
};

// Correlation: when alerts of every one of `rules` are open and were seen within `window_ms` of
// each other in the same place (`scope`), they become one alert `name` (severity `severity`) that
// links them; they are closed as "merged" into it, and what would have repeated or raised them
// again counts on it while it is open. A smoke alarm plus a temperature rise in the same room:
// fire_suspected, severity 1, one alert for property management and the city instead of two.
// The first alert is never held back (a smoke alarm is raised at once); it is merged when the
// second arrives.
enum class CorrelationScope { device, room, unit, building, site };
std::string_view to_string(CorrelationScope s);
std::optional<CorrelationScope> correlation_scope_from_string(std::string_view s);
struct CorrelationSpec {
  std::string name;                // the correlated alert's rule name, e.g. "fire_suspected"
  std::vector<std::string> rules;  // alert rules that must all be open, e.g. smoke + a rise rule
  std::int64_t window_ms = 120'000;
  CorrelationScope scope = CorrelationScope::room;
  int severity = 1;
};

// The heartbeat timeout of each driver's devices unless configured (by event source). The
// drivers that watch their devices themselves (a poll, a video stream, a bus) report
// device_offline and device_online on their own, and a wired input cannot tell a fault from
// nothing happening, so silence is no fault there: modbus, camera, osdp, wiegand and gpio are 0.
std::map<std::string, std::int64_t> default_heartbeat_by_source();

// Welfare check (独居老人, the access issue's watched homes): when none of `devices` (ids or
// names: the home's door, its water meter) showed activity for `quiet_ms`, the supervisor
// synthesizes a welfare_check event at the home's location and the rules raise `name` (severity
// `severity`) from it, once; the next activity clears the condition (the alert stays for a person
// to handle). Activity: a contact or door opening or closing, a passage, an exit request,
// occupancy, a reading whose value changed since that device's previous one (a water meter that
// advanced), or a flow above zero. Heartbeats, battery and signal reports are not activity, so list
// only devices that people move. The quiet time runs from the newest activity the journal holds
// (restore_activity), else from the gateway's start. The alert names the first listed device the
// gateway has heard from (none heard yet: the home is not installed, nothing is raised).
struct WelfareSpec {
  std::string name;                  // rule name of the alert, e.g. "welfare_3_2_1201"
  Location home;                     // where the alert is (empty: the device's location)
  std::vector<std::string> devices;  // ids or names
  std::int64_t quiet_ms = 86'400'000;
  int severity = 2;
};

struct RuleSettings {
  int battery_low_percent = 10;
  // A device's heartbeat timeout: its own override (id or name), else its driver's (the source of
  // what it sent), else heartbeat_timeout_ms. 0 = no supervision.
  std::int64_t heartbeat_timeout_ms = 3'600'000;
  std::map<std::string, std::int64_t> heartbeat_overrides;  // device id or name → timeout (0=off)
  std::map<std::string, std::int64_t> heartbeat_by_source = default_heartbeat_by_source();
  // Weak radio link, raised once as signal_weak (severity 4) and cleared with hysteresis:
  // - a zigbee2mqtt linkquality (attrs "linkquality", 0..255) at or below weak_linkquality
  //   raises it; above weak_linkquality + linkquality_hysteresis clears it (0 = off);
  // - a driver's own signal_weak event raises it; its all-clear counts only when it carries the
  //   RSSI ("rssi") at least rssi_hysteresis_db above its threshold (attrs "weak_below_dbm"), or
  //   carries no numbers at all.
  double weak_linkquality = 0;
  double linkquality_hysteresis = 10;
  double rssi_hysteresis_db = 5;
  std::vector<ThresholdSpec> thresholds;
  std::vector<CorrelationSpec> correlations;
  std::vector<WelfareSpec> welfare;
  // Escalation: an alert still `raised` (nobody acknowledged it) this long after it was raised, or
  // after its last escalation, is escalated. Index = severity (1..4); 0 = never.
  std::array<std::int64_t, 5> escalate_after_ms{0, 60'000, 300'000, 1'800'000, 0};
  bool escalation_raises_severity = true;  // one step more serious per escalation, down to 1
};

// A device the registry knew before a restart (the journal's devices table).
struct KnownDevice {
  DeviceRef ref;
  std::string source;  // the driver that last heard it
  std::int64_t last_seen_ms = 0;
  bool offline = false;
};

struct CommandResult {
  bool ok = false;
  std::string error;           // why it was refused
  std::optional<Alert> alert;  // the alert after the command (or as it is, when refused)
};

class RuleEngine {
 public:
  explicit RuleEngine(RuleSettings settings);

  // Restart: the open alerts and the devices known, as stored. `now_ms` starts every device's
  // heartbeat window afresh so that downtime of the gateway is not a device fault; a device that
  // was offline stays offline (no second device_offline) until it is heard again.
  void restore(const std::vector<Alert>& open_alerts, const std::vector<KnownDevice>& devices,
               std::int64_t now_ms);

  // Restart: the newest activity the journal holds, by device id (kinds in activity_kinds()), so
  // that a welfare check's quiet time does not start again at every restart. Call after restore.
  void restore_activity(const std::map<std::string, std::int64_t>& last_activity_ms);
  // Kinds that are activity by themselves (without comparing values), for restore_activity.
  static std::vector<EventKind> activity_kinds();

  // One accepted event (seq assigned). Appends what happened to alerts. A gateway_test event
  // raises a test alert of its own (Alert::test; kind from attrs "alert_kind").
  void on_event(const Event& e, std::vector<AlertChange>& out);

  // Time passes. Fills `synthesized` with events the rules create (device_offline when a device
  // went silent, device_online when one the supervisor had declared offline was heard again); the
  // caller journals them and feeds them back through on_event. Appends alert
  // changes that need no new event (a threshold held long enough).
  void on_tick(std::int64_t now_ms, std::vector<Event>& synthesized, std::vector<AlertChange>& out);

  // A person's (or the city's) step in an alert's life-cycle. A closed alert leaves the open set:
  // the next occurrence of its condition raises a new alert.
  CommandResult apply(const AlertCommand& cmd, std::int64_t now_ms, std::vector<AlertChange>& out);

  // Starts or ends a maintenance window (a new one for the same target replaces the old).
  CommandResult apply(const MaintenanceCommand& cmd, std::int64_t now_ms);
  void restore_maintenance(std::vector<MaintenanceWindow> windows) {
    maintenance_ = std::move(windows);
  }
  const std::vector<MaintenanceWindow>& maintenance() const { return maintenance_; }

  // The earliest time on_tick has something to do, or INT64_MAX.
  std::int64_t next_deadline_ms() const;

  std::vector<Alert> open_alerts() const;
  std::size_t open_alert_count() const { return open_.size(); }
  std::size_t tracked_devices() const { return devices_.size(); }
  // Devices currently considered offline.
  std::size_t offline_devices() const;

 private:
  struct DeviceInfo {
    DeviceRef ref;
    Location location;
    std::string site;
    std::string grid_code;
    std::string source;  // the driver that last heard it (its heartbeat default)
    std::int64_t last_seen_ms = 0;
    bool offline = false;              // offline by availability or heartbeat
    bool offline_synthesized = false;  // we raised it (heartbeat), so we announce the return
    bool signal_weak = false;          // the weak-signal condition holds (with its hysteresis)
    std::optional<double> battery;
    // Its heartbeat timeout, worked out once (-1: not yet; reset when its name or driver changes):
    // supervision looks at every device on every tick.
    mutable std::int64_t timeout_ms = -1;
  };
  struct ThresholdState {
    bool pending = false;
    std::int64_t pending_since_ms = 0;
    std::vector<std::string> pending_event_ids;
    std::int64_t pending_seq = 0;
    double pending_value = 0;
    bool active = false;
    std::deque<std::pair<std::int64_t, double>> window;  // rate of rise: recent readings
    std::optional<std::int64_t> nonzero_since_ms;        // never zero: since when
  };
  using Key = std::pair<std::string, std::string>;  // (rule, device id)

  // `tally`: the cause counts its own occurrences (a repeated_denial's attrs.count, the denials in
  // the streak): the alert's count follows it instead of counting the causes, and a repeat that
  // does not raise it says nothing new.
  void condition(const Event& cause, const std::string& rule, EventKind kind, int severity,
                 bool present, std::optional<double> value, std::vector<AlertChange>& out,
                 bool count_repeats = true, std::optional<std::int64_t> tally = std::nullopt);
  void threshold(const ThresholdSpec& spec, const Event& e, double v,
                 std::vector<AlertChange>& out);
  void raise_threshold(const ThresholdSpec& spec, ThresholdState& st, const DeviceInfo& dev,
                       std::int64_t now_ms, std::vector<AlertChange>& out);
  std::int64_t heartbeat_timeout(const DeviceInfo& d) const;
  std::int64_t timeout_of(const DeviceInfo& d) const;  // cached heartbeat_timeout
  void signal_rules(const Event& e, DeviceInfo& dev, std::vector<AlertChange>& out);
  void welfare_rules(const Event& e, std::vector<AlertChange>& out);
  void welfare_tick(std::int64_t now_ms, std::vector<Event>& synthesized);
  // An event the supervisor says about a device (offline, online again, a quiet home).
  static Event supervisor_event(const DeviceInfo& dev, EventKind kind, int severity,
                                std::int64_t now_ms);
  bool is_activity(const Event& e);
  void clear_condition(const Key& key, const Event& cause, std::vector<AlertChange>& out);
  // Correlations for the changes out[from..]; appends the merges and correlated alerts.
  void on_event_rules(const Event& e, std::vector<AlertChange>& out);
  void test_alert(const Event& e, std::vector<AlertChange>& out);
  static Key test_key(const Alert& a);
  void on_tick_rules(std::int64_t now_ms, std::vector<Event>& synthesized,
                     std::vector<AlertChange>& out);
  void correlate(std::size_t from, std::int64_t now_ms, std::vector<AlertChange>& out);
  // Counts a repeat of a merged (rule, device) on its correlated alert; false when there is none.
  bool repeat_on_correlated(const Key& key, const Event& cause, std::vector<AlertChange>& out);
  std::int64_t escalation_due(const Alert& a) const;
  Alert new_alert(const std::string& rule, EventKind kind, int severity, const DeviceInfo& dev,
                  std::int64_t now_ms) const;
  static std::string describe(const Alert& a);

  RuleSettings settings_;
  std::map<Key, Alert> open_;  // open alerts by (rule, device)
  std::map<std::string, DeviceInfo> devices_;
  std::map<Key, ThresholdState> thresholds_;
  std::map<Key, std::string> merged_;  // (rule, device) merged -> correlated alert id (in memory)
  std::vector<MaintenanceWindow> maintenance_;
  // Devices heard again after the supervisor declared them offline: their device_online is
  // synthesized at the next tick (on_event cannot make events).
  std::vector<std::pair<std::string, std::int64_t>> returned_;  // (device id, heard at)
  struct WelfareState {
    std::int64_t last_activity_ms = -1;  // -1: from the first tick
    bool alarmed = false;                // its welfare_check was synthesized, no activity since
    std::string alert_device;            // the device its alert is keyed by
  };
  std::map<std::string, WelfareState> welfare_;  // by spec name
  // The last value of each reading of the devices welfare specs watch: (device id, value name).
  std::map<std::pair<std::string, std::string>, double> watched_values_;
};

}  // namespace anju::edge
