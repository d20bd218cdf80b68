// Generic MQTT/JSON sensor parser. Pure: no I/O, no clock, no exceptions on bad input
// (nlohmann::json parses with exceptions disabled and is only read after type checks).
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <set>
#include <utility>

#include "anju/drivers/generic_mqtt.hpp"

namespace anju::drivers::generic_mqtt {
namespace {

using nlohmann::json;

constexpr std::string_view kSource = "generic_mqtt";
constexpr std::size_t kMaxQuotedBytes = 64;
constexpr std::size_t kMaxTopicBytes = 65535;  // MQTT's limit for a topic name

std::string format_number(double v) {
  std::array<char, 64> buf{};
  auto res = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  if (res.ec != std::errc()) return "?";
  return std::string(buf.data(), res.ptr);
}

// At most kMaxQuotedBytes of `s` in single quotes, anything but printable ASCII replaced by '?',
// so that an error string is safe to log and to put into JSON.
std::string quote(std::string_view s) {
  std::string out;
  const std::size_t n = std::min(s.size(), kMaxQuotedBytes);
  out.reserve(n + 5);
  out += '\'';
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  out += '\'';
  if (s.size() > n) out += "...";
  return out;
}

// What describe_*() may show as it is (see generic_mqtt.hpp).
constexpr std::size_t kMaxShownBytes = 24;
constexpr std::size_t kMaxShownDigits = 4;

std::size_t count_digits(std::string_view s) {
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }));
}

bool showable(std::string_view s) {
  if (s.size() > kMaxShownBytes || count_digits(s) > kMaxShownDigits) return false;
  return std::all_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c >= 0x20 && c < 0x7f;
  });
}

std::vector<std::string_view> split_levels(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const auto slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

bool valid_capture_name(std::string_view n) {
  if (n.empty()) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// One pattern level, classified.
struct Level {
  enum class Type { literal, single, multi } type = Type::literal;
  std::string_view text;     // literal text
  std::string_view capture;  // capture name for single, or empty
};

// Parses a pattern; on a bad one, `error` says why and the levels are meaningless.
std::vector<Level> parse_pattern(std::string_view pattern, std::string& error) {
  std::vector<Level> levels;
  if (pattern.empty()) {
    error = "empty pattern";
    return levels;
  }
  if (pattern.size() > kMaxTopicBytes) {
    error = "pattern longer than 65535 bytes";
    return levels;
  }
  if (!is_valid_utf8(pattern)) {
    error = "pattern is not valid UTF-8";
    return levels;
  }
  std::set<std::string_view> names;
  const auto parts = split_levels(pattern);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string_view p = parts[i];
    const std::string where = "level " + std::to_string(i + 1) + " " + quote(p) + ": ";
    Level l;
    if (p == "#") {
      if (i + 1 != parts.size()) {
        error = where + "'#' must be the last level";
        return levels;
      }
      l.type = Level::Type::multi;
    } else if (!p.empty() && p.front() == '+') {
      l.type = Level::Type::single;
      l.capture = p.substr(1);
      if (!l.capture.empty() && !valid_capture_name(l.capture)) {
        error = where + "capture name must be letters, digits or '_'";
        return levels;
      }
    } else if (!p.empty() && p.front() == '{') {
      if (p.size() < 2 || p.back() != '}') {
        error = where + "'{' without a closing '}' at the end of the level";
        return levels;
      }
      l.type = Level::Type::single;
      l.capture = p.substr(1, p.size() - 2);
      if (!valid_capture_name(l.capture)) {
        error = where + "capture name must be non-empty letters, digits or '_'";
        return levels;
      }
    } else {
      if (p.find_first_of("+#{}") != std::string_view::npos) {
        error = where + "'+', '#', '{' and '}' must stand for a whole level";
        return levels;
      }
      if (p.find('\0') != std::string_view::npos) {
        error = where + "NUL character";
        return levels;
      }
      l.text = p;
    }
    if (!l.capture.empty() && !names.insert(l.capture).second) {
      error = where + "capture name '" + std::string(l.capture) + "' used twice";
      return levels;
    }
    levels.push_back(l);
  }
  return levels;
}

std::string kind_name(edge::EventKind k) {
  return std::string(edge::to_string(k));
}

std::string value_name(const FieldMap& f) {
  if (!f.name.empty()) return f.name;
  if (f.kind == edge::EventKind::measurement) {
    std::string t = last_token(f.pointer);
    if (!t.empty()) return t;
  }
  return kind_name(f.kind);
}

bool lower_equals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != b[i]) return false;
  }
  return true;
}

bool json_equal(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  return a == b;
}

bool contains(const std::vector<json>& set, const json& v) {
  return std::any_of(set.begin(), set.end(), [&v](const json& x) { return json_equal(x, v); });
}

// A device id from a JSON value: strings as they are, integers in decimal.
std::optional<std::string> id_from(const json& v) {
  if (v.is_string() && !v.get_ref<const std::string&>().empty()) return v.get<std::string>();
  if (v.is_number_integer()) return v.dump();
  return std::nullopt;
}

}  // namespace

// The last reference token of a pointer, unescaped ("" for the whole document).
std::string last_token(std::string_view pointer) {
  const auto slash = pointer.rfind('/');
  if (slash == std::string_view::npos) return {};
  std::string out;
  const std::string_view tok = pointer.substr(slash + 1);
  for (std::size_t i = 0; i < tok.size(); ++i) {
    if (tok[i] == '~' && i + 1 < tok.size()) {
      out += tok[i + 1] == '1' ? '/' : '~';
      ++i;
    } else {
      out += tok[i];
    }
  }
  return out;
}

// ---- pointers ----------------------------------------------------------------------------------

std::string pointer_syntax_error(std::string_view pointer) {
  if (pointer.empty()) return {};
  if (pointer.front() != '/') return "must be empty or start with '/'";
  for (std::size_t i = 0; i < pointer.size(); ++i) {
    if (pointer[i] == '~') {
      if (i + 1 >= pointer.size() || (pointer[i + 1] != '0' && pointer[i + 1] != '1'))
        return "'~' at offset " + std::to_string(i) + " must be followed by 0 or 1";
      ++i;
    }
  }
  return {};
}

const json* resolve_pointer(const json& doc, std::string_view pointer) {
  if (!pointer_syntax_error(pointer).empty()) return nullptr;
  const json* cur = &doc;
  std::size_t pos = 0;
  while (pos < pointer.size()) {
    // pointer[pos] == '/'
    const std::size_t start = pos + 1;
    std::size_t end = pointer.find('/', start);
    if (end == std::string_view::npos) end = pointer.size();
    const std::string_view raw = pointer.substr(start, end - start);
    pos = end;
    if (cur->is_object()) {
      std::string key;
      key.reserve(raw.size());
      for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '~') {
          key += raw[i + 1] == '1' ? '/' : '~';  // syntax checked above: raw[i + 1] exists
          ++i;
        } else {
          key += raw[i];
        }
      }
      auto it = cur->find(key);
      if (it == cur->end()) return nullptr;
      cur = &*it;
    } else if (cur->is_array()) {
      if (raw.empty() || (raw.size() > 1 && raw.front() == '0')) return nullptr;
      std::size_t index = 0;
      auto res = std::from_chars(raw.data(), raw.data() + raw.size(), index);
      if (res.ec != std::errc() || res.ptr != raw.data() + raw.size()) return nullptr;
      if (index >= cur->size()) return nullptr;
      cur = &(*cur)[index];
    } else {
      return nullptr;
    }
  }
  return cur;
}

// ---- active ------------------------------------------------------------------------------------

ActiveResult evaluate_active(const ActiveRule& rule, const json& value) {
  ActiveResult r;
  std::optional<bool> a;
  if (!rule.active_values.empty()) {
    if (contains(rule.active_values, value))
      a = true;
    else if (rule.inactive_values.empty() || contains(rule.inactive_values, value))
      a = false;
  } else if (value.is_boolean()) {
    a = value.get<bool>();
  } else if (value.is_number()) {
    const double d = value.get<double>();
    if (std::isfinite(d)) a = d != 0;
  } else if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    for (std::string_view w :
         {"true", "on", "yes", "1", "alarm", "active", "open", "wet", "detected"})
      if (lower_equals(s, w)) a = true;
    for (std::string_view w :
         {"false", "off", "no", "0", "normal", "inactive", "closed", "dry", "clear", "ok"})
      if (lower_equals(s, w)) a = false;
  }
  if (!a) {
    r.error = "value " + describe_value(value) + " is neither active nor inactive";
    return r;
  }
  r.active = rule.invert ? !*a : *a;
  return r;
}

std::string describe_value(const json& v) {
  // Not ASCII-escaped: a value with non-ASCII text is never shown.
  const std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (showable(text)) return "'" + text + "'";
  if (v.is_string())
    return "<string of " + std::to_string(v.get_ref<const std::string&>().size()) + " bytes>";
  if (v.is_number()) return "<number of " + std::to_string(count_digits(text)) + " digits>";
  if (v.is_object())
    return "<object of " + std::to_string(v.size()) + (v.size() == 1 ? " member>" : " members>");
  if (v.is_array()) return "<array of " + std::to_string(v.size()) + ">";
  return "<" + std::string(v.type_name()) + ">";
}

std::string describe_number(double v) {
  const std::string text = format_number(v);
  if (showable(text)) return text;
  return "<number of " + std::to_string(count_digits(text)) + " digits>";
}

std::string describe_text(std::string_view text) {
  if (showable(text)) return "'" + std::string(text) + "'";
  return "<" + std::to_string(text.size()) + " bytes>";
}

bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07u;
    } else {
      return false;
    }
    if (s.size() - i - 1 < n) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0u) != 0x80u) return false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
      return false;
    i += n + 1;
  }
  return true;
}

int default_severity(edge::EventKind kind, std::optional<bool> active) {
  if (active.has_value() && !*active) return 4;
  switch (kind) {
    case edge::EventKind::smoke:
    case edge::EventKind::gas:
      return 1;
    case edge::EventKind::manhole_open:
    case edge::EventKind::equipment_alarm:
      return 2;
    case edge::EventKind::water_leak:
    case edge::EventKind::tamper:
    case edge::EventKind::battery_low:
    case edge::EventKind::equipment_fault:
    case edge::EventKind::signal_weak:
      return 3;
    default:
      return 4;
  }
}

// ---- patterns ----------------------------------------------------------------------------------

std::string pattern_error(std::string_view pattern) {
  std::string error;
  parse_pattern(pattern, error);
  return error;
}

std::optional<Captures> match(std::string_view pattern, std::string_view topic) {
  std::string error;
  const auto levels = parse_pattern(pattern, error);
  if (!error.empty()) return std::nullopt;
  if (topic.empty() || topic.size() > kMaxTopicBytes || !is_valid_utf8(topic) ||
      topic.find_first_of(std::string_view("+#\0", 3)) != std::string_view::npos)
    return std::nullopt;
  const auto parts = split_levels(topic);
  Captures captures;
  for (std::size_t i = 0; i < levels.size(); ++i) {
    const Level& l = levels[i];
    if (l.type == Level::Type::multi) {
      if (i == 0 && topic.front() == '$') return std::nullopt;
      return captures;  // matches the rest, including nothing ("a/#" matches "a")
    }
    if (i >= parts.size()) return std::nullopt;
    if (l.type == Level::Type::single) {
      if (i == 0 && topic.front() == '$') return std::nullopt;
      if (!l.capture.empty()) captures[std::string(l.capture)] = std::string(parts[i]);
    } else if (parts[i] != l.text) {
      return std::nullopt;
    }
  }
  if (parts.size() != levels.size()) return std::nullopt;
  return captures;
}

// ---- mappings ----------------------------------------------------------------------------------

std::vector<std::string> validate(const Mapping& m) {
  std::vector<std::string> errors;
  if (auto e = pattern_error(m.topic); !e.empty()) errors.push_back("topic: " + e);
  if (auto e = pointer_syntax_error(m.device_pointer); !e.empty())
    errors.push_back("device_pointer: " + e);
  if (auto e = pointer_syntax_error(m.timestamp_pointer); !e.empty())
    errors.push_back("timestamp_pointer: " + e);
  if (m.device_kind.empty()) errors.push_back("device_kind: must not be empty");
  if (m.fields.empty()) errors.push_back("fields: at least one field is needed");
  for (std::size_t i = 0; i < m.fields.size(); ++i) {
    const FieldMap& f = m.fields[i];
    const std::string where = "fields[" + std::to_string(i) + "].";
    if (auto e = pointer_syntax_error(f.pointer); !e.empty())
      errors.push_back(where + "pointer: " + e);
    if (!std::isfinite(f.scale) || f.scale == 0)
      errors.push_back(where + "scale: must be finite and not 0");
    if (!std::isfinite(f.offset)) errors.push_back(where + "offset: must be finite");
    const bool binary = edge::is_binary_kind(f.kind);
    if (!binary &&
        (!f.active.active_values.empty() || !f.active.inactive_values.empty() || f.active.invert))
      errors.push_back(where + "active: only for binary kinds, not " + kind_name(f.kind));
    if (binary && f.active.active_values.empty() && !f.active.inactive_values.empty())
      errors.push_back(where + "active: inactive_values need active_values");
    if (binary && !f.unit.empty())
      errors.push_back(where + "unit: a binary kind (" + kind_name(f.kind) + ") has no unit");
  }
  return errors;
}

ParseResult parse(const Mapping& m, std::string_view topic, std::string_view payload) {
  ParseResult r;
  auto captures = match(m.topic, topic);
  if (!captures) {
    if (auto e = pattern_error(m.topic); !e.empty())
      r.errors.push_back("mapping " + quote(m.name) + ": topic: " + e);
    return r;
  }
  r.matched = true;
  if (payload.size() > kMaxPayloadBytes) {
    r.errors.push_back("payload too large: " + std::to_string(payload.size()) + " bytes (max " +
                       std::to_string(kMaxPayloadBytes) + ")");
    return r;
  }
  const json doc = json::parse(payload.begin(), payload.end(), nullptr, false);
  if (doc.is_discarded()) {
    r.errors.push_back("not valid JSON");
    return r;
  }

  // Device id.
  std::string device_id;
  if (!m.device_pointer.empty()) {
    const json* v = resolve_pointer(doc, m.device_pointer);
    if (v == nullptr) {
      r.errors.push_back("device_pointer " + quote(m.device_pointer) + ": not found");
      return r;
    }
    auto id = id_from(*v);
    if (!id) {
      r.errors.push_back("device_pointer " + quote(m.device_pointer) +
                         ": must be a non-empty string or an integer");
      return r;
    }
    device_id = std::move(*id);
  } else if (auto it = captures->find("device"); it != captures->end() && !it->second.empty()) {
    device_id = it->second;
  } else {
    device_id = std::string(topic);
  }

  // Device timestamp (optional; a bad one is an error but the readings still count).
  if (!m.timestamp_pointer.empty()) {
    const json* v = resolve_pointer(doc, m.timestamp_pointer);
    if (v != nullptr && !v->is_null()) {
      const double factor = m.timestamp_unit == TimestampUnit::seconds ? 1000.0 : 1.0;
      // Up to year ~2286 in ms; keeps the conversion to int64 defined.
      constexpr double kMaxMs = 1e13;
      if (!v->is_number() || !std::isfinite(v->get<double>()))
        r.errors.push_back("timestamp_pointer " + quote(m.timestamp_pointer) +
                           ": must be a number");
      else if (const double ms = v->get<double>() * factor; !(ms >= 0 && ms <= kMaxMs))
        r.errors.push_back("timestamp_pointer " + quote(m.timestamp_pointer) +
                           ": out of range: " + describe_number(v->get<double>()));
      else
        r.device_ts_ms = static_cast<std::int64_t>(ms);
    }
  }

  json attrs = json::object();
  attrs["topic"] = std::string(topic);
  edge::Location loc;
  for (const auto& [k, v] : *captures) {
    if (k == "building")
      loc.building = v;
    else if (k == "unit")
      loc.unit = v;
    else if (k == "room")
      loc.room = v;
    else if (k != "device")
      attrs[k] = v;
  }
  if (r.device_ts_ms) attrs["device_ts_ms"] = *r.device_ts_ms;

  for (const FieldMap& f : m.fields) {
    const std::string where = "pointer " + quote(f.pointer) + ": ";
    if (auto e = pointer_syntax_error(f.pointer); !e.empty()) {
      r.errors.push_back(where + e);
      continue;
    }
    const json* v = resolve_pointer(doc, f.pointer);
    if (v == nullptr || v->is_null()) {
      if (f.required) r.errors.push_back(where + "not found");
      continue;
    }
    edge::Event ev;
    ev.device.id = device_id;
    ev.device.kind = m.device_kind;
    ev.location = loc;
    ev.kind = f.kind;
    ev.attrs = attrs;
    ev.source = std::string(kSource);
    if (edge::is_binary_kind(f.kind)) {
      auto a = evaluate_active(f.active, *v);
      if (!a.active) {
        r.errors.push_back(where + a.error);
        continue;
      }
      ev.active = a.active;
    } else {
      if (!v->is_number() || !std::isfinite(v->get<double>())) {
        r.errors.push_back(where + "must be a number, got " + describe_value(*v));
        continue;
      }
      const double value = v->get<double>() * f.scale + f.offset;
      if (!std::isfinite(value)) {
        r.errors.push_back(where + "value out of range after scale/offset");
        continue;
      }
      ev.values.push_back(edge::Measurement{value_name(f), value, f.unit});
    }
    ev.severity = default_severity(f.kind, ev.active);
    r.events.push_back(std::move(ev));
  }
  return r;
}

}  // namespace anju::drivers::generic_mqtt
