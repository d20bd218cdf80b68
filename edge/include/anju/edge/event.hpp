// The one event type of Anju: everything that happens in the compound becomes an Event.
// Declared once here; drivers produce it, the journal stores it, rules read it, the bridge maps it.
// Thread: plain value type, no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace anju::edge {

inline constexpr int kEventSchema = 1;

// Closed set of event kinds. Add new kinds at the end of a group; the wire name is what counts.
enum class EventKind {
  // sensors
  smoke,
  gas,
  water_leak,
  contact,  // door/window contact; active = open
  temperature,
  humidity,
  battery,  // battery level reading (value "battery" in %)
  battery_low,
  tamper,
  occupancy,
  vibration,
  manhole_open,     // manhole cover lifted/tilted; active = open
  water_level,      // level reading (value "water_level", unit m or %)
  pressure,         // pressure reading (e.g. fire water main, value "pressure" in kPa)
  measurement,      // any other reading mapped by config (values carry name and unit)
  equipment_alarm,  // an alarm input of another system (fire panel, pump controller); active
  equipment_fault,  // a fault input of another system; active
  signal_weak,      // radio signal below threshold; active
  // device supervision
  device_online,
  device_offline,
  // access control (issue 4)
  passage_granted,
  passage_denied,
  door_forced,
  door_held_open,
  exit_request,
  card_read,        // a credential presented at a reader (decision follows as granted/denied)
  keypad_entry,     // PIN/keypad digits at a reader (never the digits themselves in the journal)
  reader_fault,     // bad frame from a reader (e.g. Wiegand parity), NAK, or a protocol error
  security_fault,   // e.g. OSDP Secure Channel handshake failed or MAC mismatch
  door_open,        // door contact opened (door_closed when active = false)
  tailgating,       // more passages than grants
  repeated_denial,  // several denials at a door or for a credential in a short time
  welfare_check,    // nobody has used a watched home's door or water for too long (独居老人)
  // cameras (issue 5)
  intrusion,
  loitering,
  camera_tamper,
  thrown_object,
  people_count,  // a passage across a counting line (values "in", "out": running totals)
  // gateway
  gateway_test,
  alert_transition,  // a person or the rules moved an alert along its life-cycle
  maintenance,       // a maintenance window started or ended
  audit,             // a person's action on the gateway (login, logout, failed login, export)
};

std::string_view to_string(EventKind k);
std::optional<EventKind> event_kind_from_string(std::string_view s);
// True for kinds whose event carries an on/off condition in `active`.
bool is_binary_kind(EventKind k);
// Sources that speak about a device without having heard from it: the gateway's own rules
// (supervisor, door_rules) and people (dashboard, city, anju test-event). Their events do not
// make a device seen, nor change which driver it belongs to.
bool is_derived_source(std::string_view source);

struct Location {
  std::string building;
  std::string unit;
  std::string room;  // room, door or area name
  bool operator==(const Location&) const = default;
};

struct DeviceRef {
  std::string id;       // stable id within the site, e.g. zigbee IEEE address "0x00158d0001a2b3c4"
  std::string kind;     // e.g. "smoke_detector", "contact_sensor", "climate_sensor"
  std::string name;     // human name (zigbee2mqtt friendly_name)
  std::string gb28181;  // GB/T 28181 20-digit code when configured, else empty
  bool operator==(const DeviceRef&) const = default;
};

struct Measurement {
  std::string name;  // e.g. "temperature"
  double value = 0;
  std::string unit;  // e.g. "C", "%", "ppm"
  bool operator==(const Measurement&) const = default;
};

struct Event {
  std::string id;        // UUIDv7, assigned at creation
  std::int64_t seq = 0;  // gapless per-gateway sequence, assigned by the journal (0 = not accepted)
  std::int64_t ts_ms = 0;     // wall-clock time, ms since the Unix epoch
  std::int64_t mono_ns = 0;   // CLOCK_MONOTONIC at creation, ns (meaningful within one boot_id)
  std::string boot_id;        // kernel boot id the monotonic time belongs to
  bool clock_synced = false;  // wall clock known to be synchronised when ts_ms was taken
  std::string site;           // compound id
  std::string grid_code;      // CJ/T 349 20-digit grid code
  Location location;
  DeviceRef device;
  EventKind kind = EventKind::gateway_test;
  int severity = 4;                 // 1 (most serious) .. 4 (information)
  std::optional<bool> active;       // for binary kinds: condition present (true) or gone (false)
  std::vector<Measurement> values;  // readings with units
  nlohmann::json attrs = nlohmann::json::object();  // free attributes (driver specific)
  std::string source;                               // driver that produced it, e.g. "zigbee2mqtt"
  std::string source_key;  // identifies the source message (e.g. MQTT packet id + CRC) so that a
                           // redelivery of it after a restart is recognised; "" when none

  const Measurement* value(std::string_view name) const;
  bool operator==(const Event&) const = default;
};

// JSON of the parts, shared by every payload that carries them.
nlohmann::json to_json(const Location& l);
nlohmann::json to_json(const DeviceRef& d);
nlohmann::json to_json(const std::vector<Measurement>& values);

// JSON encoding, with "schema": kEventSchema.
nlohmann::json to_json(const Event& e);
std::string encode(const Event& e);

// Decoding: pure; rejects what it does not understand with a reason naming the field.
struct DecodeResult {
  std::optional<Event> event;
  std::string error;  // empty when event is set
};
DecodeResult decode_event(std::string_view json_text);
DecodeResult event_from_json(const nlohmann::json& j);

// The compact binary form the inbox and the journal store (about 40 % of the JSON's size, and
// several times cheaper to write; layout in event_codec.cpp). `seq` is not part of it: the
// journal keeps it in its own column.
std::string encode_binary(const Event& e);
DecodeResult decode_binary(std::string_view bytes);
// A stored event in either form: JSON (journals written before the binary form) or binary.
DecodeResult decode_stored(std::string_view bytes);

class Clock;
// An event the gateway makes itself (an audit, a transition), stamped now: a fresh UUIDv7, the
// clock's wall and monotonic times and sync state, the boot id. The caller fills the rest.
Event gateway_event(EventKind kind, const Clock& clock);

}  // namespace anju::edge
