#include "anju/edge/lifecycle.hpp"

#include <nlohmann/json.hpp>

namespace anju::edge {

std::string_view to_string(AlertAction a) {
  switch (a) {
    case AlertAction::ack:
      return "ack";
    case AlertAction::handle:
      return "handle";
    case AlertAction::close:
      return "close";
    case AlertAction::false_alarm:
      return "false_alarm";
    case AlertAction::suspend:
      return "suspend";
    case AlertAction::resume:
      return "resume";
  }
  return "unknown";
}

std::optional<AlertAction> alert_action_from_string(std::string_view s) {
  for (auto a : {AlertAction::ack, AlertAction::handle, AlertAction::close,
                 AlertAction::false_alarm, AlertAction::suspend, AlertAction::resume})
    if (to_string(a) == s) return a;
  return std::nullopt;
}

bool printable_id(std::string_view s, std::size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == '/' || c == '+' || c == '#')
      return false;
  return true;
}

std::optional<nlohmann::json> parse_command_object(std::string_view payload, std::size_t max_bytes,
                                                   std::string& error) {
  if (payload.size() > max_bytes) {
    error = "command too large: " + std::to_string(payload.size()) + " bytes (max " +
            std::to_string(max_bytes) + ")";
    return std::nullopt;
  }
  auto j = nlohmann::json::parse(payload.begin(), payload.end(), nullptr, false);
  if (j.is_discarded()) {
    error = "command is not valid JSON";
    return std::nullopt;
  }
  if (!j.is_object()) {
    error = "command must be a JSON object";
    return std::nullopt;
  }
  return j;
}

CommandParse parse_alert_command(std::string_view alert_id, std::string_view payload,
                                 std::string_view via) {
  CommandParse r;
  if (payload.size() <= kMaxCommandBytes && !printable_id(alert_id, 64)) {
    r.error = "bad alert id in the topic";
    return r;
  }
  const auto parsed = parse_command_object(payload, kMaxCommandBytes, r.error);
  if (!parsed) return r;
  const auto& j = *parsed;
  AlertCommand c;
  c.alert_id = std::string(alert_id);
  c.via = std::string(via);
  bool have_action = false;
  for (auto it = j.begin(); it != j.end(); ++it) {
    // Named copies rather than structured bindings: clang 14 cannot capture those in a lambda.
    const std::string key = it.key();
    const auto& v = it.value();
    auto need_string = [&](std::string& out, std::size_t max) {
      if (!v.is_string()) {
        r.error = "field '" + key + "' must be a string";
        return false;
      }
      out = v.get<std::string>();
      if (out.size() > max) {
        r.error = "field '" + key + "' is longer than " + std::to_string(max) + " bytes";
        return false;
      }
      return true;
    };
    if (key == "action") {
      std::string a;
      if (!need_string(a, 32)) return r;
      auto act = alert_action_from_string(a);
      if (!act) {
        r.error = "unknown action '" + a +
                  "' (expected ack, handle, close, false_alarm, suspend or resume)";
        return r;
      }
      c.action = *act;
      have_action = true;
    } else if (key == "user") {
      if (!need_string(c.user, 64)) return r;
    } else if (key == "request_id") {
      if (!need_string(c.request_id, 128)) return r;
    } else if (key == "note") {
      if (!need_string(c.note, kMaxNoteChars)) return r;
    } else if (key == "reply_to") {
      if (!need_string(c.reply_to, 256)) return r;
      if (c.reply_to.find_first_of("+#") != std::string::npos) {
        r.error = "field 'reply_to' must be a topic name, not a filter";
        return r;
      }
    } else if (key == "expires_ms") {
      if (!v.is_number_integer() || v.get<std::int64_t>() < 0) {
        r.error = "field 'expires_ms' must be a non-negative integer (ms since the epoch)";
        return r;
      }
      c.expires_ms = v.get<std::int64_t>();
    } else {
      r.error = "unknown field '" + key + "'";
      return r;
    }
  }
  if (!have_action) {
    r.error = "missing field 'action'";
  } else if (c.user.empty()) {
    r.error = "missing field 'user' (who is doing this)";
  } else if (!printable_id(c.request_id, 128)) {
    r.error = c.request_id.empty() ? "missing field 'request_id'"
                                   : "field 'request_id' has characters that are not allowed";
  } else {
    r.command = std::move(c);
  }
  return r;
}

TransitionCheck check_transition(const Alert& a, AlertAction action) {
  const std::string& s = a.state;
  auto refuse = [&](const std::string& why) { return TransitionCheck{"", why}; };
  if (s == "closed") return refuse("the alert is closed");
  switch (action) {
    case AlertAction::ack:
      if (s == "raised") return {"acknowledged", ""};
      return refuse("only a raised alert can be acknowledged (it is " + s + ")");
    case AlertAction::handle:
      if (s == "raised" || s == "acknowledged") return {"handled", ""};
      return refuse("only a raised or acknowledged alert can be marked handled (it is " + s + ")");
    case AlertAction::close:
      // A test alert (anju test-event) is closed by the test itself, nobody having taken it.
      if (s == "acknowledged" || s == "handled" || (a.test && s == "raised")) return {"closed", ""};
      return refuse(s == "raised" ? "acknowledge it first, or close it as a false alarm"
                                  : "a suspended alert must be resumed before it is closed");
    case AlertAction::false_alarm:
      return {"closed", ""};
    case AlertAction::suspend:
      if (s == "suspended") return refuse("the alert is already suspended");
      return {"suspended", ""};
    case AlertAction::resume:
      if (s != "suspended")
        return refuse("only a suspended alert can be resumed (it is " + s + ")");
      return {a.suspended_from.empty() ? "raised" : a.suspended_from, ""};
  }
  return refuse("unknown action");
}

bool MaintenanceWindow::covers(const DeviceRef& d, const Location& l, std::int64_t now_ms) const {
  if (now_ms >= until_ms) return false;
  if (!device.empty()) return device == d.id || device == d.name;
  return !building.empty() && building == l.building && (unit.empty() || unit == l.unit);
}

bool MaintenanceWindow::same_target(const MaintenanceWindow& o) const {
  return device == o.device && building == o.building && unit == o.unit;
}

std::string MaintenanceWindow::target() const {
  if (!device.empty()) return "device " + device;
  return "building " + building + (unit.empty() ? "" : " unit " + unit);
}

nlohmann::json to_json(const MaintenanceWindow& w) {
  return {{"device", w.device}, {"building", w.building}, {"unit", w.unit},        {"by", w.by},
          {"note", w.note},     {"from_ms", w.from_ms},   {"until_ms", w.until_ms}};
}

std::optional<MaintenanceWindow> maintenance_from_json(const nlohmann::json& j) {
  try {
    return MaintenanceWindow{
        j.at("device").get<std::string>(),   j.at("building").get<std::string>(),
        j.at("unit").get<std::string>(),     j.at("by").get<std::string>(),
        j.at("note").get<std::string>(),     j.at("from_ms").get<std::int64_t>(),
        j.at("until_ms").get<std::int64_t>()};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

MaintenanceParse parse_maintenance_command(std::string_view payload, std::string_view via) {
  MaintenanceParse r;
  const auto parsed = parse_command_object(payload, kMaxCommandBytes, r.error);
  if (!parsed) return r;
  const auto& j = *parsed;
  MaintenanceCommand c;
  c.via = std::string(via);
  std::string action;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string key = it.key();
    const auto& v = it.value();
    std::string* target = nullptr;
    std::size_t max = 64;
    if (key == "action")
      target = &action;
    else if (key == "user")
      target = &c.user;
    else if (key == "request_id")
      target = &c.request_id, max = 128;
    else if (key == "note")
      target = &c.note, max = kMaxNoteChars;
    else if (key == "reply_to")
      target = &c.reply_to, max = 256;
    else if (key == "device")
      target = &c.device;
    else if (key == "building")
      target = &c.building;
    else if (key == "unit")
      target = &c.unit;
    else if (key == "duration_s") {
      if (!v.is_number_integer() || v.get<std::int64_t>() < 1 ||
          v.get<std::int64_t>() > 30LL * 86400) {
        r.error = "field 'duration_s' must be an integer from 1 to 2592000 (30 days)";
        return r;
      }
      c.duration_s = v.get<std::int64_t>();
      continue;
    } else {
      r.error = "unknown field '" + key + "'";
      return r;
    }
    if (!v.is_string()) {
      r.error = "field '" + key + "' must be a string";
      return r;
    }
    *target = v.get<std::string>();
    if (target->size() > max) {
      r.error = "field '" + key + "' is longer than " + std::to_string(max) + " bytes";
      return r;
    }
  }
  if (action != "start" && action != "end") {
    r.error = action.empty() ? "missing field 'action'"
                             : "unknown action '" + action + "' (expected start or end)";
  } else if (c.user.empty()) {
    r.error = "missing field 'user' (who is doing this)";
  } else if (!printable_id(c.request_id, 128)) {
    r.error = c.request_id.empty() ? "missing field 'request_id'"
                                   : "field 'request_id' has characters that are not allowed";
  } else if (c.device.empty() == c.building.empty()) {
    r.error = "name either a 'device' or a 'building' (with an optional 'unit')";
  } else if (!c.unit.empty() && c.building.empty()) {
    r.error = "'unit' needs a 'building'";
  } else if (action == "start" && c.duration_s == 0) {
    r.error = "missing field 'duration_s' (how long the maintenance lasts)";
  } else if (!c.reply_to.empty() && c.reply_to.find_first_of("+#") != std::string::npos) {
    r.error = "field 'reply_to' must be a topic name, not a filter";
  } else {
    c.start = action == "start";
    r.command = std::move(c);
  }
  return r;
}

}  // namespace anju::edge
