// zigbee2mqtt payload parsers: pure functions, bytes in, events or a clear error out. No I/O.
// These are what the unit tests and the fuzz target exercise; Zigbee2MqttDriver only does I/O.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "anju/edge/event.hpp"

namespace anju::drivers::z2m {

// Largest payload we look at; anything bigger is rejected unparsed.
inline constexpr std::size_t kMaxPayloadBytes = 64 * 1024;

enum class TopicType { bridge_devices, state, availability, ignored };
struct TopicInfo {
  TopicType type = TopicType::ignored;
  std::string friendly_name;  // for state and availability
};
// "<base>/bridge/devices", "<base>/<name>", "<base>/<name>/availability"; "<base>/bridge/*" other
// than devices, "<base>/<name>/set|get|..." and anything outside base are ignored.
TopicInfo classify_topic(std::string_view base, std::string_view topic);

// Capabilities recognised from a device's definition.exposes (features nested in composite
// exposes count too).
enum class Capability {
  smoke,
  gas,
  water_leak,
  contact,
  temperature,
  humidity,
  battery,
  battery_low,
  tamper,
  occupancy,
  vibration,
};
std::string_view to_string(Capability c);

struct DeviceInfo {
  std::string ieee;           // "0x00158d0001a2b3c4"
  std::string friendly_name;  // topic name
  std::string model;
  std::string vendor;
  std::string kind;  // classified: smoke_detector, gas_detector, water_leak_sensor, contact_sensor,
                     // climate_sensor, motion_sensor, vibration_sensor, sensor (generic)
  std::vector<Capability> caps;
  bool has(Capability c) const;
};

struct DevicesResult {
  std::vector<DeviceInfo> devices;  // end devices with at least one capability we know
  std::vector<std::string>
      skipped;        // per entry: why it was skipped (e.g. "entry 3: no ieee_address")
  std::string error;  // non-empty: the whole payload was rejected
};
// Parses the retained `<base>/bridge/devices` JSON array. The Coordinator and devices without a
// known capability are skipped (not errors).
DevicesResult parse_bridge_devices(std::string_view payload);

// What the parser remembers per device between messages, to tell a change from a repeat.
struct DeviceState {
  std::map<std::string, double> last;         // last value per property (booleans as 0/1)
  std::optional<std::int64_t> last_event_ms;  // when its last message gave events
};

struct StateOptions {
  bool report_unchanged = false;  // emit readings even when equal to the last one
  // A message equal to the last one still gives its readings when the device's last events are
  // this old (0: never): a sensor that checks in with the same values is alive, and the rules'
  // heartbeat only hears events.
  std::int64_t refresh_ms = 0;
  std::int64_t now_ms = 0;  // the message's time, for refresh_ms
};

struct StateResult {
  // Events carry kind, severity, active, values, device (id/kind/name) and attrs (linkquality
  // etc.); the caller stamps id, time, site, grid code and location.
  std::vector<edge::Event> events;
  std::vector<std::string> errors;  // one per bad field ("field 'smoke' must be a boolean"), or
                                    // one for the whole payload ("not valid JSON")
};
// Parses a `<base>/<friendly_name>` state message. Rules:
// - binary properties (smoke, gas, water_leak, tamper, occupancy, vibration, battery_low) give an
//   event with `active` when they change; smoke, gas and water_leak give one on every message
//   while true (a repeated alarm counts on the open alert);
// - `contact` in zigbee2mqtt is true when closed: the event's kind is contact, active = open;
// - numeric readings (temperature, humidity, battery) give an event when changed (or always with
//   report_unchanged);
// - every property, changed or not, gives its event when the device's last events are refresh_ms
//   old (its periodic check-in keeps it alive for supervision without an event per message);
// - a property of the wrong type is an error for that property; the others still count;
// - unknown properties are ignored.
// `state` is updated with what was accepted.
StateResult parse_state(std::string_view payload, const DeviceInfo& device, DeviceState& state,
                        const StateOptions& options = {});

struct AvailabilityResult {
  std::optional<bool> online;
  std::string error;
};
// `{"state":"online"}` / `{"state":"offline"}` and the legacy plain strings "online" / "offline".
AvailabilityResult parse_availability(std::string_view payload);

}  // namespace anju::drivers::z2m
