// What the sensor drivers (ChirpStack, generic MQTT, Modbus) share: the per-device settings from
// config (where a device is, its codes), the stamping of an event the parser produced (id, times,
// site, location), error counting by reason and a rate-limited complaint log.
// Thread: plain values and helpers; ErrorLog is not thread-safe (each driver guards its own).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "anju/edge/clock.hpp"
#include "anju/edge/event.hpp"

namespace anju::drivers::sensors {

// Where a device is and what it is called, from config; keyed by the device id the driver uses
// (ChirpStack: DevEUI in lower-case hex; generic MQTT: the parsed device id; Modbus: the device's
// configured id).
struct DeviceSettings {
  std::string name;         // empty: keep what the source says (ChirpStack deviceName, ...)
  std::string kind;         // empty: keep the mapping's device_kind
  edge::Location location;  // fields left empty keep what the parser found (topic captures)
  std::string grid_code;    // empty: the site's
  std::string gb28181;      // GB/T 28181 code, when given
};

// Stamps an event the pure parser produced: id (UUIDv7), wall/mono time, boot id, clock state,
// site and grid code, source key, and the device's settings when there are any.
void stamp(edge::Event& e, const edge::Clock& clock, const std::string& site,
           const std::string& grid_code, const DeviceSettings* settings,
           const std::string& source_key);

// A short, fixed category for a parser error message, so that /metrics has a bounded label set:
// "too_large", "invalid_json", "bad_topic", "bad_field" (a message-level field: "field 'fCnt'
// ..."), "bad_value" (one mapped value: "object.temperature: ...", "pointer '/t': ...").
std::string_view error_reason(std::string_view message);

// Logs at most one line per key per interval (a chattering broken device must not flood the log)
// and counts how many lines it held back.
class ErrorLog {
 public:
  explicit ErrorLog(std::string driver, std::int64_t interval_ms = 60'000)
      : driver_(std::move(driver)), interval_ms_(interval_ms) {}
  // Returns true when the line was written.
  bool warn(std::int64_t now_ms, const std::string& key, const std::string& what);
  std::int64_t suppressed() const { return suppressed_; }

 private:
  std::string driver_;
  std::int64_t interval_ms_;
  std::map<std::string, std::int64_t> last_ms_;
  std::int64_t suppressed_ = 0;
};

}  // namespace anju::drivers::sensors
