// The zigbee2mqtt driver: subscribes to <base>/# on the local bus, keeps the device list from the
// retained <base>/bridge/devices message (and a copy on disk, so that messages the broker queued
// for us while we were down are recognised before the retained list arrives again), and turns
// state and availability messages into events handed to the pipeline.
// Bad input is counted and logged at most once per device per minute; it never stops the rest.
// Thread: handle() runs on the local bus's Paho thread; stats() from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "anju/drivers/z2m_parser.hpp"
#include "anju/edge/clock.hpp"
#include "anju/edge/event.hpp"

namespace anju::drivers {

struct Z2mDeviceSettings {
  edge::Location location;
  std::string grid_code;  // empty: the site's
  std::string gb28181;
};

struct Z2mOptions {
  std::string base_topic = "zigbee2mqtt";
  std::string site;
  std::string grid_code;
  bool report_unchanged = false;
  std::int64_t refresh_ms = 600'000;                 // z2m::StateOptions::refresh_ms
  std::map<std::string, Z2mDeviceSettings> devices;  // by IEEE address or friendly name
  std::string state_file;  // where the device list is kept between runs (empty: not kept)
};

struct Z2mStats {
  std::int64_t messages = 0;
  std::int64_t events = 0;
  std::int64_t parse_errors = 0;
  std::int64_t unknown_device = 0;
  std::int64_t devices = 0;
};

class Zigbee2MqttDriver {
 public:
  // `sink` hands events to the pipeline (blocking under back-pressure); false = not accepted.
  using Sink = std::function<bool(std::vector<edge::Event>)>;
  Zigbee2MqttDriver(Z2mOptions options, const edge::Clock& clock, Sink sink);

  std::string subscription() const { return options_.base_topic + "/#"; }
  // `source_key` identifies the MQTT message (see LocalBus::Message); it is stamped on the events.
  void handle(const std::string& topic, const std::string& payload,
              const std::string& source_key = {});
  Z2mStats stats() const;

 private:
  void stamp(edge::Event& e, const z2m::DeviceInfo& dev) const;
  void complain(const std::string& device, const std::string& what);
  void load_devices(const std::string& payload, bool from_disk);

  Z2mOptions options_;
  const edge::Clock& clock_;
  Sink sink_;
  mutable std::mutex mu_;
  std::map<std::string, z2m::DeviceInfo> by_name_;
  std::map<std::string, z2m::DeviceState> state_;  // by IEEE address
  std::map<std::string, std::int64_t> last_complaint_ms_;
  Z2mStats stats_;
};

}  // namespace anju::drivers
