#include "anju/edge/rules.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "anju/edge/clock.hpp"
#include "anju/edge/uuid.hpp"

namespace anju::edge {
namespace {

// Readings kept per (rate-of-rise rule, device): a sensor reporting every second fills a 60 s
// window with 60; one reporting far faster keeps its newest 512.
constexpr std::size_t kRiseWindowMax = 512;

// Severity of the alert each binary condition raises (../shared/design/DOMAIN.md).
std::optional<int> alarm_severity(EventKind k) {
  switch (k) {
    case EventKind::smoke:
    case EventKind::gas:
      return 1;
    case EventKind::manhole_open:
    case EventKind::equipment_alarm:
    case EventKind::security_fault:
      return 2;
    case EventKind::water_leak:
    case EventKind::tamper:
    case EventKind::battery_low:
    case EventKind::equipment_fault:
      return 3;
    default:
      return std::nullopt;
  }
}

// Kinds whose severity is chosen where they are derived (the door rules' settings, a camera
// zone's config), raised as conditions when they carry `active` (forced, held open, intrusion,
// loitering, camera tamper) and as one-off alerts otherwise (tailgating, repeated denials, a
// thrown object: each one counts on the open alert).
bool derived_alert_kind(EventKind k) {
  switch (k) {
    case EventKind::door_forced:
    case EventKind::door_held_open:
    case EventKind::tailgating:
    case EventKind::repeated_denial:
    case EventKind::intrusion:
    case EventKind::loitering:
    case EventKind::camera_tamper:
    case EventKind::thrown_object:
      return true;
    default:
      return false;
  }
}

void remember(Alert& a, const Event& e) {
  if (a.event_ids.size() >= kAlertMaxEventIds) {
    // Keep the first ids (what started it) and a window of the most recent.
    a.event_ids.erase(a.event_ids.begin() + kAlertMaxEventIds / 2);
  }
  a.event_ids.push_back(e.id);
  a.last_seq = std::max(a.last_seq, e.seq);
}

// Where an alert is, at the granularity of a correlation; "" when the alert does not say (a
// room-scoped correlation cannot join alerts without a room).
std::string scope_key(CorrelationScope scope, const Alert& a) {
  const Location& l = a.location;
  switch (scope) {
    case CorrelationScope::device:
      return a.device.id;
    case CorrelationScope::room:
      return l.room.empty() ? "" : l.building + "/" + l.unit + "/" + l.room;
    case CorrelationScope::unit:
      return l.unit.empty() ? "" : l.building + "/" + l.unit;
    case CorrelationScope::building:
      return l.building;
    case CorrelationScope::site:
      return a.site.empty() ? "site" : a.site;
  }
  return {};
}

constexpr std::pair<CorrelationScope, std::string_view> kScopes[] = {
    {CorrelationScope::device, "device"},
    {CorrelationScope::room, "room"},
    {CorrelationScope::unit, "unit"},
    {CorrelationScope::building, "building"},
    {CorrelationScope::site, "site"}};

}  // namespace

std::string_view to_string(CorrelationScope s) {
  for (const auto& [v, n] : kScopes)
    if (v == s) return n;
  return "room";
}

std::optional<CorrelationScope> correlation_scope_from_string(std::string_view s) {
  for (const auto& [v, n] : kScopes)
    if (n == s) return v;
  return std::nullopt;
}

RuleEngine::RuleEngine(RuleSettings settings) : settings_(std::move(settings)) {}

std::map<std::string, std::int64_t> default_heartbeat_by_source() {
  return {{"modbus", 0}, {"camera", 0}, {"osdp", 0}, {"wiegand", 0}, {"gpio", 0}};
}

void RuleEngine::restore(const std::vector<Alert>& open_alerts,
                         const std::vector<KnownDevice>& devices, std::int64_t now_ms) {
  open_.clear();
  thresholds_.clear();
  returned_.clear();
  for (const auto& k : devices) {
    auto& d = devices_[k.ref.id];
    d.ref = k.ref;
    if (!k.source.empty()) d.source = k.source;
    d.timeout_ms = -1;
    d.last_seen_ms = std::max(k.last_seen_ms, now_ms);
    if (k.offline) {
      d.offline = true;
      d.offline_synthesized = true;  // heard again, it is announced online
    }
  }
  for (const auto& a : open_alerts) {
    if (!a.open()) continue;
    if (a.test) {  // a test's alert is its own: nothing about the device follows from it
      open_[test_key(a)] = a;
      continue;
    }
    open_[{a.rule, a.device.id}] = a;
    auto& d = devices_[a.device.id];
    if (d.ref.id.empty()) {
      d.ref = a.device;
      d.last_seen_ms = now_ms;
    }
    d.location = a.location;
    d.site = a.site;
    d.grid_code = a.grid_code;
    if (a.rule == "device_offline" && !a.condition_cleared) {
      d.offline = true;
      d.offline_synthesized = true;
    }
    if (a.rule == "signal_weak" && !a.condition_cleared) d.signal_weak = true;
    for (const auto& spec : settings_.welfare)
      if (a.rule == spec.name && !a.condition_cleared) {
        welfare_[spec.name].alarmed = true;
        welfare_[spec.name].alert_device = a.device.id;
      }
    for (const auto& spec : settings_.thresholds) {
      if (spec.name == a.rule && !a.condition_cleared)
        thresholds_[{a.rule, a.device.id}].active = true;
    }
  }
}

std::int64_t RuleEngine::escalation_due(const Alert& a) const {
  // Only an alert nobody has taken (still raised) escalates; timers are data in the alert, so
  // they survive a restart.
  if (a.state != "raised" || a.suppressed || a.test || a.severity < 1 || a.severity > 4)
    return std::numeric_limits<std::int64_t>::max();
  const std::int64_t after = settings_.escalate_after_ms[static_cast<std::size_t>(a.severity)];
  if (after <= 0) return std::numeric_limits<std::int64_t>::max();
  return (a.escalation_level == 0 ? a.first_seen_ms : a.escalated_ms) + after;
}

std::int64_t RuleEngine::heartbeat_timeout(const DeviceInfo& d) const {
  if (auto it = settings_.heartbeat_overrides.find(d.ref.id);
      it != settings_.heartbeat_overrides.end())
    return it->second;
  if (auto it = settings_.heartbeat_overrides.find(d.ref.name);
      it != settings_.heartbeat_overrides.end())
    return it->second;
  if (auto it = settings_.heartbeat_by_source.find(d.source);
      it != settings_.heartbeat_by_source.end())
    return it->second;
  return settings_.heartbeat_timeout_ms;
}

std::int64_t RuleEngine::timeout_of(const DeviceInfo& d) const {
  if (d.timeout_ms < 0) d.timeout_ms = heartbeat_timeout(d);
  return d.timeout_ms;
}

Alert RuleEngine::new_alert(const std::string& rule, EventKind kind, int severity,
                            const DeviceInfo& dev, std::int64_t now_ms) const {
  Alert a;
  a.alert_id = uuid_v7(now_ms);
  a.rule = rule;
  a.kind = kind;
  a.site = dev.site;
  a.grid_code = dev.grid_code;
  a.location = dev.location;
  a.device = dev.ref;
  a.severity = severity;
  a.count = 0;
  a.first_seen_ms = now_ms;
  a.version = 0;
  for (const auto& w : maintenance_)
    if (w.covers(dev.ref, dev.location, now_ms)) a.suppressed = true;
  return a;
}

std::string RuleEngine::describe(const Alert& a) {
  std::string where = a.location.building;
  if (!a.location.unit.empty()) where += (where.empty() ? "" : "-") + a.location.unit;
  if (!a.location.room.empty()) where += (where.empty() ? "" : " ") + a.location.room;
  std::string what = a.rule;
  std::replace(what.begin(), what.end(), '_', ' ');
  return what + " at " + (a.device.name.empty() ? a.device.id : a.device.name) +
         (where.empty() ? "" : " (" + where + ")");
}

void RuleEngine::condition(const Event& cause, const std::string& rule, EventKind kind,
                           int severity, bool present, std::optional<double> value,
                           std::vector<AlertChange>& out, bool count_repeats,
                           std::optional<std::int64_t> tally) {
  const Key key{rule, cause.device.id};
  auto it = open_.find(key);
  const std::int64_t now = cause.ts_ms;
  if (present) {
    if (it == open_.end() && repeat_on_correlated(key, cause, out)) return;
    if (it == open_.end()) {
      Alert a = new_alert(rule, kind, severity, devices_[cause.device.id], now);
      a.count = tally ? std::max<std::int64_t>(1, *tally) : 1;
      a.version = 1;
      a.last_seen_ms = a.updated_ms = now;
      a.value = value;
      remember(a, cause);
      a.message = describe(a);
      it = open_.emplace(key, std::move(a)).first;
      out.push_back({AlertChangeType::raised, it->second, {}});
      return;
    }
    Alert& a = it->second;
    const bool returned = a.condition_cleared;
    if (tally) {
      if (!returned && *tally <= a.count) return;  // not more than it already says
      a.count = std::max(a.count + (returned ? 1 : 0), *tally);
    } else {
      if (!returned && !count_repeats) return;  // still present: nothing new to say
      ++a.count;
    }
    a.condition_cleared = false;
    ++a.version;
    a.last_seen_ms = a.updated_ms = now;
    if (value) a.value = value;
    remember(a, cause);
    out.push_back(
        {returned ? AlertChangeType::condition_returned : AlertChangeType::repeated, a, {}});
    return;
  }
  clear_condition(key, cause, out);
}

void RuleEngine::clear_condition(const Key& key, const Event& cause,
                                 std::vector<AlertChange>& out) {
  auto it = open_.find(key);
  if (it == open_.end() || it->second.condition_cleared) return;
  Alert& a = it->second;
  a.condition_cleared = true;
  ++a.version;
  a.updated_ms = cause.ts_ms;
  remember(a, cause);
  out.push_back({AlertChangeType::condition_cleared, a, {}});
}

void RuleEngine::raise_threshold(const ThresholdSpec& spec, ThresholdState& st,
                                 const DeviceInfo& dev, std::int64_t now_ms,
                                 std::vector<AlertChange>& out) {
  st.pending = false;
  st.active = true;
  const Key key{spec.name, dev.ref.id};
  auto it = open_.find(key);
  AlertChangeType type = AlertChangeType::raised;
  if (it == open_.end() && merged_.count(key)) {
    Event cause;
    cause.device = dev.ref;
    cause.ts_ms = now_ms;
    cause.seq = st.pending_seq;
    if (repeat_on_correlated(key, cause, out)) {
      st.pending_event_ids.clear();
      return;
    }
  }
  if (it == open_.end()) {
    Alert a = new_alert(spec.name, spec.kind, spec.severity, dev, now_ms);
    it = open_.emplace(key, std::move(a)).first;
  } else {
    type = AlertChangeType::condition_returned;
  }
  Alert& a = it->second;
  a.condition_cleared = false;
  ++a.count;
  ++a.version;
  a.last_seen_ms = a.updated_ms = now_ms;
  a.value = st.pending_value;
  for (const auto& id : st.pending_event_ids) {
    if (a.event_ids.size() >= kAlertMaxEventIds)
      a.event_ids.erase(a.event_ids.begin() + kAlertMaxEventIds / 2);
    a.event_ids.push_back(id);
  }
  a.last_seq = std::max(a.last_seq, st.pending_seq);
  st.pending_event_ids.clear();
  a.message = describe(a);
  out.push_back({type, a, {}});
}

void RuleEngine::threshold(const ThresholdSpec& spec, const Event& e, double v,
                           std::vector<AlertChange>& out) {
  if (!spec.devices.empty() && !spec.devices.count(e.device.id) &&
      !spec.devices.count(e.device.name))
    return;
  ThresholdState& st = thresholds_[{spec.name, e.device.id}];
  bool over = false, back = false;
  if (spec.rise) {
    // Rise over the lowest reading still inside the window (this one included).
    while (!st.window.empty() && st.window.front().first < e.ts_ms - spec.rise_window_ms)
      st.window.pop_front();
    if (st.window.size() >= kRiseWindowMax) st.window.pop_front();
    st.window.emplace_back(e.ts_ms, v);
    double low = v;
    for (const auto& [ts, x] : st.window) low = std::min(low, x);
    over = v - low >= *spec.rise;
    back = v - low < *spec.rise - spec.hysteresis;
  } else if (spec.nonzero_for_ms > 0) {
    if (v == 0) {
      st.nonzero_since_ms.reset();
      back = true;
    } else {
      if (!st.nonzero_since_ms) st.nonzero_since_ms = e.ts_ms;
      over = e.ts_ms - *st.nonzero_since_ms >= spec.nonzero_for_ms;
    }
  } else {
    over = (spec.above && v > *spec.above) || (spec.below && v < *spec.below);
    back = (!spec.above || v < *spec.above - spec.hysteresis) &&
           (!spec.below || v > *spec.below + spec.hysteresis);
  }
  if (st.active) {
    if (back) {
      st.active = false;
      condition(e, spec.name, spec.kind, spec.severity, false, v, out);
    }
    return;
  }
  if (!over) {
    st.pending = false;
    st.pending_event_ids.clear();
    return;
  }
  if (!st.pending) {
    st.pending = true;
    st.pending_since_ms = e.ts_ms;
  }
  if (st.pending_event_ids.size() < kAlertMaxEventIds) st.pending_event_ids.push_back(e.id);
  st.pending_seq = e.seq;
  st.pending_value = v;
  if (e.ts_ms - st.pending_since_ms >= spec.hold_ms)
    raise_threshold(spec, st, devices_[e.device.id], e.ts_ms, out);
}

RuleEngine::Key RuleEngine::test_key(const Alert& a) {
  return {"gateway_test:" + a.alert_id, a.device.id};
}

void RuleEngine::test_alert(const Event& e, std::vector<AlertChange>& out) {
  // An installer's test (anju test-event): an alert of its own, flagged `test`, of the kind it
  // stands for (so that it travels the real topic of that kind to the city) and that kind's
  // severity. It never touches the device's state (last seen, open alerts, thresholds), is never
  // correlated, never escalates, and is sent even during a maintenance window: the installer
  // wants to see the path work.
  EventKind kind = EventKind::gateway_test;
  if (auto it = e.attrs.find("alert_kind"); it != e.attrs.end() && it->is_string())
    if (auto k = event_kind_from_string(it->get<std::string>())) kind = *k;
  DeviceInfo dev;
  dev.ref = e.device;
  dev.location = e.location;
  dev.site = e.site;
  dev.grid_code = e.grid_code;
  Alert a = new_alert("gateway_test", kind,
                      alarm_severity(kind).value_or(std::clamp(e.severity, 1, 4)), dev, e.ts_ms);
  a.test = true;
  a.suppressed = false;
  a.count = 1;
  a.version = 1;
  a.last_seen_ms = a.updated_ms = e.ts_ms;
  remember(a, e);
  a.message = "TEST, nobody is dispatched: " + std::string(to_string(kind)) + " at " +
              (a.device.name.empty() ? a.device.id : a.device.name);
  auto it = open_.emplace(test_key(a), std::move(a)).first;
  out.push_back({AlertChangeType::raised, it->second, {}});
}

void RuleEngine::on_event(const Event& e, std::vector<AlertChange>& out) {
  if (e.kind == EventKind::gateway_test) {
    if (!e.device.id.empty()) test_alert(e, out);
    return;
  }
  const std::size_t from = out.size();
  on_event_rules(e, out);
  correlate(from, e.ts_ms, out);
}

void RuleEngine::on_event_rules(const Event& e, std::vector<AlertChange>& out) {
  if (e.device.id.empty()) return;
  // What the gateway itself says about a device is not hearing from it.
  if (e.kind == EventKind::alert_transition || e.kind == EventKind::maintenance ||
      e.kind == EventKind::audit)
    return;
  DeviceInfo& dev = devices_[e.device.id];
  if (dev.ref.name != e.device.name) dev.timeout_ms = -1;
  dev.ref = e.device;
  dev.location = e.location;
  dev.site = e.site;
  dev.grid_code = e.grid_code;

  if (e.kind == EventKind::welfare_check) {
    welfare_rules(e, out);
    return;
  }
  if (e.kind == EventKind::device_offline) {
    dev.offline = true;
    dev.offline_synthesized = (e.source == "supervisor");
    condition(e, "device_offline", EventKind::device_offline, 3, true, std::nullopt, out, false);
    return;
  }
  if (e.source == "supervisor") return;  // its own device_online, already accounted for
  // What the door rules, people or the city say about a device is not hearing from it.
  const bool heard = !is_derived_source(e.source);
  if (heard) {
    if (!e.source.empty() && e.source != dev.source) {
      dev.source = e.source;
      dev.timeout_ms = -1;
    }
    dev.last_seen_ms = std::max(dev.last_seen_ms, e.ts_ms);
  }
  if (heard && dev.offline && e.kind != EventKind::device_online) {
    // Anything heard from a device that was offline means it is back.
    if (dev.offline_synthesized) returned_.emplace_back(e.device.id, e.ts_ms);
    dev.offline = false;
    dev.offline_synthesized = false;
    condition(e, "device_offline", EventKind::device_offline, 3, false, std::nullopt, out);
  }
  if (e.kind == EventKind::device_online) {
    dev.offline = false;
    dev.offline_synthesized = false;
    condition(e, "device_offline", EventKind::device_offline, 3, false, std::nullopt, out);
    return;
  }
  signal_rules(e, dev, out);
  welfare_rules(e, out);

  if (auto sev = alarm_severity(e.kind); sev && e.active) {
    // A detector still reporting smoke, gas or water is news each time (it counts on the open
    // alert); tamper and battery_low only when they change.
    const bool alarm =
        e.kind == EventKind::smoke || e.kind == EventKind::gas || e.kind == EventKind::water_leak;
    condition(e, std::string(to_string(e.kind)), e.kind, *sev, *e.active, std::nullopt, out, alarm);
  }
  if (derived_alert_kind(e.kind)) {
    const int sev = std::clamp(e.severity, 1, 4);
    std::optional<std::int64_t> tally;
    if (e.kind == EventKind::repeated_denial && e.attrs.is_object()) {
      const auto c = e.attrs.find("count");
      if (c != e.attrs.end() && c->is_number_integer()) tally = c->get<std::int64_t>();
    }
    condition(e, std::string(to_string(e.kind)), e.kind, sev, e.active.value_or(true), std::nullopt,
              out, /*count_repeats=*/!e.active.has_value(), tally);
  }
  if (e.kind == EventKind::battery) {
    if (const auto* m = e.value("battery")) {
      dev.battery = m->value;
      const double low = settings_.battery_low_percent;
      if (m->value <= low)
        condition(e, "battery_low", EventKind::battery_low, 3, true, m->value, out, false);
      else if (m->value > low + 5)  // hysteresis: a battery reading jitters by a few percent
        condition(e, "battery_low", EventKind::battery_low, 3, false, m->value, out);
    }
  }
  for (const auto& spec : settings_.thresholds) {
    if (spec.kind != e.kind) continue;
    const auto* m = e.value(spec.value_name.empty() ? to_string(e.kind) : spec.value_name);
    if (m && std::isfinite(m->value)) threshold(spec, e, m->value, out);
  }
}

void RuleEngine::signal_rules(const Event& e, DeviceInfo& dev, std::vector<AlertChange>& out) {
  constexpr int kSignalSeverity = 4;
  auto weak = [&](bool present, std::optional<double> value) {
    dev.signal_weak = present;
    condition(e, "signal_weak", EventKind::signal_weak, kSignalSeverity, present, value, out,
              false);
  };
  if (e.kind == EventKind::signal_weak && e.active) {
    const Measurement* rssi = e.value("rssi");
    const auto below = e.attrs.find("weak_below_dbm");
    const bool numbers = rssi && below != e.attrs.end() && below->is_number();
    if (*e.active)
      weak(true, rssi ? std::optional<double>(rssi->value) : std::nullopt);
    else if (!numbers || rssi->value >= below->get<double>() + settings_.rssi_hysteresis_db)
      weak(false, rssi ? std::optional<double>(rssi->value) : std::nullopt);
    return;
  }
  if (settings_.weak_linkquality <= 0) return;
  const auto lq = e.attrs.find("linkquality");
  if (lq == e.attrs.end() || !lq->is_number()) return;
  const double v = lq->get<double>();
  if (v <= settings_.weak_linkquality)
    weak(true, v);
  else if (dev.signal_weak && v > settings_.weak_linkquality + settings_.linkquality_hysteresis)
    weak(false, v);
}

namespace {
bool watches(const WelfareSpec& spec, const DeviceRef& d) {
  return std::any_of(spec.devices.begin(), spec.devices.end(), [&](const std::string& x) {
    return x == d.id || (!d.name.empty() && x == d.name);
  });
}
}  // namespace

std::vector<EventKind> RuleEngine::activity_kinds() {
  return {EventKind::contact, EventKind::door_open, EventKind::passage_granted,
          EventKind::exit_request, EventKind::occupancy};
}

bool RuleEngine::is_activity(const Event& e) {
  switch (e.kind) {
    case EventKind::contact:
    case EventKind::door_open:
    case EventKind::passage_granted:
    case EventKind::exit_request:
      return true;
    case EventKind::occupancy:
      return e.active.value_or(false);
    case EventKind::battery:
    case EventKind::battery_low:
    case EventKind::signal_weak:
    case EventKind::tamper:
      return false;
    default:
      break;
  }
  // A reading counts when it moved: a water meter's total that advanced, or any flow.
  bool moved = false;
  for (const auto& m : e.values) {
    if (m.name == "battery" || m.name == "rssi" || m.name == "snr" || m.name == "voltage" ||
        m.name == "linkquality" || !std::isfinite(m.value))
      continue;
    if (m.name == "flow" && m.value > 0) moved = true;
    auto [it, fresh] = watched_values_.try_emplace({e.device.id, m.name}, m.value);
    if (!fresh && it->second != m.value) moved = true;
    it->second = m.value;
  }
  return moved;
}

void RuleEngine::welfare_rules(const Event& e, std::vector<AlertChange>& out) {
  if (settings_.welfare.empty()) return;
  if (e.kind == EventKind::welfare_check) {  // the supervisor's own: raise it
    const auto rule = e.attrs.find("rule");
    for (const auto& spec : settings_.welfare)
      if (rule != e.attrs.end() && rule->is_string() && rule->get<std::string>() == spec.name) {
        auto& st = welfare_[spec.name];
        st.alarmed = e.active.value_or(true);
        st.alert_device = e.device.id;
        condition(e, spec.name, EventKind::welfare_check, spec.severity, st.alarmed, std::nullopt,
                  out, false);
      }
    return;
  }
  if (is_derived_source(e.source)) return;
  bool checked = false, activity = false;
  for (const auto& spec : settings_.welfare) {
    if (!watches(spec, e.device)) continue;
    if (!checked) activity = is_activity(e);  // once per event: it updates the last values
    checked = true;
    if (!activity) continue;
    auto& st = welfare_[spec.name];
    st.last_activity_ms = std::max(st.last_activity_ms, e.ts_ms);
    if (st.alarmed) {
      st.alarmed = false;
      clear_condition({spec.name, st.alert_device}, e, out);
    }
  }
}

void RuleEngine::restore_activity(const std::map<std::string, std::int64_t>& last_activity_ms) {
  for (const auto& spec : settings_.welfare) {
    auto& st = welfare_[spec.name];
    for (const auto& [id, at] : last_activity_ms) {
      DeviceRef ref{id, "", "", ""};
      if (auto d = devices_.find(id); d != devices_.end()) ref = d->second.ref;
      if (watches(spec, ref)) st.last_activity_ms = std::max(st.last_activity_ms, at);
    }
  }
}

Event RuleEngine::supervisor_event(const DeviceInfo& dev, EventKind kind, int severity,
                                   std::int64_t now_ms) {
  Event e;
  e.id = uuid_v7(now_ms);
  e.ts_ms = now_ms;
  e.site = dev.site;
  e.grid_code = dev.grid_code;
  e.location = dev.location;
  e.device = dev.ref;
  e.kind = kind;
  e.severity = severity;
  e.source = "supervisor";
  return e;
}

void RuleEngine::welfare_tick(std::int64_t now_ms, std::vector<Event>& synthesized) {
  for (const auto& spec : settings_.welfare) {
    auto& st = welfare_[spec.name];
    if (st.last_activity_ms < 0) st.last_activity_ms = now_ms;  // the quiet time starts now
    if (st.alarmed || now_ms - st.last_activity_ms < spec.quiet_ms) continue;
    const DeviceInfo* dev = nullptr;
    for (const auto& x : spec.devices) {
      for (const auto& [id, d] : devices_)
        if (id == x || (!d.ref.name.empty() && d.ref.name == x)) dev = &d;
      if (dev) break;
    }
    if (!dev) continue;  // none of its devices ever heard: not installed yet
    st.alarmed = true;
    Event e = supervisor_event(*dev, EventKind::welfare_check, spec.severity, now_ms);
    if (!spec.home.building.empty() || !spec.home.unit.empty() || !spec.home.room.empty())
      e.location = spec.home;
    e.active = true;
    e.attrs = {
        {"rule", spec.name},
        {"quiet_s", (now_ms - st.last_activity_ms) / 1000},
        {"reason", "no activity for " + std::to_string((now_ms - st.last_activity_ms) / 3'600'000) +
                       " h (welfare check after " + std::to_string(spec.quiet_ms / 3'600'000) +
                       " h)"}};
    synthesized.push_back(std::move(e));
  }
}

void RuleEngine::on_tick(std::int64_t now_ms, std::vector<Event>& synthesized,
                         std::vector<AlertChange>& out) {
  const std::size_t from = out.size();
  on_tick_rules(now_ms, synthesized, out);
  correlate(from, now_ms, out);
}

void RuleEngine::on_tick_rules(std::int64_t now_ms, std::vector<Event>& synthesized,
                               std::vector<AlertChange>& out) {
  std::erase_if(maintenance_, [&](const MaintenanceWindow& w) { return now_ms >= w.until_ms; });
  for (auto& [key, st] : thresholds_) {
    if (!st.pending) continue;
    const ThresholdSpec* spec = nullptr;
    for (const auto& s : settings_.thresholds)
      if (s.name == key.first) spec = &s;
    if (spec && now_ms - st.pending_since_ms >= spec->hold_ms)
      raise_threshold(*spec, st, devices_[key.second], now_ms, out);
  }
  for (auto& [key, a] : open_) {
    const std::int64_t due = escalation_due(a);
    if (due > now_ms) continue;
    ++a.escalation_level;
    a.escalated_ms = now_ms;
    const std::string from = a.state;
    if (settings_.escalation_raises_severity && a.severity > 1) --a.severity;
    ++a.version;
    a.updated_ms = now_ms;
    if (a.history.size() >= kAlertMaxHistory) a.history.erase(a.history.begin());
    a.history.push_back(
        {"escalate", from, a.state, "system", "rules",
         "not acknowledged in time (level " + std::to_string(a.escalation_level) + ")", now_ms});
    out.push_back({AlertChangeType::escalated, a, {}});
  }
  for (const auto& [id, heard_ms] : returned_) {
    const auto it = devices_.find(id);
    if (it == devices_.end() || it->second.offline) continue;  // gone again before the tick
    Event e = supervisor_event(it->second, EventKind::device_online, 4, now_ms);
    e.attrs = {{"reason", "heard again"}, {"heard_ms", heard_ms}};
    synthesized.push_back(std::move(e));
  }
  returned_.clear();
  welfare_tick(now_ms, synthesized);
  for (auto& [id, dev] : devices_) {
    const std::int64_t timeout = timeout_of(dev);
    if (timeout <= 0 || dev.offline || now_ms - dev.last_seen_ms < timeout) continue;
    dev.offline = true;  // announce once; the synthesized event raises the alert
    dev.offline_synthesized = true;
    Event e = supervisor_event(dev, EventKind::device_offline, 3, now_ms);
    e.attrs = {{"reason", "no message for " + std::to_string((now_ms - dev.last_seen_ms) / 1000) +
                              " s (heartbeat timeout " + std::to_string(timeout / 1000) + " s)"}};
    synthesized.push_back(std::move(e));
  }
}

CommandResult RuleEngine::apply(const AlertCommand& cmd, std::int64_t now_ms,
                                std::vector<AlertChange>& out) {
  CommandResult r;
  auto it = std::find_if(open_.begin(), open_.end(),
                         [&](const auto& p) { return p.second.alert_id == cmd.alert_id; });
  if (it == open_.end()) {
    r.error = "no open alert " + cmd.alert_id;
    return r;
  }
  Alert& a = it->second;
  const auto check = check_transition(a, cmd.action);
  if (!check.error.empty()) {
    r.error = check.error;
    r.alert = a;
    return r;
  }
  const std::string from = a.state;
  if (cmd.action == AlertAction::suspend) a.suspended_from = from;
  if (cmd.action == AlertAction::resume) a.suspended_from.clear();
  a.state = check.to;
  if (cmd.action == AlertAction::close) a.close_reason = a.test ? "test" : "resolved";
  if (cmd.action == AlertAction::false_alarm) a.close_reason = "false_alarm";
  ++a.version;
  a.updated_ms = now_ms;
  if (a.history.size() >= kAlertMaxHistory) a.history.erase(a.history.begin());
  a.history.push_back(
      {std::string(to_string(cmd.action)), from, a.state, cmd.user, cmd.via, cmd.note, now_ms});
  AlertChangeType type = AlertChangeType::acknowledged;
  switch (cmd.action) {
    case AlertAction::ack:
      type = AlertChangeType::acknowledged;
      break;
    case AlertAction::handle:
      type = AlertChangeType::handled;
      break;
    case AlertAction::close:
    case AlertAction::false_alarm:
      type = AlertChangeType::closed;
      break;
    case AlertAction::suspend:
      type = AlertChangeType::suspended;
      break;
    case AlertAction::resume:
      type = AlertChangeType::resumed;
      break;
  }
  out.push_back({type, a, {}});
  r.ok = true;
  r.alert = a;
  if (!a.open()) {
    std::erase_if(merged_, [&](const auto& m) { return m.second == a.alert_id; });
    thresholds_.erase(it->first);
    open_.erase(it);
  }
  return r;
}

CommandResult RuleEngine::apply(const MaintenanceCommand& cmd, std::int64_t now_ms) {
  CommandResult r;
  MaintenanceWindow w{cmd.device,
                      cmd.building,
                      cmd.unit,
                      cmd.user,
                      cmd.note,
                      now_ms,
                      now_ms + cmd.duration_s * 1000};
  auto it = std::find_if(maintenance_.begin(), maintenance_.end(),
                         [&](const MaintenanceWindow& m) { return m.same_target(w); });
  if (cmd.start) {
    if (it != maintenance_.end())
      *it = w;
    else
      maintenance_.push_back(w);
  } else {
    if (it == maintenance_.end()) {
      r.error = "no maintenance window for " + w.target();
      return r;
    }
    maintenance_.erase(it);
  }
  r.ok = true;
  return r;
}

std::int64_t RuleEngine::next_deadline_ms() const {
  std::int64_t next = std::numeric_limits<std::int64_t>::max();
  for (const auto& r : returned_) next = std::min(next, r.second);  // due at once
  for (const auto& spec : settings_.welfare) {
    const auto it = welfare_.find(spec.name);
    if (it == welfare_.end() || it->second.last_activity_ms < 0) return 0;  // starts at a tick
    if (!it->second.alarmed) next = std::min(next, it->second.last_activity_ms + spec.quiet_ms);
  }
  for (const auto& [key, st] : thresholds_) {
    if (!st.pending) continue;
    for (const auto& s : settings_.thresholds)
      if (s.name == key.first) next = std::min(next, st.pending_since_ms + s.hold_ms);
  }
  for (const auto& [id, dev] : devices_) {
    const std::int64_t timeout = timeout_of(dev);
    if (timeout > 0 && !dev.offline) next = std::min(next, dev.last_seen_ms + timeout);
  }
  for (const auto& [key, a] : open_) next = std::min(next, escalation_due(a));
  return next;
}

std::vector<Alert> RuleEngine::open_alerts() const {
  std::vector<Alert> v;
  v.reserve(open_.size());
  for (const auto& [k, a] : open_) v.push_back(a);
  return v;
}

std::size_t RuleEngine::offline_devices() const {
  return static_cast<std::size_t>(std::count_if(devices_.begin(), devices_.end(),
                                                [](const auto& p) { return p.second.offline; }));
}

}  // namespace anju::edge

namespace anju::edge {

bool RuleEngine::repeat_on_correlated(const Key& key, const Event& cause,
                                      std::vector<AlertChange>& out) {
  auto m = merged_.find(key);
  if (m == merged_.end()) return false;
  auto it = std::find_if(open_.begin(), open_.end(),
                         [&](const auto& p) { return p.second.alert_id == m->second; });
  if (it == open_.end()) {
    merged_.erase(m);
    return false;
  }
  Alert& c = it->second;
  ++c.count;
  ++c.version;
  c.last_seen_ms = c.updated_ms = std::max(c.last_seen_ms, cause.ts_ms);
  remember(c, cause);
  out.push_back({AlertChangeType::repeated, c, {}});
  return true;
}

void RuleEngine::correlate(std::size_t from, std::int64_t now_ms, std::vector<AlertChange>& out) {
  if (settings_.correlations.empty()) return;
  for (std::size_t i = from; i < out.size(); ++i) {
    if (out[i].type != AlertChangeType::raised &&
        out[i].type != AlertChangeType::condition_returned &&
        out[i].type != AlertChangeType::repeated)
      continue;
    const Alert trigger = out[i].alert;
    for (const auto& spec : settings_.correlations) {
      if (std::find(spec.rules.begin(), spec.rules.end(), trigger.rule) == spec.rules.end())
        continue;
      const std::string where = scope_key(spec.scope, trigger);
      if (where.empty()) continue;
      // One open, recently seen alert of every rule of the spec, in the same place.
      std::vector<Key> parts;
      for (const auto& rule : spec.rules) {
        for (const auto& [key, a] : open_) {
          if (a.rule == rule && !a.condition_cleared && now_ms - a.last_seen_ms <= spec.window_ms &&
              scope_key(spec.scope, a) == where) {
            parts.push_back(key);
            break;
          }
        }
        if (parts.size() != static_cast<std::size_t>(&rule - spec.rules.data()) + 1) break;
      }
      if (parts.size() != spec.rules.size()) continue;
      // The correlated alert of this place: open already (more parts join it) or new.
      auto cit = std::find_if(open_.begin(), open_.end(), [&](const auto& p) {
        return p.second.rule == spec.name && scope_key(spec.scope, p.second) == where;
      });
      AlertChangeType type = AlertChangeType::repeated;
      if (cit == open_.end()) {
        const Alert& first = open_.at(parts.front());
        Alert c =
            new_alert(spec.name, first.kind, spec.severity, devices_[first.device.id], now_ms);
        c.count = 0;
        c.version = 0;
        c.first_seen_ms = now_ms;
        cit = open_.emplace(Key{spec.name, first.device.id}, std::move(c)).first;
        type = AlertChangeType::raised;
      }
      Alert& c = cit->second;
      for (const auto& key : parts) {
        Alert& a = open_.at(key);
        c.count += a.count;
        for (const auto& id : a.event_ids) {
          if (c.event_ids.size() >= kAlertMaxEventIds)
            c.event_ids.erase(c.event_ids.begin() + kAlertMaxEventIds / 2);
          c.event_ids.push_back(id);
        }
        c.last_seq = std::max(c.last_seq, a.last_seq);
        c.related.push_back(a.alert_id);
        // The part is closed as merged, pointing at the correlated alert.
        const std::string was = a.state;
        a.state = "closed";
        a.close_reason = "merged";
        a.related.push_back(c.alert_id);
        ++a.version;
        a.updated_ms = now_ms;
        if (a.history.size() >= kAlertMaxHistory) a.history.erase(a.history.begin());
        a.history.push_back({"merge", was, "closed", "system", "rules",
                             "merged into " + spec.name + " " + c.alert_id, now_ms});
        out.push_back({AlertChangeType::closed, a, {}});
        merged_[key] = c.alert_id;
        open_.erase(key);
      }
      ++c.version;
      c.last_seen_ms = c.updated_ms = now_ms;
      c.message = describe(c);
      out.push_back({type, c, {}});
    }
  }
}

}  // namespace anju::edge
