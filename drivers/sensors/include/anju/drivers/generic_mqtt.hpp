// Generic MQTT/JSON sensors: pure functions, a topic and a payload in, events or a clear error out.
// No I/O, no clock. A GenericMqttDriver (not written yet) subscribes to each mapping's pattern
// and calls parse(); config loading calls validate().
//
// Also the small JSON helpers shared with the ChirpStack parser: RFC 6901 pointers, the rule that
// turns a JSON value into an on/off condition, and the default severity of a sensor event.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "anju/edge/event.hpp"

namespace anju::drivers::generic_mqtt {

// Largest payload we look at; anything bigger is rejected unparsed.
inline constexpr std::size_t kMaxPayloadBytes = 64 * 1024;

// ---- JSON pointers (RFC 6901) ----------------------------------------------------------------
// "" is the whole document; otherwise "/a/b/0" with "~1" for '/' and "~0" for '~'.
// Empty when valid, else why not ("must start with '/'", "'~' at offset 4 must be followed by 0
// or 1").
std::string pointer_syntax_error(std::string_view pointer);
// The value the pointer refers to, or nullptr (absent, index out of range, bad syntax). Array
// indices are "0" or digits without a leading zero; "-" never refers to anything.
const nlohmann::json* resolve_pointer(const nlohmann::json& doc, std::string_view pointer);
// The last reference token of a pointer, unescaped ("" for the whole document).
std::string last_token(std::string_view pointer);

// ---- on/off from a JSON value ------------------------------------------------------------------
// How a value becomes `active` for a binary kind.
// - active_values non-empty: the value equal to one of them (JSON equality; numbers compare by
//   value, 1 == 1.0) is active; equal to one of inactive_values, or inactive_values empty, is
//   inactive; anything else is an error.
// - active_values empty (default): true / false; numbers: != 0; strings (case-insensitive)
//   "true","on","yes","1","alarm","active","open","wet","detected" are active and
//   "false","off","no","0","normal","inactive","closed","dry","clear","ok" are inactive; anything
//   else is an error.
// invert flips the result (e.g. a contact that reports "closed": true).
struct ActiveRule {
  std::vector<nlohmann::json> active_values{};
  std::vector<nlohmann::json> inactive_values{};
  bool invert = false;
  bool operator==(const ActiveRule&) const = default;
};
struct ActiveResult {
  std::optional<bool> active{};
  std::string error{};  // "value 'maybe' is neither active nor inactive"
};
ActiveResult evaluate_active(const ActiveRule& rule, const nlohmann::json& value);

// ---- values in error messages -----------------------------------------------------------------
// Parser errors are logged, so they never repeat a value that could be a personal identifier a
// device put where a reading was expected (a card, phone, ID-card or licence plate number, a
// resident id: docs/DATA.md, "Logs"). A value is quoted only when its text is at most 24 bytes of
// printable ASCII with at most 4 digits: state words ('"SMOKE"', '"sideways"'), readings ('140',
// '-0.5', '1e+300'), small JSON ('[]', '{"state":true}'). Anything else is described by its type
// and size: <string of 11 bytes>, <number of 11 digits>, <object of 2 members>, <array of 3>.
std::string describe_value(const nlohmann::json& value);  // '"SMOKE"' or <string of 11 bytes>
std::string describe_number(double value);                // 140 or <number of 11 digits>
std::string describe_text(std::string_view text);         // 'maybe' or <11 bytes> (raw payloads)

// Well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF). MQTT topics must be; a
// topic that is not is rejected before any of it reaches an event.
bool is_valid_utf8(std::string_view s);

// Severity for a sensor event: 1 smoke/gas, 2 manhole_open/equipment_alarm, 3 water_leak/tamper/
// battery_low/equipment_fault/signal_weak, 4 otherwise and whenever a condition goes away.
int default_severity(edge::EventKind kind, std::optional<bool> active);

// ---- topic patterns
// ------------------------------------------------------------------------------ MQTT topic filter
// syntax plus named captures, level by level ('/'-separated):
//   literal   matches itself
//   +         any one level (also an empty one)
//   +name     any one level, captured as `name`
//   {name}    the same, other spelling
//   #         any number of levels (also none: "a/#" matches "a"), only as the last level
// Capture names are [A-Za-z0-9_]+ and unique. As in MQTT, a wildcard in the first level does not
// match a topic that starts with '$', and a topic containing '+' or '#' matches nothing.
// "a/+" matches "a/" (one empty level) but not "a"; "a/b" does not match "a/b/".
using Captures = std::map<std::string, std::string, std::less<>>;
std::string pattern_error(std::string_view pattern);  // empty when valid
std::optional<Captures> match(std::string_view pattern, std::string_view topic);

// ---- mappings
// ------------------------------------------------------------------------------------ One value in
// the payload.
struct FieldMap {
  std::string pointer{};  // RFC 6901 into the payload ("" = the whole payload, e.g. a bare number)
  edge::EventKind kind = edge::EventKind::measurement;
  std::string name{};  // value name; default: the kind's name, or for `measurement` the pointer's
                       // last token
  std::string unit{};  // e.g. "C", "%", "kPa", "m"
  double scale = 1;    // value = raw * scale + offset (numeric kinds)
  double offset = 0;
  ActiveRule active{};    // binary kinds only
  bool required = false;  // absent (or null) is an error instead of "nothing to report"
  bool operator==(const FieldMap&) const = default;
};

enum class TimestampUnit { seconds, milliseconds };

struct Mapping {
  std::string name{};   // for messages, e.g. "pump_room_levels"
  std::string topic{};  // pattern, e.g. "site/{building}/{device}/state" or "vendor/+device/tele"
  // Device id: the value at device_pointer (string or integer) if set, else the capture named
  // "device", else the topic itself.
  std::string device_pointer{};
  std::string device_kind = "sensor";  // DeviceRef::kind of the events
  std::string timestamp_pointer{};     // optional; number of seconds (may be fractional) or ms
  TimestampUnit timestamp_unit = TimestampUnit::milliseconds;
  std::vector<FieldMap> fields{};
};

// Every problem of the mapping, each naming its place: "topic: ...", "fields[2].pointer: ...",
// "fields[0].scale: must be finite and not 0". Empty when the mapping is usable.
std::vector<std::string> validate(const Mapping& mapping);

struct ParseResult {
  bool matched = false;  // the topic matched the mapping's pattern
  // Events carry kind, severity, active (binary kinds) or one value, device (id/kind), location
  // (captures named building/unit/room) and attrs (topic, the other captures, device_ts_ms). The
  // caller stamps id, time, site and grid code.
  std::vector<edge::Event> events{};
  std::optional<std::int64_t> device_ts_ms{};  // from timestamp_pointer, when set and valid
  std::vector<std::string> errors{};  // one per bad field ("pointer '/temp': must be a number"), or
                                      // one for the whole message ("not valid JSON")
};
// The mapping is expected to be valid (validate() is empty); an invalid one gives errors, never
// undefined behaviour. A field that is absent is skipped (or an error when required); a field of
// the wrong type is an error and the others still count.
ParseResult parse(const Mapping& mapping, std::string_view topic, std::string_view payload);

}  // namespace anju::drivers::generic_mqtt
