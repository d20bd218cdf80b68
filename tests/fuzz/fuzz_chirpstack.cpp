// libFuzzer target for the ChirpStack v4 parser. The input is "<topic>\n<payload>" (split at the
// first NUL or newline; without one, the whole input is the payload of a fixed "up" topic). The
// parser must never crash, throw or hand back something that cannot be encoded.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "anju/drivers/chirpstack.hpp"
#include "anju/edge/event.hpp"

namespace cs = anju::drivers::chirpstack;
using anju::edge::EventKind;

namespace {

constexpr std::string_view kUpTopic =
    "application/17c82e96-be03-4f38-aef3-f83d48582d97/device/24e124329e090021/event/up";

void check(bool ok) {
  if (!ok) std::abort();
}

// Error texts end up in logs and JSON: dumping must not throw (valid UTF-8).
void check_text(const std::string& s) {
  check(!nlohmann::json(s).dump().empty());
}

const cs::Mappings& mappings() {
  static const cs::Mappings m = [] {
    cs::Mappings maps;
    cs::DeviceMapping d;
    d.device_kind = "manhole_sensor";
    d.weak_rssi_dbm = -110;
    cs::ObjectField tilt;
    tilt.path = "position";
    tilt.kind = EventKind::manhole_open;
    tilt.active.active_values = {"tilt", 1};
    tilt.active.inactive_values = {"normal", 0};
    cs::ObjectField level;
    level.path = "/sensor/level";
    level.kind = EventKind::water_level;
    level.unit = "m";
    level.scale = 0.001;
    cs::ObjectField smoke;
    smoke.path = "alarm.smoke";
    smoke.kind = EventKind::smoke;
    d.object_fields = {tilt, level, smoke};
    cs::RawField flags;
    flags.kind = EventKind::tamper;
    flags.mask = 0x02;
    cs::RawField temp;
    temp.offset = 1;
    temp.type = cs::RawType::i16;
    temp.kind = EventKind::temperature;
    temp.scale = 0.1;
    temp.unit = "C";
    cs::RawField flow;
    flow.fport = 2;
    flow.offset = 3;
    flow.type = cs::RawType::float32;
    flow.endian = cs::Endian::little;
    flow.name = "flow";
    d.raw_fields = {flags, temp, flow};
    if (!cs::validate(d).empty()) std::abort();
    maps.by_dev_eui["24e124329e090021"] = d;
    maps.by_profile["smoke"].device_kind = "smoke_detector";
    return maps;
  }();
  return m;
}

void check_result(const cs::Result& r) {
  check(r.events.size() <= 16 && r.errors.size() <= 16);
  for (const auto& e : r.errors) check_text(e);
  check_text(r.topic.reason + r.topic.event + r.topic.application_id + r.topic.dev_eui);
  if (r.topic.type == cs::TopicType::ignored) check(r.events.empty() && r.errors.empty());
  for (const auto& ev : r.events) {
    check(ev.source == "chirpstack" && ev.severity >= 1 && ev.severity <= 4);
    check(anju::edge::is_binary_kind(ev.kind) == ev.active.has_value());
    check(ev.device.id == r.dev_eui && ev.device.id.size() == 16);
    check(!anju::edge::encode(ev).empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto cut = input.find_first_of(std::string_view("\0\n", 2));
  const std::string_view topic = cut == std::string_view::npos ? kUpTopic : input.substr(0, cut);
  const std::string_view payload = cut == std::string_view::npos ? input : input.substr(cut + 1);

  check_result(cs::parse(topic, payload, mappings()));
  check_result(cs::parse_uplink(kUpTopic, payload, mappings().by_dev_eui.begin()->second));

  auto b64 = cs::decode_base64(payload);
  if (b64) {
    const std::size_t pad = payload.ends_with("==") ? 2 : payload.ends_with("=") ? 1 : 0;
    check(b64->size() == payload.size() / 4 * 3 - pad);
  }

  // Frame counters: one tracker across inputs, as in a live driver; it stays bounded.
  static cs::FCntTracker tracker(16, 64);
  std::uint32_t fcnt = 0;
  for (std::size_t i = 0; i < 4 && i < payload.size(); ++i)
    fcnt = (fcnt << 8) | static_cast<unsigned char>(payload[i]);
  const std::string eui = std::to_string(size % 100);
  if (size % 7 == 0) tracker.joined(eui);
  const auto before = tracker.last(eui);
  const auto c = tracker.observe(eui, fcnt);
  if (c == cs::FCntClass::repeat)
    check(before && tracker.last(eui) == before);
  else
    check(tracker.last(eui) == fcnt);
  check(tracker.size() <= 64);
  return 0;
}
