#include "anju/drivers/z2m_driver.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "anju/edge/uuid.hpp"

namespace anju::drivers {

Zigbee2MqttDriver::Zigbee2MqttDriver(Z2mOptions options, const edge::Clock& clock, Sink sink)
    : options_(std::move(options)), clock_(clock), sink_(std::move(sink)) {
  if (!options_.state_file.empty()) {
    std::ifstream in(options_.state_file);
    if (in) {
      std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      load_devices(data, true);
    }
  }
}

Z2mStats Zigbee2MqttDriver::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Zigbee2MqttDriver::complain(const std::string& device, const std::string& what) {
  // At most one line per device per minute: a chattering broken device must not flood the log.
  const std::int64_t now = clock_.mono_ms();
  auto [it, fresh] = last_complaint_ms_.try_emplace(device, now);
  if (!fresh && now - it->second < 60'000) return;
  it->second = now;
  spdlog::warn("zigbee2mqtt: {}: {}", device, what);
}

void Zigbee2MqttDriver::load_devices(const std::string& payload, bool from_disk) {
  auto r = z2m::parse_bridge_devices(payload);
  if (!r.error.empty()) {
    ++stats_.parse_errors;
    complain("bridge/devices", r.error);
    return;
  }
  if (r.devices.empty() && !r.skipped.empty()) {
    // Nothing usable and something malformed: keep the list we have rather than forget every
    // device because of one bad message.
    ++stats_.parse_errors;
    complain("bridge/devices",
             "no valid device entry (" + r.skipped.front() + "); keeping the previous device list");
    return;
  }
  by_name_.clear();
  for (auto& d : r.devices) by_name_[d.friendly_name] = d;
  stats_.devices = static_cast<std::int64_t>(by_name_.size());
  for (const auto& s : r.skipped) spdlog::debug("zigbee2mqtt: bridge/devices: {}", s);
  if (!from_disk) {
    spdlog::info("zigbee2mqtt: {} devices known", by_name_.size());
    if (!options_.state_file.empty()) {
      // Keep a copy for the next start (write then rename: never a half-written file).
      const std::string tmp = options_.state_file + ".tmp";
      {
        std::ofstream out(tmp, std::ios::trunc);
        out << payload;
      }
      std::error_code ec;
      std::filesystem::rename(tmp, options_.state_file, ec);
    }
  }
}

void Zigbee2MqttDriver::stamp(edge::Event& e, const z2m::DeviceInfo& dev) const {
  e.id = edge::uuid_v7(clock_.wall_ms());
  e.ts_ms = clock_.wall_ms();
  e.mono_ns = clock_.mono_ns();
  e.boot_id = edge::boot_id();
  e.clock_synced = clock_.synced();
  e.site = options_.site;
  e.grid_code = options_.grid_code;
  e.device.id = dev.ieee;
  e.device.kind = dev.kind;
  e.device.name = dev.friendly_name;
  e.source = "zigbee2mqtt";
  auto it = options_.devices.find(dev.ieee);
  if (it == options_.devices.end()) it = options_.devices.find(dev.friendly_name);
  if (it != options_.devices.end()) {
    e.location = it->second.location;
    if (!it->second.grid_code.empty()) e.grid_code = it->second.grid_code;
    e.device.gb28181 = it->second.gb28181;
  }
}

void Zigbee2MqttDriver::handle(const std::string& topic, const std::string& payload,
                               const std::string& source_key) {
  std::vector<edge::Event> events;
  {
    std::lock_guard lock(mu_);
    ++stats_.messages;
    const auto info = z2m::classify_topic(options_.base_topic, topic);
    if (info.type == z2m::TopicType::ignored) return;
    if (info.type == z2m::TopicType::bridge_devices) {
      load_devices(payload, false);
      return;
    }
    auto dev = by_name_.find(info.friendly_name);
    if (dev == by_name_.end()) {
      ++stats_.unknown_device;
      complain(info.friendly_name, "message from a device not in bridge/devices; ignored");
      return;
    }
    if (info.type == z2m::TopicType::availability) {
      auto r = z2m::parse_availability(payload);
      if (!r.online) {
        ++stats_.parse_errors;
        complain(info.friendly_name, "availability: " + r.error);
        return;
      }
      edge::Event e;
      e.kind = *r.online ? edge::EventKind::device_online : edge::EventKind::device_offline;
      e.severity = *r.online ? 4 : 3;
      e.attrs = {
          {"reason", *r.online ? "zigbee2mqtt reports online" : "zigbee2mqtt reports offline"}};
      stamp(e, dev->second);
      events.push_back(std::move(e));
    } else {
      auto r = z2m::parse_state(payload, dev->second, state_[dev->second.ieee],
                                {options_.report_unchanged, options_.refresh_ms, clock_.wall_ms()});
      if (!r.errors.empty()) {
        stats_.parse_errors += static_cast<std::int64_t>(r.errors.size());
        complain(info.friendly_name, r.errors.front());
      }
      for (auto& e : r.events) {
        stamp(e, dev->second);
        events.push_back(std::move(e));
      }
    }
    for (auto& e : events) e.source_key = source_key;
    stats_.events += static_cast<std::int64_t>(events.size());
  }
  if (!events.empty() && !sink_(std::move(events)))
    spdlog::error("zigbee2mqtt: pipeline refused events (stopping)");
}

}  // namespace anju::drivers
