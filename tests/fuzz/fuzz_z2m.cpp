// libFuzzer target for the zigbee2mqtt payload parsers. The whole input goes to every parser;
// the parsers must never crash, throw or hand back something that cannot be encoded.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "anju/drivers/z2m_parser.hpp"
#include "anju/edge/event.hpp"

namespace z2m = anju::drivers::z2m;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// Error texts end up in logs and JSON: dumping must not throw (valid UTF-8).
void check_text(const std::string& s) {
  check(!nlohmann::json(s).dump().empty());
}

const z2m::DeviceInfo& fixed_device() {
  static const z2m::DeviceInfo d = [] {
    z2m::DeviceInfo info;
    info.ieee = "0x00158d0001a2b3c4";
    info.friendly_name = "kitchen_smoke";
    info.model = "JTYJ-GD-01LM/BW";
    info.vendor = "Xiaomi";
    info.kind = "smoke_detector";
    info.caps = {z2m::Capability::smoke, z2m::Capability::battery, z2m::Capability::battery_low,
                 z2m::Capability::tamper};
    return info;
  }();
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // Topics: the input as a topic under a fixed base, and as a base for a fixed topic.
  for (const auto& t : {z2m::classify_topic("zigbee2mqtt", input),
                        z2m::classify_topic(input, "zigbee2mqtt/kitchen_smoke/availability")}) {
    if (t.type == z2m::TopicType::state || t.type == z2m::TopicType::availability)
      check(!t.friendly_name.empty() && t.friendly_name.find('/') == std::string::npos);
    else
      check(t.friendly_name.empty());
  }

  auto devices = z2m::parse_bridge_devices(input);
  check(devices.error.empty() || (devices.devices.empty() && devices.skipped.empty()));
  check_text(devices.error);
  for (const auto& s : devices.skipped) check_text(s);
  for (const auto& d : devices.devices) {
    check(!d.ieee.empty() && !d.friendly_name.empty() && !d.caps.empty() && !d.kind.empty());
    check_text(d.ieee + d.friendly_name + d.model + d.vendor);
  }

  // One state reused across inputs, as for a live device; its keys are a fixed set, so it stays
  // bounded. report_unchanged alternates with the input's parity.
  static z2m::DeviceState state;
  const z2m::StateOptions options{.report_unchanged = (size % 2) == 1};
  auto st = z2m::parse_state(input, fixed_device(), state, options);
  check(st.events.size() <= 11 && st.errors.size() <= 11);
  check(state.last.size() <= 11);
  for (const auto& e : st.errors) check_text(e);
  for (const auto& ev : st.events) {
    check(ev.source == "zigbee2mqtt" && ev.severity >= 1 && ev.severity <= 4);
    check(anju::edge::is_binary_kind(ev.kind) == ev.active.has_value());
    check(!anju::edge::encode(ev).empty());
  }

  auto av = z2m::parse_availability(input);
  check(av.online.has_value() != !av.error.empty());
  check(av.error.size() < 200);
  check_text(av.error);
  return 0;
}
