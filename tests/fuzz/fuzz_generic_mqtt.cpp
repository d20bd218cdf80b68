// libFuzzer target for the generic MQTT/JSON parser. The input is "<topic>\n<payload>" (split at
// the first NUL or newline; without one, the whole input is the payload of a fixed topic). The
// topic also serves as a pattern and the payload as a pointer. Nothing may crash, throw or hand
// back something that cannot be encoded.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "anju/drivers/generic_mqtt.hpp"
#include "anju/edge/event.hpp"

namespace gm = anju::drivers::generic_mqtt;
using anju::edge::EventKind;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void check_text(const std::string& s) {
  check(!nlohmann::json(s).dump().empty());
}

const gm::Mapping& mapping() {
  static const gm::Mapping m = [] {
    gm::Mapping map;
    map.name = "fuzz";
    map.topic = "site/{building}/+device/#";
    map.timestamp_pointer = "/ts";
    map.timestamp_unit = gm::TimestampUnit::seconds;
    gm::FieldMap p;
    p.pointer = "/main/pressure";
    p.kind = EventKind::pressure;
    p.unit = "kPa";
    p.scale = 1000;
    p.required = true;
    gm::FieldMap a;
    a.pointer = "/alarm";
    a.kind = EventKind::equipment_alarm;
    a.active.active_values = {"ALARM", 1};
    a.active.inactive_values = {"NORMAL", 0};
    gm::FieldMap f;
    f.pointer = "/faults/0";
    f.kind = EventKind::equipment_fault;
    gm::FieldMap t;
    t.pointer = "/a~1b/t~0c";
    gm::FieldMap whole;
    whole.pointer = "";
    whole.name = "raw";
    map.fields = {p, a, f, t, whole};
    if (!gm::validate(map).empty()) std::abort();
    return map;
  }();
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto cut = input.find_first_of(std::string_view("\0\n", 2));
  const std::string_view topic = cut == std::string_view::npos
                                     ? std::string_view("site/B3/pump-1/state")
                                     : input.substr(0, cut);
  const std::string_view payload = cut == std::string_view::npos ? input : input.substr(cut + 1);

  const auto r = gm::parse(mapping(), topic, payload);
  check(r.matched || (r.events.empty() && r.errors.empty()));
  check(r.events.size() <= mapping().fields.size());
  check(r.errors.size() <= mapping().fields.size() + 1);
  for (const auto& e : r.errors) check_text(e);
  for (const auto& ev : r.events) {
    check(ev.source == "generic_mqtt" && ev.severity >= 1 && ev.severity <= 4);
    check(anju::edge::is_binary_kind(ev.kind) == ev.active.has_value());
    check(!ev.device.id.empty());
    check(!anju::edge::encode(ev).empty());
  }
  if (r.device_ts_ms) check(*r.device_ts_ms >= 0);

  // The topic as a pattern: it matches something only when it is valid, and a valid pattern
  // without wildcards matches itself.
  const std::string perr = gm::pattern_error(topic);
  check_text(perr);
  const auto self = gm::match(topic, topic);
  if (!perr.empty()) check(!self);
  if (perr.empty() && !topic.empty() && topic.find_first_of("+#{") == std::string_view::npos &&
      gm::is_valid_utf8(topic))
    check(self.has_value());
  gm::match(topic, payload);

  // The payload as a pointer into a fixed document.
  static const nlohmann::json doc =
      nlohmann::json::parse(R"({"a":{"b":[1,2,{"c":3}]},"x/y":4,"m~n":5,"":6})");
  const std::string pe = gm::pointer_syntax_error(payload);
  check_text(pe);
  if (!pe.empty()) check(gm::resolve_pointer(doc, payload) == nullptr);

  // The payload as a value for the default active rule.
  const auto j = nlohmann::json::parse(payload.begin(), payload.end(), nullptr, false);
  if (!j.is_discarded()) {
    const auto a = gm::evaluate_active(gm::ActiveRule{}, j);
    check(a.active.has_value() == a.error.empty());
    check_text(a.error);
  }

  // A mapping built from the input validates without crashing.
  gm::Mapping m = mapping();
  m.topic = std::string(topic);
  m.fields[0].pointer = std::string(payload.substr(0, 64));
  for (const auto& e : gm::validate(m)) check_text(e);
  return 0;
}
