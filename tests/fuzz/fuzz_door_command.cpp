// Fuzz target: the door command parser (payloads from anyone on the local bus). The first line
// is the topic's scope and target ("door/gate-north"), the rest the payload. An accepted
// command has what anjud relies on; a refusal has a reason.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "anju/drivers/door_command.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using anju::drivers::access::DoorAction;
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const auto nl = all.find('\n');
  const std::string_view head = nl == std::string_view::npos ? "door/gate" : all.substr(0, nl);
  const std::string_view payload = nl == std::string_view::npos ? all : all.substr(nl + 1);
  const auto slash = head.find('/');
  const std::string_view scope = head.substr(0, slash);
  const std::string_view target =
      slash == std::string_view::npos ? std::string_view{} : head.substr(slash + 1);
  const auto r = anju::drivers::access::parse_door_command(scope, target, payload, "fuzz");
  if (r.command.has_value() == !r.error.empty()) __builtin_trap();
  if (r.command) {
    const auto& c = *r.command;
    if (c.user.empty() || c.request_id.empty() || c.target.empty()) __builtin_trap();
    if ((c.action == DoorAction::open) != (scope == "door")) __builtin_trap();
    if (c.action == DoorAction::open && c.expires_ms <= 0) __builtin_trap();
    if (c.target.find_first_of("/+#") != std::string::npos) __builtin_trap();
    if (anju::drivers::access::audit_action(c).empty()) __builtin_trap();
  }
  return 0;
}
