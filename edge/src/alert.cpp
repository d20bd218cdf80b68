#include "anju/edge/alert.hpp"

namespace anju::edge {

std::string_view to_string(AlertChangeType t) {
  switch (t) {
    case AlertChangeType::raised:
      return "raised";
    case AlertChangeType::repeated:
      return "repeated";
    case AlertChangeType::condition_cleared:
      return "condition_cleared";
    case AlertChangeType::condition_returned:
      return "condition_returned";
    case AlertChangeType::acknowledged:
      return "acknowledged";
    case AlertChangeType::handled:
      return "handled";
    case AlertChangeType::closed:
      return "closed";
    case AlertChangeType::suspended:
      return "suspended";
    case AlertChangeType::resumed:
      return "resumed";
    case AlertChangeType::escalated:
      return "escalated";
  }
  return "unknown";
}

nlohmann::json to_json(const Alert& a) {
  nlohmann::json j{
      {"schema", kAlertSchema},
      {"alert_id", a.alert_id},
      {"rule", a.rule},
      {"kind", std::string(to_string(a.kind))},
      {"site", a.site},
      {"grid_code", a.grid_code},
      {"location", to_json(a.location)},
      {"device", to_json(a.device)},
      {"severity", a.severity},
      {"state", a.state},
      {"condition_cleared", a.condition_cleared},
      {"count", a.count},
      {"first_seen_ms", a.first_seen_ms},
      {"last_seen_ms", a.last_seen_ms},
      {"updated_ms", a.updated_ms},
      {"last_seq", a.last_seq},
      {"version", a.version},
      {"event_ids", a.event_ids},
      {"message", a.message},
  };
  if (a.value) j["value"] = *a.value;
  if (!a.close_reason.empty()) j["close_reason"] = a.close_reason;
  if (!a.suspended_from.empty()) j["suspended_from"] = a.suspended_from;
  if (a.suppressed) j["suppressed"] = true;
  if (a.test) j["test"] = true;
  j["escalation_level"] = a.escalation_level;
  if (a.escalated_ms) j["escalated_ms"] = a.escalated_ms;
  nlohmann::json h = nlohmann::json::array();
  for (const auto& s : a.history)
    h.push_back({{"action", s.action},
                 {"from", s.from},
                 {"to", s.to},
                 {"by", s.by},
                 {"via", s.via},
                 {"note", s.note},
                 {"at_ms", s.at_ms}});
  j["history"] = std::move(h);
  if (!a.related.empty()) j["related"] = a.related;
  return j;
}

std::optional<Alert> alert_from_json(const nlohmann::json& j, std::string* error) {
  try {
    Alert a;
    a.alert_id = j.at("alert_id").get<std::string>();
    a.rule = j.at("rule").get<std::string>();
    auto k = event_kind_from_string(j.at("kind").get<std::string>());
    if (!k) throw std::runtime_error("unknown kind");
    a.kind = *k;
    a.site = j.at("site").get<std::string>();
    a.grid_code = j.at("grid_code").get<std::string>();
    const auto& loc = j.at("location");
    a.location = {loc.at("building").get<std::string>(), loc.at("unit").get<std::string>(),
                  loc.at("room").get<std::string>()};
    const auto& d = j.at("device");
    a.device = {d.at("id").get<std::string>(), d.at("kind").get<std::string>(),
                d.at("name").get<std::string>(), d.at("gb28181").get<std::string>()};
    a.severity = j.at("severity").get<int>();
    a.state = j.at("state").get<std::string>();
    a.condition_cleared = j.at("condition_cleared").get<bool>();
    a.count = j.at("count").get<std::int64_t>();
    a.first_seen_ms = j.at("first_seen_ms").get<std::int64_t>();
    a.last_seen_ms = j.at("last_seen_ms").get<std::int64_t>();
    a.updated_ms = j.at("updated_ms").get<std::int64_t>();
    a.last_seq = j.at("last_seq").get<std::int64_t>();
    a.version = j.at("version").get<std::int64_t>();
    a.event_ids = j.at("event_ids").get<std::vector<std::string>>();
    a.message = j.value("message", "");
    if (j.contains("value") && j["value"].is_number()) a.value = j["value"].get<double>();
    a.close_reason = j.value("close_reason", "");
    a.suspended_from = j.value("suspended_from", "");
    a.suppressed = j.value("suppressed", false);
    a.test = j.value("test", false);
    a.escalation_level = j.value("escalation_level", 0);
    a.escalated_ms = j.value("escalated_ms", std::int64_t{0});
    if (auto it = j.find("related"); it != j.end() && it->is_array())
      a.related = it->get<std::vector<std::string>>();
    if (auto it = j.find("history"); it != j.end() && it->is_array()) {
      for (const auto& s : *it)
        a.history.push_back({s.at("action").get<std::string>(), s.at("from").get<std::string>(),
                             s.at("to").get<std::string>(), s.at("by").get<std::string>(),
                             s.at("via").get<std::string>(), s.at("note").get<std::string>(),
                             s.at("at_ms").get<std::int64_t>()});
    }
    return a;
  } catch (const std::exception& e) {
    if (error) *error = e.what();
    return std::nullopt;
  }
}

}  // namespace anju::edge
