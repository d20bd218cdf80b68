#include "anju/edge/event.hpp"

#include <array>
#include <cmath>
#include <utility>

namespace anju::edge {
namespace {

constexpr std::array<std::pair<EventKind, std::string_view>, 42> kKinds{{
    {EventKind::smoke, "smoke"},
    {EventKind::gas, "gas"},
    {EventKind::water_leak, "water_leak"},
    {EventKind::contact, "contact"},
    {EventKind::temperature, "temperature"},
    {EventKind::humidity, "humidity"},
    {EventKind::battery, "battery"},
    {EventKind::battery_low, "battery_low"},
    {EventKind::tamper, "tamper"},
    {EventKind::occupancy, "occupancy"},
    {EventKind::vibration, "vibration"},
    {EventKind::manhole_open, "manhole_open"},
    {EventKind::water_level, "water_level"},
    {EventKind::pressure, "pressure"},
    {EventKind::measurement, "measurement"},
    {EventKind::equipment_alarm, "equipment_alarm"},
    {EventKind::equipment_fault, "equipment_fault"},
    {EventKind::signal_weak, "signal_weak"},
    {EventKind::device_online, "device_online"},
    {EventKind::device_offline, "device_offline"},
    {EventKind::passage_granted, "passage_granted"},
    {EventKind::passage_denied, "passage_denied"},
    {EventKind::door_forced, "door_forced"},
    {EventKind::door_held_open, "door_held_open"},
    {EventKind::exit_request, "exit_request"},
    {EventKind::card_read, "card_read"},
    {EventKind::keypad_entry, "keypad_entry"},
    {EventKind::reader_fault, "reader_fault"},
    {EventKind::security_fault, "security_fault"},
    {EventKind::door_open, "door_open"},
    {EventKind::tailgating, "tailgating"},
    {EventKind::repeated_denial, "repeated_denial"},
    {EventKind::welfare_check, "welfare_check"},
    {EventKind::intrusion, "intrusion"},
    {EventKind::loitering, "loitering"},
    {EventKind::camera_tamper, "camera_tamper"},
    {EventKind::thrown_object, "thrown_object"},
    {EventKind::people_count, "people_count"},
    {EventKind::gateway_test, "gateway_test"},
    {EventKind::alert_transition, "alert_transition"},
    {EventKind::maintenance, "maintenance"},
    {EventKind::audit, "audit"},
}};

using nlohmann::json;

// Field readers that say exactly what is wrong.
bool get_string(const json& j, const char* key, std::string& out, std::string& err,
                bool required = true) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) err = std::string("missing field '") + key + "'";
    return !required;
  }
  if (!it->is_string()) {
    err = std::string("field '") + key + "' must be a string";
    return false;
  }
  out = it->get<std::string>();
  return true;
}

bool get_int(const json& j, const char* key, std::int64_t& out, std::string& err,
             bool required = true) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) err = std::string("missing field '") + key + "'";
    return !required;
  }
  if (!it->is_number_integer()) {
    err = std::string("field '") + key + "' must be an integer";
    return false;
  }
  out = it->get<std::int64_t>();
  return true;
}

}  // namespace

std::string_view to_string(EventKind k) {
  for (const auto& [kind, name] : kKinds)
    if (kind == k) return name;
  return "unknown";
}

std::optional<EventKind> event_kind_from_string(std::string_view s) {
  for (const auto& [kind, name] : kKinds)
    if (name == s) return kind;
  return std::nullopt;
}

bool is_derived_source(std::string_view source) {
  return source == "supervisor" || source == "door_rules" || source == "dashboard" ||
         source == "city" || source == "anju test-event";
}

bool is_binary_kind(EventKind k) {
  switch (k) {
    case EventKind::smoke:
    case EventKind::gas:
    case EventKind::water_leak:
    case EventKind::contact:
    case EventKind::tamper:
    case EventKind::occupancy:
    case EventKind::vibration:
    case EventKind::battery_low:
    case EventKind::manhole_open:
    case EventKind::equipment_alarm:
    case EventKind::equipment_fault:
    case EventKind::signal_weak:
    case EventKind::door_open:
    case EventKind::security_fault:
      return true;
    default:
      return false;
  }
}

const Measurement* Event::value(std::string_view name) const {
  for (const auto& m : values)
    if (m.name == name) return &m;
  return nullptr;
}

json to_json(const Location& l) {
  return {{"building", l.building}, {"unit", l.unit}, {"room", l.room}};
}

json to_json(const DeviceRef& d) {
  return {{"id", d.id}, {"kind", d.kind}, {"name", d.name}, {"gb28181", d.gb28181}};
}

json to_json(const std::vector<Measurement>& values) {
  json vals = json::array();
  for (const auto& m : values)
    vals.push_back({{"name", m.name}, {"value", m.value}, {"unit", m.unit}});
  return vals;
}

json to_json(const Event& e) {
  json j;
  j["schema"] = kEventSchema;
  j["id"] = e.id;
  j["seq"] = e.seq;
  j["ts_ms"] = e.ts_ms;
  j["mono_ns"] = e.mono_ns;
  j["boot_id"] = e.boot_id;
  j["clock_synced"] = e.clock_synced;
  j["site"] = e.site;
  j["grid_code"] = e.grid_code;
  j["location"] = to_json(e.location);
  j["device"] = to_json(e.device);
  j["kind"] = std::string(to_string(e.kind));
  j["severity"] = e.severity;
  if (e.active) j["active"] = *e.active;
  j["values"] = to_json(e.values);
  j["attrs"] = e.attrs.is_object() ? e.attrs : json::object();
  j["source"] = e.source;
  if (!e.source_key.empty()) j["source_key"] = e.source_key;
  return j;
}

std::string encode(const Event& e) {
  return to_json(e).dump();
}

DecodeResult event_from_json(const json& j) {
  DecodeResult r;
  std::string& err = r.error;
  if (!j.is_object()) {
    err = "event must be a JSON object";
    return r;
  }
  std::int64_t schema = 0;
  if (!get_int(j, "schema", schema, err)) return r;
  if (schema != kEventSchema) {
    err = "unsupported schema " + std::to_string(schema) + " (this build reads " +
          std::to_string(kEventSchema) + ")";
    return r;
  }
  Event e;
  std::int64_t severity = 4;
  std::string kind;
  if (!get_string(j, "id", e.id, err) || !get_int(j, "seq", e.seq, err, false) ||
      !get_int(j, "ts_ms", e.ts_ms, err) || !get_int(j, "mono_ns", e.mono_ns, err, false) ||
      !get_string(j, "boot_id", e.boot_id, err, false) || !get_string(j, "site", e.site, err) ||
      !get_string(j, "grid_code", e.grid_code, err, false) || !get_string(j, "kind", kind, err) ||
      !get_int(j, "severity", severity, err) || !get_string(j, "source", e.source, err, false) ||
      !get_string(j, "source_key", e.source_key, err, false))
    return r;
  if (e.seq < 0) {
    err = "field 'seq' must not be negative";
    return r;
  }
  if (severity < 1 || severity > 4) {
    err = "field 'severity' must be 1..4, got " + std::to_string(severity);
    return r;
  }
  e.severity = static_cast<int>(severity);
  auto k = event_kind_from_string(kind);
  if (!k) {
    err = "unknown event kind '" + kind + "'";
    return r;
  }
  e.kind = *k;
  if (auto it = j.find("clock_synced"); it != j.end()) {
    if (!it->is_boolean()) {
      err = "field 'clock_synced' must be a boolean";
      return r;
    }
    e.clock_synced = it->get<bool>();
  }
  if (auto it = j.find("active"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      err = "field 'active' must be a boolean";
      return r;
    }
    e.active = it->get<bool>();
  }
  if (auto it = j.find("location"); it != j.end()) {
    if (!it->is_object()) {
      err = "field 'location' must be an object";
      return r;
    }
    if (!get_string(*it, "building", e.location.building, err, false) ||
        !get_string(*it, "unit", e.location.unit, err, false) ||
        !get_string(*it, "room", e.location.room, err, false)) {
      err = "location: " + err;
      return r;
    }
  }
  if (auto it = j.find("device"); it != j.end()) {
    if (!it->is_object()) {
      err = "field 'device' must be an object";
      return r;
    }
    if (!get_string(*it, "id", e.device.id, err, false) ||
        !get_string(*it, "kind", e.device.kind, err, false) ||
        !get_string(*it, "name", e.device.name, err, false) ||
        !get_string(*it, "gb28181", e.device.gb28181, err, false)) {
      err = "device: " + err;
      return r;
    }
  }
  if (auto it = j.find("values"); it != j.end()) {
    if (!it->is_array()) {
      err = "field 'values' must be an array";
      return r;
    }
    for (const auto& v : *it) {
      Measurement m;
      if (!v.is_object()) {
        err = "values: each entry must be an object";
        return r;
      }
      if (!get_string(v, "name", m.name, err) || !get_string(v, "unit", m.unit, err, false)) {
        err = "values: " + err;
        return r;
      }
      auto vi = v.find("value");
      if (vi == v.end() || !vi->is_number()) {
        err = "values: field 'value' must be a number";
        return r;
      }
      m.value = vi->get<double>();
      if (!std::isfinite(m.value)) {
        err = "values: field 'value' must be finite";
        return r;
      }
      e.values.push_back(std::move(m));
    }
  }
  if (auto it = j.find("attrs"); it != j.end()) {
    if (!it->is_object()) {
      err = "field 'attrs' must be an object";
      return r;
    }
    e.attrs = *it;
  }
  r.event = std::move(e);
  return r;
}

DecodeResult decode_event(std::string_view text) {
  auto j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return DecodeResult{std::nullopt, "not valid JSON"};
  return event_from_json(j);
}

}  // namespace anju::edge
