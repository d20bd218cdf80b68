#include "anju/drivers/generic_mqtt_driver.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>

#include "anju/edge/mqtt.hpp"

namespace anju::drivers {

namespace {

std::vector<std::string> split_levels(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const auto slash = s.find('/', start);
    out.push_back(s.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return out;
}

}  // namespace

std::string mqtt_filter(const std::string& pattern) {
  std::string out;
  for (const auto& level : split_levels(pattern)) {
    const bool capture = (!level.empty() && level[0] == '+') ||
                         (level.size() >= 2 && level.front() == '{' && level.back() == '}');
    out += capture ? std::string("+") : level;
    out += '/';
  }
  out.pop_back();
  return out;
}

bool filter_covers(const std::string& a, const std::string& b) {
  const auto la = split_levels(a);
  const auto lb = split_levels(b);
  for (std::size_t i = 0; i < la.size(); ++i) {
    if (la[i] == "#") {
      // "x/#" also matches "x" itself; a '$' topic is never matched by a leading wildcard.
      return !(i == 0 && !lb.empty() && !lb[0].empty() && lb[0][0] == '$');
    }
    if (i >= lb.size()) return false;
    if (la[i] == "+") {
      if (lb[i] == "#") return false;
      if (i == 0 && !lb[0].empty() && lb[0][0] == '$') return false;
      continue;
    }
    if (la[i] != lb[i]) return false;
  }
  return la.size() == lb.size();
}

GenericMqttDriver::GenericMqttDriver(GenericMqttOptions options, const edge::Clock& clock,
                                     Sink sink)
    : options_(std::move(options)), clock_(clock), sink_(std::move(sink)) {
  for (std::size_t i = 0; i < options_.mappings.size(); ++i) {
    const auto errors = generic_mqtt::validate(options_.mappings[i]);
    if (!errors.empty())
      throw std::invalid_argument("generic_mqtt mapping " + std::to_string(i) + " ('" +
                                  options_.mappings[i].name + "'): " + errors.front());
  }
}

std::vector<std::string> GenericMqttDriver::subscriptions() const {
  std::vector<std::string> filters;
  for (const auto& m : options_.mappings) filters.push_back(mqtt_filter(m.topic));
  std::vector<std::string> out;
  for (std::size_t i = 0; i < filters.size(); ++i) {
    bool covered = false;
    for (std::size_t j = 0; j < filters.size() && !covered; ++j) {
      if (i == j || !filter_covers(filters[j], filters[i])) continue;
      // Mutually covering means equal: keep the first of them.
      covered = !filter_covers(filters[i], filters[j]) || j < i;
    }
    if (!covered) out.push_back(filters[i]);
  }
  return out;
}

void GenericMqttDriver::attach(edge::LocalBus& bus) {
  for (const auto& f : subscriptions())
    bus.subscribe(
        f, [this](const edge::LocalBus::Message& m) { handle(m.topic, m.payload, m.source_key); });
}

GenericMqttStats GenericMqttDriver::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void GenericMqttDriver::handle(const std::string& topic, const std::string& payload,
                               const std::string& source_key) {
  std::vector<edge::Event> events;
  {
    std::lock_guard lock(mu_);
    ++stats_.messages;
    if (!generic_mqtt::is_valid_utf8(topic)) {
      ++stats_.parse_errors;
      ++stats_.errors_by_reason["bad_topic"];
      log_.warn(clock_.mono_ms(), "(topic not UTF-8)", "topic is not valid UTF-8; ignored");
      return;
    }
    bool matched = false;
    for (const auto& m : options_.mappings) {
      auto r = generic_mqtt::parse(m, topic, payload);
      if (!r.matched) continue;
      matched = true;
      ++stats_.messages_by_mapping[m.name];
      const std::string who =
          r.events.empty() ? m.name + " " + topic.substr(0, 120) : r.events.front().device.id;
      for (const auto& e : r.errors) {
        ++stats_.parse_errors;
        ++stats_.errors_by_reason[std::string(sensors::error_reason(e))];
        log_.warn(clock_.mono_ms(), who, e);
      }
      for (auto& e : r.events) {
        const auto it = options_.devices.find(e.device.id);
        sensors::stamp(e, clock_, options_.site, options_.grid_code,
                       it == options_.devices.end() ? nullptr : &it->second, source_key);
        events.push_back(std::move(e));
      }
    }
    if (!matched) ++stats_.unmatched;
    stats_.events += static_cast<std::int64_t>(events.size());
  }
  if (!events.empty() && !sink_(std::move(events))) {
    std::lock_guard lock(mu_);
    ++stats_.sink_refused;
    spdlog::error("generic_mqtt: pipeline refused events (stopping)");
  }
}

}  // namespace anju::drivers
