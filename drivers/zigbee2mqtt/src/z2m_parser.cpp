// zigbee2mqtt payload parsers. Pure: no I/O, no exceptions on bad input (nlohmann::json is used
// with exceptions disabled for parsing and only accessed after type checks).
#include "anju/drivers/z2m_parser.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "anju/drivers/generic_mqtt.hpp"

namespace anju::drivers::z2m {
namespace {

using nlohmann::json;

constexpr std::string_view kSource = "zigbee2mqtt";

// Nested "features" deeper than this are not looked at (z2m uses two levels at most).
constexpr int kMaxExposeDepth = 8;
// Values in errors (which are logged) go through generic_mqtt::describe_*: never an identifier.

// One known zigbee2mqtt property. The order of this table is the order in which parse_state
// emits events, whatever the order of the JSON object.
struct Property {
  std::string_view name;  // zigbee2mqtt property name == Capability name == value name
  Capability cap;
  edge::EventKind kind;
  bool binary;
  double min;  // numeric readings only
  double max;
  std::string_view unit;
};

constexpr std::array<Property, 11> kProperties{{
    {"smoke", Capability::smoke, edge::EventKind::smoke, true, 0, 0, ""},
    {"gas", Capability::gas, edge::EventKind::gas, true, 0, 0, ""},
    {"water_leak", Capability::water_leak, edge::EventKind::water_leak, true, 0, 0, ""},
    {"contact", Capability::contact, edge::EventKind::contact, true, 0, 0, ""},
    {"temperature", Capability::temperature, edge::EventKind::temperature, false, -60, 150, "C"},
    {"humidity", Capability::humidity, edge::EventKind::humidity, false, 0, 100, "%"},
    {"battery", Capability::battery, edge::EventKind::battery, false, 0, 100, "%"},
    {"battery_low", Capability::battery_low, edge::EventKind::battery_low, true, 0, 0, ""},
    {"tamper", Capability::tamper, edge::EventKind::tamper, true, 0, 0, ""},
    {"occupancy", Capability::occupancy, edge::EventKind::occupancy, true, 0, 0, ""},
    {"vibration", Capability::vibration, edge::EventKind::vibration, true, 0, 0, ""},
}};

const Property* find_property(std::string_view name) {
  for (const auto& p : kProperties)
    if (p.name == name) return &p;
  return nullptr;
}

std::string size_error(std::size_t size) {
  return "payload too large: " + std::to_string(size) + " bytes (max " +
         std::to_string(kMaxPayloadBytes) + ")";
}

// Parses without exceptions; a discarded value means "not valid JSON".
json parse_json(std::string_view payload) {
  return json::parse(payload.begin(), payload.end(), nullptr, false);
}

bool is_finite_number(const json& j) {
  return j.is_number() && std::isfinite(j.get<double>());
}

void add_capability(std::string_view property, std::vector<Capability>& caps) {
  const Property* p = find_property(property);
  if (p != nullptr && std::find(caps.begin(), caps.end(), p->cap) == caps.end())
    caps.push_back(p->cap);
}

// One element of definition.exposes: a generic expose ({"type":"binary","property":"smoke"}) or
// a composite / specific one ({"type":"climate","features":[...]}) whose features count too.
void collect_exposes(const json& exposes, std::vector<Capability>& caps, int depth) {
  if (!exposes.is_array() || depth > kMaxExposeDepth) return;
  for (const auto& e : exposes) {
    if (!e.is_object()) continue;
    auto prop = e.find("property");
    if (prop != e.end() && prop->is_string()) {
      add_capability(prop->get_ref<const std::string&>(), caps);
    } else if (auto name = e.find("name"); name != e.end() && name->is_string()) {
      add_capability(name->get_ref<const std::string&>(), caps);
    }
    if (auto features = e.find("features"); features != e.end())
      collect_exposes(*features, caps, depth + 1);
  }
}

std::string classify_kind(const DeviceInfo& d) {
  if (d.has(Capability::smoke)) return "smoke_detector";
  if (d.has(Capability::gas)) return "gas_detector";
  if (d.has(Capability::water_leak)) return "water_leak_sensor";
  if (d.has(Capability::contact)) return "contact_sensor";
  if (d.has(Capability::occupancy)) return "motion_sensor";
  if (d.has(Capability::vibration)) return "vibration_sensor";
  if (d.has(Capability::temperature) || d.has(Capability::humidity)) return "climate_sensor";
  return "sensor";
}

// Optional string member: empty when absent or not a string.
std::string string_or_empty(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

int severity_of(const Property& p, bool active) {
  if (!active) return 4;
  switch (p.cap) {
    case Capability::smoke:
    case Capability::gas:
      return 1;
    case Capability::water_leak:
    case Capability::tamper:
    case Capability::battery_low:
      return 3;
    default:
      return 4;
  }
}

edge::Event make_event(const Property& p, const DeviceInfo& device, const json& attrs) {
  edge::Event ev;
  ev.device.id = device.ieee;
  ev.device.kind = device.kind;
  ev.device.name = device.friendly_name;
  ev.kind = p.kind;
  ev.severity = 4;
  ev.attrs = attrs;
  ev.source = std::string(kSource);
  return ev;
}

bool is_repeating_alarm(const Property& p) {
  return p.cap == Capability::smoke || p.cap == Capability::gas || p.cap == Capability::water_leak;
}

}  // namespace

std::string_view to_string(Capability c) {
  for (const auto& p : kProperties)
    if (p.cap == c) return p.name;
  return "unknown";
}

bool DeviceInfo::has(Capability c) const {
  return std::find(caps.begin(), caps.end(), c) != caps.end();
}

// Only the simple topic forms are recognised. zigbee2mqtt allows '/' inside a friendly_name
// ("floor1/kitchen/smoke"), but then "<base>/a/b" could be the state of device "a/b" or a
// sub-topic "b" of device "a"; telling them apart needs the device list, so such names are
// not supported here: those topics are classified as ignored.
TopicInfo classify_topic(std::string_view base, std::string_view topic) {
  TopicInfo info;
  // Tolerate a configured base with a trailing slash ("zigbee2mqtt/").
  if (!base.empty() && base.back() == '/') base.remove_suffix(1);
  if (topic.size() <= base.size() + 1 || topic.substr(0, base.size()) != base ||
      topic[base.size()] != '/')
    return info;
  std::string_view rest = topic.substr(base.size() + 1);

  if (rest == "bridge/devices") {
    info.type = TopicType::bridge_devices;
    return info;
  }
  if (rest == "bridge" || rest.starts_with("bridge/")) return info;

  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) {
    info.type = TopicType::state;
    info.friendly_name = std::string(rest);
    return info;
  }
  const std::string_view name = rest.substr(0, slash);
  const std::string_view sub = rest.substr(slash + 1);
  if (!name.empty() && sub == "availability") {
    info.type = TopicType::availability;
    info.friendly_name = std::string(name);
  }
  return info;  // "<name>/set", "<name>/get", "/x", nested names: ignored
}

DevicesResult parse_bridge_devices(std::string_view payload) {
  DevicesResult r;
  if (payload.size() > kMaxPayloadBytes) {
    r.error = size_error(payload.size());
    return r;
  }
  const json doc = parse_json(payload);
  if (doc.is_discarded()) {
    r.error = "not valid JSON";
    return r;
  }
  if (!doc.is_array()) {
    r.error = "bridge/devices payload must be a JSON array";
    return r;
  }

  std::set<std::string> seen_ieee;
  for (std::size_t i = 0; i < doc.size(); ++i) {
    const json& entry = doc[i];
    const std::string where = "entry " + std::to_string(i) + ": ";
    if (!entry.is_object()) {
      r.skipped.push_back(where + "not an object");
      continue;
    }
    auto type = entry.find("type");
    if (type != entry.end() && !type->is_string()) {
      r.skipped.push_back(where + "type must be a string");
      continue;
    }
    if (type != entry.end() && type->get_ref<const std::string&>() == "Coordinator") continue;

    auto ieee = entry.find("ieee_address");
    if (ieee == entry.end()) {
      r.skipped.push_back(where + "no ieee_address");
      continue;
    }
    if (!ieee->is_string() || ieee->get_ref<const std::string&>().empty()) {
      r.skipped.push_back(where + "ieee_address must be a non-empty string");
      continue;
    }
    auto name = entry.find("friendly_name");
    if (name == entry.end()) {
      r.skipped.push_back(where + "no friendly_name");
      continue;
    }
    if (!name->is_string() || name->get_ref<const std::string&>().empty()) {
      r.skipped.push_back(where + "friendly_name must be a non-empty string");
      continue;
    }

    DeviceInfo d;
    d.ieee = ieee->get<std::string>();
    d.friendly_name = name->get<std::string>();
    auto def = entry.find("definition");
    if (def != entry.end() && !def->is_null()) {
      if (!def->is_object()) {
        r.skipped.push_back(where + "definition must be an object or null");
        continue;
      }
      d.model = string_or_empty(*def, "model");
      d.vendor = string_or_empty(*def, "vendor");
      if (auto exposes = def->find("exposes"); exposes != def->end())
        collect_exposes(*exposes, d.caps, 0);
    }
    if (d.caps.empty()) continue;  // nothing we understand (lights, plugs, unsupported devices)

    if (!seen_ieee.insert(d.ieee).second) {
      r.skipped.push_back(where + "duplicate ieee_address");
      continue;
    }
    // Deterministic order, independent of the order of exposes.
    std::sort(d.caps.begin(), d.caps.end());
    d.kind = classify_kind(d);
    r.devices.push_back(std::move(d));
  }
  return r;
}

StateResult parse_state(std::string_view payload, const DeviceInfo& device, DeviceState& state,
                        const StateOptions& options) {
  StateResult r;
  if (payload.size() > kMaxPayloadBytes) {
    r.errors.push_back(size_error(payload.size()));
    return r;
  }
  if (payload.empty()) {
    // zigbee2mqtt publishes an empty retained message to clear a removed device's state.
    r.errors.push_back("empty payload");
    return r;
  }
  const json doc = parse_json(payload);
  if (doc.is_discarded()) {
    r.errors.push_back("not valid JSON");
    return r;
  }
  if (!doc.is_object()) {
    r.errors.push_back("state payload must be a JSON object");
    return r;
  }

  const bool refresh =
      options.refresh_ms > 0 &&
      (!state.last_event_ms || options.now_ms - *state.last_event_ms >= options.refresh_ms);
  json attrs = json::object();
  for (const char* key : {"linkquality", "voltage"}) {
    auto it = doc.find(key);
    if (it != doc.end() && is_finite_number(*it)) attrs[key] = *it;
  }

  for (const Property& p : kProperties) {
    auto it = doc.find(p.name);
    // Absent, or null (zigbee2mqtt's "not known yet"): nothing to say about this property.
    if (it == doc.end() || it->is_null()) continue;
    const std::string key(p.name);
    auto last = state.last.find(key);

    if (p.binary) {
      if (!it->is_boolean()) {
        r.errors.push_back("field '" + key + "' must be a boolean");
        continue;
      }
      const bool value = it->get<bool>();
      const double stored = value ? 1 : 0;
      const bool changed = last == state.last.end() || last->second != stored;
      state.last[key] = stored;
      if (!changed && !refresh && !(value && is_repeating_alarm(p))) continue;
      // zigbee2mqtt's contact is true when closed; our contact event is active when open.
      const bool active = p.cap == Capability::contact ? !value : value;
      edge::Event ev = make_event(p, device, attrs);
      ev.active = active;
      ev.severity = severity_of(p, active);
      r.events.push_back(std::move(ev));
      continue;
    }

    if (!it->is_number()) {
      r.errors.push_back("field '" + key + "' must be a number");
      continue;
    }
    const double value = it->get<double>();
    if (!std::isfinite(value)) {
      r.errors.push_back("field '" + key + "' must be a finite number");
      continue;
    }
    if (value < p.min || value > p.max) {
      r.errors.push_back("field '" + key +
                         "' out of range: " + generic_mqtt::describe_number(value));
      continue;
    }
    const bool changed = last == state.last.end() || last->second != value;
    state.last[key] = value;
    if (!changed && !options.report_unchanged && !refresh) continue;
    edge::Event ev = make_event(p, device, attrs);
    ev.values.push_back(edge::Measurement{key, value, std::string(p.unit)});
    r.events.push_back(std::move(ev));
  }
  if (!r.events.empty()) state.last_event_ms = options.now_ms;
  return r;
}

AvailabilityResult parse_availability(std::string_view payload) {
  AvailabilityResult r;
  if (payload.size() > kMaxPayloadBytes) {
    r.error = size_error(payload.size());
    return r;
  }
  auto from_word = [&r](std::string_view word) {
    if (word == "online") r.online = true;
    if (word == "offline") r.online = false;
    return r.online.has_value();
  };

  // Legacy form: the bare word, possibly with surrounding whitespace.
  std::string_view trimmed = payload;
  constexpr std::string_view kSpace = " \t\r\n";
  const auto first = trimmed.find_first_not_of(kSpace);
  trimmed = first == std::string_view::npos ? std::string_view{} : trimmed.substr(first);
  const auto last = trimmed.find_last_not_of(kSpace);
  if (last != std::string_view::npos) trimmed = trimmed.substr(0, last + 1);
  if (from_word(trimmed)) return r;

  // JSON forms: "online" (quoted) or {"state":"online"}.
  const json doc = parse_json(payload);
  if (!doc.is_discarded()) {
    if (doc.is_string() && from_word(doc.get_ref<const std::string&>())) return r;
    if (doc.is_object()) {
      auto st = doc.find("state");
      if (st != doc.end() && st->is_string()) {
        if (from_word(st->get_ref<const std::string&>())) return r;
        r.error = "unexpected availability state " +
                  generic_mqtt::describe_text(st->get_ref<const std::string&>());
        return r;
      }
    }
  }
  r.error = "unexpected availability payload " + generic_mqtt::describe_text(payload);
  return r;
}

}  // namespace anju::drivers::z2m
