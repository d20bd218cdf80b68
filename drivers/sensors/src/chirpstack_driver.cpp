#include "anju/drivers/chirpstack_driver.hpp"

#include <spdlog/spdlog.h>

#include "anju/edge/mqtt.hpp"

namespace anju::drivers {

ChirpStackDriver::ChirpStackDriver(ChirpStackOptions options, const edge::Clock& clock, Sink sink)
    : options_(std::move(options)),
      clock_(clock),
      sink_(std::move(sink)),
      fcnt_(options_.fcnt_window) {}

void ChirpStackDriver::attach(edge::LocalBus& bus) {
  bus.subscribe(subscription(), [this](const edge::LocalBus::Message& m) {
    handle(m.topic, m.payload, m.source_key);
  });
}

ChirpStackStats ChirpStackDriver::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void ChirpStackDriver::count_error(const std::string& device, const std::string& message) {
  ++stats_.parse_errors;
  ++stats_.errors_by_reason[std::string(sensors::error_reason(message))];
  log_.warn(clock_.mono_ms(), device, message);
}

void ChirpStackDriver::handle(const std::string& topic, const std::string& payload,
                              const std::string& source_key) {
  std::vector<edge::Event> events;
  {
    std::lock_guard lock(mu_);
    ++stats_.messages;
    auto r = chirpstack::parse(topic, payload, options_.mappings);
    if (r.topic.type == chirpstack::TopicType::ignored) {
      if (!r.topic.event.empty()) {
        ++stats_.ignored;  // log, ack, txack, ...: known, not used
      } else if (generic_mqtt::is_valid_utf8(topic)) {
        count_error(topic.substr(0, 120), r.topic.reason);
      } else {
        count_error("(topic not UTF-8)", r.topic.reason);
      }
      return;
    }
    const std::string device = r.dev_eui.empty() ? r.topic.dev_eui : r.dev_eui;
    for (const auto& e : r.errors) count_error(device, e);
    if (r.topic.type == chirpstack::TopicType::join && r.errors.empty()) fcnt_.joined(device);
    // A message-level error leaves no events: its fCnt (if any was read) is not trusted.
    const bool rejected = r.events.empty() && !r.errors.empty();
    if (r.fcnt && !rejected) {
      switch (fcnt_.observe(device, *r.fcnt)) {
        case chirpstack::FCntClass::repeat:
          ++stats_.duplicates;
          spdlog::debug("chirpstack: {}: fCnt {} is a repeat (last {}); dropped", device, *r.fcnt,
                        fcnt_.last(device).value_or(0));
          return;
        case chirpstack::FCntClass::reset:
          ++stats_.fcnt_resets;
          spdlog::info("chirpstack: {}: frame counter reset to {}", device, *r.fcnt);
          for (auto& e : r.events) e.attrs["fcnt_reset"] = true;
          break;
        case chirpstack::FCntClass::first:
        case chirpstack::FCntClass::fresh:
          break;
      }
    }
    const auto it = options_.devices.find(device);
    const sensors::DeviceSettings* settings = it == options_.devices.end() ? nullptr : &it->second;
    for (auto& e : r.events)
      sensors::stamp(e, clock_, options_.site, options_.grid_code, settings, source_key);
    events = std::move(r.events);
    stats_.events += static_cast<std::int64_t>(events.size());
  }
  if (!events.empty() && !sink_(std::move(events))) {
    std::lock_guard lock(mu_);
    ++stats_.sink_refused;
    spdlog::error("chirpstack: pipeline refused events (stopping)");
  }
}

}  // namespace anju::drivers
