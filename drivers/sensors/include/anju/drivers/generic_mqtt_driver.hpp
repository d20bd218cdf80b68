// The generic MQTT/JSON driver: a vendor gateway added by config alone. Each mapping's topic
// pattern (with named captures) becomes an MQTT filter subscribed on the local bus (QoS 1, the
// bus's persistent session); a message is parsed by every mapping whose pattern matches it
// (generic_mqtt::parse), the events are stamped with site, grid code and the device's settings,
// and handed to the sink (Pipeline::submit).
//
// Filters are de-duplicated and a filter covered by another one is not subscribed separately:
// overlapping subscriptions would make the broker send a message twice, under two packet ids
// that the redelivery check cannot tell apart.
// Bad input is counted by reason and logged at most once per device (or mapping) per minute.
// Thread: handle() runs on the local bus's Paho thread; stats() from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "anju/drivers/generic_mqtt.hpp"
#include "anju/drivers/sensors_common.hpp"
#include "anju/edge/clock.hpp"
#include "anju/edge/event.hpp"

namespace anju::edge {
class LocalBus;
}

namespace anju::drivers {

struct GenericMqttOptions {
  std::string site;
  std::string grid_code;
  std::vector<generic_mqtt::Mapping> mappings;  // each must pass generic_mqtt::validate()
  // By the parsed device id: name, kind, building/unit/room, grid and GB28181 code.
  std::map<std::string, sensors::DeviceSettings, std::less<>> devices;
};

struct GenericMqttStats {
  std::int64_t messages = 0;      // messages handed to handle()
  std::int64_t events = 0;        // events handed to the sink
  std::int64_t parse_errors = 0;  // errors (one per bad value, or one for the message)
  std::int64_t duplicates = 0;    // always 0 here (MQTT redeliveries are dropped by the bus)
  std::int64_t unmatched = 0;     // messages no mapping's pattern matched
  std::int64_t sink_refused = 0;
  std::map<std::string, std::int64_t> errors_by_reason;  // see sensors::error_reason()
  std::map<std::string, std::int64_t> messages_by_mapping;
};

// The MQTT topic filter of a pattern: "+name" and "{name}" become "+".
std::string mqtt_filter(const std::string& pattern);
// True when every topic `b` matches is matched by `a` too (both MQTT filters).
bool filter_covers(const std::string& a, const std::string& b);

class GenericMqttDriver {
 public:
  using Sink = std::function<bool(std::vector<edge::Event>)>;
  // Throws std::invalid_argument naming the mapping and the problem when one is invalid (config
  // time, not the data path).
  GenericMqttDriver(GenericMqttOptions options, const edge::Clock& clock, Sink sink);

  // The filters to subscribe (de-duplicated, none covered by another).
  std::vector<std::string> subscriptions() const;
  // Subscribes handle() on the bus for each filter (before bus.start()).
  void attach(edge::LocalBus& bus);
  void handle(const std::string& topic, const std::string& payload,
              const std::string& source_key = {});
  GenericMqttStats stats() const;

 private:
  GenericMqttOptions options_;
  const edge::Clock& clock_;
  Sink sink_;
  mutable std::mutex mu_;
  sensors::ErrorLog log_{"generic_mqtt"};
  GenericMqttStats stats_;
};

}  // namespace anju::drivers
