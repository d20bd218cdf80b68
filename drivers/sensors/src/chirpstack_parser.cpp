// ChirpStack v4 MQTT integration parser. Pure: no I/O, no clock, no exceptions on bad input
// (nlohmann::json parses with exceptions disabled and is only read after type checks).
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <utility>

#include "anju/drivers/chirpstack.hpp"

namespace anju::drivers::chirpstack {
namespace {

using nlohmann::json;

constexpr std::string_view kSource = "chirpstack";
constexpr std::size_t kMaxQuotedBytes = 64;

// At most kMaxQuotedBytes of `s`, anything but printable ASCII replaced by '?', so that it is
// safe to log and to put into JSON.
std::string printable(std::string_view s) {
  std::string out;
  const std::size_t n = std::min(s.size(), kMaxQuotedBytes);
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  return out;
}

std::string quote(std::string_view s) {
  return "'" + printable(s) + "'" + (s.size() > kMaxQuotedBytes ? "..." : "");
}

// A payload value in an error: never one that could be a personal identifier (it is logged).
std::string quote_json(const json& v) {
  return generic_mqtt::describe_value(v);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool is_eui(std::string_view s) {
  return s.size() == 16 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
         });
}

// An unsigned integer JSON number (Protobuf JSON also allows a decimal string) within max.
std::optional<std::uint64_t> as_unsigned(const json& v, std::uint64_t max) {
  std::uint64_t out = 0;
  if (v.is_number_unsigned()) {
    out = v.get<std::uint64_t>();
  } else if (v.is_number_integer()) {
    const std::int64_t i = v.get<std::int64_t>();
    if (i < 0) return std::nullopt;
    out = static_cast<std::uint64_t>(i);
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!(d >= 0 && d <= static_cast<double>(max)) || std::floor(d) != d) return std::nullopt;
    out = static_cast<std::uint64_t>(d);
  } else if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (s.empty() || s.size() > 19) return std::nullopt;
    for (char c : s) {
      if (c < '0' || c > '9') return std::nullopt;
      out = out * 10 + static_cast<std::uint64_t>(c - '0');
    }
  } else {
    return std::nullopt;
  }
  if (out > max) return std::nullopt;
  return out;
}

std::optional<double> as_finite(const json& v) {
  if (!v.is_number()) return std::nullopt;
  const double d = v.get<double>();
  if (!std::isfinite(d)) return std::nullopt;
  return d;
}

// A dotted path as a JSON pointer ("a.b" -> "/a/b"); pointers are returned as they are.
std::string to_pointer(std::string_view path) {
  if (path.empty() || path.front() == '/') return std::string(path);
  std::string out = "/";
  for (char c : path) {
    if (c == '.')
      out += '/';
    else if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

std::string path_error(std::string_view path) {
  if (path.empty()) return "must not be empty";
  if (path.front() == '/') return generic_mqtt::pointer_syntax_error(path);
  if (path.front() == '.' || path.back() == '.' || path.find("..") != std::string_view::npos)
    return "dotted path has an empty key";
  return {};
}

struct RawInfo {
  RawType type;
  std::string_view name;
  std::size_t size;
};
constexpr std::array<RawInfo, 7> kRawTypes{{
    {RawType::u8, "u8", 1},
    {RawType::i8, "i8", 1},
    {RawType::u16, "u16", 2},
    {RawType::i16, "i16", 2},
    {RawType::u32, "u32", 4},
    {RawType::i32, "i32", 4},
    {RawType::float32, "float32", 4},
}};

struct Common {
  std::string dev_eui;
  std::string device_name;
  std::string profile;
  std::string application_id;
  json attrs = json::object();
};

edge::Event make_event(const Common& c, const DeviceMapping& m, edge::EventKind kind) {
  edge::Event ev;
  ev.device.id = c.dev_eui;
  ev.device.name = c.device_name;
  ev.device.kind = m.device_kind;
  ev.kind = kind;
  ev.attrs = c.attrs;
  ev.source = std::string(kSource);
  return ev;
}

void finish(edge::Event& ev) {
  ev.severity = generic_mqtt::default_severity(ev.kind, ev.active);
}

std::string string_or_empty(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

// Decodes one raw field from data (the size was checked by the caller).
std::pair<std::uint32_t, double> read_raw(const RawField& f, const std::vector<std::uint8_t>& d) {
  const std::size_t n = raw_size(f.type);
  std::uint32_t bits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t idx = f.endian == Endian::big ? f.offset + i : f.offset + n - 1 - i;
    bits = (bits << 8) | d[idx];
  }
  double raw = 0;
  switch (f.type) {
    case RawType::u8:
    case RawType::u16:
    case RawType::u32:
      raw = static_cast<double>(bits);
      break;
    case RawType::i8:
      raw = static_cast<std::int8_t>(static_cast<std::uint8_t>(bits));
      break;
    case RawType::i16:
      raw = static_cast<std::int16_t>(static_cast<std::uint16_t>(bits));
      break;
    case RawType::i32:
      raw = static_cast<double>(std::bit_cast<std::int32_t>(bits));
      break;
    case RawType::float32:
      raw = static_cast<double>(std::bit_cast<float>(bits));
      break;
  }
  return {bits, raw};
}

// The parts of every event: topic, JSON object, deviceInfo. Empty error when usable.
struct Envelope {
  json doc;
  Common common;
};

std::string open_envelope(const TopicInfo& t, std::string_view payload, Envelope& env) {
  if (payload.size() > kMaxPayloadBytes)
    return "payload too large: " + std::to_string(payload.size()) + " bytes (max " +
           std::to_string(kMaxPayloadBytes) + ")";
  env.doc = json::parse(payload.begin(), payload.end(), nullptr, false);
  if (env.doc.is_discarded()) return "not valid JSON";
  if (!env.doc.is_object()) return t.event + " payload must be a JSON object";
  auto di = env.doc.find("deviceInfo");
  if (di == env.doc.end()) return "field 'deviceInfo' is missing";
  if (!di->is_object()) return "field 'deviceInfo' must be an object";
  auto eui = di->find("devEui");
  if (eui == di->end()) return "field 'deviceInfo.devEui' is missing";
  if (!eui->is_string() || !is_eui(eui->get_ref<const std::string&>()))
    return "field 'deviceInfo.devEui' must be 16 hex digits, got " + quote_json(*eui);
  env.common.dev_eui = lower(eui->get_ref<const std::string&>());
  if (env.common.dev_eui != t.dev_eui)
    return "field 'deviceInfo.devEui' " + quote(env.common.dev_eui) +
           " does not match the topic's " + quote(t.dev_eui);
  for (const char* key : {"deviceName", "deviceProfileName", "applicationId"}) {
    auto it = di->find(key);
    if (it != di->end() && !it->is_string())
      return "field 'deviceInfo." + std::string(key) + "' must be a string";
  }
  env.common.device_name = string_or_empty(*di, "deviceName");
  env.common.profile = string_or_empty(*di, "deviceProfileName");
  env.common.application_id = string_or_empty(*di, "applicationId");
  json& a = env.common.attrs;
  a["application_id"] =
      env.common.application_id.empty() ? t.application_id : env.common.application_id;
  if (!env.common.profile.empty()) a["profile"] = env.common.profile;
  if (auto id = string_or_empty(env.doc, "deduplicationId"); !id.empty() && id.size() <= 64)
    a["deduplication_id"] = id;
  if (auto time = string_or_empty(env.doc, "time"); !time.empty() && time.size() <= 64)
    a["lora_time"] = time;
  return {};
}

void parse_up(const json& doc, const Common& base, const DeviceMapping& m, Result& r) {
  Common c = base;
  // Frame counter and port (absent = 0 in the Protobuf JSON mapping).
  std::uint64_t fcnt = 0;
  if (auto it = doc.find("fCnt"); it != doc.end()) {
    auto v = as_unsigned(*it, std::numeric_limits<std::uint32_t>::max());
    if (!v) {
      r.errors.push_back("field 'fCnt' must be an unsigned 32-bit integer, got " + quote_json(*it));
      return;
    }
    fcnt = *v;
  }
  std::uint64_t fport = 0;
  if (auto it = doc.find("fPort"); it != doc.end()) {
    auto v = as_unsigned(*it, 255);
    if (!v) {
      r.errors.push_back("field 'fPort' must be an integer 0..255, got " + quote_json(*it));
      return;
    }
    fport = *v;
  }
  r.fcnt = static_cast<std::uint32_t>(fcnt);
  c.attrs["fcnt"] = fcnt;
  c.attrs["fport"] = fport;
  if (auto it = doc.find("confirmed"); it != doc.end()) {
    if (!it->is_boolean()) {
      r.errors.push_back("field 'confirmed' must be a boolean");
      return;
    }
    c.attrs["confirmed"] = it->get<bool>();
  }
  if (auto it = doc.find("devAddr"); it != doc.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().size() > 16) {
      r.errors.push_back("field 'devAddr' must be a string of hex digits");
      return;
    }
    c.attrs["dev_addr"] = it->get<std::string>();
  }

  // Radio: the best gateway by RSSI.
  std::optional<double> best_rssi;
  std::optional<double> best_snr;
  std::size_t gateways = 0;
  if (auto it = doc.find("rxInfo"); it != doc.end()) {
    if (!it->is_array()) {
      r.errors.push_back("field 'rxInfo' must be an array");
      return;
    }
    gateways = it->size();
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& rx = (*it)[i];
      const std::string where = "field 'rxInfo[" + std::to_string(i) + "]";
      if (!rx.is_object()) {
        r.errors.push_back(where + "' must be an object");
        return;
      }
      std::optional<double> rssi;
      std::optional<double> snr;
      if (auto v = rx.find("rssi"); v != rx.end()) {
        rssi = as_finite(*v);
        if (!rssi || *rssi < -200 || *rssi > 50) {
          r.errors.push_back(where + ".rssi' must be a number in -200..50 dBm, got " +
                             quote_json(*v));
          return;
        }
      }
      if (auto v = rx.find("snr"); v != rx.end()) {
        snr = as_finite(*v);
        if (!snr || *snr < -50 || *snr > 50) {
          r.errors.push_back(where + ".snr' must be a number in -50..50 dB, got " + quote_json(*v));
          return;
        }
      }
      if (!rssi) rssi = 0;  // Protobuf JSON leaves out 0
      if (!best_rssi || *rssi > *best_rssi) {
        best_rssi = rssi;
        best_snr = snr.value_or(0);
      }
    }
  }
  c.attrs["gateways"] = gateways;
  if (best_rssi) {
    c.attrs["rssi"] = *best_rssi;
    c.attrs["snr"] = *best_snr;
  }

  // Raw payload.
  std::vector<std::uint8_t> data;
  bool has_data = false;
  if (auto it = doc.find("data"); it != doc.end() && !it->is_null()) {
    has_data = true;
    std::optional<std::vector<std::uint8_t>> d;
    if (it->is_string()) d = decode_base64(it->get_ref<const std::string&>());
    if (!d) {
      r.errors.push_back("field 'data' must be a base64 string");
      return;
    }
    data = std::move(*d);
  }

  // Decoded object (codec output).
  const json* object = nullptr;
  if (auto it = doc.find("object"); it != doc.end() && !it->is_null()) {
    if (!it->is_object()) {
      r.errors.push_back("field 'object' must be an object");
      return;
    }
    object = &*it;
  }

  if (object != nullptr) {
    for (const ObjectField& f : m.object_fields) {
      const std::string where = "object." + f.path + ": ";
      if (auto e = path_error(f.path); !e.empty()) {
        r.errors.push_back(where + e);
        continue;
      }
      const std::string pointer = to_pointer(f.path);
      const json* v = generic_mqtt::resolve_pointer(*object, pointer);
      if (v == nullptr || v->is_null()) continue;  // codecs leave out what a frame lacks
      edge::Event ev = make_event(c, m, f.kind);
      if (edge::is_binary_kind(f.kind)) {
        auto a = generic_mqtt::evaluate_active(f.active, *v);
        if (!a.active) {
          r.errors.push_back(where + a.error);
          continue;
        }
        ev.active = a.active;
      } else {
        auto raw = as_finite(*v);
        if (!raw) {
          r.errors.push_back(where + "must be a number, got " + quote_json(*v));
          continue;
        }
        const double value = *raw * f.scale + f.offset;
        if (!std::isfinite(value)) {
          r.errors.push_back(where + "value out of range after scale/offset");
          continue;
        }
        std::string name = f.name;
        if (name.empty() && f.kind == edge::EventKind::measurement)
          name = generic_mqtt::last_token(pointer);
        if (name.empty()) name = std::string(edge::to_string(f.kind));
        ev.values.push_back(edge::Measurement{std::move(name), value, f.unit});
      }
      finish(ev);
      r.events.push_back(std::move(ev));
    }
  }

  if (has_data) {
    for (std::size_t i = 0; i < m.raw_fields.size(); ++i) {
      const RawField& f = m.raw_fields[i];
      if (f.fport && *f.fport != fport) continue;
      const std::string where = "data: raw_fields[" + std::to_string(i) + "] ";
      const std::size_t n = raw_size(f.type);
      if (f.offset > data.size() || data.size() - f.offset < n) {
        r.errors.push_back(where + "needs bytes " + std::to_string(f.offset) + ".." +
                           std::to_string(f.offset + n - 1) + ", the uplink has " +
                           std::to_string(data.size()));
        continue;
      }
      const auto [bits, raw] = read_raw(f, data);
      edge::Event ev = make_event(c, m, f.kind);
      if (edge::is_binary_kind(f.kind)) {
        const bool on = f.mask != 0 ? (bits & f.mask) != 0 : raw != 0;
        ev.active = f.invert ? !on : on;
      } else {
        const double value = raw * f.scale + f.offset_value;
        if (!std::isfinite(value)) {
          r.errors.push_back(where + "value is not finite");
          continue;
        }
        ev.values.push_back(edge::Measurement{
            f.name.empty() ? std::string(edge::to_string(f.kind)) : f.name, value, f.unit});
      }
      finish(ev);
      r.events.push_back(std::move(ev));
    }
  }

  if (best_rssi) {
    edge::Event ev = make_event(c, m, edge::EventKind::measurement);
    ev.values.push_back(edge::Measurement{"rssi", *best_rssi, "dBm"});
    ev.values.push_back(edge::Measurement{"snr", *best_snr, "dB"});
    finish(ev);
    r.events.push_back(std::move(ev));
    if (m.weak_rssi_dbm) {
      edge::Event weak = make_event(c, m, edge::EventKind::signal_weak);
      weak.active = *best_rssi < *m.weak_rssi_dbm;
      // The numbers let the rules clear it with hysteresis (RuleSettings::rssi_hysteresis_db).
      weak.values.push_back(edge::Measurement{"rssi", *best_rssi, "dBm"});
      weak.attrs["weak_below_dbm"] = *m.weak_rssi_dbm;
      finish(weak);
      r.events.push_back(std::move(weak));
    }
  }
}

void parse_status(const json& doc, const Common& base, const DeviceMapping& m, Result& r) {
  Common c = base;
  double margin = 0;
  if (auto it = doc.find("margin"); it != doc.end()) {
    auto v = as_finite(*it);
    if (!v || *v < -128 || *v > 127) {
      r.errors.push_back("field 'margin' must be a number in -128..127 dB, got " + quote_json(*it));
      return;
    }
    margin = *v;
  }
  bool flags[2] = {false, false};
  const char* names[2] = {"externalPowerSource", "batteryLevelUnavailable"};
  for (int i = 0; i < 2; ++i) {
    if (auto it = doc.find(names[i]); it != doc.end()) {
      if (!it->is_boolean()) {
        r.errors.push_back("field '" + std::string(names[i]) + "' must be a boolean");
        return;
      }
      flags[i] = it->get<bool>();
    }
  }
  double level = 0;
  if (auto it = doc.find("batteryLevel"); it != doc.end()) {
    auto v = as_finite(*it);
    if (!v || *v < 0 || *v > 100) {
      r.errors.push_back("field 'batteryLevel' must be a number in 0..100, got " + quote_json(*it));
      return;
    }
    level = *v;
  }
  c.attrs["margin"] = margin;
  c.attrs["external_power"] = flags[0];
  if (!flags[0] && !flags[1]) {
    edge::Event ev = make_event(c, m, edge::EventKind::battery);
    ev.values.push_back(edge::Measurement{"battery", level, "%"});
    finish(ev);
    r.events.push_back(std::move(ev));
    return;
  }
  c.attrs["battery_level_unavailable"] = flags[1];
  edge::Event ev = make_event(c, m, edge::EventKind::measurement);
  ev.values.push_back(edge::Measurement{"margin", margin, "dB"});
  finish(ev);
  r.events.push_back(std::move(ev));
}

void parse_join(const json& doc, const Common& base, const DeviceMapping& m, Result& r) {
  Common c = base;
  c.attrs["join"] = true;
  if (auto it = doc.find("devAddr"); it != doc.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().size() > 16) {
      r.errors.push_back("field 'devAddr' must be a string of hex digits");
      return;
    }
    c.attrs["dev_addr"] = it->get<std::string>();
  }
  edge::Event ev = make_event(c, m, edge::EventKind::device_online);
  finish(ev);
  r.events.push_back(std::move(ev));
}

template <typename Pick>
Result parse_with(std::string_view topic, std::string_view payload, Pick pick) {
  Result r;
  r.topic = classify_topic(topic);
  if (r.topic.type == TopicType::ignored) return r;
  Envelope env;
  if (auto e = open_envelope(r.topic, payload, env); !e.empty()) {
    r.errors.push_back(std::move(e));
    return r;
  }
  r.dev_eui = env.common.dev_eui;
  const DeviceMapping& m = pick(env.common.dev_eui, env.common.profile);
  switch (r.topic.type) {
    case TopicType::up:
      parse_up(env.doc, env.common, m, r);
      break;
    case TopicType::status:
      parse_status(env.doc, env.common, m, r);
      break;
    case TopicType::join:
      parse_join(env.doc, env.common, m, r);
      break;
    case TopicType::ignored:
      break;
  }
  return r;
}

}  // namespace

// ---- topics ------------------------------------------------------------------------------------

TopicInfo classify_topic(std::string_view topic) {
  TopicInfo info;
  std::array<std::string_view, 6> parts{};
  std::size_t n = 0;
  std::size_t start = 0;
  while (true) {
    const auto slash = topic.find('/', start);
    const std::string_view part = topic.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (n == parts.size()) {
      info.reason = "not a ChirpStack event topic (too many levels)";
      return info;
    }
    parts[n++] = part;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (n != 6 || parts[0] != "application" || parts[2] != "device" || parts[4] != "event" ||
      parts[1].empty() || parts[3].empty() || parts[5].empty()) {
    info.reason = "not a ChirpStack event topic";
    return info;
  }
  if (!generic_mqtt::is_valid_utf8(parts[1])) {
    info.reason = "application id in the topic is not valid UTF-8";
    return info;
  }
  if (!is_eui(parts[3])) {
    info.reason = "DevEUI " + quote(parts[3]) + " in the topic is not 16 hex digits";
    return info;
  }
  info.application_id = std::string(parts[1]);
  info.dev_eui = lower(parts[3]);
  // Printable ASCII only, so that it is safe to log.
  info.event = printable(parts[5]);
  if (parts[5] == "up")
    info.type = TopicType::up;
  else if (parts[5] == "status")
    info.type = TopicType::status;
  else if (parts[5] == "join")
    info.type = TopicType::join;
  else
    info.reason = "event type " + quote(parts[5]) + " is not used";
  return info;
}

// ---- mapping -----------------------------------------------------------------------------------

std::string_view to_string(RawType t) {
  for (const auto& i : kRawTypes)
    if (i.type == t) return i.name;
  return "unknown";
}

std::optional<RawType> raw_type_from_string(std::string_view s) {
  for (const auto& i : kRawTypes)
    if (i.name == s) return i.type;
  return std::nullopt;
}

std::size_t raw_size(RawType t) {
  for (const auto& i : kRawTypes)
    if (i.type == t) return i.size;
  return 1;
}

const DeviceMapping& find_mapping(const Mappings& m, std::string_view dev_eui,
                                  std::string_view device_profile_name) {
  if (auto it = m.by_dev_eui.find(lower(dev_eui)); it != m.by_dev_eui.end()) return it->second;
  if (auto it = m.by_profile.find(device_profile_name); it != m.by_profile.end()) return it->second;
  return m.fallback;
}

std::vector<std::string> validate(const DeviceMapping& m) {
  std::vector<std::string> errors;
  if (m.device_kind.empty()) errors.push_back("device_kind: must not be empty");
  if (m.weak_rssi_dbm && !(*m.weak_rssi_dbm >= -200 && *m.weak_rssi_dbm <= 50))
    errors.push_back("weak_rssi_dbm: must be in -200..50");
  for (std::size_t i = 0; i < m.object_fields.size(); ++i) {
    const ObjectField& f = m.object_fields[i];
    const std::string where = "object_fields[" + std::to_string(i) + "].";
    if (auto e = path_error(f.path); !e.empty()) errors.push_back(where + "path: " + e);
    if (!std::isfinite(f.scale) || f.scale == 0)
      errors.push_back(where + "scale: must be finite and not 0");
    if (!std::isfinite(f.offset)) errors.push_back(where + "offset: must be finite");
    const bool binary = edge::is_binary_kind(f.kind);
    if (!binary &&
        (!f.active.active_values.empty() || !f.active.inactive_values.empty() || f.active.invert))
      errors.push_back(where + "active: only for binary kinds, not " +
                       std::string(edge::to_string(f.kind)));
    if (binary && f.active.active_values.empty() && !f.active.inactive_values.empty())
      errors.push_back(where + "active: inactive_values need active_values");
    if (binary && !f.unit.empty()) errors.push_back(where + "unit: a binary kind has no unit");
  }
  for (std::size_t i = 0; i < m.raw_fields.size(); ++i) {
    const RawField& f = m.raw_fields[i];
    const std::string where = "raw_fields[" + std::to_string(i) + "].";
    if (f.offset > 241)  // LoRaWAN's largest FRMPayload is 242 bytes
      errors.push_back(where + "offset: " + std::to_string(f.offset) + " is past 241");
    if (f.fport && (*f.fport == 0 || *f.fport > 255))
      errors.push_back(where + "fport: must be 1..255");
    if (!std::isfinite(f.scale) || f.scale == 0)
      errors.push_back(where + "scale: must be finite and not 0");
    if (!std::isfinite(f.offset_value)) errors.push_back(where + "offset_value: must be finite");
    const bool binary = edge::is_binary_kind(f.kind);
    if (!binary && (f.mask != 0 || f.invert))
      errors.push_back(where + "mask/invert: only for binary kinds, not " +
                       std::string(edge::to_string(f.kind)));
    if (binary && f.type == RawType::float32 && f.mask != 0)
      errors.push_back(where + "mask: not for float32");
    if (binary && raw_size(f.type) < 4 && (f.mask >> (8 * raw_size(f.type))) != 0)
      errors.push_back(where + "mask: wider than " + std::string(to_string(f.type)));
    if (binary && !f.unit.empty()) errors.push_back(where + "unit: a binary kind has no unit");
  }
  return errors;
}

// ---- parsing -----------------------------------------------------------------------------------

Result parse(std::string_view topic, std::string_view payload, const Mappings& mappings) {
  return parse_with(
      topic, payload,
      [&mappings](std::string_view eui, std::string_view profile) -> const DeviceMapping& {
        return find_mapping(mappings, eui, profile);
      });
}

Result parse_uplink(std::string_view topic, std::string_view payload,
                    const DeviceMapping& mapping) {
  return parse_with(
      topic, payload,
      [&mapping](std::string_view, std::string_view) -> const DeviceMapping& { return mapping; });
}

std::optional<std::vector<std::uint8_t>> decode_base64(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (text.size() % 4 != 0) return std::nullopt;
  std::vector<std::uint8_t> out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char ch = text[i + static_cast<std::size_t>(k)];
      if (ch == '=' && last && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return std::nullopt;  // data after padding
      v[k] = value(ch);
      if (v[k] < 0) return std::nullopt;
    }
    const std::uint32_t n =
        (static_cast<std::uint32_t>(v[0]) << 18) | (static_cast<std::uint32_t>(v[1]) << 12) |
        (static_cast<std::uint32_t>(v[2]) << 6) | static_cast<std::uint32_t>(v[3]);
    // Canonical: the bits that padding leaves unused must be zero.
    if ((pad == 1 && (n & 0xFF) != 0) || (pad == 2 && (n & 0xFFFF) != 0)) return std::nullopt;
    out.push_back(static_cast<std::uint8_t>(n >> 16));
    if (pad < 2) out.push_back(static_cast<std::uint8_t>((n >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<std::uint8_t>(n & 0xFF));
  }
  return out;
}

// ---- frame counters ----------------------------------------------------------------------------

std::string_view to_string(FCntClass c) {
  switch (c) {
    case FCntClass::first:
      return "first";
    case FCntClass::fresh:
      return "new";
    case FCntClass::repeat:
      return "repeat";
    case FCntClass::reset:
      return "reset";
  }
  return "unknown";
}

FCntTracker::FCntTracker(std::uint32_t window, std::size_t max_devices)
    : window_(window), max_devices_(max_devices == 0 ? 1 : max_devices) {}

FCntTracker::State& FCntTracker::slot(std::string_view dev_eui) {
  const std::string key = lower(dev_eui);
  auto it = devices_.find(key);
  if (it != devices_.end()) return it->second;
  if (devices_.size() >= max_devices_) {
    auto oldest = std::min_element(
        devices_.begin(), devices_.end(),
        [](const auto& a, const auto& b) { return a.second.touched < b.second.touched; });
    devices_.erase(oldest);
  }
  return devices_[key];
}

FCntClass FCntTracker::observe(std::string_view dev_eui, std::uint32_t fcnt) {
  State& s = slot(dev_eui);
  s.touched = ++clock_;
  FCntClass c;
  if (s.joined)
    c = FCntClass::reset;
  else if (!s.have_last)
    c = FCntClass::first;
  else if (fcnt > s.last)
    c = FCntClass::fresh;
  else if (s.last - fcnt <= window_)
    c = FCntClass::repeat;
  else
    c = FCntClass::reset;
  if (c != FCntClass::repeat) {
    s.last = fcnt;
    s.have_last = true;
    s.joined = false;
  }
  return c;
}

void FCntTracker::joined(std::string_view dev_eui) {
  State& s = slot(dev_eui);
  s.touched = ++clock_;
  s.joined = true;
}

void FCntTracker::forget(std::string_view dev_eui) {
  if (auto it = devices_.find(lower(dev_eui)); it != devices_.end()) devices_.erase(it);
}

std::optional<std::uint32_t> FCntTracker::last(std::string_view dev_eui) const {
  auto it = devices_.find(lower(dev_eui));
  if (it == devices_.end() || !it->second.have_last) return std::nullopt;
  return it->second.last;
}

}  // namespace anju::drivers::chirpstack
