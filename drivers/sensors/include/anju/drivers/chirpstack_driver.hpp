// The ChirpStack v4 driver (LoRaWAN sensors): subscribes to ChirpStack's MQTT integration on the
// local bus (application/+/device/+/event/+, QoS 1, the bus's persistent session), parses with
// the pure chirpstack::parse, drops repeated frame counters (FCntTracker; resets are logged with
// the DevEUI), stamps the events with site, grid code and the device's place from config, and
// hands them to the sink (Pipeline::submit).
//
// Redeliveries: the local bus drops a DUP message whose source key it has seen; every event carries
// the message's source key so that one seen before a restart is recognised too (as zigbee2mqtt).
// Bad input is counted by reason and logged at most once per device per minute; never fatal.
// Thread: handle() runs on the local bus's Paho thread; stats() from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "anju/drivers/chirpstack.hpp"
#include "anju/drivers/sensors_common.hpp"
#include "anju/edge/clock.hpp"
#include "anju/edge/event.hpp"

namespace anju::edge {
class LocalBus;
}

namespace anju::drivers {

struct ChirpStackOptions {
  std::string site;
  std::string grid_code;
  chirpstack::Mappings mappings;  // which object/raw fields become which events
  // By DevEUI (lower-case hex, as in the topic): name, building/unit/room, grid and GB28181 code.
  std::map<std::string, sensors::DeviceSettings, std::less<>> devices;
  std::uint32_t fcnt_window = 16;  // FCntTracker: a fCnt this far below the last is a repeat
};

struct ChirpStackStats {
  std::int64_t messages = 0;      // messages handed to handle()
  std::int64_t events = 0;        // events handed to the sink
  std::int64_t parse_errors = 0;  // errors (a message may have several: one per bad value)
  std::int64_t duplicates = 0;    // uplinks dropped because their fCnt was a repeat
  std::int64_t fcnt_resets = 0;   // frame counter restarts seen (accepted)
  std::int64_t ignored = 0;       // event types not used (log, ack, txack, ...)
  std::int64_t sink_refused = 0;  // batches the sink did not take (pipeline stopping)
  std::map<std::string, std::int64_t> errors_by_reason;  // see sensors::error_reason()
};

class ChirpStackDriver {
 public:
  using Sink = std::function<bool(std::vector<edge::Event>)>;
  ChirpStackDriver(ChirpStackOptions options, const edge::Clock& clock, Sink sink);

  // The topic filter to subscribe on the local bus.
  static std::string subscription() { return "application/+/device/+/event/+"; }
  // Subscribes handle() on the bus (before bus.start()).
  void attach(edge::LocalBus& bus);
  // `source_key` identifies the MQTT message (LocalBus::Message); it is stamped on the events.
  void handle(const std::string& topic, const std::string& payload,
              const std::string& source_key = {});
  ChirpStackStats stats() const;

 private:
  void count_error(const std::string& device, const std::string& message);

  ChirpStackOptions options_;
  const edge::Clock& clock_;
  Sink sink_;
  mutable std::mutex mu_;
  chirpstack::FCntTracker fcnt_;
  sensors::ErrorLog log_{"chirpstack"};
  ChirpStackStats stats_;
};

}  // namespace anju::drivers
