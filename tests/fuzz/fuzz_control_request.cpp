// Fuzz target: the parser of requests on anjud's local control socket (firmware/control.cpp),
// and the planner of a test event from them. An accepted request has what the daemon relies
// on; a refusal has a reason; a plan is either an event or an error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "anju/firmware/control.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto r = anju::firmware::parse_control_request(text);
  if (!r.request) {
    if (r.error.empty()) __builtin_trap();
    return 0;
  }
  if (!r.error.empty()) __builtin_trap();
  const auto& q = *r.request;
  if (q.cmd == anju::firmware::ControlCmd::test_event) {
    if (q.target.empty() || q.target.size() > 128) __builtin_trap();
    if (q.timeout_ms < 1000 || q.timeout_ms > 600'000) __builtin_trap();
    anju::edge::DeviceRecord d;
    d.device = {"0x00158d0000000001", "smoke_detector", "smoke_3_2_hall", ""};
    const auto plan = anju::firmware::plan_test_event(
        q, {d}, {{"0x00158d0000000001", {"battery", "smoke"}}}, "site", "123456789012345678901");
    if (plan.event.has_value() == !plan.error.empty()) __builtin_trap();
    if (plan.event && (plan.event->kind != anju::edge::EventKind::gateway_test ||
                       !plan.event->attrs.value("test", false)))
      __builtin_trap();
  }
  return 0;
}
