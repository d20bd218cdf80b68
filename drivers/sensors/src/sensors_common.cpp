#include "anju/drivers/sensors_common.hpp"

#include <spdlog/spdlog.h>

#include "anju/edge/uuid.hpp"

namespace anju::drivers::sensors {

void stamp(edge::Event& e, const edge::Clock& clock, const std::string& site,
           const std::string& grid_code, const DeviceSettings* settings,
           const std::string& source_key) {
  const std::int64_t wall = clock.wall_ms();
  e.id = edge::uuid_v7(wall);
  e.ts_ms = wall;
  e.mono_ns = clock.mono_ns();
  e.boot_id = edge::boot_id();
  e.clock_synced = clock.synced();
  e.site = site;
  e.grid_code = grid_code;
  e.source_key = source_key;
  if (settings == nullptr) return;
  if (!settings->name.empty()) e.device.name = settings->name;
  if (!settings->kind.empty()) e.device.kind = settings->kind;
  if (!settings->location.building.empty()) e.location.building = settings->location.building;
  if (!settings->location.unit.empty()) e.location.unit = settings->location.unit;
  if (!settings->location.room.empty()) e.location.room = settings->location.room;
  if (!settings->grid_code.empty()) e.grid_code = settings->grid_code;
  if (!settings->gb28181.empty()) e.device.gb28181 = settings->gb28181;
}

std::string_view error_reason(std::string_view m) {
  if (m.starts_with("payload too large")) return "too_large";
  if (m.starts_with("not valid JSON") ||
      m.find("payload must be a JSON object") != std::string_view::npos)
    return "invalid_json";
  if (m.starts_with("topic") || m.starts_with("DevEUI") || m.starts_with("not a ChirpStack"))
    return "bad_topic";
  if (m.starts_with("field '") || m.starts_with("device_pointer") ||
      m.starts_with("timestamp_pointer"))
    return "bad_field";
  return "bad_value";
}

bool ErrorLog::warn(std::int64_t now_ms, const std::string& key, const std::string& what) {
  auto [it, fresh] = last_ms_.try_emplace(key, now_ms);
  if (!fresh && now_ms - it->second < interval_ms_) {
    ++suppressed_;
    return false;
  }
  it->second = now_ms;
  // Bounded: a flood of distinct keys (random topics) must not grow the map without end.
  if (last_ms_.size() > 10'000) {
    for (auto i = last_ms_.begin(); i != last_ms_.end();)
      i = now_ms - i->second >= interval_ms_ ? last_ms_.erase(i) : std::next(i);
    if (last_ms_.size() > 10'000) last_ms_.clear();
  }
  spdlog::warn("{}: {}: {}", driver_, key, what);
  return true;
}

}  // namespace anju::drivers::sensors
