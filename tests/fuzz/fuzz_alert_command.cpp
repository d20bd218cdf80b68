// Fuzz target: the life-cycle and maintenance command parsers (payloads from anyone on the
// local bus).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "anju/edge/lifecycle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  // The first line is the alert id from the topic, the rest the payload.
  const auto nl = all.find('\n');
  const std::string_view id = nl == std::string_view::npos ? "a1" : all.substr(0, nl);
  const std::string_view payload = nl == std::string_view::npos ? all : all.substr(nl + 1);
  auto r = anju::edge::parse_alert_command(id, payload, "fuzz");
  if (r.command) {
    if (r.command->user.empty() || r.command->request_id.empty()) __builtin_trap();
    anju::edge::Alert a;
    (void)anju::edge::check_transition(a, r.command->action);
  } else if (r.error.empty()) {
    __builtin_trap();
  }
  auto m = anju::edge::parse_maintenance_command(payload, "fuzz");
  if (m.command) {
    if (m.command->device.empty() == m.command->building.empty()) __builtin_trap();
  } else if (m.error.empty()) {
    __builtin_trap();
  }
  return 0;
}
